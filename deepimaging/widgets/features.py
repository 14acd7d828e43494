"""Explorers over deepimaging.interpret.features: filters, nearest neighbours, the t-SNE map."""

from __future__ import annotations

import html
import io

import ipyevents
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from .._checks import check_choice, check_int, check_number
from ..data.dataset import ImageDataset
from ..interpret import (
    activation_maps,
    conv_layer_names,
    extract_features,
    filter_weights,
    nearest_neighbors,
    tsne,
)
from ..plots.features import activation_grid, filter_grid, neighbor_grid, tsne_scatter
from ._base import Explorer, figure_to_png

__all__ = ["EmbeddingExplorer", "FilterExplorer", "NeighborExplorer"]


class FilterExplorer(Explorer):
    """Pick a convolution layer; see its filters and, given an image, its activation maps.

    Everything is computed once in ``__init__`` (the weights of every
    convolution and, for ``image``, every convolution's output); moving a
    control only draws, and each drawing is kept.

    Parameters
    ----------
    model : nn.Module
    image : torch.Tensor, optional
        One image (C, H, W) in [0, 1] whose activation maps are shown.
    max_filters, max_channels : int
        Passed to :func:`deepimaging.plots.filter_grid`.

    Attributes
    ----------
    layer : ipywidgets.Dropdown
        The convolution layer, by name.
    scale : ipywidgets.ToggleButtons
        ``"filter"`` or ``"symmetric"`` scaling of the filter tiles.
    filters_image, activations_image : ipywidgets.Image
    readout : ipywidgets.HTML
    """

    name = "filters"

    def __init__(
        self, model, image=None, *, max_filters: int = 64, max_channels: int = 16, device: str = "auto"
    ):
        self.layers = conv_layer_names(model)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to explore")
        self.max_filters = check_int(max_filters, "max_filters", 1)
        self.max_channels = check_int(max_channels, "max_channels", 1)
        self.weights = {name: filter_weights(model, name) for name in self.layers}
        self.image = image
        self.maps = {}
        if image is not None:
            self.maps = {name: activation_maps(model, image, name, device=device) for name in self.layers}
        self._png = {}

        self.layer = widgets.Dropdown(options=self.layers, value=self.layers[0], description="layer")
        self.scale = widgets.ToggleButtons(
            options=[("per filter", "filter"), ("symmetric about 0", "symmetric")],
            value="filter",
            description="scale",
        )
        self.filters_image = widgets.Image(format="png")
        self.activations_image = widgets.Image(
            format="png", layout={"display": "none" if image is None else ""}
        )
        self.readout = widgets.HTML()
        self.layer.observe(self._on_layer, names="value")
        self.scale.observe(self._on_scale, names="value")
        self._draw_filters()
        self._draw_activations()
        controls = widgets.HBox([self.layer, self.scale])
        self._finish(widgets.VBox([controls, self.readout, self.filters_image, self.activations_image]))

    def _filters_figure(self, layer, scale, ax=None):
        w = self.weights[layer]
        colour = layer == self.layers[0] and w.shape[1] == 3
        return filter_grid(
            w,
            scale=scale,
            colour=colour,
            max_filters=self.max_filters,
            max_channels=self.max_channels,
            title=f"{layer}: {w.shape[0]} filters of {w.shape[1]}x{w.shape[2]}x{w.shape[3]}",
            ax=ax,
        )

    def _draw_filters(self):
        layer, scale = self.layer.value, self.scale.value
        key = ("filters", layer, scale)
        if key not in self._png:
            self._png[key] = figure_to_png(self._filters_figure(layer, scale))
        self.filters_image.value = self._png[key]
        w = self.weights[layer]
        self.readout.value = (
            f"<b>{html.escape(layer)}</b>: {w.shape[0]} filters of {w.shape[1]}x{w.shape[2]}x{w.shape[3]}, "
            f"weights in [{float(w.min()):.3g}, {float(w.max()):.3g}]"
        )

    def _draw_activations(self):
        if self.image is None:
            return
        layer = self.layer.value
        key = ("maps", layer)
        if key not in self._png:
            self._png[key] = figure_to_png(activation_grid(self.maps[layer], self.image, layer))
        self.activations_image.value = self._png[key]

    def _on_layer(self, change):
        self._draw_filters()
        self._draw_activations()

    def _on_scale(self, change):
        self._draw_filters()  # the activation maps do not depend on how the filters are scaled

    def static_figure(self):
        layer = self.layer.value
        if self.image is None:
            fig, ax = plt.subplots(figsize=(6, 6))
            self._filters_figure(layer, self.scale.value, ax=ax)
            return fig
        fig, axes = plt.subplots(1, 3, figsize=(14, 5), gridspec_kw={"width_ratios": [2, 1, 2]})
        self._filters_figure(layer, self.scale.value, ax=axes[0])
        activation_grid(self.maps[layer], self.image, layer, axes=axes[1:])
        return fig


class NeighborExplorer(Explorer):
    """Pick a query image; see its nearest neighbours in pixel space or in feature space.

    The neighbours of every query in both spaces are computed in ``__init__``
    (one :func:`~deepimaging.interpret.nearest_neighbors` call per space), so
    moving a control only draws.

    Parameters
    ----------
    model : nn.Module
        Gives the features (:func:`~deepimaging.interpret.extract_features`, penultimate layer).
    database : ImageDataset
        Where neighbours are searched.
    queries : ImageDataset, optional
        Query images (e.g. the test set). Default: the database images
        themselves, each left out of its own neighbours.
    k : int
    metric : {"l2", "cosine"}

    Attributes
    ----------
    query : ipywidgets.IntSlider
    space : ipywidgets.ToggleButtons
        ``"pixel"`` or ``"feature"``.
    image : ipywidgets.Image
    readout : ipywidgets.HTML
    neighbors : dict
        ``{"pixel": Neighbors, "feature": Neighbors}`` for every query.
    """

    name = "neighbors"

    def __init__(
        self, model, database, queries=None, *, k: int = 5, metric: str = "l2", device: str = "auto"
    ):
        _check_dataset(database, "database")
        if queries is not None:
            _check_dataset(queries, "queries")
        check_int(k, "k", 1)
        check_choice(metric, "metric", ("l2", "cosine"))
        self.database = database
        self.queries = database if queries is None else queries
        self.metric = metric
        own = queries is None  # queries taken from the database: leave each out of its own results
        db_features = extract_features(model, database, device=device)
        q_features = db_features if own else extract_features(model, self.queries, device=device)
        self.neighbors = {
            "pixel": nearest_neighbors(
                self.queries.images, database.images, k, metric=metric, exclude_self=own
            ),
            "feature": nearest_neighbors(q_features, db_features, k, metric=metric, exclude_self=own),
        }
        self._png = {}

        self.query = widgets.IntSlider(value=0, min=0, max=len(self.queries) - 1, description="query")
        self.space = widgets.ToggleButtons(
            options=[("pixel space", "pixel"), ("feature space", "feature")],
            value="feature",
            description="space",
        )
        self.image = widgets.Image(format="png")
        self.readout = widgets.HTML()
        self.query.observe(self._draw, names="value")
        self.space.observe(self._draw, names="value")
        self._draw()
        self._finish(widgets.VBox([widgets.HBox([self.query, self.space]), self.readout, self.image]))

    def _draw(self, change=None):
        q, space = self.query.value, self.space.value
        if (q, space) not in self._png:
            indices = self.neighbors[space].indices[q : q + 1]
            title = f"{space} space ({self.metric})"
            self._png[q, space] = figure_to_png(
                neighbor_grid(self.queries.subset([q]), self.database, {title: indices})
            )
        self.image.value = self._png[q, space]
        found = self.neighbors[space]
        label = int(self.queries.labels[q])
        same = int((self.database.labels[found.indices[q]] == label).sum())
        distances = ", ".join(f"{d:.3g}" for d in found.distances[q].tolist())
        self.readout.value = (
            f"query {q} ({html.escape(self.queries.classes[label])}), {space} space: "
            f"<b>{same}/{found.indices.shape[1]}</b> neighbours of the same class; distances {distances}"
        )

    def static_figure(self):
        shown = list(range(min(4, len(self.queries))))
        blocks = {
            f"{s} space ({self.metric})": self.neighbors[s].indices[shown] for s in ("pixel", "feature")
        }
        return neighbor_grid(self.queries.subset(shown), self.database, blocks)


class EmbeddingExplorer(Explorer):
    """The t-SNE map of the features; click a point to see its image and its feature-space neighbours.

    Features, the t-SNE map and every point's neighbours are computed in
    ``__init__``. A point is picked by clicking it on the map (browser clicks
    reach the kernel through `ipyevents <https://github.com/mwcraig/ipyevents>`_,
    since a plain ``ipywidgets.Image`` reports none) or by index with the
    ``point`` slider (keyboard access); the two stay in step. The map rings
    the chosen point and its neighbours.

    How a click finds its point: the map is drawn by matplotlib at a fixed
    size and resolution, so ``ax.transData`` gives the pixel of every point in
    the PNG (matplotlib's display y grows upwards, PNG rows grow downwards:
    ``row = height - y``). The click arrives in PNG pixels (``arrayX``,
    ``arrayY``: ipyevents rescales them when the image is shown smaller or
    larger than the PNG), and the nearest point within ``click_radius``
    pixels is chosen; a click on empty space changes nothing.

    Parameters
    ----------
    model : nn.Module
    data : ImageDataset
    k : int
        Neighbours shown for the chosen point (found in feature space, not in the map).
    perplexity : float
    seed : int
        Seeds t-SNE and the choice of thumbnails.
    thumbnails : int
        Images drawn on the map.
    click_radius : float
        How far (in PNG pixels) a click may land from a point and still pick it.

    Attributes
    ----------
    point : ipywidgets.IntSlider
    scatter_image, image : ipywidgets.Image
        The map, and the chosen point with its neighbours.
    clicks : ipyevents.Event
        Watches clicks on ``scatter_image``; each goes to :meth:`on_click`.
    readout : ipywidgets.HTML
    embedding : torch.Tensor
        (N, 2) t-SNE coordinates.
    point_pixels : numpy.ndarray
        (N, 2) column and row of every point in the map's PNG now shown.
    """

    name = "embedding"
    figsize = (6.0, 5.0)  # inches; at ``dpi`` this fixes the size of the map's PNG
    dpi = 80

    def __init__(
        self,
        model,
        data,
        *,
        k: int = 5,
        perplexity: float = 30.0,
        seed: int = 0,
        thumbnails: int = 0,
        click_radius: float = 6.0,
        device: str = "auto",
    ):
        _check_dataset(data, "data")
        check_int(k, "k", 1)
        self.click_radius = check_number(click_radius, "click_radius", 0.0, 1e4)
        check_int(seed, "seed", 0, 2**32 - 1)  # the seeds scikit-learn and openTSNE accept
        check_int(thumbnails, "thumbnails", 0)
        self.data, self.seed, self.thumbnails = data, seed, thumbnails
        self.features = extract_features(model, data, device=device)
        self.embedding = tsne(self.features, perplexity=perplexity, seed=seed)
        self.neighbors = nearest_neighbors(self.features, self.features, k, exclude_self=True)
        self._png = {}

        self.point = widgets.IntSlider(value=0, min=0, max=len(data) - 1, description="point")
        # The map keeps its PNG size (clicks land where they are aimed); the neighbour panel
        # shrinks to the room left, keeping its aspect ratio.
        self.scatter_image = widgets.Image(format="png", layout={"flex": "0 0 auto"})
        self.scatter_image.add_class("deepimaging-embedding-map")
        self.image = widgets.Image(format="png", layout={"object_fit": "contain", "min_width": "0"})
        self.readout = widgets.HTML()
        self.clicks = ipyevents.Event(source=self.scatter_image, watched_events=["click"])
        self.clicks.on_dom_event(self.on_click)
        self.point.observe(self._draw, names="value")
        self._draw()
        self._finish(widgets.VBox([self.point, self.readout, widgets.HBox([self.scatter_image, self.image])]))

    def _scatter(self, i, ax=None):
        return tsne_scatter(
            self.embedding,
            self.data.labels,
            self.data.classes,
            images=self.data.images if self.thumbnails else None,
            thumbnails=self.thumbnails,
            highlight=[i, *self.neighbors.indices[i].tolist()],
            seed=self.seed,
            title=f"t-SNE of the features; click a point (now {i}, ringed with its neighbours)",
            ax=ax,
        )

    def _map_png(self, i):
        """The map's PNG with point ``i`` chosen, and the (N, 2) pixel (column, row) of every point in it.

        Saved without ``bbox_inches="tight"`` (which would crop by an amount
        known only while saving), so the PNG is the whole figure and the
        pixels come straight from the axes transform.
        """
        fig, ax = plt.subplots(figsize=self.figsize, dpi=self.dpi)
        self._scatter(i, ax=ax)
        fig.tight_layout()
        fig.canvas.draw()  # fixes the layout, hence the transform
        height = fig.bbox.height
        xy = ax.transData.transform(self.embedding.numpy().astype(np.float64))
        pixels = np.column_stack([xy[:, 0], height - xy[:, 1]])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        plt.close(fig)
        return buffer.getvalue(), pixels

    def _draw(self, change=None):
        i = self.point.value
        if i not in self._png:
            scatter, pixels = self._map_png(i)
            block = {"feature-space neighbours": self.neighbors.indices[i : i + 1]}
            panel = figure_to_png(neighbor_grid(self.data.subset([i]), self.data, block))
            self._png[i] = scatter, panel, pixels
        self.scatter_image.value, self.image.value, self.point_pixels = self._png[i]
        label = int(self.data.labels[i])
        same = int((self.data.labels[self.neighbors.indices[i]] == label).sum())
        x, y = self.embedding[i].tolist()
        self.readout.value = (
            f"point {i} ({html.escape(self.data.classes[label])}) at ({x:.1f}, {y:.1f}): "
            f"<b>{same}/{self.neighbors.indices.shape[1]}</b> feature-space neighbours of the same class"
        )

    def point_at(self, column: float, row: float) -> int | None:
        """Index of the point drawn nearest to PNG pixel (column, row), or None if none is within reach."""
        distances = np.hypot(self.point_pixels[:, 0] - column, self.point_pixels[:, 1] - row)
        nearest = int(distances.argmin())
        return nearest if distances[nearest] <= self.click_radius else None

    def on_click(self, event: dict) -> None:
        """Handle an ipyevents click on the map: choose the point under it (the slider follows).

        Uses ``arrayX``/``arrayY`` (PNG pixels) when the event has them;
        otherwise scales ``relativeX``/``relativeY`` (screen pixels in the
        shown image) by the PNG's size over the shown size
        (``boundingRectWidth``/``boundingRectHeight``).
        """
        if "arrayX" in event and "arrayY" in event:
            column, row = float(event["arrayX"]), float(event["arrayY"])
        elif "relativeX" in event and event.get("boundingRectWidth") and event.get("boundingRectHeight"):
            png_width, png_height = self.figsize[0] * self.dpi, self.figsize[1] * self.dpi
            column = float(event["relativeX"]) * png_width / float(event["boundingRectWidth"])
            row = float(event["relativeY"]) * png_height / float(event["boundingRectHeight"])
        else:
            return
        chosen = self.point_at(column, row)
        if chosen is not None:
            self.point.value = chosen  # the slider's observer redraws

    def static_figure(self):
        fig, ax = plt.subplots(figsize=self.figsize)
        self._scatter(self.point.value, ax=ax)
        return fig


def _check_dataset(data, name):
    if not isinstance(data, ImageDataset):
        raise TypeError(f"{name} must be an ImageDataset; got {type(data).__name__}")
    if len(data) < 2:
        raise ValueError(f"{name} needs at least 2 images to have neighbours; got {len(data)}")
