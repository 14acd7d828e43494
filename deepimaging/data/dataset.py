"""The one dataset type every loader returns, and stratified splits."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from .._checks import check_images, check_int, check_number


def as_float(images: torch.Tensor) -> torch.Tensor:
    """Images as float: uint8 pixel values ``v`` become ``v / 255`` (float32); float images pass unchanged.

    The division is done in float32, so ``as_float(x)`` equals
    ``x.float() / 255`` bit for bit, however the images were batched.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (uint8 or float); got {type(images).__name__}")
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images


class ImageDataset(torch.utils.data.Dataset):
    """Images, integer labels and class names, held in memory.

    Images can be stored as float32 in [0, 1], or as 8-bit pixel values
    (uint8, value ``v`` meaning ``v / 255``), which take a quarter of the
    memory: 12,500 RGB images of 128x128 are 614 MB as uint8 and 2.5 GB as
    float32. The folder, BCCD and MedMNIST loaders store uint8, as decoded;
    everything that reads the dataset sees float images in [0, 1]:

    * ``dataset[i]``, :meth:`images_at` and :func:`deepimaging.train.fit` /
      :func:`~deepimaging.train.predict` convert only the images they use, one
      batch at a time;
    * :attr:`images` is the whole set as one float tensor. For uint8 storage
      it is converted on first use and kept from then on (4 bytes per pixel).

    Parameters
    ----------
    images : torch.Tensor
        Shape (N, C, H, W): float in [0, 1], or uint8 pixel values.
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
    >>> small = ImageDataset(torch.full((2, 1, 4, 4), 255, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
    >>> small.storage.dtype, small.images.dtype, float(small.images.max())
    (torch.uint8, torch.float32, 1.0)
    """

    def __init__(self, images: torch.Tensor, labels, classes):
        if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
            if images.ndim != 4:
                raise ValueError(f"images must have shape (N, C, H, W); got shape {tuple(images.shape)}")
        else:
            check_images(images, "images")
        self._storage = images
        try:
            labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        except (TypeError, ValueError, RuntimeError) as err:  # text, objects, ragged lists
            raise TypeError(f"labels must be integer class indices; got {type(labels).__name__}") from err
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"labels must have shape ({len(images)},) to match images; got shape {tuple(labels.shape)}"
            )
        if labels.numel() == 0:  # np.asarray([]) is float64: no label, nothing to refuse
            labels = labels.long()
        if labels.is_floating_point() or labels.is_complex():
            raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
        self.labels = labels.long()
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
            raise TypeError(
                f"classes must be a list of class names; got {classes!r} ({type(classes).__name__})"
            )
        self.classes = list(classes)
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"labels must be in [0, {len(self.classes) - 1}] for {len(self.classes)} classes; "
                f"got values in [{int(self.labels.min())}, {int(self.labels.max())}]"
            )

    @property
    def storage(self) -> torch.Tensor:
        """The images as stored: uint8 pixel values or float in [0, 1], shape (N, C, H, W)."""
        return self._storage

    @property
    def images(self) -> torch.Tensor:
        """All images as one float32 tensor in [0, 1], shape (N, C, H, W).

        uint8 storage is converted once, on first use, and replaced by the
        float tensor (so later reads cost nothing, and memory grows 4x).
        """
        if self._storage.dtype == torch.uint8:
            self._storage = as_float(self._storage)
        return self._storage

    def images_at(self, index) -> torch.Tensor:
        """Float images in [0, 1] at ``index`` (an int, slice, list or tensor), converting only those."""
        return as_float(self._storage[index])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images_at(index), self.labels[index]

    def __repr__(self) -> str:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        per_class = ", ".join(f"{c}: {n}" for c, n in zip(self.classes, counts))
        stored = " (stored as uint8)" if self._storage.dtype == torch.uint8 else ""
        return f"ImageDataset({len(self)} images of shape {self.image_shape}{stored}; {per_class})"

    @property
    def image_shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self._storage.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices) -> ImageDataset:
        """A new dataset holding the images at ``indices``, stored as this one stores them."""
        indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageDataset(self._storage[indices], self.labels[indices], self.classes)

    def loader(self, batch_size: int = 64, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """A ``DataLoader`` over (float image, label) batches; shuffling is seeded."""
        check_int(batch_size, "batch_size", 1)
        check_int(seed, "seed", 0, 2**64 - 1)  # the seeds torch.Generator.manual_seed accepts
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, generator=generator)


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
        0 to 2**32 - 1.

    Returns
    -------
    train, val, test : ImageDataset
    """
    from sklearn.model_selection import train_test_split

    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset; got {type(dataset).__name__}")
    check_number(val, "val", 0.0, 1.0)
    check_number(test, "test", 0.0, 1.0)
    check_int(seed, "seed", 0, 2**32 - 1)  # the seeds scikit-learn's random_state accepts
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
