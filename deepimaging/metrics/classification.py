"""Classification metrics in numpy: confusion matrix, rates, ROC and precision-recall curves.

Labels are integer class indices (numpy arrays, lists or tensors); binary tasks use
1 for the positive class; scores are finite real numbers, higher = more positive.
The curves are written out by hand (sort, cumulative counts, one point per distinct
score) and return exactly what scikit-learn returns. See :mod:`deepimaging.metrics`.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import MAX_CLASSES, check_bool, check_choice, check_int, check_number
from .._checks import check_binary_scores as _check_binary_scores
from .._checks import check_labels as _check_labels
from .._checks import check_probabilities as _check_probabilities
from .._checks import check_same_length as _check_same_length
from .._checks import to_real as _to_real

__all__ = [
    "confusion_matrix",
    "sensitivity",
    "recall",
    "specificity",
    "false_positive_rate",
    "false_negative_rate",
    "precision",
    "f1_score",
    "accuracy",
    "classification_report",
    "roc_curve",
    "auc",
    "roc_auc",
    "roc_auc_ovr",
    "precision_recall_curve",
    "average_precision",
    "average_precision_ovr",
]

AVERAGES = ("binary", "macro", "weighted", "micro", None)


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------


def _check_label_pair(y_true, y_pred, num_classes=None, binary=False):
    if num_classes is not None:
        num_classes = check_int(num_classes, "num_classes", 2, MAX_CLASSES)
    if binary:
        num_classes = 2
    try:
        y_true = _check_labels(y_true, "y_true", num_classes)
        y_pred = _check_labels(y_pred, "y_pred", num_classes)
    except ValueError as err:
        if not binary:
            raise
        raise ValueError(
            f"{err}; average='binary' needs labels 0 and 1 "
            "(for several classes pass average='macro', 'weighted', 'micro' or None)"
        ) from None
    _check_same_length(y_true, y_pred, "y_true", "y_pred")
    if num_classes is None:
        num_classes = max(int(y_true.max()), int(y_pred.max())) + 1
    return y_true, y_pred, max(num_classes, 2)


# ----------------------------------------------------------------------------
# Counting: the confusion matrix and the rates read from it
# ----------------------------------------------------------------------------


def confusion_matrix(
    y_true, y_pred, *, num_classes: int | None = None, normalize: str | None = None
) -> np.ndarray:
    """Count how often each true class was predicted as each class.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
        True and predicted class indices in ``range(num_classes)`` (numpy, list or tensor).
    num_classes : int, optional
        K, from 2 to :data:`MAX_CLASSES` (4096). Default: the largest label seen + 1
        (at least 2); a label of 4096 or more is refused rather than allocating a
        matrix of that size squared.
    normalize : {None, "true", "pred", "all"}
        None gives counts; "true" divides each row by the number of samples of that
        true class (row fractions: row k, column k is the sensitivity of class k;
        an empty row stays 0), "pred" divides each column, "all" divides by N.

    Returns
    -------
    ndarray, shape (K, K)
        ``C[i, j]`` = number of samples of true class i predicted as class j.
        For two classes this is ``[[TN, FP], [FN, TP]]`` (scikit-learn's layout).

    Examples
    --------
    >>> confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1])
    array([[1, 1],
           [0, 2]])
    """
    check_choice(normalize, "normalize", (None, "true", "pred", "all"))
    y_true, y_pred, k = _check_label_pair(y_true, y_pred, num_classes)
    # One bin per (true, predicted) pair: index k * true + predicted.
    counts = np.bincount(k * y_true + y_pred, minlength=k * k).reshape(k, k)
    if normalize is None:
        return counts
    total = {
        "true": counts.sum(axis=1, keepdims=True),
        "pred": counts.sum(axis=0, keepdims=True),
        "all": counts.sum(),
    }[normalize]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(counts / total)


def _one_vs_rest_counts(y_true, y_pred, num_classes, average):
    """TP, FP, FN, TN of every class against the rest, each of shape (K,)."""
    binary = check_choice(average, "average", AVERAGES) == "binary"
    y_true, y_pred, k = _check_label_pair(y_true, y_pred, num_classes, binary)
    cm = np.bincount(k * y_true + y_pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp  # predicted as k, truly another class
    fn = cm.sum(axis=1) - tp  # truly k, predicted as another class
    tn = cm.sum() - tp - fp - fn
    return tp, fp, fn, tn


def _rate(numerator, denominator, support, average, zero_division):
    """numerator / denominator per class, then averaged the way scikit-learn averages."""
    check_choice(average, "average", AVERAGES)
    # NaN is allowed, as in scikit-learn: "undefined stays undefined"; otherwise a rate in [0, 1].
    if not (isinstance(zero_division, float) and math.isnan(zero_division)):
        zero_division = check_number(zero_division, "zero_division", 0.0, 1.0)
    numerator = numerator.astype(np.float64)
    denominator = denominator.astype(np.float64)
    if average == "micro":  # pool the counts of all classes, then divide once
        num, den = numerator.sum(), denominator.sum()
        return float(num / den) if den > 0 else zero_division
    per_class = np.full(len(numerator), zero_division, dtype=np.float64)
    np.divide(numerator, denominator, out=per_class, where=denominator > 0)
    if average == "binary":
        return float(per_class[1])
    if average == "macro":
        return float(per_class.mean())
    if average == "weighted":
        return float(np.average(per_class, weights=support)) if support.sum() > 0 else zero_division
    return per_class


_AVERAGE_DOC = """
    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
        True and predicted labels. With ``average="binary"`` both must be 0 or 1 and 1 is
        the positive class; otherwise class indices in ``range(num_classes)``.
    average : {"binary", "macro", "weighted", "micro", None}
        "binary": the rate of the positive class 1. The multi-class versions treat every
        class k in turn as positive against the rest (one-vs-rest): None returns the K
        rates, "macro" their plain mean, "weighted" their mean weighted by each class's
        number of true samples, "micro" pools the counts of all classes before dividing.
    num_classes : int, optional
        K for the multi-class versions, at most 4096 (default: largest label + 1).
    zero_division : float
        Returned where the denominator is zero: a number in [0, 1] or NaN (default 0.0,
        as scikit-learn).

    Returns
    -------
    float, or ndarray of shape (K,) when ``average=None``.
"""


def sensitivity(y_true, y_pred, *, average="binary", num_classes=None, zero_division=0.0):
    """Sensitivity = recall = true positive rate = TP / (TP + FN): the share of real positives found.
    {doc}
    Examples
    --------
    >>> sensitivity([0, 0, 1, 1], [0, 1, 1, 0])
    0.5
    """
    tp, fp, fn, tn = _one_vs_rest_counts(y_true, y_pred, num_classes, average)
    return _rate(tp, tp + fn, tp + fn, average, zero_division)


def recall(y_true, y_pred, *, average="binary", num_classes=None, zero_division=0.0):
    """Recall = sensitivity = TP / (TP + FN); the name used next to precision.
    {doc}"""
    return sensitivity(y_true, y_pred, average=average, num_classes=num_classes, zero_division=zero_division)


def specificity(y_true, y_pred, *, average="binary", num_classes=None, zero_division=0.0):
    """Specificity = true negative rate = TN / (TN + FP) = 1 - false positive rate.
    {doc}
    Examples
    --------
    >>> specificity([0, 0, 0, 1], [0, 0, 1, 1])
    0.6666666666666666
    """
    tp, fp, fn, tn = _one_vs_rest_counts(y_true, y_pred, num_classes, average)
    return _rate(tn, tn + fp, tp + fn, average, zero_division)


def false_positive_rate(y_true, y_pred, *, average="binary", num_classes=None, zero_division=0.0):
    """False positive rate (false alarms) = FP / (TN + FP) = 1 - specificity.
    {doc}"""
    tp, fp, fn, tn = _one_vs_rest_counts(y_true, y_pred, num_classes, average)
    return _rate(fp, tn + fp, tp + fn, average, zero_division)


def false_negative_rate(y_true, y_pred, *, average="binary", num_classes=None, zero_division=0.0):
    """False negative rate (missed events) = FN / (TP + FN) = 1 - sensitivity.
    {doc}"""
    tp, fp, fn, tn = _one_vs_rest_counts(y_true, y_pred, num_classes, average)
    return _rate(fn, tp + fn, tp + fn, average, zero_division)


def precision(y_true, y_pred, *, average="binary", num_classes=None, zero_division=0.0):
    """Precision = positive predictive value = TP / (TP + FP): the share of alarms that are real.
    {doc}"""
    tp, fp, fn, tn = _one_vs_rest_counts(y_true, y_pred, num_classes, average)
    return _rate(tp, tp + fp, tp + fn, average, zero_division)


def f1_score(y_true, y_pred, *, average="binary", num_classes=None, zero_division=0.0):
    """F1 score, the harmonic mean of precision P and recall R: F1 = 2PR / (P + R) = 2TP / (2TP + FP + FN).

    The lecture writes F1 = (1/P + 1/R)^-1. That expression is **half** the harmonic
    mean: (1/P + 1/R)^-1 = PR / (P + R) = F1 / 2, so it tops out at 0.5 for a perfect
    classifier. This function returns the standard F1 (1.0 when perfect), the number
    scikit-learn, papers and leaderboards report; to get the lecture's expression,
    divide by 2. Counting form 2TP / (2TP + FP + FN) needs no division by P or R, so it
    is defined (0) even when nothing is predicted positive, as long as some sample is
    positive.
    {doc}
    Examples
    --------
    >>> f1_score([0, 1, 1, 1], [1, 1, 1, 0])  # P = R = 2/3
    0.6666666666666666
    """
    tp, fp, fn, tn = _one_vs_rest_counts(y_true, y_pred, num_classes, average)
    return _rate(2 * tp, 2 * tp + fp + fn, tp + fn, average, zero_division)


# The parameters are the same for every rate: written once (_AVERAGE_DOC), filled in at {doc}.
for _f in (sensitivity, recall, specificity, false_positive_rate, false_negative_rate, precision, f1_score):
    _f.__doc__ = _f.__doc__.replace("{doc}", _AVERAGE_DOC)


def accuracy(y_true, y_pred) -> float:
    """Accuracy = share of samples whose predicted class is the true class = trace(C) / N.

    For two classes: (TP + TN) / (TP + TN + FP + FN).

    Examples
    --------
    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    y_true, y_pred, _ = _check_label_pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def classification_report(y_true, y_pred, *, classes=None, output: str = "dict"):
    """Precision, recall (sensitivity), F1, specificity and support of every class, one-vs-rest.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
        Class indices in ``range(K)``.
    classes : sequence of str, optional
        Class names, K of them (default ``"0"``, ``"1"``, ... up to the largest label).
    output : {"dict", "text"}
        "dict" returns a nested dict (below); "text" a table to print.

    Returns
    -------
    dict or str
        Keyed like scikit-learn's ``classification_report(output_dict=True)``: one entry
        per class name with ``precision``, ``recall``, ``f1-score``, ``specificity`` and
        ``support`` (number of true samples), then ``accuracy`` (a float), and
        ``macro avg`` and ``weighted avg`` (the same four rates averaged plainly or by
        support, with ``support`` = N).
    """
    check_choice(output, "output", ("dict", "text"))
    if isinstance(classes, (str, bytes)) or not (classes is None or hasattr(classes, "__len__")):
        raise TypeError(f"classes must be a list of class names; got {classes!r} ({type(classes).__name__})")
    if classes is not None and not 2 <= len(classes) <= MAX_CLASSES:
        raise ValueError(f"classes must name 2 to {MAX_CLASSES} classes; got {len(classes)}")
    k = None if classes is None else len(classes)
    y_true, y_pred, k = _check_label_pair(y_true, y_pred, k)
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    tp, fp, fn, tn = _one_vs_rest_counts(y_true, y_pred, k, None)
    support = tp + fn
    rates = {
        "precision": _rate(tp, tp + fp, support, None, 0.0),
        "recall": _rate(tp, tp + fn, support, None, 0.0),
        "f1-score": _rate(2 * tp, 2 * tp + fp + fn, support, None, 0.0),
        "specificity": _rate(tn, tn + fp, support, None, 0.0),
    }
    report = {
        name: {**{key: float(values[i]) for key, values in rates.items()}, "support": int(support[i])}
        for i, name in enumerate(names)
    }
    report["accuracy"] = float(np.mean(y_true == y_pred))
    report["macro avg"] = {key: float(values.mean()) for key, values in rates.items()}
    report["macro avg"]["support"] = int(support.sum())
    report["weighted avg"] = {
        key: float(np.average(values, weights=support)) for key, values in rates.items()
    }
    report["weighted avg"]["support"] = int(support.sum())
    if output == "dict":
        return report
    width = max(12, *(len(n) for n in names))
    lines = [
        f"{'':>{width}} {'precision':>10} {'recall':>10} {'f1-score':>10} {'specificity':>11} {'support':>8}"
    ]
    for name in [*names, "macro avg", "weighted avg"]:
        if name == "macro avg":
            lines.append("")
        row = report[name]
        lines.append(
            f"{name:>{width}} {row['precision']:>10.3f} {row['recall']:>10.3f} {row['f1-score']:>10.3f} "
            f"{row['specificity']:>11.3f} {row['support']:>8d}"
        )
    lines.insert(len(names) + 2, f"{'accuracy':>{width}} {'':>10} {'':>10} {report['accuracy']:>10.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Curves over all thresholds: ROC and precision-recall
# ----------------------------------------------------------------------------


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
