"""Filters, activations, features, nearest neighbours and t-SNE: what is inside the network."""

__all__: list = []
