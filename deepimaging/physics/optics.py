"""Optics: point-spread functions (PSFs) and blur by one PSF, fixed or learned.

A lens images a point of the scene onto a small spot, the point-spread
function ``h``; for a shift-invariant system the image is the scene convolved
with it, ``y = h * x``. PSFs here are square, odd-sized, non-negative and sum
to one (a lens does not create or destroy light), so blurred images stay in
[0, 1] and keep their mean. A PSF that changes across the field is in
:mod:`.shift_variant`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number, shape_of

__all__ = [
    "MAX_PSF_SIZE",
    "MIN_WIDTH",
    "Blur",
    "GaussianBlur",
    "LearnedPSF",
    "airy_psf",
    "blur",
    "defocus_psf",
    "gaussian_psf",
]

# When "auto" convolves through the FFT, measured with an earlier bench_physics.py (128 x 3 x 64 x 64,
# forward + backward). On the CPU (4 threads) the FFT was faster at every PSF size from 3 to 31, for fixed
# PSFs (0.5-0.7x the time of conv2d) and far more for learnable ones (conv2d's kernel gradient is slow:
# 0.07-0.5x). On a GPU (H100) cuDNN's direct convolution was faster up to 15 pixels and the FFT at 31.
# See benchmarks/physics_results.md.
FFT_FROM_SIZE_GPU = 25
# Largest PSF side in pixels: larger than any image the course uses (a PSF may not exceed the image), and
# small enough that building one cannot exhaust memory (gaussian_psf(200001, 1) would need 160 GB).
MAX_PSF_SIZE = 1025
# Smallest Gaussian or Airy width in pixels: narrower is a sharp image to float32 precision, and widths
# such as 1e-210 vanish in float32 (0 / 0 in the PSF).
MIN_WIDTH = 1e-3
_ZERO_J1 = 3.8317059702075125  # first zero of the Bessel function J1


def _check_psf_size(size: int) -> int:
    size = check_int(size, "psf size", 1, MAX_PSF_SIZE)
    if size % 2 == 0:
        raise ValueError(f"psf size must be odd (so the PSF has a centre pixel) and >= 1; got {size}")
    return size


def _radius_grid(size: int, supersample: int = 1) -> torch.Tensor:
    """Distance of (sub-)pixel centres from the centre pixel, shape (size, size, s*s)."""
    offsets = (torch.arange(supersample) + 0.5) / supersample - 0.5
    axis = torch.arange(size) - size // 2
    pos = (axis[:, None] + offsets[None, :]).flatten()  # (size * s,)
    r = torch.sqrt(pos[:, None] ** 2 + pos[None, :] ** 2)
    return r.view(size, supersample, size, supersample).permute(0, 2, 1, 3).reshape(size, size, -1)


def gaussian_psf(size: int, sigma: float) -> torch.Tensor:
    r"""Gaussian PSF, a common model of a slightly defocused or aberrated lens.

    .. math:: h(u, v) \propto \exp\!\Big(-\frac{u^2 + v^2}{2\sigma^2}\Big), \qquad \sum h = 1

    Parameters
    ----------
    size : int
        Odd side length in pixels.
    sigma : float
        Standard deviation in pixels, > 0.

    Returns
    -------
    torch.Tensor
        (size, size), non-negative, sums to one.
    """
    size = _check_psf_size(size)
    sigma = check_number(sigma, "sigma", MIN_WIDTH)
    r = _radius_grid(size)[..., 0]
    psf = torch.exp(-0.5 * (r / sigma) ** 2)  # r / sigma first: sigma**2 would overflow for a huge sigma
    return psf / psf.sum()


def defocus_psf(size: int, radius: float) -> torch.Tensor:
    r"""Defocus PSF: a uniform disk (geometric optics), edge pixels weighted by their covered area.

    .. math:: h(u, v) \propto \mathbb{1}\big[\sqrt{u^2 + v^2} \le r\big]

    The coverage of each pixel is estimated on an 8 x 8 sub-pixel grid, so a
    small radius gives a smooth kernel rather than a jagged one. ``radius = 0``
    is a sharp image (a delta).
    """
    size = _check_psf_size(size)
    radius = check_number(radius, "radius", 0.0, (size - 1) / 2 + 0.5)
    psf = (_radius_grid(size, 8) <= radius).float().mean(-1)
    if psf.sum() == 0:  # a disk smaller than the sub-pixel grid (radius < 0.088): a sharp image, a delta
        psf[size // 2, size // 2] = 1.0
    return psf / psf.sum()


def airy_psf(size: int, radius: float) -> torch.Tensor:
    r"""Diffraction-limited PSF of a circular pupil: the Airy pattern.

    .. math:: h(r) \propto \Big(\frac{2 J_1(v)}{v}\Big)^2, \qquad v = 3.8317\,\frac{r}{r_0}

    where :math:`r_0 = 0.61 \lambda / \mathrm{NA}` (the Rayleigh resolution) is
    the radius of the first dark ring, in pixels. Each pixel averages a 4 x 4
    sub-pixel grid.
    """
    size = _check_psf_size(size)
    radius = check_number(radius, "radius", MIN_WIDTH)
    v = _ZERO_J1 * _radius_grid(size, 4) / radius
    safe = torch.where(v == 0, torch.ones_like(v), v)
    intensity = torch.where(v == 0, torch.ones_like(v), (2 * torch.special.bessel_j1(safe) / safe) ** 2)
    psf = intensity.mean(-1)
    return psf / psf.sum()


def blur(images: torch.Tensor, psf: torch.Tensor, method: str = "auto") -> torch.Tensor:
    r"""Convolve images with a PSF: ``y = h * x``, same-size output, mirrored (reflect) borders.

    .. math:: y(i, j) = \sum_{u, v} h(u, v)\, x(i - u, j - v)

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    psf : torch.Tensor
        (k, k) for every channel or (C, k, k) one per channel; k odd and at
        most min(H, W). Should be non-negative and sum to one.
    method : {"auto", "direct", "fft"}
        "direct" uses a depthwise ``conv2d`` (with the kernel flipped: conv2d
        correlates); "fft" multiplies spectra of the padded image. Both give the
        same result; "auto" picks whichever was faster in the benchmark: the
        FFT on the CPU, direct on a GPU below ``FFT_FROM_SIZE_GPU`` pixels.

    Returns
    -------
    torch.Tensor
        (N, C, H, W).
    """
    check_images(images)
    check_choice(method, "method", ("auto", "direct", "fft"))
    n, c, h, w = images.shape
    if not isinstance(psf, torch.Tensor) or psf.ndim not in (2, 3) or psf.shape[-1] != psf.shape[-2]:
        raise ValueError(f"psf must be a square tensor of shape (k, k) or (C, k, k); got {shape_of(psf)}")
    k = _check_psf_size(psf.shape[-1])
    if k > min(h, w):
        raise ValueError(
            f"psf size must be at most the image size {min(h, w)} (images of shape {tuple(images.shape)}); got {k}"
        )
    if psf.ndim == 3 and psf.shape[0] != c:
        raise ValueError(f"psf has {psf.shape[0]} channels but the images have {c}")
    if not bool(torch.isfinite(psf).all()):
        raise ValueError("psf must hold finite numbers; got NaN or infinity")
    kernels = psf.expand(c, k, k) if psf.ndim == 2 else psf
    pad = k // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect") if pad else images
    if not _use_fft(method, k, images.device):
        return F.conv2d(padded, kernels.flip(-2, -1)[:, None].to(images.dtype), groups=c)
    # The kernels in the images' precision, as conv2d has them: a float64 PSF must not turn float32 images
    # into float64 ones through the FFT alone.
    return _fft_convolve(padded, kernels.to(images.dtype), pad)[..., :h, :w]


def _use_fft(method: str, k: int, device) -> bool:
    if method == "auto":
        return device.type == "cpu" or k >= FFT_FROM_SIZE_GPU
    return method == "fft"


def _fast_fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: FFTs of such sizes are fast (68 = 4 x 17 is not)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _fft_convolve(padded: torch.Tensor, kernels: torch.Tensor, pad: int) -> torch.Tensor:
    """Circular convolution of padded images (N, C, Hp, Wp) with kernels (..., k, k) through the FFT.

    Wrap-around only reaches the ``pad`` border, so the valid image starts at
    ``[pad, pad]`` of the result (returned from there on). Kernels broadcast
    against the trailing image dimensions, e.g. (C, k, k) or (C, Z, k, k) with
    the images viewed as (N, C, 1, Hp, Wp).
    """
    if padded.shape[0] == 0:  # the FFT refuses an empty batch: an empty batch in gives an empty batch out
        batch = torch.broadcast_shapes(padded.shape[:-2], kernels.shape[:-2])
        return padded.new_zeros(*batch, padded.shape[-2] - pad, padded.shape[-1] - pad)
    # Zero-padding up to a fast FFT size changes nothing inside the valid region.
    size = tuple(_fast_fft_size(n) for n in padded.shape[-2:])
    k = kernels.shape[-1]
    kernel = kernels.new_zeros(*kernels.shape[:-2], *size)
    kernel[..., :k, :k] = kernels
    kernel = torch.roll(kernel, shifts=(-pad, -pad), dims=(-2, -1))  # centre pixel at the origin
    out = torch.fft.irfft2(torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(kernel), s=size)
    return out[..., pad:, pad:]


class Blur(nn.Module):
    """A lens with a fixed PSF (a buffer): ``y = h * x``. See :func:`blur`.

    Use with :func:`gaussian_psf`, :func:`defocus_psf` or :func:`airy_psf`:

    >>> lens = Blur(airy_psf(9, radius=2.0))
    >>> lens(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
    """

    def __init__(self, psf: torch.Tensor, method: str = "auto"):
        super().__init__()
        if not isinstance(psf, torch.Tensor) or psf.ndim not in (2, 3):
            raise ValueError("psf must be a tensor of shape (k, k) or (C, k, k)")
        self.method = check_choice(method, "method", ("auto", "direct", "fft"))
        self.register_buffer("psf", psf.detach().float().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return blur(images, self.psf, self.method)


class GaussianBlur(Blur):
    """A lens with a fixed Gaussian PSF of width ``sigma`` pixels; ``size`` defaults to 2*ceil(3 sigma)+1."""

    def __init__(self, sigma: float, size: int | None = None, method: str = "auto"):
        largest = (MAX_PSF_SIZE - 1) / 6  # the default size, 2 ceil(3 sigma) + 1, at most MAX_PSF_SIZE
        sigma = check_number(sigma, "sigma", MIN_WIDTH, largest if size is None else None)
        size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
        super().__init__(gaussian_psf(size, sigma), method)
        self.sigma = sigma

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, size={self.psf.shape[-1]}"


class LearnedPSF(nn.Module):
    r"""A learnable PSF, kept non-negative and summing to one by a softmax over its pixels.

    .. math:: h = \operatorname{softmax}(\theta), \qquad y = h * x

    Gradient trick: reparameterisation. The optimizer moves the unconstrained
    logits ``theta`` (an ``nn.Parameter``); the softmax maps any logits to a
    valid PSF, so no projection step is needed. Initialised to a Gaussian of
    width ``init_sigma`` (default size / 6).

    Parameters
    ----------
    size : int
        Odd side length in pixels, at most the image size.
    init_sigma : float, optional
    method : {"auto", "direct", "fft"}

    Shape: input (N, C, H, W) in [0, 1], output the same shape (one PSF for all channels).
    """

    def __init__(self, size: int, init_sigma: float | None = None, method: str = "auto"):
        super().__init__()
        size = _check_psf_size(size)
        init_sigma = size / 6 if init_sigma is None else check_number(init_sigma, "init_sigma", MIN_WIDTH)
        self.method = check_choice(method, "method", ("auto", "direct", "fft"))
        self.logits = nn.Parameter(torch.log(gaussian_psf(size, init_sigma).clamp_min(1e-8)))

    @property
    def psf(self) -> torch.Tensor:
        """(size, size) PSF: non-negative, sums to one."""
        return torch.softmax(self.logits.flatten(), 0).view_as(self.logits)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return blur(images, self.psf, self.method)

    def extra_repr(self) -> str:
        return f"size={self.logits.shape[-1]}"
