"""Figures for deepimaging.interpret.features: filter grids, activation maps, neighbours, t-SNE."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from torch import nn

from .._checks import check_choice, check_int, check_labels, shape_of
from ..data.dataset import ImageDataset
from ..interpret import Neighbors, activation_maps, conv_layer_names, filter_weights
from ._common import as_plot_tensor, check_panels, get_ax, imshow, to_hwc

__all__ = ["activation_grid", "filter_grid", "neighbor_grid", "tsne_scatter"]

SCALES = ("filter", "symmetric")
_SCALE_TEXT = {
    "filter": "each filter scaled to its own min (black) .. max (white)",
    "symmetric": "symmetric about 0: 0 = mid-grey, +/-{m:.3g} (largest |w| of the layer) = white/black",
}


def filter_grid(
    weights,
    layer: str | None = None,
    *,
    scale: str = "filter",
    colour: bool | None = None,
    max_filters: int = 64,
    max_channels: int = 16,
    title: str | None = None,
    ax=None,
):
    """Show the filters of a convolution layer as small images.

    First-layer filters act on pixels, so a 3-channel filter is shown as one
    colour tile (as AlexNet's 64x3x11x11 filters in the lecture). A higher-layer
    filter has one kernel per input channel, and there is no colour to give them:
    each filter becomes a row of grey tiles, one per input channel (as the
    ConvNetJS CIFAR-10 demo).

    Parameters
    ----------
    weights : torch.Tensor or nn.Module
        Weights (out_channels, in_channels, kH, kW), or a model whose layer
        ``layer`` is shown (``None``: its first convolution).
    layer : str, optional
        Name of a convolution in ``model.named_modules()`` when ``weights`` is a model.
    scale : {"filter", "symmetric"}
        ``"filter"``: each filter stretched to black..white on its own (ConvNetJS),
        which shows every filter's pattern however small its weights.
        ``"symmetric"``: one scale for the layer, ``0.5 + w / (2 max|w|)``, so 0
        stays mid-grey and filters can be compared. Stated in the title.
    colour : bool, optional
        Show 3-channel filters as colour tiles. Default: when the filters have 3
        input channels and are a model's first convolution (or a bare tensor).
    max_filters, max_channels : int
        Show at most this many filters (and input channels, for grey rows).
    title : str, optional
        Replaces the first title line (the layer and shape).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    name = "filters"
    first = True
    if isinstance(weights, nn.Module):
        names = conv_layer_names(weights)
        w = filter_weights(weights, layer)
        name = layer if layer is not None else (names[0] if names else "filters")
        first = bool(names) and name == names[0]
    elif isinstance(weights, torch.Tensor):
        w = as_plot_tensor(weights, "weights", "(out_channels, in_channels, kH, kW)", 4).float()
    else:
        raise TypeError(f"weights must be a torch.Tensor or an nn.Module; got {type(weights).__name__}")
    check_choice(scale, "scale", SCALES)
    check_int(max_filters, "max_filters", 1)
    check_int(max_channels, "max_channels", 1)
    n_out, n_in, kh, kw = w.shape
    if colour is None:
        colour = n_in == 3 and first
    if colour and n_in != 3:
        raise ValueError(f"colour=True needs filters with 3 input channels; got {n_in}")

    largest = float(w.abs().max()) or 1.0  # of the whole layer, before choosing what to show
    w = w[:max_filters]
    if scale == "symmetric":
        tiles = 0.5 + 0.5 * w / largest
    else:
        lo = w.amin(dim=(1, 2, 3), keepdim=True)
        span = w.amax(dim=(1, 2, 3), keepdim=True) - lo
        tiles = torch.where(span > 0, (w - lo) / span.clamp_min(1e-12), torch.full_like(w, 0.5))

    ax = get_ax(ax, figsize=(6, 6))
    if colour or n_in == 1:
        # One square tile per filter, filters laid out in a near-square grid.
        cols = math.ceil(math.sqrt(len(tiles)))
        mosaic = _mosaic(tiles, rows=math.ceil(len(tiles) / cols), cols=cols)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{len(tiles)} filters, each {kh}x{kw} pixels" + (", RGB" if colour else ""))
    else:
        # One row per filter, one grey tile per input channel.
        tiles = tiles[:, :max_channels]
        shown_in = tiles.shape[1]
        mosaic = _mosaic(tiles.reshape(-1, 1, kh, kw), rows=len(tiles), cols=shown_in)
        ax.set_xticks([(kw + 1) * j + kw / 2 - 0.5 for j in range(shown_in)], range(shown_in), fontsize=7)
        ax.set_yticks([(kh + 1) * i + kh / 2 - 0.5 for i in range(len(tiles))], range(len(tiles)), fontsize=7)
        ax.set_xlabel("input channel" + (f" (first {shown_in} of {n_in})" if shown_in < n_in else ""))
        ax.set_ylabel(
            "filter (output channel)" + (f", first {len(tiles)} of {n_out}" if len(tiles) < n_out else "")
        )
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    first_line = title if title is not None else f"{name}: {n_out} filters of {n_in}x{kh}x{kw}"
    ax.set_title(first_line + "\n" + _SCALE_TEXT[scale].format(m=largest), fontsize=9)
    return ax.figure


def _mosaic(tiles: torch.Tensor, rows: int, cols: int) -> np.ma.MaskedArray:
    """Lay (N, C, h, w) tiles in [0, 1] out in a grid with 1-pixel gaps; gaps are masked (white)."""
    n, c, h, w = tiles.shape
    canvas = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, c), np.nan)
    for i, tile in enumerate(tiles.numpy()):
        r, q = divmod(i, cols)
        canvas[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = tile.transpose(1, 2, 0)
    if c == 1:
        return np.ma.masked_invalid(canvas[..., 0])
    # RGBA: the gaps get alpha 0 so the (white) background shows through.
    alpha = (~np.isnan(canvas[..., :1])).astype(float)
    return np.concatenate([np.nan_to_num(canvas, nan=1.0), alpha], axis=-1)


def activation_grid(
    model,
    image: torch.Tensor,
    layer: str | None = None,
    *,
    max_maps: int = 32,
    device: str = "auto",
    axes=None,
):
    """The input image beside the activation maps that layer ``layer`` produces for it.

    Each map is scaled to its own min..max (viridis: dark = low), because the
    point is where a filter responds, not how strongly compared with the others.

    Parameters
    ----------
    model : nn.Module or torch.Tensor
        The model, or activation maps (C, h, w) already computed with
        :func:`deepimaging.interpret.activation_maps`.
    image : torch.Tensor
        One image (C, H, W) in [0, 1].
    layer : str
        A name of ``model.named_modules()`` (e.g. ``"features.2"`` for the first
        ReLU of BasicCNN); used in the title when maps are given.
    max_maps : int
        Show at most this many channels.
    axes : pair of matplotlib Axes, optional
        Where to draw the image and the maps.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_int(max_maps, "max_maps", 1)
    if isinstance(model, nn.Module):
        if layer is None:
            raise ValueError(f"name the layer to show, one of {[n for n, _ in model.named_modules() if n]}")
        maps = activation_maps(model, image, layer, device=device)
    elif isinstance(model, torch.Tensor):
        maps = model.detach().cpu().float()
    else:
        raise TypeError(
            f"model must be an nn.Module or activation maps (C, h, w); got {type(model).__name__}"
        )
    if maps.ndim != 3:
        raise ValueError(
            f"layer {layer!r} gives output of shape {tuple(maps.shape)}, not activation maps (C, h, w)"
        )
    n, h, w = maps.shape
    shown = maps[:max_maps]
    lo = shown.amin(dim=(1, 2), keepdim=True)
    span = (shown.amax(dim=(1, 2), keepdim=True) - lo).clamp_min(1e-12)
    tiles = ((shown - lo) / span)[:, None]
    cols = math.ceil(math.sqrt(len(tiles)))
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    left, right = axes
    imshow(left, image if image.shape[0] in (1, 3) else image[:1], title="input image")
    mosaic = _mosaic(tiles, math.ceil(len(tiles) / cols), cols)
    right.imshow(mosaic, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    right.set_xticks([])
    right.set_yticks([])
    of = f" of {n}" if len(tiles) < n else ""
    right.set_xlabel(f"{len(tiles)}{of} maps of {h}x{w}, each scaled to its own range")
    right.set_title(f"{layer or 'layer'}: activation maps", fontsize=9)
    return right.figure


def neighbor_grid(queries, database, neighbors: dict, *, classes=None):
    """Nearest neighbours in the lecture's layout: queries down the left, their neighbours across.

    One block per space (e.g. pixel space beside feature space), each starting
    with the query. When labels are known, a neighbour's frame is green if it
    shares the query's class and red if not, and each block's title counts them.

    Parameters
    ----------
    queries, database : ImageDataset or torch.Tensor
        Query images (Nq, C, H, W) and database images (N, C, H, W).
    neighbors : dict of str to torch.Tensor
        Block title -> (Nq, k) database indices (e.g. ``nearest_neighbors(...).indices``).
    classes : list of str, optional
        Class names (default: the datasets').

    Returns
    -------
    matplotlib.figure.Figure
    """
    q_images, q_labels = _images_labels(queries, "queries")
    d_images, d_labels = _images_labels(database, "database")
    if isinstance(database, ImageDataset) and classes is None:
        classes = database.classes
    if not isinstance(neighbors, dict) or not neighbors:
        raise TypeError("neighbors must be a non-empty dict: block title -> (Nq, k) index tensor")
    blocks = {
        name: torch.as_tensor(idx.indices if isinstance(idx, Neighbors) else idx)
        for name, idx in neighbors.items()
    }
    for name, idx in blocks.items():
        if idx.ndim != 2 or len(idx) != len(q_images):
            raise ValueError(
                f"neighbors[{name!r}] must have shape ({len(q_images)}, k); got {tuple(idx.shape)}"
            )
        if idx.numel() and (idx.is_floating_point() or idx.min() < 0 or idx.max() >= len(d_images)):
            raise ValueError(
                f"neighbors[{name!r}] must hold indices into the database, in [0, {len(d_images) - 1}]; "
                f"got values in [{idx.min().item()}, {idx.max().item()}]"
            )
    k = max(idx.shape[1] for idx in blocks.values())
    n_rows, per_block = len(q_images), k + 1
    check_panels(n_rows * per_block * len(blocks), "queries x neighbors")
    height = 1.1 * n_rows + 0.6
    fig = plt.figure(figsize=(1.05 * (per_block * len(blocks) + 0.5 * (len(blocks) - 1)) + 0.3, height))
    widths = []
    for b in range(len(blocks)):
        widths += [1.0] * per_block + ([0.5] if b < len(blocks) - 1 else [])
    grid = fig.add_gridspec(
        n_rows,
        len(widths),
        width_ratios=widths,
        wspace=0.08,
        hspace=0.08,
        left=0.3 / fig.get_figwidth(),
        right=0.99,
        bottom=0.02,
        top=1 - 0.55 / height,
    )
    for b, (name, idx) in enumerate(blocks.items()):
        first_col = b * (per_block + 1)
        same = 0
        for r in range(n_rows):
            ax = fig.add_subplot(grid[r, first_col])
            imshow(ax, q_images[r])
            if r == 0:
                ax.set_title("query", fontsize=8)
            if b == 0 and q_labels is not None and classes is not None:
                ax.set_ylabel(classes[int(q_labels[r])], fontsize=7)
            for j, i in enumerate(idx[r].tolist()):
                ax = fig.add_subplot(grid[r, first_col + 1 + j])
                imshow(ax, d_images[i])
                if r == 0:
                    ax.set_title(f"#{j + 1}", fontsize=8)
                if q_labels is not None and d_labels is not None:
                    match = int(d_labels[i]) == int(q_labels[r])
                    same += match
                    for spine in ax.spines.values():
                        spine.set(color="tab:green" if match else "tab:red", linewidth=2)
        left = grid[0, first_col].get_position(fig).x0
        right = grid[0, first_col + per_block - 1].get_position(fig).x1
        count = f": {same}/{idx.numel()} same class" if q_labels is not None and d_labels is not None else ""
        fig.text((left + right) / 2, 0.995, f"{name}{count}", ha="center", va="top", fontsize=10)
    return fig


def tsne_scatter(
    embedding,
    labels=None,
    classes=None,
    *,
    images=None,
    thumbnails: int = 0,
    highlight=None,
    seed: int = 0,
    title: str = "t-SNE of the features",
    ax=None,
):
    """Scatter a 2-D embedding (e.g. from :func:`deepimaging.interpret.tsne`), coloured by class.

    Parameters
    ----------
    embedding : torch.Tensor or array
        (N, 2) coordinates.
    labels : (N,) ints, optional
        Class of each point (colours and legend).
    classes : list of str, optional
    images : torch.Tensor, optional
        (N, C, H, W) images for thumbnails.
    thumbnails : int
        How many images to draw at their points, chosen (seeded) so they do not overlap.
    highlight : sequence of int, optional
        Points to ring: the first with a thick black ring (a selected point),
        the rest with thin ones (e.g. its neighbours).
    seed : int
        Seeds the choice of thumbnails.

    Returns
    -------
    matplotlib Axes
    """
    # Finite and not empty: matplotlib would draw NaN points, or none, as an empty plot without a word.
    xy = as_plot_tensor(embedding, "embedding", "(N, 2)", 2).double().numpy()
    if xy.shape[1] != 2:
        raise ValueError(f"embedding must have shape (N, 2); got {xy.shape}")
    check_int(thumbnails, "thumbnails", 0)
    if thumbnails and images is None:
        raise ValueError("thumbnails > 0 needs the images (N, C, H, W)")
    if images is not None and len(images) != len(xy):
        raise ValueError(f"images must have {len(xy)} entries, one per point; got {len(images)}")
    if labels is not None:
        labels = check_labels(labels, "labels", None if classes is None else len(classes))
    if highlight is not None:
        highlight = [
            check_int(i, "highlight", 0, len(xy) - 1) for i in np.asarray(highlight).reshape(-1).tolist()
        ]
    ax = get_ax(ax, figsize=(6, 5))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.7)
    else:
        if labels.shape != (len(xy),):
            raise ValueError(f"labels must have shape ({len(xy)},); got {labels.shape}")
        for c in np.unique(labels):
            name = classes[c] if classes is not None else str(c)
            ax.scatter(*xy[labels == c].T, s=8, alpha=0.7, label=name, color=f"C{c}")
        ax.legend(fontsize=8, markerscale=2, loc="best")
    if thumbnails:
        zoom = 28 / max(images.shape[-2:])  # about 28 screen pixels per thumbnail
        for i in _spread_points(xy, thumbnails, seed):
            box = OffsetImage(to_hwc(images[i]), zoom=zoom, cmap="gray" if images.shape[1] == 1 else None)
            edge = f"C{labels[i]}" if labels is not None else "black"
            ax.add_artist(AnnotationBbox(box, xy[i], pad=0.1, bboxprops={"edgecolor": edge}))
    if highlight is not None:
        ax.scatter(*xy[highlight[1:]].T, s=60, facecolors="none", edgecolors="black", linewidths=0.8)
        ax.scatter(*xy[highlight[:1]].T, s=140, facecolors="none", edgecolors="black", linewidths=2.5)
    ax.set_xlabel("t-SNE 1 (arbitrary units)")
    ax.set_ylabel("t-SNE 2 (arbitrary units)")
    ax.set_title(title, fontsize=10)
    return ax


def _spread_points(xy: np.ndarray, n: int, seed: int) -> list:
    """Up to ``n`` point indices, visited in a seeded order, each far enough from those already chosen."""
    span = np.ptp(xy, axis=0).max() or 1.0
    min_gap = 0.08 * span
    chosen = []
    for i in np.random.default_rng(seed).permutation(len(xy)):
        if all(np.hypot(*(xy[i] - xy[j])) > min_gap for j in chosen):
            chosen.append(int(i))
            if len(chosen) == n:
                break
    return chosen


def _images_labels(data, name):
    if isinstance(data, ImageDataset):
        return data.images, data.labels
    if isinstance(data, torch.Tensor) and data.ndim == 4:
        return data, None
    raise TypeError(f"{name} must be an ImageDataset or images (N, C, H, W); got {shape_of(data)}")
