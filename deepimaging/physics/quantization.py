"""Sensor bit depth: uniform quantization, learned per-pixel discretization, per-pixel bit allocation.

All three round, and rounding has zero gradient almost everywhere. They pass
gradients with the straight-through estimator (Bengio et al., 2013): the
forward pass rounds, the backward pass treats rounding as the identity.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_images, check_int, check_number, shape_of
from ._common import budget_shift, check_image_shape, check_size_matches

__all__ = [
    "BitAllocation",
    "LearnedDiscretization",
    "Quantize",
    "learned_discretization",
    "quantize",
    "quantize_per_pixel",
]

MAX_BITS = 16


class _QuantizeSTE(torch.autograd.Function):
    """``round(x * levels) / levels`` with the straight-through gradient dy/dx = 1 (Bengio et al., 2013).

    The same values as ``round(v).detach() + (v - v.detach())`` divided by ``levels`` (``v - v`` is
    exactly 0), in two operations instead of five, and a backward pass with no operation at all.
    """

    @staticmethod
    def forward(ctx, images, levels):
        return torch.round(images * levels).div_(levels)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def quantize(images: torch.Tensor, bits: int) -> torch.Tensor:
    r"""Uniform quantization of intensities in [0, 1] into ``2**bits`` levels (an ADC).

    .. math:: y = \frac{\operatorname{round}\big(x\,(2^b - 1)\big)}{2^b - 1}

    so the levels are ``0, 1/(2^b-1), ..., 1``. One bit is a threshold detector
    (a single-photon avalanche diode in binary mode): ``y = 1`` where ``x > 1/2``.

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
    return _QuantizeSTE.apply(images, 2**bits - 1)


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
    to the threshold outside it; rounding uses the straight-through estimator.

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
    return _LearnedDiscretization.apply(images, gain, low, high, 2**bits - 1)


_MIN_SPAN = 1e-3


class _LearnedDiscretization(torch.autograd.Function):
    r""":func:`learned_discretization` with its gradients written out: the same values and gradients as

    .. code-block:: python

        values = torch.minimum(torch.maximum(gain * images, low), high)
        span = (high - low).clamp_min(1e-3)
        normalized = ((values - low) / span).clamp(0, 1)
        y = torch.round(normalized * levels) / levels  # rounding straight-through: gradient 1

    but in some 30 operations (kernel launches on a GPU) instead of 60. With ``g`` the gradient of the
    loss with respect to ``y``, ``a = gain * x``, ``r = (v - low) / span`` and the masks
    ``q = [0 <= r <= 1]`` (clamp), ``c = [high - low >= 1e-3]`` (clamp_min), the chain rule gives

    .. math::
        g_v = g\,q / \text{span}, \qquad
        \frac{\partial L}{\partial a} = g_v\, \kappa, \qquad
        \frac{\partial L}{\partial\,\text{high}} = \sum g_v (\eta - c\,r), \qquad
        \frac{\partial L}{\partial\,\text{low}} = -\sum g_v (\eta - c\,r) - \sum g_v \kappa

    where ``κ = (1 + t)(1 + s) / 4`` and ``η = (1 - t) / 2`` with ``s = sign(a - low)`` and
    ``t = sign(high - max(a, low))``: torch.maximum and torch.minimum send half the gradient to each
    side of a tie (``a == low``, e.g. a black pixel with the initial ``low = 0``), and so does this.
    Rounding is straight-through. Sums run over the dimensions that ``low`` and ``high`` broadcast.
    """

    @staticmethod
    def forward(ctx, images, gain, low, high, levels):
        scaled = gain * images
        values = torch.clamp(scaled, low, high)  # = minimum(maximum(scaled, low), high), in one pass
        # The span is kept away from zero so that thresholds that cross during training cannot divide by 0.
        difference = high - low
        span = difference.clamp_min(_MIN_SPAN)
        ratio = (values - low) / span
        normalized = ratio.clamp(0, 1)
        ctx.save_for_backward(images, gain, low, high, scaled, ratio, normalized, difference, span)
        return torch.round(normalized * levels) / levels

    @staticmethod
    def backward(ctx, grad):
        images, gain, low, high, scaled, ratio, normalized, difference, span = ctx.saved_tensors
        need_images, need_gain, need_low, need_high = ctx.needs_input_grad[:4]
        # Straight-through rounding, then the clamp to [0, 1]; a quarter of g_v, so that the products
        # below come out without further scaling.
        grad_quarter = grad / (4 * span) * (normalized == ratio)
        s = torch.sign(scaled - low)
        t = torch.sign(high - torch.maximum(scaled, low))
        plus_t = torch.addcmul(grad_quarter, grad_quarter, t)  # g_v (1 + t) / 4
        grad_scaled = torch.addcmul(plus_t, plus_t, s)  # g_v (1 + t)(1 + s) / 4 = g_v κ
        grad_images = _sum_to(grad_scaled * gain, images.shape) if need_images else None
        grad_gain = _sum_to(grad_scaled * images, gain.shape) if need_gain else None
        grad_low = grad_high = None
        if need_low or need_high:
            # g_v (η - c r) / 2 = g_v/4 (1 - t - 2 c r) = g_v/4 - g_v/4 (t + 2 c r)
            both = torch.addcmul(t, ratio, 2.0 * (difference >= _MIN_SPAN))
            half_high = torch.addcmul(grad_quarter, grad_quarter, both, value=-1)
            if low.shape == high.shape:
                padded = (1,) * (grad_scaled.ndim - low.ndim) + tuple(low.shape)
                sums = torch.stack((half_high, grad_scaled)).sum_to_size((2, *padded)).view(2, *low.shape)
                grad_high = 2 * sums[0]
                grad_low = torch.add(sums[1], sums[0], alpha=2).neg()
            else:
                grad_high = 2 * _sum_to(half_high, high.shape)
                grad_low = torch.add(
                    _sum_to(grad_scaled, low.shape), _sum_to(half_high, low.shape), alpha=2
                ).neg()
        return grad_images, grad_gain, grad_low, grad_high, None


def _sum_to(tensor: torch.Tensor, shape) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape`` (and the leading dimensions that ``shape`` lacks)."""
    shape = tuple(shape)
    return tensor.sum_to_size((1,) * (tensor.ndim - len(shape)) + shape).view(shape)


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
        step = torch.reciprocal(2.0**bits - 1.0)
        ctx.save_for_backward(step)
        return (step * torch.round(images / step)).clamp(0, 1)

    @staticmethod
    def backward(ctx, grad):
        (step,) = ctx.saved_tensors
        n = grad.shape[0]
        fisher = (grad * grad).sum(
            (0, 1)
        )  # (1/N) sum_n (N grad)^2 = N sum_n grad^2, summed over the channels
        # -N fisher Δ² (1 + Δ) ln 2 / 12, with Δ² (1 + Δ) = Δ² + Δ² Δ.
        step_squared = step * step
        grad_bits = fisher * torch.addcmul(step_squared, step_squared, step) * (-n * math.log(2) / 12)
        return grad, None, grad_bits


class _BudgetSigmoid(torch.autograd.Function):
    r"""``b = b_min + span σ(z + c)`` for a shift ``c`` that keeps ``mean(σ(z + c))`` fixed, differentiated implicitly.

    ``c`` comes from :func:`budget_shift` (no gradient). The budget
    ``mean(σ(z + c(z))) = const`` gives ``dc/dz_i = -w_i`` with
    ``w = σ' / Σ σ'``, so with ``u = span σ'(z + c) ⊙ g`` (``g`` the gradient of ``b``):

    .. math:: \frac{\partial L}{\partial z} = u - w \sum_j u_j

    The same values and gradients as ``b_min + span * σ(z + c - Σ w ⊙ (z - z.detach()))`` with ``w``
    computed without gradient, which autograd runs in about twice the operations.
    """

    @staticmethod
    def forward(ctx, logits, shift, min_bits, span):
        probability = torch.sigmoid(logits + shift)
        ctx.save_for_backward(probability)
        ctx.span = span
        return min_bits + span * probability

    @staticmethod
    def backward(ctx, grad):
        (probability,) = ctx.saved_tensors
        slope = probability * (1 - probability)
        direct = torch.ops.aten.sigmoid_backward(grad * ctx.span, probability)
        grad_logits = direct - slope * (direct.sum() / slope.sum().clamp_min(1e-12))
        return grad_logits, None, None, None


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
        ``k`` above, > 0: the learning-rate multiplier of the scores.

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
        self.logit_scale = check_number(logit_scale, "logit_scale", 0.0, low_open=True)
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
        # The shift meets the budget; its implicit gradient, mean(sigmoid(z + c(z))) = fraction gives
        # dc/dz_i = -w_i with w = sigmoid' / sum(sigmoid'), is written out in _BudgetSigmoid.
        return _BudgetSigmoid.apply(logits, budget_shift(logits, fraction), self.min_bits, span)

    @torch.compiler.disable  # the number of extra bits is read back: compiled, each value would be a new graph
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
        check_size_matches(images, *self.image_shape[1:], "BitAllocation")
        bits = self._continuous_bits()
        check_images(images)
        # Whole bits forward (the sensor that is tested), the continuous bits' gradient backward.
        return _SensitivityQuantize.apply(images, self._integer_bits(bits), bits)

    def extra_repr(self) -> str:
        return (
            f"mean_bits={self.mean_bits}, max_bits={self.max_bits}, image_shape={self.image_shape}, "
            f"logit_scale={self.logit_scale}"
        )
