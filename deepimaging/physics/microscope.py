"""A coherent Fourier microscope lit by an LED array: thin object, pupil, one intensity image per LED.

Each LED lights the sample with a tilted plane wave (:func:`.led_frequencies`).
The objective passes the spatial frequencies inside its pupil, so the field at
the sensor is the sample's spectrum, cut by the pupil, transformed back; the
sensor records its intensity. Different LEDs add incoherently
(:class:`.LEDWeighting`). :class:`FourierMicroscope` is that chain as a layer,
with a learnable pupil (e.g. a phase mask) and learnable LED brightnesses.
Gradients are exact: every step, the Fourier transforms included, is
differentiable as written (complex autograd), with no trick.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_choice, check_images, check_int, check_number, shape_of
from ._common import MAX_IMAGE_SIDE, check_image_shape, check_size_matches
from .illumination import LEDWeighting, led_frequencies, led_weighting

__all__ = ["FourierMicroscope", "circular_pupil", "coherent_image", "simulate_led_stack", "thin_object"]

# Bounds that keep the numbers finite: a phase delay of 100 pi is far beyond a thin sample, and an LED
# spacing of 10 cutoffs lights only dark-field images.
MAX_PHASE_STRENGTH = 100.0
MAX_LED_SPACING = 10.0


def thin_object(images: torch.Tensor, phase_strength: float = 1.0) -> torch.Tensor:
    r"""Treat stained-cell images as a thin sample: a complex transmittance per pixel.

    .. math:: t = \sqrt{g}\; e^{\,i \pi s (1 - g)}

    with ``g`` the grey level (mean over channels): the sample absorbs where it
    is dark (amplitude ``sqrt(g)``, so ``|t|^2 = g``) and delays light where it
    is thick, which a stained cell also is where it is dark (phase, scaled by
    ``s = phase_strength``; 0 gives a pure amplitude object).

    Returns (N, H, W) complex64.
    """
    check_images(images)
    s = check_number(phase_strength, "phase_strength", 0.0, MAX_PHASE_STRENGTH)
    grey = images.mean(1)
    return torch.polar(grey.sqrt(), math.pi * s * (1 - grey))


def circular_pupil(height: int, width: int, cutoff: float) -> torch.Tensor:
    """(H, W) 0/1 circular pupil in FFT order: passes spatial frequencies up to ``cutoff`` cycles per field.

    For an objective of numerical aperture NA at wavelength lambda, the cutoff is
    NA / lambda; in cycles per field, NA / lambda times the field width.
    """
    height = check_int(height, "height", 1, MAX_IMAGE_SIDE)
    width = check_int(width, "width", 1, MAX_IMAGE_SIDE)
    cutoff = check_number(cutoff, "cutoff", 0.0)
    fy = torch.fft.fftfreq(height) * height
    fx = torch.fft.fftfreq(width) * width
    return ((fy[:, None] ** 2 + fx[None, :] ** 2).sqrt() <= cutoff).float()


def coherent_image(objects: torch.Tensor, pupil: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    r"""Coherent imaging of a thin object under tilted plane waves (one per LED).

    .. math:: I_k = \big|\mathcal{F}^{-1}\{P \cdot \mathcal{F}\{t \cdot e^{2\pi i (f_{y,k} y / H + f_{x,k} x / W)}\}\}\big|^2

    Parameters
    ----------
    objects : torch.Tensor
        (N, H, W) complex transmittance ``t``.
    pupil : torch.Tensor
        (H, W) complex (or real) pupil function ``P`` in FFT order.
    frequencies : torch.Tensor
        (K, 2) LED frequencies (fy, fx) in cycles per field.

    Returns
    -------
    torch.Tensor
        (N, K, H, W) real intensities, one image per LED (not clipped).

    Notes
    -----
    When every frequency is a whole number of cycles per field (as
    :func:`led_frequencies` makes them), the tilt shifts the spectrum exactly:
    :math:`\mathcal{F}\{t\, e^{2\pi i f_k \cdot x}\}(f) = T(f - f_k)`, so

    .. math:: I_k = \big|\mathcal{F}^{-1}\{P(f + f_k)\, T(f)\}\big|^2

    (the two fields differ by the phase ramp :math:`e^{2\pi i f_k \cdot x}`, which
    the intensity drops). That takes one Fourier transform per object and one
    inverse per LED, where the equation above takes two per LED; it is what
    this function computes then.
    """
    if not isinstance(objects, torch.Tensor) or objects.ndim != 3:
        raise ValueError(f"objects must have shape (N, H, W); got {shape_of(objects)}")
    h, w = objects.shape[-2:]
    if not isinstance(pupil, torch.Tensor) or tuple(pupil.shape) != (h, w):
        raise ValueError(f"pupil must have shape {(h, w)} like the objects; got {shape_of(pupil)}")
    if not isinstance(frequencies, torch.Tensor) or frequencies.ndim != 2 or frequencies.shape[1] != 2:
        raise ValueError(
            f"frequencies must be a tensor of shape (K, 2), (fy, fx) per LED; got {shape_of(frequencies)}"
        )
    if torch.equal(frequencies, frequencies.round()):
        return _shifted_pupil_image(objects, pupil, frequencies)
    if objects.shape[0] == 0:  # the FFT refuses an empty batch: an empty batch in gives an empty batch out
        return objects.real.new_zeros(0, len(frequencies), h, w)
    real = objects.real.dtype  # the plane waves in the objects' precision
    y = torch.arange(h, device=objects.device, dtype=real)
    x = torch.arange(w, device=objects.device, dtype=real)
    freq = frequencies.to(objects.device, real)
    phase = 2 * math.pi * (freq[:, 0, None, None] * y[:, None] / h + freq[:, 1, None, None] * x[None, :] / w)
    waves = torch.polar(torch.ones_like(phase), phase)  # (K, H, W)
    field = torch.fft.ifft2(torch.fft.fft2(objects[:, None] * waves) * pupil)
    return field.real**2 + field.imag**2


def _shifted_pupil_image(
    objects: torch.Tensor, pupil: torch.Tensor, frequencies: torch.Tensor
) -> torch.Tensor:
    """:func:`coherent_image` for frequencies of whole cycles per field: the pupil shifted per LED."""
    h, w = objects.shape[-2:]
    if objects.shape[0] == 0:  # the FFT refuses an empty batch: an empty batch in gives an empty batch out
        return objects.real.new_zeros(0, len(frequencies), h, w)
    shift = frequencies.to(objects.device, torch.long)
    # P(f + f_k) in FFT order: row (m + fy_k) mod H, column (n + fx_k) mod W, one gather for all LEDs.
    rows = (torch.arange(h, device=objects.device) + shift[:, :1]) % h  # (K, H)
    cols = (torch.arange(w, device=objects.device) + shift[:, 1:]) % w  # (K, W)
    shifted = pupil[rows[:, :, None], cols[:, None, :]]  # (K, H, W)
    field = torch.fft.ifft2(torch.fft.fft2(objects)[:, None] * shifted)
    return field.real**2 + field.imag**2


class FourierMicroscope(nn.Module):
    r"""A coherent microscope with an LED array: thin object, tilted plane waves, pupil, intensity, LED sum.

    For each LED ``k``: object times tilted plane wave, Fourier transform,
    multiply by the pupil :math:`P = A\, e^{i\phi}\, \mathbb{1}[|f| \le f_c]`,
    inverse transform, intensity (see :func:`coherent_image`). LEDs add
    incoherently with learned non-negative weights (:class:`LEDWeighting`). The
    pupil amplitude ``A`` (initialised to 1) and phase ``phi`` (initialised to 0,
    i.e. in focus and aberration-free) are ``nn.Parameter`` s when
    ``learn_pupil``: the network can learn a phase mask (e.g. defocus) that
    makes its task easier. Intensities are clipped at 1 (sensor saturation;
    coherent edges ring slightly above the incident intensity).

    Parameters
    ----------
    image_shape : tuple
        (C, H, W) of the scene images (converted to a thin object by
        :func:`thin_object`; the channels are averaged).
    na : float
        Pupil cutoff as a fraction of the Nyquist frequency, in (0, 1].
    led_grid : int
        The LED array is ``led_grid x led_grid``.
    led_spacing : float
        Illumination frequency step between neighbouring LEDs as a fraction of
        the pupil cutoff; LEDs beyond the cutoff give dark-field images.
    phase_strength : float
        See :func:`thin_object`.
    output : {"sum", "stack"}
        "sum": (N, 1, H, W), the learned weighted sum; "stack": (N, K, H, W),
        one image per LED.
    learn_pupil : bool
        Pupil amplitude and phase as ``nn.Parameter`` s (True) or fixed buffers.

    Shape: input (N, C, H, W) in [0, 1]; output (N, 1, H, W) or (N, K, H, W) in [0, 1].
    """

    def __init__(
        self,
        image_shape: tuple,
        na: float = 0.5,
        led_grid: int = 3,
        led_spacing: float = 0.8,
        phase_strength: float = 1.0,
        output: str = "sum",
        learn_pupil: bool = True,
    ):
        super().__init__()
        _, h, w = check_image_shape(image_shape)
        self.image_size = (h, w)
        self.na = check_number(na, "na", 0.0, 1.0, low_open=True)
        self.output = check_choice(output, "output", ("sum", "stack"))
        self.phase_strength = check_number(phase_strength, "phase_strength", 0.0, MAX_PHASE_STRENGTH)
        cutoff = self.na * min(h, w) / 2
        # LEDs further out than a few times the cutoff only light dark-field images of nothing.
        step = round(check_number(led_spacing, "led_spacing", 0.0, MAX_LED_SPACING) * cutoff)
        self.register_buffer("aperture", circular_pupil(h, w, cutoff))
        self.register_buffer("frequencies", led_frequencies(led_grid, step))
        amplitude, phase = torch.ones(h, w), torch.zeros(h, w)
        if learn_pupil:
            self.pupil_amplitude, self.pupil_phase = nn.Parameter(amplitude), nn.Parameter(phase)
        else:
            self.register_buffer("pupil_amplitude", amplitude)
            self.register_buffer("pupil_phase", phase)
        self.leds = LEDWeighting(len(self.frequencies)) if output == "sum" else None

    @property
    def pupil(self) -> torch.Tensor:
        """(H, W) complex pupil function in FFT order (``torch.fft.fftshift`` it to display)."""
        return torch.polar(self.pupil_amplitude.abs() * self.aperture, self.pupil_phase)

    def led_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) single-LED intensity images in [0, 1]."""
        check_images(images)
        check_size_matches(images, *self.image_size, "FourierMicroscope")
        objects = thin_object(images, self.phase_strength)
        # led_frequencies gives whole cycles per field: the pupil-shift form of coherent_image, without
        # the check that reads the frequencies back from the device.
        return _shifted_pupil_image(objects, self.pupil, self.frequencies).clamp(0, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        stack = self.led_images(images)
        return stack if self.leds is None else led_weighting(stack, self.leds.weights)

    def extra_repr(self) -> str:
        return f"na={self.na}, leds={len(self.frequencies)}, output={self.output!r}"


@torch.no_grad()
def simulate_led_stack(
    data,
    led_grid: int = 3,
    na: float = 0.5,
    led_spacing: float = 0.8,
    phase_strength: float = 1.0,
    batch_size: int = 256,
):
    """Multi-LED image stacks of a dataset: each image becomes K = led_grid**2 single-LED images.

    Each scene image is treated as a thin amplitude/phase object
    (:func:`thin_object`) and imaged by a fixed :class:`FourierMicroscope` once
    per LED. The result is the input of :class:`LEDWeighting` (learned
    illumination) in front of a CNN with one input channel.

    Parameters
    ----------
    data : ImageDataset or torch.Tensor
        Scenes (N, C, H, W) in [0, 1].
    led_grid, na, led_spacing, phase_strength : see :class:`FourierMicroscope`.
    batch_size : int
        Images per FFT batch (memory).

    Returns
    -------
    ImageDataset or torch.Tensor
        Same type as ``data``, with images (N, K, H, W) in [0, 1] and the same labels.
    """
    from ..data.dataset import ImageDataset

    images = data.images if isinstance(data, ImageDataset) else data
    check_images(images)
    microscope = FourierMicroscope(
        tuple(images.shape[1:]), na, led_grid, led_spacing, phase_strength, output="stack", learn_pupil=False
    )
    batch_size = check_int(batch_size, "batch_size", 1)
    stack = torch.cat([microscope(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    if isinstance(data, ImageDataset):
        return ImageDataset(stack, data.labels, data.classes)
    return stack
