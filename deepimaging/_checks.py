"""Input checks shared by every public function.

Each check raises a ``TypeError`` or ``ValueError`` whose message names the
argument, what was expected and what arrived, so that a student who passes the
wrong thing learns what to pass instead.
"""

from __future__ import annotations

import numbers

import torch


def check_images(
    images,
    name: str = "images",
    *,
    ndim: int | tuple[int, ...] = 4,
    channels: int | None = None,
    check_range: bool = True,
) -> torch.Tensor:
    """Check that ``images`` is a floating tensor of shape (N, C, H, W) in [0, 1].

    Returns the tensor unchanged so the call can be used inline.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, C, H, W) with values in [0, 1]; "
            f"got {type(images).__name__}"
        )
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if images.ndim not in ndims:
        expected = " or ".join({3: "(C, H, W)", 4: "(N, C, H, W)"}.get(d, f"{d}-D") for d in ndims)
        raise ValueError(f"{name} must have shape {expected}; got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor with values in [0, 1]; got dtype {images.dtype} "
            "(convert uint8 images with images.float() / 255)"
        )
    if channels is not None and images.shape[-3] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s) (dimension -3); got {images.shape[-3]} "
            f"in shape {tuple(images.shape)}"
        )
    if check_range and images.numel():
        # One pass over the pixels, written into one 2-element tensor: one device-to-host copy (a GPU
        # sync) for both values rather than one per value.
        extrema = images.new_empty(2)
        torch.aminmax(images.detach(), out=(extrema[0], extrema[1]))
        lo, hi = extrema.tolist()
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            raise ValueError(f"{name} must have values in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return images


def shape_of(value):
    """A tensor's shape as a tuple, or the type name of anything else: what an error message says arrived."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an integer in [low, high] and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    _check_bounds(value, name, low, high)
    return int(value)


def check_number(value, name: str, low=None, high=None, *, low_open: bool = False) -> float:
    """Check that ``value`` is a real number in [low, high] (or (low, high]) and return it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if value != value:
        raise ValueError(f"{name} must be a number; got NaN")
    if low_open and low is not None and value <= low:
        raise ValueError(f"{name} must be greater than {low}; got {value}")
    _check_bounds(value, name, low, high)
    return value


def check_choice(value, name: str, choices) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices, key=repr)}; got {value!r}")
    return value


def _check_bounds(value, name, low, high):
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}]; got {value}")


def check_single_image(model, image) -> torch.Tensor:
    """A single image as (1, C, H, W), with the channel count the model expects when it says so."""
    check_images(image, "image", ndim=(3, 4))
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(
                f"image must be a single image (C, H, W) or (1, C, H, W); got a batch of shape "
                f"{tuple(image.shape)} (loop over the images, or pick one with images[i])"
            )
    else:
        image = image[None]
    expected = getattr(model, "in_channels", None)
    if expected is None and isinstance(getattr(model, "physics", None), torch.nn.Identity):
        expected = getattr(getattr(model, "cnn", None), "in_channels", None)
    if expected is not None and image.shape[1] != expected:
        raise ValueError(
            f"image must have {expected} channel(s), as the model was built for; got {image.shape[1]} "
            f"in shape {tuple(image.shape)}"
        )
    return image.float()
