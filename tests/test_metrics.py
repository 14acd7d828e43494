"""deepimaging.metrics against independent oracles: scikit-learn, scikit-image, hand counts."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import mean_squared_error as sk_mse
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from deepimaging import metrics

FAST = settings(max_examples=60, deadline=None, database=None)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: thread start-up costs more than the work on shared CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_binary(n=300, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + y
    if ties:
        scores = np.round(scores, 0)  # a handful of distinct values: many ties across classes
    return y, scores


# Adversarial cases: ties everywhere, all-equal scores, perfect and inverted rankings.
ADVERSARIAL = {
    "random": _random_binary(),
    "ties": _random_binary(ties=True),
    "all_equal": (np.array([0, 1, 0, 1, 1, 0, 0]), np.full(7, 0.3)),
    "perfect": (np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.8, 0.9])),
    "inverted": (np.array([0, 0, 0, 1, 1]), np.array([0.9, 0.8, 0.7, 0.2, 0.1])),
    "two_samples": (np.array([1, 0]), np.array([0.5, 0.5])),
    "integer_scores": (np.array([0, 1, 1, 0, 1, 0, 1]), np.array([3, 3, 5, 1, 5, 5, 2])),
}


# ----------------------------------------------------------------------------
# Confusion matrix and rates
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_matches_sklearn(normalize):
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    y_pred[:10] = 3
    y_true[:10] = 2  # class 3 row may be sparse; class columns stay in place
    expected = skm.confusion_matrix(y_true, y_pred, labels=range(5), normalize=normalize)
    np.testing.assert_allclose(
        metrics.confusion_matrix(y_true, y_pred, num_classes=5, normalize=normalize), expected
    )


def test_confusion_matrix_binary_layout_is_tn_fp_fn_tp_by_hand():
    y_true = [0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 1, 1, 0, 1, 1, 1]  # TN=1 FP=2 FN=1 TP=3
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred), [[1, 2], [1, 3]])


def test_confusion_matrix_accepts_tensors_and_counts_every_sample():
    y_true = torch.tensor([2, 0, 1, 1])
    cm = metrics.confusion_matrix(y_true, torch.tensor([2, 0, 0, 1]))
    assert cm.sum() == 4 and cm.shape == (3, 3)


@pytest.mark.parametrize("average", ["binary", "macro", "micro", "weighted", None])
@pytest.mark.parametrize("case", ["random", "no_predicted_positive", "all_correct"])
def test_precision_recall_f1_match_sklearn(average, case):
    rng = np.random.default_rng(2)
    k = 2 if average == "binary" else 3
    y_true = rng.integers(0, k, 120)
    y_pred = {
        "random": rng.integers(0, k, 120),
        "no_predicted_positive": np.zeros(120, int),
        "all_correct": y_true,
    }[case]
    kwargs = {"average": average, "zero_division": 0.0}
    if average != "binary":
        kwargs["labels"] = list(range(k))
    ours = {"average": average, "num_classes": None if average == "binary" else k}
    np.testing.assert_allclose(
        metrics.precision(y_true, y_pred, **ours), skm.precision_score(y_true, y_pred, **kwargs)
    )
    np.testing.assert_allclose(
        metrics.recall(y_true, y_pred, **ours), skm.recall_score(y_true, y_pred, **kwargs)
    )
    np.testing.assert_allclose(
        metrics.sensitivity(y_true, y_pred, **ours), skm.recall_score(y_true, y_pred, **kwargs)
    )
    np.testing.assert_allclose(
        metrics.f1_score(y_true, y_pred, **ours), skm.f1_score(y_true, y_pred, **kwargs)
    )


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=40))
@FAST
def test_binary_rates_match_hand_counts(pairs):
    y_true, y_pred = (np.array(v) for v in zip(*pairs))
    tp = np.sum((y_true == 1) & (y_pred == 1))
    tn = np.sum((y_true == 0) & (y_pred == 0))
    fp = np.sum((y_true == 0) & (y_pred == 1))
    fn = np.sum((y_true == 1) & (y_pred == 0))

    def ratio(a, b):
        return a / b if b else 0.0

    assert metrics.sensitivity(y_true, y_pred) == pytest.approx(ratio(tp, tp + fn))
    assert metrics.specificity(y_true, y_pred) == pytest.approx(ratio(tn, tn + fp))
    assert metrics.false_positive_rate(y_true, y_pred) == pytest.approx(ratio(fp, tn + fp))
    assert metrics.false_negative_rate(y_true, y_pred) == pytest.approx(ratio(fn, tp + fn))
    assert metrics.precision(y_true, y_pred) == pytest.approx(ratio(tp, tp + fp))
    assert metrics.accuracy(y_true, y_pred) == pytest.approx((tp + tn) / len(y_true))
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


def test_specificity_is_recall_of_the_negative_class_and_one_minus_fpr():
    y_true, scores = _random_binary(seed=3)
    y_pred = (scores > 0.5).astype(int)
    assert metrics.specificity(y_true, y_pred) == pytest.approx(skm.recall_score(y_true, y_pred, pos_label=0))
    assert metrics.specificity(y_true, y_pred) == pytest.approx(
        1 - metrics.false_positive_rate(y_true, y_pred)
    )


def test_multiclass_specificity_per_class_is_one_vs_rest_recall_of_the_rest():
    rng = np.random.default_rng(4)
    y_true, y_pred = rng.integers(0, 4, 150), rng.integers(0, 4, 150)
    expected = [skm.recall_score(y_true != k, y_pred != k) for k in range(4)]
    np.testing.assert_allclose(metrics.specificity(y_true, y_pred, average=None), expected)


def test_f1_is_twice_the_lectures_inverse_sum_form():
    y_true, scores = _random_binary(seed=5)
    y_pred = (scores > 0.3).astype(int)
    p, r = metrics.precision(y_true, y_pred), metrics.recall(y_true, y_pred)
    lecture_form = 1 / (1 / p + 1 / r)
    assert metrics.f1_score(y_true, y_pred) == pytest.approx(2 * lecture_form)
    assert metrics.f1_score(y_true, y_true) == 1.0  # perfect classifier: standard F1 is 1, not 0.5


def test_classification_report_matches_sklearn_and_adds_specificity():
    rng = np.random.default_rng(6)
    y_true, y_pred = rng.integers(0, 3, 90), rng.integers(0, 3, 90)
    names = ["neutrophil", "lymphocyte", "monocyte"]
    ours = metrics.classification_report(y_true, y_pred, classes=names)
    theirs = skm.classification_report(y_true, y_pred, target_names=names, output_dict=True, zero_division=0)
    for key in [*names, "macro avg", "weighted avg"]:
        for field in ("precision", "recall", "f1-score", "support"):
            assert ours[key][field] == pytest.approx(theirs[key][field]), (key, field)
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
    np.testing.assert_allclose(
        [ours[n]["specificity"] for n in names], metrics.specificity(y_true, y_pred, average=None)
    )
    text = metrics.classification_report(y_true, y_pred, classes=names, output="text")
    assert all(n in text for n in names) and "specificity" in text


# ----------------------------------------------------------------------------
# ROC and precision-recall curves
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
@pytest.mark.parametrize("drop_intermediate", [True, False])
def test_roc_curve_matches_sklearn(case, drop_intermediate):
    y, scores = ADVERSARIAL[case]
    ours = metrics.roc_curve(y, scores, drop_intermediate=drop_intermediate)
    theirs = skm.roc_curve(y, scores, drop_intermediate=drop_intermediate)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_roc_auc_matches_sklearn(case):
    y, scores = ADVERSARIAL[case]
    assert metrics.roc_auc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores))


def test_roc_auc_special_cases_perfect_inverted_chance():
    assert metrics.roc_auc(*ADVERSARIAL["perfect"]) == 1.0
    assert metrics.roc_auc(*ADVERSARIAL["inverted"]) == 0.0
    assert metrics.roc_auc(*ADVERSARIAL["all_equal"]) == 0.5


@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=2, max_size=30).filter(
        lambda pairs: len({label for label, _ in pairs}) == 2
    )
)
@FAST
def test_roc_auc_is_the_probability_a_positive_outranks_a_negative(pairs):
    y, scores = (np.array(v) for v in zip(*pairs))  # integer scores 0..5: ties are common
    pos, neg = scores[y == 1], scores[y == 0]
    wins = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert metrics.roc_auc(y, scores) == pytest.approx(wins)
    fpr, tpr, thr = metrics.roc_curve(y, scores)
    np.testing.assert_allclose(fpr, skm.roc_curve(y, scores)[0])
    np.testing.assert_allclose(tpr, skm.roc_curve(y, scores)[1])


@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
@pytest.mark.parametrize("drop_intermediate", [True, False])
def test_precision_recall_curve_and_average_precision_match_sklearn(case, drop_intermediate):
    y, scores = ADVERSARIAL[case]
    ours = metrics.precision_recall_curve(y, scores, drop_intermediate=drop_intermediate)
    theirs = skm.precision_recall_curve(y, scores, drop_intermediate=drop_intermediate)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b)
    assert metrics.average_precision(y, scores) == pytest.approx(skm.average_precision_score(y, scores))


def test_precision_recall_curve_with_only_positives_matches_sklearn():
    y, scores = np.ones(5, int), np.array([0.2, 0.4, 0.4, 0.9, 0.1])
    for a, b in zip(metrics.precision_recall_curve(y, scores), skm.precision_recall_curve(y, scores)):
        np.testing.assert_allclose(a, b)


@given(
    st.lists(st.tuples(st.integers(0, 1), st.floats(-3, 3)), min_size=1, max_size=40).filter(
        lambda pairs: any(label for label, _ in pairs)
    )
)
@FAST
def test_average_precision_matches_sklearn_property(pairs):
    y, scores = (np.array(v) for v in zip(*pairs))
    assert metrics.average_precision(y, scores) == pytest.approx(skm.average_precision_score(y, scores))


def test_auc_matches_sklearn_for_increasing_and_decreasing_x():
    x, y = np.array([0, 0.1, 0.4, 0.4, 1.0]), np.array([0, 0.5, 0.6, 0.9, 1.0])
    assert metrics.auc(x, y) == pytest.approx(skm.auc(x, y))
    assert metrics.auc(x[::-1], y[::-1]) == pytest.approx(skm.auc(x[::-1], y[::-1]))


def _softmax_like(n, k, seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.arange(k), rng.integers(0, k, n - k)]
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits)
    return y, p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_roc_auc_ovr_matches_sklearn(average):
    y, p = _softmax_like(200, 4, 7)
    assert metrics.roc_auc_ovr(y, p, average=average) == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average=average)
    )
    per_class = metrics.roc_auc_ovr(torch.tensor(y), torch.tensor(p), average=None)
    np.testing.assert_allclose(per_class, [skm.roc_auc_score(y == k, p[:, k]) for k in range(4)])


@pytest.mark.parametrize("average", ["macro", "weighted", None])
def test_average_precision_ovr_matches_sklearn(average):
    y, p = _softmax_like(150, 3, 8)
    expected = skm.average_precision_score(label_binarize(y, classes=range(3)), p, average=average)
    np.testing.assert_allclose(metrics.average_precision_ovr(y, p, average=average), expected)


# ----------------------------------------------------------------------------
# Jaccard for masks and boxes
# ----------------------------------------------------------------------------


def test_jaccard_matches_sklearn_on_masks():
    rng = np.random.default_rng(9)
    a, b = rng.random((32, 32)) > 0.6, rng.random((32, 32)) > 0.5
    assert metrics.jaccard(a, b) == pytest.approx(skm.jaccard_score(a.ravel(), b.ravel()))
    assert metrics.jaccard(torch.tensor(a), torch.tensor(a).int()) == 1.0
    assert metrics.jaccard(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0  # documented zero_division


def test_box_jaccard_hand_example():
    iou = metrics.box_jaccard([[0, 0, 2, 2]], [[1, 0, 3, 2], [5, 5, 6, 6], [0, 0, 2, 2]])
    np.testing.assert_allclose(iou, [[2 / 6, 0.0, 1.0]])


@given(st.lists(st.integers(0, 12), min_size=8, max_size=8))
@FAST
def test_box_jaccard_equals_jaccard_of_rasterized_boxes(corners):
    boxes = []
    for i in (0, 4):
        x0, x1 = sorted(corners[i : i + 4 : 2])
        y0, y1 = sorted(corners[i + 1 : i + 4 : 2])
        boxes.append((x0, y0, x1, y1))
    masks = []
    for x0, y0, x1, y1 in boxes:
        m = np.zeros((13, 13), bool)
        m[y0:y1, x0:x1] = True  # a box covers x0 <= x < x1, y0 <= y < y1
        masks.append(m)
    expected = metrics.jaccard(masks[0], masks[1], zero_division=0.0)
    assert float(metrics.box_jaccard(boxes[0], boxes[1])[0, 0]) == pytest.approx(expected)
    assert float(metrics.box_jaccard(boxes[1], boxes[0])[0, 0]) == pytest.approx(expected)


def test_box_jaccard_on_the_simulated_smear_field():
    from deepimaging.data import simulate_smear_field

    _, boxes, _, _ = simulate_smear_field(size=256, n_cells=4, cell_size=48, seed=0)
    iou = metrics.box_jaccard(boxes, boxes)
    np.testing.assert_allclose(torch.diagonal(iou), 1.0)
    shifted = boxes + torch.tensor([4, 0, 4, 0])  # 4 px right: overlap (w - 4) / (w + 4) for width w
    widths = (boxes[:, 2] - boxes[:, 0]).double()
    np.testing.assert_allclose(
        torch.diagonal(metrics.box_jaccard(boxes, shifted)), (widths - 4) / (widths + 4)
    )


# ----------------------------------------------------------------------------
# MSE, PSNR, SSIM
# ----------------------------------------------------------------------------


def _image_pairs():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 40, 48, generator=g)
    smooth = torch.nn.functional.avg_pool2d(x, 5, 1, 2)  # structured images, not just noise
    noisy = (smooth + 0.05 * torch.randn(smooth.shape, generator=g)).clamp(0, 1)
    bright = 0.85 + 0.15 * smooth  # a bright background, where float32 variance loses digits
    return {
        "noise": (x, torch.rand(3, 3, 40, 48, generator=g)),
        "smooth_vs_noisy": (smooth, noisy),
        "bright_blurred": (bright, torch.nn.functional.avg_pool2d(bright, 3, 1, 1)),
        "quantized": (smooth, torch.round(smooth * 7) / 7),
    }


def _sk_ssim(a, b, full=False):
    return sk_ssim(
        a.double().numpy(),
        b.double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
        full=full,
    )


@pytest.mark.parametrize("case", sorted(_image_pairs()))
def test_ssim_matches_skimage_wang_settings(case):
    x, y = _image_pairs()[case]
    expected = torch.tensor([_sk_ssim(a, b) for a, b in zip(x, y)])
    np.testing.assert_allclose(metrics.ssim(x, y, data_range=1.0).double(), expected, atol=1e-5)
    np.testing.assert_allclose(float(metrics.ssim(x[0], y[0], data_range=1.0)), float(expected[0]), atol=1e-5)


def test_ssim_map_is_skimage_full_map_on_the_valid_region():
    x, y = _image_pairs()["smooth_vs_noisy"]
    _, ssim_map = metrics.ssim(x[:1], y[:1], data_range=1.0, return_map=True)
    _, full_map = _sk_ssim(x[0], y[0], full=True)  # (C, H, W), borders included
    assert ssim_map.shape == (1, 3, 30, 38)
    np.testing.assert_allclose(ssim_map[0].double(), full_map[:, 5:-5, 5:-5], atol=1e-5)


def test_ssim_differs_from_skimage_defaults():
    x, y = _image_pairs()["smooth_vs_noisy"]
    default = sk_ssim(x[0].numpy(), y[0].numpy(), data_range=1.0, channel_axis=0)  # 7x7 uniform, sample cov.
    assert abs(float(metrics.ssim(x[0], y[0], data_range=1.0)) - default) > 1e-3


def test_ssim_identical_is_one_and_symmetric():
    x, y = _image_pairs()["smooth_vs_noisy"]
    np.testing.assert_allclose(metrics.ssim(x, x, 1.0), 1.0, atol=1e-6)
    np.testing.assert_allclose(metrics.ssim(x, y, 1.0), metrics.ssim(y, x, 1.0), atol=1e-7)


def test_ssim_of_uint8_counts_equals_ssim_of_scaled_floats():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 256, (2, 1, 24, 24), generator=g, dtype=torch.uint8)
    b = torch.randint(0, 256, (2, 1, 24, 24), generator=g, dtype=torch.uint8)
    np.testing.assert_allclose(metrics.ssim(a, b), metrics.ssim(a / 255, b / 255, data_range=1.0), atol=1e-5)


def test_ssim_gradcheck_float64():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 2, 13, 14, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 2, 13, 14, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: metrics.ssim(a, b, data_range=1.0), (x, y))


def test_ssim_as_a_loss_improves_a_blurry_estimate():
    g = torch.Generator().manual_seed(3)
    target = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 32, 32, generator=g), 3, 1, 1)
    estimate = torch.full_like(target, 0.5, requires_grad=True)
    optimizer = torch.optim.Adam([estimate], lr=0.05)
    start = float(metrics.ssim(estimate.detach(), target, 1.0))
    for _ in range(20):
        optimizer.zero_grad()
        loss = 1 - metrics.ssim(estimate, target, 1.0).mean()
        loss.backward()
        optimizer.step()
    assert float(metrics.ssim(estimate.detach(), target, 1.0)) > start + 0.3


def test_psnr_and_mse_match_skimage_per_image():
    x, y = _image_pairs()["smooth_vs_noisy"]
    np.testing.assert_allclose(
        metrics.psnr(x, y, data_range=1.0).double(),
        [sk_psnr(a.numpy(), b.numpy(), data_range=1.0) for a, b in zip(x, y)],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        metrics.mse(x, y), [sk_mse(a.numpy(), b.numpy()) for a, b in zip(x, y)], rtol=1e-5
    )
    assert torch.isinf(metrics.psnr(x, x, data_range=1.0)).all()


def test_psnr_with_data_range_from_bits_on_counts():
    g = torch.Generator().manual_seed(4)
    a = torch.randint(0, 4096, (1, 1, 16, 16), generator=g).double()
    b = (a + torch.randint(-20, 21, a.shape, generator=g)).clamp(0, 4095)
    expected = sk_psnr(a[0].numpy(), b[0].numpy(), data_range=4095)
    assert float(metrics.psnr(a, b, data_range=metrics.data_range_from_bits(12))[0]) == pytest.approx(
        expected
    )


def test_data_range_from_bits():
    assert [metrics.data_range_from_bits(b) for b in (1, 8, 12, 16)] == [1, 255, 4095, 65535]


# ----------------------------------------------------------------------------
# Bad input: each a clear error
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.confusion_matrix([0, 1, 1], [0, 1]),
        lambda: metrics.roc_curve([0, 1, 1], [0.1, 0.2]),
        lambda: metrics.precision_recall_curve([0, 1], [0.1, 0.2, 0.3]),
        lambda: metrics.roc_auc_ovr([0, 1, 2], np.full((2, 3), 1 / 3)),
        lambda: metrics.f1_score([0, 1], [1]),
    ],
)
def test_mismatched_lengths_raise(call):
    with pytest.raises(ValueError, match="same length"):
        call()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_scores_raise(bad):
    y, scores = np.array([0, 1, 0, 1]), np.array([0.1, bad, 0.3, 0.9])
    for function in (
        metrics.roc_curve,
        metrics.roc_auc,
        metrics.precision_recall_curve,
        metrics.average_precision,
    ):
        with pytest.raises(ValueError, match="finite"):
            function(y, scores)
    with pytest.raises(ValueError, match="finite"):
        metrics.roc_auc_ovr([0, 1], np.array([[0.5, bad], [0.5, 0.5]]))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.confusion_matrix([0, 3], [0, 1], num_classes=3), "range\\(3\\)"),
        (lambda: metrics.confusion_matrix([0, -1], [0, 1]), ">= 0"),
        (lambda: metrics.confusion_matrix([0, 1.5], [0, 1]), "integer"),
        (lambda: metrics.sensitivity([0, 2], [0, 1]), "range\\(2\\)"),
        (lambda: metrics.roc_curve([0, 2, 1], [0.1, 0.2, 0.3]), "binary labels"),
        (lambda: metrics.roc_auc_ovr([0, 3], np.full((2, 3), 1 / 3)), "range\\(3\\)"),
        (lambda: metrics.classification_report([0, 2], [0, 1], classes=["a", "b"]), "range\\(2\\)"),
    ],
)
def test_labels_outside_the_class_range_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1, 1]])
def test_roc_with_a_single_class_raises(y):
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_curve(y, [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc(y, [0.1, 0.5, 0.9])


def test_precision_recall_without_positives_and_ovr_with_missing_class_raise():
    with pytest.raises(ValueError, match="at least one positive"):
        metrics.precision_recall_curve([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="classes \\[2\\]"):
        metrics.roc_auc_ovr([0, 1, 1], np.full((3, 3), 1 / 3))
    with pytest.raises(ValueError, match="shape \\(N, K\\)"):
        metrics.roc_auc_ovr([0, 1], [0.2, 0.8])


def test_images_smaller_than_the_ssim_window_raise():
    x = torch.rand(1, 1, 10, 32)
    with pytest.raises(ValueError, match="at least 11 x 11"):
        metrics.ssim(x, x, data_range=1.0)
    with pytest.raises(ValueError, match="odd"):
        metrics.ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), data_range=1.0, window_size=4)


def test_float_images_without_a_data_range_raise():
    x = torch.rand(1, 1, 16, 16)
    for function in (metrics.ssim, metrics.psnr):
        with pytest.raises(ValueError, match="needs data_range"):
            function(x, x)
    with pytest.raises(ValueError, match="greater than 0"):
        metrics.psnr(x, x, data_range=0)


def test_image_shape_mismatch_raises():
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 17)
    for call in (
        lambda: metrics.ssim(a, b, data_range=1.0),
        lambda: metrics.psnr(a, b, data_range=1.0),
        lambda: metrics.mse(a, b),
        lambda: metrics.jaccard(a > 0.5, b > 0.5),
    ):
        with pytest.raises(ValueError, match="same shape"):
            call()
    with pytest.raises(ValueError, match="\\(N, C, H, W\\)"):
        metrics.ssim(torch.rand(16, 16), torch.rand(16, 16), data_range=1.0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        metrics.ssim(np.zeros((1, 16, 16)), np.zeros((1, 16, 16)), data_range=1.0)


def test_nan_images_and_bad_masks_and_boxes_raise():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="finite"):
        metrics.ssim(x, x.clone().fill_(float("nan")), data_range=1.0)
    with pytest.raises(ValueError, match="binary mask"):
        metrics.jaccard(x, x)
    with pytest.raises(ValueError, match="x0 <= x1"):
        metrics.box_jaccard([[3, 0, 1, 2]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="\\(N, 4\\)"):
        metrics.box_jaccard([[0, 0, 1]], [[0, 0, 1, 1]])


def test_bad_options_raise():
    with pytest.raises(ValueError, match="average"):
        metrics.precision([0, 1], [0, 1], average="samples")
    with pytest.raises(ValueError, match="normalize"):
        metrics.confusion_matrix([0, 1], [0, 1], normalize="rows")
    with pytest.raises(ValueError, match="empty"):
        metrics.confusion_matrix([], [])
    with pytest.raises(ValueError, match="bits"):
        metrics.data_range_from_bits(0)


# ----------------------------------------------------------------------------
# Figures and the threshold explorer
# ----------------------------------------------------------------------------


@pytest.fixture
def close_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_plot_confusion_matrix_shows_row_percentages_and_counts(close_figures):
    from deepimaging import plots

    y_true, y_pred = [0, 0, 0, 0, 1, 1, 2], [0, 0, 0, 1, 1, 2, 2]
    ax = plots.plot_confusion_matrix(y_true, y_pred, classes=["a", "b", "c"])
    texts = {t.get_text() for t in ax.texts}
    assert {"75%\n(3)", "25%\n(1)", "50%\n(1)", "100%\n(1)"} <= texts
    np.testing.assert_allclose(ax.images[0].get_array()[0], [75, 25, 0])
    same = plots.plot_confusion_matrix(skm.confusion_matrix(y_true, y_pred), classes=["a", "b", "c"])
    assert {t.get_text() for t in same.texts} == texts
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion_matrix(np.ones((2, 3)))


def test_plot_roc_and_pr_put_sklearn_auc_and_ap_in_the_legend(close_figures):
    from deepimaging import plots

    y, scores = _random_binary(seed=10)
    ax = plots.plot_roc_curve(y, scores, label="cnn")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"cnn (AUC = {skm.roc_auc_score(y, scores):.3f})" in legend
    assert any("chance" in text for text in legend)
    ax = plots.plot_precision_recall_curve(y, scores)
    assert f"PR (AP = {skm.average_precision_score(y, scores):.3f})" in [
        t.get_text() for t in ax.get_legend().get_texts()
    ]
    iso = [line for line in ax.get_lines() if line.get_gid() == "iso-f1"]
    r, p = iso[0].get_data()
    np.testing.assert_allclose(2 * p * r / (p + r), 0.2, atol=1e-9)  # each contour has constant F1
    ax = plots.plot_threshold_tradeoff(y, scores, threshold=0.5)
    assert ax.get_xlabel().startswith("threshold")
    y4, p4 = _softmax_like(100, 4, 11)
    ax = plots.plot_roc_ovr(y4, p4, classes=list("abcd"))
    assert f"{skm.roc_auc_score(y4, p4, multi_class='ovr'):.3f}" in ax.get_title()


def test_threshold_explorer_counts_match_sklearn_and_a_move_updates_the_views(close_figures):
    from deepimaging.widgets import ThresholdExplorer

    y, scores = _random_binary(n=200, seed=12)
    explorer = ThresholdExplorer(y, scores, threshold=0.0)
    assert explorer.slider.description == "threshold"
    before_image, before_text = explorer.image.value, explorer.readout.value
    explorer.slider.value = 1.0
    assert explorer.image.value != before_image and explorer.readout.value != before_text
    for threshold in (explorer.slider.value, -10.0, 0.37, 10.0, float(scores[5])):
        y_pred = (scores >= threshold).astype(int)
        (tn, fp), (fn, tp) = skm.confusion_matrix(y, y_pred, labels=[0, 1])
        assert explorer.counts(threshold) == {"TP": tp, "FP": fp, "FN": fn, "TN": tn}
        rates = explorer.rates(threshold)
        assert rates["f1"] == pytest.approx(skm.f1_score(y, y_pred, zero_division=0))
        assert rates["precision"] == pytest.approx(skm.precision_score(y, y_pred, zero_division=0))
    assert "TP" in explorer.readout.value and "specificity" in explorer.readout.value
    bundle = explorer._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" in bundle
    assert "deepimaging-threshold" in explorer.widget._dom_classes


def test_threshold_explorer_rejects_a_single_class():
    from deepimaging.widgets import ThresholdExplorer

    with pytest.raises(ValueError, match="both classes"):
        ThresholdExplorer([1, 1, 1], [0.2, 0.5, 0.9])
