"""Helpers shared by the physical layers: shape checks, seeded noise (drawn on all CPU threads), budget constraints."""

from __future__ import annotations

import concurrent.futures
import functools
import os

import torch

from .._checks import check_int

__all__: list = []


def check_image_shape(image_shape, name: str = "image_shape") -> tuple[int, int, int]:
    """Check a (C, H, W) shape of positive integers and return it as a tuple."""
    if not isinstance(image_shape, (tuple, list, torch.Size)) or len(image_shape) != 3:
        raise ValueError(f"{name} must be (C, H, W), e.g. (3, 64, 64); got {image_shape!r}")
    c, h, w = (check_int(v, f"{name}[{i}]", 1) for i, v in enumerate(image_shape))
    return c, h, w


def check_size_matches(images: torch.Tensor, height: int, width: int, layer: str):
    """A layer built for H x W images (a per-pixel map) refuses other sizes."""
    if tuple(images.shape[-2:]) != (height, width):
        raise ValueError(
            f"{layer} was built for images of size {height}x{width} (image_shape); "
            f"got images of size {images.shape[-2]}x{images.shape[-1]}"
        )


class SeededNoise:
    """One ``torch.Generator`` per device, seeded once: the same seed gives the same noise sequence.

    ``seed=None`` draws from PyTorch's global generator (seed it with
    :func:`deepimaging.train.seed_everything`).
    """

    def __init__(self, seed: int | None):
        self.seed = None if seed is None else check_int(seed, "seed", 0)
        self._generators: dict = {}

    def __call__(self, device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]


@functools.lru_cache(maxsize=64)
def _rounded_to(value: float, dtype) -> float:
    """``value`` rounded to ``dtype`` (computed once per value: a CPU tensor op)."""
    return torch.tensor(value, dtype=dtype).item()


@torch.compiler.disable  # it reads values back to steer the search: compiled, each would be a new graph
def budget_shift(
    logits: torch.Tensor, fraction: float, rounds: int = 4, candidates: int = 64
) -> torch.Tensor:
    """The scalar s with mean(sigmoid(logits + s)) = fraction (no gradient).

    Adding one shift to every logit keeps the ranking of the pixels and meets a
    budget exactly; the layers call this in every forward pass, so whatever the
    optimizer does to the logits, the budget holds. The search is a bisection
    that tries ``candidates`` shifts at once per round (a 64-way bisection: 4
    rounds narrow an interval of width ~100 to ~1e-5, in a few vectorised steps
    rather than 40 small ones).
    """
    with torch.no_grad():
        bound = float(logits.detach().abs().max()) + 40.0
        low, high = -bound, bound
        flat = logits.detach().flatten()
        target = _rounded_to(fraction, logits.dtype)  # compared as the device compares: in that dtype
        for _ in range(rounds):
            shifts = torch.linspace(low, high, candidates, device=logits.device, dtype=logits.dtype)
            means = torch.sigmoid(flat[None, :] + shifts[:, None]).mean(1)  # increasing in the shift
            # One device-to-host copy per round (on a GPU each copy waits for the queued work).
            shift_values, mean_values = torch.stack((shifts, means)).tolist()
            above = sum(m < target for m in mean_values)  # shifts[:above] give too few, the rest enough
            i = min(max(above, 1), candidates - 1)
            low, high = shift_values[i - 1], shift_values[i]
        return torch.tensor((low + high) / 2, device=logits.device, dtype=logits.dtype)


# Random draws on the CPU. PyTorch's CPU generator (a Mersenne Twister) draws one number after another on
# one thread (normal: ~3.5 ns a number, Poisson: ~50-70 ns), while the network's step runs on every core;
# in a training step with a noisy sensor the draws took a quarter of the step on 2 cores. Above
# 2 * PARALLEL_CHUNK numbers the draw is split into chunks of PARALLEL_CHUNK numbers, each drawn by its own
# generator seeded from the caller's generator (or PyTorch's global one), and the chunks are drawn on
# torch.get_num_threads() threads. The chunks depend only on the number of values, not on the number of
# threads, so the same seed gives the same numbers on every CPU.
PARALLEL_CHUNK = 1 << 16
_pool: tuple = (None, None, None)  # (process id, workers, executor): a forked child makes its own


def _executor(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    pid, size, executor = _pool
    if pid != os.getpid() or size != workers:
        # A replaced pool is not shut down (another thread may still be using it): its idle threads end
        # when it is garbage-collected.
        executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="deepimaging-draw")
        _pool = (os.getpid(), workers, executor)
    return executor


def drawn_in_chunks(tensor: torch.Tensor) -> bool:
    """Whether random values of ``tensor``'s size and device are drawn in chunks (:func:`draw_in_chunks`)."""
    return tensor.device.type == "cpu" and tensor.numel() >= 2 * PARALLEL_CHUNK


@torch.compiler.disable  # threads and generators: torch.compile runs it as it is, outside its graphs
def draw_in_chunks(numel: int, generator: torch.Generator | None, draw) -> None:
    """Run ``draw(start, stop, generator)`` over [0, numel) in fixed chunks, on all CPU threads.

    Each chunk gets its own CPU generator, seeded from ``generator`` (None: the global generator),
    so the result does not depend on the number of threads. Below 2 chunks, ``draw(0, numel, generator)``
    runs once, on the caller's generator. ``draw`` writes its values itself (into a preallocated tensor).
    """
    chunks = -(-numel // PARALLEL_CHUNK)
    if chunks < 2:
        draw(0, numel, generator)
        return
    seeds = torch.randint(0, 2**62, (chunks,), generator=generator).tolist()

    def run(first: int, step: int):
        for i in range(first, chunks, step):
            stop = min(numel, (i + 1) * PARALLEL_CHUNK)
            draw(i * PARALLEL_CHUNK, stop, torch.Generator().manual_seed(seeds[i]))

    workers = min(torch.get_num_threads(), chunks)
    if workers == 1:
        run(0, 1)
        return
    # The caller's thread draws its share too; PyTorch releases the GIL inside its operators.
    futures = [_executor(workers - 1).submit(run, w, workers) for w in range(1, workers)]
    run(0, workers)
    for future in futures:
        future.result()
