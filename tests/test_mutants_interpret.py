"""Tests written to kill the mutants of ``deepimaging.interpret`` that the interpret tests let survive.

The first part names the mutant each test was written for (samples with seeds 0 to 2 of
``SAMPLE=60 bash benchmarks/mutation.sh interpret``, see benchmarks/mutation_results.md). The second
part, after the seed-3 sample, goes function by function, with a header comment per function: every
input check on both sides of each bound with its whole message (it names the parameter and what
arrived), every branch, and the documented result. Oracles: scikit-learn's NearestNeighbors and
TSNE's settings, SciPy's cdist, Captum's Saliency, Occlusion and LayerGradCam, a per-window loop over
crops, and boxes, scores and IoUs worked out by hand.
"""

import importlib
import math
import re
import signal
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from torch import nn

from deepimaging.interpret import (
    conv_layer_names,
    distance_matrix,
    extract_features,
    filter_weights,
    grad_cam,
    heatmap_detections,
    match_detections,
    nearest_neighbors,
    occlusion_map,
    saliency_map,
    sliding_window,
    tsne,
    window_boxes,
)
from deepimaging.models import BasicCNN


class _Smallest(nn.Module):
    """The smallest model method="dense" accepts: a 1x1 convolution, global pool, flatten, linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4, 2)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_dense_sliding_window_accepts_a_three_module_trunk_and_matches_a_loop_over_crops():
    # detection._dense_parts 22 (a 3-module `features` refused). With a 1x1 convolution the dense
    # result has no border effect, so it equals classifying each crop on its own.
    model = _Smallest().eval()
    image = torch.rand(3, 8, 10, generator=torch.Generator().manual_seed(1))
    heatmaps = sliding_window(model, image, window=4, stride=2, method="dense")
    with torch.no_grad():
        expected = torch.stack(
            [
                torch.stack(
                    [model(image[None, :, i : i + 4, j : j + 4]).softmax(1)[0] for j in range(0, 7, 2)]
                )
                for i in range(0, 5, 2)
            ]
        ).permute(2, 0, 1)
    torch.testing.assert_close(heatmaps, expected, atol=1e-5, rtol=1e-5)


def test_heatmap_detections_score_each_window_by_its_own_largest_class_probability():
    # detection.heatmap_detections 59 (the largest probability over the whole map, not per window).
    # Three disjoint 4x4 windows in a row; per-window maxima 0.9, 0.6, 0.8; threshold 0.7 keeps two.
    heatmaps = torch.tensor([[[0.1, 0.6, 0.2]], [[0.9, 0.4, 0.8]]])
    boxes, scores, labels = heatmap_detections(heatmaps, window=4, stride=4, threshold=0.7)
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 4.0, 4.0], [8.0, 0.0, 12.0, 4.0]]))
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8]))
    assert labels.tolist() == [1, 1]


def test_heatmap_detections_names_stride_when_it_is_zero():
    # detection.heatmap_detections 77.
    with pytest.raises(ValueError, match="^stride must be in"):
        heatmap_detections(torch.rand(2, 3, 3), window=4, stride=0)


def test_match_detections_with_nothing_found_or_nothing_matched():
    # detection.match_detections 44 (precision divides by zero boxes) and 63 (mean IoU of no match).
    true_boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 14.0, 14.0]])
    none = match_detections(torch.zeros(0, 4), true_boxes)
    assert (none["true_positives"], none["false_positives"], none["false_negatives"]) == (0, 0, 2)
    assert math.isnan(none["precision"]) and none["recall"] == 0.0 and math.isnan(none["mean_iou"])
    # A detection overlapping the first box by 2x4 of a 6x4 union: IoU 1/3 < 0.5, no match.
    missed = match_detections(torch.tensor([[2.0, 0.0, 6.0, 4.0]]), true_boxes)
    assert (missed["true_positives"], missed["false_positives"], missed["false_negatives"]) == (0, 1, 2)
    assert missed["precision"] == 0.0 and math.isnan(missed["mean_iou"])
    torch.testing.assert_close(missed["best_iou"], torch.tensor([1 / 3, 0.0]))


@pytest.mark.parametrize("window", [(10, 4), (4, 10)], ids=["too tall", "too wide"])
def test_window_boxes_refuses_a_window_that_does_not_fit_either_way(window):
    # detection.window_boxes 23 ("taller and wider" for "taller or wider").
    with pytest.raises(ValueError, match="^window must fit in the image"):
        window_boxes((8, 8), window, 2)


def test_attribution_errors_name_the_parameter():
    # attribution.grad_cam 9 and attribution.saliency_map 18.
    model, image = BasicCNN(3, 2, widths=(4, 8)).eval(), torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="^interpolate_mode must be one of"):
        grad_cam(model, image, "features.0", interpolate_mode="bicubic")
    with pytest.raises(ValueError, match="^noise_level must be in"):
        saliency_map(model, image, smoothgrad_samples=2, noise_level=-0.1)


def test_feature_and_tsne_errors_name_the_parameter():
    # features._images_of 2 and neighbors.tsne 8.
    with pytest.raises(ValueError, match="^data must"):
        extract_features(BasicCNN(3, 2, widths=(4, 8)), torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="^features must have shape"):
        tsne(torch.rand(5, 2, 3))


# --- a second sample (SEED=1), drawn to check the tests above out of sample ---------------------


def test_occlusion_refuses_non_finite_baselines_saying_so():
    # attribution._check_baselines 13 (a tensor with NaN) and 26 (an infinite number): message dropped.
    model, image = BasicCNN(3, 2, widths=(4, 8)).eval(), torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="^baselines must be finite; got NaN"):
        occlusion_map(model, image, baselines=torch.tensor([math.nan, 0.0, 0.0])[:, None, None])
    with pytest.raises(ValueError, match=r"^baselines must be a finite number .*; got inf"):
        occlusion_map(model, image, baselines=math.inf)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("noise_level", math.inf, "^noise_level must be a finite fraction of the value range; got inf"),
        ("batch_size", 0, r"^batch_size must be in \[1, inf\]; got 0"),
        ("smoothgrad_samples", -1, r"^smoothgrad_samples must be in \[0, inf\]; got -1"),
    ],
)
def test_saliency_map_refuses_out_of_range_settings_naming_them(keyword, value, message):
    # attribution.saliency_map 25 (message dropped), 36 (batch_size unnamed), 40 (batch_size 0
    # accepted), 7 (a negative number of SmoothGrad samples accepted).
    model, image = BasicCNN(3, 2, widths=(4, 8)).eval(), torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match=message):
        saliency_map(model, image, **{keyword: value})


def test_heatmap_detections_with_no_window_above_the_threshold_finds_nothing():
    # detection.heatmap_detections 185 (the kept indices built as float: indexing with none fails).
    boxes, scores, labels = heatmap_detections(torch.full((2, 3, 3), 0.5), window=4, stride=2, threshold=0.9)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)
    assert labels.dtype == torch.int64


@pytest.mark.parametrize(
    ("heatmaps", "keywords", "message"),
    [
        (
            torch.rand(3, 3),
            {},
            r"^heatmaps must be a tensor \(K, rows, cols\) from sliding_window; got \(3, 3\)",
        ),
        (torch.rand(2, 3, 3), {"overlap": 1.5}, r"^overlap must be in \[0.0, 1.0\]; got 1.5"),
        (torch.rand(2, 3, 3), {"box_size": 0}, r"^box_size must be in \[1, inf\]; got 0"),
        (
            torch.rand(1, 3, 3),
            {"background": 0},
            r"^heatmaps must have at least 2 class\(es\) along dimension 0 \(the background and an object class\)",
        ),
    ],
    ids=["2-D heatmaps", "overlap above 1", "box_size 0", "background only"],
)
def test_heatmap_detections_refuses_bad_input_naming_it(heatmaps, keywords, message):
    # detection.heatmap_detections 7 (message dropped), 46 (overlap up to 2 accepted),
    # 115 (box_size named XXbox_sizeXX), 57 (the reason for 2 classes dropped).
    with pytest.raises(ValueError, match=message):
        heatmap_detections(heatmaps, window=4, stride=2, **keywords)


def test_match_detections_names_the_detections_when_they_are_not_boxes():
    # detection.match_detections 19 (the detections named XXboxesXX).
    with pytest.raises(ValueError, match=r"^boxes must have shape \(N, 4\)"):
        match_detections(torch.rand(2, 3), torch.rand(1, 4))


def test_distance_matrix_of_no_rows_is_an_empty_table_as_scipy():
    # neighbors.distance_matrix 17 (an empty `a` refused): scipy's cdist of 0 rows is (0, N).
    b = torch.rand(3, 4, dtype=torch.float64)
    for metric, scipy_metric in (("l2", "euclidean"), ("cosine", "cosine")):
        got = distance_matrix(torch.zeros(0, 4, dtype=torch.float64), b, metric=metric)
        assert got.shape == cdist(np.zeros((0, 4)), b.numpy(), scipy_metric).shape == (0, 3)


def test_feature_count_mismatch_names_both_inputs():
    # neighbors.distance_matrix 40 (XXaXX) and neighbors.nearest_neighbors 47 (XXqueriesXX).
    with pytest.raises(ValueError, match="^a and b must have the same number of features; got 3 and 4"):
        distance_matrix(torch.rand(2, 3), torch.rand(2, 4))
    with pytest.raises(ValueError, match="^queries and database must have the same number of features"):
        nearest_neighbors(torch.rand(2, 3), torch.rand(2, 4), k=1)


def test_nearest_neighbors_refuses_zero_neighbours():
    # neighbors.nearest_neighbors 77 (no lower bound on k: k=0 returned empty tables).
    with pytest.raises(ValueError, match=r"^k must be in \[1, inf\]; got 0"):
        nearest_neighbors(torch.rand(4, 3), torch.rand(5, 3), k=0)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"perplexity": 0.0}, "^perplexity must be greater than 0"),
        ({"seed": -1}, r"^seed must be in \[0, inf\]"),
    ],
)
def test_tsne_refuses_a_zero_perplexity_and_a_negative_seed_itself(keywords, message):
    # neighbors.tsne 20 and 27: without the bound, scikit-learn refuses them later in its own words.
    with pytest.raises(ValueError, match=message):
        tsne(torch.rand(10, 3), **keywords)


def test_tsne_returns_scikit_learns_float64_embedding_as_float32(monkeypatch):
    # neighbors.tsne 98 (the float64 embedding returned as it is): the documented dtype is float32.
    # scikit-learn's TSNE is replaced by a stand-in that returns a known float64 embedding (the
    # first two coordinates): a real fit takes seconds; only what tsne does with its output is tested.
    import sklearn.manifold

    class FirstTwoCoordinates:
        def __init__(self, **keywords):
            assert keywords["n_components"] == 2 and keywords["random_state"] == 0

        def fit_transform(self, x):
            assert x.dtype == np.float64
            return x[:, :2] * 1.0000000001  # a value float32 cannot hold exactly

    monkeypatch.setattr(sklearn.manifold, "TSNE", FirstTwoCoordinates)
    features = torch.rand(12, 3, generator=torch.Generator().manual_seed(0))
    got = tsne(features, perplexity=3.0, seed=0, n_jobs=1)
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(
        got.numpy(), (features.double().numpy()[:, :2] * 1.0000000001).astype(np.float32)
    )


# --- a third sample (SAMPLE=60 SEED=2), drawn after the seed-0 and seed-1 tests ----------------------


def test_mean_iou_is_the_average_over_the_matches():
    """detection.match_detections 86 (sum of IoUs times the matches instead of divided by them).

    By hand: the first detection equals its true box (IoU 1); the second covers half of its
    true box [10, 0, 14, 4] (intersection 2 x 4 = 8, union 16 + 8 - 8 = 16: IoU 0.5). Mean 0.75.
    """
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 0.0, 12.0, 4.0]])
    true_boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 0.0, 14.0, 4.0]])
    result = match_detections(boxes, true_boxes, iou_threshold=0.4)
    assert result["true_positives"] == 2
    assert result["mean_iou"] == pytest.approx(0.75)


def test_tsne_default_perplexity_is_scikit_learns():
    """neighbors.tsne 1 (default perplexity 31): the documented default is scikit-learn's, 30."""
    import inspect

    import sklearn.manifold

    sklearns = inspect.signature(sklearn.manifold.TSNE).parameters["perplexity"].default
    assert inspect.signature(tsne).parameters["perplexity"].default == sklearns


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: window_boxes((0, 8), 4, 2), r"^image_size must be"),  # detection.window_boxes 3
        (lambda: conv_layer_names("not a model"), r"^model must be a torch\.nn\.Module; got str$"),
        (
            lambda: extract_features("not a model", torch.rand(1, 3, 8, 8)),
            r"^model must be a torch\.nn\.Module; got str$",
        ),
        (
            lambda: distance_matrix(torch.rand(2, 3), [[1.0, 2.0], [3.0]]),
            r"^b ",
        ),  # neighbors.distance_matrix 27
    ],
    ids=["window_boxes-image_size", "conv_layer_names-model", "extract_features-model", "distance_matrix-b"],
)
def test_interpret_errors_name_the_argument_that_is_wrong(call, message):
    """detection.window_boxes 3, features._check_model 2, neighbors.distance_matrix 27 (names lost).

    extract_features did not check its model at all (an AttributeError from deep inside); it does now.
    """
    with pytest.raises((TypeError, ValueError), match=message):
        call()


# --- per-function tests (after the seed-3 sample): every input check on both sides of each bound with
# --- its whole message, every branch, and the documented result against an independent oracle -------


def _refuses(error, message, call, *args, **keywords):
    """``call(*args, **keywords)`` raises ``error`` with exactly ``message`` (the whole text)."""
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        call(*args, **keywords)


# neighbors._as_rows, through every public function that takes rows (a, b, queries, database, features)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda x: distance_matrix(x, torch.rand(2, 3)), "a"),
        (lambda x: distance_matrix(torch.rand(2, 3), x), "b"),
        (lambda x: nearest_neighbors(x, torch.rand(4, 3), k=1), "queries"),
        (lambda x: nearest_neighbors(torch.rand(4, 3), x, k=1), "database"),
        (lambda x: tsne(x, perplexity=1.0), "features"),
    ],
    ids=["distance_matrix-a", "distance_matrix-b", "queries", "database", "tsne-features"],
)
def test_rows_are_refused_naming_the_parameter_and_what_arrived(call, name):
    """_as_rows: a list, 1-D/3-D/5-D shapes, integers and NaN or infinity each refused in full words."""
    _refuses(
        TypeError,
        f"{name} must be a torch.Tensor of shape (N, D) or (N, C, H, W); got list",
        call,
        [[1.0, 2.0, 3.0]],
    )
    for shape in ((3,), (2, 3, 1), (1, 1, 1, 1, 3)):
        _refuses(
            ValueError,
            f"{name} must have shape (N, D) (features) or (N, C, H, W) (images); got {shape}",
            call,
            torch.rand(shape),
        )
    _refuses(
        TypeError,
        f"{name} must be a floating-point tensor; got dtype torch.int64",
        call,
        torch.ones(2, 3, dtype=torch.long),
    )
    for bad in (math.nan, math.inf):
        x = torch.rand(2, 3)
        x[1, 2] = bad
        _refuses(
            ValueError,
            f"{name} must be finite; got NaN or infinite values (a NaN feature usually means the model "
            "diverged or the data held NaN)",
            call,
            x,
        )


def test_queries_database_and_features_with_no_rows_are_refused_but_distance_tables_may_be_empty():
    """_as_rows(empty_ok): nearest_neighbors and tsne need rows; distance_matrix of 0 rows is cdist's (0, N), (M, 0)."""
    _refuses(ValueError, "queries holds no rows", nearest_neighbors, torch.zeros(0, 3), torch.rand(4, 3), k=1)
    _refuses(
        ValueError, "database holds no rows", nearest_neighbors, torch.rand(4, 3), torch.zeros(0, 3), k=1
    )
    _refuses(ValueError, "features holds no rows", tsne, torch.zeros(0, 3))
    a = torch.rand(2, 3, dtype=torch.float64)
    got = distance_matrix(a, torch.zeros(0, 3, dtype=torch.float64))
    assert got.shape == cdist(a.numpy(), np.zeros((0, 3))).shape == (2, 0)


def test_one_query_row_and_images_in_pixel_space_are_accepted_and_flattened_as_sklearn():
    """_as_rows: one row is enough, and (N, C, H, W) images are compared as flattened pixel vectors."""
    from sklearn.neighbors import NearestNeighbors

    g = torch.Generator().manual_seed(3)
    queries, database = torch.rand(1, 2, 3, 3, generator=g), torch.rand(6, 2, 3, 3, generator=g)
    got = nearest_neighbors(queries, database, k=3)
    fit = NearestNeighbors(n_neighbors=3, algorithm="brute").fit(database.flatten(1).numpy())
    distances, indices = fit.kneighbors(queries.flatten(1).numpy())
    assert got.indices.tolist() == indices.tolist()
    np.testing.assert_allclose(got.distances.numpy(), distances, rtol=1e-5)
    np.testing.assert_allclose(
        distance_matrix(queries, database).numpy(), cdist(queries.flatten(1), database.flatten(1)), rtol=1e-5
    )


# neighbors._check_pairs: the feature counts, and the cap on distances held at once (MAX_PAIRS made small)

neighbors_module = importlib.import_module("deepimaging.interpret.neighbors")


def test_pairs_cap_is_inclusive_names_both_inputs_and_counts_the_pairs(monkeypatch):
    """_check_pairs: M x N = MAX_PAIRS is allowed, one more row is refused with M, N and M x N."""
    monkeypatch.setattr(neighbors_module, "MAX_PAIRS", 12)
    a, b = torch.rand(3, 2, dtype=torch.float64), torch.rand(4, 2, dtype=torch.float64)
    np.testing.assert_allclose(distance_matrix(a, b).numpy(), cdist(a.numpy(), b.numpy()))
    _refuses(
        ValueError,
        "4 rows of a against the 5 of b would hold 20 distances at once, more than 12; compare fewer "
        "rows at a time",
        distance_matrix,
        torch.rand(4, 2),
        torch.rand(5, 2),
    )
    # nearest_neighbors holds one query row at a time at least: 12 database rows fit, 13 do not.
    assert nearest_neighbors(torch.rand(5, 2), torch.rand(12, 2), k=1).indices.shape == (5, 1)
    _refuses(
        ValueError,
        "1 rows of queries against the 13 of database would hold 13 distances at once, more than 12; "
        "compare fewer rows at a time",
        nearest_neighbors,
        torch.rand(5, 2),
        torch.rand(13, 2),
        k=1,
    )
    _refuses(
        ValueError,
        "queries and database must have the same number of features; got 2 and 3 (compare pixels with "
        "pixels and features from the same layer)",
        nearest_neighbors,
        torch.rand(2, 2),
        torch.rand(3, 3),
        k=1,
    )


def test_chunks_capped_by_max_pairs_give_sklearns_neighbours(monkeypatch):
    """nearest_neighbors: chunk_size is cut to MAX_PAIRS // N rows (here 2), and the result is unchanged."""
    from sklearn.neighbors import NearestNeighbors

    monkeypatch.setattr(neighbors_module, "MAX_PAIRS", 11)
    g = torch.Generator().manual_seed(4)
    queries, database = torch.rand(7, 3, generator=g), torch.rand(5, 3, generator=g)
    got = nearest_neighbors(queries, database, k=2, chunk_size=1000)
    distances, indices = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(database).kneighbors(queries)
    assert got.indices.tolist() == indices.tolist()
    np.testing.assert_allclose(got.distances.numpy(), distances, rtol=1e-5)


# neighbors._own_positions: which database row each query is, when it must be left out


def _sklearn_neighbours_without(queries, database, own, k, metric="euclidean"):
    """scikit-learn's brute-force k nearest, with database row own[i] removed for query i (a loop)."""
    from sklearn.neighbors import NearestNeighbors

    distances, indices = [], []
    for i, q in enumerate(queries.numpy()):
        keep = np.array([j for j in range(len(database)) if own is None or j != own[i]])
        fit = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(database.numpy()[keep])
        d, idx = fit.kneighbors(q[None])
        distances.append(d[0])
        indices.append(keep[idx[0]])
    return np.array(distances), np.array(indices)


@pytest.mark.parametrize("exclude_self", [False, None], ids=["False", "None"])
def test_exclude_self_false_or_none_keeps_every_database_row(exclude_self):
    """_own_positions: False and None both exclude nothing (a query may find itself)."""
    x = torch.tensor([[0.0], [1.0], [3.0]])
    got = nearest_neighbors(x, x, k=1, exclude_self=exclude_self)
    assert got.indices.ravel().tolist() == [0, 1, 2] and got.distances.ravel().tolist() == [0.0, 0.0, 0.0]


def test_exclude_self_by_index_accepts_the_first_and_last_row_and_matches_a_loop():
    """_own_positions: indices 0 and N - 1 are valid; each query loses exactly its own row."""
    g = torch.Generator().manual_seed(5)
    database = torch.rand(5, 2, generator=g)
    own = [0, 4, 2]
    queries = database[own]
    got = nearest_neighbors(queries, database, k=4, exclude_self=own)
    distances, indices = _sklearn_neighbours_without(queries, database, own, 4)
    assert got.indices.tolist() == indices.tolist()
    np.testing.assert_allclose(got.distances.numpy(), distances, rtol=1e-5, atol=1e-6)
    assert (
        nearest_neighbors(queries, database, k=4, exclude_self=np.array(own)).indices.tolist()
        == indices.tolist()
    )


@pytest.mark.parametrize(
    ("exclude_self", "message"),
    [
        (
            True,
            "exclude_self=True means query i is database row i, so both need the same length; got 3 "
            "queries and 5 database rows (pass the queries' database indices as exclude_self instead)",
        ),
        (
            [0, 1],
            "exclude_self must be True, False or 3 integer database indices (one per query); got shape (2,)",
        ),
        (
            [0.0, 1.0, 2.0],
            "exclude_self must be True, False or 3 integer database indices (one per query); got shape (3,)",
        ),
        ([-1, 1, 2], "exclude_self indices must be in [0, 4]; got [-1, 1, 2]"),
        ([0, 1, 5], "exclude_self indices must be in [0, 4]; got [0, 1, 5]"),
    ],
    ids=["True-lengths", "too-few", "floats", "negative", "past-the-end"],
)
def test_exclude_self_that_does_not_name_one_row_per_query_is_refused(exclude_self, message):
    """_own_positions: unequal lengths for True, wrong shape, floats, and indices outside [0, N - 1]."""
    _refuses(
        ValueError,
        message,
        nearest_neighbors,
        torch.rand(3, 2),
        torch.rand(5, 2),
        k=1,
        exclude_self=exclude_self,
    )


# neighbors.distance_matrix


def test_distance_matrix_equals_scipys_cdist_for_both_metrics_and_a_zero_vector():
    """distance_matrix: L2 and cosine of (M, D) against (N, D), M != N; a zero vector is at cosine distance 1."""
    g = torch.Generator().manual_seed(6)
    a, b = (
        torch.randn(3, 4, generator=g, dtype=torch.float64),
        torch.randn(5, 4, generator=g, dtype=torch.float64),
    )
    np.testing.assert_allclose(distance_matrix(a, b).numpy(), cdist(a.numpy(), b.numpy()), rtol=1e-10)
    np.testing.assert_allclose(distance_matrix(a, a).numpy().diagonal(), 0.0, atol=1e-7)
    np.testing.assert_allclose(
        distance_matrix(a, b, metric="cosine").numpy(), cdist(a.numpy(), b.numpy(), "cosine"), rtol=1e-10
    )
    b[2] = 0.0  # scipy leaves a zero vector's cosine distance undefined; scikit-learn and we say 1
    np.testing.assert_allclose(distance_matrix(a, b, metric="cosine").numpy()[:, 2], 1.0)


@pytest.mark.parametrize(
    "call", [distance_matrix, lambda a, b, metric: nearest_neighbors(a, b, 1, metric=metric)]
)
def test_metric_must_be_l2_or_cosine_naming_it(call):
    """distance_matrix, nearest_neighbors: an unknown metric is refused with the choices and what arrived."""
    _refuses(
        ValueError,
        "metric must be one of ['cosine', 'l2']; got 'L2'",
        call,
        torch.rand(2, 3),
        torch.rand(2, 3),
        metric="L2",
    )


# neighbors.nearest_neighbors


def test_nearest_neighbors_defaults_are_five_l2_neighbours_including_the_query_itself():
    """nearest_neighbors: k=5, metric "l2" and exclude_self=False by default (scikit-learn's kneighbors)."""
    from sklearn.neighbors import NearestNeighbors

    g = torch.Generator().manual_seed(7)
    queries, database = torch.rand(4, 3, generator=g), torch.rand(8, 3, generator=g)
    queries[0] = database[2]
    got = nearest_neighbors(queries, database)
    distances, indices = NearestNeighbors(algorithm="brute").fit(database).kneighbors(queries)  # 5 by default
    assert got.indices.tolist() == indices.tolist() and got.indices[0, 0] == 2
    np.testing.assert_allclose(got.distances.numpy(), distances, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("metric", "sklearn_metric"), [("l2", "euclidean"), ("cosine", "cosine")])
def test_many_neighbours_come_sorted_as_sklearns_across_chunks(metric, sklearn_metric):
    """nearest_neighbors: k of 30 from 200 rows sorted nearest first, queries of different norms, chunks of 3."""
    from sklearn.neighbors import NearestNeighbors

    g = torch.Generator().manual_seed(8)
    queries = (
        torch.randn(7, 5, generator=g, dtype=torch.float64) * torch.arange(1, 8, dtype=torch.float64)[:, None]
    )
    database = torch.randn(200, 5, generator=g, dtype=torch.float64)
    got = nearest_neighbors(queries, database, k=30, metric=metric, chunk_size=3)
    fit = NearestNeighbors(n_neighbors=30, algorithm="brute", metric=sklearn_metric).fit(database.numpy())
    distances, indices = fit.kneighbors(queries.numpy())
    assert got.indices.tolist() == indices.tolist()
    np.testing.assert_allclose(got.distances.numpy(), distances, rtol=1e-9, atol=1e-12)


def test_k_may_reach_the_database_size_and_no_further_in_either_mode():
    """nearest_neighbors: k = N (or N - 1 excluding self) is allowed; one more is refused saying why."""
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert nearest_neighbors(x, x, k=4).indices.tolist() == [
        [0, 1, 2, 3],
        [1, 0, 2, 3],
        [2, 1, 0, 3],
        [3, 2, 1, 0],
    ]
    assert nearest_neighbors(x, x, k=3, exclude_self=True).indices.tolist() == [
        [1, 2, 3],
        [0, 2, 3],
        [1, 0, 3],
        [2, 1, 0],
    ]
    _refuses(ValueError, "k must be at most 4, the database size; got k=5", nearest_neighbors, x, x, k=5)
    _refuses(
        ValueError,
        "k must be at most 3, the database size minus the query itself; got k=4",
        nearest_neighbors,
        x,
        x,
        k=4,
        exclude_self=True,
    )


def test_nearest_neighbors_refuses_bad_k_and_chunk_size_naming_them():
    """nearest_neighbors: k and chunk_size are integers >= 1; chunk_size 1 is allowed."""
    x = torch.tensor([[0.0], [1.0], [3.0]])
    _refuses(ValueError, "chunk_size must be in [1, inf]; got 0", nearest_neighbors, x, x, k=1, chunk_size=0)
    _refuses(
        TypeError,
        "chunk_size must be an integer; got 1.5 (float)",
        nearest_neighbors,
        x,
        x,
        k=1,
        chunk_size=1.5,
    )
    _refuses(TypeError, "k must be an integer; got 2.0 (float)", nearest_neighbors, x, x, k=2.0)
    assert nearest_neighbors(x, x, k=1, exclude_self=True, chunk_size=1).indices.ravel().tolist() == [1, 0, 1]


# neighbors.tsne: scikit-learn's and openTSNE's TSNE replaced by stand-ins that record what they are
# given (a real fit takes seconds; tests/test_interpret_features.py fits one)


class _RecordingTSNE:
    """A stand-in for a TSNE class: keeps its keywords, its input and the BLAS/OpenMP thread limit."""

    calls: list = []

    def __init__(self, **keywords):
        self.keywords = keywords

    def _record(self, x):
        from threadpoolctl import threadpool_info

        threads = {pool["num_threads"] for pool in threadpool_info()}
        type(self).calls.append((self.keywords, x.copy(), threads))
        return x[:, :2] * 2.0

    fit_transform = _record
    fit = _record


@pytest.fixture
def recording_tsne(monkeypatch):
    import sklearn.manifold

    _RecordingTSNE.calls = []
    monkeypatch.setattr(sklearn.manifold, "TSNE", _RecordingTSNE)
    fake_open_tsne = type(sys)("openTSNE")
    fake_open_tsne.TSNE = _RecordingTSNE
    monkeypatch.setitem(sys.modules, "openTSNE", fake_open_tsne)
    return _RecordingTSNE.calls


def test_tsne_passes_its_settings_and_the_flattened_float64_points_to_scikit_learn(recording_tsne):
    """tsne: scikit-learn's TSNE gets 2 components, PCA init, the perplexity, seed and n_jobs (thread limit too)."""
    images = torch.rand(40, 2, 2, 2, generator=torch.Generator().manual_seed(9))
    got = tsne(images)  # the defaults: perplexity 30, seed 0, one thread
    tsne(images, perplexity=0.5, seed=0, n_jobs=3)
    tsne(images, perplexity=39.5, seed=7, n_jobs=None)
    expected = [
        dict(n_components=2, perplexity=30.0, init="pca", random_state=0, n_jobs=1),
        dict(n_components=2, perplexity=0.5, init="pca", random_state=0, n_jobs=3),
        dict(n_components=2, perplexity=39.5, init="pca", random_state=7, n_jobs=None),
    ]
    assert [keywords for keywords, _, _ in recording_tsne] == expected
    for _, x, _ in recording_tsne:
        assert x.dtype == np.float64
        np.testing.assert_array_equal(x, images.flatten(1).double().numpy())
    assert recording_tsne[0][2] == {1} and recording_tsne[1][2] == {3}
    np.testing.assert_array_equal(got.numpy(), (images.flatten(1)[:, :2].double() * 2.0).float().numpy())


def test_tsne_opentsne_gets_the_perplexity_seed_and_all_cores_for_none(recording_tsne):
    """tsne(method="opentsne"): openTSNE's TSNE gets perplexity, random_state, and n_jobs (-1 for all cores)."""
    features = torch.rand(20, 3, generator=torch.Generator().manual_seed(10))
    got = tsne(features, perplexity=5.0, seed=2, method="opentsne", n_jobs=2)
    tsne(features, perplexity=5.0, seed=2, method="opentsne", n_jobs=None)
    assert [keywords for keywords, _, _ in recording_tsne] == [
        dict(perplexity=5.0, random_state=2, n_jobs=2),
        dict(perplexity=5.0, random_state=2, n_jobs=-1),
    ]
    np.testing.assert_array_equal(recording_tsne[0][1], features.double().numpy())
    assert got.dtype == torch.float32 and got.shape == (20, 2)


def test_tsne_without_opentsne_says_how_to_install_it(monkeypatch):
    """tsne(method="opentsne"): a missing openTSNE gives an ImportError with the pip command."""
    monkeypatch.setitem(sys.modules, "openTSNE", None)  # import openTSNE then raises ImportError
    _refuses(
        ImportError,
        "method='opentsne' needs the openTSNE package: pip install openTSNE",
        tsne,
        torch.rand(10, 3),
        perplexity=2.0,
        method="opentsne",
    )


@pytest.mark.parametrize(
    ("keywords", "error", "message"),
    [
        ({"perplexity": 0.0}, ValueError, "perplexity must be greater than 0.0; got 0.0"),
        ({"perplexity": -1}, ValueError, "perplexity must be greater than 0.0; got -1.0"),
        ({"perplexity": "5"}, TypeError, "perplexity must be a number; got '5' (str)"),
        (
            {"perplexity": 10},
            ValueError,
            "perplexity must be below the number of points (10); got 10 "
            "(use more points or a smaller perplexity, e.g. 5-50)",
        ),
        ({"seed": -1}, ValueError, "seed must be in [0, inf]; got -1"),
        ({"seed": 1.0}, TypeError, "seed must be an integer; got 1.0 (float)"),
        ({"method": "umap"}, ValueError, "method must be one of ['opentsne', 'sklearn']; got 'umap'"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be in [1, inf]; got 0"),
        ({"n_jobs": 2.0}, TypeError, "n_jobs must be an integer; got 2.0 (float)"),
    ],
)
def test_tsne_refuses_bad_settings_naming_them(keywords, error, message, recording_tsne):
    """tsne: perplexity in (0, N), seed >= 0, a known method, n_jobs >= 1 or None; nothing reaches TSNE."""
    _refuses(error, message, tsne, torch.rand(10, 3), **{"perplexity": 2.0, **keywords})
    assert recording_tsne == []


# attribution: saliency_map, grad_cam and the shared _check_target and _check_baselines

attribution_module = importlib.import_module("deepimaging.interpret.attribution")


@pytest.fixture(scope="module")
def small_cnn():
    """A small BasicCNN in eval mode with a scaled classifier, so the four classes' scores differ clearly."""
    torch.manual_seed(0)
    cnn = BasicCNN(3, 4, widths=(4, 8))
    with torch.no_grad():
        cnn.classifier.weight.mul_(10)
    return cnn.eval()


def _image(seed=1, size=(3, 12, 14)):
    return torch.rand(size, generator=torch.Generator().manual_seed(seed))


def test_smoothgrad_defaults_are_a_noise_level_of_015_and_seed_0_drawn_at_once():
    """saliency_map: the mean |gradient| (Captum's Saliency) over image + N(0, (0.15 range)^2) noise drawn with seed 0."""
    from captum.attr import Saliency

    torch.manual_seed(0)
    model = BasicCNN(3, 4, widths=(4, 8)).eval()
    image = _image(2)
    noise = (
        torch.randn((5, 3, 12, 14), generator=torch.Generator().manual_seed(0))
        * 0.15
        * float(image.max() - image.min())
    )
    noisy = (image[None] + noise).requires_grad_(True)
    expected = Saliency(model).attribute(noisy, target=2, abs=True).mean(0).amax(0)
    got = saliency_map(model, image, 2, smoothgrad_samples=5, batch_size=2)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        saliency_map(model, image, 2, smoothgrad_samples=5, batch_size=1), expected, atol=1e-6, rtol=1e-5
    )
    assert not torch.allclose(got, saliency_map(model, image, 2))  # plain saliency (0 samples) is the default


@pytest.mark.parametrize(
    ("keywords", "error", "message"),
    [
        ({"smoothgrad_samples": -1}, ValueError, "smoothgrad_samples must be in [0, inf]; got -1"),
        ({"smoothgrad_samples": 1.5}, TypeError, "smoothgrad_samples must be an integer; got 1.5 (float)"),
        ({"noise_level": -0.1}, ValueError, "noise_level must be in [0.0, inf]; got -0.1"),
        ({"noise_level": "0.1"}, TypeError, "noise_level must be a number; got '0.1' (str)"),
        ({"noise_level": math.nan}, ValueError, "noise_level must be a number; got NaN"),
        ({"seed": -1}, ValueError, "seed must be in [0, inf]; got -1"),
        ({"seed": 1.5}, TypeError, "seed must be an integer; got 1.5 (float)"),
        ({"batch_size": 0}, ValueError, "batch_size must be in [1, inf]; got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an integer; got 2.0 (float)"),
    ],
)
def test_saliency_map_settings_are_refused_with_their_whole_message(small_cnn, keywords, error, message):
    """saliency_map: each setting's type and lower bound, the message naming it and what arrived."""
    _refuses(error, message, saliency_map, small_cnn, _image(), **keywords)


def test_saliency_map_accepts_the_lower_bounds_noise_0_seed_0_and_one_sample_per_batch(small_cnn):
    """saliency_map: noise_level 0 makes SmoothGrad the plain saliency; seed 0 and batch_size 1 are allowed."""
    image = _image(3)
    plain = saliency_map(small_cnn, image, 1)
    smooth = saliency_map(small_cnn, image, 1, smoothgrad_samples=2, noise_level=0.0, seed=0, batch_size=1)
    torch.testing.assert_close(smooth, plain, atol=1e-6, rtol=1e-5)


class _MustNotRun(nn.Module):
    """A model whose forward pass fails the test: a refused input must be refused before the model runs."""

    def forward(self, x):
        raise AssertionError("the model ran although the input should have been refused")


def test_smoothgrad_noise_larger_than_a_gibibyte_is_refused_before_anything_runs():
    """saliency_map: 21,846 samples of a (3, 64, 64) image are 1.00003 GiB of float32 noise, over MAX_NOISE_BYTES."""
    _refuses(
        ValueError,
        "smoothgrad_samples 21846 would draw 1.0 GiB of noise for a (3, 64, 64) image, more than 1 GiB; "
        "SmoothGrad needs tens of samples (e.g. 50)",
        saliency_map,
        _MustNotRun(),
        torch.rand(3, 64, 64),
        0,
        smoothgrad_samples=21846,
    )


def test_smoothgrad_noise_bound_is_inclusive_and_counts_four_bytes_a_value(small_cnn, monkeypatch):
    """saliency_map: 2 samples of a (3, 8, 8) image are 2 x 192 x 4 = 1536 bytes: allowed at a 1536-byte cap, 3 are not."""
    monkeypatch.setattr(attribution_module, "MAX_NOISE_BYTES", 1536)
    image = _image(4, (3, 8, 8))
    assert saliency_map(small_cnn, image, 0, smoothgrad_samples=2).shape == (8, 8)
    with pytest.raises(
        ValueError, match=r"^smoothgrad_samples 3 would draw 0\.0 GiB of noise for a \(3, 8, 8\) image"
    ):
        saliency_map(_MustNotRun(), image, 0, smoothgrad_samples=3)


@pytest.mark.parametrize("method", ["occlusion", "saliency", "grad_cam"])
def test_target_is_an_integer_from_0_to_k_minus_1_and_picks_the_class(small_cnn, method):
    """_check_target: targets 0 and K - 1 are used as given (Captum's attribution for them); -1, K, 1.5 refused."""
    from captum.attr import LayerGradCam, Occlusion, Saliency

    image = _image(5)
    x = image[None]
    layer = small_cnn.features[4]
    calls = {
        "occlusion": lambda t: occlusion_map(small_cnn, image, t, sliding_window_shapes=6),
        "saliency": lambda t: saliency_map(small_cnn, image, t),
        "grad_cam": lambda t: grad_cam(small_cnn, image, "features.4", t, interpolate_mode="nearest"),
    }
    oracles = {
        "occlusion": lambda t: Occlusion(lambda z: torch.softmax(small_cnn(z), 1)).attribute(
            x, sliding_window_shapes=(3, 6, 6), strides=(3, 6, 6), baselines=0.5, target=t
        )[0, 0],
        "saliency": lambda t: (
            Saliency(small_cnn).attribute(x.clone().requires_grad_(True), target=t, abs=True)[0].amax(0)
        ),
        "grad_cam": lambda t: nn.functional.interpolate(
            LayerGradCam(small_cnn, layer).attribute(x, target=t, relu_attributions=True),
            size=(12, 14),
            mode="nearest",
        )[0, 0],
    }
    predicted = int(small_cnn(x).argmax())
    for target in (0, 3):
        torch.testing.assert_close(
            calls[method](target), oracles[method](target).detach(), atol=1e-6, rtol=1e-5
        )
    torch.testing.assert_close(calls[method](None), oracles[method](predicted).detach(), atol=1e-6, rtol=1e-5)
    assert predicted not in (0, 3)  # so the default is a third class, not one of the targets above
    for target in (-1, 4):
        _refuses(ValueError, f"target must be in [0, 3]; got {target}", calls[method], target)
    _refuses(TypeError, "target must be an integer; got 1.5 (float)", calls[method], 1.5)


@pytest.mark.parametrize("method", ["occlusion", "saliency", "grad_cam"])
def test_attribution_of_an_image_with_the_wrong_channel_count_is_refused_before_the_model_runs(
    small_cnn, method
):
    """saliency_map, grad_cam, occlusion_map: the model's in_channels checked against the image's, named in full."""
    calls = {
        "occlusion": lambda x: occlusion_map(small_cnn, x, 0, sliding_window_shapes=6),
        "saliency": lambda x: saliency_map(small_cnn, x, 0),
        "grad_cam": lambda x: grad_cam(small_cnn, x, "features.4", 0),
    }
    _refuses(
        ValueError,
        "image must have 3 channel(s), as the model was built for; got 1 in shape (1, 1, 12, 14)",
        calls[method],
        _image(size=(1, 12, 14)),
    )


def test_grad_cam_of_a_frozen_model_equals_captums(small_cnn):
    """grad_cam: the activations need gradients even when no parameter does (a frozen, pretrained trunk)."""
    from captum.attr import LayerAttribution, LayerGradCam

    frozen = BasicCNN(3, 4, widths=(4, 8)).eval()
    frozen.load_state_dict(small_cnn.state_dict())
    frozen.requires_grad_(False)
    image = _image(6)
    coarse = LayerGradCam(frozen, frozen.features[4]).attribute(image[None], target=1, relu_attributions=True)
    expected = LayerAttribution.interpolate(coarse, (12, 14), interpolate_mode="bilinear")[0, 0]
    got = grad_cam(frozen, image, "features.4", 1)  # bilinear by default
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_grad_cam_interpolate_mode_must_be_bilinear_or_nearest_naming_it(small_cnn):
    """grad_cam: any other interpolate_mode is refused with the choices and what arrived."""
    _refuses(
        ValueError,
        "interpolate_mode must be one of ['bilinear', 'nearest']; got 'BILINEAR'",
        grad_cam,
        small_cnn,
        _image(),
        "features.4",
        interpolate_mode="BILINEAR",
    )


@pytest.mark.parametrize(
    ("baselines", "error", "message"),
    [
        (
            torch.zeros(2, 1, 1),
            ValueError,
            "baselines must broadcast to the image shape (3, 12, 14), e.g. (C, 1, 1); got shape (2, 1, 1)",
        ),
        (
            torch.zeros(3, 12, 1, 1),
            ValueError,
            "baselines must broadcast to the image shape (3, 12, 14), e.g. (C, 1, 1); got shape (3, 12, 1, 1)",
        ),
        (
            torch.tensor([0.0, math.inf, 0.0])[:, None, None],
            ValueError,
            "baselines must be finite; got NaN or infinite values",
        ),
        ("grey", TypeError, "baselines must be a number; got 'grey' (str)"),
        (math.nan, ValueError, "baselines must be a number; got NaN"),
        (-math.inf, ValueError, "baselines must be a finite number (a pixel value, e.g. 0.5); got -inf"),
    ],
    ids=["2 of 3 channels", "4-D", "infinite tensor", "text", "NaN", "-inf"],
)
def test_occlusion_baselines_are_refused_naming_the_shape_or_value(small_cnn, baselines, error, message):
    """_check_baselines: a tensor must broadcast to (C, H, W) and be finite; a number must be finite."""
    _refuses(
        error, message, occlusion_map, small_cnn, _image(), 0, sliding_window_shapes=6, baselines=baselines
    )


def test_occlusion_baselines_as_a_number_or_a_per_channel_tensor_equal_captums(small_cnn):
    """_check_baselines: 0.2 and per-channel means (C, 1, 1) fill the patch as in Captum's Occlusion."""
    from captum.attr import Occlusion

    image = _image(7)
    softmax = lambda z: torch.softmax(small_cnn(z), 1)  # noqa: E731
    for baselines in (0.2, torch.tensor([0.1, 0.5, 0.9])[:, None, None]):
        expected = Occlusion(softmax).attribute(
            image[None], sliding_window_shapes=(3, 6, 7), strides=(3, 6, 7), baselines=baselines, target=1
        )[0, 0]
        got = occlusion_map(small_cnn, image, 1, sliding_window_shapes=(6, 7), baselines=baselines)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


# detection.window_boxes, _check_grid and _grid_boxes

detection_module = importlib.import_module("deepimaging.interpret.detection")


def test_window_boxes_of_a_non_square_grid_are_the_pixels_each_window_covers():
    """window_boxes: (H - h) // s + 1 rows and columns, each box [j s_x, i s_y, j s_x + w, i s_y + h] (by hand)."""
    boxes = window_boxes((11, 17), (4, 6), (3, 5))  # rows (11 - 4) // 3 + 1 = 3, cols (17 - 6) // 5 + 1 = 3
    expected = torch.tensor(
        [[[5.0 * j, 3.0 * i, 5.0 * j + 6, 3.0 * i + 4] for j in range(3)] for i in range(3)]
    )
    torch.testing.assert_close(boxes, expected)
    torch.testing.assert_close(window_boxes((4, 6), (4, 6), 1), torch.tensor([[[0.0, 0.0, 6.0, 4.0]]]))
    assert window_boxes((5, 9), (2, 3), (1, 2)).shape == (4, 4, 4)


@pytest.mark.parametrize(
    ("image_size", "window", "stride", "error", "message"),
    [
        ((8, 0), 4, 2, ValueError, "image_size must be in [1, inf]; got 0"),
        ((8, 8), (4, 0), 2, ValueError, "window must be in [1, inf]; got 0"),
        ((8, 8), 4, (0, 2), ValueError, "stride must be in [1, inf]; got 0"),
        ((8, 8), (1, 2, 3), 2, ValueError, "window must be an int or a pair (height, width); got (1, 2, 3)"),
        ((8, 8), 4, 1.5, TypeError, "stride must be an integer; got 1.5 (float)"),
        ((8, 8), (9, 4), 2, ValueError, "window must fit in the image: got a 9x4 window for a 8x8 image"),
        ((8, 8), (4, 9), 2, ValueError, "window must fit in the image: got a 4x9 window for a 8x8 image"),
    ],
)
def test_window_boxes_refuses_bad_sizes_naming_them(image_size, window, stride, error, message):
    """window_boxes: each size an int >= 1 or a pair of them, named in the error; the window must fit."""
    _refuses(error, message, window_boxes, image_size, window, stride)


def test_window_grid_cap_is_inclusive_and_names_the_grid(monkeypatch):
    """_check_grid: rows x cols = MAX_WINDOWS is allowed, one window more is refused with the grid's sizes."""
    monkeypatch.setattr(detection_module, "MAX_WINDOWS", 12)
    assert window_boxes((8, 10), 4, 2).shape == (3, 4, 4)  # 3 x 4 = 12 windows
    _refuses(
        ValueError,
        "a 4x4 window at stride 2x2 over a 8x12 image gives 3x5 = 15 windows, more than 12; use a larger stride",
        window_boxes,
        (8, 12),
        4,
        2,
    )


# detection.heatmap_detections


def test_detections_on_a_non_square_grid_with_a_background_class_by_hand():
    """heatmap_detections: score 1 - p[background], label the best other class, box_size (h, w) centred on the window."""
    # 3 classes, background 1 (so the labels map through [0, 2]); a 2 x 3 grid of disjoint 4 x 6 windows.
    background = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.8, 0.3]])
    class0 = torch.tensor([[0.05, 0.7, 0.1], [0.2, 0.1, 0.2]])
    heatmaps = torch.stack([class0, background, 1 - background - class0])
    boxes, scores, labels = heatmap_detections(heatmaps, (4, 6), (4, 6), background=1, box_size=(2, 4))
    # Scores >= 0.5: (1, 0) 0.9, (0, 1) 0.8, (1, 2) 0.7; best first. Window (i, j) centre (6 j + 3, 4 i + 2).
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8, 0.7]))
    assert labels.tolist() == [2, 0, 2] and labels.dtype == torch.int64
    torch.testing.assert_close(
        boxes, torch.tensor([[1.0, 5.0, 5.0, 7.0], [7.0, 1.0, 11.0, 3.0], [13.0, 5.0, 17.0, 7.0]])
    )


def test_a_detection_in_the_last_row_of_a_grid_taller_than_wide_gets_that_rows_box():
    """heatmap_detections: the boxes are laid out rows x cols as the heatmaps are (3 x 1 here, by hand)."""
    heatmaps = torch.tensor(
        [[[0.9], [0.8], [0.1]], [[0.1], [0.2], [0.9]]]
    )  # window (2, 0)'s class 1 scores 0.9
    boxes, scores, labels = heatmap_detections(heatmaps, 4, 4, threshold=0.85)
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 8.0, 4.0, 12.0]]))
    assert labels.tolist() == [0, 1]


def test_overlapping_windows_are_suppressed_only_above_the_overlap_and_vote_on_the_box():
    """heatmap_detections: IoU 0.5 exactly is kept apart at overlap 0.5; below it the boxes merge, score-weighted."""
    # Two 4 x 6 windows at stride 2 in one row: [0, 0, 6, 4] and [2, 0, 8, 4], IoU 16 / 32 = 0.5.
    heatmaps = torch.tensor([[[0.3, 0.8]], [[0.7, 0.2]]])  # scores 0.7 (label 1) and 0.8 (label 0)
    boxes, scores, labels = heatmap_detections(heatmaps, (4, 6), 2, overlap=0.5)
    torch.testing.assert_close(boxes, torch.tensor([[2.0, 0.0, 8.0, 4.0], [0.0, 0.0, 6.0, 4.0]]))
    torch.testing.assert_close(scores, torch.tensor([0.8, 0.7]))
    assert labels.tolist() == [0, 1]
    boxes, scores, labels = heatmap_detections(heatmaps, (4, 6), 2, overlap=0.49)
    x0 = (0.8 * 2 + 0.7 * 0) / 1.5
    torch.testing.assert_close(boxes, torch.tensor([[x0, 0.0, x0 + 6, 4.0]]))
    torch.testing.assert_close(scores, torch.tensor([0.8]))
    assert labels.tolist() == [0]


def test_thresholds_and_overlaps_at_their_bounds_are_allowed():
    """heatmap_detections: threshold and overlap 0 and 1 are allowed; a score of exactly the threshold is kept."""
    heatmaps = torch.tensor([[[0.0, 1.0, 0.25]], [[1.0, 0.0, 0.75]]])  # probabilities 0 and 1 are allowed
    _, scores, labels = heatmap_detections(heatmaps, 4, 4, threshold=1.0, overlap=0.0)
    torch.testing.assert_close(scores, torch.tensor([1.0, 1.0]))
    assert labels.tolist() == [1, 0]
    _, scores, _ = heatmap_detections(heatmaps, 4, 4, threshold=0.0, overlap=1.0)
    torch.testing.assert_close(scores, torch.tensor([1.0, 1.0, 0.75]))
    one_class = torch.tensor([[[0.2, 0.9]]])  # without a background class, one class is enough
    _, scores, labels = heatmap_detections(one_class, 4, 4)
    assert scores.tolist() == [pytest.approx(0.9)] and labels.tolist() == [0]
    two_classes = torch.tensor([[[0.2, 0.9]], [[0.8, 0.1]]])  # with one: the background and one object class
    _, scores, labels = heatmap_detections(two_classes, 4, 4, background=0)
    assert scores.tolist() == [pytest.approx(0.8)] and labels.tolist() == [1]
    _, _, labels = heatmap_detections(two_classes, 4, 4, background=1, threshold=0.6)
    assert labels.tolist() == [0]


def test_windows_of_equal_score_are_reported_in_row_major_order():
    """heatmap_detections: best score first, ties top row first (Python's stable sorted as oracle), 10 x 10 windows."""
    rng = np.random.default_rng(0)
    scores = rng.choice([0.6, 0.7, 0.8, 0.9], size=(10, 10))  # 100 windows, about 25 of each score
    heatmaps = torch.tensor(np.stack([1 - scores, scores]), dtype=torch.float32)
    boxes, got, _ = heatmap_detections(heatmaps, 4, 4)  # disjoint windows: nothing is suppressed
    order = sorted(range(100), key=lambda k: -scores.flat[k])  # stable: equal scores keep their index order
    expected = torch.tensor(
        [[4.0 * (k % 10), 4.0 * (k // 10), 4.0 * (k % 10) + 4, 4.0 * (k // 10) + 4] for k in order]
    )
    torch.testing.assert_close(boxes, expected)
    torch.testing.assert_close(got, torch.tensor(scores.flat[order], dtype=torch.float32))


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the time limit uses SIGALRM (not on Windows)")
def test_non_maximum_suppression_ends_when_every_candidate_is_kept_or_suppressed():
    """heatmap_detections 176 (the cluster kept among the candidates: the loop never ends): done within 10 s."""

    def too_long(signum, frame):
        raise TimeoutError("heatmap_detections did not return within 10 s")

    heatmaps = torch.tensor([[[0.9, 0.8, 0.7]], [[0.1, 0.2, 0.3]]])
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(10)  # a candidate list that never shrinks loops for ever: fail instead of hanging the run
    try:
        boxes, scores, _ = heatmap_detections(heatmaps, 4, 2)  # adjacent windows overlap by IoU 1/3 > 0.3
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert scores.tolist() == [pytest.approx(0.9), pytest.approx(0.7)] and boxes.shape == (2, 4)


def test_an_empty_grid_gives_no_detections():
    """heatmap_detections: heatmaps with no rows give empty boxes (0, 4), scores and labels."""
    boxes, scores, labels = heatmap_detections(torch.zeros(2, 0, 3), 4, 2)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)


@pytest.mark.parametrize(
    ("heatmaps", "keywords", "error", "message"),
    [
        (
            [[[0.5]]],
            {},
            ValueError,
            "heatmaps must be a tensor (K, rows, cols) from sliding_window; got list",
        ),
        (
            torch.rand(1, 2, 3, 3),
            {},
            ValueError,
            "heatmaps must be a tensor (K, rows, cols) from sliding_window; got (1, 2, 3, 3)",
        ),
        (
            torch.ones(2, 3, 3, dtype=torch.long),
            {},
            TypeError,
            "heatmaps must hold probabilities (a floating tensor); got dtype torch.int64",
        ),
        (
            torch.tensor([[[0.25, 1.5]]]),
            {},
            ValueError,
            "heatmaps must hold probabilities in [0, 1] (sliding_window's softmax); got values in [0.25, 1.5]",
        ),
        (
            torch.tensor([[[-0.5, 0.75]]]),
            {},
            ValueError,
            "heatmaps must hold probabilities in [0, 1] (sliding_window's softmax); got values in [-0.5, 0.75]",
        ),
        (
            torch.tensor([[[math.nan, 0.5]]]),
            {},
            ValueError,
            "heatmaps must hold probabilities in [0, 1] (sliding_window's softmax); got values in [nan, nan]",
        ),
        (
            torch.zeros(0, 2, 2),
            {},
            ValueError,
            "heatmaps must have at least 1 class(es) along dimension 0; got shape (0, 2, 2)",
        ),
        (torch.rand(2, 2, 2), {"threshold": 1.25}, ValueError, "threshold must be in [0.0, 1.0]; got 1.25"),
        (torch.rand(2, 2, 2), {"threshold": -0.25}, ValueError, "threshold must be in [0.0, 1.0]; got -0.25"),
        (torch.rand(2, 2, 2), {"threshold": "0.5"}, TypeError, "threshold must be a number; got '0.5' (str)"),
        (torch.rand(2, 2, 2), {"overlap": -0.25}, ValueError, "overlap must be in [0.0, 1.0]; got -0.25"),
        (torch.rand(2, 2, 2), {"overlap": "0.3"}, TypeError, "overlap must be a number; got '0.3' (str)"),
        (torch.rand(3, 2, 2), {"background": 3}, ValueError, "background must be in [0, 2]; got 3"),
        (torch.rand(3, 2, 2), {"background": -1}, ValueError, "background must be in [0, 2]; got -1"),
        (
            torch.rand(3, 2, 2),
            {"background": 1.0},
            TypeError,
            "background must be an integer; got 1.0 (float)",
        ),
        (torch.rand(2, 2, 2), {"window": 0}, ValueError, "window must be in [1, inf]; got 0"),
        (
            torch.rand(2, 2, 2),
            {"box_size": (2, 3, 4)},
            ValueError,
            "box_size must be an int or a pair (height, width); got (2, 3, 4)",
        ),
    ],
)
def test_heatmap_detections_refuses_bad_input_with_its_whole_message(heatmaps, keywords, error, message):
    """heatmap_detections: heatmaps' type, shape, dtype and range, and every setting, named with what arrived."""
    _refuses(error, message, heatmap_detections, heatmaps, **{"window": 4, "stride": 2, **keywords})


# detection.match_detections


def test_matching_is_greedy_best_first_and_an_iou_equal_to_the_threshold_matches():
    """match_detections: each detection, best first, takes the unmatched true box it overlaps most (by hand)."""
    true_boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 0.0, 6.0, 4.0], [20.0, 20.0, 22.0, 22.0]])
    # Detection 0 equals true box 0 (IoU 1; with true box 1: 8 / 24). Detection 1 equals true box 0 as
    # well, which is taken: it gets true box 1 (IoU 1/3, enough at iou_threshold 1/3 but not at 0.34).
    # Detection 2 is half of true box 2: IoU 2 / 4 = 0.5.
    boxes = [[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0], [20.0, 20.0, 21.0, 22.0], [50.0, 50.0, 51.0, 51.0]]
    result = match_detections(boxes, true_boxes, iou_threshold=0.5)
    assert result["matches"] == [(0, 0), (2, 2)]
    assert (result["true_positives"], result["false_positives"], result["false_negatives"]) == (2, 2, 1)
    assert result["precision"] == 0.5 and result["recall"] == pytest.approx(2 / 3)
    assert result["mean_iou"] == pytest.approx(0.75)
    torch.testing.assert_close(result["best_iou"], torch.tensor([1.0, 1 / 3, 0.5]))
    loose = match_detections(boxes, true_boxes, iou_threshold=1 / 3)
    assert loose["matches"] == [(0, 0), (1, 1), (2, 2)] and loose["false_negatives"] == 0
    strict = match_detections(boxes, true_boxes, iou_threshold=1.0)
    assert strict["matches"] == [(0, 0)] and strict["recall"] == pytest.approx(1 / 3)
    # At 0 any overlap matches; the fourth detection finds every true box taken.
    every = match_detections(boxes, true_boxes, iou_threshold=0.0)
    assert every["matches"] == [(0, 0), (1, 1), (2, 2)] and every["false_positives"] == 1


def test_matching_against_no_true_boxes_counts_every_detection_false():
    """match_detections: no true boxes: recall undefined (NaN), precision 0, an empty best_iou."""
    result = match_detections(torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]]), [])
    assert (result["true_positives"], result["false_positives"], result["false_negatives"]) == (0, 2, 0)
    assert result["precision"] == 0.0 and math.isnan(result["recall"]) and math.isnan(result["mean_iou"])
    assert result["best_iou"].shape == (0,) and result["matches"] == []


@pytest.mark.parametrize(
    ("boxes", "true_boxes", "keywords", "error", "message"),
    [
        (
            [[0, 0, 1, 1]],
            [[0, 0, 1, 1]],
            {"iou_threshold": 1.5},
            ValueError,
            "iou_threshold must be in [0.0, 1.0]; got 1.5",
        ),
        (
            [[0, 0, 1, 1]],
            [[0, 0, 1, 1]],
            {"iou_threshold": -0.5},
            ValueError,
            "iou_threshold must be in [0.0, 1.0]; got -0.5",
        ),
        (
            [[0, 0, 1, 1]],
            [[0, 0, 1, 1]],
            {"iou_threshold": "0.5"},
            TypeError,
            "iou_threshold must be a number; got '0.5' (str)",
        ),
        (
            [[0, 0, 1]],
            [[0, 0, 1, 1]],
            {},
            ValueError,
            "boxes must have shape (N, 4) as (x0, y0, x1, y1); got shape (1, 3)",
        ),
        (
            [[0, 0, 1, 1]],
            [[0, 0, 1]],
            {},
            ValueError,
            "true_boxes must have shape (N, 4) as (x0, y0, x1, y1); got shape (1, 3)",
        ),
        (
            [[0, 0, 1, 1]],
            [["a", "b", "c", "d"]],
            {},
            TypeError,
            "true_boxes must be boxes of real numbers, shape (N, 4); got list of dtype <U1",
        ),
    ],
)
def test_match_detections_refuses_bad_input_naming_it(boxes, true_boxes, keywords, error, message):
    """match_detections: iou_threshold in [0, 1], boxes and true_boxes (N, 4), named in the error."""
    _refuses(error, message, match_detections, boxes, true_boxes, **keywords)


def test_match_detections_refuses_too_many_pairs_naming_both(monkeypatch):
    """match_detections: an IoU table over MAX_BOX_PAIRS is refused before it is built, naming both inputs."""
    monkeypatch.setattr(importlib.import_module("deepimaging._checks"), "MAX_BOX_PAIRS", 5)
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    assert match_detections(box.repeat(5, 1), box)["true_positives"] == 1
    _refuses(
        ValueError,
        "boxes and true_boxes hold 3 and 2 boxes: 6 pairs, more than the 5 an IoU table may have (its memory "
        "grows as N x M); compare the boxes of one image at a time, or keep fewer detections (a higher threshold)",
        match_detections,
        torch.zeros(3, 4),
        torch.zeros(2, 4),
    )


# detection._dense_parts and _dense_sliding_window (sliding_window(..., method="dense"))


class _StridedTrunk(nn.Module):
    """A 1x1 convolution with stride (2, 4), a (1, 1) global pool, flatten, linear: downsampling 2 x 4."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.features = nn.Sequential(
            nn.Conv2d(3, 5, 1, stride=(2, 4)), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()
        )
        self.classifier = nn.Linear(5, 3)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_dense_windows_of_a_non_square_downsampling_equal_a_loop_over_crops():
    """_dense_parts/_dense_sliding_window: D = (2, 4) from the strides; each window's probabilities as its own crop."""
    model = _StridedTrunk().eval()
    image = torch.rand(3, 10, 24, generator=torch.Generator().manual_seed(3))
    heatmaps = sliding_window(model, image, window=(4, 8), stride=(2, 4), method="dense")
    with torch.no_grad():
        expected = torch.stack(
            [
                torch.stack(
                    [model(image[None, :, i : i + 4, j : j + 8]).softmax(1)[0] for j in range(0, 17, 4)]
                )
                for i in range(0, 7, 2)
            ]
        ).permute(2, 0, 1)
    assert heatmaps.shape == (3, 4, 5)
    torch.testing.assert_close(heatmaps, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("window", "stride", "name", "got"),
    [((3, 8), (2, 4), "window", "3x8"), ((4, 6), (2, 4), "window", "4x6"), ((4, 8), (2, 2), "stride", "2x2")],
)
def test_dense_windows_and_strides_must_be_multiples_of_the_downsampling_on_each_axis(
    window, stride, name, got
):
    """_dense_sliding_window: either axis off a multiple of D = 2 x 4 is refused, naming window or stride."""
    _refuses(
        ValueError,
        f'method="dense" needs the {name} to be a multiple of the trunk\'s downsampling 2x4 (the product of its '
        f"strides), so that windows cover whole cells of the feature map; got {name} {got} "
        '(round it to a multiple, or use method="exact")',
        sliding_window,
        _StridedTrunk().eval(),
        torch.rand(3, 10, 24),
        window,
        stride,
        method="dense",
    )


def _with_features(features, classifier=None):
    """A model whose ``features`` and ``classifier`` are given (``classifier`` may be a plain function)."""
    model = nn.Module()
    model.features = features
    model.classifier = classifier if classifier is not None else nn.Linear(2, 2)
    return model


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()),  # no .features
        _with_features([nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]),  # a list, not Sequential
        _with_features(nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()), print),
        _with_features(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),  # no trunk
        _with_features(nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveMaxPool2d(1), nn.Flatten())),
        _with_features(nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(2), nn.Flatten())),
        _with_features(nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d((1, 2)), nn.Flatten())),
        _with_features(nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d((2, 1)), nn.Flatten())),
        _with_features(nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Identity())),
    ],
    ids=[
        "no-features",
        "list",
        "function-classifier",
        "no-trunk",
        "max-pool",
        "pool-2",
        "pool-1x2",
        "pool-2x1",
        "no-flatten",
    ],
)
def test_dense_needs_a_trunk_a_global_average_pool_to_1x1_a_flatten_and_a_classifier(model):
    """_dense_parts: each missing piece of trunk + AdaptiveAvgPool2d(1) + Flatten + classifier is refused by name."""
    _refuses(
        ValueError,
        'method="dense" needs a model like BasicCNN: `.features` an nn.Sequential ending in AdaptiveAvgPool2d(1) '
        "and Flatten after a convolutional trunk, and `.classifier` applied to its output; "
        f'{type(model).__name__} is not one (use method="exact")',
        sliding_window,
        model,
        torch.rand(3, 8, 8),
        4,
        method="dense",
    )


# features.get_layer, filter_weights and _run_with_hook (activation_maps, extract_features(layer=...))


def _two_convs():
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 4, 1))


def test_get_layer_finds_any_named_layer_and_refuses_others_listing_the_names_and_types():
    """get_layer: any name of named_modules (a ReLU too); an unknown name or a non-string lists them all."""
    from deepimaging.interpret import get_layer

    model = _two_convs()
    assert get_layer(model, "1") is model[1] and get_layer(model, "2", conv=True) is model[2]
    available = "0 (Conv2d), 1 (ReLU), 2 (Conv2d)"
    _refuses(ValueError, f"unknown layer '3'; available layers: {available}", get_layer, model, "3")
    _refuses(ValueError, f"unknown layer 0; available layers: {available}", get_layer, model, 0)
    _refuses(
        ValueError,
        "unknown convolution layer '1'; available convolution layers: ['0', '2']",
        get_layer,
        model,
        "1",
        conv=True,
    )
    _refuses(TypeError, "model must be a torch.nn.Module; got dict", get_layer, {}, "0")


def test_filter_weights_default_to_the_first_convolution_and_refuse_other_layers():
    """filter_weights: the first Conv2d's weight by default, a named one when asked, a ReLU or no conv refused."""
    model = _two_convs()
    torch.testing.assert_close(filter_weights(model), model[0].weight.detach())
    torch.testing.assert_close(filter_weights(model, "2"), model[2].weight.detach())
    _refuses(
        ValueError,
        "unknown convolution layer '1'; available convolution layers: ['0', '2']",
        filter_weights,
        model,
        "1",
    )
    _refuses(
        ValueError,
        "Sequential has no nn.Conv2d layer to show filters of",
        filter_weights,
        nn.Sequential(nn.ReLU()),
    )


def test_layer_features_in_batches_are_the_layer_output_of_every_image():
    """_run_with_hook: batches of 2 over 5 images give conv2d of every image; no images give (0, D)."""
    model = _two_convs().eval()
    images = torch.rand(5, 3, 6, 6, generator=torch.Generator().manual_seed(5))
    expected = nn.functional.conv2d(images, model[0].weight, model[0].bias).flatten(1)
    torch.testing.assert_close(extract_features(model, images, "0", batch_size=2), expected)
    torch.testing.assert_close(extract_features(model, images, "0", batch_size=5), expected)
    assert extract_features(model, images[:0], "0").shape == (0, 2 * 4 * 4)
    model.train()
    extract_features(model, images, "2", batch_size=3)
    assert model.training  # put back in the mode it was in
