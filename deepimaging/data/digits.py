"""scikit-learn's handwritten digits: a tiny real dataset that needs no download."""

from __future__ import annotations

import torch

from .dataset import ImageDataset

__all__ = ["load_digits"]


def load_digits() -> ImageDataset:
    """The 1,797 handwritten digits of scikit-learn (UCI optical digits) as an :class:`ImageDataset`.

    Each image is 8 x 8 pixels, one grey channel, with 17 grey levels (0-16 in
    the source, scaled here by 1/16 to [0, 1]); about 180 images per digit.

    Returns
    -------
    ImageDataset
        (1797, 1, 8, 8) float32 images, labels 0-9, classes ``["0", ..., "9"]``.

    Examples
    --------
    >>> ds = load_digits()
    >>> ds.image_shape, ds.num_classes
    ((1, 8, 8), 10)
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return ImageDataset(images, torch.as_tensor(digits.target), [str(k) for k in range(10)])
