"""Nearest neighbours over 10,000 x 256 features: deepimaging (torch) against scikit-learn brute force.

Every point is a query against all the others (the query left out of its own
result), k = 5, L2. Both sides use the same threads; each is timed a few
times, interleaved, and the best time counts (the least disturbed by other work
on the machine). The ratio is deepimaging's time over scikit-learn's: below 1
is faster.

Run: ``python benchmarks/bench_neighbors.py [--n 10000] [--dim 256] [--repeat 3] [--device cpu]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from deepimaging.interpret import nearest_neighbors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--device", default="cpu", help="where deepimaging's side runs (scikit-learn: always the CPU)"
    )
    args = parser.parse_args()

    features = torch.randn(args.n, args.dim, generator=torch.Generator().manual_seed(0))
    array = features.numpy()
    on_device = features.to(args.device)

    def ours():
        indices = nearest_neighbors(on_device, on_device, args.k, exclude_self=True).indices
        return indices.cpu().numpy()  # .cpu() waits for a GPU to finish

    def sklearn():
        index = NearestNeighbors(n_neighbors=args.k, algorithm="brute").fit(array)
        return index.kneighbors(return_distance=True)[1]  # X=None: each point left out of its own result

    times = {"deepimaging": [], "scikit-learn": []}
    for _ in range(args.repeat):
        for name, run in (("deepimaging", ours), ("scikit-learn", sklearn)):
            start = time.perf_counter()
            result = run()
            times[name].append(time.perf_counter() - start)
            if name == "deepimaging":
                indices = result
    same = np.mean(indices == result)
    best = {name: min(t) for name, t in times.items()}
    print(
        f"{args.n} x {args.dim} features, k={args.k}, L2, device={args.device}, torch threads={torch.get_num_threads()}"
    )
    print(f"deepimaging.nearest_neighbors: {best['deepimaging']:.3f} s (best of {args.repeat})")
    print(
        f"sklearn NearestNeighbors(algorithm='brute'): {best['scikit-learn']:.3f} s (best of {args.repeat})"
    )
    print(f"identical neighbour indices: {same:.4%}")
    print(f"nearest_neighbors: {best['deepimaging'] / best['scikit-learn']:.2f}x scikit-learn brute force")


if __name__ == "__main__":
    main()
