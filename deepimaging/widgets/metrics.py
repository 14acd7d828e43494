"""Explorers for metrics."""

__all__: list = []
