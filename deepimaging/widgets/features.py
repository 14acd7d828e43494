"""Explorers over deepimaging.interpret.features."""

__all__: list = []
