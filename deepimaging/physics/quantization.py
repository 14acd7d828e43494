"""Sensor bit depth: uniform quantization, learned per-pixel discretization, a bit depth per pixel.

All three round, and rounding has zero gradient almost everywhere. They pass
gradients with the straight-through estimator (Bengio et al., 2013): the
forward pass rounds, the backward pass treats rounding as the identity,
written as the idiom ``x + (round(x) - x).detach()``.

Learned bit depth per pixel under a budget is in :mod:`.bit_allocation`.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_images, check_int, shape_of
from ._common import check_image_shape, check_size_matches

__all__ = [
    "LearnedDiscretization",
    "Quantize",
    "learned_discretization",
    "quantize",
    "quantize_per_pixel",
]

MAX_BITS = 16


def _round_straight_through(values: torch.Tensor, levels) -> torch.Tensor:
    """``round(values * levels) / levels`` forward, the identity backward (straight-through)."""
    rounded = torch.round(values * levels) / levels
    # Straight-through estimator: the value is `rounded` (the sum is exact, as |rounded - values| is at most
    # half a step), the gradient that of `values`, dy/dx = 1.
    return values + (rounded - values).detach()


def quantize(images: torch.Tensor, bits: int) -> torch.Tensor:
    r"""Uniform quantization of intensities in [0, 1] into ``2**bits`` levels (an ADC).

    .. math:: y = \frac{\operatorname{round}\big(x\,(2^b - 1)\big)}{2^b - 1}

    so the levels are ``0, 1/(2^b-1), ..., 1``. One bit is a threshold detector
    (a single-photon avalanche diode in binary mode): ``y = 1`` where ``x > 1/2``.

    A value exactly halfway between two levels goes to the even one
    (``torch.round``, like ``numpy.round``: 1 bit maps 0.5 to 0).

    Gradient: straight-through estimator, dy/dx = 1.

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    bits : int
        Bit depth, 1 to 16.

    Returns
    -------
    torch.Tensor
        (N, C, H, W) in [0, 1] with at most ``2**bits`` distinct values.

    Examples
    --------
    >>> quantize(torch.tensor([0.1, 0.4, 0.6, 0.9]).view(1, 1, 1, 4), bits=1).flatten()
    tensor([0., 0., 1., 1.])
    """
    check_images(images)
    bits = check_int(bits, "bits", 1, MAX_BITS)
    return _round_straight_through(images, 2**bits - 1)


class Quantize(nn.Module):
    """Module form of :func:`quantize`: a sensor with ``bits`` of bit depth (a fixed buffer).

    Shape: input (N, C, H, W) in [0, 1], output the same shape.

    Examples
    --------
    >>> Quantize(bits=2)(torch.rand(2, 3, 8, 8)).unique().numel() <= 4
    True
    """

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_int(bits, "bits", 1, MAX_BITS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return quantize(images, self.bits)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def learned_discretization(
    images: torch.Tensor, gain: torch.Tensor, low: torch.Tensor, high: torch.Tensor, bits: int
) -> torch.Tensor:
    r"""Per-pixel gain, a max/min clipping threshold, then quantization (the course's proposal).

    .. math::
        v = \min\big(\max(g \odot x,\ t_{lo}),\ t_{hi}\big), \qquad
        y = \operatorname{quantize}\!\Big(\frac{v - t_{lo}}{t_{hi} - t_{lo}},\ b\Big)

    The gain ``g`` says how strongly each pixel responds (a per-pixel exposure);
    the thresholds choose which intensity range the ``2**b`` levels cover. With
    ``g = 1, t_lo = 0, t_hi = 1`` this is exactly :func:`quantize`.

    Gradient: ``max``/``min`` pass the gradient to ``g * x`` inside the range and
    to the threshold outside it (at a tie, ``g x == t``, half to each, as
    ``torch.maximum`` does); rounding uses the straight-through estimator.

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    gain : torch.Tensor
        Broadcastable to (C, H, W); one weight per pixel.
    low, high : torch.Tensor
        Clipping thresholds, broadcastable to (C, H, W); ``high > low``.
    bits : int
        Bit depth, 1 to 16.
    """
    check_images(images)
    bits = check_int(bits, "bits", 1, MAX_BITS)
    values = torch.minimum(torch.maximum(gain * images, low), high)
    # The span is kept away from zero so that thresholds that cross during training cannot divide by 0.
    span = (high - low).clamp_min(1e-3)
    normalized = ((values - low) / span).clamp(0, 1)
    return _round_straight_through(normalized, 2**bits - 1)


class LearnedDiscretization(nn.Module):
    """Learned per-pixel discretization: a learnable gain per pixel and learnable clip thresholds.

    See :func:`learned_discretization` for the equation. Parameters:
    ``gain`` (C, H, W), initialised to 1; ``low`` and ``high`` (C, 1, 1), one
    threshold pair per channel, initialised to 0 and 1. At initialisation the
    layer equals ``Quantize(bits)``.

    Parameters
    ----------
    bits : int
        Bit depth, 1 to 16 (fixed).
    image_shape : tuple
        (C, H, W) of the images.

    Shape: input (N, C, H, W) in [0, 1], output the same shape.

    Examples
    --------
    >>> layer = LearnedDiscretization(bits=3, image_shape=(3, 8, 8))
    >>> x = torch.rand(2, 3, 8, 8)
    >>> torch.equal(layer(x), quantize(x, 3))
    True
    """

    def __init__(self, bits: int, image_shape: tuple):
        super().__init__()
        self.bits = check_int(bits, "bits", 1, MAX_BITS)
        c, h, w = check_image_shape(image_shape)
        self.image_shape = (c, h, w)
        self.gain = nn.Parameter(torch.ones(c, h, w))
        self.low = nn.Parameter(torch.zeros(c, 1, 1))
        self.high = nn.Parameter(torch.ones(c, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        check_size_matches(images, *self.image_shape[1:], "LearnedDiscretization")
        return learned_discretization(images, self.gain, self.low, self.high, self.bits)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, image_shape={self.image_shape}"


def quantize_per_pixel(images: torch.Tensor, bits_map: torch.Tensor) -> torch.Tensor:
    r"""Quantize each pixel with its own bit depth ``bits_map[h, w]`` (shared by the channels).

    .. math:: \Delta = \frac{1}{2^{b} - 1}, \qquad y = \Delta \operatorname{round}(x / \Delta)

    Bit depths may be fractional during training (a non-integer number of
    levels, a relaxation); use integers for a physical sensor.

    Gradient: straight-through for the pixel value (dy/dx = 1) and the step-size
    gradient of Learned Step Size Quantization, dy/dΔ = round(x/Δ) - x/Δ
    (Esser et al., 2020), which tells each pixel's bit depth whether finer steps
    would help.

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    bits_map : torch.Tensor
        (H, W) bit depths in [1, 16].
    """
    check_images(images)
    if not isinstance(bits_map, torch.Tensor) or bits_map.shape != images.shape[-2:]:
        raise ValueError(
            f"bits_map must be a tensor of shape {tuple(images.shape[-2:])}; got {shape_of(bits_map)}"
        )
    lo, hi = float(bits_map.detach().min()), float(bits_map.detach().max())
    if not (lo >= 1 and hi <= MAX_BITS):
        raise ValueError(f"bits_map must have values in [1, {MAX_BITS}]; got values in [{lo:.4g}, {hi:.4g}]")
    step = 1.0 / (2.0**bits_map - 1.0)
    scaled = images / step
    value = (step * torch.round(scaled)).detach().clamp(0, 1)
    # Gradient surrogate: 1 for x, round(x/step) - x/step for the step (LSQ); it adds exactly 0 to the value.
    surrogate = images + step * (torch.round(scaled) - scaled).detach()
    return value + (surrogate - surrogate.detach())
