"""Filters, activations, features, nearest neighbours and t-SNE, with their figures and explorers."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors
from torch import nn

from deepimaging.data import ImageDataset, simulate_blood_smear
from deepimaging.interpret import (
    activation_maps,
    conv_layer_names,
    distance_matrix,
    extract_features,
    filter_weights,
    get_layer,
    nearest_neighbors,
    tsne,
)
from deepimaging.models import BasicCNN, PhysicalModel
from deepimaging.plots import activation_grid, filter_grid, neighbor_grid, tsne_scatter
from deepimaging.widgets import EmbeddingExplorer, FilterExplorer, NeighborExplorer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = BasicCNN(3, 4, widths=(8, 16))
    # Non-trivial BatchNorm statistics, so eval mode and train mode give different outputs.
    m.train()
    with torch.no_grad():
        m(torch.rand(16, 3, 16, 16))
    return m.eval()


@pytest.fixture(scope="module")
def data():
    return simulate_blood_smear(n_per_class=6, size=16, seed=0)


# --- layers by name --------------------------------------------------------------------------


def test_conv_layer_names_are_the_conv2d_entries_of_named_modules(model):
    # BasicCNN blocks are conv, BN, ReLU, pool: convolutions sit at 0 and 4.
    assert conv_layer_names(model) == ["features.0", "features.4"]
    wrapped = PhysicalModel(nn.Identity(), model)
    assert conv_layer_names(wrapped) == ["cnn.features.0", "cnn.features.4"]


def test_unknown_layer_name_error_lists_the_available_names(model):
    with pytest.raises(ValueError, match=r"unknown layer 'features\.99'.*features\.0.*classifier"):
        get_layer(model, "features.99")
    with pytest.raises(
        ValueError, match=r"unknown convolution layer 'features\.1'.*\['features\.0', 'features\.4'\]"
    ):
        filter_weights(model, "features.1")  # a BatchNorm, not a convolution


def test_filter_weights_are_a_detached_copy_of_the_conv_weight(model):
    w = filter_weights(model, "features.4")
    assert w.shape == (16, 8, 3, 3)
    assert torch.equal(w, model.features[4].weight.detach())
    w.zero_()
    assert model.features[4].weight.abs().sum() > 0
    assert torch.equal(filter_weights(model), model.features[0].weight.detach())  # first conv by default


def test_model_without_conv_layers_has_no_filters():
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        filter_weights(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


# --- filter grids ----------------------------------------------------------------------------


def test_symmetric_scaling_keeps_zero_at_mid_grey_and_largest_weight_white():
    w = torch.zeros(2, 2, 3, 3)
    w[0, 0, 1, 1] = 2.0  # the largest |w| of the layer
    w[1, 1, 0, 0] = -1.0
    fig = filter_grid(w, scale="symmetric")
    image = fig.axes[0].images[0].get_array()
    # Grey layout: rows are filters, columns input channels, tiles 3x3 with 1-pixel gaps.
    assert image.shape == (2 * 4 - 1, 2 * 4 - 1)
    assert image[1, 1] == pytest.approx(1.0)  # +2 -> white
    assert image[4, 4] == pytest.approx(0.25)  # -1 -> 0.5 - 0.5 * 1/2
    assert image[0, 0] == pytest.approx(0.5)  # 0 -> mid-grey
    assert image.mask[3, 0]  # the gap between tiles is blank
    assert "symmetric about 0" in fig.axes[0].get_title()


def test_per_filter_scaling_stretches_every_filter_to_black_and_white():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, 4, 4, generator=g) * torch.tensor([1.0, 0.01, 3.0, 0.5, 2.0])[:, None, None, None]
    fig = filter_grid(w, scale="filter")
    rgba = fig.axes[0].images[0].get_array()
    assert rgba.shape == (2 * 5 - 1, 3 * 5 - 1, 4)  # 5 colour filters in a 2x3 grid
    for i in range(5):
        r, c = divmod(i, 3)
        tile = rgba[r * 5 : r * 5 + 4, c * 5 : c * 5 + 4, :3]
        assert tile.min() == pytest.approx(0.0) and tile.max() == pytest.approx(1.0)
        expected = (w[i] - w[i].min()) / (w[i].max() - w[i].min())
        np.testing.assert_allclose(tile, expected.permute(1, 2, 0).numpy(), atol=1e-6)
    assert "own min" in fig.axes[0].get_title()


def test_first_layer_is_colour_and_higher_layers_are_grey_tiles_per_input_channel(model):
    first = filter_grid(model).axes[0].images[0].get_array()
    assert first.ndim == 3 and first.shape[-1] == 4  # RGBA
    higher = filter_grid(model, "features.4", max_channels=5).axes[0].images[0].get_array()
    assert higher.shape == (16 * 4 - 1, 5 * 4 - 1)  # 16 filters x 5 of 8 input channels
    with pytest.raises(ValueError, match="scale must be one of"):
        filter_grid(model, scale="minmax")
    with pytest.raises(ValueError, match="unknown convolution layer"):
        filter_grid(model, "classifier")
    with pytest.raises(ValueError, match=r"shape \(out_channels, in_channels, kH, kW\)"):
        filter_grid(torch.zeros(3, 3, 3))
    with pytest.raises(ValueError, match="colour=True needs filters with 3 input channels; got 8"):
        filter_grid(model, "features.4", colour=True)


# --- activations and features ----------------------------------------------------------------


def test_activation_maps_equal_the_convolution_computed_by_hand(model, data):
    image = data.images[0]
    conv = model.features[0]
    expected = nn.functional.conv2d(image[None], conv.weight, padding=1)[0]
    torch.testing.assert_close(activation_maps(model, image, "features.0", device="cpu"), expected)
    # After the in-place ReLU: relu(bn(conv(x))) in eval mode, all >= 0.
    with torch.no_grad():
        after_relu = model.features[:3](image[None])[0]
    got = activation_maps(model, image, "features.2", device="cpu")
    torch.testing.assert_close(got, after_relu)
    assert got.min() >= 0
    fig = activation_grid(model, image, "features.2", max_maps=4)
    assert "4 of 8 maps" in fig.axes[1].get_xlabel()


def test_activation_maps_need_one_image_with_the_right_channels(model, data):
    with pytest.raises(ValueError, match=r"shape \(C, H, W\)"):
        activation_maps(model, data.images[:2], "features.0")
    with pytest.raises(ValueError, match="3 input channel"):
        activation_maps(model, data.images[0, :1], "features.0")


def test_penultimate_features_equal_embed_in_eval_mode_for_any_batch_size(model, data):
    with torch.no_grad():
        expected = model.embed(data.images)
    small = extract_features(model, data, batch_size=5, device="cpu")
    torch.testing.assert_close(small, expected)
    torch.testing.assert_close(extract_features(model, data.images, batch_size=100, device="cpu"), expected)
    assert small.shape == (24, 16) and not small.requires_grad


def test_named_layer_features_are_the_flattened_layer_output(model, data):
    with torch.no_grad():
        expected = model.features[:5](data.images).flatten(1)
    got = extract_features(model, data, layer="features.4", batch_size=7, device="cpu")
    torch.testing.assert_close(got, expected)


def test_feature_extraction_restores_training_mode_and_leaves_batchnorm_statistics_alone(model, data):
    model.train()
    before = model.features[1].running_mean.clone()
    try:
        extract_features(model, data, device="cpu")
        extract_features(model, data, layer="features.0", device="cpu")
        activation_maps(model, data.images[0], "features.0", device="cpu")
        assert model.training and all(m.training for m in model.modules())
        assert torch.equal(model.features[1].running_mean, before)
    finally:
        model.eval()
    assert not any(m.training for m in model.modules())


def test_features_of_a_physical_model_go_through_its_physical_layer(model, data):
    halve = PhysicalModel(nn.Identity(), model)
    torch.testing.assert_close(
        extract_features(halve, data, device="cpu"), extract_features(model, data, device="cpu")
    )


def test_feature_extraction_rejects_bad_input(model, data):
    with pytest.raises(TypeError, match="no embed"):
        extract_features(nn.Sequential(nn.Flatten()), data)
    with pytest.raises(ValueError, match="unknown layer 'fc'"):
        extract_features(model, data, layer="fc")
    with pytest.raises(ValueError, match="3 input channel"):
        extract_features(model, data.images[:, :1])
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        extract_features(model, data.images[0])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        extract_features(model, data.images * 2)


# --- nearest neighbours ----------------------------------------------------------------------


@pytest.mark.parametrize("metric, sklearn_metric", [("l2", "euclidean"), ("cosine", "cosine")])
def test_neighbours_equal_sklearn_brute_force(metric, sklearn_metric):
    g = torch.Generator().manual_seed(1)
    database, queries = torch.randn(300, 20, generator=g), torch.randn(40, 20, generator=g)
    ours = nearest_neighbors(queries, database, k=7, metric=metric, chunk_size=16)
    oracle = NearestNeighbors(n_neighbors=7, algorithm="brute", metric=sklearn_metric).fit(database.numpy())
    distances, indices = oracle.kneighbors(queries.numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), indices)
    np.testing.assert_allclose(ours.distances.numpy(), distances, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("metric, sklearn_metric", [("l2", "euclidean"), ("cosine", "cosine")])
def test_query_in_the_database_is_left_out_as_sklearn_kneighbors_without_x(metric, sklearn_metric):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(120, 3, 4, 4, generator=g)  # images: pixel space, flattened
    ours = nearest_neighbors(x, x, k=5, metric=metric, exclude_self=True)
    oracle = NearestNeighbors(n_neighbors=5, algorithm="brute", metric=sklearn_metric).fit(
        x.flatten(1).numpy()
    )
    distances, indices = oracle.kneighbors()  # X=None: each training point is left out of its own result
    np.testing.assert_array_equal(ours.indices.numpy(), indices)
    np.testing.assert_allclose(ours.distances.numpy(), distances, rtol=1e-4, atol=1e-5)
    # The same, with the queries given as a subset and their database positions.
    rows = [5, 17, 99]
    subset = nearest_neighbors(x[rows], x, k=5, metric=metric, exclude_self=rows)
    np.testing.assert_array_equal(subset.indices.numpy(), indices[rows])


def test_self_is_excluded_by_position_so_an_exact_duplicate_is_still_found():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    found = nearest_neighbors(x, x, k=1, exclude_self=True)
    assert found.indices.ravel().tolist() == [1, 0, 0]
    assert found.distances[0, 0] == 0


def test_distance_matrix_equals_sklearn_pairwise_distances():
    g = torch.Generator().manual_seed(3)
    a, b = (
        torch.randn(9, 6, generator=g, dtype=torch.float64),
        torch.randn(11, 6, generator=g, dtype=torch.float64),
    )
    for metric, name in (("l2", "euclidean"), ("cosine", "cosine")):
        expected = pairwise_distances(a.numpy(), b.numpy(), metric=name)
        np.testing.assert_allclose(distance_matrix(a, b, metric).numpy(), expected, atol=1e-10)
    assert distance_matrix(a, a).diagonal().abs().max() < 1e-6  # clamped at 0, never NaN


def test_nearest_neighbors_rejects_bad_input():
    x = torch.rand(10, 4)
    with pytest.raises(ValueError, match="k must be at most 10"):
        nearest_neighbors(x[:2], x, k=11)
    with pytest.raises(ValueError, match="k must be at most 9, the database size minus the query itself"):
        nearest_neighbors(x, x, k=10, exclude_self=True)
    with pytest.raises(ValueError, match="same number of features; got 3 and 4"):
        nearest_neighbors(torch.rand(2, 3), x)
    with pytest.raises(ValueError, match="same length"):
        nearest_neighbors(x[:3], x, exclude_self=True)
    with pytest.raises(ValueError, match="one per query"):
        nearest_neighbors(x[:3], x, exclude_self=[0, 1])
    with pytest.raises(ValueError, match=r"indices must be in \[0, 9\]"):
        nearest_neighbors(x[:2], x, exclude_self=[0, 10])
    with pytest.raises(ValueError, match="metric must be one of"):
        nearest_neighbors(x, x, metric="manhattan")
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        nearest_neighbors(torch.rand(2, 3, 4), x)
    with pytest.raises(TypeError, match="floating-point"):
        nearest_neighbors(torch.ones(2, 4, dtype=torch.long), x)
    with pytest.raises(TypeError, match="k must be an integer"):
        nearest_neighbors(x, x, k=2.0)


def test_neighbor_grid_has_the_lecture_layout_and_counts_same_class_neighbours(data):
    queries, database = data.subset([0, 1]), data.subset(range(2, 24))
    pixel = nearest_neighbors(queries.images, database.images, k=3)
    feature = torch.tensor([[0, 1, 2], [3, 4, 5]])
    fig = neighbor_grid(queries, database, {"pixel space": pixel, "feature space": feature})
    assert len(fig.axes) == 2 * 2 * (1 + 3)  # rows x blocks x (query + k)
    same = int((database.labels[feature] == queries.labels[:, None]).sum())  # counted by hand
    texts = [t.get_text() for t in fig.texts]
    assert texts[1] == f"feature space: {same}/6 same class"
    with pytest.raises(ValueError, match=r"shape \(2, k\)"):
        neighbor_grid(queries, database, {"pixel space": feature[:1]})


# --- t-SNE -----------------------------------------------------------------------------------


def test_tsne_is_seeded_and_keeps_separated_clusters_apart():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0] * 10, [20.0] * 10, [-20.0] + [20.0] * 9])
    labels = torch.arange(3).repeat_interleave(15)
    features = centres[labels] + torch.randn(45, 10, generator=g)
    a = tsne(features, perplexity=5, seed=3)
    assert a.shape == (45, 2) and a.dtype == torch.float32
    assert torch.equal(a, tsne(features, perplexity=5, seed=3))
    # Each point's nearest neighbour in the map belongs to its own cluster.
    nearest = nearest_neighbors(a, a, k=1, exclude_self=True).indices[:, 0]
    assert torch.equal(labels[nearest], labels)
    ax = tsne_scatter(a, labels, ["a", "b", "c"], images=torch.rand(45, 3, 8, 8), thumbnails=4)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    assert 1 <= len(ax.artists) <= 4


def test_tsne_rejects_bad_input():
    with pytest.raises(ValueError, match="perplexity must be below the number of points"):
        tsne(torch.rand(10, 3), perplexity=30)
    with pytest.raises(ValueError, match="method must be one of"):
        tsne(torch.rand(10, 3), perplexity=2, method="umap")
    with pytest.raises(ValueError, match=r"n_jobs must be in \[1, inf\]"):
        tsne(torch.rand(10, 3), perplexity=2, n_jobs=0)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        tsne_scatter(torch.rand(5, 3))
    with pytest.raises(ValueError, match="needs the images"):
        tsne_scatter(torch.rand(5, 2), thumbnails=2)


def test_opentsne_option_says_how_to_install_it_when_missing():
    pytest.importorskip("sklearn")
    try:
        import openTSNE  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install openTSNE"):
            tsne(torch.rand(10, 3), perplexity=2, method="opentsne")
    else:
        assert tsne(torch.rand(30, 3), perplexity=5, method="opentsne").shape == (30, 2)


# --- explorers -------------------------------------------------------------------------------


def test_filter_explorer_redraws_only_what_a_control_changes(model, data):
    explorer = FilterExplorer(model, data.images[0])
    assert {"deepimaging-explorer", "deepimaging-filters"} <= set(explorer.widget._dom_classes)
    assert list(explorer.layer.options) == ["features.0", "features.4"]
    filters, maps, text = (
        explorer.filters_image.value,
        explorer.activations_image.value,
        explorer.readout.value,
    )
    explorer.scale.value = "symmetric"
    assert explorer.filters_image.value != filters
    assert explorer.activations_image.value == maps  # scaling the filters leaves the maps alone
    explorer.layer.value = "features.4"
    assert explorer.activations_image.value != maps
    assert explorer.readout.value != text and "16 filters of 8x3x3" in explorer.readout.value
    assert isinstance(explorer.static_figure(), plt.Figure)
    assert "image/png" in explorer._repr_mimebundle_()


def test_neighbor_explorer_shows_the_neighbours_nearest_neighbors_finds(model, data):
    explorer = NeighborExplorer(model, data, k=3)
    assert "deepimaging-neighbors" in explorer.widget._dom_classes
    features = extract_features(model, data, device="cpu")
    expected = nearest_neighbors(features, features, k=3, exclude_self=True).indices
    assert torch.equal(explorer.neighbors["feature"].indices, expected)
    image = explorer.image.value
    explorer.query.value = 4
    assert explorer.image.value != image
    same = int((data.labels[expected[4]] == data.labels[4]).sum())
    assert f"<b>{same}/3</b>" in explorer.readout.value
    explorer.space.value = "pixel"
    assert "pixel space" in explorer.readout.value
    assert isinstance(explorer.static_figure(), plt.Figure)
    with pytest.raises(TypeError, match="ImageDataset"):
        NeighborExplorer(model, data.images)
    with pytest.raises(ValueError, match="k must be at most"):
        NeighborExplorer(model, data, k=len(data))


def test_embedding_explorer_moves_the_selection_and_shows_the_point_with_its_neighbours(model, data):
    explorer = EmbeddingExplorer(model, data, k=3, perplexity=5)
    assert "deepimaging-embedding" in explorer.widget._dom_classes
    assert explorer.embedding.shape == (len(data), 2)
    scatter, image = explorer.scatter_image.value, explorer.image.value
    explorer.point.value = 7
    assert explorer.scatter_image.value != scatter and explorer.image.value != image
    assert explorer.readout.value.startswith(f"point 7 ({data.classes[int(data.labels[7])]})")
    assert "image/png" in explorer._repr_mimebundle_()


def test_explorers_reject_datasets_too_small_for_neighbours(model, data):
    one = ImageDataset(data.images[:1], data.labels[:1], data.classes)
    with pytest.raises(ValueError, match="at least 2 images"):
        EmbeddingExplorer(model, one)


# --- clicking the t-SNE map (ipyevents) ----------------------------------------------------------


def _png_pixels_of_points(explorer, chosen):
    """Where matplotlib draws every point in the explorer's map PNG, recomputed here.

    The same map (tsne_scatter at the explorer's figure size and dpi, tight layout, the
    whole figure saved) drawn in a figure of our own; its data transform gives display
    pixels with y up, PNG rows count down.
    """
    fig, ax = plt.subplots(figsize=explorer.figsize, dpi=explorer.dpi)
    tsne_scatter(
        explorer.embedding,
        explorer.data.labels,
        explorer.data.classes,
        highlight=[chosen, *explorer.neighbors.indices[chosen].tolist()],
        title=f"t-SNE of the features; click a point (now {chosen}, ringed with its neighbours)",
        ax=ax,
    )
    fig.tight_layout()
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    xy = ax.transData.transform(explorer.embedding.double().numpy())
    plt.close(fig)
    return np.column_stack([xy[:, 0], height - xy[:, 1]]), (width, height)


def _isolated_point(pixels, other_than):
    """The point farthest from its nearest neighbour on the map (so a click on it is unambiguous)."""
    gaps = np.hypot(*(pixels[:, None] - pixels[None]).transpose(2, 0, 1))
    np.fill_diagonal(gaps, np.inf)
    order = np.argsort(-gaps.min(axis=1))
    return int(next(i for i in order if i != other_than))


def test_embedding_explorer_click_on_a_point_selects_it_and_moves_the_slider(model, data):
    from PIL import Image

    explorer = EmbeddingExplorer(model, data, k=3, perplexity=5)
    pixels, size = _png_pixels_of_points(explorer, chosen=0)
    png = Image.open(__import__("io").BytesIO(explorer.scatter_image.value))
    assert png.size == size  # the PNG is the whole figure: no cropping shifts the pixels
    target = _isolated_point(pixels, other_than=0)
    column, row = pixels[target]
    # The pixel we click is drawn on: not the white background of the axes.
    assert np.asarray(png.convert("RGB"))[int(row), int(column)].min() < 250
    scatter, panel, readout = explorer.scatter_image.value, explorer.image.value, explorer.readout.value
    # ipyevents rounds to whole PNG pixels (arrayX, arrayY).
    explorer.on_click({"type": "click", "arrayX": round(column), "arrayY": round(row)})
    assert explorer.point.value == target  # the slider follows the click
    assert explorer.readout.value.startswith(f"point {target} (") and explorer.readout.value != readout
    assert explorer.image.value != panel and explorer.scatter_image.value != scatter


def test_embedding_explorer_click_on_a_resized_image_is_scaled_to_png_pixels(model, data):
    explorer = EmbeddingExplorer(model, data, k=3, perplexity=5)
    pixels, (width, height) = _png_pixels_of_points(explorer, chosen=0)
    target = _isolated_point(pixels, other_than=0)
    # Shown at 60 % of the PNG's size, with no arrayX/arrayY: screen pixels relative to the image.
    shown_w, shown_h = 0.6 * width, 0.6 * height
    event = {
        "type": "click",
        "relativeX": pixels[target, 0] * 0.6,
        "relativeY": pixels[target, 1] * 0.6,
        "boundingRectWidth": shown_w,
        "boundingRectHeight": shown_h,
    }
    explorer.on_click(event)
    assert explorer.point.value == target


def test_embedding_explorer_click_on_empty_space_changes_nothing(model, data):
    explorer = EmbeddingExplorer(model, data, k=3, perplexity=5)
    explorer.point.value = 2
    pixels, (width, height) = _png_pixels_of_points(explorer, chosen=2)
    # The pixel farthest from every point (on a grid over the PNG): empty space.
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).reshape(-1, 2)
    far = grid[np.hypot(*(grid[:, None] - pixels[None]).transpose(2, 0, 1)).min(1).argmax()]
    assert np.hypot(*(pixels - far).T).min() > 3 * explorer.click_radius
    state = explorer.scatter_image.value, explorer.image.value, explorer.readout.value
    explorer.on_click({"type": "click", "arrayX": int(far[0]), "arrayY": int(far[1])})
    explorer.on_click({"type": "mouseup"})  # an event without coordinates is ignored too
    assert explorer.point.value == 2
    assert (explorer.scatter_image.value, explorer.image.value, explorer.readout.value) == state


def test_embedding_explorer_slider_and_clicks_share_the_selection(model, data):
    explorer = EmbeddingExplorer(model, data, k=3, perplexity=5)
    explorer.point.value = 5
    pixels, _ = _png_pixels_of_points(explorer, chosen=5)
    np.testing.assert_allclose(explorer.point_pixels, pixels, atol=1e-6)  # redrawn for the new selection
    target = _isolated_point(pixels, other_than=5)
    explorer.on_click(
        {"type": "click", "arrayX": round(pixels[target, 0]), "arrayY": round(pixels[target, 1])}
    )
    assert explorer.point.value == target
    with pytest.raises(ValueError, match="click_radius"):
        EmbeddingExplorer(model, data, k=3, perplexity=5, click_radius=-1)
