"""Datasets: the simulated blood smear (built in, no download) and loaders for real data.

Every dataset is an :class:`ImageDataset`: float images in [0, 1] of shape
(N, C, H, W), int64 labels and class names.
"""

from .dataset import ImageDataset, split
from .smear import CLASSES, simulate_blood_smear, simulate_smear_field

__all__ = ["CLASSES", "ImageDataset", "simulate_blood_smear", "simulate_smear_field", "split"]
