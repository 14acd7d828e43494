"""Interpretation: what is inside the network, and which pixels matter.

- :mod:`deepimaging.interpret.features`: filter grids, activations, features,
  nearest neighbours in feature and pixel space, t-SNE.
- :mod:`deepimaging.interpret.attribution`: occlusion, saliency, Grad-CAM,
  sliding windows.

Both are re-exported here: ``deepimaging.interpret.occlusion_map`` works.
"""

from .attribution import *  # noqa: F403
from .features import *  # noqa: F403
