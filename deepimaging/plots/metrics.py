"""Figures for metrics (see the module docstring of deepimaging.metrics)."""

__all__: list = []
