"""What ``deepimaging.train.keep_freed_memory()`` changes: CPU training and prediction, in fresh processes.

Each run is a fresh Python process that trains BasicCNN(3, 4) for one epoch on 4,000 simulated
64 px cells (batch 64), then predicts 8,000 (batch 256), and reports both times and its minor page
faults. Runs alternate between the baseline, glibc's default settings, and a process that first
calls ``keep_freed_memory()``; the best of ``--rounds`` runs of each is compared (same machine,
same run). On macOS and Windows the call does nothing, and so neither does this comparison.

    python benchmarks/bench_memory.py [--rounds 3]
"""

import argparse
import resource
import subprocess
import sys
import time

import torch

from deepimaging.data import simulate_blood_smear
from deepimaging.models import BasicCNN
from deepimaging.train import fit, keep_freed_memory, predict


def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child(keep):
    took = keep_freed_memory() if keep else False
    train = simulate_blood_smear(1000, size=64, seed=0)
    test = simulate_blood_smear(2000, size=64, seed=1)
    torch.manual_seed(0)
    model = BasicCNN(3, 4)
    results = [took]
    for work in (
        lambda: fit(model, train, epochs=1, batch_size=64, progress=False, device="cpu"),
        lambda: predict(model, test, batch_size=256, device="cpu"),
    ):
        before, start = faults(), time.perf_counter()
        work()
        results += [time.perf_counter() - start, faults() - before]
    print(*results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child == "keep")
    print(f"CPU, {torch.get_num_threads()} threads; torch {torch.__version__}")
    best = {mode: [float("inf")] * 4 for mode in ("default", "keep")}
    for round_ in range(args.rounds):
        for mode in ("default", "keep") if round_ % 2 == 0 else ("keep", "default"):
            command = [sys.executable, __file__, "--child", mode]
            took, *numbers = subprocess.run(
                command, check=True, capture_output=True, text=True
            ).stdout.split()
            fit_s, fit_faults, predict_s, predict_faults = map(float, numbers)
            print(f"  {mode:8s} fit {fit_s:.2f} s ({fit_faults:,.0f} page faults), "
                  f"predict {predict_s:.2f} s ({predict_faults:,.0f}); keep_freed_memory() took: {took}")  # fmt: skip
            best[mode] = [
                min(b, v) for b, v in zip(best[mode], (fit_s, fit_faults, predict_s, predict_faults))
            ]
    (fit_d, _, predict_d, _), (fit_k, _, predict_k, _) = best["default"], best["keep"]
    print(f"best of {args.rounds}: fit {fit_d:.2f} s -> {fit_k:.2f} s ({fit_d / fit_k:.2f}x faster), "
          f"predict {predict_d:.2f} s -> {predict_k:.2f} s ({predict_d / predict_k:.2f}x faster)")  # fmt: skip


if __name__ == "__main__":
    main()
