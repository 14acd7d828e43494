"""Run a project's study and write its report: the results on disk become the page and the paper's files."""

from __future__ import annotations

from pathlib import Path

from ..report import write_report
from ..study import load_results, run_study
from .config import load_project
from .paper import write_paper_files

__all__ = ["report_project", "results_dir", "run_project"]


def results_dir(path, smoke: bool | None = None) -> Path:
    """Where a project's results live: ``results/``, or ``results_smoke/`` in smoke mode."""
    from ..train import smoke_mode

    smoke = smoke_mode() if smoke is None else smoke
    return Path(path) / ("results_smoke" if smoke else "results")


def run_project(path, *, jobs: int = 1, smoke: bool | None = None, progress: bool = True, **executor):
    """Run (or resume) the study of the project at ``path``; return its results.

    ``executor`` options (``executor="slurm"``, ``partition``, ``time_min`` ...) go to
    :func:`deepimaging.study.run_study`; a submission that does not wait returns its
    :class:`~deepimaging.study.Submission` instead of the results.
    """
    project = load_project(path, smoke=smoke)
    return run_study(project.study, results_dir(path, smoke), jobs=jobs, progress=progress, **executor)


def report_project(path, *, smoke: bool | None = None) -> dict:
    """Render the results page and the paper's figures and table from the results on disk.

    Writes ``report/index.html`` (with its figures, by :func:`deepimaging.report.write_report`),
    and ``paper/generated/``: ``metadata.tex`` (title and authors, LaTeX-escaped),
    ``results_table.tex`` (a ``tabular``) and the page's figures as PDF.

    Returns
    -------
    dict
        Paths of the page, the table and the figures.
    """
    project = load_project(path, smoke=smoke)
    folder = results_dir(path, smoke)
    if not (folder / "study.json").is_file():
        raise FileNotFoundError(
            f"no results in {folder} yet: run the study first with `deepimaging run {path}`"
            + (" --smoke" if folder.name.endswith("smoke") else "")
        )
    results = load_results(folder, allow_incomplete=True)
    if not results.points:
        raise FileNotFoundError(
            f"the study in {folder} has no finished point yet: run `deepimaging run {path}`"
        )

    page = write_report(
        results,
        Path(path) / "report",
        title=project.title,
        authors=project.authors,
        description=project.description,
        links={"code": project.code_url, "data": project.data_url},
    )
    paper = write_paper_files(
        project.title, project.authors, results, Path(path) / "report", Path(path) / "paper" / "generated"
    )
    return {"page": page, **paper}
