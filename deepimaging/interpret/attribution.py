"""Which pixels matter: occlusion, saliency, SmoothGrad and Grad-CAM maps of one image.

The lecture's two ways to ask a trained CNN *where* it looked:

- **occlusion** (Zeiler & Fergus 2014): cover part of the image with a grey
  patch and record how much the probability of the class drops; slide the
  patch over the whole image. Needs only forward passes.
- **saliency** (Simonyan et al. 2014): the gradient of the class score with
  respect to every input pixel; one backward pass. SmoothGrad averages it over
  noisy copies; Grad-CAM weighs the activation maps of a conv layer by their
  mean gradient.

Sliding windows over large images and the detections made from them are in
:mod:`deepimaging.interpret.detection`.

Every function takes a single image (C, H, W) (or (1, C, H, W)) in [0, 1] and
returns maps on the CPU. The model runs in eval mode (batch norm uses its
running statistics, dropout is off) and is put back in the mode it was in.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_choice, check_int, check_number, check_single_image
from .._util import eval_mode, model_device, pair
from .features import get_layer

# The most bytes of SmoothGrad noise drawn at once (smoothgrad_samples noisy copies of the image,
# float32): 1 GiB. SmoothGrad uses tens of samples (Smilkov et al.: 50); 10**9 (a typo) would ask
# for terabytes.
MAX_NOISE_BYTES = 2**30

__all__ = ["grad_cam", "occlusion_map", "saliency_map"]


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
    image = check_single_image(model, image)
    _, channels, height, width = image.shape
    window_h, window_w = pair(sliding_window_shapes, "sliding_window_shapes")
    stride_h, stride_w = (window_h, window_w) if strides is None else pair(strides, "strides")
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

    with eval_mode(model):
        device = model_device(model)
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
    if not math.isfinite(check_number(noise_level, "noise_level", 0.0)):
        raise ValueError(f"noise_level must be a finite fraction of the value range; got {noise_level}")
    check_int(seed, "seed", 0)
    check_int(batch_size, "batch_size", 1)
    image = check_single_image(model, image)
    noise_bytes = smoothgrad_samples * image[0].numel() * 4
    if noise_bytes > MAX_NOISE_BYTES:
        raise ValueError(
            f"smoothgrad_samples {smoothgrad_samples} would draw {noise_bytes / 2**30:.1f} GiB of noise for a "
            f"{tuple(image.shape[1:])} image, more than {MAX_NOISE_BYTES // 2**30} GiB; SmoothGrad needs "
            "tens of samples (e.g. 50)"
        )
    with eval_mode(model):
        device = model_device(model)
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
    module = get_layer(model, layer)
    image = check_single_image(model, image)
    captured = {}

    def keep_output(_module, _inputs, output):
        captured["activation"] = output
        # Hand later layers a copy, so an in-place ReLU after this layer cannot change what we keep.
        return output.clone()

    with eval_mode(model):
        device = model_device(model)
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


# ----------------------------------------------------------------------------- helpers


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
        if not torch.all(torch.isfinite(baselines)):
            raise ValueError("baselines must be finite; got NaN or infinite values")
        return baselines.float()
    # An infinite fill value makes every occluded score NaN, and so the whole map.
    value = check_number(baselines, "baselines")
    if not math.isfinite(value):
        raise ValueError(f"baselines must be a finite number (a pixel value, e.g. 0.5); got {value}")
    return torch.tensor(value)
