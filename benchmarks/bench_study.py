"""Benchmark of the study engine: time per point, scaling with points and jobs, the physical layer's share.

Run:  python benchmarks/bench_study.py [--quick] [--repeats 2]

Prints, each against a baseline measured in the same run with the same best-of-``--repeats``
(runs interleaved, each study into a fresh folder):

1. time per point of ``run_study`` vs a bare ``fit`` + ``predict`` of the same model (the engine's overhead);
2. a sweep of 2N points vs N points, jobs=1 (linear scaling gives 2.00x);
3. the same points with jobs=2 vs jobs=1 (the speed-up of parallel points; at most the number of free cores);
4. the physical layer's share of a training step: its own forward + backward over a whole step
   (forward + backward + Adam) of ``PhysicalModel(layer, BasicCNN)``, batch 128 of 3x64x64.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

from deepimaging import study
from deepimaging.data import simulate_blood_smear
from deepimaging.models import BasicCNN, PhysicalModel
from deepimaging.physics import make_layer
from deepimaging.study import StudyConfig, Sweep
from deepimaging.train import fit, predict, seed_everything


def config(values, quick):
    return StudyConfig(
        sweeps=[Sweep("quantize", values)],
        seeds=[0],
        size=32,
        n_per_class=60 if quick else 150,
        epochs=2 if quick else 4,
    )


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def best_of(runs, repeats, after=None):
    """Best seconds of each named run over ``repeats`` interleaved rounds (the order rotates each round).

    A run is called with a fresh temporary folder, so that a study never resumes an earlier one;
    ``after()``, if given, runs after each run, outside the timing.
    """
    times = {name: float("inf") for name in runs}
    names = list(runs)
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            with tempfile.TemporaryDirectory() as out:
                times[name] = min(times[name], timed(lambda run=runs[name], out=out: run(out)))
            if after is not None:
                after()
    return times


def bare_point(cfg):
    """The same work as one point, written directly: build, fit, predict."""
    train, test, _ = study.load_data(cfg)
    torch.set_num_threads(1)
    seed_everything(0)
    model = PhysicalModel(make_layer("quantize", 4, train.image_shape), BasicCNN(3, 4))
    fit(model, train, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, device="cpu", progress=False)
    predict(model, test, device="cpu")


def step_time(model, images, labels, repeats):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()

    step()  # warm-up
    return min(timed(step) for _ in range(repeats))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 20 s per repeat)")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs of each side")
    args = parser.parse_args()
    torch.set_num_threads(1)

    # 1. engine overhead per point
    cfg = config([4], args.quick)
    study.load_data(cfg)  # simulate once, outside the timings
    times = best_of(
        {
            "bare": lambda out: bare_point(cfg),
            "engine": lambda out: study.run_study(cfg, out, progress=False),
        },
        args.repeats,
    )
    bare, engine = times["bare"], times["engine"]
    print(
        f"time per point: {engine:.2f} s; run_study: {engine / bare:.2f}x a bare fit+predict ({bare:.2f} s)"
    )

    # 2. scaling with the number of points (jobs=1)
    n = 2 if args.quick else 3
    small, large = config(list(range(1, n + 1)), args.quick), config(list(range(1, 2 * n + 1)), args.quick)
    times = best_of(
        {
            "small": lambda out: study.run_study(small, out, progress=False),
            "large": lambda out: study.run_study(large, out, progress=False),
        },
        args.repeats,
    )
    t_small, t_large = times["small"], times["large"]
    print(
        f"points: {2 * n} points take {t_large / t_small:.2f}x the time of {n} points (linear: 2.00x); "
        f"{t_large / (2 * n):.2f} s per point"
    )

    # 3. scaling with jobs; the start-up of the worker processes (import torch etc.) is paid once per run
    startup = timed(lambda: Parallel(n_jobs=2)(delayed(_import_engine)() for _ in range(2)))
    get_reusable_executor().shutdown(wait=True)  # the next run starts its workers afresh, as a user's would

    times = best_of(
        {
            "one": lambda out: study.run_study(large, out, jobs=1, progress=False),
            "two": lambda out: study.run_study(large, out, jobs=2, progress=False),
        },
        args.repeats,
        after=lambda: get_reusable_executor().shutdown(wait=True),  # every run starts its workers afresh
    )
    t_one, t_two = times["one"], times["two"]
    print(
        f"jobs: --jobs 2 is {t_one / t_two:.2f}x faster than --jobs 1 on {2 * n} points "
        f"({t_two:.1f} s vs {t_one:.1f} s, including {startup:.1f} s to start 2 worker processes)"
    )

    # 4. the physical layer's share of a training step
    data = simulate_blood_smear(32, 64, 0)
    images, labels = data.images[:128], data.labels[:128]
    repeats = 3 if args.quick else 7
    layers = [("quantize", 2), ("learned_discretization", 2), ("bit_allocation", 2), ("binning", 2)]
    models = {"cnn": BasicCNN(3, 4)}
    for name, value in layers:
        seed_everything(0)
        models[name] = PhysicalModel(make_layer(name, value, (3, 64, 64)), BasicCNN(3, 4))
    # Interleaved repeats, best of each: background load hits every model alike. The layer's own
    # forward + backward is timed directly too: a difference of two noisy step times can even go negative.
    best = {name: float("inf") for name in models}
    alone = {name: float("inf") for name, _ in layers}
    for _ in range(repeats):
        for name, model in models.items():
            best[name] = min(best[name], step_time(model, images, labels, 1))
            if name != "cnn":
                alone[name] = min(alone[name], layer_time(model.physics, images))
    for name, value in layers:
        print(
            f"layer share: {name}({value}) forward+backward is {100 * alone[name] / best[name]:.1f}% of a training "
            f"step ({alone[name] * 1e3:.0f} ms of {best[name] * 1e3:.0f} ms; the CNN alone {best['cnn'] * 1e3:.0f} ms; "
            "batch 128 of 3x64x64, 1 thread)"
        )


def layer_time(layer, images):
    """Forward and backward of the physical layer alone (gradient into its parameters and the input)."""
    scene = images.clone().requires_grad_(True)

    def run():
        layer.zero_grad(set_to_none=True)
        layer(scene).sum().backward()

    run()  # warm-up
    return timed(run)


def _import_engine():
    import deepimaging.study  # noqa: F401  (what every worker imports before its first point)

    return True


if __name__ == "__main__":
    main()
