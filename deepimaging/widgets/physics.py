"""Explorers for physics."""

__all__: list = []
