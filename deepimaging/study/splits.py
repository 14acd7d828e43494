"""The images a study trains and tests on: the dataset loaded whole, subsampled, split per class."""

from __future__ import annotations

import functools
import inspect
import json

import numpy as np
import torch

from ..data import ImageDataset, simulate_blood_smear, split
from .config import StudyConfig

#: The official splits that make up the whole of each loader's dataset; a study joins them unless
#: ``dataset_options`` names a ``split``.
WHOLE_SET_SPLITS = {
    "bccd_crops": ("all",),
    "medmnist": ("train", "val", "test"),
    "kaggle_blood_cells": ("TRAIN", "TEST"),
}


def load_data(config: StudyConfig) -> tuple[ImageDataset, ImageDataset, ImageDataset | None]:
    """The (train, test, val-or-None) splits a study's points train and test on.

    The split is stratified by class and seeded with ``config.data_seed``.
    Cached per process: every point of a study in the same worker reuses them.

    Raises
    ------
    ValueError
        A class with fewer than 2 images, or a ``val`` / ``test`` fraction that
        leaves a class without an image in that part; raised before anything is
        trained.
    """
    key = json.dumps(
        [config.dataset, config.dataset_options, config.size, config.n_per_class, config.data_seed],
        sort_keys=True,
    )
    train, val, test = _load_split(key, config.val, config.test)
    return train, test, (val if len(val) else None)


def class_counts(config: StudyConfig) -> dict:
    """How many images of each class the study trains, validates and tests on.

    Returns
    -------
    dict
        ``{"train": {class: n}, "val": {class: n}, "test": {class: n}}``.
    """
    train, test, val = load_data(config)
    parts = {"train": train, "val": val, "test": test}
    return {
        part: {
            c: int((data.labels == k).sum()) if data is not None else 0 for k, c in enumerate(train.classes)
        }
        for part, data in parts.items()
    }


@functools.lru_cache(maxsize=2)
def _load_split(key, val, test):
    name, options, size, n_per_class, data_seed = json.loads(key)
    dataset = _load_dataset(name, options, size, n_per_class, data_seed)
    counts = np.bincount(dataset.labels.numpy(), minlength=dataset.num_classes)
    small = {c: int(n) for c, n in zip(dataset.classes, counts) if n < 2}
    if small:
        raise ValueError(
            f"dataset {name!r} has classes with fewer than 2 images {small}: a class needs images "
            "for training and for testing; add images, drop the class, or raise n_per_class"
        )
    try:
        parts = split(dataset, val=val, test=test, seed=data_seed)
    except ValueError as err:
        raise ValueError(
            f"val={val}, test={test} (each a fraction in [0, 1)) cannot split this dataset "
            f"(images per class: {dict(zip(dataset.classes, counts.tolist()))}): {err}"
        ) from None
    for part_name, fraction, part in (("val", val, parts[1]), ("test", test, parts[2])):
        if fraction == 0:
            continue
        present = np.bincount(part.labels.numpy(), minlength=dataset.num_classes)
        empty = [c for c, n in zip(dataset.classes, present) if n == 0]
        if empty:
            raise ValueError(
                f"{part_name}={fraction} leaves class(es) {empty} with no {part_name} image "
                f"(images per class: {dict(zip(dataset.classes, counts.tolist()))}); "
                f"raise {part_name} (allowed: a fraction in [0, 1)) or add images"
                + ("; val=0 turns validation off" if part_name == "val" else "")
            )
    return parts


def _load_dataset(name, options, size, n_per_class, seed) -> ImageDataset:
    from .. import data

    if name == "blood_smear":
        return simulate_blood_smear(n_per_class=n_per_class or 300, size=size, seed=seed, **options)
    loader = data.dataset_loader(name)
    parameters = inspect.signature(loader).parameters
    if "size" in parameters and "size" not in options:
        options = {**options, "size": size}
    if "split" in parameters and "split" not in options and name in WHOLE_SET_SPLITS:
        # The study splits the data itself; a loader's own default split (BCCD's "train") would
        # silently drop the rest of the images. Load every official split and join them.
        parts = [_call_loader(name, loader, {**options, "split": part}) for part in WHOLE_SET_SPLITS[name]]
        dataset = ImageDataset(
            torch.cat([part.storage for part in parts]),
            torch.cat([part.labels for part in parts]),
            parts[0].classes,
        )
    else:
        dataset = _call_loader(name, loader, options)
    if n_per_class is not None:
        # A seeded class-balanced subsample keeps the study fast on large real datasets.
        g = np.random.default_rng(seed)
        keep = [
            g.permutation(np.flatnonzero(dataset.labels.numpy() == k))[:n_per_class]
            for k in range(dataset.num_classes)
        ]
        dataset = dataset.subset(np.sort(np.concatenate(keep)))
    return dataset


def _call_loader(name, loader, options) -> ImageDataset:
    dataset = loader(**options)
    if isinstance(dataset, tuple):  # loaders that return (train, test) or similar: use the first
        dataset = dataset[0]
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset loader {name!r} returned {type(dataset).__name__}, not an ImageDataset")
    return dataset
