"""Figures for the physical layers: what a layer does to images, PSFs, learned masks and tiles, pupils.

The learned bits map of ``BitAllocation`` is drawn by :func:`deepimaging.plots.plot_bits_map`.

Every function takes ``ax=None`` (or builds a Figure for grids) and returns it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ._common import as_plot_tensor, check_inches, check_panels, get_ax, imshow

__all__ = [
    "physics_gallery",
    "plot_filter_tile",
    "plot_pupil",
    "plot_psf",
    "plot_sensor_mask",
]


def _displayable(image: torch.Tensor) -> torch.Tensor:
    """A (C, H, W) image imshow can take: 1 or 3 channels (more channels: their mean, in grey)."""
    image = image.detach().cpu().float()
    if image.shape[0] in (1, 3):
        return image.clamp(0, 1)
    return image.mean(0, keepdim=True).clamp(0, 1)


def physics_gallery(images, layers: dict, *, size: float = 1.6, title: str | None = None):
    """Show what each physical layer does: one row per image, one column per layer (the first is the scene).

    Parameters
    ----------
    images : torch.Tensor
        Scenes (N, C, H, W) in [0, 1]; keep N small (rows).
    layers : dict
        Column title (say the parameter, e.g. ``"4 bits"``) -> layer (an
        ``nn.Module`` or function of images). Each runs in eval mode without
        gradients. Outputs with more than 3 channels are shown as their mean.
    size : float
        Inches per panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            f"images must be a tensor of shape (N, C, H, W); got {getattr(images, 'shape', images)}"
        )
    if not layers:
        raise ValueError("layers must name at least one layer")
    check_panels(len(images) * (len(layers) + 1), "images x layers")
    size = check_inches(size)
    outputs = {"scene": images}
    with torch.no_grad():
        for name, layer in layers.items():
            if isinstance(layer, torch.nn.Module):
                was_training = layer.training
                layer.eval()
                outputs[name] = layer(images)
                layer.train(was_training)
            else:
                outputs[name] = layer(images)
    rows, cols = len(images), len(outputs)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.5), squeeze=False)
    for j, (name, out) in enumerate(outputs.items()):
        for i in range(rows):
            imshow(axes[i, j], _displayable(out[i]), name if i == 0 else None)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_psf(psf, ax=None, title: str = "point-spread function"):
    """Show a (k, k) PSF as an image with a colour bar; axes in pixels from the centre."""
    psf = as_plot_tensor(psf, "psf", "(k, k)", 2).float()
    ax = get_ax(ax, (4, 3.4))
    r = psf.shape[-1] // 2
    shown = ax.imshow(psf.numpy(), cmap="magma", extent=(-r - 0.5, r + 0.5, r + 0.5, -r - 0.5))
    ax.figure.colorbar(shown, ax=ax, label="share of the light")
    ax.set_xlabel("x offset (pixels)")
    ax.set_ylabel("y offset (pixels)")
    ax.set_title(title)
    return ax


def plot_sensor_mask(layer_or_mask, ax=None, title: str = "kept pixels"):
    """Show the binary mask of a :class:`~deepimaging.physics.SparseMask` (or an (H, W) mask): white = kept."""
    mask = layer_or_mask.mask() if hasattr(layer_or_mask, "mask") else layer_or_mask
    mask = as_plot_tensor(mask, "layer_or_mask", "(H, W)", 2).float()
    ax = get_ax(ax, (3.4, 3.4))
    ax.imshow(mask.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(f"{title} ({int(mask.sum())} of {mask.numel()})")
    return ax


def plot_filter_tile(tile, ax=None, title: str = "filter tile"):
    """Show a (3, K, K) colour filter tile (e.g. ``LearnedCFA.tile()`` or ``bayer_tile()``) in its colours."""
    tile = as_plot_tensor(tile, "tile", "(3, K, K)", 3).float()
    if tile.shape[0] != 3:
        raise ValueError(f"tile must have shape (3, K, K) to be shown in colour; got {tuple(tile.shape)}")
    ax = get_ax(ax, (3, 3))
    ax.imshow(tile.permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_xlabel("tile column")
    ax.set_ylabel("tile row")
    ax.set_xticks(range(tile.shape[-1]))
    ax.set_yticks(range(tile.shape[-1]))
    ax.set_title(title)
    return ax


def plot_pupil(microscope_or_pupil, title: str = "pupil"):
    """Amplitude and phase of a complex pupil (FFT order, as in ``FourierMicroscope.pupil``), centred.

    Returns a Figure with two panels; axes in cycles per field.
    """
    pupil = getattr(microscope_or_pupil, "pupil", microscope_or_pupil)
    pupil = torch.fft.fftshift(as_plot_tensor(pupil, "microscope_or_pupil", "(H, W)", 2, complex_ok=True))
    h, w = pupil.shape
    extent = (-w / 2, w / 2, h / 2, -h / 2)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.2))
    a = left.imshow(pupil.abs().numpy(), cmap="gray", extent=extent)
    fig.colorbar(a, ax=left, label="amplitude")
    inside = pupil.abs() > 0
    phase = torch.where(inside, pupil.angle(), torch.nan)
    p = right.imshow(phase.numpy(), cmap="twilight", extent=extent)
    fig.colorbar(p, ax=right, label="phase (rad)")
    for ax, name in ((left, "amplitude"), (right, "phase")):
        ax.set_xlabel("fx (cycles per field)")
        ax.set_ylabel("fy (cycles per field)")
        ax.set_title(f"{title}: {name}")
    fig.tight_layout()
    return fig
