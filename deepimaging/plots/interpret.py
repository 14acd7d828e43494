"""Figures for interpret (see the module docstring of deepimaging.interpret)."""

__all__: list = []
