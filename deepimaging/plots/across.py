"""Inside every point of a study: what the networks trained at each parameter value look at and learn.

A study keeps each point's trained network (:meth:`StudyResults.load_model
<deepimaging.study.StudyResults.load_model>`), so the lecture's visualization
tools can be laid out along the swept hardware parameter:

- :func:`plot_attribution_across`: the same test images, one column per value,
  each cell the occlusion or saliency map of the network trained at that value;
- :func:`plot_filters_across`: the first-layer filters of one network per value;
- :func:`neighbor_agreement_across` and :func:`plot_neighbor_agreement`: how
  often an image's nearest neighbours in feature space share its class, per value.

Nothing here trains: every network is read from the study folder.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ._common import check_kind, get_ax, imshow

__all__ = [
    "pick_test_images",
    "plot_attribution_across",
    "plot_filters_across",
    "neighbor_agreement",
    "neighbor_agreement_across",
    "plot_neighbor_agreement",
]

#: The attribution methods of :func:`plot_attribution_across`.
METHODS = ("occlusion", "saliency")


def pick_test_images(labels, k: int) -> list:
    """Indices of ``k`` images, one per class in turn (the first of each class, then the second, ...).

    Parameters
    ----------
    labels : array_like of int
        The labels of the test set.
    k : int
        How many images; at most ``len(labels)``.

    Returns
    -------
    list of int
        Positions in ``labels``; with ``k`` at most the number of classes, one per class.
    """
    labels = np.asarray(labels)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"images must be a positive integer; got {k!r}")
    if k > len(labels):
        raise ValueError(f"images={k} is more than the {len(labels)} images of the test set")
    queues = [list(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    chosen = []
    while len(chosen) < k:
        for queue in queues:
            if queue and len(chosen) < k:
                chosen.append(int(queue.pop(0)))
    return chosen


def _test_set(results):
    from ..study import load_data

    _, test, _ = load_data(results.config)
    return test


def _sweep_and_seeds(results, sweep, seed):
    check_kind(
        results, "results", "a StudyResults (from deepimaging.study.load_results)", ("config", "load_model")
    )
    sweep = results.config.sweeps[0] if sweep is None else results.config.sweep(sweep)
    if seed is None:
        seeds = [results.config.seeds[0]]
    elif seed == "mean":
        seeds = list(results.config.seeds)
    elif seed in results.config.seeds:
        seeds = [seed]
    else:
        raise ValueError(
            f"seed must be one of the study's seeds {results.config.seeds} or 'mean'; got {seed!r}"
        )
    return sweep, seeds


def _sensor_image(model, scene: torch.Tensor) -> torch.Tensor:
    """What the CNN saw: the physical layer's output (eval mode), shown grey unless it has 3 channels."""
    with torch.no_grad():
        sensor = model.physics(scene[None])[0].clamp(0, 1)
    return sensor if sensor.shape[0] in (1, 3) else sensor.mean(0, keepdim=True)


def plot_attribution_across(
    results,
    method: str = "occlusion",
    images: int = 4,
    *,
    seed=None,
    sweep: str | None = None,
    **method_options,
):
    """Where the networks trained at each parameter value look: one column per value, the same test images.

    For each of ``images`` test images (one per class where possible) the
    figure has two rows: the sensor image the network of that column saw, and
    its attribution map for the image's true class. Every map of one image
    shares one colour scale, so the columns can be compared.

    Parameters
    ----------
    results : StudyResults
        A study whose points were saved with their weights
        (:func:`deepimaging.study.load_results`).
    method : {"occlusion", "saliency"}
        :func:`~deepimaging.interpret.occlusion_map` (drop in the true class's
        probability when a patch is greyed out) or
        :func:`~deepimaging.interpret.saliency_map` (absolute input gradient).
    images : int
        How many test images (rows of pairs), at most the test set's size.
    seed : int or "mean", optional
        The seed whose networks are shown (default the study's first); ``"mean"``
        averages each cell's map over all seeds.
    sweep : str, optional
        The sweep (default the first).
    **method_options
        Passed to the method, e.g. ``sliding_window_shapes`` and ``strides``
        for occlusion (default: a window of 1/8 of the image side, stride half of it).

    Returns
    -------
    matplotlib Figure
        ``fig.maps`` holds the maps as an array (images, values, H, W).

    Raises
    ------
    ValueError
        Unknown method or seed, or more images than the test set holds.
    FileNotFoundError
        A point without saved weights (the message says how to rerun it).
    """
    from ..interpret import occlusion_map, saliency_map

    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
    the_sweep, seeds = _sweep_and_seeds(results, sweep, seed)
    test = _test_set(results)
    chosen = pick_test_images(test.labels.numpy(), images)
    scenes = test.images_at(torch.as_tensor(chosen))
    labels = test.labels[chosen]
    if method == "occlusion":
        side = scenes.shape[-1]
        window = max(2, side // 8)
        method_options = {"sliding_window_shapes": window, "strides": max(1, window // 2), **method_options}
        attribute = occlusion_map
    else:
        attribute = saliency_map

    values = list(the_sweep.values)
    maps = np.zeros((len(chosen), len(values), *scenes.shape[-2:]))
    sensors = []
    for j, value in enumerate(values):
        column = []
        for s in seeds:
            model = results.load_model(the_sweep.name, value, s)
            column.append(
                [
                    attribute(model, scenes[i], target=int(labels[i]), **method_options).numpy()
                    for i in range(len(chosen))
                ]
            )
            if s == seeds[0]:
                sensors.append([_sensor_image(model, scenes[i]) for i in range(len(chosen))])
        maps[:, j] = np.mean(column, axis=0)

    n, m = len(chosen), len(values)
    fig, axes = plt.subplots(2 * n, m, figsize=(1.5 * m + 0.6, 3.0 * n + 0.7), squeeze=False)
    cmap = "RdBu_r" if method == "occlusion" else "magma"
    for i in range(n):
        scale = float(np.abs(maps[i]).max()) or 1.0
        limits = (-scale, scale) if method == "occlusion" else (0.0, scale)
        for j, value in enumerate(values):
            imshow(axes[2 * i, j], sensors[j][i], title=f"{value}" if i == 0 else None)
            shown = axes[2 * i + 1, j].imshow(maps[i, j], cmap=cmap, vmin=limits[0], vmax=limits[1])
            axes[2 * i + 1, j].set_xticks([])
            axes[2 * i + 1, j].set_yticks([])
        axes[2 * i, 0].set_ylabel(f"{test.classes[int(labels[i])]}\nsensor", fontsize=8)
        axes[2 * i + 1, 0].set_ylabel(method, fontsize=8)
        fig.colorbar(shown, ax=list(axes[2 * i + 1]), fraction=0.02, pad=0.01)
    which = "mean over seeds" if seed == "mean" else f"seed {seeds[0]}"
    what = (
        "drop in the true class's probability when a patch is hidden"
        if method == "occlusion"
        else "|gradient|"
    )
    fig.suptitle(
        f"What the networks look at: {the_sweep.name.replace('_', ' ')}, {results.config.parameter} per column "
        f"({method}: {what}; {which})",
        fontsize=9,
    )
    fig.maps = maps
    return fig


def plot_filters_across(results, *, seed=None, sweep: str | None = None, max_filters: int = 16):
    """The first-layer filters of the network trained at each value, one panel per value.

    Each panel is :func:`~deepimaging.plots.filter_grid` with one scale per
    panel (``scale="symmetric"``: mid-grey is 0), so strong and weak filters keep
    their contrast within a network.

    Parameters
    ----------
    results : StudyResults
    seed : int, optional
        The seed whose networks are shown (default the first).
    sweep : str, optional
        The sweep (default the first).
    max_filters : int
        Filters shown per network.

    Returns
    -------
    matplotlib Figure
    """
    from ..interpret import filter_weights
    from .features import filter_grid

    if seed == "mean":
        raise ValueError("filters cannot be averaged over seeds (each network learns its own); pick one seed")
    the_sweep, seeds = _sweep_and_seeds(results, sweep, seed)
    values = list(the_sweep.values)
    fig, axes = plt.subplots(1, len(values), figsize=(max(5.0, 2.4 * len(values)), 3.0), squeeze=False)
    for ax, value in zip(axes[0], values):
        weights = filter_weights(results.load_model(the_sweep.name, value, seeds[0]))
        filter_grid(weights, scale="symmetric", max_filters=max_filters, ax=ax)
        # filter_grid's own title and label explain the scale; said once in the figure's title instead.
        ax.set_title(f"{results.config.parameter} = {value}", fontsize=9)
        ax.set_xlabel("")
    shape = "x".join(map(str, weights.shape[-2:]))
    fig.suptitle(
        f"First-layer filters ({shape} px) of {the_sweep.name.replace('_', ' ')}, seed {seeds[0]}, mid-grey = 0\n"
        "(one seed, one starting point: the differences are what training at each value changed)",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def neighbor_agreement(features, labels, k: int = 5) -> float:
    """Fraction of each image's ``k`` nearest feature-space neighbours (itself left out) that share its class.

    The mean over images of :math:`|\\{j \\in N_k(i): y_j = y_i\\}| / k`, with
    :math:`N_k(i)` the ``k`` nearest other images by Euclidean distance
    (:func:`deepimaging.interpret.nearest_neighbors`). 1 means each class forms
    its own cluster; 1/classes (balanced) means features ignore the class.

    Parameters
    ----------
    features : torch.Tensor
        (N, D) feature vectors.
    labels : array_like of int
        (N,) classes.
    k : int
        Neighbours per image, at most N - 1.
    """
    from ..interpret import nearest_neighbors

    labels = torch.as_tensor(np.asarray(labels))
    found = nearest_neighbors(features, features, k, exclude_self=True)
    return float((labels[found.indices.cpu()] == labels[:, None]).float().mean())


def neighbor_agreement_across(results, *, k: int = 5, sweep: str | None = None) -> list:
    """:func:`neighbor_agreement` of the test set's penultimate features for every value and seed.

    Returns
    -------
    list of dict
        ``{"value", "mean", "std", "per_seed"}`` per value of the sweep, ``std``
        over seeds (``ddof=1``; 0 with one seed).
    """
    from ..interpret import extract_features

    the_sweep, seeds = _sweep_and_seeds(results, sweep, "mean")
    test = _test_set(results)
    rows = []
    for value in the_sweep.values:
        per_seed = [
            neighbor_agreement(
                extract_features(results.load_model(the_sweep.name, value, s), test, device="cpu"),
                test.labels,
                k,
            )
            for s in seeds
        ]
        rows.append(
            {
                "value": value,
                "mean": float(np.mean(per_seed)),
                "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
                "per_seed": per_seed,
            }
        )
    return rows


def plot_neighbor_agreement(results, ax=None, *, k: int = 5, sweep: str | None = None):
    """Nearest-neighbour agreement in feature space against the swept parameter (mean ± s.d. over seeds).

    Returns
    -------
    matplotlib Axes
    """
    the_sweep, _ = _sweep_and_seeds(results, sweep, None)
    rows = neighbor_agreement_across(results, k=k, sweep=the_sweep.name)
    ax = get_ax(ax, figsize=(5, 3.5))
    ax.errorbar(
        [r["value"] for r in rows],
        [r["mean"] for r in rows],
        yerr=[r["std"] for r in rows],
        marker="o",
        capsize=3,
    )
    counts = np.bincount(_test_set(results).labels.numpy())
    chance = float(np.sum((counts / counts.sum()) ** 2))
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.2f})")
    ax.set_xlabel(results.config.parameter)
    ax.set_ylabel(f"same-class fraction of {k} nearest neighbours")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Feature-space neighbours: {the_sweep.name.replace('_', ' ')} (test set)")
    ax.legend(loc="lower right", fontsize=8)
    return ax
