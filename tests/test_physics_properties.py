"""Hostile input, generated: every public physics function and layer, one parameter at a time.

Each call either returns a finite tensor of the documented shape, or raises a
``ValueError``/``TypeError`` whose message names the parameter that was wrong.
Nothing else is acceptable: no NaN image, no ``OverflowError``, no
``IndexError`` from deep inside torch, no allocation of gigabytes.
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepimaging.physics as P

torch.set_num_threads(1)

IMAGES = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))

# Numbers a hostile or careless user passes: non-finite, huge, tiny, negative, zero, not numbers at all.
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0, -1, 1e300, -1e300, 1e-300, 2**63, math.nan, math.inf, -math.inf, 0.5, 3, 7]),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
)


def _filled(value, shape=(2, 3, 8, 8)):
    return torch.full(shape, value, dtype=torch.float64)  # float64 holds every generated float


# Tensors that are not a batch of images in [0, 1]: wrong values, shapes, dtypes.
TENSORS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(_filled),
    st.sampled_from(
        [
            torch.empty(0),
            torch.zeros(3, 8, 8),
            torch.zeros(2, 3, 8),
            torch.zeros(1, 1, 2, 3, 8, 8),
            torch.zeros(2, 3, 8, 8, dtype=torch.long),
            torch.zeros(2, 3, 8, 8, dtype=torch.complex64),
            torch.zeros(2, 3, 0, 8),
            torch.zeros(2, 3, 1, 1),
        ]
    ),
    NUMBERS,
)

# (call with the generated value, names a message may give, the shape of a successful result)
NUMBER_CALLS = {
    "quantize bits": (lambda v: P.quantize(IMAGES, v), ["bits"], IMAGES.shape),
    "Quantize bits": (lambda v: P.Quantize(v)(IMAGES), ["bits"], IMAGES.shape),
    "shot_noise photons": (lambda v: P.shot_noise(IMAGES, v), ["photons"], IMAGES.shape),
    "ShotNoise photons": (lambda v: P.ShotNoise(v)(IMAGES), ["photons"], IMAGES.shape),
    "Sensor photons": (lambda v: P.Sensor(v)(IMAGES), ["photons"], IMAGES.shape),
    "Sensor read_noise": (lambda v: P.Sensor(50.0, read_noise=v)(IMAGES), ["read_noise"], IMAGES.shape),
    "Sensor full_well": (lambda v: P.Sensor(50.0, full_well=v)(IMAGES), ["full_well"], IMAGES.shape),
    "Sensor bits": (lambda v: P.Sensor(50.0, bits=v)(IMAGES), ["bits"], IMAGES.shape),
    "Sensor seed": (lambda v: P.Sensor(50.0, seed=v)(IMAGES), ["seed"], IMAGES.shape),
    "read_noise sigma": (lambda v: P.read_noise(IMAGES, v), ["sigma"], IMAGES.shape),
    "ReadNoise sigma": (lambda v: P.ReadNoise(v)(IMAGES), ["sigma"], IMAGES.shape),
    "saturate full_well": (lambda v: P.saturate(IMAGES, v), ["full_well"], IMAGES.shape),
    "gaussian_psf size": (lambda v: P.gaussian_psf(v, 1.0), ["psf size"], None),
    "gaussian_psf sigma": (lambda v: P.gaussian_psf(5, v), ["sigma"], (5, 5)),
    "defocus_psf radius": (lambda v: P.defocus_psf(5, v), ["radius"], (5, 5)),
    "airy_psf radius": (lambda v: P.airy_psf(5, v), ["radius"], (5, 5)),
    "GaussianBlur sigma": (lambda v: P.GaussianBlur(v)(IMAGES), ["sigma", "psf size"], IMAGES.shape),
    "LearnedPSF size": (lambda v: P.LearnedPSF(v)(IMAGES), ["psf size"], IMAGES.shape),
    "LearnedPSF init_sigma": (lambda v: P.LearnedPSF(5, init_sigma=v)(IMAGES), ["sigma"], IMAGES.shape),
    "ShiftVariantBlur size": (lambda v: P.ShiftVariantBlur(size=v)(IMAGES), ["psf size"], IMAGES.shape),
    "ShiftVariantBlur init_sigma": (
        lambda v: P.ShiftVariantBlur(size=3, init_sigma=v)(IMAGES),
        ["init_sigma"],
        IMAGES.shape,
    ),
    "bin_pixels factor": (lambda v: P.bin_pixels(IMAGES, v), ["factor"], IMAGES.shape),
    "Binning factor": (lambda v: P.Binning(v)(IMAGES), ["factor"], IMAGES.shape),
    "foveated_pixel_sizes height": (lambda v: P.foveated_pixel_sizes(v, 8), ["height"], lambda v: (v, 8)),
    "SparseMask fraction": (lambda v: P.SparseMask(v, (3, 8, 8))(IMAGES), ["fraction"], IMAGES.shape),
    "SparseMask temperature": (
        lambda v: P.SparseMask(0.5, (3, 8, 8), method="bernoulli", temperature=v)(IMAGES),
        ["temperature"],
        IMAGES.shape,
    ),
    "LearnedCFA tile_size": (lambda v: P.LearnedCFA(v)(IMAGES), ["tile_size"], IMAGES.shape),
    "LearnedCFA temperature": (
        lambda v: P.LearnedCFA(2, temperature=v)(IMAGES),
        ["temperature"],
        IMAGES.shape,
    ),
    "BitAllocation mean_bits": (lambda v: P.BitAllocation(v, (3, 8, 8))(IMAGES), ["mean_bits"], IMAGES.shape),
    "BitAllocation logit_scale": (
        lambda v: P.BitAllocation(2.0, (3, 8, 8), logit_scale=v)(IMAGES),
        ["logit_scale"],
        IMAGES.shape,
    ),
    "LearnedDiscretization bits": (
        lambda v: P.LearnedDiscretization(v, (3, 8, 8))(IMAGES),
        ["bits"],
        IMAGES.shape,
    ),
    "FourierMicroscope na": (lambda v: P.FourierMicroscope((3, 8, 8), v)(IMAGES), ["na"], (2, 1, 8, 8)),
    "FourierMicroscope led_spacing": (
        lambda v: P.FourierMicroscope((3, 8, 8), led_spacing=v)(IMAGES),
        ["led_spacing"],
        (2, 1, 8, 8),
    ),
    "FourierMicroscope phase_strength": (
        lambda v: P.FourierMicroscope((3, 8, 8), phase_strength=v)(IMAGES),
        ["phase_strength"],
        (2, 1, 8, 8),
    ),
    "LEDWeighting n_leds": (lambda v: P.LEDWeighting(v)(torch.rand(2, 3, 8, 8)), ["n_leds", "stack"], None),
    "ExposureMosaic exposures": (lambda v: P.ExposureMosaic([v] * 4)(IMAGES), ["exposures"], IMAGES.shape),
}
for _name, _spec in P.LAYERS.items():
    if _spec.parameter is not None:
        NUMBER_CALLS[f"make_layer {_name}"] = (
            lambda v, name=_name: P.make_layer(name, v, (3, 8, 8))(IMAGES),
            [_spec.parameter],
            None,
        )

TENSOR_CALLS = {
    "poisson_sample rates": (lambda t: P.poisson_sample(t), ["rates"]),
    "blur psf": (lambda t: P.blur(IMAGES, t), ["psf"]),
    "shift_variant_blur psfs": (lambda t: P.shift_variant_blur(IMAGES, t), ["psfs", "psf size"]),
    "exposure_mosaic exposures": (lambda t: P.exposure_mosaic(IMAGES, t), ["exposures"]),
    "quantize_per_pixel bits_map": (lambda t: P.quantize_per_pixel(IMAGES, t), ["bits_map"]),
    "variable_pixels pixel_sizes": (lambda t: P.variable_pixels(IMAGES, t), ["pixel_sizes", "pixel sizes"]),
    "filter_mosaic tile": (lambda t: P.filter_mosaic(IMAGES, t), ["tile"]),
}
for _name in sorted(set(P.LAYERS) - {"identity"}):  # identity passes anything through, by definition
    _shape = (9, 8, 8) if _name == "led_weighting" else (3, 8, 8)
    _value = {"bit_allocation": 2.0, "learned_psf": 3, "binning": 2, "variable_pixels": 2}.get(_name, 1)
    _value = None if P.LAYERS[_name].parameter is None else _value
    if _name in ("sparse_mask", "microscope"):
        _value = 0.5
    TENSOR_CALLS[f"{_name} images"] = (
        lambda t, name=_name, shape=_shape, value=_value: P.make_layer(name, value, shape)(t),
        ["images", "stack", "built for images"],
    )


def _check_outcome(call, value, names, shape):
    try:
        result = call(value)
    except (ValueError, TypeError) as error:
        assert any(name in str(error) for name in names), f"message does not name {names}: {error}"
        return
    assert isinstance(result, torch.Tensor)
    assert bool(torch.isfinite(result).all()), f"non-finite result for {value!r}"
    if callable(shape):  # a shape that depends on the value given (e.g. a map's height)
        shape = shape(value)
    if shape is not None:
        assert tuple(result.shape) == tuple(shape)


FAST = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("label", list(NUMBER_CALLS))
@FAST
@given(value=NUMBERS)
def test_a_bad_number_gives_a_finite_result_or_an_error_naming_the_parameter(label, value):
    call, names, shape = NUMBER_CALLS[label]
    _check_outcome(call, value, names, shape)


@pytest.mark.parametrize("label", list(TENSOR_CALLS))
@FAST
@given(value=TENSORS)
def test_a_bad_tensor_gives_a_finite_result_or_an_error_naming_the_parameter(label, value):
    call, names = TENSOR_CALLS[label]
    _check_outcome(call, value, names, None)
