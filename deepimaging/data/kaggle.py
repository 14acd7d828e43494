"""The Kaggle "Blood Cell Images" dataset (12,500 augmented images, 4 white-cell types).

Kaggle serves it only to signed-in users, so this loader reads a local copy.
After unzipping, the images lie in::

    .../dataset2-master/images/TRAIN/{EOSINOPHIL,LYMPHOCYTE,MONOCYTE,NEUTROPHIL}/*.jpeg
    .../dataset2-master/images/TEST/...
    .../dataset2-master/images/TEST_SIMPLE/...

with one or two extra folder levels above, depending on how it was unzipped.
The loader searches the folder it is given for that layout at any depth.
The class names are lower-cased, so they match the simulated smear's
:data:`deepimaging.data.CLASSES`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._checks import check_choice
from .cache import as_path
from .dataset import ImageDataset
from .folder import load_image_folder

__all__ = ["KAGGLE_URL", "KAGGLE_CLASSES", "find_kaggle_blood_cells", "load_kaggle_blood_cells"]

KAGGLE_URL = "https://www.kaggle.com/datasets/paultimothymooney/blood-cells"
KAGGLE_CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
KAGGLE_SPLITS = ("TRAIN", "TEST", "TEST_SIMPLE")
_MAX_DEPTH = 6


def find_kaggle_blood_cells(root) -> Path:
    """The ``images`` folder (holding TRAIN/TEST/TEST_SIMPLE) anywhere under ``root``.

    A folder named ``dataset2-master`` is preferred when there are several
    candidates. Raises ``FileNotFoundError`` naming ``root``, the expected
    layout and where to get the data.
    """
    root = as_path(root, "root")
    if not root.is_dir():
        raise FileNotFoundError(f"Kaggle blood-cells folder {root} does not exist. {_where_to_get()}")
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= _MAX_DEPTH:
            dirnames.clear()
        dirnames.sort()
        if Path(dirpath).name == "images" and "TRAIN" in dirnames:
            found.append(Path(dirpath))
    if not found:
        raise FileNotFoundError(
            f"no Kaggle blood-cells layout under {root}: expected a folder "
            f"dataset2-master/images/TRAIN/{{{','.join(KAGGLE_CLASSES)}}} at any depth. {_where_to_get()}"
        )
    found.sort(key=lambda p: (p.parent.name != "dataset2-master", len(p.parts)))
    return found[0]


def load_kaggle_blood_cells(
    root, split: str = "TRAIN", size: int = 64, grayscale: bool = False, cache_dir=None, n_jobs=None
) -> ImageDataset:
    """Load one split of the Kaggle blood-cells set from a local copy.

    Parameters
    ----------
    root : str or Path
        Any folder that contains the unzipped download (at any depth).
    split : {"TRAIN", "TEST", "TEST_SIMPLE"}
    size, grayscale, cache_dir, n_jobs
        As in :func:`deepimaging.data.load_image_folder` (decoded once, then cached).

    Returns
    -------
    ImageDataset
        Classes ``["eosinophil", "lymphocyte", "monocyte", "neutrophil"]``.
    """
    split = check_choice(str(split).upper(), "split", KAGGLE_SPLITS)
    images = find_kaggle_blood_cells(root)
    folder = images / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{images} has no {split} folder; found {sorted(p.name for p in images.iterdir())}"
        )
    ds = load_image_folder(folder, size, grayscale, KAGGLE_CLASSES, cache_dir, n_jobs)
    ds.classes = [c.lower() for c in ds.classes]
    return ds


def _where_to_get() -> str:
    return (
        f"Download the dataset from {KAGGLE_URL} (needs a free Kaggle account), unzip it, "
        "and pass the folder you unzipped it into."
    )
