"""The sub-commands of a class project: ``new-project`` (scaffold), ``run`` (its study) and ``report``."""

from __future__ import annotations

from ._shared import _add_executor_options, _executor, _files_only, _names, _print_summary, _submitted


def _add_project(subparsers) -> None:
    from ..project import BCCD_EXAMPLES, EXAMPLES

    p = subparsers.add_parser("new-project", help="scaffold a class-project folder")
    p.add_argument("path", help="the folder to create (must not exist, or be empty)")
    p.add_argument("--title", help="project title")
    p.add_argument("--authors", help="comma-separated author names")
    p.add_argument("--example", choices=EXAMPLES + BCCD_EXAMPLES, help="start from an example topic")
    p.set_defaults(run=_new_project)

    p = subparsers.add_parser("run", help="run (or resume) the study a project.toml describes")
    p.add_argument("path", help="the project folder")
    p.add_argument("--jobs", type=int, default=1, help="points trained in parallel (processes)")
    p.add_argument("--smoke", action="store_true", help="tiny data and one epoch, to check the set-up")
    p.add_argument("--no-progress", action="store_true")
    _add_executor_options(p)
    p.set_defaults(run=_run_project)

    p = subparsers.add_parser("report", help="write the results page and the paper's figures and table")
    p.add_argument("path", help="the project folder")
    p.add_argument("--smoke", action="store_true", help="report the smoke run's results")
    p.set_defaults(run=_report_project)


def _new_project(args) -> int:
    from ..project import new_project

    path = new_project(args.path, title=args.title, authors=_names(args.authors), example=args.example)
    print(f"created {path}: edit {path / 'project.toml'}, then `deepimaging run {path}`")
    return 0


def _run_project(args) -> int:
    from ..project import results_dir, run_project

    results = run_project(
        args.path, jobs=args.jobs, smoke=args.smoke or None, progress=not args.no_progress, **_executor(args)
    )
    folder = results_dir(args.path, args.smoke or None)
    if _submitted(results, folder):
        return 0
    _print_summary(results)
    smoke = " --smoke" if folder.name.endswith("smoke") else ""
    print(f"results in {folder}; now `deepimaging report {args.path}{smoke}`")
    return 0


def _report_project(args) -> int:
    _files_only()
    from ..project import report_project

    written = report_project(args.path, smoke=args.smoke or None)
    print(f"results page: {written['page']}")
    print(f"paper table and figures: {written['table'].parent}")
    return 0
