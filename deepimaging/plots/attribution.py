"""Figures for deepimaging.interpret.attribution: maps over images, heatmaps, and boxes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from .._checks import to_real
from .._util import pair
from ._common import as_plot_tensor, check_inches, check_panels, get_ax, imshow, to_hwc

# The most boxes one picture draws: each is a matplotlib patch (and a label), so 10**6 detections
# of a threshold set to 0 would hang the notebook; a BCCD field holds about 20 cells.
MAX_BOXES = 2000

__all__ = ["attribution_figure", "attribution_overlay", "detection_boxes", "heatmap_overlay"]


def attribution_overlay(
    image, attribution, ax=None, *, title=None, alpha: float = 0.55, cmap=None, symmetric=None, colorbar=True
):
    """Show an attribution map (H, W) over its image (C, H, W).

    Signed maps (an occlusion map, where hiding a patch can also *raise* the
    probability) use a diverging colormap centred on 0, so 0 is white; maps
    that are never negative (saliency, Grad-CAM) run from 0 upwards.

    Parameters
    ----------
    image : torch.Tensor
        (C, H, W) in [0, 1], drawn in grey underneath so the colours belong to the map.
    attribution : torch.Tensor
        (H, W).
    ax : matplotlib Axes, optional
    title : str, optional
    alpha : float
        Opacity of the map.
    cmap : str, optional
        Default ``"RdBu_r"`` for signed maps, ``"inferno"`` otherwise.
    symmetric : bool, optional
        Centre the colour scale on 0; default: when the map has negative values.
    colorbar : bool

    Returns
    -------
    matplotlib.axes.Axes
    """
    values = to_real(attribution, "attribution")
    picture = to_hwc(image)
    if values.shape != picture.shape[:2]:
        raise ValueError(f"attribution must have the image's size {picture.shape[:2]}; got {values.shape}")
    # A NaN map would be drawn as a clean image, as if nothing mattered: refused instead.
    as_plot_tensor(values, "attribution", "(H, W)", 2)
    ax = get_ax(ax)
    grey = picture if picture.ndim == 2 else picture.mean(axis=2)
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
    if symmetric is None:
        symmetric = bool(values.min() < 0)
    if symmetric:
        limit = float(np.abs(values).max()) or 1.0
        vmin, vmax, cmap = -limit, limit, cmap or "RdBu_r"
    else:
        vmin, vmax, cmap = 0.0, float(values.max()) or 1.0, cmap or "inferno"
    shown = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha)
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def attribution_figure(
    image, maps: dict, *, title=None, image_title="image", symmetric=None, size: float = 3.0
):
    """One row: the image, then each named attribution map over it.

    Parameters
    ----------
    image : torch.Tensor
        (C, H, W) in [0, 1].
    maps : dict of str to torch.Tensor
        Panel title -> (H, W) map, e.g. ``{"occlusion (drop in p)": ..., "saliency |grad|": ...}``.
    title : str, optional
        Figure title.
    symmetric : bool, optional
        Passed to :func:`attribution_overlay` for every panel; ``True`` gives
        occlusion maps the same diverging scale whatever their signs.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not maps:
        raise ValueError("maps must name at least one attribution map")
    check_panels(len(maps) + 1, "maps")
    size = check_inches(size)
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(size * (len(maps) + 1) + 1, size))
    imshow(axes[0], image, title=image_title)
    for ax, (name, values) in zip(axes[1:], maps.items()):
        attribution_overlay(image, values, ax=ax, title=name, symmetric=symmetric)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap_overlay(
    image, heatmap, window, stride, ax=None, *, title=None, cmap="magma", alpha=0.6, label="p"
):
    """Show a sliding-window heatmap (rows, cols) over the large image it came from.

    Each heatmap cell is drawn over the ``stride``-sized square around its
    window's centre, so the map lines up with the image in pixels.

    Parameters
    ----------
    image : torch.Tensor
        (C, H, W) in [0, 1].
    heatmap : torch.Tensor
        (rows, cols), one class's probabilities from :func:`deepimaging.interpret.sliding_window`.
    window, stride : int or (int, int)
        As given to ``sliding_window``.
    alpha : float
        Opacity of a cell with probability 1; a cell with probability p is
        drawn with opacity ``alpha * (0.25 + 0.75 p)``.
    label : str
        Colorbar label.

    Returns
    -------
    matplotlib.axes.Axes
    """
    values = to_real(heatmap, "heatmap")
    (window_h, window_w), (stride_h, stride_w) = pair(window, "window"), pair(stride, "stride")
    as_plot_tensor(values, "heatmap", "(rows, cols)", 2)  # 2-D, finite, not empty: before any figure
    rows, cols = values.shape
    ax = get_ax(ax, figsize=(7, 5))
    ax.imshow(to_hwc(image))
    # Cell (i, j) is centred on window (i, j)'s centre and is one stride wide.
    extent = (
        window_w / 2 - stride_w / 2,
        window_w / 2 + (cols - 0.5) * stride_w,
        window_h / 2 + (rows - 0.5) * stride_h,
        window_h / 2 - stride_h / 2,
    )
    # Opacity grows with the probability, so the image stays visible where nothing was found.
    opacity = alpha * (0.25 + 0.75 * np.clip(values, 0, 1))
    shown = ax.imshow(
        values, cmap=cmap, vmin=0, vmax=1, alpha=opacity, extent=extent, interpolation="nearest"
    )
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label=label)
    ax.set_xlim(0, image.shape[-1])
    ax.set_ylim(image.shape[-2], 0)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    if title is not None:
        ax.set_title(title, fontsize=10)
    return ax


def detection_boxes(
    image, true_boxes=None, boxes=None, ax=None, *, labels=None, true_labels=None, classes=None, title=None
):
    """Draw ground-truth boxes (green, solid) and detections (orange, dashed) on an image.

    Parameters
    ----------
    image : torch.Tensor
        (C, H, W) in [0, 1].
    true_boxes, boxes : torch.Tensor, optional
        (M, 4) ``(x_min, y_min, x_max, y_max)`` in pixels.
    labels, true_labels : torch.Tensor, optional
        Class index of each detection / true box, written beside it (with ``classes``).
    classes : list of str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = get_ax(ax, figsize=(7, 5))
    ax.imshow(to_hwc(image))
    for group, colour, style, names in (
        (true_boxes, "limegreen", "-", true_labels),
        (boxes, "darkorange", "--", labels),
    ):
        if group is None:
            continue
        name = "true_boxes" if group is true_boxes else "boxes"
        shape = "(M, 4) as (x0, y0, x1, y1)"
        group = as_plot_tensor(group, name, shape, (1, 2), empty_ok=True)
        if group.numel() and group.shape[-1] != 4:
            raise ValueError(f"{name} must have shape {shape}; got shape {tuple(group.shape)}")
        if group.numel() // 4 > MAX_BOXES:
            raise ValueError(
                f"{name} holds {group.numel() // 4} boxes, more than the {MAX_BOXES} a picture can show "
                "(keep the best, e.g. boxes[:100], or raise the detection threshold)"
            )
        for k, (x0, y0, x1, y1) in enumerate(group.double().numpy().reshape(-1, 4)):
            ax.add_patch(
                Rectangle(
                    (x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linestyle=style, linewidth=1.5
                )
            )
            if names is not None:
                name = int(names[k])
                text = classes[name] if classes is not None else str(name)
                ax.text(x0, y0 - 2, text, color=colour, fontsize=7, va="bottom")
    ax.set_xlim(0, image.shape[-1])
    ax.set_ylim(image.shape[-2], 0)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    handles = [
        Rectangle((0, 0), 1, 1, fill=False, edgecolor="limegreen", label="true box"),
        Rectangle((0, 0), 1, 1, fill=False, edgecolor="darkorange", linestyle="--", label="detection"),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    if title is not None:
        ax.set_title(title, fontsize=10)
    return ax
