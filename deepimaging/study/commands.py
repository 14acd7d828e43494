"""The ``deepimaging demo`` and ``deepimaging study`` sub-commands."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .config import StudyConfig, Sweep
from .engine import _validate_layers, load_data, load_results, print_warnings, run_point, run_study

# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def add_cli(subparsers) -> None:
    """Add the ``demo`` and ``study`` sub-commands to the ``deepimaging`` command."""
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
    demo.set_defaults(run=_run_demo_cli)

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
    study.add_argument("--report", action="store_true", help="also write figures and index.html")
    study.add_argument("--no-progress", action="store_true")
    study.set_defaults(run=_run_study_cli)


def _parse_number(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number; got {text!r}") from None


def _parse_list(text: str, what: str) -> list:
    try:
        return [_parse_number(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise ValueError(
            f"{what} must be comma-separated numbers like 1,2,4,8; got {text!r} ({err})"
        ) from None


def _parse_options(items) -> dict:
    options = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--option must look like KEY=VALUE; got {item!r}")
        key, text = item.split("=", 1)
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text  # a plain string, e.g. kind=gaussian
    return options


def _config_from_args(args) -> StudyConfig:
    config = _config_from_file_or_flags(args)
    if args.save_weights is not None:  # a flag overrides the file: rerun a point with saving on
        config.save_weights = args.save_weights
    return config


def _config_from_file_or_flags(args) -> StudyConfig:
    if args.config:
        data = json.loads(Path(args.config).read_text())
        return StudyConfig.from_dict(data.get("config", data))
    if not args.layer or not args.values:
        raise ValueError("deepimaging study needs --layer and --values (or --config FILE)")
    return StudyConfig(
        sweeps=[Sweep(args.layer, _parse_list(args.values, "--values"), _parse_options(args.option))],
        seeds=_parse_list(args.seeds, "--seeds"),
        dataset=args.dataset,
        dataset_options=_parse_options(args.dataset_option),
        size=args.size,
        n_per_class=args.n_per_class,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        val=args.val,
        patience=args.patience,
        metric=args.metric,
        device=args.device,
        parameter=_parameter_name(args.layer),
    )


def _parameter_name(layer: str) -> str:
    from ..physics import LAYERS

    spec = LAYERS.get(layer)
    return spec.parameter if spec is not None and spec.parameter else layer


def _run_study_cli(args) -> int:
    config = _config_from_args(args)
    points = config.points()
    if args.list_points:
        for k, (name, value, seed) in enumerate(points):
            print(f"{k}\t{name}\t{value}\tseed {seed}")
        return 0
    if args.point is not None:
        if not 0 <= args.point < len(points):
            raise ValueError(f"--point must be in [0, {len(points) - 1}] for this study; got {args.point}")
        train, _, _ = load_data(config)
        _validate_layers(config, train.image_shape)
        record = run_point(config, *points[args.point], out_dir=args.out, progress=not args.no_progress)
        print(
            f"point {args.point} {points[args.point]}: test accuracy {record['accuracy']:.3f}, "
            f"balanced accuracy {record['balanced_accuracy']:.3f} ({record['device']})"
        )
        for text in record["warnings"]:
            print(f"warning: {text}")
        return 0
    results = run_study(config, args.out, jobs=args.jobs, progress=not args.no_progress)
    print(results.metric_note())
    for row in results.summary():
        interval = (
            f" (95% interval {row['ci_low']:.3f} to {row['ci_high']:.3f})"
            if row["ci_low"] is not None
            else ""
        )
        print(
            f"{row['sweep']}={row['value']}: {results.metric_name} {row['mean']:.3f} ± {row['std']:.3f}"
            f"{interval}" + (f"; accuracy {row['accuracy_mean']:.3f}" if row["metric"] != "accuracy" else "")
        )
    print_warnings(results)
    if args.report:
        import matplotlib

        matplotlib.use("Agg")
        from ..report import write_report

        page = write_report(results, args.out)
        print(f"results page: {page}")
    return 0


def _run_demo_cli(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # figures go to files; works without a display
    from ..report import run_demo
    from ..train import smoke_mode

    if args.smoke or smoke_mode():
        # CI sets smoke mode for every command; say so, or a user would take the tiny sweep for the study.
        print(
            "smoke mode: a tiny sweep whose numbers mean nothing (unset CI / DEEPIMAGING_SMOKE for the study)"
        )
    authors = [a.strip() for a in args.authors.split(",")] if args.authors else None
    page = run_demo(
        args.out,
        jobs=args.jobs,
        smoke=args.smoke or None,
        title=args.title,
        authors=authors,
        progress=not args.no_progress,
        dataset=args.dataset,
        dataset_options=_parse_options(args.dataset_option),
        device=args.device,
    )
    print_warnings(load_results(args.out))
    print(f"results page: {page}")
    return 0
