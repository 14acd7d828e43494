"""Filters, activation maps and feature vectors: what is inside the network, layer by layer.

The lecture's route through a trained CNN:

1. look at the weights of the first layer (they act on pixels, so they can be
   shown as small images) and of higher layers (one grey tile per input channel);
2. look at the activation maps a layer produces for one image;
3. run the network on many images and keep the penultimate feature vectors;
4. compare nearest neighbours in pixel space with nearest neighbours in feature
   space, and map the features to 2-D with t-SNE (:mod:`.neighbors`).

Layers are chosen by the names of ``model.named_modules()``, e.g.
``"features.0"`` for the first convolution of :class:`~deepimaging.models.BasicCNN`
or ``"cnn.features.0"`` inside a :class:`~deepimaging.models.PhysicalModel`.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_images, check_int
from ..data.dataset import ImageDataset, as_float

__all__ = ["activation_maps", "conv_layer_names", "extract_features", "filter_weights", "get_layer"]

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
    _check_model(model)
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
                for i in range(0, max(len(images), 1), batch_size)  # no images: one empty batch, (0, D) out
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
        for i in range(0, max(len(images), 1), batch_size):  # no images: one empty batch, (0, ...) out
            model(as_float(images[i : i + batch_size].to(device)))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(outputs)


# --- shared checks ---------------------------------------------------------------------------


def _check_model(model):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")


def _images_of(data) -> torch.Tensor:
    """The images of ``data`` as stored (uint8 or float); batches go through ``as_float``."""
    if isinstance(data, ImageDataset):
        return data.storage
    return check_images(data, "data")
