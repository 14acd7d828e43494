"""Explorers over deepimaging.interpret.attribution."""

__all__: list = []
