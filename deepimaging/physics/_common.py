"""Helpers shared by the physical layers: shape checks, seeded noise, budget constraints."""

from __future__ import annotations

import functools

import torch

from .._checks import check_int

__all__: list = []


# Largest image side and channel count a layer is built for: a layer with per-pixel parameters allocates
# them at construction, and (3, 10**6, 10**6) would try to allocate terabytes.
MAX_IMAGE_SIDE = 8192
MAX_CHANNELS = 1024


def check_image_shape(image_shape, name: str = "image_shape") -> tuple[int, int, int]:
    """Check a (C, H, W) shape of positive integers (sides at most ``MAX_IMAGE_SIDE``) and return it."""
    if not isinstance(image_shape, (tuple, list, torch.Size)) or len(image_shape) != 3:
        raise ValueError(f"{name} must be (C, H, W), e.g. (3, 64, 64); got {image_shape!r}")
    highs = (MAX_CHANNELS, MAX_IMAGE_SIDE, MAX_IMAGE_SIDE)
    c, h, w = (check_int(v, f"{name}[{i}]", 1, high) for i, (v, high) in enumerate(zip(image_shape, highs)))
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


def run_eagerly_when_compiled(function):
    """The decorator ``torch.compiler.disable``, applied the first time torch.compile traces ``function``.

    torch.compile then calls ``function`` as plain Python instead of tracing it. Applied at import,
    ``torch.compiler.disable`` loads torch.compile's tracer, which adds about 1.5 s to every
    ``import deepimaging`` (every command, notebook kernel and graded homework) although few users
    compile; while tracing, the tracer is loaded anyway.
    """
    disabled = []  # torch.compiler.disable(function), once made

    @functools.wraps(function)
    def call(*args, **kwargs):
        if not torch.compiler.is_compiling():
            return function(*args, **kwargs)
        if not disabled:
            disabled.append(torch.compiler.disable(function))
        return disabled[0](*args, **kwargs)

    return call


@functools.lru_cache(maxsize=64)
def _rounded_to(value: float, dtype) -> float:
    """``value`` rounded to ``dtype`` (computed once per value: a CPU tensor op)."""
    return torch.tensor(value, dtype=dtype).item()


@run_eagerly_when_compiled  # it reads values back to steer the search: compiled, each would be a new graph
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
