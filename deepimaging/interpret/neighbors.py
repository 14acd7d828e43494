"""Feature space: pairwise distances, nearest neighbours and t-SNE maps of feature vectors or images.

Step 4 of the lecture's route through a trained CNN (see :mod:`.features` for
steps 1-3): compare the nearest neighbours of an image in pixel space with its
nearest neighbours in feature space, and map the features to 2-D with t-SNE.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .._checks import check_choice, check_int, check_number

__all__ = ["Neighbors", "distance_matrix", "nearest_neighbors", "tsne"]

METRICS = ("l2", "cosine")
# The most (query, database) pairs whose distances are held at once: 2**28 float32 are 1 GiB
# (distance_matrix holds the table and its product, nearest_neighbors one chunk of it). Two
# sets of 10**6 images would otherwise ask for 4 TB; 16 000 x 16 000 images still fit.
MAX_PAIRS = 2**28


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
    a, b = _as_rows(a, "a", empty_ok=True), _as_rows(b, "b", empty_ok=True)
    _check_pairs(a, b, len(a), "a", "b")
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
        Queries per distance-matrix chunk, so memory stays at chunk_size x N (at most
        ``MAX_PAIRS`` distances: a larger chunk is made smaller; the result is the same).

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
    check_choice(metric, "metric", METRICS)
    check_int(chunk_size, "chunk_size", 1)
    _check_pairs(queries, database, 1, "queries", "database")
    # chunk_size changes only memory and speed, not the result: capped so one chunk's table of
    # scores stays within MAX_PAIRS even for a large chunk_size against a large database.
    chunk_size = min(chunk_size, max(1, MAX_PAIRS // len(database)))
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


def _check_pairs(a, b, rows, name_a, name_b):
    """Same number of features, and at most MAX_PAIRS distances (``rows`` of ``a`` at a time) held at once."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of features; got {a.shape[1]} and "
            f"{b.shape[1]} (compare pixels with pixels and features from the same layer)"
        )
    if rows * len(b) > MAX_PAIRS:
        raise ValueError(
            f"{rows} rows of {name_a} against the {len(b)} of {name_b} would hold {rows * len(b)} "
            f"distances at once, more than {MAX_PAIRS}; compare fewer rows at a time"
        )


def _as_rows(x, name, *, empty_ok=False):
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
    if len(x) == 0 and not empty_ok:
        raise ValueError(f"{name} holds no rows")
    # A NaN distance sorts arbitrarily: neighbours and t-SNE maps of NaN features would be noise.
    if not torch.all(torch.isfinite(x)):
        raise ValueError(
            f"{name} must be finite; got NaN or infinite values (a NaN feature usually means the model "
            "diverged or the data held NaN)"
        )
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
