"""deepimaging: physical layers in front of CNNs, for a course on machine learning and imaging.

Subpackages (imported on first use, so ``import deepimaging`` stays fast):

- :mod:`deepimaging.data`      built-in simulated blood smear and loaders for real data
- :mod:`deepimaging.physics`   differentiable models of imaging hardware
- :mod:`deepimaging.models`    ``BasicCNN`` and ``PhysicalModel``
- :mod:`deepimaging.train`     ``seed_everything``, ``fit``, ``predict``, ``evaluate``
- :mod:`deepimaging.metrics`   classification and image-quality metrics
- :mod:`deepimaging.interpret` filters, features, neighbours, t-SNE; occlusion, saliency; sliding windows
- :mod:`deepimaging.plots`     figures (``ax=None`` in, Axes out)
- :mod:`deepimaging.widgets`   ipywidgets explorers with static fallbacks
- :mod:`deepimaging.study`     parameter sweeps, the class-project engine
- :mod:`deepimaging.report`    results web page and paper figures
- :mod:`deepimaging.project`   class projects (``project.toml``), and the worked demo
- :mod:`deepimaging.cli`       the ``deepimaging`` command

The layers, lowest first. Each imports only from its own floor's unit and the
floors below it, never from a higher one, not even inside a function; no unit
imports another's private (``_``) names: what two floors share lives in the
internal helpers. ``tests/test_architecture.py`` checks this from the source::

    _checks, _util                           internal helpers (input checks; atomic files, eval mode, ...)
    data · physics · models · metrics        know nothing above them
    train                                    fit / predict / evaluate
    interpret · study                        what is inside a network; sweeps of a physical parameter
    plots                                    static figures of the above
    widgets · report                         explorers over plots; results page and paper figures
    project                                  a class project: configuration, run, report; the demo
    cli                                      the ``deepimaging`` command: parsing and printing only
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
    "project",
    "cli",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'deepimaging' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
