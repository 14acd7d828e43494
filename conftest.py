"""pytest's set-up for the course notebooks: their figures become outputs, and what ran feeds the site.

``bash run.sh test`` executes every course notebook cell by cell with nbval (``python -m pytest
notebooks --nbval-lax``). Two things are added to nbval here:

- each notebook's kernel draws with Jupyter's inline backend, as in JupyterLab, although the test
  run sets ``MPLBACKEND=Agg`` for the package's own tests: the figures are then real outputs;
- a notebook whose every cell ran without an error is stored, with its outputs, in the course
  site's notebook cache (``docs/notebook_cache.py``), so the site built later in the same run
  (``tests/browser/test_docs_site.py``) shows these outputs instead of executing each notebook a
  second time. ``run.sh`` runs ``notebooks`` before ``tests`` for that reason.

Nothing here changes what passes or fails; without nbval or jupyter-cache it does nothing.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from pathlib import Path

import pytest

try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval is in the dev extra; without it there are no notebook items
    IPyNbCell = ()

REPO = Path(__file__).resolve().parent
COURSE = REPO / "notebooks"

_ran: dict[str, set[int]] = {}  # notebook node id -> numbers of the code cells that passed
_started: dict[str, float] = {}  # notebook node id -> when its kernel was started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """Start a notebook's kernel (nbval does it in the first cell's set-up) without MPLBACKEND."""
    if not isinstance(item, IPyNbCell) or item.parent.kernel is not None:
        yield
        return
    _started[item.parent.nodeid] = time.perf_counter()
    backend = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each passing cell's outputs in the notebook nbval read (``item.cell`` is one of its cells)."""
    outcome = yield
    if not isinstance(item, IPyNbCell) or call.when != "call":
        return
    if outcome.get_result().passed and item.test_outputs is not None:
        item.cell.outputs = item.test_outputs
        item.cell.execution_count = item.cell_num + 1
        _ran.setdefault(item.parent.nodeid, set()).add(item.cell_num)


def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell: store it in the site's cache if every code cell passed."""
    if not isinstance(item, IPyNbCell) or (nextitem is not None and nextitem.parent is item.parent):
        return
    notebook = item.parent
    source = Path(str(notebook.fspath)).resolve()
    code_cells = sum(cell.cell_type == "code" for cell in notebook.nb.cells)
    if source.parent != COURSE or len(_ran.get(notebook.nodeid, ())) != code_cells:
        return  # not a course notebook, or a cell failed, was skipped or was not selected
    spec = importlib.util.spec_from_file_location("notebook_cache", REPO / "docs" / "notebook_cache.py")
    try:
        from deepimaging.train import smoke_mode

        notebook_cache = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(notebook_cache)
        seconds = time.perf_counter() - _started.get(notebook.nodeid, time.perf_counter())
        notebook_cache.store_executed(notebook.nb, source, smoke_mode(), seconds)
    except ImportError:
        return  # no jupyter-cache (the docs extra): the site, if built, executes the notebooks
    except Exception as error:  # the cache is a saving, never a reason for a test to fail
        warnings.warn(
            f"{source.name} could not be stored in the site's notebook cache: {error!r}", stacklevel=1
        )
