"""deepimaging: physical layers in front of CNNs, for a course on machine learning and imaging.

Submodules (imported on first use, so ``import deepimaging`` stays fast):

- :mod:`deepimaging.data`      built-in simulated blood smear and loaders for real data
- :mod:`deepimaging.physics`   differentiable models of imaging hardware
- :mod:`deepimaging.models`    ``BasicCNN`` and ``PhysicalModel``
- :mod:`deepimaging.train`     ``seed_everything``, ``fit``, ``predict``, ``evaluate``
- :mod:`deepimaging.metrics`   classification and image-quality metrics
- :mod:`deepimaging.interpret` filters, features, neighbours, t-SNE, occlusion, saliency
- :mod:`deepimaging.plots`     figures (``ax=None`` in, Axes out)
- :mod:`deepimaging.widgets`   ipywidgets explorers with static fallbacks
- :mod:`deepimaging.study`     parameter sweeps, the class-project engine
- :mod:`deepimaging.report`    results web page and paper figures
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "data",
    "physics",
    "models",
    "train",
    "metrics",
    "interpret",
    "plots",
    "widgets",
    "study",
    "report",
    "cli",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'deepimaging' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
