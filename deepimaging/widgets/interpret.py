"""Explorers for interpret."""

__all__: list = []
