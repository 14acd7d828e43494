"""Figures for deepimaging.interpret.attribution."""

__all__: list = []
