"""What the sub-commands share: where the points run (executor options), parsing values, printing results."""

from __future__ import annotations

import json
import math


def _add_executor_options(parser) -> None:
    from ..study import EXECUTORS

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
    from ..study import Submission

    if not isinstance(results, Submission):
        return False
    print(f"follow it with `deepimaging status {folder}`; rerun this command to resubmit failed points")
    return True


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
