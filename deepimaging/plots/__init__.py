"""Static figures: every function takes ``ax=None`` (or builds a Figure for grids) and returns it.

Nothing here calls ``plt.show()``; notebooks display the returned figure.
Grouped by topic in sub-modules, all re-exported here:
``deepimaging.plots.learning_curves`` is ``deepimaging.plots.training.learning_curves``.
"""

from . import attribution, features, metrics, physics, study, training
from ._common import imshow, to_hwc
from .across import *  # noqa: F403
from .attribution import *  # noqa: F403
from .features import *  # noqa: F403
from .metrics import *  # noqa: F403
from .physics import *  # noqa: F403
from .study import *  # noqa: F403
from .training import *  # noqa: F403

__all__ = [
    "imshow",
    "to_hwc",
    *attribution.__all__,
    *features.__all__,
    *metrics.__all__,
    *physics.__all__,
    *study.__all__,
    *training.__all__,
]
