"""Figures of a parameter study (see :mod:`deepimaging.study`): accuracy vs parameter, sensor examples, bits maps.

The functions take plain data or a ``StudyResults`` (anything with
``summary()``, ``config`` and ``confusion_matrix(sweep, value)``), so this
module does not import the study engine.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ._common import get_ax, imshow

__all__ = [
    "plot_accuracy_vs_parameter",
    "plot_study_confusion_matrices",
    "plot_sensor_examples",
    "plot_bits_map",
]


def plot_accuracy_vs_parameter(
    results, ax=None, *, sweeps=None, chance: bool = True, metric: str | None = None
):
    """The study's metric against the swept parameter, with error bars of ± one standard deviation over seeds.

    The metric is the study's (``results.metric``): balanced accuracy when the
    test classes are imbalanced, else accuracy, unless the configuration or
    ``metric`` chooses another.

    Parameters
    ----------
    results : StudyResults
        From :func:`deepimaging.study.run_study` or :func:`~deepimaging.study.load_results`.
    ax : matplotlib Axes, optional
    sweeps : list of str, optional
        Sweep names to draw (default: all, one line each).
    chance : bool
        Draw the chance level 1 / (number of classes) as a dotted line (for the
        accuracies and macro-F1; 0.5 for the AUC).
    metric : str, optional
        ``"accuracy"``, ``"balanced_accuracy"``, ``"macro_f1"`` or ``"macro_auc"``.

    Returns
    -------
    matplotlib Axes
    """
    ax = get_ax(ax, figsize=(5.5, 4))
    metric = metric or getattr(results, "metric", "accuracy")
    label = metric.replace("_", " ").replace("macro f1", "macro-F1").replace("macro auc", "macro ROC AUC")
    rows = results.summary()
    names = sweeps or [s.name for s in results.config.sweeps]
    markers = "osD^v<>p"
    for i, name in enumerate(names):
        part = [r for r in rows if r["sweep"] == name and r.get(f"{metric}_mean") is not None]
        if not part:
            continue
        x = [r["value"] for r in part]
        mean = np.array([r[f"{metric}_mean"] for r in part])
        std = np.array([r[f"{metric}_std"] for r in part])
        seeds = min(r["n_seeds"] for r in part)
        ax.errorbar(
            x,
            mean,
            yerr=std,
            marker=markers[i % len(markers)],
            capsize=3,
            label=f"{name.replace('_', ' ')} (n={seeds} seeds)",
        )
    if chance and results.classes:
        level = 0.5 if metric == "macro_auc" else 1 / len(results.classes)
        ax.axhline(level, color="grey", linestyle=":", label="chance")
    ax.set_xlabel(results.config.parameter)
    ax.set_ylabel(f"test {label} (mean ± s.d. over seeds)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Test {label} vs {results.config.parameter}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_study_confusion_matrices(results, sweep: str, values):
    """Confusion matrices (summed over seeds) of one sweep at a few values, side by side.

    Each panel is :func:`deepimaging.plots.plot_confusion_matrix`: rows are the
    true class in per cent of that class (the diagonal is each class's recall),
    with the counts summed over all seeds.

    Returns
    -------
    matplotlib Figure
    """
    from .metrics import plot_confusion_matrix

    values = list(values)
    k = len(results.classes)
    fig, axes = plt.subplots(
        1, len(values), figsize=((1.6 + 0.9 * k) * len(values), 1.4 + 0.8 * k), squeeze=False
    )
    for ax, value in zip(axes[0], values):
        matrix = np.asarray(results.confusion_matrix(sweep, value))
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        # Balanced accuracy: the mean of the diagonal of the row-normalised matrix (the per-class recalls).
        recalls = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
        plot_confusion_matrix(
            matrix,
            classes=results.classes,
            ax=ax,
            colorbar=False,
            title=f"{sweep.replace('_', ' ')} = {value}: accuracy {accuracy:.2f}, "
            f"balanced {recalls[matrix.sum(axis=1) > 0].mean():.2f}",
        )
    fig.suptitle(f"Confusion matrices of {sweep.replace('_', ' ')}, summed over seeds")
    fig.tight_layout()
    return fig


def plot_sensor_examples(
    images, layer: str, values, *, options=None, labels=None, classes=None, parameter=None
):
    """What the sensor records: a few scene images (rows) through the layer at each value (columns).

    Parameters
    ----------
    images : torch.Tensor
        Scene images (N, C, H, W) in [0, 1]; a handful (N <= 6) reads best.
    layer : str
        A name in ``deepimaging.physics.LAYERS``.
    values : list
        Parameter values, one column each.
    options : dict, optional
        Further layer options.
    labels, classes : optional
        Integer labels (N,) and class names to label the rows.
    parameter : str, optional
        Name of the parameter for the title (default: the layer's registered parameter).

    Returns
    -------
    matplotlib Figure
    """
    from ..physics import LAYERS, make_layer

    values = list(values)
    n = len(images)
    fig, axes = plt.subplots(n, len(values), figsize=(1.3 * len(values), 1.3 * n + 0.5), squeeze=False)
    with torch.no_grad():
        for j, value in enumerate(values):
            sensor = make_layer(layer, value, image_shape=tuple(images.shape[1:]), **(options or {})).eval()
            out = sensor(images).clamp(0, 1)
            for i in range(n):
                imshow(axes[i, j], out[i], title=f"{value}" if i == 0 else None)
                if j == 0 and labels is not None and classes is not None:
                    axes[i, j].set_ylabel(classes[int(labels[i])], fontsize=8)
    if parameter is None:
        parameter = getattr(LAYERS.get(layer), "parameter", None) or "value"
    fig.suptitle(f"Sensor images: {layer.replace('_', ' ')}, {parameter} per column", fontsize=10)
    fig.tight_layout()
    return fig


def plot_bits_map(bits_map, ax=None, *, title: str | None = None):
    """Where the network put its bits: a learned per-pixel bit depth (H, W) as an image with a colour bar.

    Returns
    -------
    matplotlib Axes
    """
    ax = get_ax(ax, figsize=(4.5, 4))
    array = bits_map.detach().cpu().numpy() if isinstance(bits_map, torch.Tensor) else np.asarray(bits_map)
    if array.ndim != 2:
        raise ValueError(f"bits_map must have shape (H, W); got {array.shape}")
    shown = ax.imshow(array, cmap="viridis")
    ax.figure.colorbar(shown, ax=ax, label="bits per pixel")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(title or f"Learned bits per pixel (mean {array.mean():.2f})")
    return ax
