"""Figures for study (see the module docstring of deepimaging.study)."""

__all__: list = []
