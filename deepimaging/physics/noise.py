"""Sensor noise: photon shot noise, read noise, full-well saturation, and a whole ``Sensor``.

Units: an image in [0, 1] is the scene intensity; ``photons`` is the mean
number of photo-electrons a pixel collects at intensity 1 during the exposure.

The noise is exact on every device: counts are drawn with :func:`torch.poisson`
and read noise with :func:`torch.randn`, so one seed gives one law everywhere.
A Poisson draw has no gradient; the layers pass one by the reparameterisation
trick, written as the standard autograd idiom (no hand-written backward).
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_images, check_int, check_number
from ._common import SeededNoise
from .quantization import MAX_BITS, quantize

__all__ = [
    "MIN_PHOTONS",
    "MAX_PHOTONS",
    "ReadNoise",
    "Sensor",
    "ShotNoise",
    "poisson_sample",
    "read_noise",
    "saturate",
    "shot_noise",
]

# Upper bound on photon counts and electron numbers (photons, full well, read noise). Real full wells hold
# 1e3-1e6 electrons; at 1e9 the shot noise is 3e-5 of the signal, below a 14-bit ADC step. Above it the
# counts lose precision in float32 (24-bit mantissa) and ``inf`` would turn every image into NaN.
MAX_PHOTONS = 1e9
# Lower bound on photons and the full well: a millionth of an electron per pixel is darker than any real
# exposure, and far smaller values (1e-210) vanish in float32, so that n / P would be 0 / 0.
MIN_PHOTONS = 1e-6


def poisson_sample(rates: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Draw Poisson counts ``n ~ Poisson(lambda)`` for a tensor of rates ``lambda >= 0`` (no gradient).

    This is :func:`torch.poisson` with its input checked: a negative or
    non-finite rate has no Poisson law, so it is refused rather than turned
    into a meaningless count.

    Parameters
    ----------
    rates : torch.Tensor
        Expected counts, any shape, finite and >= 0.
    generator : torch.Generator, optional
        Same generator state, same counts.

    Returns
    -------
    torch.Tensor
        Whole numbers, same shape and dtype as ``rates``.

    Examples
    --------
    >>> counts = poisson_sample(torch.full((10_000,), 4.0), torch.Generator().manual_seed(0))
    >>> abs(float(counts.mean()) - 4.0) < 0.1
    True
    """
    if not isinstance(rates, torch.Tensor) or not rates.is_floating_point():
        raise TypeError(f"rates must be a floating-point torch.Tensor; got {type(rates).__name__}")
    if rates.numel():
        low, high = float(rates.detach().min()), float(rates.detach().max())
        if not (low >= 0 and high <= MAX_PHOTONS):  # also refuses NaN
            raise ValueError(f"rates must be in [0, {MAX_PHOTONS:g}]; got values in [{low:.4g}, {high:.4g}]")
    return torch.poisson(rates.detach(), generator=generator)


def _electrons(rates: torch.Tensor, sigma, generator) -> torch.Tensor:
    r"""Read-out electrons ``e = n + sigma eps`` for mean counts ``rates``, with a reparameterised gradient.

    .. math:: n \sim \operatorname{Poisson}(\lambda), \qquad e = n + \sigma\varepsilon, \qquad
              \frac{\partial e}{\partial \lambda} = 1 + \frac{e - \lambda}{2 (\lambda + \sigma^2)}

    The gradient is that of the Gaussian reparameterisation ``e = lambda + s z``
    with ``s^2 = lambda + sigma^2`` and ``z = (e - lambda) / s`` held fixed.
    ``sigma`` is a 0-d tensor, or None for shot noise only. Shape: any, kept.
    """
    electrons = torch.poisson(rates.detach(), generator=generator)
    if sigma is None:  # shot noise only: no read-noise draw, so the counts are exactly torch.poisson's
        sigma = 0.0
    else:
        electrons = electrons + sigma * torch.randn(
            rates.shape, generator=generator, dtype=rates.dtype, device=rates.device
        )
    if not rates.requires_grad:
        return electrons
    # Reparameterisation trick: the surrogate lambda + s z equals the sample and carries dz/dlambda = 0;
    # adding (surrogate - surrogate.detach()), exactly 0, gives the sample its gradient. Where the spread
    # is ~0 (no light, no read noise) the clamp passes no gradient to s, so de/dlambda = 1 there.
    spread = (rates + sigma**2).clamp_min(1e-8).sqrt()
    surrogate = rates + spread * ((electrons - rates) / spread).detach()
    return electrons + (surrogate - surrogate.detach())


def shot_noise(
    images: torch.Tensor, photons: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Photon shot noise: Poisson counts of photo-electrons, divided by the mean count at intensity 1.

    .. math:: n \sim \operatorname{Poisson}(\lambda), \quad \lambda = P x, \qquad y = n / P

    so ``E[y] = x`` and ``Var[y] = x / P``: the signal-to-noise ratio grows as
    ``sqrt(P x)``. The output is not clipped (a count can exceed ``P``); see
    :func:`saturate`.

    Gradient (a Poisson draw has none): the value is the Poisson sample; the
    gradient is that of its Gaussian reparameterisation
    :math:`n = \lambda + \sqrt{\lambda}\,\varepsilon` with the standardised
    noise :math:`\varepsilon = (n - \lambda) / \sqrt{\lambda}` held fixed, so
    :math:`\partial n / \partial \lambda = 1 + \varepsilon / (2\sqrt{\lambda})`.

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    photons : float
        Mean photo-electrons at intensity 1, in [``MIN_PHOTONS``, ``MAX_PHOTONS``] (1e-6 to 1e9).
    generator : torch.Generator, optional
        Same generator state, same noise: the counts are exactly
        ``torch.poisson(images * photons, generator)``.

    Returns
    -------
    torch.Tensor
        (N, C, H, W), >= 0.
    """
    check_images(images)
    photons = check_number(photons, "photons", MIN_PHOTONS, MAX_PHOTONS)
    return _electrons(images * photons, None, generator) / photons


def read_noise(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Additive Gaussian read noise of the amplifier and ADC: :math:`y = x + \sigma \varepsilon`, ``eps ~ N(0, 1)``.

    ``sigma`` is in the units of ``images`` (for electrons, see :class:`Sensor`).
    Gradient: reparameterisation, dy/dx = 1. Output not clipped.
    Shape: any tensor in, the same shape out.
    """
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a floating-point torch.Tensor; got {type(images).__name__}")
    sigma = check_number(sigma, "sigma", 0.0, MAX_PHOTONS)
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return images + sigma * noise


def saturate(values: torch.Tensor, full_well: float = 1.0) -> torch.Tensor:
    """Full-well saturation: a pixel holds at most ``full_well`` (and never less than 0): clamp.

    Gradient: 1 inside, 0 where the pixel saturates (the readout no longer depends on the light).
    """
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a torch.Tensor; got {type(values).__name__}")
    full_well = check_number(full_well, "full_well", MIN_PHOTONS, MAX_PHOTONS)
    return values.clamp(0.0, full_well)


class ShotNoise(nn.Module):
    """Shot noise (:func:`shot_noise`) then saturation at 1: a noisy but otherwise ideal sensor.

    ``photons`` is a fixed buffer; ``seed`` (optional) makes the noise sequence repeatable.
    Shape: input (N, C, H, W) in [0, 1], output the same shape in [0, 1].
    """

    def __init__(self, photons: float, seed: int | None = None):
        super().__init__()
        photons = check_number(photons, "photons", MIN_PHOTONS, MAX_PHOTONS)
        self.register_buffer("photons", torch.tensor(photons))
        self._noise = SeededNoise(seed)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        # The buffer is used as a tensor, not read as a number: on a GPU that read would wait for the device.
        electrons = _electrons(images * self.photons, None, self._noise(images.device))
        return (electrons / self.photons).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"photons={float(self.photons):g}"


class ReadNoise(nn.Module):
    """Read noise (:func:`read_noise`) of standard deviation ``sigma`` (fraction of full scale), then clipping to [0, 1]."""

    def __init__(self, sigma: float, seed: int | None = None):
        super().__init__()
        self.sigma = check_number(sigma, "sigma", 0.0, MAX_PHOTONS)
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

    Parameters
    ----------
    photons : float
        In [``MIN_PHOTONS``, ``MAX_PHOTONS``] (1e-6 to 1e9).
    read_noise : float
        Read noise in electrons (rms), >= 0; a few electrons for a CMOS sensor.
    full_well : float, optional
        Well capacity in electrons, in [``MIN_PHOTONS``, ``MAX_PHOTONS``].
    bits : int
        ADC bit depth, 1 to 16.
    seed : int, optional
        Repeatable noise.

    Shape: input (N, C, H, W) in [0, 1], output the same shape in [0, 1].

    Examples
    --------
    >>> sensor = Sensor(photons=100, read_noise=2.0, bits=8, seed=0)
    >>> y = sensor(torch.full((1, 1, 8, 8), 0.5))
    >>> bool(((y >= 0) & (y <= 1)).all())
    True
    """

    def __init__(self, photons: float, read_noise: float = 2.0, full_well=None, bits: int = 8, seed=None):
        super().__init__()
        photons = check_number(photons, "photons", MIN_PHOTONS, MAX_PHOTONS)
        if full_well is not None:
            full_well = check_number(full_well, "full_well", MIN_PHOTONS, MAX_PHOTONS)
        self.register_buffer("photons", torch.tensor(photons))
        self.register_buffer(
            "read_noise", torch.tensor(check_number(read_noise, "read_noise", 0.0, MAX_PHOTONS))
        )
        self.register_buffer("full_well", torch.tensor(photons if full_well is None else full_well))
        self.bits = check_int(bits, "bits", 1, MAX_BITS)
        self._noise = SeededNoise(seed)

    def analog(self, images: torch.Tensor) -> torch.Tensor:
        """The readout before the ADC: shot noise, read noise and saturation, normalised to [0, 1]."""
        check_images(images)
        electrons = _electrons(images * self.photons, self.read_noise, self._noise(images.device))
        return (electrons / self.full_well).clamp(0.0, 1.0)  # saturation at the full well

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return quantize(self.analog(images), self.bits)

    def extra_repr(self) -> str:
        return (
            f"photons={float(self.photons):g}, read_noise={float(self.read_noise):g}, "
            f"full_well={float(self.full_well):g}, bits={self.bits}"
        )
