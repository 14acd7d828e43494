"""The ``deepimaging`` command: argument parsing and printing only, over plain library functions.

Every sub-command parses its arguments, calls one function of the library and
prints what it returned:

==============  ===============================================
``demo``        :func:`deepimaging.project.run_demo`
``study``       :func:`deepimaging.study.run_study` (``--point K``: :func:`deepimaging.study.run_point_number`)
``new-project`` :func:`deepimaging.project.new_project`
``run``         :func:`deepimaging.project.run_project`
``report``      :func:`deepimaging.project.report_project`
``status``      :func:`deepimaging.study.study_status`
==============  ===============================================

A user's mistake (a bad value, a missing file, Ctrl-C) ends in one line on
stderr and a non-zero exit status, never in a Python traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

# Errors that a user's input causes (bad values, missing or unreadable files, a full disk): one line each.
# Anything else is a bug in deepimaging, and its traceback is what a bug report needs.
USER_ERRORS = (ValueError, TypeError, OverflowError, OSError)


def build_parser() -> argparse.ArgumentParser:
    """The ``deepimaging`` argument parser with all its sub-commands."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="deepimaging",
        description="Physical layers in front of CNNs: run the worked study, sweep a layer, run a class project.",
    )
    parser.add_argument("--version", action="version", version=f"deepimaging {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(subparsers)
    _add_study(subparsers)
    _add_project(subparsers)
    _add_status(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command; return its exit status (0 success, 2 a user error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        from .train import keep_freed_memory

        keep_freed_memory()  # Linux: reuse the activations' memory between batches (faster training)
        return args.run(args) or 0
    except KeyboardInterrupt:
        # Ctrl-C is a user's choice, not a crash; finished points and files are kept (they are atomic).
        print(f"deepimaging {args.command}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        # Bad input from the user: one clear line, not a stack trace from deep inside.
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"deepimaging {args.command}: error: {message}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------------------


def _add_demo(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the worked bit-depth study on the built-in data and write a results web page",
        description="Sensor bit depth vs accuracy on the simulated blood smear: results.json/CSV, "
        "figures (PNG + PDF) and index.html in the output folder. Rerunning resumes.",
    )
    demo.add_argument("--out", default="deepimaging-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel points")
    demo.add_argument("--smoke", action="store_true", help="a tiny, fast version (CI)")
    demo.add_argument("--title", default=None, help="page title")
    demo.add_argument("--authors", default=None, help="comma-separated author names")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    demo.add_argument("--dataset", default="blood_smear", help="dataset name (default: %(default)s)")
    demo.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option (repeatable)",
    )
    demo.set_defaults(run=_demo)


def _demo(args) -> int:
    _files_only()
    from .project import run_demo
    from .train import smoke_mode

    if args.smoke or smoke_mode():
        # CI sets smoke mode for every command; say so, or a user would take the tiny sweep for the study.
        print(
            "smoke mode: a tiny sweep whose numbers mean nothing (unset CI / DEEPIMAGING_SMOKE for the study)"
        )
    page = run_demo(
        args.out,
        jobs=args.jobs,
        smoke=args.smoke or None,
        title=args.title,
        authors=_names(args.authors),
        progress=not args.no_progress,
        dataset=args.dataset,
        dataset_options=_parse_options(args.dataset_option, "--dataset-option"),
        device=args.device,
    )
    from .study import load_results

    _print_warnings(load_results(page.parent))
    print(f"results page: {page}")
    return 0


# ---------------------------------------------------------------------------------------------------------
# study
# ---------------------------------------------------------------------------------------------------------


def _add_study(subparsers) -> None:
    study = subparsers.add_parser(
        "study",
        help="sweep one physical layer's parameter and train a CNN per value and seed",
        description="Example: deepimaging study --layer binning --values 1,2,4,8 --seeds 0,1,2 --out binning",
    )
    study.add_argument("--layer", help="physical layer name (deepimaging.physics.LAYERS)")
    study.add_argument("--values", help="comma-separated parameter values, e.g. 1,2,4,8")
    study.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="layer option (repeatable)"
    )
    study.add_argument("--config", help="a study configuration as JSON (e.g. another folder's study.json)")
    study.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    study.add_argument("--dataset", default="blood_smear", help="dataset name (default: %(default)s)")
    study.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option (repeatable)",
    )
    study.add_argument("--size", type=int, default=32)
    study.add_argument("--n-per-class", type=int, default=300)
    study.add_argument("--epochs", type=int, default=8)
    study.add_argument("--lr", type=float, default=3e-3)
    study.add_argument("--batch-size", type=int, default=64)
    study.add_argument("--val", type=float, default=0.15, help="validation fraction (default: %(default)s)")
    study.add_argument(
        "--patience", type=int, default=None, help="early stopping after N epochs without progress"
    )
    study.add_argument(
        "--metric",
        default="auto",
        help="metric of plots and tables: auto, accuracy, balanced_accuracy, macro_f1 or macro_auc",
    )
    study.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    study.add_argument("--out", required=True, help="output folder (rerun to resume)")
    study.add_argument("--jobs", type=int, default=1, help="parallel points")
    study.add_argument(
        "--point",
        type=int,
        default=None,
        help="run only point number K (0-based; e.g. $SLURM_ARRAY_TASK_ID) and exit",
    )
    study.add_argument(
        "--save-weights",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep each point's trained network beside its record (default: on, or as in --config)",
    )
    study.add_argument("--list-points", action="store_true", help="print the numbered points and exit")
    _add_executor_options(study)
    study.add_argument("--report", action="store_true", help="also write figures and index.html")
    study.add_argument("--no-progress", action="store_true")
    study.set_defaults(run=_study)


def _study(args) -> int:
    from .study import run_point_number, run_study

    config = _study_config(args)
    points = config.points()
    if args.list_points:
        for k, (name, value, seed) in enumerate(points):
            print(f"{k}\t{name}\t{value}\tseed {seed}")
        return 0
    if args.point is not None:
        if not 0 <= args.point < len(points):
            raise ValueError(f"--point must be in [0, {len(points) - 1}] for this study; got {args.point}")
        key, record = run_point_number(config, args.point, args.out, progress=not args.no_progress)
        print(
            f"point {args.point} {key}: test accuracy {record['accuracy']:.3f}, "
            f"balanced accuracy {record['balanced_accuracy']:.3f} ({record['device']})"
        )
        for text in record["warnings"]:
            print(f"warning: {text}")
        return 0
    results = run_study(config, args.out, jobs=args.jobs, progress=not args.no_progress, **_executor(args))
    if _submitted(results, args.out):
        return 0
    _print_summary(results)
    if args.report:
        _files_only()
        from .report import write_report

        print(f"results page: {write_report(results, args.out)}")
    return 0


def _study_config(args):
    config = _study_config_from_file_or_flags(args)
    if args.save_weights is not None:  # a flag overrides the file: rerun a point with saving on
        config.save_weights = args.save_weights
    return config


def _study_config_from_file_or_flags(args):
    from .physics import LAYERS
    from .study import StudyConfig, Sweep, load_config

    if args.config:
        return load_config(args.config)
    if not args.layer or not args.values:
        raise ValueError("deepimaging study needs --layer and --values (or --config FILE)")
    spec = LAYERS.get(args.layer)
    return StudyConfig(
        sweeps=[
            Sweep(args.layer, _parse_list(args.values, "--values"), _parse_options(args.option, "--option"))
        ],
        seeds=_parse_list(args.seeds, "--seeds"),
        dataset=args.dataset,
        dataset_options=_parse_options(args.dataset_option, "--dataset-option"),
        size=args.size,
        n_per_class=args.n_per_class,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        val=args.val,
        patience=args.patience,
        metric=args.metric,
        device=args.device,
        parameter=spec.parameter if spec is not None and spec.parameter else args.layer,
    )


# ---------------------------------------------------------------------------------------------------------
# new-project, run, report
# ---------------------------------------------------------------------------------------------------------


def _add_project(subparsers) -> None:
    from .project import BCCD_EXAMPLES, EXAMPLES

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
    from .project import new_project

    path = new_project(args.path, title=args.title, authors=_names(args.authors), example=args.example)
    print(f"created {path}: edit {path / 'project.toml'}, then `deepimaging run {path}`")
    return 0


def _run_project(args) -> int:
    from .project import results_dir, run_project

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
    from .project import report_project

    written = report_project(args.path, smoke=args.smoke or None)
    print(f"results page: {written['page']}")
    print(f"paper table and figures: {written['table'].parent}")
    return 0


# ---------------------------------------------------------------------------------------------------------
# Executors (study, run) and status
# ---------------------------------------------------------------------------------------------------------


def _add_executor_options(parser) -> None:
    from .study import EXECUTORS

    group = parser.add_argument_group("where the points run (see `deepimaging status`)")
    group.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: this machine (--jobs); slurm: one SLURM array job (submitit); "
        "submitit-local: submitit's processes on this machine (default: %(default)s)",
    )
    group.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    group.add_argument(
        "--time", type=int, default=60, help="time limit per point, minutes (default: %(default)s)"
    )
    group.add_argument("--cpus", type=int, default=1, help="CPU cores per point (default: %(default)s)")
    group.add_argument("--gpus", type=int, default=0, help="GPUs per point (default: %(default)s)")
    group.add_argument("--mem", type=float, default=4, help="memory per point, GB (default: %(default)s)")
    group.add_argument("--max-parallel", type=int, default=None, help="at most N points at once")
    group.add_argument("--wait", action="store_true", help="wait for the jobs, then print the summary")


def _executor(args) -> dict:
    """The executor keyword arguments of run_study; the submitit-only ones only for those executors."""
    if args.executor == "local":
        # A SLURM option with the local executor is a forgotten --executor; silently ignoring it would
        # train on the login node instead of submitting.
        given = [
            f"--{name.replace('_', '-')}"
            for name, default in (("partition", None), ("time", 60), ("cpus", 1), ("gpus", 0), ("mem", 4))
            + (("max_parallel", None), ("wait", False))
            if getattr(args, name) != default
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} apply to --executor slurm or submitit-local, not to the default "
                "--executor local (which uses --jobs)"
            )
        return {}
    return {
        "executor": args.executor,
        "partition": args.partition,
        "time_min": args.time,
        "cpus": args.cpus,
        "gpus": args.gpus,
        "mem_gb": args.mem,
        "max_parallel": args.max_parallel,
        "wait": args.wait,
    }


def _submitted(results, folder) -> bool:
    """Print how to follow a submission that did not wait; True when ``results`` is one."""
    from .study import Submission

    if not isinstance(results, Submission):
        return False
    print(f"follow it with `deepimaging status {folder}`; rerun this command to resubmit failed points")
    return True


def _add_status(subparsers) -> None:
    p = subparsers.add_parser(
        "status", help="which points of a study folder are done, running, failed, missing"
    )
    p.add_argument("path", help="the study folder (the --out of deepimaging study, or a project's results/)")
    p.set_defaults(run=_status)


def _status(args) -> int:
    from .study import study_status

    status = study_status(args.path)
    points = status["points"]
    total = len(points)
    for part in ("done", "running", "failed", "missing"):
        print(f"{part}: {len(status[part])} of {total}")
    for part in ("running", "failed", "missing"):
        for k in status[part]:
            name, value, seed = points[k]
            print(f"  {part} point {k}: {name}={value} seed {seed}")
            for line in status["logs"].get(k, "").splitlines():
                print(f"    | {line}")
    return 0


# ---------------------------------------------------------------------------------------------------------
# Parsing and printing
# ---------------------------------------------------------------------------------------------------------


def _files_only() -> None:
    import matplotlib

    matplotlib.use("Agg")  # figures go to files; works without a display


def _print_summary(results) -> None:
    print(results.metric_note())
    for row in results.summary():
        interval = (
            f" (95% interval {row['ci_low']:.3f} to {row['ci_high']:.3f})"
            if row["ci_low"] is not None
            else ""
        )
        accuracy = f"; accuracy {row['accuracy_mean']:.3f}" if row["metric"] != "accuracy" else ""
        print(
            f"{row['sweep']}={row['value']}: {results.metric_name} {row['mean']:.3f} ± {row['std']:.3f}"
            f"{interval}{accuracy}"
        )
    _print_warnings(results)


def _print_warnings(results) -> None:
    """One line per point whose record carries warnings (numbers that should not be trusted)."""
    for p in results.points:
        if p.get("warnings"):
            print(f"warning: {p['sweep']}={p['value']} seed {p['seed']}: {'; '.join(p['warnings'])}")


def _names(text):
    return [a.strip() for a in text.split(",")] if text else None


def _parse_number(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected a number; got {text!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number; got {text!r}")
    return number


def _parse_list(text: str, what: str) -> list:
    try:
        return [_parse_number(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise ValueError(
            f"{what} must be comma-separated numbers like 1,2,4,8; got {text!r} ({err})"
        ) from None


def _parse_options(items, what: str = "--option") -> dict:
    options = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{what} must look like KEY=VALUE; got {item!r}")
        key, text = item.split("=", 1)
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text  # a plain string, e.g. kind=gaussian
    return options


if __name__ == "__main__":
    sys.exit(main())
