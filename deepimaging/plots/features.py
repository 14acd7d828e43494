"""Figures for deepimaging.interpret.features."""

__all__: list = []
