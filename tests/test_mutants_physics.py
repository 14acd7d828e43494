"""Tests written to kill the mutants of ``deepimaging.physics`` that the physics tests let survive.

Each test names the mutant it was written for (``SAMPLE=60 bash benchmarks/mutation.sh physics``,
see benchmarks/mutation_results.md) and checks a property against an independent oracle: NumPy
doing the documented formula by hand, or the documented contract that bad input is refused with an
error naming the parameter.
"""

import numpy as np
import pytest
import torch

from deepimaging.physics import (
    BitAllocation,
    FourierMicroscope,
    LearnedPSF,
    ShiftVariantBlur,
    circular_pupil,
    quantize_per_pixel,
    saturate,
    shift_variant_blur,
)
from deepimaging.physics.quantization import MAX_BITS
from deepimaging.physics.sampling import foveated_pixel_sizes, variable_pixels


def test_quantize_per_pixel_matches_the_formula_pixel_by_pixel():
    # quantization.x_quantize_per_pixel__mutmut_3 (a valid bits map refused) and _29 (x * step for x / step).
    rng = np.random.default_rng(0)
    images = rng.random((2, 3, 4, 5))
    bits = rng.integers(1, 9, size=(4, 5)).astype(float)
    levels = 2.0**bits - 1  # a b-bit pixel has 2^b - 1 steps between 0 and 1
    expected = np.round(images * levels) / levels
    got = quantize_per_pixel(torch.tensor(images), torch.tensor(bits))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(
    "bits_map", [np.full((4, 5), 3.0), torch.full((5, 4), 3.0)], ids=["array", "wrong shape"]
)
def test_quantize_per_pixel_refuses_a_bits_map_that_is_not_an_h_by_w_tensor(bits_map):
    # quantization.x_quantize_per_pixel__mutmut_11: the message must say what arrived.
    arrived = "ndarray" if isinstance(bits_map, np.ndarray) else r"\(5, 4\)"
    with pytest.raises(ValueError, match=rf"bits_map must be a tensor of shape \(4, 5\); got .*{arrived}"):
        quantize_per_pixel(torch.rand(1, 1, 4, 5), bits_map)


def test_saturate_is_a_clip_to_zero_and_the_full_well():
    # noise.x_saturate__mutmut_11 (the bounds passed as the parameter's name): np.clip is the oracle.
    values = torch.linspace(-2.0, 7.0, 19)
    np.testing.assert_array_equal(saturate(values, full_well=4.0).numpy(), np.clip(values.numpy(), 0.0, 4.0))
    with pytest.raises(ValueError, match="full_well"):
        saturate(values, full_well=-1.0)


def test_bit_allocation_refuses_more_bits_than_a_pixel_can_have():
    # bit_allocation.xǁBitAllocationǁ__init____mutmut_13: the upper bound MAX_BITS dropped.
    with pytest.raises(ValueError, match="max_bits"):
        BitAllocation(mean_bits=2, image_shape=(1, 4, 4), max_bits=MAX_BITS + 1)


def test_bit_allocation_with_no_choice_gives_every_pixel_the_one_depth():
    # bit_allocation.xǁBitAllocationǁ_continuous_bits__mutmut_6: min_bits == max_bits leaves one map.
    layer = BitAllocation(mean_bits=3, image_shape=(1, 4, 6), max_bits=3, min_bits=3)
    np.testing.assert_array_equal(layer.bits_map().numpy(), np.full((4, 6), 3.0))


def test_circular_pupil_names_cutoff_when_it_is_negative():
    # illumination.x_circular_pupil__mutmut_32.
    with pytest.raises(ValueError, match="^cutoff must be"):
        circular_pupil(8, 8, -1.0)


def test_fourier_microscope_names_output_when_it_is_unknown():
    # illumination.xǁFourierMicroscopeǁ__init____mutmut_35.
    with pytest.raises(ValueError, match="^output must be one of"):
        FourierMicroscope((1, 8, 8), output="mean")


def test_learned_psf_names_init_sigma_when_it_is_not_positive():
    # optics.xǁLearnedPSFǁ__init____mutmut_12.
    with pytest.raises(ValueError, match="^init_sigma must be"):
        LearnedPSF(5, init_sigma=-1.0)


def test_variable_pixels_refuses_a_pixel_size_that_divides_the_width_but_not_the_height():
    # sampling.x__check_pixel_sizes__mutmut_17 (the height's test replaced by the width's): 4 divides 8, not 6.
    with pytest.raises(ValueError, match="dividing the image size"):
        variable_pixels(torch.rand(1, 1, 6, 8), torch.full((6, 8), 4))


def test_foveated_pixel_sizes_names_width_when_it_is_zero():
    # sampling.x_foveated_pixel_sizes__mutmut_15: without its name and bound a width of 0 passed.
    with pytest.raises(ValueError, match="^width must be"):
        foveated_pixel_sizes(8, 0)


@pytest.mark.parametrize("psfs", [[[[[1.0]]]], torch.ones(2, 3, 3)], ids=["list", "3-D tensor"])
def test_shift_variant_blur_refuses_psfs_that_are_not_a_4d_tensor(psfs):
    # shift_variant.x_shift_variant_blur__mutmut_19 ("not a tensor and not 4-D" for "or").
    with pytest.raises(ValueError, match=r"^psfs must have shape \(gy, gx, k, k\)"):
        shift_variant_blur(torch.rand(1, 1, 8, 8), psfs)


def test_shift_variant_blur_layer_names_grid_when_it_is_not_a_pair():
    # shift_variant.xǁShiftVariantBlurǁ__init____mutmut_27 (the message dropped).
    with pytest.raises(ValueError, match=r"^grid must be \(rows, columns\) of zones; got \(2,\)"):
        ShiftVariantBlur(size=3, grid=(2,))
