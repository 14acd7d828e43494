"""Interactive explorers (ipywidgets) over the same public functions a notebook calls.

Each explorer precomputes what its controls need, so moving a control only
redraws, and falls back to a static figure where widgets cannot render.
"""

from . import attribution, features, metrics, physics
from ._base import Explorer, figure_to_png
from .attribution import *  # noqa: F403
from .features import *  # noqa: F403
from .metrics import *  # noqa: F403
from .physics import *  # noqa: F403

__all__ = [
    "Explorer",
    "figure_to_png",
    *attribution.__all__,
    *features.__all__,
    *metrics.__all__,
    *physics.__all__,
]
