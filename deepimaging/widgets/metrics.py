"""Explorers for metrics: slide a decision threshold along the ROC and precision-recall curves."""

from __future__ import annotations

import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .. import metrics
from .._checks import check_binary_scores, check_number
from ..plots.metrics import plot_confusion_matrix, plot_precision_recall_curve, plot_roc_curve
from ._base import Explorer

__all__ = ["ThresholdExplorer"]


class ThresholdExplorer(Explorer):
    """A threshold slider that moves the operating point along the ROC and PR curves.

    Each position of the slider calls every sample with score >= threshold
    positive. The explorer shows where that operating point sits on the ROC and
    precision-recall curves, the 2 x 2 confusion matrix it gives, and its
    sensitivity, specificity, precision and F1.

    The curves and the counts at every distinct score are computed once in
    ``__init__`` (one sort); moving the slider looks the counts up and redraws
    the markers and the matrix on a figure that is kept.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
        True labels, 1 = positive; both classes must occur.
    scores : array-like of float, shape (N,)
        Higher = more likely positive (e.g. the probability of the positive class).
    threshold : float, optional
        Starting threshold (default 0.5 when the scores lie in [0, 1], else their median).
    classes : pair of str
        Names of the negative and positive class for the confusion matrix.

    Attributes
    ----------
    slider : ipywidgets.FloatSlider
        The threshold.
    image : ipywidgets.Image
        ROC, PR and confusion matrix at the current threshold (PNG).
    readout : ipywidgets.HTML
        TP, FP, FN, TN, sensitivity, specificity, precision, F1 and accuracy.

    Examples
    --------
    >>> explorer = ThresholdExplorer([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> explorer.slider.value = 0.3
    >>> explorer.counts()
    {'TP': 2, 'FP': 1, 'FN': 0, 'TN': 1}
    """

    name = "threshold"

    def __init__(self, y_true, scores, *, threshold: float | None = None, classes=("negative", "positive")):
        self.y_true, self.scores = check_binary_scores(y_true, scores)
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
            raise TypeError(f"classes must be two class names, negative first; got {classes!r}")
        self.classes = [str(c) for c in classes]
        if len(self.classes) != 2:
            raise ValueError(
                f"classes must name the negative and the positive class; got {len(self.classes)} names"
            )
        # Every distinct score, decreasing, with the rates when it is the threshold (index 0:
        # threshold +inf, nothing positive). drop_intermediate=False keeps every score.
        fpr, tpr, self._thresholds = metrics.roc_curve(self.y_true, self.scores, drop_intermediate=False)
        positives = int(self.y_true.sum())
        negatives = len(self.y_true) - positives
        self._tp = np.rint(tpr * positives).astype(int)
        self._fp = np.rint(fpr * negatives).astype(int)
        self._fn = positives - self._tp
        self._tn = negatives - self._fp

        lo, hi = float(self.scores.min()), float(self.scores.max())
        if threshold is None:
            threshold = 0.5 if 0 <= lo and hi <= 1 else float(np.median(self.scores))
            threshold = float(np.clip(threshold, lo, hi))
        else:
            # A threshold outside the scores is meaningful (every sample one class): the slider is
            # widened to hold it, where it would otherwise clamp it without a word.
            threshold = check_number(threshold, "threshold")
            if not np.isfinite(threshold):
                raise ValueError(f"threshold must be a finite number; got {threshold}")
            lo, hi = min(lo, threshold), max(hi, threshold)
        span = hi - lo if hi > lo else 1.0
        self.slider = widgets.FloatSlider(
            value=threshold,
            min=lo,
            max=hi if hi > lo else lo + 1.0,
            step=span / 200,
            description="threshold",
            readout_format=".3f",
            continuous_update=True,
            layout={"width": "480px"},
        )
        self.image = widgets.Image(format="png")
        self.readout = widgets.HTML()

        # One figure, kept: a slider move changes markers and the matrix, then re-renders.
        self._figure = Figure(figsize=(12, 4))
        self._draw_curves(self._figure)
        self.slider.observe(self._on_threshold, names="value")
        self._update()
        self._finish(widgets.VBox([self.slider, self.readout, self.image]))

    # -- the numbers at a threshold ------------------------------------------------

    def _index(self, threshold: float) -> int:
        """Position in the precomputed arrays: how many distinct scores are >= threshold."""
        return int(np.searchsorted(-self._thresholds[1:], -threshold, side="right"))

    def counts(self, threshold: float | None = None) -> dict:
        """TP, FP, FN, TN when samples with score >= ``threshold`` (default: the slider's) are positive."""
        i = self._index(self.slider.value if threshold is None else threshold)
        return {
            "TP": int(self._tp[i]),
            "FP": int(self._fp[i]),
            "FN": int(self._fn[i]),
            "TN": int(self._tn[i]),
        }

    def rates(self, threshold: float | None = None) -> dict:
        """Sensitivity, specificity, precision, F1 and accuracy at ``threshold`` (default: the slider's)."""
        c = self.counts(threshold)
        tp, fp, fn, tn = c["TP"], c["FP"], c["FN"], c["TN"]

        def ratio(a, b):
            return a / b if b else 0.0  # scikit-learn's zero_division=0

        return {
            "sensitivity": ratio(tp, tp + fn),
            "specificity": ratio(tn, tn + fp),
            "precision": ratio(tp, tp + fp),
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "accuracy": (tp + tn) / (tp + fp + fn + tn),
        }

    # -- drawing ----------------------------------------------------------------------

    def _draw_curves(self, fig):
        """The curves, which never change, and the artists a threshold move updates."""
        ax_roc, ax_pr, ax_cm = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1]})
        plot_roc_curve(self.y_true, self.scores, ax=ax_roc, title="ROC: operating point")
        plot_precision_recall_curve(
            self.y_true, self.scores, ax=ax_pr, title="Precision-recall: operating point"
        )
        (roc_marker,) = ax_roc.plot([], [], "o", color="tab:red", ms=9, zorder=5)
        (pr_marker,) = ax_pr.plot([], [], "o", color="tab:red", ms=9, zorder=5)
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.2, top=0.9, wspace=0.45)
        return {"roc": roc_marker, "pr": pr_marker, "cm": ax_cm}

    def _draw_point(self, artists, threshold):
        c = self.counts(threshold)
        r = self.rates(threshold)
        artists["roc"].set_data([1 - r["specificity"]], [r["sensitivity"]])
        # With nothing called positive precision is undefined; the PR curve ends at (0, 1).
        artists["pr"].set_data([r["sensitivity"]], [r["precision"] if c["TP"] + c["FP"] else 1.0])
        ax_cm = artists["cm"]
        ax_cm.clear()
        matrix = np.array([[c["TN"], c["FP"]], [c["FN"], c["TP"]]])
        plot_confusion_matrix(
            matrix, classes=self.classes, ax=ax_cm, colorbar=False, title=f"threshold = {threshold:.3f}"
        )

    def _update(self):
        threshold = self.slider.value
        if not hasattr(self, "_artists"):
            self._artists = {
                "roc": self._figure.axes[0].lines[-1],
                "pr": self._figure.axes[1].lines[-1],
                "cm": self._figure.axes[2],
            }
        self._draw_point(self._artists, threshold)
        buffer = io.BytesIO()
        self._figure.savefig(buffer, format="png", dpi=72)  # fixed layout: one render per move
        self.image.value = buffer.getvalue()
        c, r = self.counts(), self.rates()
        self.readout.value = (
            f"<b>threshold {threshold:.3f}</b>: TP {c['TP']}, FP {c['FP']}, FN {c['FN']}, TN {c['TN']} | "
            f"sensitivity {r['sensitivity']:.3f}, specificity {r['specificity']:.3f}, "
            f"precision {r['precision']:.3f}, F1 {r['f1']:.3f}, accuracy {r['accuracy']:.3f}"
        )

    def _on_threshold(self, change):
        self._update()

    def static_figure(self):
        fig = plt.figure(figsize=(12, 4))
        artists = self._draw_curves(fig)
        self._draw_point(artists, self.slider.value)
        return fig
