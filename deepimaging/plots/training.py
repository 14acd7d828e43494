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
    """Loss per epoch on ``ax`` and accuracy on a twin axis, as trained and as eval mode sees it. Returns the Axes.

    Solid lines are measured *as trained* (train mode, on each batch while the
    weights move); dashed lines in eval mode (BatchNorm's running statistics):
    on a fixed sample of the training images and on the validation set. A gap
    between the solid and the dashed training accuracy means eval mode is not
    the model that trained. Stars at the last epoch mark the eval-mode numbers
    of the model :func:`deepimaging.train.fit` returns (after BatchNorm
    recalibration), where the history has them.
    """
    ax = get_ax(ax, figsize=(6, 4))
    epochs = range(1, history.epochs + 1)
    ax.plot(epochs, history.train_loss, "o-", color="C0", label="train loss (as trained)")
    if history.val_loss:
        ax.plot(epochs, history.val_loss, "s--", color="C0", label="validation loss (eval mode)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss", color="C0")
    twin = ax.twinx()
    twin.plot(epochs, history.train_accuracy, "o-", color="C1", label="train accuracy (as trained)")
    train_eval = getattr(history, "train_eval_accuracy", [])
    if train_eval:
        twin.plot(epochs, train_eval, "^--", color="C3", label="train accuracy (eval mode)")
    if history.val_accuracy:
        twin.plot(epochs, history.val_accuracy, "s--", color="C1", label="validation accuracy (eval mode)")
    final = getattr(history, "final", {}) or {}
    if getattr(history, "recalibrated", False) and final:
        last = history.epochs
        if "train_eval_accuracy" in final:
            twin.plot(
                [last],
                [final["train_eval_accuracy"]],
                "*",
                color="C3",
                markersize=12,
                label="train, eval mode after recalibration",
            )
        if "val_accuracy" in final:
            twin.plot(
                [last],
                [final["val_accuracy"]],
                "*",
                color="C1",
                markersize=12,
                label="validation, eval mode after recalibration",
            )
    twin.set_ylabel("accuracy", color="C1")
    twin.set_ylim(0, 1.02)
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=7)
    ax.set_title("Learning curves")
    return ax
