"""The sub-commands over a study folder: ``demo`` (the worked study), ``study`` (a sweep) and ``status``."""

from __future__ import annotations

import argparse
import os

from ._shared import (
    _add_executor_options,
    _executor,
    _files_only,
    _names,
    _parse_list,
    _parse_options,
    _print_summary,
    _print_warnings,
    _submitted,
)


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
    _add_dataset_options(demo)
    demo.set_defaults(run=_demo)


def _add_dataset_options(parser) -> None:
    """``--dataset NAME`` and repeatable ``--dataset-option KEY=VALUE``: what demo and study train on."""
    parser.add_argument("--dataset", default="blood_smear", help="dataset name (default: %(default)s)")
    parser.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option (repeatable)",
    )


def _demo(args) -> int:
    _files_only()
    from ..project import run_demo
    from ..train import smoke_mode

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
    from ..study import load_results

    _print_warnings(load_results(page.parent))
    print(f"results page: {page}")
    return 0


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
    _add_dataset_options(study)
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
    from ..study import run_point_number, run_study

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
        from ..report import write_report

        print(f"results page: {write_report(results, args.out)}")
    return 0


def _study_config(args):
    config = _study_config_from_file_or_flags(args)
    if args.save_weights is not None:  # a flag overrides the file: rerun a point with saving on
        config.save_weights = args.save_weights
    return config


def _study_config_from_file_or_flags(args):
    from ..physics import LAYERS
    from ..study import StudyConfig, Sweep, load_config

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


def _add_status(subparsers) -> None:
    p = subparsers.add_parser(
        "status", help="which points of a study folder are done, running, failed, missing"
    )
    p.add_argument("path", help="the study folder (the --out of deepimaging study, or a project's results/)")
    p.set_defaults(run=_status)


def _status(args) -> int:
    from ..study import study_status

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
