"""Small helpers shared by the figure modules."""

from __future__ import annotations

import math

import matplotlib.axes
import matplotlib.pyplot as plt
import numpy as np
import torch

from .._checks import check_number

# The most panels (Axes) one figure draws. Each Axes takes tens of milliseconds to make (400 took
# 20 s on the course machine), so a whole dataset passed by mistake (image_grid(train_images))
# would hang the notebook for minutes; 256 is a 16 x 16 grid, far more than a figure can show.
MAX_PANELS = 256


def get_ax(ax=None, figsize=(5, 4)):
    """Return ``ax``, or a new Axes on a new figure when ``ax`` is None."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    elif not isinstance(ax, matplotlib.axes.Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes (e.g. from plt.subplots()) or None; got {type(ax).__name__}"
        )
    return ax


def check_kind(value, name: str, expected: str, attributes) -> None:
    """Refuse ``value`` unless it has every one of ``attributes`` (what the figure reads from it).

    Plot functions take results by what they hold rather than by class, so that this package's
    plots do not import its engines; the error names ``name``, what was expected and what arrived.
    """
    missing = [attribute for attribute in attributes if not hasattr(value, attribute)]
    if missing:
        raise TypeError(
            f"{name} must be {expected}; got {type(value).__name__} (which has no {', '.join(missing)})"
        )


def check_inches(size, name: str = "size") -> float:
    """A panel size in inches: a finite number > 0 (matplotlib's own error would not name ``name``)."""
    size = check_number(size, name, 0, low_open=True)
    if not math.isfinite(size):
        raise ValueError(f"{name} must be a finite number of inches; got {size}")
    return size


def check_panels(count: int, name: str) -> None:
    """Refuse a figure of no panels or more than MAX_PANELS, before the figure is made."""
    if count == 0:
        raise ValueError(f"{name} is empty: there is nothing to draw")
    if count > MAX_PANELS:
        raise ValueError(
            f"{name} would make {count} panels, more than the {MAX_PANELS} a figure can show "
            "(pass fewer, e.g. images[:16])"
        )


def as_plot_tensor(
    value,
    name: str,
    shape: str,
    ndim,
    *,
    finite: bool = True,
    complex_ok: bool = False,
    empty_ok: bool = False,
):
    """``value`` (tensor, array or nested list of numbers) as a CPU tensor to draw, checked first.

    Refuses, naming ``name``: text or objects, complex numbers (unless ``complex_ok``),
    a number of dimensions other than ``ndim`` (an int or a tuple), nothing to draw
    (a dimension of size 0, unless ``empty_ok``) and, with ``finite``, NaN or
    infinite values, which matplotlib would draw as an empty picture without a word.
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    else:
        try:
            array = np.asarray(value)
        except ValueError as err:  # a ragged list
            raise TypeError(f"{name} must be a tensor or array of shape {shape}; got a ragged list") from err
        if array.dtype != bool and not np.issubdtype(array.dtype, np.number):
            raise TypeError(
                f"{name} must be a tensor or array of numbers, shape {shape}; got {type(value).__name__} "
                f"of dtype {array.dtype}"
            )
        tensor = torch.as_tensor(array)
    if tensor.is_complex() and not complex_ok:
        raise TypeError(f"{name} must hold real numbers; got dtype {tensor.dtype}")
    if tensor.ndim not in ((ndim,) if isinstance(ndim, int) else ndim):
        raise ValueError(f"{name} must have shape {shape}; got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0 and not empty_ok:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)}): there is nothing to draw")
    if finite and not torch.all(torch.isfinite(tensor)):
        raise ValueError(f"{name} must be finite to be drawn; got NaN or infinite values")
    return tensor


def to_hwc(image) -> np.ndarray:
    """A (C, H, W) tensor or array in [0, 1] as an (H, W, C) or (H, W) numpy array for ``imshow``."""
    # NaN pixels are drawn as holes, which can be the point of a figure: not refused here.
    image = as_plot_tensor(image, "image", "(C, H, W) or (H, W)", (2, 3), finite=False).float().numpy()
    if image.ndim == 2:
        return image
    if image.shape[0] == 1:
        return image[0]
    if image.shape[0] != 3:
        raise ValueError(
            f"only 1- or 3-channel images can be shown directly; got {image.shape[0]} channels "
            "(show one channel at a time, e.g. image[k:k+1])"
        )
    return np.clip(image.transpose(1, 2, 0), 0, 1)


def imshow(ax, image, title=None, **kwargs):
    """Show a (C, H, W) image in [0, 1] on ``ax`` (a new Axes when None) without ticks; return the Axes.

    Grey images use the grey colormap.
    """
    array = to_hwc(image)
    ax = get_ax(ax)
    if array.ndim == 2:
        kwargs = {"cmap": "gray", "vmin": 0, "vmax": 1, **kwargs}
    ax.imshow(array, **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax
