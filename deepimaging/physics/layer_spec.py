"""What a registered physical layer sweeps, and the checks a swept value must pass: :class:`LayerSpec`.

One :class:`LayerSpec` per row of the table :data:`.registry.LAYERS`: the
name of the swept parameter, its type and allowed range (which may depend on
the image size), what the layer does, and how to build it.
:meth:`LayerSpec.check` turns a value from a study configuration or the
command line into that type, or refuses it with a message naming the
parameter, the range and the value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LayerSpec"]


@dataclass(frozen=True)
class LayerSpec:
    """What a registered layer sweeps: ``parameter`` of ``type`` (int, float or None) in [low, high].

    ``low``/``high`` are numbers or callables ``f(image_shape, options)`` (e.g. a
    PSF at most the image size, a budget at most the ``max_bits`` option);
    ``low_open`` excludes ``low`` itself; ``odd``, ``divides_size`` and
    ``power_of_two`` add those conditions. ``build(value, image_shape, **options)``
    makes the layer; ``output`` says how its output shape relates to the input (C, H, W).
    """

    name: str
    parameter: str | None
    type: type | None
    low: float | Callable | None
    high: float | Callable | None
    description: str
    build: Callable = field(repr=False)
    low_open: bool = False
    output: str = "same shape as the input"
    odd: bool = False
    divides_size: bool = False
    power_of_two: bool = False

    def bounds(self, image_shape=(3, 64, 64), options=None) -> tuple:
        """(low, high) for images of ``image_shape`` and the layer's constructor ``options``."""
        options = options or {}
        low = self.low(image_shape, options) if callable(self.low) else self.low
        high = self.high(image_shape, options) if callable(self.high) else self.high
        return low, high

    def range_text(self, image_shape=(3, 64, 64), options=None) -> str:
        """The allowed values in words, e.g. ``int in [1, 16]`` or ``float in (0, 1]``."""
        if self.parameter is None:
            return "value ignored"
        low, high = self.bounds(image_shape, options)
        left = "(" if self.low_open else "["
        hi = "inf)" if high is None else f"{high:g}]"
        extra = ", odd" if self.odd else ""
        extra += ", dividing the image height and width" if self.divides_size else ""
        extra += ", a power of 2" if self.power_of_two else ""
        return f"{self.type.__name__} in {left}{low:g}, {hi}{extra}"

    def describe(self, image_shape=(3, 64, 64)) -> str:
        """One line: name, parameter, its type and range, what the layer does."""
        param = (
            "no parameter" if self.parameter is None else f"{self.parameter}: {self.range_text(image_shape)}"
        )
        return f"{self.name} ({param}) - {self.description}; output: {self.output}"

    def check(self, value, image_shape=(3, 64, 64), options=None):
        """Return ``value`` converted to the parameter's type, or raise ValueError naming the range."""
        if self.parameter is None:
            return None
        options = options or {}
        low, high = self.bounds(image_shape, options)
        where = f"{self.parameter} for layer {self.name!r} must be {self.range_text(image_shape, options)}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{where}; got {value!r}")
        if self.type is int:
            if float(value) != int(value):
                raise ValueError(f"{where}; got {value!r} (not an integer)")
            value = int(value)
        else:
            value = float(value)
        too_low = value <= low if self.low_open else value < low
        if too_low or (high is not None and value > high):
            raise ValueError(f"{where}; got {value!r}")
        if self.odd and value % 2 == 0:
            raise ValueError(f"{where}; got {value!r} (even)")
        # A power of two has one bit set: v & (v - 1) clears it (power_of_two is only used with int, v >= 1).
        if self.power_of_two and value & (value - 1):
            raise ValueError(f"{where}; got {value!r} (not a power of 2)")
        if (
            self.divides_size
            and not options.get("pad")
            and (image_shape[1] % value or image_shape[2] % value)
        ):
            raise ValueError(
                f"{where}; got {value!r}, which does not divide {image_shape[1]}x{image_shape[2]}"
            )
        return value
