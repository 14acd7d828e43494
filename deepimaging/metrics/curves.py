"""Classification metrics over all thresholds: ROC and precision-recall curves and the areas under them.

Binary labels use 1 for the positive class; scores are finite real numbers, higher =
more positive. The curves are written out by hand (sort, cumulative counts, one point
per distinct score) and return exactly what scikit-learn returns. The one-vs-rest
versions average the binary areas over the classes. See :mod:`deepimaging.metrics`.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_binary_scores as _check_binary_scores
from .._checks import check_bool, check_choice
from .._checks import check_probabilities as _check_probabilities
from .._checks import to_real as _to_real

__all__ = [
    "roc_curve",
    "auc",
    "roc_auc",
    "roc_auc_ovr",
    "precision_recall_curve",
    "average_precision",
    "average_precision_ovr",
]


def _counts_at_thresholds(y_true, scores):
    """Cumulative FP and TP counts as the threshold falls through every distinct score.

    Sort the scores from high to low; lowering the threshold past a score makes that
    sample positive, so the running sum of labels counts true positives and the
    running count of the rest counts false positives. Samples with equal scores cross
    the threshold together, so only the last position of each run of ties is kept
    (scikit-learn's convention: one curve point per distinct score).
    """
    order = np.argsort(-scores, kind="stable")  # any order works: ties are merged below
    scores = scores[order]
    y_true = y_true[order]
    last_of_ties = np.flatnonzero(np.diff(scores))  # positions where the next score is lower
    last_of_ties = np.append(last_of_ties, len(scores) - 1)
    tps = np.cumsum(y_true)[last_of_ties]
    fps = 1 + last_of_ties - tps  # samples above the threshold that are not true positives
    return fps, tps, scores[last_of_ties]


def roc_curve(y_true, scores, *, drop_intermediate: bool = True):
    """Receiver operating characteristic: false positive rate against true positive rate for every threshold.

    A sample is called positive when its score is >= the threshold. Sliding the
    threshold from above the highest score (nothing positive: point (0, 0)) down to
    the lowest (everything positive: point (1, 1)) trades missed events for false alarms.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
        True labels, 1 = positive. Both classes must be present.
    scores : array-like of float, shape (N,)
        Higher = more likely positive (probability, logit, any finite score).
    drop_intermediate : bool
        Drop points that lie on a straight segment between their neighbours (they do
        not change the curve or its area), as scikit-learn does by default.

    Returns
    -------
    fpr : ndarray, shape (T + 1,)
        FP / (FP + TN) at each threshold, increasing from 0 to 1.
    tpr : ndarray, shape (T + 1,)
        TP / (TP + FN) (sensitivity) at each threshold.
    thresholds : ndarray, shape (T + 1,)
        Decreasing; ``thresholds[0] = inf`` gives the starting point (0, 0).

    Notes
    -----
    Identical to :func:`sklearn.metrics.roc_curve` (same points, same tie handling).

    References
    ----------
    T. Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 27 (2006).

    Examples
    --------
    >>> fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> fpr, tpr
    (array([0. , 0. , 0.5, 0.5, 1. ]), array([0. , 0.5, 0.5, 1. , 1. ]))
    """
    drop_intermediate = check_bool(drop_intermediate, "drop_intermediate")
    y_true, scores = _check_binary_scores(y_true, scores)
    fps, tps, thresholds = _counts_at_thresholds(y_true, scores)
    if tps[-1] == 0 or fps[-1] == 0:
        present = "positive (1)" if tps[-1] else "negative (0)"
        raise ValueError(
            f"the ROC curve needs both classes in y_true; only {present} samples were given "
            f"({len(y_true)} samples)"
        )
    if drop_intermediate and len(fps) > 2:
        # A point is collinear with its neighbours when both second differences vanish.
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps = np.r_[0, fps]
    tps = np.r_[0, tps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def auc(x, y) -> float:
    """Area under a curve through the points (x, y), by the trapezoidal rule.

    Parameters
    ----------
    x : array-like, shape (M,), M >= 2
        Monotonic (increasing or decreasing) x coordinates, e.g. the false positive rate.
    y : array-like, shape (M,)

    Returns
    -------
    float
        sum over segments of (x[i+1] - x[i]) * (y[i+1] + y[i]) / 2 (sign fixed for decreasing x).

    Examples
    --------
    >>> auc([0, 0.5, 1], [0, 1, 1])
    0.75
    """
    x = _to_real(x, "x")
    y = _to_real(y, "y")
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2; got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    dx = np.diff(x)
    if np.any(dx < 0) and np.any(dx > 0):
        raise ValueError("x must be monotonic (increasing or decreasing) to define an area under the curve")
    area = np.sum(dx * (y[1:] + y[:-1]) / 2)
    # Decreasing x integrates right to left: flip the sign (not abs), so a curve below the axis stays negative.
    return float(-area) if np.all(dx <= 0) else float(area)


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative.

    Ties between a positive and a negative count one half. 1.0 is a perfect ranking,
    0.5 is chance (for example all scores equal), 0.0 a perfectly inverted one.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
    scores : array-like of float, shape (N,)

    Returns
    -------
    float
        ``auc(*roc_curve(y_true, scores)[:2])``; equals :func:`sklearn.metrics.roc_auc_score`.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    fpr, tpr, _ = roc_curve(y_true, scores)
    return auc(fpr, tpr)


def _average_over_classes(per_class, y_true, average):
    check_choice(average, "average", ("macro", "weighted", None))
    if average is None:
        return per_class
    if average == "macro":
        return float(per_class.mean())
    return float(np.average(per_class, weights=np.bincount(y_true, minlength=len(per_class))))


def roc_auc_ovr(y_true, probabilities, *, average: str | None = "macro"):
    """Multi-class ROC AUC, one-vs-rest: the AUC of "class k against all others" for every k, averaged.

    Parameters
    ----------
    y_true : array-like of int, shape (N,)
        Class indices in ``range(K)``; every class must occur (each one-vs-rest ROC needs positives).
    probabilities : array-like of float, shape (N, K)
        Column k is the score for class k (softmax probabilities, as from
        :func:`deepimaging.train.predict`). Rows need not sum to 1.
    average : {"macro", "weighted", None}
        "macro": plain mean over classes; "weighted": weighted by class frequency;
        None: the K per-class AUCs.

    Returns
    -------
    float, or ndarray of shape (K,) when ``average=None``.
        Equals ``sklearn.metrics.roc_auc_score(y_true, probabilities, multi_class="ovr", average=...)``.
    """
    y_true, probabilities = _check_probabilities(y_true, probabilities)
    per_class = np.array([roc_auc(y_true == k, probabilities[:, k]) for k in range(probabilities.shape[1])])
    return _average_over_classes(per_class, y_true, average)


def precision_recall_curve(y_true, scores, *, drop_intermediate: bool = False):
    """Precision against recall for every threshold.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
        True labels; at least one positive (recall divides by the number of positives).
    scores : array-like of float, shape (N,)
        Higher = more likely positive.
    drop_intermediate : bool
        Drop points whose recall equals both neighbours' (vertical runs), as scikit-learn's option.

    Returns
    -------
    precision : ndarray, shape (T + 1,)
        TP / (TP + FP) at each threshold, then 1 (the conventional end point at recall 0).
    recall : ndarray, shape (T + 1,)
        TP / (TP + FN), decreasing to 0.
    thresholds : ndarray, shape (T,)
        Increasing distinct scores; point i uses threshold ``thresholds[i]``.

    Notes
    -----
    Identical to :func:`sklearn.metrics.precision_recall_curve`, including the order
    (increasing thresholds, decreasing recall) and the final point (recall 0, precision 1).

    Examples
    --------
    >>> precision, recall, thresholds = precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> precision
    array([0.5       , 0.66666667, 0.5       , 1.        , 1.        ])
    >>> recall
    array([1. , 1. , 0.5, 0.5, 0. ])
    """
    drop_intermediate = check_bool(drop_intermediate, "drop_intermediate")
    y_true, scores = _check_binary_scores(y_true, scores)
    fps, tps, thresholds = _counts_at_thresholds(y_true, scores)
    if tps[-1] == 0:
        raise ValueError(
            f"the precision-recall curve needs at least one positive (1) in y_true; got {len(y_true)} negatives"
        )
    if drop_intermediate and len(fps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    precision = tps / (tps + fps)  # tps + fps >= 1: at least one sample is above every kept threshold
    recall = tps / tps[-1]
    # Reverse so that thresholds increase, and close the curve at recall 0 with precision 1.
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(y_true, scores) -> float:
    """Average precision: the precision at each threshold weighted by the recall gained there.

    AP = sum_n (R_n - R_{n-1}) P_n, a step-function area under the precision-recall
    curve (no trapezoids, which would be optimistic between points).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
    scores : array-like of float, shape (N,)

    Returns
    -------
    float
        Equals :func:`sklearn.metrics.average_precision_score`.

    Examples
    --------
    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    precision, recall, _ = precision_recall_curve(y_true, scores)
    # recall decreases along the arrays, so -diff(recall) is the recall gained at each step.
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def average_precision_ovr(y_true, probabilities, *, average: str | None = "macro"):
    """Multi-class average precision, one-vs-rest (class k against all others), averaged over classes.

    Parameters and returns as :func:`roc_auc_ovr`; equals
    ``sklearn.metrics.average_precision_score(label_binarize(y_true, classes=range(K)), probabilities, average=...)``.
    """
    y_true, probabilities = _check_probabilities(y_true, probabilities)
    per_class = np.array(
        [average_precision(y_true == k, probabilities[:, k]) for k in range(probabilities.shape[1])]
    )
    return _average_over_classes(per_class, y_true, average)
