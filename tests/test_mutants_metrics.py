"""Tests written to kill the mutants of ``deepimaging.metrics`` that the metrics tests let survive.

Each test names the mutant it was written for (``SAMPLE=100 SEED=0 bash benchmarks/mutation.sh metrics``,
then a second sample with ``SEED=1``; see benchmarks/mutation_results.md). Oracles: scikit-learn's
weighted averages, scikit-image's SSIM map in float64, and the documented contract that bad input is
refused with a message naming the function, the parameter and what arrived.
"""

import warnings

import numpy as np
import pytest
import sklearn.metrics
import torch
from skimage.metrics import structural_similarity

from deepimaging import metrics


@pytest.mark.parametrize(
    "ours, sklearns",
    [
        (metrics.precision, sklearn.metrics.precision_score),
        (metrics.recall, sklearn.metrics.recall_score),
        (metrics.f1_score, sklearn.metrics.f1_score),
    ],
)
@pytest.mark.parametrize("y_true, y_pred", [([1], [1]), ([0], [0]), ([1], [0])])
def test_weighted_average_of_a_single_sample_matches_sklearn(ours, sklearns, y_true, y_pred):
    """A weighted rate over one sample is that sample's class's rate (classification._rate 76: support > 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about the class with no samples
        expected = sklearns(y_true, y_pred, average="weighted", labels=[0, 1], zero_division=0.0)
    assert ours(y_true, y_pred, average="weighted", num_classes=2) == pytest.approx(expected)


def test_a_rate_names_zero_division_when_it_is_outside_the_unit_interval():
    """zero_division=2 is refused naming the parameter and the value (classification._rate 22)."""
    with pytest.raises(ValueError, match=r"^zero_division must be in \[0\.0, 1\.0\]; got 2\.0$"):
        metrics.precision([0, 1], [0, 0], zero_division=2)


def test_roc_curve_says_which_single_class_it_was_given():
    """Only positives: the error says positive (1) samples arrived, not negative (curves.roc_curve 29)."""
    with pytest.raises(ValueError, match=r"only positive \(1\) samples were given \(3 samples\)"):
        metrics.roc_curve([1, 1, 1], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match=r"only negative \(0\) samples were given \(2 samples\)"):
        metrics.roc_curve([0, 0], [0.1, 0.5])


@pytest.mark.parametrize("function", [metrics.roc_auc_ovr, metrics.average_precision_ovr])
def test_one_vs_rest_areas_name_average_when_it_is_unknown(function):
    """average="micro" is refused naming ``average`` (curves._average_over_classes 7)."""
    y_true = [0, 1, 2, 0, 1, 2]
    probabilities = np.eye(3)[[0, 1, 2, 1, 1, 2]]
    with pytest.raises(ValueError, match=r"^average must be one of .*; got 'micro'$"):
        function(y_true, probabilities, average="micro")


def test_precision_recall_curve_names_drop_intermediate_when_it_is_not_a_flag():
    """drop_intermediate="yes" is a TypeError naming the parameter (curves.precision_recall_curve 4)."""
    with pytest.raises(TypeError, match=r"^drop_intermediate must be True or False; got 'yes' \(str\)$"):
        metrics.precision_recall_curve([0, 1], [0.2, 0.8], drop_intermediate="yes")


def test_box_jaccard_names_both_tables_when_the_iou_table_would_be_too_large():
    """4000 x 2501 boxes (> 10**7 pairs) are refused naming boxes_a and boxes_b (image.box_jaccard 24)."""
    boxes_a = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(4000, 4)
    boxes_b = torch.tensor([[0.0, 0.0, 2.0, 2.0]]).expand(2501, 4)
    with pytest.raises(ValueError, match=r"^boxes_a and boxes_b hold 4000 and 2501 boxes: 10004000 pairs"):
        metrics.box_jaccard(boxes_a, boxes_b)


def test_ssim_errors_name_ssim_and_say_how_to_choose_data_range():
    """ssim's messages name ssim (image.ssim 10) and give the data_range advice word for word (_check_image_pair 32)."""
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    advice = (
        "the span of possible values: data_range=1.0 for images in [0, 1], data_range_from_bits(b) = 2**b - 1 "
        "for raw b-bit counts (only uint8 images imply it: 255)"
    )
    with pytest.raises(ValueError) as error:
        metrics.ssim(x, x)
    assert str(error.value) == f"ssim of torch.float32 images needs data_range, {advice}"
    bad = x.clone()
    bad[0, 0, 3, 4] = float("inf")
    with pytest.raises(ValueError, match=r"^ssim needs finite images; y holds NaN or infinite values$"):
        metrics.ssim(x, bad, data_range=1.0)


# ---------------------------------------------------------------- second sample (SEED=1)


def test_ssim_in_float32_of_a_bright_and_a_dark_channel_matches_skimage_in_float64():
    """Each channel's own mean is taken off before the second moments (image._ssim_map 2: one mean for all)."""
    # A bright flat background with faint texture (channel 0, near 1) and a dark one (channel 1, near
    # 0). Centred on its own mean, each channel's E[x^2] - E[x]^2 keeps float32's digits (the map is
    # within 2e-7 of scikit-image's float64 map); centred on their common mean (0.5), both channels
    # lose them to cancellation and the map is off by about 1e-4.
    generator = torch.Generator().manual_seed(0)
    texture = torch.rand(2, 24, 24, generator=generator, dtype=torch.float64)
    x = torch.stack([0.99 + 0.004 * texture[0], 0.004 * texture[1]])
    y = (x + 0.002 * torch.randn(x.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    value, ssim_map = metrics.ssim(x.float(), y.float(), data_range=1.0, return_map=True)
    expected_value, expected_map = structural_similarity(
        x.numpy(),
        y.numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
        full=True,
    )
    np.testing.assert_allclose(ssim_map.double().numpy(), expected_map[:, 5:-5, 5:-5], rtol=0, atol=2e-6)
    assert value.item() == pytest.approx(expected_value, abs=2e-6)


def test_image_metrics_refuse_a_data_range_or_constant_above_its_bound_naming_it():
    """data_range above 2**64 and k1 above 1 are refused (image._check_image_pair 39, image._check_positive 18)."""
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    for call in (
        lambda: metrics.psnr(x, x, data_range=2.0**65),
        lambda: metrics.ssim(x, x, data_range=2.0**65),
    ):
        with pytest.raises(
            ValueError, match=r"^data_range must be in \[0, 1\.8446744073709552e\+19\]; got 3\.68"
        ):
            call()
    with pytest.raises(ValueError, match=r"^k1 must be in \[0, 1\.0\]; got 1\.5$"):
        metrics.ssim(x, x, data_range=1.0, k1=1.5)


def test_ssim_names_window_size_and_return_map_when_they_are_wrong():
    """window_size=0 and return_map="yes" are refused by name (image.ssim 25, image.ssim 64)."""
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with pytest.raises(ValueError, match=r"^window_size must be in \[1, inf\]; got 0$"):
        metrics.ssim(x, x, data_range=1.0, window_size=0)
    with pytest.raises(TypeError, match=r"^return_map must be True or False; got 'yes' \(str\)$"):
        metrics.ssim(x, x, data_range=1.0, return_map="yes")


def test_a_mask_of_text_is_a_type_error_naming_the_type_that_arrived():
    """A list of strings as a mask: the error says a list arrived (image._as_tensor 13: says NoneType)."""
    with pytest.raises(
        TypeError, match=r"^mask_a must be a binary mask \(bool, or 0/1 values\); got list of dtype <U1$"
    ):
        metrics.jaccard(["a", "b"], [0, 1])


def test_labels_of_different_lengths_are_refused_naming_both_and_their_lengths():
    """y_pred shorter than y_true: both names and both lengths in the error (classification._check_label_pair 50)."""
    with pytest.raises(ValueError, match=r"^y_true and y_pred must have the same length; got 3 and 1$"):
        metrics.f1_score([0, 1, 1], [1], average="macro")


def test_auc_refuses_a_nan_point_with_its_message():
    """auc of a curve with NaN says x and y must be finite (curves.auc 30)."""
    with pytest.raises(ValueError, match=r"^x and y must be finite$"):
        metrics.auc([0.0, float("nan"), 1.0], [0.0, 0.5, 1.0])


# --- a third sample (SAMPLE=100 SEED=2), drawn after the tests above were written ---------------------


def test_auc_refuses_a_non_monotonic_x_whose_steps_are_all_shorter_than_one_like_sklearn():
    """x = 0, 0.5, 0.2 goes up and back by less than 1 (curves.auc 40: only steps > 1 counted as up)."""
    x, y = [0.0, 0.5, 0.2], [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="neither increasing nor decreasing"):
        sklearn.metrics.auc(x, y)  # the oracle refuses it too
    with pytest.raises(ValueError, match=r"x must be monotonic"):
        metrics.auc(x, y)


def test_roc_curve_names_drop_intermediate_when_it_is_not_a_flag():
    """curves.roc_curve 8 (the check names DROP_INTERMEDIATE)."""
    with pytest.raises(TypeError, match=r"^drop_intermediate must be True or False; got 'no' \(str\)$"):
        metrics.roc_curve([0, 1], [0.2, 0.8], drop_intermediate="no")


def test_a_ragged_mask_is_a_type_error_naming_the_mask():
    """image._as_tensor 3 (TypeError(None) for a list NumPy cannot make an array of)."""
    with pytest.raises(TypeError, match=r"^mask_a must be a binary mask \(bool, or 0/1 values\); got list$"):
        metrics.jaccard([[1, 0], [1]], [[1, 0], [1, 0]])


def test_ssim_names_x_when_x_is_not_a_tensor():
    """The type check names the first image (its loop's twin of image._check_image_pair 50)."""
    with pytest.raises(
        TypeError, match=r"^x must be a torch\.Tensor of shape \(N, C, H, W\) or \(C, H, W\); got list"
    ):
        metrics.ssim([[0.0]], torch.zeros(1, 4, 4))


def test_a_probability_map_as_a_mask_is_refused_with_how_to_threshold_it():
    """image._check_mask 20 (the advice wrapped in XX...XX)."""
    with pytest.raises(
        ValueError, match=r"\(threshold a probability map first, e\.g\. mask = probabilities > 0\.5\)$"
    ):
        metrics.jaccard(torch.tensor([0.2, 0.9]), torch.tensor([0, 1]))


def test_box_jaccard_of_boxes_smaller_than_a_pixel_is_their_area_ratio():
    """image.box_jaccard 78 (union clamped to at least 1: sub-pixel boxes got intersection / 1).

    By hand: [0, 0, 0.5, 0.5] and [0, 0, 0.25, 0.5] overlap in the second (area 0.125);
    the union is the first (0.25), so IoU = 0.5. Boxes in micrometres or normalised
    coordinates are this small.
    """
    iou = metrics.box_jaccard(torch.tensor([[0.0, 0.0, 0.5, 0.5]]), torch.tensor([[0.0, 0.0, 0.25, 0.5]]))
    assert float(iou[0, 0]) == pytest.approx(0.5)


def test_a_nan_in_x_is_refused_naming_the_function_and_x():
    """image._check_image_pair 50 (the finiteness check's loop names the first image XXxXX)."""
    x = torch.zeros(1, 4, 4)
    x[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"^psnr needs finite images; x holds NaN or infinite values$"):
        metrics.psnr(x, torch.zeros(1, 4, 4), data_range=1.0)


# --- metrics seed 3 (a fresh sample with main's tests: 93 of 100; its survivors below) --------------


def test_binary_metrics_given_three_classes_say_which_averages_several_classes_take():
    """classification._check_label_pair 38: the hint names average=None exactly as Python spells it."""
    with pytest.raises(
        ValueError,
        match=r"^y_true must hold class indices in range\(2\) for 2 classes; got 2; average='binary' "
        r"needs labels 0 and 1 \(for several classes pass average='macro', 'weighted', 'micro' or None\)$",
    ):
        metrics.f1_score([0, 1, 2], [0, 1, 2])


def test_classification_report_names_the_wrong_classes_and_their_count():
    """classification.classification_report 26 and 33: the type that arrived; 1 class is not 2 to 4096."""
    with pytest.raises(TypeError, match=r"^classes must be a list of class names; got 5 \(int\)$"):
        metrics.classification_report([0, 1], [0, 1], classes=5)
    with pytest.raises(ValueError, match=r"^classes must name 2 to 4096 classes; got 1$"):
        metrics.classification_report([0, 1], [0, 1], classes=["a"])


def test_auc_names_y_when_y_holds_text():
    """curves.auc 14: the argument that holds no numbers is named as the caller wrote it, y."""
    with pytest.raises(TypeError, match=r"^y must hold real numbers; got dtype <U1$"):
        metrics.auc([0, 1], ["a", "b"])


def test_ssim_refuses_k2_above_1_naming_it():
    """image.ssim 55: k2, like k1, is a fraction of the data range in (0, 1]."""
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    with pytest.raises(ValueError, match=r"^k2 must be in \[0, 1\.0\]; got 1\.5$"):
        metrics.ssim(x, x, data_range=1.0, k2=1.5)
    assert metrics.ssim(x, x, data_range=1.0, k2=1.0).item() == pytest.approx(1.0)
