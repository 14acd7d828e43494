"""Figures for datasets and training."""

from __future__ import annotations

import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np

from .._checks import check_int, check_labels
from ._common import as_plot_tensor, check_inches, check_kind, check_panels, get_ax, imshow

__all__ = ["image_grid", "learning_curves"]


def image_grid(
    images, labels=None, classes=None, *, ncols: int = 8, title: str | None = None, size: float = 1.4
):
    """Show images (N, C, H, W) in a grid, each titled with its class name. Returns the Figure.

    ``labels`` (N,) are class indices, named by ``classes`` when given; at most
    256 images (``MAX_PANELS``) are drawn in one figure.
    """
    # NaN pixels are drawn as holes, which can be the point of a figure: not refused here.
    images = as_plot_tensor(
        images, "images", "(N, C, H, W) or (N, H, W)", (3, 4), finite=False, empty_ok=True
    )
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image; got 0")
    check_panels(n, "images")
    if images.ndim == 4 and images.shape[1] not in (1, 3):  # before the figure, not halfway through it
        raise ValueError(
            f"images must have 1 or 3 channels to be shown; got {images.shape[1]} in shape {tuple(images.shape)}"
        )
    ncols = check_int(ncols, "ncols", 1)
    size = check_inches(size)
    if labels is not None:
        labels = check_labels(labels, "labels", None if classes is None else len(classes))
        if len(labels) != n:
            raise ValueError(f"labels must hold one label per image; got {len(labels)} for {n} images")
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

    ``history`` is the :class:`~deepimaging.train.History` that ``fit`` returns,
    or its ``as_dict()`` (as a study point's record keeps it under ``"history"``).
    """
    history = _check_history(history)
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


# Per-epoch lists of a History: the first two are always there, the others may be empty.
_CURVES = ("train_loss", "train_accuracy", "train_eval_accuracy", "val_loss", "val_accuracy")


def _check_history(history):
    """``history`` as a History whose curves are per-epoch lists of finite numbers, at least one epoch."""
    from ..train import History

    expected = "the History that deepimaging.train.fit returns (or its as_dict())"
    if isinstance(history, dict):
        allowed = {f.name for f in dataclasses.fields(History)}
        unknown = sorted(set(history) - allowed)
        if unknown or not {"train_loss", "train_accuracy"} <= set(history):
            raise ValueError(
                f"history must be {expected}; got a dict with keys {sorted(history)} "
                f"(a History has {sorted(allowed)}, train_loss and train_accuracy at least)"
            )
        history = History(**history)
    check_kind(
        history, "history", expected, ("epochs", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    )
    epochs = len(history.train_loss)
    if epochs == 0:
        raise ValueError("history is empty (no epoch recorded): there is nothing to draw")
    for name in _CURVES:
        values = getattr(history, name, [])
        if name in ("train_loss", "train_accuracy") or len(values):
            values = as_plot_tensor(values, f"history.{name}", "(epochs,)", 1, finite=False)
            if len(values) != epochs:
                raise ValueError(
                    f"history.{name} must hold one number per epoch ({epochs}, as train_loss); got {len(values)}"
                )
            bad = np.flatnonzero(~np.isfinite(values.double().numpy()))
            if bad.size:
                raise ValueError(
                    f"history.{name} is {float(values[bad[0]])} at epoch {bad[0] + 1}: the training "
                    "diverged (try a smaller lr), so the curve cannot be drawn"
                )
    return history
