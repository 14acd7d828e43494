"""Classification metrics at one decision threshold: the confusion matrix and the rates read from it.

Labels are integer class indices (numpy arrays, lists or tensors); binary tasks use
1 for the positive class. Every rate (sensitivity, specificity, precision, F1, ...)
is a ratio of counts of the confusion matrix, for the positive class or for every
class against the rest, averaged as scikit-learn averages. The curves over all
thresholds are in :mod:`.curves`. See :mod:`deepimaging.metrics`.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import MAX_CLASSES, check_choice, check_int, check_number
from .._checks import check_labels as _check_labels
from .._checks import check_same_length as _check_same_length

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
