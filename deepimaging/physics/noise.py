"""Sensor noise: photon shot noise, read noise, full-well saturation, and a whole ``Sensor``.

Units: an image in [0, 1] is the scene intensity; ``photons`` is the mean
number of photo-electrons a pixel collects at intensity 1 during the exposure.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number
from ._common import SeededNoise
from .quantization import MAX_BITS, _QuantizeSTE

__all__ = ["ReadNoise", "Sensor", "ShotNoise", "poisson_sample", "read_noise", "saturate", "shot_noise"]

SHOT_NOISE_METHODS = ("auto", "exact", "hybrid")
# Below this mean count the "hybrid" sampler draws exact Poisson counts (by inversion, in a number of
# passes that grows with lambda); above it, the skew-corrected normal, whose total-variation distance to the
# Poisson law is 0.0024 at lambda = 10 and falls as ~0.024 / lambda (see poisson_sample).
EXACT_BELOW = 10.0
# The exact draws below EXACT_BELOW invert the Poisson CDF term by term; the counts still running are
# gathered after these steps (fewer elements per pass), and a count stops at the last step (see
# _poisson_by_inversion).
_GATHER_AFTER = (8, 16)
_INVERSION_STEPS = 64


@torch.compiler.disable  # its exact draws have a data-dependent count: torch.compile runs it as it is
def poisson_sample(
    rates: torch.Tensor, generator: torch.Generator | None = None, method: str = "auto"
) -> torch.Tensor:
    r"""Draw Poisson counts ``n ~ Poisson(lambda)`` for a tensor of rates ``lambda >= 0`` (no gradient).

    ``method="exact"`` calls :func:`torch.poisson`. On the CPU it draws one
    value at a time on one thread (~50-100 ns each: 70-150 ms for a batch of
    128 x 3 x 64 x 64, as long as a training step of a small CNN), so
    ``"hybrid"`` keeps an exact draw only where it is cheap and needed, at
    small rates (by vectorised inversion of the distribution function, one
    uniform per count), and uses a vectorised approximation elsewhere:

    .. math::
        n = \begin{cases}
            \operatorname{Poisson}(\lambda) & \lambda < 10 \ \text{(exact)} \\
            \max\!\big(0, \operatorname{round}\big(\lambda + \sqrt{\lambda}\,z + (z^2 - 1)/6\big)\big),
            \ z \sim \mathcal N(0, 1) & \lambda \ge 10
        \end{cases}

    The second line is the normal approximation N(lambda, lambda) with its
    continuity correction (rounding) and the first Cornish-Fisher term, which
    gives it the Poisson skewness 1 / sqrt(lambda). The plain rounded normal is
    off in total variation by ~0.13 / sqrt(lambda) (0.040 at lambda = 10, 0.013
    at 100: the 1 / sqrt(lambda) rate of the central limit theorem); the skew
    term lowers that to about 0.024 / lambda (0.0024 at lambda = 10, 0.0002 at
    100, and below 0.0025 for every lambda >= 10; computed against
    ``scipy.stats.poisson.pmf``). The mean is exact; the variance is
    lambda + 0.14 (rounding and the skew term add 1/12 + 1/18: < 1.4% of
    lambda).

    ``"auto"`` is ``"hybrid"`` on the CPU and ``"exact"`` elsewhere (on a GPU
    ``torch.poisson`` is parallel and cheap).

    Parameters
    ----------
    rates : torch.Tensor
        Expected counts, any shape, >= 0.
    generator : torch.Generator, optional
        Same generator state, same counts.
    method : {"auto", "exact", "hybrid"}

    Returns
    -------
    torch.Tensor
        Whole numbers, same shape and dtype as ``rates``.

    References
    ----------
    Cornish and Fisher (1938), "Moments and cumulants in the specification of
    distributions"; Devroye (1986), "Non-Uniform Random Variate Generation", ch. X.
    """
    check_choice(method, "method", SHOT_NOISE_METHODS)
    rates = rates.detach()
    if not _is_hybrid(method, rates.device):
        return torch.poisson(rates, generator=generator)
    flat = rates.reshape(-1)
    z = _standard_normal(flat, generator)
    # lambda + sqrt(lambda) z + (z^2 - 1) / 6, in place: each pass over the batch costs as much as the arithmetic.
    counts = torch.addcmul(flat, flat.sqrt(), z).addcmul_(z, z, value=1 / 6).sub_(1 / 6)
    counts.round_().clamp_min_(0)
    # Exact draws where the rate is small: gathered by position (index_select / index_copy_ scan the
    # mask once, where indexing with the mask and masked_scatter_ scan it twice, the second time serially).
    small = torch.nonzero(flat < EXACT_BELOW).view(-1)
    exact = _poisson_by_inversion(flat.index_select(0, small), generator)
    return counts.index_copy_(0, small, exact).view(rates.shape)


def _poisson_by_inversion(rates: torch.Tensor, generator) -> torch.Tensor:
    r"""Exact Poisson counts for a 1-d tensor of small rates, by inversion of the distribution function.

    .. math:: n = \#\{k \ge 0 : u > F(k)\}, \qquad
              F(k) = \sum_{j \le k} e^{-\lambda} \lambda^j / j!, \qquad u \sim U[0, 1)

    One uniform per count, the sum carried term by term in float64 as
    ``u - F(k)``. :func:`torch.poisson` multiplies ``lambda + 1`` uniforms
    per count on average, one at a time; this takes ~20 vectorised steps, and
    the counts still running after steps 8 and 16 are gathered so that later
    passes are short (for rates spread evenly below 10: 18%, then 0.3% of
    them). A count stops at 64: the Poisson tail above 64 at rate 10 is
    6e-31, far below the resolution of a float64 ``u``.
    """
    lam = rates.double()
    remaining = torch.rand(lam.shape, generator=generator, dtype=torch.float64, device=lam.device)
    term = torch.exp(-lam)  # P(N = k), from k = 0
    remaining.sub_(term)  # u - F(k): the count is above k while it is > 0
    counts = torch.zeros_like(lam)
    out, positions, start = counts, None, 1
    for stop in (*_GATHER_AFTER, _INVERSION_STEPS):
        for k in range(start, stop + 1):
            running = remaining > 0
            if stop == _INVERSION_STEPS and not running.any():  # the last few counts: stop when they do
                break
            counts.add_(running)
            term.mul_(lam).mul_(1.0 / k)
            remaining.sub_(term)
        start = stop + 1
        if positions is not None:
            out.index_copy_(0, positions, counts)
        running = torch.nonzero(remaining > 0).view(-1)
        if running.numel() == 0:
            break
        positions = running if positions is None else positions.index_select(0, running)
        remaining, term, lam, counts = (t.index_select(0, running) for t in (remaining, term, lam, counts))
    return out.to(rates.dtype)


def shot_noise(
    images: torch.Tensor, photons: float, generator: torch.Generator | None = None, method: str = "auto"
) -> torch.Tensor:
    r"""Photon shot noise: Poisson counts of photo-electrons, divided by the mean count at intensity 1.

    .. math:: n \sim \operatorname{Poisson}(\lambda), \quad \lambda = P x, \qquad y = n / P

    so ``E[y] = x`` and ``Var[y] = x / P``: the signal-to-noise ratio grows as
    ``sqrt(P x)``. The output is not clipped (a count can exceed ``P``); see
    :func:`saturate`.

    Gradient (a Poisson draw has none): the value is the Poisson sample;
    the gradient is that of its Gaussian reparameterisation
    :math:`n = \lambda + \sqrt{\lambda}\,\varepsilon` with the standardised
    noise :math:`\varepsilon = (n - \lambda) / \sqrt{\lambda}` held fixed, so
    :math:`\partial n / \partial \lambda = 1 + \varepsilon / (2\sqrt{\lambda})`.
    (DeepInverse's Poisson noise passes no gradient; this one does.)

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    photons : float
        Mean photo-electrons at intensity 1, > 0.
    generator : torch.Generator, optional
        Same generator state, same noise.
    method : {"auto", "exact", "hybrid"}
        How the counts are drawn, see :func:`poisson_sample`: "exact" always
        uses ``torch.poisson``; "auto" (on the CPU: "hybrid") draws exactly
        below 10 electrons and from a skew-corrected normal above.
    """
    check_images(images)
    photons = check_number(photons, "photons", 0.0, low_open=True)
    check_choice(method, "method", SHOT_NOISE_METHODS)
    return _shot(images * photons, generator, method) / photons


def _is_hybrid(method: str, device) -> bool:
    """Whether ``method`` draws with the hybrid sampler on ``device`` ("auto": on the CPU)."""
    return method == "hybrid" or (method == "auto" and device.type == "cpu")


def _full_scale(electrons: torch.Tensor, full_well) -> torch.Tensor:
    """Electrons over the full well, clamped to [0, 1] (saturation).

    In place when no gradient is kept (in a training step the images reach the layer without one): the
    same operations, on the tensor the sampler has just drawn.
    """
    if electrons.requires_grad:
        return (electrons / full_well).clamp(0.0, 1.0)
    return electrons.div_(full_well).clamp_(0.0, 1.0)


def _shot(mean_electrons: torch.Tensor, generator, method: str) -> torch.Tensor:
    return _electrons(mean_electrons, None, generator, method)


def _electrons(rates: torch.Tensor, read_noise, generator, method: str) -> torch.Tensor:
    """Electrons read out for the mean counts ``rates``: shot noise, plus read noise of ``read_noise``
    electrons rms (a 0-d tensor; None: none), with the gradient of :class:`_Electrons`."""
    if not rates.requires_grad:
        return _sample_electrons(rates, read_noise, generator, method)
    return _Electrons.apply(rates, read_noise, generator, method)


# From this read noise (electrons rms) up, the "hybrid" sampler draws shot and read noise together as
# one continuous variable (see _smooth_electrons).
SMOOTH_READ_NOISE = 0.5


@torch.compiler.disable  # it reads a number to choose the sampler
def _smooth_read_noise(rates: torch.Tensor, read_noise, method: str) -> float:
    """The read noise (electrons rms) when the hybrid sampler draws shot and read noise as one variable,
    else 0. Only the hybrid sampler reads the number: on the CPU, where it waits for no device."""
    if read_noise is None or not _is_hybrid(method, rates.device):
        return 0.0
    sigma = float(read_noise)
    return sigma if sigma >= SMOOTH_READ_NOISE else 0.0


@torch.compiler.disable  # the hybrid draws have a data-dependent count, as in poisson_sample
def _sample_electrons(rates: torch.Tensor, read_noise, generator, method: str, smooth=None) -> torch.Tensor:
    r"""``e = n + sigma eps``, ``n ~ Poisson(rates)``, ``eps ~ N(0, 1)`` (no gradient).

    ``method`` as in :func:`poisson_sample`. With read noise of at least
    ``SMOOTH_READ_NOISE`` electrons the hybrid sampler draws the sum at once
    (:func:`_smooth_electrons`); otherwise the counts, then the read noise.
    ``smooth``: :func:`_smooth_read_noise`, if the caller has it.
    """
    rates = rates.detach()
    if read_noise is None:
        return poisson_sample(rates, generator, method)
    smooth = _smooth_read_noise(rates, read_noise, method) if smooth is None else smooth
    if smooth:
        return _smooth_electrons(rates, smooth, generator)
    counts = poisson_sample(rates, generator, method)
    return torch.addcmul(counts, _standard_normal(rates, generator), read_noise)


def _smooth_electrons(rates: torch.Tensor, sigma: float, generator) -> torch.Tensor:
    r"""Poisson counts plus Gaussian read noise, drawn as one variable where the rate is not small.

    .. math::
        e = \begin{cases}
            n + \sigma z, \ n \sim \operatorname{Poisson}(\lambda) \ \text{(exact)} & \lambda < 10 \\
            \lambda + s z + \dfrac{\lambda}{6 s^2}\,(z^2 - 1), \quad s^2 = \lambda + \sigma^2 & \lambda \ge 10
        \end{cases}
        \qquad z \sim \mathcal N(0, 1)

    The second line is the normal law with the sum's mean ``lambda``, variance
    ``s^2`` and skewness ``lambda / s^3`` (the Poisson's third cumulant is
    ``lambda``), to the first Cornish-Fisher term, as in :func:`poisson_sample`
    but not rounded: read noise of ``sigma >= 0.5`` electrons smooths the
    counts' whole-number lattice away. Against the exact law (the Poisson
    probabilities convolved with the normal one, from ``scipy.stats``), the
    distribution functions differ by at most 6.4e-4 for every
    ``lambda >= 10`` and ``sigma >= 0.5`` (at ``lambda = 10``, ``sigma = 0.5``;
    3.4e-4 at ``sigma = 2``), less than the rounded approximation of the
    counts alone (1.4e-3 at ``lambda = 10``), and each level of the ADC gets
    its probability to within twice that. The plain normal ``N(lambda, s^2)``
    is off by 0.013 at ``lambda = 10``, ``sigma = 2``. (The quadratic folds
    back below ``z = -3 s^3 / lambda <= -9.5``: probability 1e-21.)

    One normal field instead of two: the draws of :func:`torch.randn` are
    serial on the CPU, and the second field was a quarter of the sensor's
    time. Below ``lambda = 10`` the counts are exact (as in
    :func:`poisson_sample`) and the read noise reuses those pixels' ``z``,
    which the second line does not use there.
    """
    flat = rates.reshape(-1)
    z = _standard_normal(flat, generator)
    spread = flat + sigma**2  # s^2
    skew = torch.div(flat, spread)  # 6 times the factor of (z^2 - 1)
    # lambda + z (s + skew z / 6) - skew / 6: the formula above, in three passes over the batch.
    electrons = torch.addcmul(flat, torch.addcmul(spread.sqrt_(), skew, z, value=1 / 6), z)
    electrons.add_(skew, alpha=-1 / 6)
    small = torch.nonzero(flat < EXACT_BELOW).view(-1)
    exact = _poisson_by_inversion(flat.index_select(0, small), generator)
    exact.add_(z.index_select(0, small), alpha=sigma)
    return electrons.index_copy_(0, small, exact).view(rates.shape)


_MIN_SPREAD = 1e-8  # below it the surrogate's clamp passes no gradient to sqrt(spread): the derivative is 1


class _Electrons(torch.autograd.Function):
    r"""Electrons ``e = n + sigma eps`` for the rates ``lambda`` (``sigma`` None: the counts ``n``), with
    the gradient of the reparameterisation of the sum, :math:`e = \lambda + s z`,
    :math:`s^2 = \lambda + \sigma^2`, :math:`z = (e - \lambda) / s` held fixed:

    .. math:: \frac{\partial e}{\partial \lambda} = 1 + \frac{z}{2 s} = 1 + \frac{e - \lambda}{2(\lambda + \sigma^2)}

    Without read noise this is the shot noise's
    :math:`1 + \varepsilon / (2\sqrt{\lambda}) = (n + \lambda) / (2\lambda)`,
    :math:`\varepsilon = (n - \lambda) / \sqrt{\lambda}`. With it, it is that
    gradient averaged over the shot noise the readout cannot tell apart: for
    :math:`n = \lambda + \sqrt{\lambda}\,\varepsilon` and :math:`e = n + \sigma\varepsilon_r`,
    the regression of :math:`\varepsilon` on :math:`e` gives
    :math:`E[\varepsilon \mid e] = \sqrt{\lambda}\,(e - \lambda)/(\lambda + \sigma^2)`,
    so :math:`E[1 + \varepsilon/(2\sqrt{\lambda}) \mid e]` is the formula above:
    the same mean gradient, with less variance. It gives the values and
    gradients of the autograd expression

    .. code-block:: python

        std = (rates + sigma**2).clamp_min(1e-8).sqrt()
        z = ((electrons - rates) / std).detach()
        surrogate = rates + std * z
        electrons + (surrogate - surrogate.detach())

    (where ``rates + sigma**2 <= 1e-8`` the clamp passes no gradient to
    ``std``, so the derivative is 1) without its passes over the batch in
    the forward pass: the forward pass only draws the electrons.
    """

    @staticmethod
    def forward(ctx, rates, read_noise, generator, method):
        smooth = _smooth_read_noise(rates, read_noise, method)
        electrons = _sample_electrons(rates, read_noise, generator, method, smooth)
        ctx.save_for_backward(rates, electrons, read_noise)
        ctx.spread_above_minimum = smooth**2 > _MIN_SPREAD  # then no pixel needs the clamp's case
        return electrons

    @staticmethod
    def backward(ctx, grad):
        rates, electrons, read_noise = ctx.saved_tensors
        spread = rates if read_noise is None else rates + read_noise.square()
        deviation = (electrons - rates).div_(spread)  # z / s
        if not ctx.spread_above_minimum:
            deviation = torch.where(spread > _MIN_SPREAD, deviation, 0.0)
        return torch.addcmul(grad, grad, deviation, value=0.5), None, None, None


def read_noise(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Additive Gaussian read noise of the amplifier and ADC: :math:`y = x + \sigma \varepsilon`, ``eps ~ N(0, 1)``.

    ``sigma`` is in the units of ``images`` (for electrons, see :class:`Sensor`).
    Gradient: reparameterisation, dy/dx = 1. Output not clipped.
    """
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a floating-point torch.Tensor; got {type(images).__name__}")
    sigma = check_number(sigma, "sigma", 0.0)
    return _standard_normal(images, generator).mul_(sigma).add_(images)  # no second temporary batch


def _standard_normal(like: torch.Tensor, generator) -> torch.Tensor:
    """Draws from N(0, 1) in the shape, dtype and device of ``like``."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def saturate(values: torch.Tensor, full_well: float = 1.0) -> torch.Tensor:
    """Full-well saturation: a pixel holds at most ``full_well`` (and never less than 0): clamp.

    Gradient: 1 inside, 0 where the pixel saturates (the readout no longer depends on the light).
    """
    full_well = check_number(full_well, "full_well", 0.0, low_open=True)
    return values.clamp(0.0, full_well)


class ShotNoise(nn.Module):
    """Shot noise (:func:`shot_noise`) then saturation at 1: a noisy but otherwise ideal sensor.

    ``photons`` is a fixed buffer; ``seed`` (optional) makes the noise sequence repeatable;
    ``method`` picks the Poisson sampler (:func:`poisson_sample`).
    Shape: input (N, C, H, W) in [0, 1], output the same shape in [0, 1].
    """

    def __init__(self, photons: float, seed: int | None = None, method: str = "auto"):
        super().__init__()
        self.register_buffer("photons", torch.tensor(check_number(photons, "photons", 0.0, low_open=True)))
        self.method = check_choice(method, "method", SHOT_NOISE_METHODS)
        self._noise = SeededNoise(seed)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        # The buffer is used as a tensor, not read as a number: on a GPU that read would wait for the device.
        electrons = _shot(images * self.photons, self._noise(images.device), self.method)
        return _full_scale(electrons, self.photons)

    def extra_repr(self) -> str:
        return f"photons={float(self.photons):g}, method={self.method!r}"


class ReadNoise(nn.Module):
    """Read noise (:func:`read_noise`) of standard deviation ``sigma`` (fraction of full scale), then clipping to [0, 1]."""

    def __init__(self, sigma: float, seed: int | None = None):
        super().__init__()
        self.sigma = check_number(sigma, "sigma", 0.0)
        self._noise = SeededNoise(seed)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        return saturate(read_noise(images, self.sigma, self._noise(images.device)))


class Sensor(nn.Module):
    r"""A camera sensor in physical order: photons -> shot noise -> read noise -> saturation -> ADC.

    .. math::
        n \sim \operatorname{Poisson}(P x), \quad
        e = n + \sigma_r \varepsilon, \quad
        y = \operatorname{quantize}\!\big(\min(\max(e, 0), F) / F,\ b\big)

    with ``P`` photons at intensity 1, read noise ``sigma_r`` in electrons, full
    well ``F`` electrons (default ``P``: intensity 1 just fills the well) and
    ``b`` bits. Gradients: the reparameterisation of shot plus read noise,
    :math:`\partial e / \partial (P x) = 1 + (e - P x) / (2 (P x + \sigma_r^2))`
    (the shot noise's gradient of :func:`shot_noise`, averaged over what the
    read noise hides), clamp (saturation) and straight-through (quantization).

    On the CPU (``method="auto"`` or ``"hybrid"``) with ``read_noise >= 0.5``,
    shot and read noise are drawn together as one variable with the sum's
    mean, variance and skewness: exact counts below 10 electrons, and within
    6.4e-4 of the exact law's distribution function above.

    Parameters
    ----------
    photons : float
        > 0.
    read_noise : float
        Read noise in electrons (rms), >= 0; a few electrons for a CMOS sensor.
    full_well : float, optional
        Well capacity in electrons, > 0.
    bits : int
        ADC bit depth, 1 to 16.
    seed : int, optional
        Repeatable noise.
    method : {"auto", "exact", "hybrid"}
        Poisson sampler of the shot noise, see :func:`poisson_sample`; "exact"
        draws the counts with ``torch.poisson``, then the read noise.

    Shape: input (N, C, H, W) in [0, 1], output the same shape in [0, 1].

    Examples
    --------
    >>> sensor = Sensor(photons=100, read_noise=2.0, bits=8, seed=0)
    >>> y = sensor(torch.full((1, 1, 8, 8), 0.5))
    >>> bool(((y >= 0) & (y <= 1)).all())
    True
    """

    def __init__(
        self,
        photons: float,
        read_noise: float = 2.0,
        full_well=None,
        bits: int = 8,
        seed=None,
        method: str = "auto",
    ):
        super().__init__()
        photons = check_number(photons, "photons", 0.0, low_open=True)
        full_well = photons if full_well is None else check_number(full_well, "full_well", 0.0, low_open=True)
        self.register_buffer("photons", torch.tensor(photons))
        self.register_buffer("read_noise", torch.tensor(check_number(read_noise, "read_noise", 0.0)))
        self.register_buffer("full_well", torch.tensor(full_well))
        self.bits = check_int(bits, "bits", 1, MAX_BITS)
        self.method = check_choice(method, "method", SHOT_NOISE_METHODS)
        self._noise = SeededNoise(seed)

    def analog(self, images: torch.Tensor) -> torch.Tensor:
        """The readout before the ADC: shot noise, read noise and saturation, normalised to [0, 1]."""
        check_images(images)
        generator = self._noise(images.device)
        # The buffers are used as tensors, not read as numbers: on a GPU each read would wait for the device.
        electrons = _electrons(images * self.photons, self.read_noise, generator, self.method)
        return _full_scale(electrons, self.full_well)  # saturation at the full well, in [0, 1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # analog() checked the images and returns values in [0, 1]: quantize them without a second check.
        analog, levels = self.analog(images), 2**self.bits - 1
        if analog.requires_grad:
            return _QuantizeSTE.apply(analog, levels)
        return analog.mul_(levels).round_().div_(levels)  # _QuantizeSTE's operations, in place

    def extra_repr(self) -> str:
        return (
            f"photons={float(self.photons):g}, read_noise={float(self.read_noise):g}, "
            f"full_well={float(self.full_well):g}, bits={self.bits}, method={self.method!r}"
        )
