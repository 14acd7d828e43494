"""Hostile input to the interpretation tools: attribution, features, neighbours, t-SNE (issue 21).

The classes: sizes that would exhaust memory (refused before allocating, or, where only
speed is at stake, split into smaller pieces with the same result), non-finite numbers
(refused, naming the parameter: a NaN distance or fill value silently spoils a whole map),
and empty batches (empty in, empty out). Right results are checked against scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from deepimaging.interpret import (
    distance_matrix,
    extract_features,
    nearest_neighbors,
    neighbors,
    occlusion_map,
    saliency_map,
    tsne,
)
from deepimaging.models import BasicCNN


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BasicCNN(3, 3, widths=(4, 8)).eval()


# ---------------------------------------------------------------- attribution


def test_smoothgrad_refuses_a_sample_count_that_would_exhaust_memory(model):
    # 10**9 noisy copies of a 3 x 16 x 16 image are 3 TB of noise: refused before the draw.
    with pytest.raises(ValueError, match=r"smoothgrad_samples 1000000000 would draw 2861.0 GiB of noise"):
        saliency_map(model, torch.rand(3, 16, 16), smoothgrad_samples=10**9)


@pytest.mark.parametrize("value", [float("inf"), -1.0])
def test_smoothgrad_refuses_an_infinite_or_negative_noise_level(model, value):
    with pytest.raises(ValueError, match="noise_level must be"):
        saliency_map(model, torch.rand(3, 16, 16), smoothgrad_samples=2, noise_level=value)


@pytest.mark.parametrize("baselines", [float("inf"), float("-inf"), torch.full((3, 1, 1), float("nan"))])
def test_occlusion_refuses_a_non_finite_fill_value(model, baselines):
    # An infinite fill made every occluded score NaN: the whole map was NaN, without an error.
    with pytest.raises(ValueError, match="baselines must be (a )?finite"):
        occlusion_map(model, torch.rand(3, 16, 16), baselines=baselines)


# ---------------------------------------------------------------- features


@pytest.mark.parametrize("layer", [None, "features.0"])
def test_features_of_no_images_are_an_empty_batch_of_the_right_width(model, layer):
    one = extract_features(model, torch.rand(1, 3, 16, 16), layer)
    none = extract_features(model, torch.zeros(0, 3, 16, 16), layer)
    assert none.shape == (0, one.shape[1])


# ---------------------------------------------------------------- neighbours and t-SNE


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda bad, good: distance_matrix(bad, good), "a"),
        (lambda bad, good: distance_matrix(good, bad), "b"),
        (lambda bad, good: nearest_neighbors(bad, good, k=1), "queries"),
        (lambda bad, good: nearest_neighbors(good, bad, k=1), "database"),
        (lambda bad, good: tsne(bad, perplexity=2), "features"),
    ],
)
def test_feature_space_tools_refuse_non_finite_features_naming_them(call, name, value):
    good = torch.rand(6, 4)
    bad = good.clone()
    bad[2, 1] = value
    with pytest.raises(ValueError, match=f"^{name} must be finite"):
        call(bad, good)


def test_distance_matrix_refuses_a_table_too_large_before_allocating_it():
    many = torch.zeros(1, 4).expand(10**6, 4)  # a view: the rows take no memory
    with pytest.raises(
        ValueError, match=f"would hold 1000000000000 distances at once, more than {neighbors.MAX_PAIRS}"
    ):
        distance_matrix(many, many)


def test_distance_matrix_checks_its_inputs_and_keeps_empty_in_empty_out():
    with pytest.raises(TypeError, match="a must be a torch.Tensor"):
        distance_matrix([[0.0, 1.0]], torch.rand(2, 2))
    with pytest.raises(ValueError, match="a and b must have the same number of features; got 2 and 3"):
        distance_matrix(torch.rand(2, 2), torch.rand(2, 3))
    assert distance_matrix(torch.zeros(0, 3), torch.rand(4, 3)).shape == (0, 4)


def test_nearest_neighbors_with_a_huge_chunk_size_splits_the_queries_and_agrees_with_sklearn(monkeypatch):
    # chunk_size changes memory, not the answer: with room for 2 x 20 distances per chunk, a
    # chunk_size of 10**9 is cut to 2 queries at a time and still matches scikit-learn.
    monkeypatch.setattr(neighbors, "MAX_PAIRS", 40)
    generator = torch.Generator().manual_seed(0)
    queries, database = torch.rand(7, 3, generator=generator), torch.rand(20, 3, generator=generator)
    ours = nearest_neighbors(queries, database, k=3, chunk_size=10**9)
    distances, indices = NearestNeighbors(n_neighbors=3).fit(database.numpy()).kneighbors(queries.numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), indices)
    np.testing.assert_allclose(ours.distances.numpy(), distances, atol=1e-5)
