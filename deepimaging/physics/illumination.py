"""LED-array illumination: where each LED lights the sample from, and a learned weighting of the LEDs.

A programmable LED array under a microscope lights the sample from many
angles. Each LED is a (spatially coherent) tilted plane wave
(:func:`led_frequencies` gives its tilt); different LEDs are mutually
incoherent, so the image under several LEDs is the weighted sum of the
single-LED intensity images. Learning those weights is the course's
1x1-convolution layer (Horstmeyer et al., 2017, "Convolutional neural networks
that teach microscopes how to image").

The single-LED images themselves come from the coherent microscope in
:mod:`.microscope` (:func:`simulate_led_stack` makes them for a dataset).
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_images, check_int, shape_of
from ._common import MAX_CHANNELS

__all__ = ["LEDWeighting", "led_frequencies", "led_weighting"]

# A 33 x 33 array holds 1089 LEDs, far more than the course's microscopes.
MAX_LED_GRID = 33


def led_frequencies(grid: int = 3, spacing: int = 4) -> torch.Tensor:
    """(K, 2) illumination spatial frequencies (fy, fx) in cycles per field of a ``grid x grid`` LED array.

    The LED at row r, column c (centred on the optical axis) is a plane wave
    tilted so that it makes ``(r, c) * spacing`` cycles across the field; whole
    cycles keep the wave periodic on the grid, so the tilt shifts the spectrum
    exactly. The centre LED (normal incidence) has frequency (0, 0).
    """
    grid = check_int(grid, "led_grid", 1, MAX_LED_GRID)
    spacing = check_int(spacing, "led spacing", 0)
    offsets = torch.arange(grid) - (grid - 1) / 2
    fy, fx = torch.meshgrid(offsets, offsets, indexing="ij")
    return (torch.stack([fy.flatten(), fx.flatten()], 1) * spacing).round()


def led_weighting(stack: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""Incoherent sum of single-LED images: :math:`y_o = \sum_k w_{ok} I_k` (a 1x1 convolution).

    Parameters
    ----------
    stack : torch.Tensor
        (N, K, H, W) in [0, 1]: one image per LED.
    weights : torch.Tensor
        (O, K) non-negative LED brightnesses, one row per output image
        (several rows = several exposures with different patterns).

    Returns
    -------
    torch.Tensor
        (N, O, H, W); in [0, 1] when each row of ``weights`` sums to at most one.
    """
    check_images(stack, "stack")
    if not isinstance(weights, torch.Tensor) or weights.ndim != 2 or weights.shape[1] != stack.shape[1]:
        raise ValueError(
            f"weights must have shape (O, {stack.shape[1]}) for {stack.shape[1]} LEDs; got {shape_of(weights)}"
        )
    # A 1x1 convolution is a matrix product over the LED axis; einsum's backward is faster than conv2d's.
    return torch.einsum("ok,nkhw->nohw", weights.to(stack.dtype), stack)


class LEDWeighting(nn.Module):
    r"""Learned non-negative LED brightnesses, as a 1x1 convolution over a multi-LED stack.

    .. math:: w_{o\cdot} = \operatorname{softmax}(\theta_{o\cdot}), \qquad y_o = \sum_k w_{ok} I_k

    Gradient trick: reparameterisation; the softmax keeps every brightness
    non-negative (an LED cannot emit negative light) and the total at one (the
    exposure is normalised), so the output stays in [0, 1]. Initialised to
    equal brightness for all LEDs.

    Parameters
    ----------
    n_leds : int
        K, the input channels (one image per LED).
    out_channels : int
        O, number of illumination patterns (images the CNN receives).

    Shape: input (N, K, H, W) in [0, 1], output (N, O, H, W).
    """

    def __init__(self, n_leds: int, out_channels: int = 1):
        super().__init__()
        self.n_leds = check_int(n_leds, "n_leds", 1, MAX_CHANNELS)
        generator = torch.Generator().manual_seed(0)
        # Tiny random logits break the symmetry between several output patterns.
        self.logits = nn.Parameter(
            0.01
            * torch.randn(
                check_int(out_channels, "out_channels", 1, MAX_CHANNELS), n_leds, generator=generator
            )
        )

    @property
    def weights(self) -> torch.Tensor:
        """(O, K) LED brightnesses: non-negative, each row sums to one."""
        return torch.softmax(self.logits, dim=1)

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        check_images(stack, "stack", channels=self.n_leds)
        return led_weighting(stack, self.weights)

    def extra_repr(self) -> str:
        return f"n_leds={self.n_leds}, out_channels={self.logits.shape[0]}"
