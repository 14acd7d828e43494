"""Learned per-pixel bit depth under a budget of bits: :class:`BitAllocation`.

One hand-written ``torch.autograd.Function`` lives here, :class:`_SensitivityQuantize`:
its backward *is* the lesson (a Fisher-information model of what quantization
noise costs the loss), and no forward expression has it as its gradient.
Every other gradient is a standard idiom (straight-through rounding, the
implicit gradient of the budget), named where it is used.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_images, check_int, check_number
from ._common import budget_shift, check_image_shape, check_size_matches, run_eagerly_when_compiled
from .quantization import MAX_BITS

__all__ = ["BitAllocation"]

MAX_LOGIT_SCALE = 1e6


class _SensitivityQuantize(torch.autograd.Function):
    r"""Per-pixel quantization (as :func:`quantize_per_pixel`) with a sensitivity gradient for the bit depths.

    Forward: ``y = Δ round(x / Δ)``, ``Δ = 1 / (2**b - 1)``. Backward: straight-through
    for ``x``; for ``b`` the derivative of the expected loss increase that
    quantization noise of variance ``Δ²/12`` causes, to second order with the
    empirical Fisher information as the curvature (the high-resolution model of
    rate-distortion theory; Gersho & Gray, 1992, ch. 8; Hessian/Fisher-aware
    mixed precision, Dong et al., 2019):

    .. math::
        R = \frac{1}{2N}\sum_{n,c,h,w} \Big(\frac{\partial \ell_n}{\partial x_{nchw}}\Big)^2 \frac{Δ_{hw}^2}{12},
        \qquad \frac{dΔ}{db} = -\ln 2\; Δ (1 + Δ)

    ``grad`` is the gradient of the batch mean, ``∂ℓ_n/∂x = N grad``. Unlike the
    step-size gradient of :func:`quantize_per_pixel` (a first-order term whose
    sign flips from image to image), ``-dR/db`` is positive everywhere and
    largest where the loss is most sensitive, so it is a steady signal.

    ``bits`` (whole bits) set the value; their gradient goes to ``soft_bits``
    (the continuous bit depths: rounding the bit depths is straight-through).
    """

    @staticmethod
    def forward(ctx, images, bits, soft_bits):
        step = 1.0 / (2.0**bits - 1.0)
        ctx.save_for_backward(step)
        return (step * torch.round(images / step)).clamp(0, 1)

    @staticmethod
    def backward(ctx, grad):
        (step,) = ctx.saved_tensors
        n = grad.shape[0]
        # (1/N) sum_n (N grad)^2 = N sum_n grad^2, summed over the images and the channels: (H, W).
        fisher = (grad * grad).sum((0, 1))
        # dR/db = N fisher (2 Δ / 12) dΔ/db = -N fisher Δ² (1 + Δ) ln 2 / 12.
        grad_bits = -n * fisher * step**2 * (1 + step) * math.log(2) / 12
        return grad, None, grad_bits


class BitAllocation(nn.Module):
    r"""Learned per-pixel bit depth under a budget of ``mean_bits`` bits per pixel on average.

    Each pixel has a learnable score ``s`` (H, W). Its (continuous) bit depth is

    .. math:: b = b_{min} + (b_{max} - b_{min})\,\sigma(k\,s + c)

    where the shift ``c`` is found by bisection in every forward pass so that
    ``mean(b) = mean_bits`` exactly: the total number of bits per image is fixed
    and the network can only move bits between pixels. The sensor uses whole
    bits, in training as in eval: the largest-remainder method rounds ``b`` to
    integers that keep the total (when ``mean_bits * H * W`` is a whole number)
    and never exceed ``max_bits``. So training sees the sensor that is tested.
    After training, :meth:`bits_map` shows where the network wants more bits.

    Gradients, and why the map moves in a short training (8 epochs of the study):

    - pixel values: straight-through;
    - bit depths: the sensitivity gradient of :class:`_SensitivityQuantize`: a
      Fisher model of how much the quantization noise of each pixel raises the
      loss (more bits help most where the loss is most sensitive). Rounding of
      the bit depths is straight-through (whole bits forward, continuous back);
    - the shift ``c`` is differentiated implicitly (``dc/dz_i = -\sigma'_i / \sum_j \sigma'_j``),
      so the gradient is projected on the budget: a pixel gets more bits only
      if it needs them *more than the average pixel* (with a detached shift every
      pixel asks for more bits, Adam moves all scores alike and the map stays flat);
    - the scores are scaled by ``logit_scale`` ``k``: with Adam, whose steps are
      about ``lr`` per parameter, this multiplies the scores' learning rate by
      ``k`` (at the network's learning rate, a few 1e-3, a logit would move by a
      fraction of a unit in a few hundred steps).

    At the start all logits are about equal: the layer is the uniform sensor
    ``Quantize(mean_bits)`` when ``mean_bits`` is whole. With the study's
    settings (blood smear, 32 px, budget 2) the map gives about 3 bits to the
    cell in the centre and 1 to the background.

    Parameters
    ----------
    mean_bits : float
        Budget, mean bits per pixel, in [min_bits, max_bits].
    image_shape : tuple
        (C, H, W) of the images; the map is (H, W), shared by the channels.
    max_bits : int
        Largest bit depth of one pixel (1 to 16).
    min_bits : int
        Smallest bit depth of one pixel (>= 1).
    seed : int
        Seeds the small random initial scores that break ties.
    logit_scale : float
        ``k`` above, in [1e-6, 1e6]: the learning-rate multiplier of the scores.

    Shape: input (N, C, H, W) in [0, 1], output the same shape.

    Examples
    --------
    >>> layer = BitAllocation(mean_bits=3, image_shape=(3, 16, 16), max_bits=8)
    >>> round(float(layer.bits_map().mean()), 4)
    3.0
    """

    def __init__(
        self,
        mean_bits: float,
        image_shape: tuple,
        max_bits: int = 8,
        min_bits: int = 1,
        seed=0,
        logit_scale: float = 30.0,
    ):
        super().__init__()
        self.max_bits = check_int(max_bits, "max_bits", 1, MAX_BITS)
        self.min_bits = check_int(min_bits, "min_bits", 1, self.max_bits)
        self.mean_bits = check_number(mean_bits, "mean_bits", self.min_bits, self.max_bits)
        # Bounded so that the initial scores, 0.01 / logit_scale, stay finite, non-zero float32 numbers.
        self.logit_scale = check_number(logit_scale, "logit_scale", 1 / MAX_LOGIT_SCALE, MAX_LOGIT_SCALE)
        c, h, w = check_image_shape(image_shape)
        self.image_shape = (c, h, w)
        generator = torch.Generator().manual_seed(check_int(seed, "seed", 0))
        # Logits of about 0.01 at the start: ties broken, but the layer starts as a uniform sensor.
        self.scores = nn.Parameter(0.01 / self.logit_scale * torch.randn(h, w, generator=generator))

    def _continuous_bits(self) -> torch.Tensor:
        span = self.max_bits - self.min_bits
        if span == 0:
            return torch.full_like(self.scores, float(self.min_bits))
        fraction = (self.mean_bits - self.min_bits) / span
        logits = self.logit_scale * self.scores
        # The c with mean(sigmoid(logits + c)) = fraction, found by bisection (no gradient; see below).
        shift = budget_shift(logits, fraction)
        # Implicit differentiation of the budget mean(sigmoid(z + c(z))) = fraction: dc/dz_i = -w_i with
        # w = sigmoid' / sum(sigmoid'). The term -sum(w (z - z.detach())) is exactly 0 and has that gradient.
        slope = torch.sigmoid(logits + shift).detach()
        slope = slope * (1 - slope)
        weights = slope / slope.sum().clamp_min(1e-12)
        implicit_shift = -(weights * (logits - logits.detach())).sum()
        return self.min_bits + span * torch.sigmoid(logits + shift + implicit_shift)

    @run_eagerly_when_compiled  # the number of extra bits is read back: compiled, each value would be a new graph
    def _integer_bits(self, bits: torch.Tensor) -> torch.Tensor:
        # Largest remainder: floor every pixel, then give the leftover bits to the largest fractions.
        base = bits.detach().floor()
        remainder = (bits.detach() - base).flatten()
        extra = int(round(float(bits.detach().sum() - base.sum())))
        winners = remainder.topk(min(max(extra, 0), remainder.numel())).indices
        base = base.flatten().scatter_(0, winners, 1.0, reduce="add")  # base[winners] += 1 in one operation
        return base.view_as(bits).clamp(self.min_bits, self.max_bits)

    def bits_map(self, integer: bool = True) -> torch.Tensor:
        """(H, W) bits per pixel: the whole bits the sensor uses, or (``integer=False``) the continuous preference."""
        bits = self._continuous_bits().detach()
        return self._integer_bits(bits) if integer else bits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        check_size_matches(images, *self.image_shape[1:], "BitAllocation")
        bits = self._continuous_bits()
        # Whole bits forward (the sensor that is tested), the continuous bits' gradient backward.
        return _SensitivityQuantize.apply(images, self._integer_bits(bits), bits)

    def extra_repr(self) -> str:
        return (
            f"mean_bits={self.mean_bits}, max_bits={self.max_bits}, image_shape={self.image_shape}, "
            f"logit_scale={self.logit_scale}"
        )
