"""Optics: point-spread functions (PSFs) and blur, fixed, learnable and shift-variant.

A lens images a point of the scene onto a small spot, the point-spread
function ``h``; for a shift-invariant system the image is the scene convolved
with it, ``y = h * x``. PSFs here are square, odd-sized, non-negative and sum
to one (a lens does not create or destroy light), so blurred images stay in
[0, 1] and keep their mean.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number, shape_of

__all__ = [
    "Blur",
    "GaussianBlur",
    "LearnedPSF",
    "ShiftVariantBlur",
    "airy_psf",
    "blur",
    "defocus_psf",
    "gaussian_psf",
    "shift_variant_blur",
]

# When "auto" convolves through the FFT, measured with benchmarks/bench_physics.py (128 x 3 x 64 x 64,
# forward + backward). On the CPU (4 threads) the FFT was faster at every PSF size from 3 to 31, for fixed
# PSFs (0.5-0.7x the time of conv2d) and far more for learnable ones (conv2d's kernel gradient is slow:
# 0.07-0.5x). On a GPU (H100) cuDNN's direct convolution was faster up to 15 pixels and the FFT at 31.
FFT_FROM_SIZE_GPU = 25
# Shift-variant blur on the CPU (same batch, learnable 2 x 2 zones, forward + backward): the per-pixel kernel
# ("local") took 0.5x the time of the FFT at 5 px, 0.8x at 11 and 1.3x at 15. More zones favour "local" (the
# FFT's cost grows with the zones, its cost does not).
LOCAL_UP_TO_SIZE_CPU = 11
_ZERO_J1 = 3.8317059702075125  # first zero of the Bessel function J1


def _check_psf_size(size: int) -> int:
    size = check_int(size, "psf size", 1)
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
    sigma = check_number(sigma, "sigma", 0.0, low_open=True)
    r = _radius_grid(size)[..., 0]
    psf = torch.exp(-(r**2) / (2 * sigma**2))
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
    if radius == 0:
        psf = torch.zeros(size, size)
        psf[size // 2, size // 2] = 1.0
        return psf
    psf = (_radius_grid(size, 8) <= radius).float().mean(-1)
    return psf / psf.sum()


def airy_psf(size: int, radius: float) -> torch.Tensor:
    r"""Diffraction-limited PSF of a circular pupil: the Airy pattern.

    .. math:: h(r) \propto \Big(\frac{2 J_1(v)}{v}\Big)^2, \qquad v = 3.8317\,\frac{r}{r_0}

    where :math:`r_0 = 0.61 \lambda / \mathrm{NA}` (the Rayleigh resolution) is
    the radius of the first dark ring, in pixels. Each pixel averages a 4 x 4
    sub-pixel grid.
    """
    size = _check_psf_size(size)
    radius = check_number(radius, "radius", 0.0, low_open=True)
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
        raise ValueError(f"psf size must be at most the image size {min(h, w)}; got {k}")
    if psf.ndim == 3 and psf.shape[0] != c:
        raise ValueError(f"psf has {psf.shape[0]} channels but the images have {c}")
    kernels = psf.expand(c, k, k) if psf.ndim == 2 else psf
    pad = k // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect") if pad else images
    if not _use_fft(method, k, images.device):
        return F.conv2d(padded, kernels.flip(-2, -1)[:, None].to(images.dtype), groups=c)
    return _fft_convolve(padded, kernels, pad)[..., :h, :w]


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
        sigma = check_number(sigma, "sigma", 0.0, low_open=True)
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
        init_sigma = size / 6 if init_sigma is None else init_sigma
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


def _zone_weights(n_zones: int, length: int, device) -> torch.Tensor:
    """(n_zones, length) piecewise-linear weights, 1 at each zone centre, summing to one everywhere."""
    position = ((torch.arange(length, device=device) + 0.5) / length * n_zones - 0.5).clamp(0, n_zones - 1)
    return (1 - (position[None, :] - torch.arange(n_zones, device=device)[:, None]).abs()).clamp_min(0)


@functools.lru_cache(maxsize=16)
def _blend_weights(gy: int, gx: int, h: int, w: int, device, dtype) -> torch.Tensor:
    """(gy * gx, H, W) zone weights of :func:`shift_variant_blur`, built once per size and device.

    They depend on the sizes only, so a training loop would otherwise rebuild them (some twenty small
    operations, each a kernel launch on a GPU) in every step. Treat the result as read-only.
    """
    weights = _zone_weights(gy, h, device)[:, None, :, None] * _zone_weights(gx, w, device)[None, :, None, :]
    return weights.reshape(gy * gx, h, w).to(dtype)


def shift_variant_blur(images: torch.Tensor, psfs: torch.Tensor, method: str = "auto") -> torch.Tensor:
    r"""Blur with a PSF that changes across the field: one PSF per zone of a grid, blended smoothly.

    .. math:: y = \sum_k w_k \odot (h_k * x)
              \quad\Longleftrightarrow\quad
              y(p) = \sum_u \Big(\sum_k w_k(p)\, h_k(u)\Big)\, x(p - u)

    The PSFs ``h_k`` sit at the centres of a ``gy x gx`` grid of zones; the
    weights ``w_k(i, j)`` interpolate bilinearly between zone centres and sum to
    one at every pixel (Nagy and O'Leary, 1998, "Restoring images degraded by
    spatially variant blur"). Lens aberrations that grow towards the edge of
    the field are the classic case.

    The two forms are equal (the sums commute). "direct" and "fft" compute the
    left one: blur the image with every zone's PSF, then blend the blurred
    copies (cost grows with the number of zones). "local" computes the right
    one: blend the PSFs into one k x k kernel per pixel, then take one
    weighted sum of k^2 shifted images (cost independent of the zones; see
    :func:`local_convolution`).

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    psfs : torch.Tensor
        (gy, gx, k, k): one PSF per zone, k odd, at most min(H, W).
    method : {"auto", "local", "direct", "fft"}
        "auto" picks what was fastest in benchmarks/bench_physics.py: "local"
        on the CPU up to ``LOCAL_UP_TO_SIZE_CPU`` pixels, else as :func:`blur`
        (the FFT on the CPU; grouped ``conv2d`` on a GPU below
        ``FFT_FROM_SIZE_GPU``).
    """
    check_images(images)
    check_choice(method, "method", ("auto", "local", "direct", "fft"))
    if not isinstance(psfs, torch.Tensor) or psfs.ndim != 4 or psfs.shape[-1] != psfs.shape[-2]:
        raise ValueError(f"psfs must have shape (gy, gx, k, k); got {shape_of(psfs)}")
    _check_psf_size(psfs.shape[-1])
    return _blur_zones(images, psfs, method)


def _blur_zones(images, psfs, method, rotated=False):
    """:func:`shift_variant_blur` after its checks; ``rotated=True``: ``psfs`` come rotated by 180 degrees.

    A convolution layer computes a correlation, so it applies a PSF rotated by 180 degrees;
    :class:`ShiftVariantBlur` learns the rotated PSFs, which saves a flip forward and one backward.
    """
    n, c, h, w = images.shape
    gy, gx, k = psfs.shape[0], psfs.shape[1], psfs.shape[-1]
    if k > min(h, w):
        raise ValueError(f"psf size must be at most the image size {min(h, w)}; got {k}")
    zones = gy * gx
    pad = k // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect") if pad else images
    kernels = psfs.reshape(zones, k, k).to(images.dtype)
    # Correlation kernels: each weights padded[p + offset].
    correlation = kernels if rotated else kernels.flip(-2, -1)
    weights = _blend_weights(gy, gx, h, w, images.device, images.dtype)
    if method == "local" or (method == "auto" and images.device.type == "cpu" and k <= LOCAL_UP_TO_SIZE_CPU):
        local_kernels = torch.einsum("zuv,zhw->uvhw", correlation, weights)  # one kernel per pixel
        return local_convolution(padded, local_kernels)
    if _use_fft(method, k, images.device):
        # All zone-blurred copies at once: (N, C, 1, Hp, Wp) against (Z, k, k) gives (N, C, Z, H, W).
        convolution = kernels.flip(-2, -1) if rotated else kernels
        blurred = _fft_convolve(padded[:, :, None], convolution, pad)[..., :h, :w]
    else:
        # One convolution of every channel, as its own image, with the Z kernels: output channel z of
        # image (n, c) is h_z * x_c (no copies of the kernels per channel, as a grouped convolution needs).
        blurred = F.conv2d(padded.reshape(n * c, 1, *padded.shape[-2:]), correlation[:, None])
        blurred = blurred.view(n, c, zones, h, w)
    return (blurred * weights).sum(2)


def local_convolution(padded: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    r"""A spatially varying filter with one k x k kernel per output pixel: a sum of k^2 shifted images.

    .. math:: y(n, c, i, j) = \sum_{a, b = 0}^{k - 1} K(a, b, i, j)\; x_{pad}(n, c, i + a, j + b)

    (a correlation: pass flipped PSFs for a convolution). Each term is one
    multiply-add over the whole batch, k^2 in all, where a blur per zone then
    blended costs a convolution per zone. The gradients, written out in a
    ``torch.autograd.Function`` so that autograd stores no k^2 intermediate
    images, are

    .. math::
        \frac{\partial L}{\partial K(a, b, i, j)} = \sum_{n, c} g(n, c, i, j)\, x_{pad}(n, c, i + a, j + b),
        \qquad
        \frac{\partial L}{\partial x_{pad}(n, c, i + a, j + b)} \mathrel{+}= K(a, b, i, j)\, g(n, c, i, j)

    with ``g`` the gradient of the loss with respect to ``y``.

    Parameters
    ----------
    padded : torch.Tensor
        (N, C, H + k - 1, W + k - 1) images, padded by k // 2 on each side.
    kernels : torch.Tensor
        (k, k, H, W) kernel of every output pixel.

    Returns
    -------
    torch.Tensor
        (N, C, H, W).
    """
    k, h, w = kernels.shape[0], kernels.shape[-2], kernels.shape[-1]
    if kernels.shape[1] != k or tuple(padded.shape[-2:]) != (h + k - 1, w + k - 1):
        raise ValueError(
            f"kernels must be (k, k, H, W) and padded images (N, C, H + k - 1, W + k - 1); "
            f"got {tuple(kernels.shape)} and {tuple(padded.shape)}"
        )
    return _LocalConvolution.apply(padded, kernels)


class _LocalConvolution(torch.autograd.Function):
    # The forward pass and the images' gradient run over blocks of ~4 MB of images, so that the k^2 passes
    # over a block mostly hit the cache rather than main memory (1.2-2x faster on the CPU than passes over
    # the whole batch).
    BLOCK_ELEMENTS = 2**20

    @staticmethod
    def forward(ctx, padded, kernels):
        k, h, w = kernels.shape[0], kernels.shape[-2], kernels.shape[-1]
        images = padded.reshape(-1, *padded.shape[-2:])  # (N * C, H + k - 1, W + k - 1)
        out = images.new_zeros(images.shape[0], h, w)
        for block in _blocks(images.shape[0], h * w):
            for a in range(k):
                for b in range(k):
                    out[block].addcmul_(images[block, a : a + h, b : b + w], kernels[a, b])
        ctx.save_for_backward(padded, kernels)
        return out.view(*padded.shape[:-2], h, w)

    @staticmethod
    def backward(ctx, grad_out):
        padded, kernels = ctx.saved_tensors
        k, h, w = kernels.shape[0], kernels.shape[-2], kernels.shape[-1]
        images = padded.reshape(-1, *padded.shape[-2:])
        grad_out = grad_out.reshape(-1, h, w)
        grad_padded = grad_kernels = None
        if ctx.needs_input_grad[0]:
            grad_padded = torch.zeros_like(images)
            for block in _blocks(images.shape[0], h * w):
                for a in range(k):
                    for b in range(k):
                        grad_padded[block, a : a + h, b : b + w].addcmul_(grad_out[block], kernels[a, b])
            grad_padded = grad_padded.view_as(padded)
        if ctx.needs_input_grad[1]:
            # A sum over the N * C images for each of the k^2 offsets: with the images as the innermost
            # (contiguous) dimension, each sum runs along contiguous memory. Summed over the outer dimension,
            # as a product then .sum(0) per block, the same sums ran 2-4x slower in some processes on a
            # 2-core machine (benchmarks/physics_results.md); this way they did not, for ~3 ms more than
            # the old way at its best on a batch of 128 x 3 x 64 x 64.
            images_last = images.permute(1, 2, 0).contiguous()  # (H + k - 1, W + k - 1, N * C)
            grad_last = grad_out.permute(1, 2, 0).contiguous()  # (H, W, N * C)
            grad_kernels = torch.empty_like(kernels)
            for a in range(k):
                for b in range(k):
                    torch.sum(grad_last * images_last[a : a + h, b : b + w], -1, out=grad_kernels[a, b])
        return grad_padded, grad_kernels


def _blocks(n: int, elements_per_item: int):
    size = max(1, _LocalConvolution.BLOCK_ELEMENTS // elements_per_item)
    return [slice(i, i + size) for i in range(0, n, size)]


class ShiftVariantBlur(nn.Module):
    """Learnable shift-variant blur: a ``grid`` of PSFs (softmax logits), blended across the field.

    See :func:`shift_variant_blur`. Each PSF is initialised to a Gaussian of
    width ``init_sigma`` and learned through a softmax, like :class:`LearnedPSF`;
    with ``learnable=False`` they are fixed buffers.

    Parameters
    ----------
    size : int
        Odd PSF size in pixels.
    grid : tuple of int
        Zones (rows, columns).
    init_sigma : float or tensor of shape grid
    learnable : bool
    method : {"auto", "local", "direct", "fft"}
        See :func:`shift_variant_blur`.
    """

    def __init__(
        self, size: int = 5, grid=(2, 2), init_sigma=1.0, learnable: bool = True, method: str = "auto"
    ):
        super().__init__()
        size = _check_psf_size(size)
        self.method = check_choice(method, "method", ("auto", "local", "direct", "fft"))
        gy, gx = (check_int(g, "grid", 1) for g in grid)
        sigmas = torch.as_tensor(init_sigma, dtype=torch.float32).expand(gy, gx)
        logits = torch.stack(
            [torch.log(gaussian_psf(size, float(s)).clamp_min(1e-8)) for s in sigmas.flatten()]
        )
        # The logits are those of the PSFs rotated by 180 degrees, which a convolution applies as they are
        # (see _blur_zones); psfs turns them back.
        logits = logits.view(gy, gx, size, size).flip(-2, -1)
        if learnable:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)

    @property
    def psfs(self) -> torch.Tensor:
        """(gy, gx, k, k) PSFs, each non-negative and summing to one."""
        return self._rotated_psfs().flip(-2, -1)

    def _rotated_psfs(self) -> torch.Tensor:
        gy, gx, k, _ = self.logits.shape
        return torch.softmax(self.logits.reshape(gy, gx, k * k), -1).view_as(self.logits)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        return _blur_zones(images, self._rotated_psfs(), self.method, rotated=True)

    def extra_repr(self) -> str:
        gy, gx, k, _ = self.logits.shape
        return f"size={k}, grid=({gy}, {gx}), method={self.method!r}"
