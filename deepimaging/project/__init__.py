"""Class projects: scaffold a project folder, run the study it configures, report the results.

A project is a folder with a ``project.toml`` that says which base dataset, which physical
layer(s) and values, which model and training settings. Three commands work on it::

    deepimaging new-project my_project     # the folder: config, notebook, proposal, paper skeleton
    deepimaging run my_project             # the study engine of deepimaging.study, resumable
    deepimaging report my_project          # report/index.html, paper/generated/*.pdf and *.tex

The report always reads the results on disk, so the page and the paper show the latest
numbers. Every key of ``project.toml`` is checked before anything trains: a missing or
misspelled key, an unknown layer or dataset, a value of the wrong type or range is a
:class:`ProjectConfigError` naming the file, the line and the allowed values.

Modules: :mod:`.config` (the ``project.toml`` schema and its checks), :mod:`.scaffold`
(``new-project``), :mod:`.run` (run and report), :mod:`.paper` (the LaTeX files),
:mod:`.demo` (``deepimaging demo``, the worked bit-depth study).
"""

from .config import Project, ProjectConfigError, load_project
from .demo import run_demo
from .paper import latex_escape, results_table_latex
from .run import report_project, results_dir, run_project
from .scaffold import BCCD_EXAMPLES, EXAMPLES, new_project

__all__ = [
    "BCCD_EXAMPLES",
    "EXAMPLES",
    "Project",
    "ProjectConfigError",
    "latex_escape",
    "load_project",
    "new_project",
    "report_project",
    "results_dir",
    "results_table_latex",
    "run_demo",
    "run_project",
]
