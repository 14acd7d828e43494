"""Where quantization puts the values exactly halfway between two levels, worked out by hand.

``quantize(x, b)`` is ``round(x (2^b - 1)) / (2^b - 1)`` with ``torch.round``, which
rounds a half to the even integer (IEEE 754 round-half-to-even, as NumPy and
Python's ``round``). Its docstring states the one-bit case: ``y = 1`` only where
``x > 1/2``, so ``x = 1/2`` reads 0. These tests keep the boundary behaviour
checked by hand, without comparing with any other implementation.
"""

import pytest
import torch

from deepimaging import physics


def even_neighbour(k: int) -> int:
    """Of the two integers k and k + 1 around the tie k + 1/2, the even one."""
    return k if k % 2 == 0 else k + 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16])
def test_one_half_goes_to_the_even_level(bits, dtype):
    """x = 1/2 gives x (2^b - 1) = 2^(b-1) - 1/2 exactly: a tie between 2^(b-1) - 1 and 2^(b-1)."""
    levels = 2**bits - 1
    k = 2 ** (bits - 1) - 1
    expected = even_neighbour(k) / levels  # 0 for one bit (the threshold detector), 2^(b-1) / levels else
    x = torch.full((1, 1, 1, 1), 0.5, dtype=dtype)
    assert physics.quantize(x, bits).item() == pytest.approx(expected, rel=1e-6)
    assert physics.Quantize(bits)(x).item() == pytest.approx(expected, rel=1e-6)


def test_one_bit_is_a_threshold_detector_that_fires_only_above_one_half():
    """The docstring's one-bit rule, y = 1 where x > 1/2, at the threshold and one float step either side."""
    half = torch.tensor(0.5)
    x = torch.stack(
        [torch.nextafter(half, torch.tensor(0.0)), half, torch.nextafter(half, torch.tensor(1.0))]
    )
    assert physics.quantize(x.view(1, 1, 1, 3), 1).flatten().tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_every_exact_tie_goes_to_the_even_level(bits, dtype):
    """Every midpoint (k + 1/2) / (2^b - 1) that the dtype hits exactly, for odd and even k.

    Rounding ties up (floor(v + 1/2)) agrees with round-half-to-even for odd k and
    differs for even k, so both kinds must be among the ties checked.
    """
    levels = 2**bits - 1
    k = torch.arange(levels, dtype=torch.int64)
    x = ((2 * k + 1).to(dtype) / (2 * levels)).view(1, 1, 1, -1)
    is_tie = (x.flatten() * levels) == (k.to(dtype) + 0.5)  # the product the layer rounds is exactly k + 1/2
    ties = k[is_tie]
    assert (ties % 2 == 0).any() and (ties % 2 == 1).any(), "need ties with even and odd lower neighbours"
    got = physics.quantize(x, bits).flatten()[is_tie]
    expected = torch.tensor([even_neighbour(int(t)) / levels for t in ties], dtype=dtype)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_values_just_off_a_tie_go_to_the_nearer_level(bits):
    """One float64 step below a midpoint rounds down, one above rounds up, whatever the parity."""
    levels = 2**bits - 1
    for k in range(min(levels, 40)):
        tie = torch.tensor((2 * k + 1) / (2 * levels), dtype=torch.float64)
        below = torch.nextafter(tie, torch.tensor(0.0, dtype=torch.float64)) - 1e-12
        above = torch.nextafter(tie, torch.tensor(1.0, dtype=torch.float64)) + 1e-12
        got = physics.quantize(torch.stack([below, above]).view(1, 1, 1, 2), bits).flatten().tolist()
        assert got == pytest.approx([k / levels, (k + 1) / levels], rel=1e-12)
