"""Fixtures of the browser suite: one JupyterLab server and one headless Chromium per session.

Every notebook the collected tests need is copied into a scratch directory, opened in
its own page and started ('Run All Cells') as soon as the first test asks for one, so
the notebooks run side by side while the tests check them one after the other.
The server (and its kernels, one process group) is stopped when the session ends,
whether the tests passed, failed or were interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _harness import (  # noqa: E402
    ExplorerCase,
    NotebookRun,
    copy_into,
    running_lab,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NOTEBOOKS = Path(os.environ.get("DEEPIMAGING_BROWSER_NOTEBOOKS", REPO / "notebooks"))
ARTIFACTS = REPO / "test-artifacts" / "browser"

# Fixture notebooks built here (not committed as .ipynb, so nbval does not collect them).
FIXTURE_NOTEBOOKS = {
    "fixture_ok.ipynb": "FixtureExplorer(level=0.5)",
    "fixture_broken.ipynb": "FixtureExplorer(level=0.5, broken=True)",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "notebook(path): the browser test opens this notebook (relative path)")


def _fixture_notebook(expression: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("A tiny explorer for testing the browser harness."),
        nbformat.v4.new_code_cell("from fixture_explorer import FixtureExplorer"),
        nbformat.v4.new_markdown_cell("Displayed as the last expression: widget plus static PNG."),
        nbformat.v4.new_code_cell(expression),
    ]
    return nb


def _needed_notebooks(session) -> list[str]:
    """The notebooks the collected browser tests open, in collection order."""
    paths: list[str] = []
    for item in session.items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if isinstance(case, ExplorerCase):
            paths.append(case.notebook)
        for marker in item.iter_markers("notebook"):
            paths.extend(marker.args)
    return list(dict.fromkeys(paths))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory, request) -> Path:
    """The served directory: copies of the needed notebooks, the fixture notebooks and module."""
    root = tmp_path_factory.mktemp("lab-root")
    copy_into(root, [NOTEBOOKS / p for p in _needed_notebooks(request.session) if (NOTEBOOKS / p).exists()])
    copy_into(root, [HERE / "fixture_explorer.py"])
    for name, expression in FIXTURE_NOTEBOOKS.items():
        nbformat.write(_fixture_notebook(expression), root / name)
    return root


@pytest.fixture(scope="session")
def lab(chromium, lab_root, tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 (fresh port and token), stopped at the end of the session."""
    env = {
        "DEEPIMAGING_SMOKE": "1",
        # Run the notebooks as on a machine without the real BCCD photos: their BCCD sections
        # hold no explorer and nbval already runs them; skipping them keeps this suite short.
        "DEEPIMAGING_BCCD": "",
        # Several kernels share the CPU at once; one thread each avoids oversubscription.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(lab_root), os.environ.get("PYTHONPATH")])),
    }
    with running_lab(lab_root, tmp_path_factory.mktemp("lab-state"), env=env) as server:
        yield server


@pytest.fixture(scope="session")
def notebook_runs(chromium, lab, request, artifacts):
    """Open and start every needed notebook at once; tests then wait for the one they check."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1100})
    runs: dict[str, NotebookRun] = {}
    try:
        for path in _needed_notebooks(request.session):
            if (lab.root / path).exists():
                runs[path] = NotebookRun(lab, context, path)
                runs[path].start()
                runs[
                    path
                ].wait_for_kernel()  # one kernel start at a time; the notebooks then run side by side
        yield runs
    finally:
        timings = {path: run.timings for path, run in runs.items()}
        (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1), encoding="utf-8")
        for run in runs.values():
            run.close()
        context.close()


@pytest.fixture
def notebook_run(notebook_runs, request):
    """The run of the notebook named by the test's ``notebook`` marker or ``case`` parameter."""
    case = getattr(request.node, "callspec", None) and request.node.callspec.params.get("case")
    marker = request.node.get_closest_marker("notebook")
    path = case.notebook if isinstance(case, ExplorerCase) else marker.args[0]
    if path not in notebook_runs:
        pytest.skip(f"notebooks/{path} does not exist (yet)")
    return notebook_runs[path]
