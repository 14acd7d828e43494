"""Figures of a parameter study (see :mod:`deepimaging.study`): accuracy vs parameter, sensor examples, bits maps.

The functions take plain data or a ``StudyResults`` (anything with
``summary()``, ``config`` and ``confusion_matrix(sweep, value)``), so this
module does not import the study engine.
"""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
import torch

from .._checks import check_bool, check_images, check_labels
from ._common import as_plot_tensor, check_kind, check_panels, get_ax, imshow

__all__ = [
    "plot_accuracy_vs_parameter",
    "plot_study_confusion_matrices",
    "plot_sensor_examples",
    "plot_bits_map",
]

_RESULTS = "a StudyResults (from deepimaging.study.run_study or load_results)"


def _check_results(results, attributes) -> None:
    """A StudyResults with at least one finished point (a study that never ran has nothing to draw)."""
    check_kind(results, "results", _RESULTS, attributes)
    if not results.points:
        raise ValueError(
            "results holds no finished points yet: there is nothing to draw (run the study first)"
        )


def _check_values(values, name: str) -> list:
    """``values`` as a non-empty list of numbers (one number is a list of one)."""
    if isinstance(values, numbers.Real) and not isinstance(values, bool):
        return [values]
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of parameter values; got {values!r}")
    values = list(values)
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be a list of numbers; got {values!r}")
    check_panels(len(values), name)
    return values


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
    _check_results(results, ("summary", "config", "classes", "points"))
    check_bool(chance, "chance")
    rows = results.summary()
    known = [s.name for s in results.config.sweeps]
    if isinstance(sweeps, str):
        sweeps = [sweeps]
    for name in sweeps or []:
        if name not in known:
            raise ValueError(f"sweeps must name sweeps of this study, {known}; got {name!r}")
    metric = metric or getattr(results, "metric", "accuracy")
    # The metrics the points recorded: the "<metric>_mean" numbers of a summary row (not recall's dict).
    measured = sorted(
        key[: -len("_mean")]
        for key, value in (rows[0].items() if rows else ())
        if key.endswith("_mean") and not isinstance(value, dict)
    )
    if metric not in measured:
        raise ValueError(f"metric must be one of the recorded metrics {measured}; got {metric!r}")
    for row in rows:  # matplotlib would leave a silent gap at a NaN
        mean = row.get(f"{metric}_mean")
        if mean is not None and not np.isfinite(mean):
            raise ValueError(
                f"results holds {metric} = {mean} at sweep {row['sweep']!r}, value {row['value']}: "
                "that point's record is damaged or its training diverged"
            )
    ax = get_ax(ax, figsize=(5.5, 4))
    label = metric.replace("_", " ").replace("macro f1", "macro-F1").replace("macro auc", "macro ROC AUC")
    names = sweeps or known
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

    _check_results(results, ("confusion_matrix", "classes", "points"))
    values = _check_values(values, "values")
    # Every matrix first: an unknown sweep or value fails before a half-drawn figure is left open.
    matrices = [np.asarray(results.confusion_matrix(sweep, value)) for value in values]
    k = len(results.classes)
    fig, axes = plt.subplots(
        1, len(values), figsize=((1.6 + 0.9 * k) * len(values), 1.4 + 0.8 * k), squeeze=False
    )
    for ax, value, matrix in zip(axes[0], values, matrices):
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

    check_images(images, "images")
    values = _check_values(values, "values")
    n = len(images)
    check_panels(n * len(values), "images x values")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of layer keyword arguments; got {options!r}")
    if labels is not None and classes is not None:
        labels = check_labels(labels, "labels", len(classes))
        if len(labels) != n:
            raise ValueError(f"labels must hold one label per image; got {len(labels)} for {n} images")
    # Every sensor image first: a bad layer or value fails before a half-drawn figure is left open.
    with torch.no_grad():
        outputs = [
            make_layer(layer, value, image_shape=tuple(images.shape[1:]), **(options or {})).eval()(images)
            for value in values
        ]
    fig, axes = plt.subplots(n, len(values), figsize=(1.3 * len(values), 1.3 * n + 0.5), squeeze=False)
    for j, (value, out) in enumerate(zip(values, outputs)):
        out = out.clamp(0, 1)
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
    array = as_plot_tensor(bits_map, "bits_map", "(H, W)", 2).double().numpy()
    ax = get_ax(ax, figsize=(4.5, 4))
    shown = ax.imshow(array, cmap="viridis")
    ax.figure.colorbar(shown, ax=ax, label="bits per pixel")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(title or f"Learned bits per pixel (mean {array.mean():.2f})")
    return ax
