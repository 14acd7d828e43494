"""Hostile but realistic input to the metrics (issue 21).

Each test is one case a student met: a broken file, a typo, an empty batch. The
expected outcome is either the right result, checked against an independent
oracle (scikit-learn, scikit-image, a memory trace), or a ValueError / TypeError whose message names the parameter.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from deepimaging import metrics

# ---------------------------------------------------------------- metrics


def test_ssim_of_an_empty_batch_is_an_empty_batch_like_mse_and_psnr():
    x = torch.zeros(0, 3, 16, 16)
    values, ssim_map = metrics.ssim(x, x, data_range=1.0, return_map=True)
    assert values.shape == (0,) and ssim_map.shape == (0, 3, 6, 6)
    assert metrics.mse(x, x).shape == (0,) and metrics.psnr(x, x, data_range=1.0).shape == (0,)


def test_ssim_of_a_batch_with_an_empty_one_inside_matches_skimage_per_image():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    ours = metrics.ssim(x, y, data_range=1.0)
    for k in range(2):
        expected = structural_similarity(
            x[k, 0].numpy(), y[k, 0].numpy(), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0,
        )  # fmt: skip
        assert float(ours[k]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("name", ["data_range", "k1", "k2", "sigma"])
def test_ssim_refuses_an_infinite_constant_instead_of_returning_nan(name):
    x = torch.rand(1, 1, 16, 16)
    options = {"data_range": 1.0, name: float("inf")}
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        metrics.ssim(x, x, **options)


def test_image_metrics_refuse_images_without_pixels_or_with_complex_values():
    with pytest.raises(ValueError, match="x must have at least one channel and one pixel"):
        metrics.mse(torch.zeros(2, 0, 4, 4), torch.zeros(2, 0, 4, 4))
    with pytest.raises(TypeError, match="x must hold real pixel values"):
        metrics.psnr(torch.zeros(1, 4, 4, dtype=torch.complex64), torch.zeros(1, 4, 4), data_range=1.0)


def test_confusion_matrix_refuses_an_id_as_a_label_before_allocating_anything():
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"y_true holds the class index 1000000000.*np.unique"):
        metrics.confusion_matrix([0, 10**9], [0, 1])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10**6  # bytes: no 10**18-cell matrix was started
    with pytest.raises(ValueError, match=r"num_classes must be in \[2, 4096\]; got 1000000000"):
        metrics.confusion_matrix([0, 1], [0, 1], num_classes=10**9)


def test_relabelling_ids_as_the_message_advises_gives_sklearns_confusion_matrix():
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = np.array([7, 10**9, 7, 42]), np.array([7, 42, 10**9, 42])
    classes, both = np.unique(np.r_[y_true, y_pred], return_inverse=True)
    ours = metrics.confusion_matrix(both[:4], both[4:], num_classes=len(classes))
    np.testing.assert_array_equal(ours, confusion_matrix(y_true, y_pred, labels=classes))


def test_huge_float_labels_are_refused_as_too_large_not_reported_as_negative():
    with pytest.raises(ValueError, match=r"y_pred holds the class index 1e\+300"):
        metrics.accuracy([0.0, 1.0], [0.0, 1e300])


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: metrics.jaccard(["a"], ["b"]), "mask_a"),
        (lambda: metrics.jaccard([True], [object()]), "mask_b"),
        (lambda: metrics.box_jaccard([["a", "b", "c", "d"]], [[0, 0, 1, 1]]), "boxes_a"),
        (lambda: metrics.auc(["0", "1"], [0, 1]), "x"),
        (lambda: metrics.roc_auc([0, 1], ["low", "high"]), "scores"),
        (lambda: metrics.roc_auc([0, 1], np.array([0.1, 0.9]) * 1j), "scores"),
        (lambda: metrics.roc_auc_ovr([0, 1], [["a", "b"], ["c", "d"]]), "probabilities"),
        (lambda: metrics.classification_report([0, 1], [0, 1], classes="ab"), "classes"),
    ],
)
def test_text_or_complex_numbers_are_a_type_error_naming_the_argument(call, name):
    with pytest.raises(TypeError, match=f"^{name} must"):
        call()


def test_jaccard_zero_division_must_be_a_number_in_the_unit_interval():
    with pytest.raises(ValueError, match="zero_division must be in"):
        metrics.jaccard([0], [0], zero_division=2.0)
