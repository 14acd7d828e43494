"""Filters, activations, features, nearest neighbours and t-SNE: what is inside the network.

The lecture's route through a trained CNN:

1. look at the weights of the first layer (they act on pixels, so they can be
   shown as small images) and of higher layers (one grey tile per input channel);
2. look at the activation maps a layer produces for one image;
3. run the network on many images and keep the penultimate feature vectors;
4. compare nearest neighbours in pixel space with nearest neighbours in feature
   space, and map the features to 2-D with t-SNE.

Layers are chosen by the names of ``model.named_modules()``, e.g.
``"features.0"`` for the first convolution of :class:`~deepimaging.models.BasicCNN`
or ``"cnn.features.0"`` inside a :class:`~deepimaging.models.PhysicalModel`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number
from ..data.dataset import ImageDataset, as_float

__all__ = [
    "Neighbors",
    "activation_maps",
    "conv_layer_names",
    "distance_matrix",
    "extract_features",
    "filter_weights",
    "get_layer",
    "nearest_neighbors",
    "tsne",
]

METRICS = ("l2", "cosine")


# --- layers by name --------------------------------------------------------------------------


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of the ``nn.Conv2d`` layers of ``model``, in the order they were registered.

    Examples
    --------
    >>> from deepimaging.models import BasicCNN
    >>> conv_layer_names(BasicCNN(3, 4, widths=(8, 16)))
    ['features.0', 'features.4']
    """
    _check_model(model)
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def get_layer(model: nn.Module, name: str, *, conv: bool = False) -> nn.Module:
    """The sub-module of ``model`` called ``name`` (a key of ``model.named_modules()``).

    Parameters
    ----------
    model : nn.Module
    name : str
        E.g. ``"features.0"``.
    conv : bool
        Require an ``nn.Conv2d`` (for filter grids); the error then lists the
        convolution layers only.

    Raises
    ------
    ValueError
        For an unknown name (or a non-convolution when ``conv=True``), listing
        the names that exist.
    """
    _check_model(model)
    modules = dict(model.named_modules())
    kind = "convolution layer" if conv else "layer"
    if (
        not isinstance(name, str)
        or name not in modules
        or (conv and not isinstance(modules[name], nn.Conv2d))
    ):
        # Convolutions are listed by name; any layer by name and type, so a student sees what each is.
        available = (
            conv_layer_names(model)
            if conv
            else ", ".join(f"{n} ({type(m).__name__})" for n, m in modules.items() if n)
        )
        raise ValueError(f"unknown {kind} {name!r}; available {kind}s: {available}")
    return modules[name]


def filter_weights(model: nn.Module, layer: str | None = None) -> torch.Tensor:
    """The weights of a convolution layer, shape (out_channels, in_channels, kH, kW), on the CPU.

    ``layer=None`` takes the first convolution, whose filters act directly on
    the pixels and can therefore be shown as (colour) images.
    """
    names = conv_layer_names(model)
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to show filters of")
    conv = get_layer(model, names[0] if layer is None else layer, conv=True)
    return conv.weight.detach().cpu().clone()


# --- activations and features ----------------------------------------------------------------


@torch.no_grad()
def activation_maps(
    model: nn.Module, image: torch.Tensor, layer: str, *, device: str = "auto"
) -> torch.Tensor:
    """The output of layer ``layer`` for one image: its activation maps.

    Parameters
    ----------
    model : nn.Module
    image : torch.Tensor
        One image (C, H, W) in [0, 1].
    layer : str
        Any name of ``model.named_modules()``; a convolution gives one map per
        filter, a ReLU the same maps with negatives clipped.

    Returns
    -------
    torch.Tensor
        (channels, h, w) on the CPU for a convolutional layer; the layer's
        output for the one image in general.

    Notes
    -----
    The model runs in eval mode (BatchNorm uses its running statistics) and its
    previous train/eval mode is restored afterwards.
    """
    check_images(image, "image", ndim=3)
    return _run_with_hook(model, image[None], layer, batch_size=1, device=device)[0]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    data,
    layer: str | None = None,
    *,
    batch_size: int = 256,
    device: str = "auto",
) -> torch.Tensor:
    """Feature vectors of every image: the penultimate layer, or any named layer, flattened.

    Parameters
    ----------
    model : nn.Module
        With ``layer=None`` the model must have an ``embed(x)`` method
        (:class:`~deepimaging.models.BasicCNN`, :class:`~deepimaging.models.PhysicalModel`).
    data : ImageDataset or torch.Tensor
        Images (N, C, H, W) in [0, 1].
    layer : str, optional
        A name of ``model.named_modules()``; its output is captured with a
        forward hook and flattened to (N, -1).
    batch_size : int
        Images per forward pass; bounds the memory used.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``; the model is moved there
        (as :func:`deepimaging.train.predict` does).

    Returns
    -------
    torch.Tensor
        (N, D) float32 on the CPU.

    Notes
    -----
    Runs without gradients in eval mode, so the same image always gives the same
    features; the model's previous train/eval mode is restored afterwards.
    """
    images = _images_of(data)
    check_int(batch_size, "batch_size", 1)
    if layer is None:
        if not callable(getattr(model, "embed", None)):
            raise TypeError(
                f"{type(model).__name__} has no embed(x) method for the penultimate features; "
                f"name a layer instead, one of {[n for n, _ in model.named_modules() if n]}"
            )
        from ..train import get_device

        device = get_device(device)
        was_training = model.training
        model.to(device).eval()
        try:
            chunks = [
                model.embed(as_float(images[i : i + batch_size].to(device))).flatten(1).float().cpu()
                for i in range(0, len(images), batch_size)
            ]
        finally:
            model.train(was_training)
        return torch.cat(chunks)
    return _run_with_hook(model, images, layer, batch_size=batch_size, device=device).flatten(1)


def _run_with_hook(model, images, layer, *, batch_size, device):
    """Run ``model`` over ``images`` in batches and collect the output of ``layer``."""
    from ..train import get_device

    module = get_layer(model, layer)
    device = get_device(device)
    outputs = []
    # clone(): a later in-place ReLU would otherwise overwrite the captured tensor.
    handle = module.register_forward_hook(
        lambda mod, inp, out: outputs.append(out.detach().float().cpu().clone())
    )
    was_training = model.training
    model.to(device).eval()
    try:
        for i in range(0, len(images), batch_size):
            model(as_float(images[i : i + batch_size].to(device)))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(outputs)


# --- nearest neighbours ----------------------------------------------------------------------


class Neighbors(NamedTuple):
    """What :func:`nearest_neighbors` returns, as scikit-learn's ``kneighbors``.

    ``distances`` (Nq, k) in increasing order and ``indices`` (Nq, k) into the database.
    """

    distances: torch.Tensor
    indices: torch.Tensor


def distance_matrix(a: torch.Tensor, b: torch.Tensor, metric: str = "l2") -> torch.Tensor:
    """All pairwise distances between the rows of ``a`` (M, D) and ``b`` (N, D): shape (M, N).

    Notes
    -----
    L2 uses the expansion that turns the work into one matrix product,

    .. math:: \\|a - b\\|^2 = \\|a\\|^2 - 2\\, a \\cdot b + \\|b\\|^2,

    clamped at 0 because rounding can make the difference of large, nearly
    equal numbers slightly negative. Cosine distance is
    :math:`1 - a \\cdot b / (\\|a\\| \\|b\\|)` (as scikit-learn; a zero
    vector has distance 1 to everything).
    """
    check_choice(metric, "metric", METRICS)
    if metric == "cosine":
        a = nn.functional.normalize(a, dim=1)
        b = nn.functional.normalize(b, dim=1)
        return 1.0 - a @ b.T
    squared = _squared_norm_less_product(a, b, (b * b).sum(1)) + (a * a).sum(1)[:, None]
    return squared.clamp_min_(0.0).sqrt_()


def _squared_norm_less_product(a: torch.Tensor, b: torch.Tensor, b_squared: torch.Tensor) -> torch.Tensor:
    """``||b||^2 - 2 a.b`` for every row pair, (M, N): the squared L2 distance less ``||a||^2``, one ``addmm``."""
    return torch.addmm(b_squared.to(a.dtype), a, b.T, alpha=-2.0)


def nearest_neighbors(
    queries: torch.Tensor,
    database: torch.Tensor,
    k: int = 5,
    *,
    metric: str = "l2",
    exclude_self=False,
    chunk_size: int = 2048,
) -> Neighbors:
    """The ``k`` nearest database rows of every query, in feature space or in pixel space.

    Parameters
    ----------
    queries : torch.Tensor
        Feature vectors (Nq, D), or images (Nq, C, H, W), which are flattened:
        nearest neighbours in pixel space.
    database : torch.Tensor
        (N, D) or (N, C, H, W), with the same D (or C, H, W) as ``queries``.
    k : int
        Neighbours per query, at most N (N - 1 when excluding the query itself).
    metric : {"l2", "cosine"}
    exclude_self : bool or sequence of int
        Leave each query out of its own results, for when the queries are part
        of the database. ``True``: query ``i`` is database row ``i`` (the usual
        call ``nearest_neighbors(x, x, exclude_self=True)``); a sequence of
        Nq indices: query ``j`` is database row ``exclude_self[j]``. By position,
        not by value, so duplicated images are still found.
    chunk_size : int
        Queries per distance-matrix chunk, so memory stays at chunk_size x N.

    Returns
    -------
    Neighbors
        ``distances`` (Nq, k) ascending and ``indices`` (Nq, k), like
        scikit-learn's ``NearestNeighbors(algorithm="brute").kneighbors``.
        On the device of the inputs (a GPU runs it as one matrix product per chunk).

    Notes
    -----
    Brute force, as the lecture: every query against every database row. With
    the expansion of :func:`distance_matrix`, ``||a||^2`` is the same for all
    rows of one query, so the ranking needs only ``||b||^2 - 2 a.b`` (one
    ``addmm``); ``||a||^2`` is added back to the k winners before the square
    root. Cosine distance ranks unit vectors by ``-a.b``. Ties are broken as
    ``torch.topk`` breaks them, which may differ from scikit-learn for exactly
    equal distances.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [1.0], [3.0]])
    >>> nearest_neighbors(x, x, k=1, exclude_self=True).indices.ravel().tolist()
    [1, 0, 1]
    """
    queries, database = _as_rows(queries, "queries"), _as_rows(database, "database")
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries and database must have the same number of features; got {queries.shape[1]} and "
            f"{database.shape[1]} (compare pixels with pixels and features from the same layer)"
        )
    check_choice(metric, "metric", METRICS)
    check_int(chunk_size, "chunk_size", 1)
    own = _own_positions(exclude_self, len(queries), len(database))
    available = len(database) - (own is not None)
    check_int(k, "k", 1)
    if k > available:
        raise ValueError(
            f"k must be at most {available}, the database size"
            f"{' minus the query itself' if own is not None else ''}; got k={k}"
        )
    if metric == "cosine":
        # On unit vectors, 1 - cos = ||a - b||^2 / 2: normalise once, then rank by -a.b.
        queries = nn.functional.normalize(queries, dim=1)
        database = nn.functional.normalize(database, dim=1)
    # ||a||^2 - 2 a.b + ||b||^2: the query's own ||a||^2 is the same for every database row, so
    # it cannot change the ranking; rank by ||b||^2 - 2 a.b (one addmm), add ||a||^2 to the k winners.
    database_sq = (database * database).sum(1) if metric == "l2" else database.new_zeros(len(database))
    distances, indices = [], []
    for start in range(0, len(queries), chunk_size):
        a = queries[start : start + chunk_size]
        scores = _squared_norm_less_product(a, database, database_sq)
        if own is not None:
            # An infinite score keeps each query out of its own top k.
            rows = torch.arange(len(a), device=scores.device)
            scores[rows, own[start : start + chunk_size].to(scores.device)] = float("inf")
        nearest = scores.topk(k, dim=1, largest=False, sorted=True)
        if metric == "l2":
            d = (nearest.values + (a * a).sum(1, keepdim=True)).clamp_min_(0.0).sqrt_()
        else:
            d = 1.0 + 0.5 * nearest.values  # -2 a.b / 2 + 1 = 1 - cos
        distances.append(d)
        indices.append(nearest.indices)
    return Neighbors(torch.cat(distances), torch.cat(indices))


def _as_rows(x, name):
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, D) or (N, C, H, W); got {type(x).__name__}"
        )
    if x.ndim not in (2, 4):
        raise ValueError(
            f"{name} must have shape (N, D) (features) or (N, C, H, W) (images); got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError(f"{name} holds no rows")
    return x.flatten(1)


def _own_positions(exclude_self, n_queries, n_database):
    if exclude_self is False or exclude_self is None:
        return None
    if exclude_self is True:
        if n_queries != n_database:
            raise ValueError(
                f"exclude_self=True means query i is database row i, so both need the same length; got "
                f"{n_queries} queries and {n_database} database rows (pass the queries' database indices "
                "as exclude_self instead)"
            )
        return torch.arange(n_queries)
    own = torch.as_tensor(np.asarray(exclude_self))
    if own.shape != (n_queries,) or own.is_floating_point():
        raise ValueError(
            f"exclude_self must be True, False or {n_queries} integer database indices (one per query); "
            f"got shape {tuple(own.shape)}"
        )
    if len(own) and (own.min() < 0 or own.max() >= n_database):
        raise ValueError(f"exclude_self indices must be in [0, {n_database - 1}]; got {own.tolist()}")
    return own.long()


# --- t-SNE -----------------------------------------------------------------------------------


def tsne(
    features: torch.Tensor,
    *,
    perplexity: float = 30.0,
    seed: int = 0,
    method: str = "sklearn",
    n_jobs: int | None = 1,
) -> torch.Tensor:
    """A 2-D t-SNE map of feature vectors (van der Maaten and Hinton, 2008).

    Points that are neighbours in feature space stay neighbours in the map;
    distances between far-apart clusters mean little.

    Parameters
    ----------
    features : torch.Tensor
        (N, D) feature vectors, or images (N, C, H, W), which are flattened
        (a t-SNE map of pixel space, for contrast).
    perplexity : float
        Roughly the number of neighbours each point keeps; must be below N.
    seed : int
        Same seed, same map (on the same machine).
    method : {"sklearn", "opentsne"}
        scikit-learn's ``TSNE`` (Barnes-Hut, PCA initialisation), or openTSNE
        (faster for tens of thousands of points; install ``openTSNE`` first).
    n_jobs : int or None
        Threads. One by default: for the course's few thousand points more
        threads gain little, and on a busy shared machine OpenMP threads that
        wait for each other can make t-SNE several times slower. ``None``: all cores.

    Returns
    -------
    torch.Tensor
        (N, 2) float32.

    References
    ----------
    L. van der Maaten and G. Hinton, "Visualizing data using t-SNE", JMLR 9 (2008).
    """
    features = _as_rows(features, "features")
    check_number(perplexity, "perplexity", 0.0, low_open=True)
    check_int(seed, "seed", 0)
    check_choice(method, "method", ("sklearn", "opentsne"))
    if perplexity >= len(features):
        raise ValueError(
            f"perplexity must be below the number of points ({len(features)}); got {perplexity} "
            "(use more points or a smaller perplexity, e.g. 5-50)"
        )
    if n_jobs is not None:
        check_int(n_jobs, "n_jobs", 1)
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    x = features.detach().cpu().double().numpy()
    with threadpool_limits(n_jobs):
        if method == "opentsne":
            try:
                from openTSNE import TSNE as OpenTSNE
            except ImportError:
                raise ImportError(
                    "method='opentsne' needs the openTSNE package: pip install openTSNE"
                ) from None
            embedding = np.asarray(
                OpenTSNE(perplexity=perplexity, random_state=seed, n_jobs=n_jobs or -1).fit(x)
            )
        else:
            from sklearn.manifold import TSNE

            model = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=n_jobs)
            embedding = model.fit_transform(x)
    return torch.as_tensor(embedding, dtype=torch.float32)


# --- shared checks ---------------------------------------------------------------------------


def _check_model(model):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")


def _images_of(data) -> torch.Tensor:
    """The images of ``data`` as stored (uint8 or float); batches go through ``as_float``."""
    if isinstance(data, ImageDataset):
        return data.storage
    return check_images(data, "data")
