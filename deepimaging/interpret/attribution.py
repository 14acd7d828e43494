"""Which pixels matter: occlusion, saliency, Grad-CAM, and sliding windows over large images.

The lecture's two ways to ask a trained CNN *where* it looked:

- **occlusion** (Zeiler & Fergus 2014): cover part of the image with a grey
  patch and record how much the probability of the class drops; slide the
  patch over the whole image. Needs only forward passes.
- **saliency** (Simonyan et al. 2014): the gradient of the class score with
  respect to every input pixel; one backward pass. SmoothGrad averages it over
  noisy copies; Grad-CAM weighs the activation maps of a conv layer by their
  mean gradient.

Then, because real images are larger than the images the classifier was
trained on, a **sliding window** classifies every position of a large image;
the class-probability heatmap becomes detections, scored against the true
boxes with the Jaccard index (intersection over union).

Every function takes a single image (C, H, W) (or (1, C, H, W)) in [0, 1] and
returns maps on the CPU. The model runs in eval mode (batch norm uses its
running statistics, dropout is off) and is put back in the mode it was in.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number, shape_of
from ..metrics import box_jaccard

__all__ = [
    "grad_cam",
    "heatmap_detections",
    "match_detections",
    "occlusion_map",
    "saliency_map",
    "sliding_window",
    "window_boxes",
]


# ----------------------------------------------------------------------------- occlusion


@torch.no_grad()
def occlusion_map(
    model: nn.Module,
    image: torch.Tensor,
    target: int | None = None,
    *,
    sliding_window_shapes: int | tuple[int, int] = 8,
    strides: int | tuple[int, int] | None = None,
    baselines: float | torch.Tensor = 0.5,
    batch_size: int = 32,
) -> torch.Tensor:
    """Occlusion map: how much the target class probability drops when a patch is greyed out.

    A patch of ``sliding_window_shapes`` pixels, filled with ``baselines``, is
    slid over the image with step ``strides``. For each position :math:`k`
    the model sees the occluded image :math:`x^{(k)}` and the drop in the
    softmax probability of the target class :math:`c` is recorded,

    .. math:: \\Delta_k = p_c(x) - p_c(x^{(k)}).

    Every pixel gets the mean :math:`\\Delta_k` over the windows that cover it,
    so overlapping windows (stride < window) are averaged. A large positive
    value means "hiding this region makes the network less sure".

    Parameters
    ----------
    model : nn.Module
        Maps images (N, C, H, W) to class scores (logits) (N, K).
    image : torch.Tensor
        (C, H, W) or (1, C, H, W), values in [0, 1].
    target : int, optional
        Class whose probability is watched; default the class the model
        predicts for the unoccluded image.
    sliding_window_shapes : int or (int, int)
        Patch height and width in pixels (at most the image size).
    strides : int or (int, int), optional
        Step between patch positions, 1 to the patch size (so that every
        pixel is covered); default the patch size (non-overlapping patches).
    baselines : float or torch.Tensor
        Fill value of the patch: a number (0.5, mid-grey, as Zeiler & Fergus)
        or a tensor broadcastable to (C, H, W), e.g. per-channel means (C, 1, 1).
    batch_size : int
        Occluded images per forward pass; bounds memory to
        ``batch_size * C * H * W`` floats whatever the number of positions.
        Small batches (16-64) suit a CPU, whose caches they fit; on a GPU,
        hundreds are faster.

    Returns
    -------
    torch.Tensor
        (H, W) float map on the CPU.

    Notes
    -----
    Patch positions along an axis of length :math:`H` with window :math:`h`
    and stride :math:`s` start at :math:`0, s, 2s, \\dots, \\lceil (H-h)/s
    \\rceil s`. When the stride does not tile the image, the last patch hangs
    over the edge and is cropped there. These are the conventions of Captum's
    ``Occlusion``: the map equals ``Occlusion(softmax(model)).attribute(x,
    sliding_window_shapes=(C, h, w), strides=(C, s_y, s_x), baselines=b,
    target=c)`` (which repeats the map over channels).

    References
    ----------
    M. D. Zeiler and R. Fergus, "Visualizing and understanding convolutional
    networks", ECCV 2014, section 4.2.

    Examples
    --------
    >>> from deepimaging.models import BasicCNN
    >>> occlusion_map(BasicCNN(3, 4), torch.rand(3, 32, 32), sliding_window_shapes=8, strides=4).shape
    torch.Size([32, 32])
    """
    check_int(batch_size, "batch_size", 1)
    image = _check_image(model, image)
    _, channels, height, width = image.shape
    window_h, window_w = _pair(sliding_window_shapes, "sliding_window_shapes")
    stride_h, stride_w = (window_h, window_w) if strides is None else _pair(strides, "strides")
    if window_h > height or window_w > width:
        raise ValueError(
            f"sliding_window_shapes must fit in the image: got a {window_h}x{window_w} patch "
            f"for a {height}x{width} image"
        )
    if stride_h > window_h or stride_w > window_w:
        raise ValueError(
            f"strides must be at most the patch size so every pixel is covered: got strides "
            f"({stride_h}, {stride_w}) for a {window_h}x{window_w} patch"
        )
    baselines = _check_baselines(baselines, image)

    with _eval_mode(model):
        device = _model_device(model)
        image, baselines = image.to(device), baselines.to(device)
        reference = torch.softmax(model(image), dim=1)[0]
        target = _check_target(target, reference)

        # Top-left corners of every patch; the last one may hang over the edge (cropped below).
        tops = torch.arange(math.ceil((height - window_h) / stride_h) + 1, device=device) * stride_h
        lefts = torch.arange(math.ceil((width - window_w) / stride_w) + 1, device=device) * stride_w
        tops, lefts = (t.reshape(-1) for t in torch.meshgrid(tops, lefts, indexing="ij"))
        rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)

        total = torch.zeros(height, width, device=device)
        count = torch.zeros(height, width, device=device)
        for start in range(0, len(tops), batch_size):
            top, left = tops[start : start + batch_size, None], lefts[start : start + batch_size, None]
            # mask[k, y, x] is True inside patch k: an outer product of a row and a column test.
            inside_rows = (rows >= top) & (rows < top + window_h)  # (B, H)
            inside_cols = (cols >= left) & (cols < left + window_w)  # (B, W)
            mask = (inside_rows[:, :, None] & inside_cols[:, None, :]).float()  # (B, H, W)
            occluded = torch.lerp(image, baselines, mask[:, None])  # the patch takes the baseline
            drop = reference[target] - torch.softmax(model(occluded), dim=1)[:, target]
            total += torch.einsum("k,khw->hw", drop, mask)  # spread each drop over its patch
            count += mask.sum(0)
    return (total / count).cpu()


# ----------------------------------------------------------------------------- gradients


def saliency_map(
    model: nn.Module,
    image: torch.Tensor,
    target: int | None = None,
    *,
    smoothgrad_samples: int = 0,
    noise_level: float = 0.15,
    seed: int = 0,
    batch_size: int = 32,
) -> torch.Tensor:
    """Saliency map: the largest ``|gradient|`` of the class score over the channels of each pixel.

    .. math:: M_{yx} = \\max_c \\left| \\frac{\\partial S_t}{\\partial x_{cyx}} \\right|

    where :math:`S_t` is the score (logit, before the softmax) of the target
    class :math:`t`. With ``smoothgrad_samples = n > 0`` the absolute gradient
    is averaged over :math:`n` noisy copies :math:`x + \\varepsilon_i`,
    :math:`\\varepsilon_i \\sim \\mathcal{N}(0, \\sigma^2)` with
    :math:`\\sigma = \\text{noise\\_level} \\cdot (\\max x - \\min x)`
    (SmoothGrad), before the maximum over channels.

    Parameters
    ----------
    model : nn.Module
        Maps images (N, C, H, W) to class scores (N, K).
    image : torch.Tensor
        (C, H, W) or (1, C, H, W), values in [0, 1].
    target : int, optional
        Default: the class predicted for ``image``.
    smoothgrad_samples : int
        0 for the plain gradient; otherwise the number of noisy copies.
    noise_level : float
        SmoothGrad noise as a fraction of the image's value range (Smilkov et
        al. suggest 0.1 to 0.2).
    seed : int
        Seeds the SmoothGrad noise: the same seed gives the same map.
    batch_size : int
        Noisy copies per backward pass.

    Returns
    -------
    torch.Tensor
        (H, W) map on the CPU, >= 0.

    Notes
    -----
    Equals Captum's ``Saliency(model).attribute(x, target=t, abs=True)``
    reduced by the maximum over channels; with SmoothGrad, Captum's
    ``NoiseTunnel(Saliency(model))`` with ``nt_type="smoothgrad"`` and
    ``stdevs = sigma`` up to the random draws. Only the input receives
    gradients: the model's parameter ``.grad`` are left untouched.

    References
    ----------
    K. Simonyan, A. Vedaldi and A. Zisserman, "Deep inside convolutional
    networks: visualising image classification models and saliency maps",
    ICLR workshop 2014. D. Smilkov et al., "SmoothGrad: removing noise by
    adding noise", arXiv:1706.03825, 2017.
    """
    check_int(smoothgrad_samples, "smoothgrad_samples", 0)
    check_number(noise_level, "noise_level", 0.0)
    check_int(seed, "seed", 0)
    check_int(batch_size, "batch_size", 1)
    image = _check_image(model, image)
    with _eval_mode(model):
        device = _model_device(model)
        image = image.to(device)
        with torch.no_grad():
            target = _check_target(target, torch.softmax(model(image), dim=1)[0])
        if smoothgrad_samples == 0:
            return _input_gradient(model, image, target).abs().amax(dim=1)[0].cpu()
        # All the noise in one draw on the CPU from a seeded generator: the same map on every
        # device and for every batch size.
        generator = torch.Generator().manual_seed(seed)
        sigma = noise_level * float(image.max() - image.min())
        noise = torch.randn((smoothgrad_samples, *image.shape[1:]), generator=generator) * sigma
        total = torch.zeros_like(image[0])
        for start in range(0, smoothgrad_samples, batch_size):
            noisy = image + noise[start : start + batch_size].to(device)
            total += _input_gradient(model, noisy, target).abs().sum(0)
        return (total / smoothgrad_samples).amax(dim=0).cpu()


def _input_gradient(model, images, target):
    """d(score of ``target``)/d(images) for a batch; the scores of different images are independent."""
    images = images.detach().requires_grad_(True)
    with torch.enable_grad():
        score = model(images)[:, target].sum()
        (gradient,) = torch.autograd.grad(score, images)
    return gradient


def grad_cam(
    model: nn.Module,
    image: torch.Tensor,
    layer: str,
    target: int | None = None,
    *,
    interpolate_mode: str = "bilinear",
) -> torch.Tensor:
    """Grad-CAM: the activation maps of a conv layer, weighted by their mean gradient, upsampled.

    For the activations :math:`A^k` (k = 1..K channels, h x w) of ``layer`` and
    the target score :math:`S_t`,

    .. math:: \\alpha_k = \\frac{1}{hw} \\sum_{ij} \\frac{\\partial S_t}{\\partial A^k_{ij}}, \\qquad
              L = \\operatorname{ReLU}\\Big(\\sum_k \\alpha_k A^k\\Big),

    and :math:`L` (h x w) is interpolated to the image size. Coarse (one value
    per activation pixel) but class-specific.

    Parameters
    ----------
    model : nn.Module
    image : torch.Tensor
        (C, H, W) or (1, C, H, W), values in [0, 1].
    layer : str
        A name from ``model.named_modules()``, usually the last conv block,
        e.g. ``"features.10"`` (the last ReLU) for the default
        :class:`~deepimaging.models.BasicCNN`.
    target : int, optional
        Default: the class predicted for ``image``.
    interpolate_mode : {"bilinear", "nearest"}
        How the h x w map is brought to H x W.

    Returns
    -------
    torch.Tensor
        (H, W) map on the CPU, >= 0.

    Notes
    -----
    Equals Captum's ``LayerGradCam(model, layer).attribute(x, target=t,
    relu_attributions=True)`` followed by
    ``LayerAttribution.interpolate(..., (H, W), interpolate_mode)``.

    References
    ----------
    R. R. Selvaraju et al., "Grad-CAM: visual explanations from deep networks
    via gradient-based localization", ICCV 2017.
    """
    check_choice(interpolate_mode, "interpolate_mode", {"bilinear", "nearest"})
    module = _get_layer(model, layer)
    image = _check_image(model, image)
    captured = {}

    def keep_output(_module, _inputs, output):
        captured["activation"] = output
        # Hand later layers a copy, so an in-place ReLU after this layer cannot change what we keep.
        return output.clone()

    with _eval_mode(model):
        device = _model_device(model)
        image = image.to(device).detach().requires_grad_(True)
        handle = module.register_forward_hook(keep_output)
        try:
            with torch.enable_grad():
                scores = model(image)
                target = _check_target(target, torch.softmax(scores.detach(), dim=1)[0])
                activation = captured["activation"]
                (gradient,) = torch.autograd.grad(scores[0, target], activation)
        finally:
            handle.remove()
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # alpha_k: (1, K, 1, 1)
    cam = torch.relu((weights * activation.detach()).sum(dim=1, keepdim=True))  # (1, 1, h, w)
    cam = nn.functional.interpolate(cam, size=image.shape[-2:], mode=interpolate_mode)
    return cam[0, 0].cpu()


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
    """Class-probability heatmaps: classify every window of a large image.

    Window :math:`(i, j)` covers rows :math:`[i s_y, i s_y + h)` and columns
    :math:`[j s_x, j s_x + w)`; only windows that lie fully inside the image
    are used, so there are :math:`\\lfloor (H - h)/s_y \\rfloor + 1` rows of
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
        hundreds or thousands.
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

    .. math:: f(x) = g\\Big(\\frac{1}{|\\Omega|} \\sum_{u \\in \\Omega} T(x)_u\\Big),

    (``model.features`` = trunk + ``AdaptiveAvgPool2d(1)`` + ``Flatten``,
    ``model.classifier`` = :math:`g`, and ``model(x)`` computes
    ``classifier(features(x))``, as :class:`~deepimaging.models.BasicCNN`)
    can instead run the trunk :math:`T` once on the whole image. Its output
    is downsampled by :math:`D`, the product of the strides in the trunk
    (:math:`2^{\\text{blocks}}` for BasicCNN), so a window of :math:`h \\times w`
    pixels at a multiple of :math:`D` covers exactly :math:`h/D \\times w/D`
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
    image = _check_image(model, image)[0]
    window_h, window_w = _pair(window, "window")
    if stride is None:
        stride = (max(1, window_h // 2), max(1, window_w // 2))
    stride_h, stride_w = _pair(stride, "stride")
    _, height, width = image.shape
    if window_h > height or window_w > width:
        raise ValueError(
            f"window must fit in the image: got a {window_h}x{window_w} window for a {height}x{width} image"
        )
    if method == "dense":
        return _dense_sliding_window(model, image, (window_h, window_w), (stride_h, stride_w))
    with _eval_mode(model):
        image = image.to(_model_device(model))
        # (C, rows, cols, h, w) -> (rows, cols, C, h, w): a view, nothing is copied yet.
        windows = image.unfold(1, window_h, stride_h).unfold(2, window_w, stride_w).permute(1, 2, 0, 3, 4)
        rows, cols = windows.shape[:2]
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
    with _eval_mode(model):
        feature_map = trunk(image.to(_model_device(model))[None])  # (1, F, ~H/D, ~W/D)
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

    ``image_size`` is (H, W); ``window`` and ``stride`` as given to :func:`sliding_window`
    (stride required here).
    """
    height, width = _pair(tuple(image_size), "image_size")
    window_h, window_w = _pair(window, "window")
    stride_h, stride_w = _pair(stride, "stride")
    if window_h > height or window_w > width:
        raise ValueError(
            f"window must fit in the image: got a {window_h}x{window_w} window for a {height}x{width} image"
        )
    rows, cols = (height - window_h) // stride_h + 1, (width - window_w) // stride_w + 1
    return _grid_boxes(rows, cols, (window_h, window_w), (stride_h, stride_w), (window_h, window_w))


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
        (K, rows, cols) from :func:`sliding_window`.
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
        (M, 4) ``(x_min, y_min, x_max, y_max)``, best score first.
    scores : torch.Tensor
        (M,)
    labels : torch.Tensor
        (M,) int64 class indices.
    """
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 3:
        raise ValueError(
            f"heatmaps must be a tensor (K, rows, cols) from sliding_window; got {shape_of(heatmaps)}"
        )
    check_number(threshold, "threshold", 0.0, 1.0)
    check_number(overlap, "overlap", 0.0, 1.0)
    n_classes = heatmaps.shape[0]
    if background is not None:
        check_int(background, "background", 0, n_classes - 1)
        foreground = [k for k in range(n_classes) if k != background]
        scores = 1 - heatmaps[background]
    else:
        foreground = list(range(n_classes))
        scores = heatmaps.amax(dim=0)
    labels = torch.tensor(foreground)[heatmaps[foreground].argmax(dim=0)]

    window, stride = _pair(window, "window"), _pair(stride, "stride")
    box_size = window if box_size is None else _pair(box_size, "box_size")
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

    Returns
    -------
    dict
        ``true_positives``, ``false_positives``, ``false_negatives``,
        ``precision``, ``recall``, ``mean_iou`` (over the matches, NaN if none),
        ``best_iou`` ((N,) best IoU of each true box with any detection) and
        ``matches`` (list of (detection index, true box index)).
    """
    check_number(iou_threshold, "iou_threshold", 0.0, 1.0)
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


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Run the block with ``model`` in eval mode, then restore every submodule's own mode."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _check_image(model, image) -> torch.Tensor:
    """A single image as (1, C, H, W), with the channel count the model expects when it says so."""
    check_images(image, "image", ndim=(3, 4))
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(
                f"image must be a single image (C, H, W) or (1, C, H, W); got a batch of shape "
                f"{tuple(image.shape)} (loop over the images, or pick one with images[i])"
            )
    else:
        image = image[None]
    expected = getattr(model, "in_channels", None)
    if expected is None and isinstance(getattr(model, "physics", None), nn.Identity):
        expected = getattr(getattr(model, "cnn", None), "in_channels", None)
    if expected is not None and image.shape[1] != expected:
        raise ValueError(
            f"image must have {expected} channel(s), as the model was built for; got {image.shape[1]} "
            f"in shape {tuple(image.shape)}"
        )
    return image.float()


def _check_target(target, probabilities: torch.Tensor) -> int:
    """The target class, default the predicted one, checked against the number of classes."""
    if target is None:
        return int(probabilities.argmax())
    return check_int(target, "target", 0, len(probabilities) - 1)


def _check_baselines(baselines, image) -> torch.Tensor:
    if isinstance(baselines, torch.Tensor):
        try:
            torch.broadcast_shapes(baselines.shape, image.shape[1:])
        except RuntimeError:
            raise ValueError(
                f"baselines must broadcast to the image shape {tuple(image.shape[1:])}, e.g. (C, 1, 1); "
                f"got shape {tuple(baselines.shape)}"
            ) from None
        return baselines.float()
    return torch.tensor(check_number(baselines, "baselines"))


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints >= 1 as (height, width)."""
    values = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(values) != 2:
        raise ValueError(f"{name} must be an int or a pair (height, width); got {value!r}")
    return check_int(values[0], name, 1), check_int(values[1], name, 1)


def _get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; an unknown name lists the available ones."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if not isinstance(name, str) or name not in modules:
        names = ", ".join(f"{n} ({type(m).__name__})" for n, m in modules.items())
        raise ValueError(f"unknown layer {name!r}; the model's layers are: {names}")
    return modules[name]
