"""Classification and image-quality metrics, in the lecture's names.

Classification (numpy; labels are integer class indices, scores are real numbers):

- counting: :func:`confusion_matrix` (rows = true class, columns = predicted class,
  scikit-learn's layout; for two classes ``[[TN, FP], [FN, TP]]``);
- rates at one operating point: :func:`sensitivity` (= :func:`recall`), :func:`specificity`,
  :func:`false_positive_rate`, :func:`false_negative_rate`, :func:`precision`, :func:`f1_score`,
  :func:`accuracy`, and :func:`classification_report` for every class at once;
- curves over all thresholds: :func:`roc_curve`, :func:`auc`, :func:`roc_auc`,
  :func:`precision_recall_curve`, :func:`average_precision`, and the one-vs-rest
  multi-class versions :func:`roc_auc_ovr` and :func:`average_precision_ovr`.

Counting and rates are in :mod:`.classification`, the curves in :mod:`.curves`.
The curve functions are written out by hand (sort the scores, count true and false
positives cumulatively, keep one point per distinct score) because the course shows
the steps; they return exactly what scikit-learn returns, and the tests check that.

Image quality (torch, per image):

- :func:`jaccard` for masks and :func:`box_jaccard` (intersection over union) for boxes;
- :func:`mse`, :func:`psnr`, and :func:`ssim` (differentiable, usable as a loss);
- :func:`data_range_from_bits` gives L = 2**bits - 1.

Binary conventions: the positive class is label 1, a sample is predicted positive
when its score is >= the threshold, and a ratio whose denominator is zero (for
example precision when nothing is predicted positive) returns ``zero_division``
(0.0 by default, as scikit-learn does).
"""

from . import classification, curves, image
from .classification import *
from .curves import *
from .image import *

__all__ = classification.__all__ + curves.__all__ + image.__all__
