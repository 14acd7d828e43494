"""What each executor adds to a study point, and how a study's wall time scales with local workers.

1. Overhead per point: one point (``--size`` px, ``--epochs``, ``--n-per-class``), the best of
   ``--repeats`` runs, interleaved:
   - directly, ``run_point`` in this process (the baseline; data already loaded),
   - through ``run_study(executor="local")`` with ``jobs=1`` (resume checks, the results files),
   - through ``run_study(executor="submitit-local", wait=True)``: a fresh Python per point
     (imports, data loading, pickling), which is what a SLURM array task also pays.
   Each into a fresh folder; the overhead is its time minus the direct time.
   Target: the local executor within 10 % of the direct run on a 64x64 point.
2. Scaling: the whole study's wall time with ``jobs=1`` and ``jobs=2`` (local executor).

Times are wall-clock seconds on whatever machine runs it: on a shared or oversubscribed CPU
they mean little, so run it on an idle machine and give the core count with the figures.

    python benchmarks/bench_executors.py                       # 64x64, 4 points
    python benchmarks/bench_executors.py --size 32 --epochs 1  # quicker
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from deepimaging.study import StudyConfig, Sweep, load_data, run_point, run_study


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-per-class", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=2, help="points = 2 values x seeds")
    parser.add_argument("--repeats", type=int, default=3, help="runs per way (the best counts)")
    args = parser.parse_args(argv)

    config = StudyConfig(
        sweeps=[Sweep("quantize", [1, 8])],
        seeds=list(range(args.seeds)),
        size=args.size,
        n_per_class=args.n_per_class,
        epochs=args.epochs,
        parameter="bits",
    )
    n = len(config.points())
    print(f"{n} points, {args.size}x{args.size}, {args.epochs} epochs, {args.n_per_class} images per class")
    print(f"machine: {os.cpu_count()} cores (os.cpu_count), python {sys.version.split()[0]}")

    # Overhead: one point at a time (submitit-local starts every task at once, which would mix
    # parallelism into the comparison), each run into a fresh folder, the best of --repeats.
    single = StudyConfig(**{**config.to_dict(), "sweeps": [Sweep("quantize", [8])], "seeds": [0]})
    load_data(single)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ways = {
            "direct run_point": lambda k: run_point(single, "quantize", 8, 0),
            "local, jobs=1": lambda k: run_study(single, tmp / f"local{k}", progress=False),
            "submitit-local": lambda k: run_study(
                single, tmp / f"submitit{k}", executor="submitit-local", wait=True, progress=False
            ),
        }
        ways["direct run_point"](0)  # warm-up: the first training in a process pays torch's start-up
        best = {name: float("inf") for name in ways}
        for k in range(args.repeats):
            for name, way in ways.items():  # interleaved, so that drift in load hits all alike
                best[name] = min(best[name], timed(way, k))
        direct = best["direct run_point"]
        for name, seconds in best.items():
            extra = seconds - direct
            print(f"{name:18s} {seconds:7.2f} s per point  overhead {extra:+6.2f} s ({extra / direct:+.0%})")
        one = timed(lambda: run_study(config, tmp / "jobs1", jobs=1, progress=False))
        two = timed(lambda: run_study(config, tmp / "jobs2", jobs=2, progress=False))
        print(
            f"{n}-point study wall time: jobs=1 {one:.1f} s, jobs=2 {two:.1f} s (speed-up {one / two:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
