"""Shift-variant blur: a PSF that changes across the field, as lens aberrations do towards the edges."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number, shape_of
from .optics import MIN_WIDTH, _check_psf_size, _fft_convolve, _use_fft, gaussian_psf

__all__ = ["ShiftVariantBlur", "shift_variant_blur"]


def _zone_weights(zones: int, length: int, device=None) -> torch.Tensor:
    """(zones, length) piecewise-linear weights along one axis: 1 at each zone centre, summing to one everywhere."""
    position = ((torch.arange(length, device=device) + 0.5) / length * zones - 0.5).clamp(0, zones - 1)
    return (1 - (position[None, :] - torch.arange(zones, device=device)[:, None]).abs()).clamp_min(0)


def shift_variant_blur(images: torch.Tensor, psfs: torch.Tensor, method: str = "auto") -> torch.Tensor:
    r"""Blur with a PSF that changes across the field: one PSF per zone of a grid, blended smoothly.

    .. math:: y = \sum_k w_k \odot (h_k * x)

    The PSFs ``h_k`` sit at the centres of a ``gy x gx`` grid of zones; the
    weights ``w_k(i, j)`` interpolate bilinearly between zone centres and sum to
    one at every pixel (Nagy and O'Leary, 1998, "Restoring images degraded by
    spatially variant blur"). The image is blurred with every zone's PSF and
    the blurred copies are blended, so the cost grows with the number of zones.

    Parameters
    ----------
    images : torch.Tensor
        (N, C, H, W) in [0, 1].
    psfs : torch.Tensor
        (gy, gx, k, k): one PSF per zone, k odd, at most min(H, W).
    method : {"auto", "direct", "fft"}
        How each zone's blur is computed, as in :func:`blur`.

    Returns
    -------
    torch.Tensor
        (N, C, H, W).
    """
    check_images(images)
    check_choice(method, "method", ("auto", "direct", "fft"))
    if not isinstance(psfs, torch.Tensor) or psfs.ndim != 4 or psfs.shape[-1] != psfs.shape[-2]:
        raise ValueError(f"psfs must have shape (gy, gx, k, k); got {shape_of(psfs)}")
    n, c, h, w = images.shape
    gy, gx, k = psfs.shape[0], psfs.shape[1], _check_psf_size(psfs.shape[-1])
    if k > min(h, w):
        raise ValueError(
            f"psf size must be at most the image size {min(h, w)} (images of shape {tuple(images.shape)}); got {k}"
        )
    if gy * gx == 0 or not bool(torch.isfinite(psfs).all()):
        raise ValueError(f"psfs must hold at least one zone of finite numbers; got shape {tuple(psfs.shape)}")
    pad = k // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect") if pad else images
    kernels = psfs.reshape(gy * gx, k, k).to(images.dtype)
    if _use_fft(method, k, images.device):
        # All zone-blurred copies at once: (N, C, 1, Hp, Wp) against (Z, k, k) gives (N, C, Z, H, W).
        blurred = _fft_convolve(padded[:, :, None], kernels, pad)[..., :h, :w]
    else:
        # Each channel as its own image, convolved with the Z kernels (flipped: conv2d correlates).
        blurred = F.conv2d(padded.reshape(n * c, 1, *padded.shape[-2:]), kernels.flip(-2, -1)[:, None])
        blurred = blurred.view(n, c, gy * gx, h, w)
    weights = (
        _zone_weights(gy, h, images.device)[:, None, :, None]
        * _zone_weights(gx, w, images.device)[None, :, None, :]
    )
    return (blurred * weights.reshape(gy * gx, h, w).to(images.dtype)).sum(2)


class ShiftVariantBlur(nn.Module):
    """Learnable shift-variant blur: a ``grid`` of PSFs (softmax logits), blended across the field.

    See :func:`shift_variant_blur`. Each PSF is initialised to a Gaussian of
    width ``init_sigma`` and learned through a softmax, like :class:`LearnedPSF`
    (reparameterisation: any logits give a valid PSF); with ``learnable=False``
    they are fixed buffers.

    Parameters
    ----------
    size : int
        Odd PSF size in pixels.
    grid : tuple of int
        Zones (rows, columns), each 1 to 64.
    init_sigma : float or tensor of shape grid
        Width of the initial Gaussian PSFs in pixels, > 0.
    learnable : bool
    method : {"auto", "direct", "fft"}
        See :func:`shift_variant_blur`.

    Shape: input (N, C, H, W) in [0, 1], output the same shape.
    """

    def __init__(
        self, size: int = 5, grid=(2, 2), init_sigma=1.0, learnable: bool = True, method: str = "auto"
    ):
        super().__init__()
        size = _check_psf_size(size)
        self.method = check_choice(method, "method", ("auto", "direct", "fft"))
        if not isinstance(grid, (tuple, list)) or len(grid) != 2:
            raise ValueError(f"grid must be (rows, columns) of zones; got {grid!r}")
        gy, gx = (check_int(g, "grid", 1, 64) for g in grid)
        if isinstance(init_sigma, torch.Tensor):
            if tuple(init_sigma.shape) not in ((), (gy, gx)):
                raise ValueError(
                    f"init_sigma must be a number or a tensor of shape {(gy, gx)}; got {shape_of(init_sigma)}"
                )
            sigmas = init_sigma.expand(gy, gx).flatten().tolist()
        else:
            sigmas = [init_sigma] * (gy * gx)
        psfs = [gaussian_psf(size, check_number(s, "init_sigma", MIN_WIDTH)) for s in sigmas]
        logits = torch.log(torch.stack(psfs).clamp_min(1e-8)).view(gy, gx, size, size)
        if learnable:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)

    @property
    def psfs(self) -> torch.Tensor:
        """(gy, gx, k, k) PSFs, each non-negative and summing to one."""
        gy, gx, k, _ = self.logits.shape
        return torch.softmax(self.logits.reshape(gy, gx, k * k), -1).view_as(self.logits)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return shift_variant_blur(images, self.psfs, self.method)

    def extra_repr(self) -> str:
        gy, gx, k, _ = self.logits.shape
        return f"size={k}, grid=({gy}, {gx}), method={self.method!r}"
