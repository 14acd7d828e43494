"""Figures for datasets and training."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from ._common import get_ax, imshow

__all__ = ["image_grid", "learning_curves"]


def image_grid(
    images, labels=None, classes=None, *, ncols: int = 8, title: str | None = None, size: float = 1.4
):
    """Show images (N, C, H, W) in a grid, each titled with its class name. Returns the Figure."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image; got 0")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        name = None
        if labels is not None:
            label = int(labels[k])
            name = classes[label] if classes is not None else str(label)
        imshow(ax, images[k], name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(history, ax=None):
    """Training and validation loss per epoch on ``ax``, accuracy on a twin axis. Returns the Axes."""
    ax = get_ax(ax, figsize=(6, 4))
    epochs = range(1, history.epochs + 1)
    ax.plot(epochs, history.train_loss, "o-", color="C0", label="train loss")
    if history.val_loss:
        ax.plot(epochs, history.val_loss, "s--", color="C0", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss", color="C0")
    twin = ax.twinx()
    twin.plot(epochs, history.train_accuracy, "o-", color="C1", label="train accuracy")
    if history.val_accuracy:
        twin.plot(epochs, history.val_accuracy, "s--", color="C1", label="validation accuracy")
    twin.set_ylabel("accuracy", color="C1")
    twin.set_ylim(0, 1.02)
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    ax.set_title("Learning curves")
    return ax
