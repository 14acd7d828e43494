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
# Below this mean count the "hybrid" sampler draws exact Poisson counts (torch.poisson, whose cost on the
# CPU grows with lambda here); above it, the skew-corrected normal, whose total-variation distance to the
# Poisson law is 0.0024 at lambda = 10 and falls as ~0.024 / lambda (see poisson_sample).
EXACT_BELOW = 10.0


@torch.compiler.disable  # its exact draws have a data-dependent count: torch.compile runs it as it is
def poisson_sample(
    rates: torch.Tensor, generator: torch.Generator | None = None, method: str = "auto"
) -> torch.Tensor:
    r"""Draw Poisson counts ``n ~ Poisson(lambda)`` for a tensor of rates ``lambda >= 0`` (no gradient).

    ``method="exact"`` calls :func:`torch.poisson`. On the CPU it draws one
    value at a time on one thread (~50-100 ns each: 70-150 ms for a batch of
    128 x 3 x 64 x 64, as long as a training step of a small CNN), so
    ``"hybrid"`` keeps the exact draw only where it is cheap and needed, at
    small rates, and uses a vectorised approximation elsewhere:

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
    if method == "exact" or (method == "auto" and rates.device.type != "cpu"):
        return torch.poisson(rates, generator=generator)
    flat = rates.reshape(-1)
    z = _standard_normal(flat, generator)
    # lambda + sqrt(lambda) z + (z^2 - 1) / 6, in place: each pass over the batch costs as much as the arithmetic.
    counts = torch.addcmul(flat, flat.sqrt(), z).addcmul_(z, z, value=1 / 6).sub_(1 / 6)
    counts.round_().clamp_min_(0)
    # Exact draws where the rate is small: gathered by position (index_select / index_copy_ scan the
    # mask once, where indexing with the mask and masked_scatter_ scan it twice, the second time serially).
    small = torch.nonzero(flat < EXACT_BELOW).view(-1)
    exact = torch.poisson(flat.index_select(0, small), generator=generator)
    return counts.index_copy_(0, small, exact).view(rates.shape)


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


def _shot(mean_electrons: torch.Tensor, generator, method: str) -> torch.Tensor:
    if not mean_electrons.requires_grad:
        return poisson_sample(mean_electrons, generator, method)
    return _ShotNoise.apply(mean_electrons, generator, method)


_MIN_RATE = 1e-8  # below it the surrogate's clamp passes no gradient to sqrt(rate): the derivative is 1


class _ShotNoise(torch.autograd.Function):
    r"""Poisson counts ``n`` for the rates ``lambda``, with the gradient of the reparameterisation
    :math:`n = \lambda + \sqrt{\lambda}\,\varepsilon`, :math:`\varepsilon = (n - \lambda)/\sqrt{\lambda}` held fixed:

    .. math:: \frac{\partial n}{\partial \lambda} = 1 + \frac{\varepsilon}{2\sqrt{\lambda}} = \frac{n + \lambda}{2\lambda}

    It gives the values and gradients of the autograd expression

    .. code-block:: python

        std = rates.clamp_min(1e-8).sqrt()
        epsilon = ((counts - rates) / std).detach()
        surrogate = rates + std * epsilon
        counts + (surrogate - surrogate.detach())

    (where ``rates <= 1e-8`` the clamp passes no gradient to ``std``, so the derivative is 1), without its
    eight passes over the batch in the forward pass: the forward pass only draws the counts.
    """

    @staticmethod
    def forward(ctx, rates, generator, method):
        counts = poisson_sample(rates, generator, method)
        ctx.save_for_backward(rates, counts)
        return counts

    @staticmethod
    def backward(ctx, grad):
        rates, counts = ctx.saved_tensors
        slope = torch.where(rates > _MIN_RATE, (counts + rates) / (2 * rates), 1.0)
        return grad * slope, None, None


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
        return saturate(electrons / self.photons)

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
    ``b`` bits. Gradients: see :func:`shot_noise` (Poisson), reparameterisation
    (read noise), clamp (saturation) and straight-through (quantization).

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
        Poisson sampler of the shot noise, see :func:`poisson_sample`.

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
        electrons = _shot(images * self.photons, generator, self.method)
        # + read noise (see read_noise), the buffer as a tensor factor
        electrons = torch.addcmul(electrons, _standard_normal(images, generator), self.read_noise)
        return (electrons / self.full_well).clamp(0.0, 1.0)  # saturation at the full well, in [0, 1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # analog() checked the images and returns values in [0, 1]: quantize them without a second check.
        return _QuantizeSTE.apply(self.analog(images), 2**self.bits - 1)

    def extra_repr(self) -> str:
        return (
            f"photons={float(self.photons):g}, read_noise={float(self.read_noise):g}, "
            f"full_well={float(self.full_well):g}, bits={self.bits}, method={self.method!r}"
        )
