r"""Sliding windows over large images, and the detections they give: boxes, non-maximum suppression, matching.

Real images are larger than the images the classifier was trained on, so a
**sliding window** classifies every position of a large image
(:func:`sliding_window`); the class-probability heatmap becomes detections by
thresholding, non-maximum suppression and box voting
(:func:`heatmap_detections`), scored against the true boxes with the Jaccard
index, intersection over union (:func:`match_detections`).

Every function takes a single image (C, H, W) (or (1, C, H, W)) in [0, 1] and
returns results on the CPU. The model runs in eval mode and is put back in the
mode it was in.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import (
    check_box_pairs,
    check_boxes,
    check_choice,
    check_int,
    check_number,
    check_single_image,
    shape_of,
)
from .._util import eval_mode, model_device, pair
from ..metrics import box_jaccard

__all__ = ["heatmap_detections", "match_detections", "sliding_window", "window_boxes"]

# The most windows one grid may have. Their boxes are 4 numbers each and their heatmaps K, so a
# typo such as image_size=(10**6, 10**6) with stride 1 would ask for terabytes. 2**24 windows cover
# a 4096 x 4096 image at stride 1 (the largest image the data loaders read, data.folder.MAX_SIZE).
MAX_WINDOWS = 2**24
# The most bytes of windows classified in one forward pass (batch_size windows of C x h x w
# float32 pixels): 1 GiB. A larger batch is a typo (batch_size=10**9 with large windows), and
# the model's activations take several times its input.
MAX_BATCH_BYTES = 2**30


# ----------------------------------------------------------------------------- sliding window


@torch.no_grad()
def sliding_window(
    model: nn.Module,
    image: torch.Tensor,
    window: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    *,
    batch_size: int = 32,
    method: str = "exact",
) -> torch.Tensor:
    r"""Class-probability heatmaps: classify every window of a large image.

    Window :math:`(i, j)` covers rows :math:`[i s_y, i s_y + h)` and columns
    :math:`[j s_x, j s_x + w)`; only windows that lie fully inside the image
    are used, so there are :math:`\lfloor (H - h)/s_y \rfloor + 1` rows of
    windows. The windows are cut out as a strided view of the image
    (``Tensor.unfold``, no copy) and classified ``batch_size`` at a time,
    which is what makes this fast compared with one forward pass per window.

    Parameters
    ----------
    model : nn.Module
        A classifier trained on images of the window's size; maps (N, C, h, w)
        to class scores (N, K).
    image : torch.Tensor
        (C, H, W) or (1, C, H, W), values in [0, 1].
    window : int or (int, int)
        Window height and width (at most the image size).
    stride : int or (int, int), optional
        Step between windows, >= 1; default half the window.
    batch_size : int
        Windows per forward pass (bounds memory) for ``method="exact"``. Small
        batches (16-64) suit a CPU, whose caches they fit; on a GPU, use
        hundreds or thousands. A batch may hold at most ``MAX_BATCH_BYTES``
        (1 GiB) of window pixels, and a grid at most ``MAX_WINDOWS`` windows.
    method : {"exact", "dense"}
        ``"exact"`` (default): every window is classified on its own, exactly
        what a per-window loop gives. ``"dense"``: the convolutional trunk runs
        once over the whole image and each window's features are the mean of
        the final feature map over the window's cells (see Notes); much faster
        when windows overlap, and not identical to ``"exact"`` near window borders.

    Returns
    -------
    torch.Tensor
        (K, rows, cols) softmax probabilities on the CPU: ``heatmaps[k, i, j]``
        is the probability of class k for window (i, j). :func:`window_boxes`
        gives the pixel box of each window.

    Notes
    -----
    **Dense evaluation** (OverFeat, Sermanet et al. 2014; fully convolutional
    networks, Long et al. 2015). Overlapping windows share most of their
    pixels, so the exact method computes the same convolutions many times
    (with a stride of 1/8 of the window, each pixel 64 times). A model made of
    a convolutional trunk, a global average pool and a classifier,

    .. math:: f(x) = g\Big(\frac{1}{|\Omega|} \sum_{u \in \Omega} T(x)_u\Big),

    (``model.features`` = trunk + ``AdaptiveAvgPool2d(1)`` + ``Flatten``,
    ``model.classifier`` = :math:`g`, and ``model(x)`` computes
    ``classifier(features(x))``, as :class:`~deepimaging.models.BasicCNN`)
    can instead run the trunk :math:`T` once on the whole image. Its output
    is downsampled by :math:`D`, the product of the strides in the trunk
    (:math:`2^{\text{blocks}}` for BasicCNN), so a window of :math:`h \times w`
    pixels at a multiple of :math:`D` covers exactly :math:`h/D \times w/D`
    cells; averaging them (``avg_pool2d`` with kernel :math:`h/D` and stride
    :math:`s/D`) and applying :math:`g` and the softmax gives every window's
    probabilities. Window and stride must therefore be multiples of :math:`D`.

    The one difference from ``"exact"``: a window classified on its own is
    zero-padded at its edges by every convolution, while in the dense trunk
    the convolutions near a window's edge see the real pixels beyond it. For
    1x1 kernels (no padding) both methods agree to rounding error; for the
    3x3 kernels of BasicCNN the final feature maps differ only in the
    outermost ring of cells of each window (each conv-pool block spreads the
    border effect by one row, which its pooling halves), so the
    probabilities differ. How much depends on the share of border cells,
    :math:`1 - (h/D - 2)(w/D - 2) / (hw/D^2)`: 12 of 16 cells for a 32 px
    window with :math:`D = 8`, 28 of 64 for a 64 px window; check dense
    against exact on your own data before relying on it. Memory: one forward pass of the trunk on
    the whole image (no batching).

    References
    ----------
    P. Sermanet et al., "OverFeat: integrated recognition, localization and
    detection using convolutional networks", ICLR 2014. J. Long, E. Shelhamer
    and T. Darrell, "Fully convolutional networks for semantic segmentation",
    CVPR 2015.

    Examples
    --------
    >>> from deepimaging.models import BasicCNN
    >>> sliding_window(BasicCNN(3, 4), torch.rand(3, 48, 64), window=32, stride=16).shape
    torch.Size([4, 2, 3])
    >>> sliding_window(BasicCNN(3, 4), torch.rand(3, 48, 64), window=32, stride=8, method="dense").shape
    torch.Size([4, 3, 5])
    """
    check_int(batch_size, "batch_size", 1)
    check_choice(method, "method", ("exact", "dense"))
    image = check_single_image(model, image)[0]
    window_h, window_w = pair(window, "window")
    if stride is None:
        stride = (max(1, window_h // 2), max(1, window_w // 2))
    stride_h, stride_w = pair(stride, "stride")
    _, height, width = image.shape
    _check_grid((height, width), (window_h, window_w), (stride_h, stride_w))
    if method == "dense":
        return _dense_sliding_window(model, image, (window_h, window_w), (stride_h, stride_w))
    with eval_mode(model):
        image = image.to(model_device(model))
        # (C, rows, cols, h, w) -> (rows, cols, C, h, w): a view, nothing is copied yet.
        windows = image.unfold(1, window_h, stride_h).unfold(2, window_w, stride_w).permute(1, 2, 0, 3, 4)
        rows, cols = windows.shape[:2]
        batch_bytes = min(batch_size, rows * cols) * windows[0, 0].numel() * 4
        if batch_bytes > MAX_BATCH_BYTES:
            raise ValueError(
                f"batch_size {batch_size} makes batches of {batch_bytes / 2**30:.1f} GiB of "
                f"{window_h}x{window_w} windows, more than {MAX_BATCH_BYTES // 2**30} GiB; choose "
                f"batch_size <= {max(1, MAX_BATCH_BYTES // (windows[0, 0].numel() * 4))}"
            )
        flat = torch.arange(rows * cols, device=image.device)
        chunks = []
        for start in range(0, len(flat), batch_size):
            i, j = flat[start : start + batch_size] // cols, flat[start : start + batch_size] % cols
            chunks.append(torch.softmax(model(windows[i, j]), dim=1))  # indexing copies only this batch
    probabilities = torch.cat(chunks)  # (rows * cols, K)
    return probabilities.T.reshape(-1, rows, cols).cpu()


def _dense_parts(model: nn.Module):
    """(trunk, classifier, downsampling D) of a trunk + global-average-pool + classifier model."""
    features, classifier = getattr(model, "features", None), getattr(model, "classifier", None)
    structured = (
        isinstance(features, nn.Sequential)
        and isinstance(classifier, nn.Module)
        and len(features) >= 3
        and isinstance(features[-2], nn.AdaptiveAvgPool2d)
        and features[-2].output_size in (1, (1, 1))
        and isinstance(features[-1], nn.Flatten)
    )
    if not structured:
        raise ValueError(
            f'method="dense" needs a model like BasicCNN: `.features` an nn.Sequential ending in '
            f"AdaptiveAvgPool2d(1) and Flatten after a convolutional trunk, and `.classifier` applied "
            f'to its output; {type(model).__name__} is not one (use method="exact")'
        )
    trunk = features[:-2]
    down_h = down_w = 1
    for module in trunk.modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            stride = module.stride if module.stride is not None else module.kernel_size
            stride_h, stride_w = stride if isinstance(stride, tuple) else (stride, stride)
            down_h, down_w = down_h * stride_h, down_w * stride_w
    return trunk, classifier, (down_h, down_w)


def _dense_sliding_window(model, image, window, stride) -> torch.Tensor:
    """``sliding_window(..., method="dense")``: the trunk once, then each window's mean feature."""
    trunk, classifier, down = _dense_parts(model)
    for name, value in (("window", window), ("stride", stride)):
        if value[0] % down[0] or value[1] % down[1]:
            raise ValueError(
                f'method="dense" needs the {name} to be a multiple of the trunk\'s downsampling '
                f"{down[0]}x{down[1]} (the product of its strides), so that windows cover whole "
                f"cells of the feature map; got {name} {value[0]}x{value[1]} "
                f'(round it to a multiple, or use method="exact")'
            )
    with eval_mode(model):
        feature_map = trunk(image.to(model_device(model))[None])  # (1, F, ~H/D, ~W/D)
        cells = (window[0] // down[0], window[1] // down[1])
        step = (stride[0] // down[0], stride[1] // down[1])
        # Mean over each window's cells = the global average pool of that window, for all at once.
        pooled = nn.functional.avg_pool2d(feature_map, kernel_size=cells, stride=step)  # (1, F, rows, cols)
        _, n_features, rows, cols = pooled.shape
        logits = classifier(pooled[0].reshape(n_features, rows * cols).T)  # (rows * cols, K)
        probabilities = torch.softmax(logits, dim=1)
    return probabilities.T.reshape(-1, rows, cols).cpu()


def window_boxes(image_size, window, stride) -> torch.Tensor:
    """Pixel boxes (rows, cols, 4) ``(x_min, y_min, x_max, y_max)`` of the windows of :func:`sliding_window`.

    ``image_size`` is (H, W) (or one int for a square image); ``window`` and ``stride`` as
    given to :func:`sliding_window` (stride required here). At most ``MAX_WINDOWS`` windows.
    """
    height, width = pair(image_size, "image_size")
    window_h, window_w = pair(window, "window")
    stride_h, stride_w = pair(stride, "stride")
    rows, cols = _check_grid((height, width), (window_h, window_w), (stride_h, stride_w))
    return _grid_boxes(rows, cols, (window_h, window_w), (stride_h, stride_w), (window_h, window_w))


def _check_grid(image_size, window, stride) -> tuple[int, int]:
    """(rows, cols) of the window grid, after checking that the window fits and the grid is not huge."""
    (height, width), (window_h, window_w), (stride_h, stride_w) = image_size, window, stride
    if window_h > height or window_w > width:
        raise ValueError(
            f"window must fit in the image: got a {window_h}x{window_w} window for a {height}x{width} image"
        )
    rows, cols = (height - window_h) // stride_h + 1, (width - window_w) // stride_w + 1
    if rows * cols > MAX_WINDOWS:
        raise ValueError(
            f"a {window_h}x{window_w} window at stride {stride_h}x{stride_w} over a {height}x{width} "
            f"image gives {rows}x{cols} = {rows * cols} windows, more than {MAX_WINDOWS}; "
            "use a larger stride"
        )
    return rows, cols


def _grid_boxes(rows, cols, window, stride, box_size) -> torch.Tensor:
    """Boxes (rows, cols, 4) of size ``box_size`` centred on the windows of a sliding-window grid."""
    centre_y = torch.arange(rows).float() * stride[0] + window[0] / 2
    centre_x = torch.arange(cols).float() * stride[1] + window[1] / 2
    y, x = torch.meshgrid(centre_y, centre_x, indexing="ij")
    half_h, half_w = box_size[0] / 2, box_size[1] / 2
    return torch.stack([x - half_w, y - half_h, x + half_w, y + half_h], dim=-1)


def heatmap_detections(
    heatmaps: torch.Tensor,
    window,
    stride,
    *,
    background: int | None = None,
    threshold: float = 0.5,
    box_size: int | tuple[int, int] | None = None,
    overlap: float = 0.3,
):
    """Turn sliding-window heatmaps into detections by thresholding and non-maximum suppression.

    The score of a window is its probability of "some object": ``1 - p[background]``
    when a background class is given, else the largest class probability. Windows
    scoring at least ``threshold`` are candidates. Greedy non-maximum
    suppression: the best candidate is kept and every candidate whose box
    overlaps it with IoU > ``overlap`` is suppressed; repeat with the rest.
    The kept box is the score-weighted mean of its cluster (itself and the
    boxes it suppressed; "box voting"): when a whole plateau of windows
    scores about 1, this centres the box on the plateau instead of on
    whichever window happens to score highest. The score and label are those
    of the best window; the label is its most probable non-background class.

    Parameters
    ----------
    heatmaps : torch.Tensor
        (K, rows, cols) probabilities in [0, 1] from :func:`sliding_window`. An empty
        grid (rows or cols 0) gives no detections.
    window, stride : int or (int, int)
        As given to :func:`sliding_window`.
    background : int, optional
        Index of the background class, if the classifier has one.
    threshold : float
        Minimum score of a detection, in [0, 1].
    box_size : int or (int, int), optional
        Height and width of the reported box, centred on the window; default
        the window. Set it to the typical object size when objects are smaller
        than the window, otherwise even a perfectly centred window scores a low IoU.
    overlap : float
        IoU above which a weaker box is suppressed, in [0, 1].

    Returns
    -------
    boxes : torch.Tensor
        (M, 4) ``(x_min, y_min, x_max, y_max)``, best score first; windows of equal
        score in the heatmaps' row-major order (top row first), so ties are resolved
        the same way on every run.
    scores : torch.Tensor
        (M,)
    labels : torch.Tensor
        (M,) int64 class indices.
    """
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 3:
        raise ValueError(
            f"heatmaps must be a tensor (K, rows, cols) from sliding_window; got {shape_of(heatmaps)}"
        )
    if not heatmaps.is_floating_point():
        raise TypeError(f"heatmaps must hold probabilities (a floating tensor); got dtype {heatmaps.dtype}")
    # NaN compares false with the threshold, so a NaN heatmap would silently give no detections.
    if heatmaps.numel() and not (heatmaps.min() >= 0 and heatmaps.max() <= 1):
        raise ValueError(
            "heatmaps must hold probabilities in [0, 1] (sliding_window's softmax); got values in "
            f"[{float(heatmaps.min()):.4g}, {float(heatmaps.max()):.4g}]"
        )
    check_number(threshold, "threshold", 0.0, 1.0)
    check_number(overlap, "overlap", 0.0, 1.0)
    n_classes = heatmaps.shape[0]
    needed = 1 if background is None else 2  # with a background class, at least one object class too
    if n_classes < needed:
        raise ValueError(
            f"heatmaps must have at least {needed} class(es) along dimension 0"
            f"{' (the background and an object class)' if background is not None else ''}; "
            f"got shape {tuple(heatmaps.shape)}"
        )
    if background is not None:
        check_int(background, "background", 0, n_classes - 1)
        foreground = [k for k in range(n_classes) if k != background]
        scores = 1 - heatmaps[background]
    else:
        foreground = list(range(n_classes))
        scores = heatmaps.amax(dim=0)
    labels = torch.tensor(foreground)[heatmaps[foreground].argmax(dim=0)]

    window, stride = pair(window, "window"), pair(stride, "stride")
    box_size = window if box_size is None else pair(box_size, "box_size")
    boxes = _grid_boxes(heatmaps.shape[1], heatmaps.shape[2], window, stride, box_size).reshape(-1, 4)
    scores, labels = scores.reshape(-1), labels.reshape(-1)

    candidates = torch.nonzero(scores >= threshold).flatten()
    candidates = candidates[scores[candidates].argsort(descending=True, stable=True)]
    kept_boxes, kept = [], []
    while len(candidates):
        best = candidates[0]
        # The best box and every candidate it suppresses form one cluster; they vote on the box.
        cluster = candidates[box_jaccard(boxes[best][None], boxes[candidates])[0] > overlap]
        cluster = torch.cat([best[None], cluster[cluster != best]])
        weights = scores[cluster][:, None]
        kept_boxes.append((weights * boxes[cluster]).sum(0) / weights.sum())
        kept.append(int(best))
        candidates = candidates[~torch.isin(candidates, cluster)]
    kept = torch.tensor(kept, dtype=torch.long)
    boxes = torch.stack(kept_boxes) if kept_boxes else boxes[:0]
    return boxes, scores[kept], labels[kept]


def match_detections(boxes: torch.Tensor, true_boxes: torch.Tensor, *, iou_threshold: float = 0.5) -> dict:
    """Score detections against ground-truth boxes with the Jaccard index.

    Detections are taken best first (the order :func:`heatmap_detections`
    returns); each is matched to the unmatched true box it overlaps most, if
    that IoU is at least ``iou_threshold`` (the Pascal VOC rule). A matched
    detection is a true positive, an unmatched one a false positive, an
    unmatched true box a false negative.

    Parameters
    ----------
    boxes : tensor or array, shape (N, 4)
        Detections ``(x_min, y_min, x_max, y_max)``, best first; ``[]`` for none.
    true_boxes : tensor or array, shape (M, 4)
        Ground-truth boxes; ``[]`` for none. At most 10**7 pairs N x M
        (``deepimaging._checks.MAX_BOX_PAIRS``).
    iou_threshold : float
        Smallest IoU of a match, in [0, 1].

    Returns
    -------
    dict
        ``true_positives``, ``false_positives``, ``false_negatives``,
        ``precision``, ``recall``, ``mean_iou`` (over the matches, NaN if none),
        ``best_iou`` ((N,) best IoU of each true box with any detection) and
        ``matches`` (list of (detection index, true box index)).
    """
    check_number(iou_threshold, "iou_threshold", 0.0, 1.0)
    # Checked here too so that errors name this function's parameters (box_jaccard says boxes_a).
    boxes, true_boxes = check_boxes(boxes, "boxes"), check_boxes(true_boxes, "true_boxes")
    check_box_pairs(len(boxes), len(true_boxes), "boxes", "true_boxes")
    iou = box_jaccard(boxes, true_boxes)
    matched_true: set = set()
    matches, ious = [], []
    for d in range(len(boxes)):
        candidates = [(float(iou[d, t]), t) for t in range(len(true_boxes)) if t not in matched_true]
        if candidates:
            best, t = max(candidates)
            if best >= iou_threshold:
                matched_true.add(t)
                matches.append((d, t))
                ious.append(best)
    tp = len(matches)
    return {
        "true_positives": tp,
        "false_positives": len(boxes) - tp,
        "false_negatives": len(true_boxes) - tp,
        "precision": tp / len(boxes) if len(boxes) else float("nan"),
        "recall": tp / len(true_boxes) if len(true_boxes) else float("nan"),
        "mean_iou": sum(ious) / tp if tp else float("nan"),
        "best_iou": iou.amax(dim=0).float() if len(boxes) else torch.zeros(len(true_boxes)),
        "matches": matches,
    }
