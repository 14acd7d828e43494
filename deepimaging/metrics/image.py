"""Image metrics in torch, per image: Jaccard for masks and boxes, MSE, PSNR, SSIM.

See :mod:`deepimaging.metrics`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._checks import check_bool, check_box_pairs, check_boxes, check_int, check_number

__all__ = [
    "jaccard",
    "box_jaccard",
    "mse",
    "psnr",
    "ssim",
    "data_range_from_bits",
]


# ----------------------------------------------------------------------------
# Overlap: Jaccard index for masks and boxes
# ----------------------------------------------------------------------------


def _as_tensor(values, name, what):
    """``values`` (tensor, array or list) as a CPU tensor; a TypeError naming ``name`` for anything else."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu()
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as err:  # ragged lists
        raise TypeError(f"{name} must be {what}; got {type(values).__name__}") from err
    if array.dtype != bool and not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be {what}; got {type(values).__name__} of dtype {array.dtype}")
    return torch.as_tensor(array)


def _check_positive(value, name: str, high: float = math.inf) -> float:
    """A finite number in (0, high] (an infinite data range or constant turns every SSIM into NaN)."""
    value = check_number(value, name, 0, low_open=True)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0; got {value}")
    return check_number(value, name, 0, high)


# The largest data range: that of 64-bit counts, 2**64 - 1 (data_range_from_bits(64)). A larger
# value is no sensor's, and (k * L)**2 would overflow a float.
_MAX_DATA_RANGE = float(2**64)


def _check_mask(mask, name):
    mask = _as_tensor(mask, name, "a binary mask (bool, or 0/1 values)")
    if mask.dtype != torch.bool:
        if mask.is_complex() or not torch.all((mask == 0) | (mask == 1)):
            raise ValueError(
                f"{name} must be a binary mask (bool, or 0/1 values); got values other than 0 and 1 "
                "(threshold a probability map first, e.g. mask = probabilities > 0.5)"
            )
        mask = mask.bool()
    return mask


def jaccard(mask_a, mask_b, *, zero_division: float = 1.0) -> float:
    """Jaccard index (intersection over union) of two binary masks: ``J = |R1 ∩ R2| / |R1 ∪ R2|``.

    Parameters
    ----------
    mask_a, mask_b : tensor or array of bool or {0, 1}, same shape (any, e.g. (H, W))
        The regions R1 and R2.
    zero_division : float
        J when both masks are empty (default 1.0: two empty regions agree perfectly;
        scikit-learn's ``jaccard_score`` returns 0.0 there, with a warning).

    Returns
    -------
    float in [0, 1]; 1 = identical regions, 0 = disjoint.

    Examples
    --------
    >>> a = torch.zeros(4, 4, dtype=torch.bool); a[:2] = True     # 8 pixels
    >>> b = torch.zeros(4, 4, dtype=torch.bool); b[1:3] = True    # 8 pixels, 4 shared
    >>> jaccard(a, b)  # 4 / 12
    0.3333333333333333
    """
    zero_division = check_number(zero_division, "zero_division", 0.0, 1.0)
    a = _check_mask(mask_a, "mask_a")
    b = _check_mask(mask_b, "mask_b")
    if a.shape != b.shape:
        raise ValueError(
            f"mask_a and mask_b must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    intersection = int((a & b).sum())
    union = int((a | b).sum())
    return intersection / union if union else zero_division


def box_jaccard(boxes_a, boxes_b) -> torch.Tensor:
    """Intersection over union (IoU, the Jaccard index of rectangles) of every pair of boxes.

    Parameters
    ----------
    boxes_a : tensor or array, shape (N, 4) or (4,)
        Boxes as (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1 ("xyxy", the layout of
        :func:`deepimaging.data.simulate_smear_field` and torchvision); in pixel units, a
        box covers x0 <= x < x1, so its area is (x1 - x0) * (y1 - y0).
    boxes_b : tensor or array, shape (M, 4) or (4,)
        ``[]`` or (0, 4) is no boxes (an empty table). At most ``MAX_BOX_PAIRS`` (10**7)
        pairs N x M: a larger table is refused before it is allocated.

    Returns
    -------
    Tensor, shape (N, M), float64
        ``iou[i, j]`` = area(a_i ∩ b_j) / area(a_i ∪ b_j); 0 where both boxes have zero area.

    Examples
    --------
    >>> box_jaccard([0, 0, 2, 2], [[1, 0, 3, 2], [5, 5, 6, 6]])  # overlap 2 of union 6, then none
    tensor([[0.3333, 0.0000]], dtype=torch.float64)
    """
    a = check_boxes(boxes_a, "boxes_a")
    b = check_boxes(boxes_b, "boxes_b")
    check_box_pairs(len(a), len(b), "boxes_a", "boxes_b")
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    # The intersection of two rectangles is a rectangle: the larger of the top-left
    # corners and the smaller of the bottom-right corners (empty if they cross).
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    size = (bottom_right - top_left).clamp(min=0)
    intersection = size[..., 0] * size[..., 1]
    union = area_a[:, None] + area_b[None, :] - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1e-300), torch.zeros_like(union))


# ----------------------------------------------------------------------------
# Image quality: MSE, PSNR, SSIM (torch, per image)
# ----------------------------------------------------------------------------


def data_range_from_bits(bits: int) -> int:
    """L = 2**bits - 1, the largest value a sensor with ``bits`` bits per pixel can record.

    Use it as ``data_range`` for raw integer counts (8 bits -> 255, 12 bits -> 4095).
    Images already scaled to [0, 1] (the deepimaging convention, whatever the bit
    depth they were quantized to) have ``data_range=1.0``.

    Examples
    --------
    >>> data_range_from_bits(8)
    255
    """
    bits = check_int(bits, "bits", 1, 64)
    return 2**bits - 1


def _check_image_pair(x, y, data_range, function):
    """Tensors of equal shape (C, H, W) or (N, C, H, W) as floats, and a positive data range."""
    for name, image in (("x", x), ("y", y)):
        if not isinstance(image, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor of shape (N, C, H, W) or (C, H, W); got {type(image).__name__}"
            )
        if image.ndim not in (3, 4):
            raise ValueError(
                f"{name} must have shape (N, C, H, W) or (C, H, W); got shape {tuple(image.shape)}"
            )
        if min(image.shape[-3:]) == 0:  # an empty batch (N = 0) is fine; an image without pixels is not
            raise ValueError(
                f"{name} must have at least one channel and one pixel per image; got shape {tuple(image.shape)}"
            )
        if image.is_complex():
            raise TypeError(f"{name} must hold real pixel values; got dtype {image.dtype}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}")
    if data_range is None:
        if x.dtype == torch.uint8 and y.dtype == torch.uint8:
            data_range = 255
        else:
            raise ValueError(
                f"{function} of {x.dtype} images needs data_range, the span of possible values: "
                "data_range=1.0 for images in [0, 1], data_range_from_bits(b) = 2**b - 1 for raw b-bit counts "
                "(only uint8 images imply it: 255)"
            )
    data_range = _check_positive(data_range, "data_range", _MAX_DATA_RANGE)
    if not x.is_floating_point():
        x = x.float()
    if not y.is_floating_point():
        y = y.to(x.dtype)
    for name, image in (("x", x), ("y", y)):
        if not torch.all(torch.isfinite(image)):
            raise ValueError(f"{function} needs finite images; {name} holds NaN or infinite values")
    return x, y, data_range


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: MSE = (1 / CHW) sum (x - y)^2.

    Parameters
    ----------
    x, y : Tensor, shape (N, C, H, W) or (C, H, W)

    Returns
    -------
    Tensor, shape (N,) (or a 0-d tensor for a single image). Differentiable.
    """
    x, y, _ = _check_image_pair(x, y, 1.0, "mse")
    return ((x - y) ** 2).mean(dim=(-3, -2, -1))


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in decibels: PSNR = 10 log10(L^2 / MSE).

    Parameters
    ----------
    x, y : Tensor, shape (N, C, H, W) or (C, H, W)
        Reference and test images (PSNR is symmetric).
    data_range : float
        L, the span of possible pixel values: 1.0 for images in [0, 1],
        ``data_range_from_bits(bits)`` for raw counts. Required for float images
        (guessing it from the data silently changes the number); uint8 images imply 255.

    Returns
    -------
    Tensor, shape (N,) (or 0-d), in dB; ``inf`` where the images are identical.

    Notes
    -----
    Equals :func:`skimage.metrics.peak_signal_noise_ratio` on each image with the same ``data_range``.
    """
    x, y, data_range = _check_image_pair(x, y, data_range, "psnr")
    return 10 * torch.log10(data_range**2 / mse(x, y))


def _gaussian_window(window_size: int, sigma: float, dtype, device) -> torch.Tensor:
    """1-D Gaussian taps exp(-t^2 / 2 sigma^2), t = -r..r, normalised to sum 1."""
    radius = (window_size - 1) // 2
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (t / sigma) ** 2)  # t / sigma first: no overflow for any finite sigma
    return taps / taps.sum()


def _filter_valid(images: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable filter of the last two axes with ``taps``, "valid" region only (no padding).

    Written as a weighted sum of shifted copies, one axis after the other: the same
    numbers as ``conv2d`` with the outer product of the taps, and faster on CPUs for
    one-channel maps (differentiable like any sum of slices).
    """
    k = len(taps)
    height, width = images.shape[-2] - k + 1, images.shape[-1] - k + 1
    rows = images[..., 0:height, :] * taps[0]
    for i in range(1, k):
        rows.add_(images[..., i : i + height, :], alpha=float(taps[i]))  # in place: no new tensor per tap
    out = rows[..., 0:width] * taps[0]
    for i in range(1, k):
        out.add_(rows[..., i : i + width], alpha=float(taps[i]))
    return out


_CPU_CHUNK_PIXELS = 2**18  # ~1 MB of float32 per intermediate map


def _ssim_map(x, y, taps, c1, c2):
    """SSIM at every valid pixel of (N, C, H, W) images x and y (see :func:`ssim`)."""
    # Variances do not change when a constant is subtracted, and E[x^2] - E[x]^2 loses
    # digits in float32 when the values sit far from 0 (a bright background), so the
    # second moments are taken of x and y minus their channel means, added back after.
    offset_x = x.mean(dim=(-2, -1), keepdim=True).detach()
    offset_y = y.mean(dim=(-2, -1), keepdim=True).detach()
    x, y = x - offset_x, y - offset_y

    # Local Gaussian-weighted means of x, y, x^2, y^2 and xy, each channel alone.
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = _filter_valid(torch.stack([x, y, x * x, y * y, x * y]), taps)
    var_x = mean_xx - mu_x**2  # population variance: E[x^2] - E[x]^2
    var_y = mean_yy - mu_y**2
    cov_xy = mean_xy - mu_x * mu_y
    mu_x, mu_y = mu_x + offset_x, mu_y + offset_y

    luminance_num = 2 * mu_x * mu_y + c1
    luminance_den = mu_x**2 + mu_y**2 + c1
    return (luminance_num * (2 * cov_xy + c2)) / (luminance_den * (var_x + var_y + c2))


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float | None = None,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    return_map: bool = False,
):
    """Structural similarity index (SSIM) per image, differentiable (usable as a loss, e.g. ``1 - ssim``).

    At every pixel, Gaussian-weighted local means mu, variances s^2 and covariance
    s_xy of the two images give

        SSIM = (2 mu_x mu_y + c1) (2 s_xy + c2) / ((mu_x^2 + mu_y^2 + c1) (s_x^2 + s_y^2 + c2)),

    with c1 = (k1 L)^2, c2 = (k2 L)^2 and L the data range: luminance, contrast and
    structure compared at once. The image's SSIM is the mean of this map.

    Parameters
    ----------
    x, y : Tensor, shape (N, C, H, W) or (C, H, W), H and W >= window_size
        Images to compare (SSIM is symmetric). Gradients flow to both.
    data_range : float
        L: 1.0 for images in [0, 1], ``data_range_from_bits(bits)`` for raw counts
        (at most 2**64). Required for float images; uint8 images imply 255.
    window_size : int
        Taps of the Gaussian window (odd); 11 as in Wang et al.
    sigma : float
        Standard deviation of the Gaussian window, in pixels.
    k1, k2 : float
        Stabilising constants in (0, 1] (0.01, 0.03 as in Wang et al.).
    return_map : bool
        Also return the SSIM map.

    Returns
    -------
    ssim : Tensor, shape (N,) (or 0-d for one image)
        Mean of the map over channels and pixels.
    ssim_map : Tensor, shape (N, C, H - window_size + 1, W - window_size + 1)
        Only with ``return_map=True``: SSIM at every pixel whose window lies inside the image.

    Notes
    -----
    Convention: Gaussian window of 11 taps with sigma = 1.5, population (not sample)
    statistics, and the mean over the *valid* region only (pixels whose window lies
    inside the image), each colour channel separately then averaged. This is Wang et
    al. (2004) and what ``skimage.metrics.structural_similarity(x, y, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=L, channel_axis=0)`` returns, to
    within float32 rounding.

    How the usual tools differ:

    - scikit-image's *defaults* (``structural_similarity(x, y, data_range=L)``) use a
      7 x 7 uniform window and sample covariance (divide by n - 1), which gives
      different numbers; scikit-image refuses float images without ``data_range``.
    - torchmetrics' ``structural_similarity_index_measure`` also uses an 11-tap
      Gaussian with sigma 1.5, but it infers ``data_range`` from the data (max - min)
      when not given, reflect-pads the images and (in recent versions) averages the
      map over the whole image including the border, clamps negative variances to
      0, and averages over the batch by default (``reduction="elementwise_mean"``).
      Numbers therefore differ, most for small images: on four smooth, slightly noisy
      64 x 64 RGB images, torchmetrics 1.9 gave 0.689 (``data_range=1.0``) and 0.669
      (``data_range`` inferred) where scikit-image and this function give 0.639.

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment:
    from error visibility to structural similarity", IEEE Trans. Image Processing 13(4), 2004.

    Examples
    --------
    >>> x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> ssim(x, x, data_range=1.0)
    tensor([1., 1.])
    >>> values, ssim_map = ssim(x, 0.5 * x, data_range=1.0, return_map=True)
    >>> ssim_map.shape
    torch.Size([2, 1, 22, 22])
    """
    x, y, data_range = _check_image_pair(x, y, data_range, "ssim")
    window_size = check_int(window_size, "window_size", 1)
    if window_size % 2 == 0:
        raise ValueError(f"window_size must be odd so the window has a centre pixel; got {window_size}")
    sigma = _check_positive(sigma, "sigma")
    k1 = _check_positive(k1, "k1", 1.0)
    k2 = _check_positive(k2, "k2", 1.0)
    return_map = check_bool(return_map, "return_map")
    height, width = x.shape[-2:]
    if height < window_size or width < window_size:
        raise ValueError(
            f"ssim needs images at least {window_size} x {window_size} pixels (the window size); "
            f"got {height} x {width} (use a smaller window_size, odd, or larger images)"
        )
    single = x.ndim == 3
    if single:
        x, y = x[None], y[None]
    if len(x) == 0:  # an empty batch in gives an empty batch out, as mse and psnr do
        values = x.new_zeros(0)
        empty_map = x.new_zeros((0, x.shape[1], height - window_size + 1, width - window_size + 1))
        return (values, empty_map) if return_map else values
    taps = _gaussian_window(window_size, sigma, x.dtype, x.device)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    # On a CPU, a few images at a time keep the dozen intermediate maps in the cache
    # (several times faster for large batches); a GPU takes the whole batch at once.
    chunk = max(1, _CPU_CHUNK_PIXELS // x[0].numel()) if x.device.type == "cpu" else len(x)
    ssim_map = torch.cat([_ssim_map(a, b, taps, c1, c2) for a, b in zip(x.split(chunk), y.split(chunk))])
    values = ssim_map.mean(dim=(-3, -2, -1))
    if single:
        values, ssim_map = values[0], ssim_map[0]
    return (values, ssim_map) if return_map else values
