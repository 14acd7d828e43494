"""Helpers shared by the physical layers: shape checks, seeded noise, budget constraints."""

from __future__ import annotations

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


def budget_shift(logits: torch.Tensor, fraction: float, iterations: int = 40) -> torch.Tensor:
    """The scalar s with mean(sigmoid(logits + s)) = fraction, found by bisection (no gradient).

    Adding one shift to every logit keeps the ranking of the pixels and meets a
    budget exactly; the layers call this in every forward pass, so whatever the
    optimizer does to the logits, the budget holds.
    """
    with torch.no_grad():
        bound = float(logits.abs().max()) + 40.0
        low = torch.tensor(-bound, device=logits.device, dtype=logits.dtype)
        high = torch.tensor(bound, device=logits.device, dtype=logits.dtype)
        for _ in range(iterations):
            mid = (low + high) / 2
            too_many = torch.sigmoid(logits + mid).mean() > fraction
            high = torch.where(too_many, mid, high)
            low = torch.where(too_many, low, mid)
        return (low + high) / 2
