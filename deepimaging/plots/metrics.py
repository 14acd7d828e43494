"""Figures for metrics: confusion matrices, ROC and precision-recall curves, threshold trade-offs.

Each function takes ``ax=None`` (a new figure is made) and returns the Axes, in the
shape of scikit-learn's ``*Display.from_predictions``: one call from labels and
scores to a figure. The numbers come from :mod:`deepimaging.metrics`.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from ._common import get_ax

__all__ = [
    "plot_confusion_matrix",
]


def plot_confusion_matrix(
    cm_or_y_true,
    y_pred=None,
    *,
    classes=None,
    ax=None,
    cmap: str = "Blues",
    colorbar: bool = True,
    title: str | None = "Confusion matrix (row %, counts)",
):
    """Confusion matrix as a heatmap of row percentages, each cell annotated with its count.

    Row i shows where the samples of true class i went, in per cent of that class
    (the diagonal is each class's sensitivity), so rare and common classes are read
    on the same scale; the count below the percentage keeps the sample size in view.

    Parameters
    ----------
    cm_or_y_true : array-like
        Either a (K, K) matrix of counts (rows = true class, columns = predicted class,
        as :func:`deepimaging.metrics.confusion_matrix` returns), or the true labels (N,)
        when ``y_pred`` is given.
    y_pred : array-like of int, shape (N,), optional
        Predicted labels; when given, the matrix is counted from ``cm_or_y_true`` and ``y_pred``.
    classes : sequence of str, optional
        Class names for the axes (K of them); default 0, 1, ...
    ax : matplotlib Axes, optional
    cmap : str
        Colormap of the percentages (0 to 100).
    colorbar : bool
        Draw a colour bar beside the Axes.
    title : str or None

    Returns
    -------
    matplotlib.axes.Axes
    """
    if y_pred is None:
        counts = metrics._to_numpy(cm_or_y_true, "cm_or_y_true")
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
            raise ValueError(
                "cm_or_y_true must be a square (K, K) matrix of counts, or true labels (N,) with y_pred; "
                f"got shape {counts.shape} and no y_pred"
            )
        if (
            not np.issubdtype(counts.dtype, np.number)
            or np.any(counts < 0)
            or not np.all(np.isfinite(counts))
        ):
            raise ValueError("a confusion matrix must hold non-negative counts")
    else:
        counts = metrics.confusion_matrix(
            cm_or_y_true, y_pred, num_classes=None if classes is None else len(classes)
        )
    k = counts.shape[0]
    if classes is not None and len(classes) != k:
        raise ValueError(f"classes must name all {k} classes of the matrix; got {len(classes)} names")
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]

    row_totals = counts.sum(axis=1, keepdims=True)
    percent = np.divide(100.0 * counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)

    ax = get_ax(ax, figsize=(1.2 + 0.9 * k, 1.0 + 0.8 * k))
    image = ax.imshow(percent, cmap=cmap, vmin=0, vmax=100)
    integer_counts = np.all(counts == np.round(counts))
    for i in range(k):
        for j in range(k):
            count = f"{int(counts[i, j])}" if integer_counts else f"{counts[i, j]:.3g}"
            ax.text(
                j,
                i,
                f"{percent[i, j]:.0f}%\n({count})",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if percent[i, j] > 50 else "black",
            )
    ax.set_xticks(range(k), names, rotation=45 if max(len(n) for n in names) > 4 else 0, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of true class")
    if title:
        ax.set_title(title)
    return ax
