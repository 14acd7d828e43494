"""Filter mosaics: colour filter arrays (Bayer, learned) and exposure (neutral-density) mosaics for HDR.

A colour sensor puts one filter over each pixel; the filters repeat as a
small K x K tile. A pixel at (i, j) behind filter ``t[:, i mod K, j mod K]``
measures :math:`\\sum_c t_c x_c`. Outputs come in two forms:

- ``output="masked"`` (default): (N, C, H, W), channel c holds ``t_c x_c``,
  so the CNN sees which filter each pixel had and can take the same channels
  as the scene (the raw mosaic is the sum over channels);
- ``output="raw"``: (N, 1, H, W), the single-channel readout of the sensor.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number, shape_of
from ._common import MAX_CHANNELS, MAX_IMAGE_SIDE

__all__ = [
    "BAYER_PATTERNS",
    "MAX_EXPOSURE",
    "BayerMosaic",
    "ExposureMosaic",
    "LearnedCFA",
    "bayer_mosaic",
    "bayer_tile",
    "exposure_mosaic",
    "filter_mosaic",
]

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
# Largest relative exposure: 20 stops (a factor of about a million) spans any real HDR mosaic; infinity would
# saturate every pixel (and 0 * inf makes NaN).
MAX_EXPOSURE = 2.0**20
# Smallest softmax temperature: already a hard choice for logits a few 0.01 apart, while a temperature
# such as 1e-300 makes logits / temperature infinite and the soft choice NaN.
MIN_TEMPERATURE = 1e-3
_OUTPUTS = ("masked", "raw")


def _tile_over(tile: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Repeat a (..., K, K) tile over an H x W field (cropping the last partial tile)."""
    k = tile.shape[-1]
    reps = (-(-h // k), -(-w // k))
    return tile.repeat(*([1] * (tile.ndim - 2)), *reps)[..., :h, :w]


def filter_mosaic(images: torch.Tensor, tile: torch.Tensor, output: str = "masked") -> torch.Tensor:
    r"""Put a repeating K x K tile of filters over the pixels.

    .. math:: y_c(i, j) = t_c(i \bmod K,\ j \bmod K)\, x_c(i, j), \qquad
              \text{raw}(i, j) = \sum_c y_c(i, j)

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    tile : torch.Tensor
        (C, K, K) transmissions in [0, 1], one value per channel and tile
        position; each position's transmissions should sum to at most one so the
        raw readout stays in [0, 1].
    output : {"masked", "raw"}
        (N, C, H, W) per-channel readout or (N, 1, H, W) raw mosaic.
    """
    check_images(images)
    check_choice(output, "output", _OUTPUTS)
    if not isinstance(tile, torch.Tensor) or tile.ndim != 3 or tile.shape[-1] != tile.shape[-2]:
        raise ValueError(f"tile must have shape (C, K, K); got {shape_of(tile)}")
    if tile.shape[0] != images.shape[1]:
        raise ValueError(
            f"the mosaic tile has {tile.shape[0]} filter channels but the images have {images.shape[1]} "
            f"channels; the tile must have one row of filters per image channel"
        )
    masked = images * _tile_over(tile.to(images.dtype), *images.shape[-2:])
    return masked if output == "masked" else masked.sum(1, keepdim=True)


def bayer_tile(pattern: str = "RGGB") -> torch.Tensor:
    """(3, 2, 2) one-hot tile of a Bayer colour filter array; ``pattern`` reads the 2 x 2 tile row by row."""
    check_choice(pattern, "pattern", BAYER_PATTERNS)
    tile = torch.zeros(3, 2, 2)
    for position, letter in enumerate(pattern):
        tile["RGB".index(letter), position // 2, position % 2] = 1.0
    return tile


def bayer_mosaic(images: torch.Tensor, pattern: str = "RGGB", output: str = "masked") -> torch.Tensor:
    """Bayer colour filter array (Bayer, 1976): half the pixels green, a quarter red, a quarter blue.

    See :func:`filter_mosaic`; images must be RGB.
    """
    return filter_mosaic(images, bayer_tile(pattern).to(images.device), output)


class BayerMosaic(nn.Module):
    """Module form of :func:`bayer_mosaic`; the tile is a buffer. RGB input; output per ``output``."""

    def __init__(self, pattern: str = "RGGB", output: str = "masked"):
        super().__init__()
        self.output = check_choice(output, "output", _OUTPUTS)
        self.pattern = pattern
        self.register_buffer("tile", bayer_tile(pattern))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return filter_mosaic(images, self.tile, self.output)

    def extra_repr(self) -> str:
        return f"pattern={self.pattern!r}, output={self.output!r}"


class LearnedCFA(nn.Module):
    r"""A learnable K x K colour filter array: each tile position chooses one of the C filters.

    .. math:: t(\cdot, i, j) = \operatorname{softmax}\big(\theta(\cdot, i, j) / \tau\big)

    In training the choice is soft, a softmax over filters at temperature
    ``tau`` (lower it during training with :meth:`anneal` so the soft choice
    approaches a hard one); in eval mode each position takes the arg-max filter,
    a physical one-filter-per-pixel array (Chakrabarti, 2016, "Learning sensor
    multiplexing design through back-propagation"). Gradient: through the
    softmax (a continuous relaxation of the discrete choice).

    Parameters
    ----------
    tile_size : int
        K, the side of the repeating tile.
    channels : int
        C, filters to choose from (the scene's channels).
    temperature : float
        Initial softmax temperature, in [1e-3, 1e3] (:meth:`anneal` stops at 1e-3).
    output : {"masked", "raw"}
    seed : int
        Seeds the small random initial logits.
    """

    def __init__(
        self, tile_size: int = 2, channels: int = 3, temperature: float = 1.0, output="masked", seed=0
    ):
        super().__init__()
        k = check_int(tile_size, "tile_size", 1, MAX_IMAGE_SIDE)
        c = check_int(channels, "channels", 1, MAX_CHANNELS)
        self.output = check_choice(output, "output", _OUTPUTS)
        self.temperature = check_number(temperature, "temperature", MIN_TEMPERATURE, 1e3)
        generator = torch.Generator().manual_seed(check_int(seed, "seed", 0))
        self.logits = nn.Parameter(0.1 * torch.randn(c, k, k, generator=generator))

    def tile(self, hard: bool | None = None) -> torch.Tensor:
        """(C, K, K) filter transmissions: soft in training, one-hot in eval (or as asked)."""
        if hard if hard is not None else not self.training:
            return nn.functional.one_hot(self.logits.argmax(0), self.logits.shape[0]).permute(2, 0, 1).float()
        return torch.softmax(self.logits / self.temperature, dim=0)

    def anneal(self, factor: float = 0.9) -> float:
        """Multiply the temperature by ``factor`` (call once per epoch); returns the new temperature."""
        factor = check_number(factor, "factor", 0.0, 1.0, low_open=True)
        self.temperature = max(self.temperature * factor, MIN_TEMPERATURE)
        return self.temperature

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return filter_mosaic(images, self.tile(), self.output)

    def extra_repr(self) -> str:
        return f"tile_size={self.logits.shape[-1]}, channels={self.logits.shape[0]}, temperature={self.temperature:.3g}"


def exposure_mosaic(images: torch.Tensor, exposures: torch.Tensor) -> torch.Tensor:
    r"""Spatially varying exposure (Nayar and Mitsunaga, 2000): a K x K tile of exposures, then saturation.

    .. math:: y(i, j) = \min\big(1,\ e(i \bmod K,\ j \bmod K)\, x(i, j)\big)

    Neutral-density filters of different densities (or different exposure
    times) over neighbouring pixels: long exposures see dark detail above the
    noise and quantization floor but saturate (full well) in bright regions,
    short ones keep the highlights. A CNN can merge them into a high dynamic
    range. Gradient: exact, zero where a pixel saturates (as in the sensor).

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1], the scene at exposure 1.
    exposures : torch.Tensor
        (K, K) relative exposures > 0, shared by the channels.
    """
    check_images(images)
    if (
        not isinstance(exposures, torch.Tensor)
        or exposures.ndim != 2
        or exposures.shape[0] != exposures.shape[1]
    ):
        raise ValueError(f"exposures must be a square tile of shape (K, K); got {shape_of(exposures)}")
    if exposures.numel() == 0 or not bool(((exposures > 0) & (exposures <= MAX_EXPOSURE)).all()):
        raise ValueError(
            f"exposures must be in (0, {MAX_EXPOSURE:g}]; got {exposures.flatten().tolist()[:9]}"
        )
    exposed = images * _tile_over(exposures.to(images.dtype), *images.shape[-2:])
    return exposed.clamp(max=1.0)  # saturation: the full well


class ExposureMosaic(nn.Module):
    """Module form of :func:`exposure_mosaic`. ``exposures`` (K*K values) fill a K x K tile row by row.

    With ``learnable=True`` the log-exposures are an ``nn.Parameter`` (log keeps
    them positive); otherwise a buffer. Default: exposures 1, 2, 4, 8 (a 2 x 2
    tile spanning three stops).
    """

    def __init__(self, exposures=(1.0, 2.0, 4.0, 8.0), learnable: bool = False):
        super().__init__()
        if isinstance(exposures, torch.Tensor):
            exposures = exposures.flatten().tolist()
        if not isinstance(exposures, (list, tuple)):
            raise TypeError(f"exposures must be a sequence of K*K numbers; got {type(exposures).__name__}")
        values = torch.tensor(
            [check_number(v, "exposures", 0.0, MAX_EXPOSURE, low_open=True) for v in exposures]
        )
        k = int(round(values.numel() ** 0.5))
        if k == 0 or k * k != values.numel():
            raise ValueError(
                f"exposures must fill a square K x K tile (1, 4, 9, ... values); got {values.numel()}"
            )
        log_exposures = values.log().view(k, k)
        if learnable:
            self.log_exposures = nn.Parameter(log_exposures)
        else:
            self.register_buffer("log_exposures", log_exposures)

    @property
    def exposures(self) -> torch.Tensor:
        return self.log_exposures.exp()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return exposure_mosaic(images, self.exposures)
