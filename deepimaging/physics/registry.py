"""The table of physical layers for parameter sweeps (:data:`LAYERS`) and the factory :func:`make_layer`.

``make_layer(name, value, image_shape)`` builds a layer whose one swept
parameter is ``value``; ``LAYERS[name]`` (a :class:`.LayerSpec`) says which
parameter that is, its type and its allowed range. :mod:`deepimaging.study`
and the command line build their layers this way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import check_image_shape
from .bit_allocation import BitAllocation
from .illumination import LEDWeighting
from .layer_spec import LayerSpec
from .microscope import FourierMicroscope
from .mosaic import MAX_EXPOSURE, BayerMosaic, ExposureMosaic, LearnedCFA
from .noise import MAX_PHOTONS, MIN_PHOTONS, Sensor, ShotNoise
from .optics import MIN_WIDTH, Blur, GaussianBlur, LearnedPSF, airy_psf, defocus_psf
from .quantization import MAX_BITS, LearnedDiscretization, Quantize
from .sampling import Binning, SparseMask, VariablePixelSensor
from .shift_variant import ShiftVariantBlur

__all__ = ["LAYERS", "describe_layer", "make_layer", "output_shape"]


def _min_side(shape, options=None):
    return min(shape[1], shape[2])


def _refuse_channels(name: str, channels: int, image_shape):
    """A layer made for ``channels``-channel scenes, asked for others: refused when it is built, not later."""
    raise ValueError(
        f"layer {name!r} needs images with {channels} channels (RGB); got image_shape {tuple(image_shape)}"
    )


_SPECS = [
    LayerSpec(
        "identity",
        None,
        None,
        None,
        None,
        "the scene itself, an ideal sensor",
        lambda v, s, **o: nn.Identity(),
    ),
    LayerSpec(
        "quantize",
        "bits",
        int,
        1,
        MAX_BITS,
        "uniform quantization to 2**bits levels (sensor bit depth)",
        lambda v, s, **o: Quantize(v, **o),
    ),
    LayerSpec(
        "learned_discretization",
        "bits",
        int,
        1,
        MAX_BITS,
        "learned per-pixel gain and clip thresholds, then quantization to bits",
        lambda v, s, **o: LearnedDiscretization(v, s, **o),
    ),
    LayerSpec(
        "bit_allocation",
        "mean_bits",
        float,
        1,
        lambda s, o: o.get("max_bits", 8),
        "learned per-pixel bit depth with a budget of mean_bits bits per pixel (max_bits option, default 8)",
        lambda v, s, **o: BitAllocation(v, s, **o),
    ),
    LayerSpec(
        "gaussian_blur",
        "sigma",
        float,
        MIN_WIDTH,
        lambda s, o: (_min_side(s) - 1) / 6,
        "Gaussian PSF of width sigma pixels (kernel 2*ceil(3 sigma)+1)",
        lambda v, s, **o: GaussianBlur(v, **o),
    ),
    LayerSpec(
        "defocus_blur",
        "radius",
        float,
        0,
        lambda s, o: (_min_side(s) - 1) / 2,
        "defocus: uniform disk PSF of the given radius in pixels",
        lambda v, s, **o: Blur(defocus_psf(2 * math.ceil(v) + 1, v), **o),
    ),
    LayerSpec(
        "airy_blur",
        "radius",
        float,
        MIN_WIDTH,
        lambda s, o: (_min_side(s) - 1) / 4,
        "diffraction limit: Airy PSF whose first dark ring has the given radius in pixels",
        lambda v, s, **o: Blur(airy_psf(2 * math.ceil(2 * v) + 1, v), **o),
    ),
    LayerSpec(
        "learned_psf",
        "psf_size",
        int,
        1,
        _min_side,
        "learnable PSF (non-negative, sums to one) of odd size",
        lambda v, s, **o: LearnedPSF(v, **o),
        odd=True,
    ),
    LayerSpec(
        "shift_variant_blur",
        "zones",
        int,
        1,
        8,
        "learnable PSFs on a zones x zones grid, blended across the field",
        lambda v, s, **o: ShiftVariantBlur(grid=(v, v), **o),
    ),
    LayerSpec(
        "binning",
        "factor",
        int,
        1,
        _min_side,
        "pixel binning: factor x factor pixels become one",
        lambda v, s, **o: Binning(v, **o),
        divides_size=True,
        output="same shape by default (resize=False gives H/factor x W/factor)",
    ),
    LayerSpec(
        "variable_pixels",
        "largest_pixel",
        int,
        1,
        _min_side,
        "foveated sensor: 1-pixel pixels in the centre, larger ones outwards, powers of 2 up to this size",
        lambda v, s, **o: VariablePixelSensor(s, sizes=[2**i for i in range(int(math.log2(v)) + 1)], **o),
        divides_size=True,
        power_of_two=True,
    ),
    LayerSpec(
        "noise",
        "photons",
        float,
        MIN_PHOTONS,
        MAX_PHOTONS,
        "Poisson shot noise with photons photo-electrons at intensity 1",
        lambda v, s, **o: ShotNoise(v, **o),
    ),
    LayerSpec(
        "sensor",
        "photons",
        float,
        MIN_PHOTONS,
        MAX_PHOTONS,
        "camera sensor: shot noise, read noise (2 e-), full-well saturation, 8-bit ADC (options change them)",
        lambda v, s, **o: Sensor(v, **o),
    ),
    LayerSpec(
        "bayer",
        None,
        None,
        None,
        None,
        "Bayer RGGB colour filter array (RGB scenes)",
        lambda v, s, **o: BayerMosaic(**o) if s[0] == 3 else _refuse_channels("bayer", 3, s),
        output="same shape (output='raw' gives 1 channel)",
    ),
    LayerSpec(
        "learned_cfa",
        "tile_size",
        int,
        1,
        _min_side,
        "learnable colour filter array with a K x K tile",
        lambda v, s, **o: LearnedCFA(v, s[0], **o),
        output="same shape (output='raw' gives 1 channel)",
    ),
    LayerSpec(
        "exposure_mosaic",
        "max_exposure",
        float,
        1,
        MAX_EXPOSURE,
        "HDR: 2x2 exposure mosaic 1 .. max_exposure (geometric), with saturation",
        lambda v, s, **o: ExposureMosaic([v ** (i / 3) for i in range(4)], **o),
    ),
    LayerSpec(
        "sparse_mask",
        "fraction",
        float,
        0,
        1,
        "learnable sparse sensor keeping this fraction of pixels",
        lambda v, s, **o: SparseMask(v, s, **o),
        low_open=True,
    ),
    LayerSpec(
        "led_weighting",
        None,
        None,
        None,
        None,
        "learned non-negative weighting of a multi-LED stack (input channels = LEDs)",
        lambda v, s, **o: LEDWeighting(s[0], **o),
        output="(N, 1, H, W) by default (out_channels option)",
    ),
    LayerSpec(
        "microscope",
        "na",
        float,
        0,
        1,
        "coherent Fourier microscope, 3x3 LEDs, learnable pupil and LED weights; na as a fraction of Nyquist",
        lambda v, s, **o: FourierMicroscope(s, v, **o),
        low_open=True,
        output="(N, 1, H, W) grey (output='stack' gives one channel per LED)",
    ),
]

LAYERS: dict = {spec.name: spec for spec in _SPECS}
"""Registered layers by name: :class:`LayerSpec` each."""


def _spec(name) -> LayerSpec:
    if name not in LAYERS:
        raise ValueError(f"unknown physical layer {name!r}; valid names: {', '.join(LAYERS)}")
    return LAYERS[name]


def describe_layer(name: str, image_shape=(3, 64, 64)) -> str:
    """One line on a registered layer: its swept parameter, type, allowed range and what it does."""
    return _spec(name).describe(tuple(image_shape))


def make_layer(name: str, value=None, image_shape=(3, 64, 64), **options) -> nn.Module:
    """Build the registered layer ``name`` with its swept parameter set to ``value``.

    Parameters
    ----------
    name : str
        A key of :data:`LAYERS` (``describe_layer(name)`` explains it).
    value : int or float
        The swept parameter (ignored by layers without one, e.g. "identity").
    image_shape : tuple
        (C, H, W) of the scene images; layers with per-pixel parameters need it.
    **options
        Passed to the layer's constructor (e.g. ``bits=10`` for "sensor").

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones) or ``value`` outside the
        allowed range (the message names the parameter, range and value).

    Examples
    --------
    >>> make_layer("quantize", 4)
    Quantize(bits=4)
    """
    spec = _spec(name)
    image_shape = check_image_shape(image_shape)
    value = spec.check(value, image_shape, options)
    return spec.build(value, image_shape, **options)


@torch.no_grad()
def output_shape(layer: nn.Module, image_shape=(3, 64, 64)) -> tuple:
    """(C', H', W') a layer produces from (C, H, W) images, found by running a grey image through it."""
    image_shape = check_image_shape(image_shape)
    was_training = layer.training
    layer.eval()
    try:
        return tuple(layer(torch.full((1, *image_shape), 0.5)).shape[1:])
    finally:
        layer.train(was_training)
