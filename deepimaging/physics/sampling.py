"""Resolution and pixel layout: binning, pixels of different sizes, sparse sensor masks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number, shape_of
from ._common import MAX_IMAGE_SIDE, SeededNoise, budget_shift, check_image_shape, check_size_matches

__all__ = [
    "Binning",
    "SparseMask",
    "VariablePixelSensor",
    "bin_pixels",
    "foveated_pixel_sizes",
    "variable_pixels",
]


def bin_pixels(images: torch.Tensor, factor: int, resize: bool = True, pad: bool = False) -> torch.Tensor:
    r"""Pixel binning: each ``factor x factor`` block of pixels becomes one large pixel.

    .. math:: y(I, J) = \frac{1}{f^2} \sum_{i, j \in \text{block}(I, J)} x(i, j)

    A large pixel collects the light of the small pixels it covers; dividing
    by ``f^2`` keeps the readout in [0, 1] (the same exposure per unit area),
    so binning preserves the mean. Gradient: exact (binning is linear).

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    factor : int
        Block side in pixels, >= 1; must divide H and W unless ``pad``.
    resize : bool
        True: blow each large pixel back up to ``factor x factor`` (nearest
        neighbour), so the output is (N, C, H, W) and the same CNN can follow.
        False: return the small image (N, C, H / f, W / f).
    pad : bool
        True: repeat the last row/column so H and W become multiples of
        ``factor``; the padding is cropped again when ``resize``.
    """
    check_images(images)
    h, w = images.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"images must have at least one pixel; got shape {tuple(images.shape)}")
    factor = check_int(factor, "factor", 1)
    if factor > min(h, w):
        raise ValueError(f"factor must be at most the images' height and width ({h}x{w}); got {factor}")
    if h % factor or w % factor:
        if not pad:
            raise ValueError(
                f"binning factor must divide the image size {h}x{w}; got {factor} "
                "(pass pad=True to pad the image to a multiple of the factor)"
            )
        images = F.pad(images, (0, -w % factor, 0, -h % factor), mode="replicate")
    small = F.avg_pool2d(images, factor)
    if not resize:
        return small
    return small.repeat_interleave(factor, -2).repeat_interleave(factor, -1)[..., :h, :w]


class Binning(nn.Module):
    """Module form of :func:`bin_pixels` (a sensor with ``factor`` times larger pixels).

    Shape: input (N, C, H, W); output (N, C, H, W) when ``resize`` (default),
    else (N, C, H / factor, W / factor).
    """

    def __init__(self, factor: int, resize: bool = True, pad: bool = False):
        super().__init__()
        self.factor = check_int(factor, "factor", 1)
        self.resize, self.pad = bool(resize), bool(pad)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return bin_pixels(images, self.factor, self.resize, self.pad)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, resize={self.resize}"


def variable_pixels(images: torch.Tensor, pixel_sizes: torch.Tensor) -> torch.Tensor:
    r"""A sensor whose pixels have different sizes across the field.

    .. math:: y = \sum_f \mathbb{1}[P = f] \odot \operatorname{bin}_f(x)

    ``pixel_sizes`` (H, W) holds, at every fine pixel, the side ``f`` of the
    physical pixel covering it; each region of size ``f`` must be made of whole,
    aligned ``f x f`` blocks. Output (N, C, H, W): each large pixel's mean
    intensity fills its block.
    """
    check_images(images)
    _check_pixel_sizes(pixel_sizes, images.shape[-2:])
    return _block_mean(images, *_physical_pixels(pixel_sizes.to(images.device)))


def _physical_pixels(pixel_sizes):
    """(index, inverse_area): the physical pixel each fine pixel belongs to (H*W,), and 1/(its f^2) (B,)."""
    height, width = pixel_sizes.shape
    f = pixel_sizes.long()
    rows = torch.arange(height, device=f.device)[:, None] // f
    cols = torch.arange(width, device=f.device)[None, :] // f
    # A physical pixel is named by its size and its block row and column in the grid of that size.
    key = (f * (height + 1) + rows) * (width + 1) + cols
    _, index = torch.unique(key.flatten(), return_inverse=True)
    area = torch.bincount(index).to(torch.get_default_dtype())
    return index, 1.0 / area


def _block_mean(images: torch.Tensor, index: torch.Tensor, inverse_area: torch.Tensor) -> torch.Tensor:
    """Each fine pixel takes the mean of the physical pixel ``index`` names: sum per pixel, then spread back.

    ``images`` (N, C, H, W); ``index`` (H * W,) physical pixel of each fine pixel (of B);
    ``inverse_area`` (B,) one over the number of fine pixels in each. Autograd differentiates both steps.
    """
    n, c, h, w = images.shape
    sums = images.new_zeros(n, c, len(inverse_area)).index_add(2, index, images.reshape(n, c, h * w))
    means = sums * inverse_area.to(images.dtype)
    return means.index_select(2, index).view(images.shape)


def _check_pixel_sizes(pixel_sizes, size):
    if not isinstance(pixel_sizes, torch.Tensor) or tuple(pixel_sizes.shape) != tuple(size):
        raise ValueError(f"pixel_sizes must be a tensor of shape {tuple(size)}; got {shape_of(pixel_sizes)}")
    for f in pixel_sizes.unique().tolist():
        if f < 1 or f != int(f) or size[0] % f or size[1] % f:
            raise ValueError(
                f"pixel sizes must be integers >= 1 dividing the image size {tuple(size)}; got {f}"
            )
        region = (pixel_sizes == f).float()[None, None]
        coverage = F.avg_pool2d(region, int(f))
        if not torch.all((coverage == 0) | (coverage == 1)):
            raise ValueError(
                f"the pixels of size {int(f)} must cover whole, aligned {int(f)}x{int(f)} blocks"
            )


def foveated_pixel_sizes(height: int, width: int, sizes=(1, 2, 4)) -> torch.Tensor:
    """(H, W) map of pixel sizes: small pixels in the centre, rings of larger ones outwards (like a retina).

    ``sizes`` go from the centre outwards; each must divide the largest, which
    must divide H and W.
    """
    # Bounded like every image side: 2**43 rows would try to allocate terabytes for the map.
    height = check_int(height, "height", 1, MAX_IMAGE_SIDE)
    width = check_int(width, "width", 1, MAX_IMAGE_SIDE)
    sizes = [check_int(s, "sizes", 1, MAX_IMAGE_SIDE) for s in sizes]
    big = max(sizes)
    if any(big % s for s in sizes) or height % big or width % big:
        raise ValueError(
            f"every pixel size must divide the largest, {big}, which must divide the height and width "
            f"{height}x{width}; got sizes {sizes}"
        )
    gy, gx = height // big, width // big
    yy, xx = torch.meshgrid(torch.arange(gy) + 0.5 - gy / 2, torch.arange(gx) + 0.5 - gx / 2, indexing="ij")
    radius = torch.sqrt((yy / (gy / 2)) ** 2 + (xx / (gx / 2)) ** 2) / math.sqrt(2)  # 0 centre, 1 corner
    ring = (radius * len(sizes)).long().clamp(max=len(sizes) - 1)
    coarse = torch.tensor(sizes)[ring]
    return coarse.repeat_interleave(big, 0).repeat_interleave(big, 1)


class VariablePixelSensor(nn.Module):
    """Module form of :func:`variable_pixels`, with the pixel-size map as a buffer.

    Default map: :func:`foveated_pixel_sizes` for ``image_shape`` and ``sizes``.
    Shape: input (N, C, H, W), output the same shape.
    """

    def __init__(self, image_shape: tuple, sizes=(1, 2, 4), pixel_sizes: torch.Tensor | None = None):
        super().__init__()
        _, h, w = check_image_shape(image_shape)
        if pixel_sizes is None:
            pixel_sizes = foveated_pixel_sizes(h, w, sizes)
        _check_pixel_sizes(pixel_sizes, (h, w))
        self.register_buffer("pixel_sizes", pixel_sizes.clone())
        # Checked once here; which physical pixel each fine pixel belongs to is kept, so forward only averages.
        index, inverse_area = _physical_pixels(pixel_sizes)
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("inverse_area", inverse_area, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        check_size_matches(images, *self.pixel_sizes.shape, "VariablePixelSensor")
        return _block_mean(images, self.index, self.inverse_area)


class SparseMask(nn.Module):
    r"""A sparse sensor: keep ``k = round(fraction * H * W)`` pixel positions, learned; zero the rest.

    .. math:: y = m \odot x, \qquad m \in \{0, 1\}^{H \times W}, \ \sum m = k

    Each position has a learnable score ``s``. Two ways to learn a binary mask:

    - ``method="topk"``: ``m`` = the k best scores; gradient by the
      straight-through estimator, through ``sigmoid(s)``
      (``m_hard + (sigmoid(s) - sigmoid(s).detach())``).
    - ``method="bernoulli"``: in training, a relaxed Bernoulli (Concrete /
      Gumbel-sigmoid, Maddison et al. 2017) sample with keep-probabilities
      ``p = sigmoid(s + c)``, the shift ``c`` set so that mean(p) = fraction;
      reparameterisation gradient. In eval mode, the top k scores.

    :meth:`mask` returns the current (H, W) mask for display.

    Parameters
    ----------
    fraction : float
        Share of pixels kept, in (0, 1].
    image_shape : tuple
        (C, H, W); the mask is shared by the channels.
    method : {"topk", "bernoulli"}
    temperature : float
        Temperature of the relaxed Bernoulli (lower: closer to binary).
    seed : int
        Seeds the random initial scores (and the Bernoulli noise).
    """

    def __init__(self, fraction: float, image_shape: tuple, method="topk", temperature=0.5, seed=0):
        super().__init__()
        self.fraction = check_number(fraction, "fraction", 0.0, 1.0, low_open=True)
        c, h, w = check_image_shape(image_shape)
        self.image_shape = (c, h, w)
        self.method = check_choice(method, "method", ("topk", "bernoulli"))
        self.temperature = check_number(temperature, "temperature", 0.0, low_open=True)
        self.k = max(1, round(self.fraction * h * w))
        generator = torch.Generator().manual_seed(check_int(seed, "seed", 0))
        self.scores = nn.Parameter(0.1 * torch.randn(h, w, generator=generator))
        self._noise = SeededNoise(seed)

    def _hard(self) -> torch.Tensor:
        flat = self.scores.detach().flatten()
        hard = torch.zeros_like(flat).scatter_(0, flat.topk(self.k).indices, 1.0)
        return hard.view_as(self.scores)

    def mask(self) -> torch.Tensor:
        """(H, W) binary mask the sensor uses at evaluation: 1 where a pixel is kept."""
        return self._hard()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        check_size_matches(images, *self.image_shape[1:], "SparseMask")
        if self.method == "bernoulli" and self.training:
            logits = self.scores + budget_shift(self.scores, self.fraction)
            u = torch.rand(
                self.scores.shape, generator=self._noise(self.scores.device), device=self.scores.device
            ).clamp(1e-6, 1 - 1e-6)
            m = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)
        else:
            # Straight-through estimator: the value is the hard top-k mask, the gradient that of sigmoid(s).
            soft = torch.sigmoid(self.scores)
            m = self._hard() + (soft - soft.detach())
        return images * m

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}, k={self.k}, method={self.method!r}"
