"""Figures for metrics: confusion matrices, ROC and precision-recall curves, threshold trade-offs.

Each function takes ``ax=None`` (a new figure is made) and returns the Axes, in the
shape of scikit-learn's ``*Display.from_predictions``: one call from labels and
scores to a figure. The numbers come from :mod:`deepimaging.metrics`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import metrics
from .._checks import check_binary_scores, check_number, check_probabilities, to_numpy
from ._common import get_ax

# The most classes a confusion-matrix figure draws: K x K annotated cells on a figure 0.9 K inches
# wide. 64 classes are already 4096 cells on a 5 ft figure; more (up to the metrics' 4096) would
# take minutes and cannot be read: print metrics.confusion_matrix instead.
MAX_DRAWN_CLASSES = 64

__all__ = [
    "plot_confusion_matrix",
    "plot_roc_curve",
    "plot_roc_ovr",
    "plot_precision_recall_curve",
    "plot_threshold_tradeoff",
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
        counts = to_numpy(cm_or_y_true, "cm_or_y_true")
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
    if k > MAX_DRAWN_CLASSES:
        raise ValueError(
            f"a confusion matrix of {k} classes is too large to draw (at most {MAX_DRAWN_CLASSES}); "
            "print deepimaging.metrics.confusion_matrix(y_true, y_pred) instead"
        )
    if k == 0:
        raise ValueError("cm_or_y_true is an empty (0, 0) matrix: there is nothing to draw")
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


def plot_roc_curve(
    y_true,
    scores,
    *,
    ax=None,
    label: str | None = None,
    chance: bool = True,
    title: str | None = "ROC curve",
    **line_kwargs,
):
    """ROC curve (false positive rate against sensitivity) with the AUC in the legend.

    Call it several times on the same ``ax`` to compare models; the dashed diagonal
    is a classifier that guesses (AUC 0.5).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
    scores : array-like of float, shape (N,)
        Higher = more likely positive.
    ax : matplotlib Axes, optional
    label : str, optional
        Legend text before the AUC (default "ROC").
    chance : bool
        Draw the chance diagonal.
    title : str or None
    **line_kwargs
        Passed to ``ax.plot`` (colour, line style).

    Returns
    -------
    matplotlib.axes.Axes
    """
    fpr, tpr, _ = metrics.roc_curve(y_true, scores)
    area = metrics.auc(fpr, tpr)
    ax = get_ax(ax, figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"{label or 'ROC'} (AUC = {area:.3f})", **line_kwargs)
    if chance and not any(line.get_label() == "chance (AUC = 0.5)" for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance (AUC = 0.5)")
    _unit_square(ax, "false positive rate = FP / (FP + TN)", "sensitivity = TP / (TP + FN)", title)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_roc_ovr(
    y_true,
    probabilities,
    *,
    classes=None,
    ax=None,
    title: str | None = "One-vs-rest ROC per class",
):
    """One ROC curve per class, each class against all others, with per-class and macro AUC.

    Parameters
    ----------
    y_true : array-like of int, shape (N,)
        Class indices; every class must occur.
    probabilities : array-like of float, shape (N, K)
        Column k is the score of class k (e.g. ``deepimaging.train.predict(...).probabilities``).
    classes : sequence of str, optional
        K class names for the legend.
    ax : matplotlib Axes, optional
    title : str or None
        The macro-average AUC is appended.

    Returns
    -------
    matplotlib.axes.Axes
    """
    y_true, probabilities = check_probabilities(y_true, probabilities)
    k = probabilities.shape[1]
    if classes is not None and len(classes) != k:
        raise ValueError(f"classes must name all {k} columns of probabilities; got {len(classes)} names")
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    ax = get_ax(ax, figsize=(4.5, 4.5))
    for i, name in enumerate(names):
        plot_roc_curve(y_true == i, probabilities[:, i], ax=ax, label=name, title=None)
    macro = metrics.roc_auc_ovr(y_true, probabilities)
    if title:
        ax.set_title(f"{title}\nmacro AUC = {macro:.3f}")
    return ax


def plot_precision_recall_curve(
    y_true,
    scores,
    *,
    ax=None,
    label: str | None = None,
    iso_f1=(0.2, 0.4, 0.6, 0.8),
    title: str | None = "Precision-recall curve",
    **line_kwargs,
):
    """Precision against recall for every threshold, average precision in the legend, iso-F1 contours.

    Each grey contour joins the (recall, precision) points with the same F1 score:
    precision = F1 * R / (2R - F1). The dotted horizontal line is the precision of
    a classifier that guesses: the share of positives.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
    scores : array-like of float, shape (N,)
    ax : matplotlib Axes, optional
    label : str, optional
        Legend text before the AP (default "PR").
    iso_f1 : sequence of float
        F1 values of the contours (empty for none).
    title : str or None
    **line_kwargs
        Passed to ``ax.step``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    precision, recall, _ = metrics.precision_recall_curve(y_true, scores)
    ap = metrics.average_precision(y_true, scores)
    ax = get_ax(ax, figsize=(4.5, 4.5))
    if not any(line.get_gid() == "iso-f1" for line in ax.get_lines()):
        for f1 in iso_f1:
            r = np.linspace(f1 / 2 + 1e-3, 1, 200)  # below R = F1/2 the contour leaves the square
            p = f1 * r / (2 * r - f1)
            keep = p <= 1
            ax.plot(r[keep], p[keep], color="0.75", lw=0.8, gid="iso-f1")
            ax.annotate(
                f"F1={f1:.1f}", (1.0, f1 / (2 - f1)), fontsize=7, color="0.45", ha="right", va="bottom"
            )
        positive_share = float(np.mean(check_binary_scores(y_true, scores)[0]))
        ax.axhline(
            positive_share, color="k", ls=":", lw=1, label=f"chance (precision = {positive_share:.2f})"
        )
    # AP is the area under this step function, so draw it as steps.
    ax.step(recall, precision, where="post", label=f"{label or 'PR'} (AP = {ap:.3f})", **line_kwargs)
    _unit_square(ax, "recall = TP / (TP + FN)", "precision = TP / (TP + FP)", title)
    ax.legend(loc="lower left", fontsize=8)
    return ax


def plot_threshold_tradeoff(
    y_true, scores, *, threshold: float | None = None, ax=None, title: str | None = None
):
    """False negative rate (missed events) and false positive rate (false alarms) as the threshold slides.

    Raising the threshold calls fewer samples positive: fewer false alarms, more
    misses. Where the two curves cross is the equal-error operating point.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
    scores : array-like of float, shape (N,)
        A sample is called positive when its score is >= the threshold.
    threshold : float, optional
        Mark this threshold with a vertical line.
    ax : matplotlib Axes, optional
    title : str or None
        Default "Missed events vs false alarms".

    Returns
    -------
    matplotlib.axes.Axes
    """
    if threshold is not None and not math.isfinite(check_number(threshold, "threshold")):
        raise ValueError(f"threshold must be a finite number to be marked; got {threshold}")
    fpr, tpr, thresholds = metrics.roc_curve(y_true, scores, drop_intermediate=False)
    # thresholds[0] is +inf (nothing positive); the rest are the distinct scores, decreasing.
    # Reverse to increasing thresholds; the rate at score s holds for thresholds in (previous score, s].
    t, fp_rate, fn_rate = thresholds[1:][::-1], fpr[1:][::-1], 1 - tpr[1:][::-1]
    ax = get_ax(ax, figsize=(5.5, 3.5))
    ax.step(t, fn_rate, where="pre", color="tab:red", label="false negative rate = FN / (TP + FN)")
    ax.step(t, fp_rate, where="pre", color="tab:blue", label="false positive rate = FP / (FP + TN)")
    if threshold is not None:
        ax.axvline(threshold, color="k", lw=1, ls="--", label=f"threshold = {threshold:.3g}")
    ax.set_xlabel("threshold (score >= threshold is called positive)")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or "Missed events vs false alarms")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return ax


def _unit_square(ax, xlabel, ylabel, title):
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
