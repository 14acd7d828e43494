"""Interpretation: what is inside the network, and which pixels matter.

- :mod:`deepimaging.interpret.features`: filter grids, activations, feature vectors.
- :mod:`deepimaging.interpret.neighbors`: distances, nearest neighbours in feature
  and pixel space, t-SNE.
- :mod:`deepimaging.interpret.attribution`: occlusion, saliency, SmoothGrad, Grad-CAM.
- :mod:`deepimaging.interpret.detection`: sliding windows over large images,
  non-maximum suppression, box voting, matching detections to true boxes.

All are re-exported here: ``deepimaging.interpret.occlusion_map`` works.
"""

from .attribution import *  # noqa: F403
from .attribution import __all__ as _attribution_all
from .detection import *  # noqa: F403
from .detection import __all__ as _detection_all
from .features import *  # noqa: F403
from .features import __all__ as _features_all
from .neighbors import *  # noqa: F403
from .neighbors import __all__ as _neighbors_all

__all__ = [*_features_all, *_neighbors_all, *_attribution_all, *_detection_all]
