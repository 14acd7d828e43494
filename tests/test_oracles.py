"""Cases chosen to catch specific small bugs, each checked against an independent oracle.

Every test here was written against a deliberate mutant of the package (issue 25): the
mutant is named in the test's docstring, and the test fails when it is reapplied.
Where the code works in chunks, the inputs are sized so that at least one chunk
boundary falls inside them (a chunk offset that is ignored shows up only there).
"""

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from skimage.metrics import structural_similarity
from sklearn.neighbors import NearestNeighbors

from deepimaging import metrics
from deepimaging.data import ImageDataset, simulate_blood_smear
from deepimaging.interpret import extract_features, nearest_neighbors, sliding_window
from deepimaging.metrics import image as image_metrics
from deepimaging.models import BasicCNN
from deepimaging.train import predict

# ---------------------------------------------------------------- auc: the sign of the area


@pytest.mark.parametrize(
    "x, y",
    [
        ([0.0, 0.5, 1.0], [-1.0, -2.0, -1.0]),  # increasing x, curve below the axis: negative area
        ([1.0, 0.5, 0.0], [-1.0, -2.0, -1.0]),  # decreasing x, curve below the axis: still negative
        ([0.0, 1.0, 2.0, 3.0], [1.0, -3.0, -3.0, 1.0]),  # crossing the axis, net negative
        ([3.0, 2.0, 1.0, 0.0], [1.0, -3.0, -3.0, 1.0]),
        ([0.0, 1.0, 2.0], [2.0, -1.0, 0.5]),  # crossing the axis, net positive
    ],
    ids=[
        "increasing-below",
        "decreasing-below",
        "increasing-crossing",
        "decreasing-crossing",
        "net-positive",
    ],
)
def test_auc_keeps_the_sign_of_a_curve_below_the_axis_like_sklearn(x, y):
    """Mutant: ``auc`` returns ``abs(area)``. sklearn.metrics.auc integrates with the sign of y."""
    assert metrics.auc(x, y) == pytest.approx(skm.auc(x, y))
    assert metrics.auc(x, y) == pytest.approx(-metrics.auc(x, -np.asarray(y)))  # odd in y


# ---------------------------------------------------------------- nearest neighbours across query chunks


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 2048])
def test_nearest_neighbors_excluding_self_matches_sklearn_across_query_chunks(chunk_size):
    """Mutant: the excluded own position ignores the chunk's offset (queries then find themselves).

    scikit-learn's ``kneighbors()`` with no query argument leaves each point out of its own result.
    2,100 points cross the default chunk of 2,048 queries too.
    """
    x = torch.randn(2100, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    found = nearest_neighbors(x, x, k=3, exclude_self=True, chunk_size=chunk_size)
    distances, indices = NearestNeighbors(n_neighbors=3, algorithm="brute").fit(x.numpy()).kneighbors()
    np.testing.assert_array_equal(found.indices.numpy(), indices)
    np.testing.assert_allclose(found.distances.numpy(), distances, rtol=1e-9, atol=1e-9)
    assert not (found.indices == torch.arange(len(x))[:, None]).any()


def test_nearest_neighbors_excluding_given_positions_matches_sklearn_across_query_chunks():
    """Queries that are database rows 50..149: sklearn on the database without that row is the oracle."""
    generator = torch.Generator().manual_seed(1)
    database = torch.randn(300, 4, generator=generator, dtype=torch.float64)
    own = list(range(50, 150))
    found = nearest_neighbors(database[own], database, k=2, exclude_self=own, chunk_size=16)
    for j, row in enumerate(own):
        keep = np.delete(np.arange(len(database)), row)
        _, idx = (
            NearestNeighbors(n_neighbors=2).fit(database.numpy()[keep]).kneighbors(database.numpy()[[row]])
        )
        np.testing.assert_array_equal(found.indices[j].numpy(), keep[idx[0]])


# ---------------------------------------------------------------- SSIM: the constants, and CPU chunks


def skimage_ssim(a, b, data_range):
    """scikit-image with the settings this package documents as Wang et al. (2004)."""
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=0,
    )


@pytest.mark.parametrize("level", [0.002, 0.01, 0.05])
def test_ssim_of_dark_images_matches_skimage(level):
    """Mutant: ``c1 = k1 * L`` instead of ``(k1 * L)**2``.

    c1 only matters where the local means are small against it: dark images (as a
    1-bit or underexposed sensor gives). Bright textured images hide a wrong c1.
    """
    generator = torch.Generator().manual_seed(2)
    x = level * torch.rand(2, 1, 24, 24, generator=generator, dtype=torch.float64)
    y = (x + 0.3 * level * torch.randn(x.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    ours = metrics.ssim(x, y, data_range=1.0)
    for i in range(2):
        assert ours[i].item() == pytest.approx(skimage_ssim(x[i].numpy(), y[i].numpy(), 1.0), abs=1e-9)


def test_ssim_of_dark_uint8_images_matches_skimage():
    """The uint8 path (L = 255), again dark so that c1 decides the luminance term."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randint(0, 4, (1, 3, 20, 20), generator=generator, dtype=torch.uint8)
    y = torch.randint(0, 4, (1, 3, 20, 20), generator=generator, dtype=torch.uint8)
    expected = skimage_ssim(x[0].numpy(), y[0].numpy(), 255)
    assert metrics.ssim(x, y).item() == pytest.approx(expected, abs=1e-5)


def test_ssim_of_a_batch_larger_than_one_cpu_chunk_matches_skimage_image_by_image():
    """On a CPU, SSIM runs a few images at a time; 70 images of 64 x 64 cross the chunk of 64."""
    n = image_metrics._CPU_CHUNK_PIXELS // (64 * 64) + 6
    generator = torch.Generator().manual_seed(4)
    x = torch.rand(n, 1, 64, 64, generator=generator, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    y[-3:] = 1 - y[-3:]  # the images after the boundary differ from those before it
    ours = metrics.ssim(x, y, data_range=1.0)
    expected = [skimage_ssim(a.numpy(), b.numpy(), 1.0) for a, b in zip(x, y)]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-9)


# ---------------------------------------------------------------- batches of models: the last one is partial


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = BasicCNN(3, 4, widths=(4, 8)).eval()
    return model


def test_predict_in_batches_equals_one_softmax_over_all_images(small_model):
    data = simulate_blood_smear(n_per_class=3, size=16, seed=0)  # 12 images, batches of 5: 5, 5, 2
    result = predict(small_model, data, batch_size=5, device="cpu")
    with torch.no_grad():
        expected = torch.softmax(small_model(data.images), dim=1)
    torch.testing.assert_close(result.probabilities, expected)
    assert torch.equal(result.predicted, expected.argmax(1))
    assert torch.equal(result.labels, data.labels)


def test_extract_features_in_batches_equals_one_pass_over_all_images(small_model):
    images = torch.rand(11, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    features = extract_features(
        small_model, ImageDataset(images, torch.zeros(11, dtype=torch.long), ["a"]), batch_size=4
    )
    with torch.no_grad():
        expected = small_model.embed(images).flatten(1)
    torch.testing.assert_close(features, expected)


def test_sliding_window_in_batches_equals_each_window_classified_alone(small_model):
    image = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(6))
    window, stride = 16, 8  # 4 rows x 5 cols = 20 windows, batches of 3
    probabilities = sliding_window(small_model, image, window=window, stride=stride, batch_size=3)
    assert probabilities.shape == (4, 4, 5)
    with torch.no_grad():
        for r in range(4):
            for c in range(5):
                crop = image[:, r * stride : r * stride + window, c * stride : c * stride + window]
                expected = torch.softmax(small_model(crop[None]), dim=1)[0]
                torch.testing.assert_close(probabilities[:, r, c], expected)


def test_simulated_smear_images_after_a_chunk_boundary_are_cells_of_their_label():
    """The simulation renders in chunks of images; every image, before and after a boundary, is drawn.

    The chunk holds 2**18 / size**2 images (at least 8); at size 16 that is 1,024, so
    1,040 images cross it. An image left unrendered would be the empty tensor's garbage or
    zeros; a rendered one has the smear's bright background and a darker cell.
    """
    data = simulate_blood_smear(n_per_class=260, size=16, seed=0)
    boundary = 2**18 // (16 * 16)
    assert len(data) > boundary
    images = data.images
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    per_image_spread = images.flatten(1).std(1)
    assert (per_image_spread > 0.01).all()  # no blank image, on either side of the boundary
    # the label order is random, so both sides hold every class
    assert set(data.labels[:boundary].tolist()) == set(data.labels[boundary:].tolist()) == {0, 1, 2, 3}


# ---------------------------------------------------------------- classification_report: mutmut survivors


@pytest.mark.parametrize("with_names", [True, False], ids=["named-classes", "default-names"])
def test_classification_report_with_an_absent_and_a_never_predicted_class_matches_sklearn(with_names):
    """Survivors of mutmut on metrics/: zero_division 0 -> 1, the class count dropped, default names.

    Class 3 appears nowhere (zero support, nothing predicted: 0/0 rates), class 2 is never
    predicted (precision 0/0); scikit-learn with ``labels=range(4), zero_division=0`` is the oracle.
    """
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 0])
    y_pred = np.array([0, 1, 1, 1, 0, 0, 1, 0])
    names = ["a", "b", "c", "d"] if with_names else None
    if with_names:
        ours = metrics.classification_report(y_true, y_pred, classes=names)
    else:
        ours = metrics.classification_report(y_true, y_pred)
    theirs = skm.classification_report(
        y_true, y_pred, labels=range(4 if with_names else 3), output_dict=True, zero_division=0
    )
    keys = names or ["0", "1", "2"]
    assert [k for k in ours if k not in ("accuracy", "macro avg", "weighted avg")] == keys
    for ours_key, their_key in zip(keys, [str(i) for i in range(len(keys))]):
        for field in ("precision", "recall", "f1-score", "support"):
            assert ours[ours_key][field] == pytest.approx(theirs[their_key][field]), (ours_key, field)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for average in ("macro avg", "weighted avg"):
        for field in ("precision", "recall", "f1-score"):
            assert ours[average][field] == pytest.approx(theirs[average][field]), (average, field)
    negatives = [y_true != k for k in range(len(keys))]
    specificity = [np.mean(y_pred[n] != k) if n.any() else 0.0 for k, n in enumerate(negatives)]
    np.testing.assert_allclose([ours[k]["specificity"] for k in keys], specificity)


def test_classification_report_names_the_output_parameter_in_its_error():
    with pytest.raises(ValueError, match=r"\boutput\b.*'table'"):
        metrics.classification_report([0, 1], [0, 1], output="table")


def test_classification_report_text_holds_the_dict_values_in_labelled_rows():
    """The printed table: header names, one row per class, a blank line, accuracy, then the averages."""
    y_true, y_pred = [0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2]
    names = ["eosinophil", "b", "c"]
    report = metrics.classification_report(y_true, y_pred, classes=names)
    lines = metrics.classification_report(y_true, y_pred, classes=names, output="text").split("\n")
    assert lines[0].split() == ["precision", "recall", "f1-score", "specificity", "support"]
    width = len(lines[1]) - len(lines[1].lstrip()) + len(names[0])  # names right-aligned to the longest
    assert width == max(12, len(names[0]))
    for line, name in zip(lines[1:4], names):
        label, *numbers = line.split()
        assert label == name
        expected = [report[name][k] for k in ("precision", "recall", "f1-score", "specificity")]
        np.testing.assert_allclose([float(v) for v in numbers[:4]], expected, atol=5e-4)
        assert int(numbers[4]) == report[name]["support"]
    assert lines[4] == ""
    assert lines[5].split() == ["accuracy", f"{report['accuracy']:.3f}"]
    assert lines[6].split()[:2] == ["macro", "avg"] and lines[7].split()[:2] == ["weighted", "avg"]
    assert len(lines) == 8


RATES = {  # name: (numerator, denominator) from one-vs-rest counts tn, fp, fn, tp
    "sensitivity": (lambda tn, fp, fn, tp: tp, lambda tn, fp, fn, tp: tp + fn),
    "recall": (lambda tn, fp, fn, tp: tp, lambda tn, fp, fn, tp: tp + fn),
    "specificity": (lambda tn, fp, fn, tp: tn, lambda tn, fp, fn, tp: tn + fp),
    "false_positive_rate": (lambda tn, fp, fn, tp: fp, lambda tn, fp, fn, tp: tn + fp),
    "false_negative_rate": (lambda tn, fp, fn, tp: fn, lambda tn, fp, fn, tp: tp + fn),
    "precision": (lambda tn, fp, fn, tp: tp, lambda tn, fp, fn, tp: tp + fp),
    "f1_score": (lambda tn, fp, fn, tp: 2 * tp, lambda tn, fp, fn, tp: 2 * tp + fp + fn),
}


@pytest.mark.parametrize("name", list(RATES))
def test_one_vs_rest_rates_match_counts_from_sklearns_multilabel_confusion_matrix(name):
    """Survivors: the class count, the binary check, zero_division and the support weights dropped.

    Class 3 has no sample and no prediction (its recall-like rates are 0/0: zero_division);
    the counts come from sklearn.metrics.multilabel_confusion_matrix.
    """
    function = getattr(metrics, name)
    y_true = np.array([0, 1, 1, 2, 2, 2, 0, 1, 2])
    y_pred = np.array([0, 1, 0, 2, 1, 2, 1, 1, 0])
    (tn, fp), (fn, tp) = np.moveaxis(skm.multilabel_confusion_matrix(y_true, y_pred, labels=range(4)), 0, -1)
    numerator, denominator = (f(tn, fp, fn, tp) for f in RATES[name])
    expected = np.divide(numerator, denominator, out=np.full(4, 0.25), where=denominator > 0)
    per_class = function(y_true, y_pred, average=None, num_classes=4, zero_division=0.25)
    np.testing.assert_allclose(per_class, expected)
    support = tp + fn
    weighted = function(y_true, y_pred, average="weighted", zero_division=0.25)
    assert weighted == pytest.approx(np.average(expected[:3], weights=support[:3]))
    assert function(y_true, y_pred, average="macro") == pytest.approx(np.mean(expected[:3]))
    with pytest.raises(ValueError, match="binary.* needs labels 0 and 1"):
        function(y_true, y_pred)  # "binary" (the default) needs labels 0 and 1


def test_a_normalised_confusion_matrix_with_an_empty_class_warns_nothing_and_matches_sklearn():
    """Survivors: the errstate that keeps 0/0 of an empty row or column quiet (NaN stays, as sklearn's 0)."""
    import warnings

    y_true, y_pred = [0, 0, 1, 1], [0, 1, 1, 1]  # class 2: no true sample, never predicted
    for normalize in ("true", "pred", "all"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ours = metrics.confusion_matrix(y_true, y_pred, num_classes=3, normalize=normalize)
        theirs = skm.confusion_matrix(y_true, y_pred, labels=range(3), normalize=normalize)
        np.testing.assert_allclose(np.nan_to_num(np.asarray(ours, dtype=float)), theirs)
    with pytest.raises(ValueError, match=r"\bnormalize\b"):
        metrics.confusion_matrix(y_true, y_pred, normalize="rows")


def test_image_metric_errors_name_the_function_and_parameter():
    """Survivors: the function names in the image metrics' messages, data_range_from_bits's bound."""
    x = torch.rand(1, 4, 4)
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="^mse needs finite images"):
        metrics.mse(x, bad)
    with pytest.raises(ValueError, match="^psnr needs finite images"):
        metrics.psnr(x, bad, data_range=1.0)
    with pytest.raises(ValueError, match="^psnr of torch.float32 images needs data_range"):
        metrics.psnr(x, x)
    assert metrics.data_range_from_bits(64) == 2**64 - 1
    with pytest.raises(ValueError, match=r"\bbits\b.*65"):
        metrics.data_range_from_bits(65)


def test_mse_of_one_image_and_of_a_batch_is_numpys_mean_squared_difference():
    generator = torch.Generator().manual_seed(7)
    x, y = torch.rand(2, 3, 5, 6, generator=generator), torch.rand(2, 3, 5, 6, generator=generator)
    expected = ((x.numpy() - y.numpy()) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.mse(x, y).numpy(), expected, rtol=1e-6)
    assert metrics.mse(x[1], y[1]).item() == pytest.approx(expected[1], rel=1e-6)  # (C, H, W) alone


def test_undefined_rates_default_to_zero_like_sklearn():
    """Survivors: zero_division's default 0.0 turned into 1.0 (recall, F1, the report's specificity)."""
    no_positives = ([0, 0, 0], [0, 0, 0])  # recall and F1 of class 1 are 0/0
    assert metrics.recall(*no_positives) == skm.recall_score(*no_positives, zero_division=0.0) == 0.0
    assert metrics.f1_score(*no_positives) == skm.f1_score(*no_positives, zero_division=0.0) == 0.0
    report = metrics.classification_report([0, 0], [0, 0], classes=["a", "b"])
    assert report["a"]["specificity"] == 0.0  # no negatives of class a: TN + FP = 0, by hand


def test_average_precision_ovr_defaults_to_sklearns_macro_average():
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    p = rng.dirichlet(np.ones(3), size=30)
    expected = skm.average_precision_score(np.eye(3)[y], p, average="macro")
    assert metrics.average_precision_ovr(y, p) == pytest.approx(expected)
