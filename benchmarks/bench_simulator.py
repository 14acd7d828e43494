"""Images per second of the simulated blood smear, against the 2,000 images/s target.

python benchmarks/bench_simulator.py
"""

import time

import torch

from deepimaging.data import simulate_blood_smear, simulate_smear_field

TARGET = 2000


def main():
    print(f"torch threads: {torch.get_num_threads()}")
    simulate_blood_smear(n_per_class=16, size=64)  # warm-up
    for size in (32, 64, 128):
        n = 500 if size <= 64 else 125
        best = min(
            _time(lambda n=n, size=size: simulate_blood_smear(n_per_class=n, size=size)) for _ in range(3)
        )
        rate = 4 * n / best
        print(
            f"{size}x{size}: {rate:,.0f} images/s" + (f" = {rate / TARGET:.2f}x target" if size == 64 else "")
        )
    best = min(_time(lambda: simulate_smear_field(size=512, n_cells=8, seed=0)) for _ in range(3))
    print(f"512x512 field with 8 cells: {best * 1000:.0f} ms")


def _time(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
