"""Figures for physics (see the module docstring of deepimaging.physics)."""

__all__: list = []
