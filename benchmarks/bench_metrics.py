"""Metrics against their oracles, timed in the same run.

1. ROC curve + AUC on 10^6 scores: ``deepimaging.metrics.roc_auc`` (hand-written sort and
   cumulative counts) against ``sklearn.metrics.roc_auc_score``. Target: <= 1.5x scikit-learn.
   Also ``roc_curve`` against ``sklearn.metrics.roc_curve``.
2. SSIM on a batch of 64 x 1 x 256 x 256: ``deepimaging.metrics.ssim`` (one batched torch
   call) against ``skimage.metrics.structural_similarity`` looped over the batch with the same
   settings (Gaussian window, sigma 1.5, population covariance). Target: faster than the loop.

Scores are continuous with some ties (rounded to 1e-4); labels are 30% positive. Each
timing is the best of a few repeats, interleaved so that drift in machine load hits
both alike.

    python benchmarks/bench_metrics.py
"""

import time

import numpy as np
import torch
from skimage.metrics import structural_similarity
from sklearn import metrics as skm

from deepimaging import metrics

REPEATS = 3


def best_time(functions, repeats=REPEATS):
    """Best-of-``repeats`` seconds of each function, calls interleaved."""
    times = [[] for _ in functions]
    results = [None] * len(functions)
    for _ in range(repeats):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            results[i] = function()
            times[i].append(time.perf_counter() - start)
    return [min(t) for t in times], results


def bench_roc():
    rng = np.random.default_rng(0)
    n = 1_000_000
    y = (rng.random(n) < 0.3).astype(np.int64)
    scores = np.round(rng.normal(size=n) + y, 4)
    (ours, theirs), (a, b) = best_time(
        [lambda: metrics.roc_auc(y, scores), lambda: skm.roc_auc_score(y, scores)]
    )
    assert abs(a - b) < 1e-12, (a, b)
    print(f"roc_auc on {n:,} scores: deepimaging {ours * 1e3:.0f} ms, scikit-learn {theirs * 1e3:.0f} ms")
    print(f"roc_auc: {ours / theirs:.2f}x scikit-learn roc_auc_score (target <= 1.5x)")
    (ours, theirs), _ = best_time([lambda: metrics.roc_curve(y, scores), lambda: skm.roc_curve(y, scores)])
    print(
        f"roc_curve: {ours / theirs:.2f}x scikit-learn roc_curve ({ours * 1e3:.0f} ms vs {theirs * 1e3:.0f} ms)"
    )


def bench_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(64, 1, 256, 256, generator=g), 5, 1, 2)
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    x_np, y_np = x.numpy()[:, 0], y.numpy()[:, 0]

    def skimage_loop():
        return [
            structural_similarity(
                a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
            )
            for a, b in zip(x_np, y_np)
        ]

    def ours(a=x, b=y):
        with torch.no_grad():
            values = metrics.ssim(a, b, data_range=1.0)
            if values.is_cuda:
                torch.cuda.synchronize()
            return values

    default_threads = torch.get_num_threads()
    # scikit-image runs on one core: compare like with like first, then with every core torch uses.
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        (t_ours, t_sk), (a, b) = best_time([ours, skimage_loop], repeats=2)
        assert np.allclose(a.numpy(), b, atol=1e-5)
        print(
            f"ssim on 64x1x256x256, {threads} torch thread(s): deepimaging {t_ours:.3f} s, "
            f"scikit-image loop {t_sk:.3f} s"
        )
        print(f"ssim: {t_ours / t_sk:.2f}x scikit-image looped over the batch (target < 1x)")
    torch.set_num_threads(default_threads)
    if torch.cuda.is_available():
        xc, yc = x.cuda(), y.cuda()
        ours(xc, yc)  # warm-up
        (t_gpu, t_sk), (a, b) = best_time([lambda: ours(xc, yc), skimage_loop], repeats=3)
        assert np.allclose(a.cpu().numpy(), b, atol=1e-5)
        print(
            f"ssim on CUDA ({torch.cuda.get_device_name()}): {t_gpu * 1e3:.1f} ms, {t_gpu / t_sk:.3f}x the loop"
        )


if __name__ == "__main__":
    bench_roc()
    bench_ssim()
