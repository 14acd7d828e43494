"""Small helpers shared by the figure modules."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def get_ax(ax=None, figsize=(5, 4)):
    """Return ``ax``, or a new Axes on a new figure when ``ax`` is None."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def to_hwc(image) -> np.ndarray:
    """A (C, H, W) tensor or array in [0, 1] as an (H, W, C) or (H, W) numpy array for ``imshow``."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    image = np.asarray(image)
    if image.dtype != bool and not np.issubdtype(image.dtype, np.number):
        raise TypeError(f"image must be a tensor or array of numbers; got dtype {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim != 3:
        raise ValueError(f"image must have shape (C, H, W) or (H, W); got {image.shape}")
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
