"""The one dataset type every loader returns, and stratified splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from .._checks import check_images, check_int, check_number


@dataclass
class ImageDataset(torch.utils.data.Dataset):
    """Images, integer labels and class names, held in memory.

    Parameters
    ----------
    images : torch.Tensor
        Float images in [0, 1], shape (N, C, H, W).
    labels : torch.Tensor
        int64 class indices, shape (N,), each in ``range(len(classes))``.
    classes : list of str
        Class names; ``classes[k]`` is the name of label ``k``.

    Examples
    --------
    >>> import torch
    >>> ds = ImageDataset(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1]), ["a", "b"])
    >>> len(ds), ds.image_shape, ds.num_classes
    (4, (3, 8, 8), 2)
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list

    def __post_init__(self):
        check_images(self.images, "images")
        labels = torch.as_tensor(self.labels)
        if labels.ndim != 1 or len(labels) != len(self.images):
            raise ValueError(
                f"labels must have shape ({len(self.images)},) to match images; "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.is_floating_point():
            raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
        self.labels = labels.long()
        self.classes = list(self.classes)
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"labels must be in [0, {len(self.classes) - 1}] for {len(self.classes)} classes; "
                f"got values in [{int(self.labels.min())}, {int(self.labels.max())}]"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def __repr__(self) -> str:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        per_class = ", ".join(f"{c}: {n}" for c, n in zip(self.classes, counts))
        return f"ImageDataset({len(self)} images of shape {self.image_shape}; {per_class})"

    @property
    def image_shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices) -> ImageDataset:
        """A new dataset holding the images at ``indices``."""
        indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageDataset(self.images[indices], self.labels[indices], self.classes)

    def loader(self, batch_size: int = 64, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """A ``DataLoader`` over (image, label) batches; shuffling is seeded."""
        check_int(batch_size, "batch_size", 1)
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            TensorDataset(self.images, self.labels),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
        )


def split(
    dataset: ImageDataset, val: float = 0.15, test: float = 0.15, seed: int = 0
) -> tuple[ImageDataset, ImageDataset, ImageDataset]:
    """Stratified train / validation / test split.

    Every class keeps (close to) its share of images in each part. The same
    ``seed`` gives the same split.

    Parameters
    ----------
    dataset : ImageDataset
    val, test : float
        Fractions of the whole dataset for validation and test, each in [0, 1).
    seed : int

    Returns
    -------
    train, val, test : ImageDataset
    """
    from sklearn.model_selection import train_test_split

    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset; got {type(dataset).__name__}")
    check_number(val, "val", 0.0, 1.0)
    check_number(test, "test", 0.0, 1.0)
    if val + test >= 1.0:
        raise ValueError(f"val + test must be below 1 so training keeps images; got {val + test}")
    labels = dataset.labels.numpy()
    index = np.arange(len(dataset))
    rest, test_idx = _stratified(index, labels, test, seed, train_test_split)
    val_share = val / (1.0 - test) if test < 1.0 else 0.0
    train_idx, val_idx = _stratified(rest, labels[rest], val_share, seed, train_test_split)
    return dataset.subset(train_idx), dataset.subset(val_idx), dataset.subset(test_idx)


def _stratified(index, labels, fraction, seed, train_test_split):
    if fraction == 0:
        return index, index[:0]
    try:
        return train_test_split(index, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError as err:
        raise ValueError(
            f"cannot make a stratified split of {len(index)} images with fraction {fraction:.3g}: "
            f"{err} (use more images per class or a different fraction)"
        ) from None
