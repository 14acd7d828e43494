"""MedMNIST ``.npz`` files, BloodMNIST first.

MedMNIST v3 (Yang et al. 2023) publishes each 2-D dataset as one ``.npz``
file per image size (28, 64, 128, 224) holding six arrays:
``train_images``, ``val_images``, ``test_images`` (uint8, (N, H, W) or
(N, H, W, 3)) and ``train_labels``, ``val_labels``, ``test_labels``
((N, 1) integers). BloodMNIST is made from the PBC dataset of Acevedo et al.
(2020): 17,092 images of normal peripheral blood cells in 8 classes.

The URLs and MD5 hashes below are those published in the ``medmnist``
package (``medmnist/info.py``, version 3.0.2), Zenodo record 10519652.

References
----------
J. Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D
biomedical image classification", Scientific Data 10, 41 (2023).
A. Acevedo et al., "A dataset of microscopic peripheral blood cell images for
development of automatic recognition systems", Data in Brief 30, 105474 (2020).
"""

from __future__ import annotations

import math
import numbers
import zipfile
from pathlib import Path

import numpy as np
import torch

from .._checks import check_bool, check_choice
from .cache import as_path, data_dir
from .dataset import ImageDataset
from .download import fetch_file

__all__ = [
    "MEDMNIST",
    "MEDMNIST_SIZES",
    "BLOODMNIST_CLASSES",
    "load_medmnist",
    "medmnist_path",
    "medmnist_url",
]

MEDMNIST_SIZES = (28, 64, 128, 224)
_ZENODO = "https://zenodo.org/records/10519652/files"

BLOODMNIST_CLASSES = [
    "basophil",
    "eosinophil",
    "erythroblast",
    "immature granulocyte",  # myelocytes, metamyelocytes and promyelocytes
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
]

# name -> class names and the published MD5 of each size's file (medmnist 3.0.2, info.py).
MEDMNIST = {
    "bloodmnist": {
        "classes": BLOODMNIST_CLASSES,
        "md5": {
            28: "7053d0359d879ad8a5505303e11de1dc",
            64: "2b94928a2ae4916078ca51e05b6b800b",
            128: "adace1e0ed228fccda1f39692059dd4c",
            224: "b718ff6835fcbdb22ba9eacccd7b2601",
        },
    },
    "pathmnist": {
        "classes": [
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ],
        "md5": {
            28: "a8b06965200029087d5bd730944a56c1",
            64: "55aa9c1e0525abe5a6b9d8343a507616",
            128: "ac42d08fb904d92c244187169d1fd1d9",
            224: "2c51a510bcdc9cf8ddb2af93af1eadec",
        },
    },
    "dermamnist": {
        "classes": [
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ],
        "md5": {
            28: "0744692d530f8e62ec473284d019b0c7",
            64: "b70a2f5635c6199aeaa28c31d7202e1f",
            128: "2defd784463fa5243564e855ed717de1",
            224: "8974907d8e169bef5f5b96bc506ae45d",
        },
    },
    "pneumoniamnist": {
        "classes": ["normal", "pneumonia"],
        "md5": {
            28: "28209eda62fecd6e6a2d98b1501bb15f",
            64: "8f4eceb4ccffa70c672198ea285246c6",
            128: "05b46931834c231683c68f40c47b2971",
            224: "d6a3c71de1b945ea11211b03746c1fe1",
        },
    },
    "breastmnist": {
        "classes": ["malignant", "normal, benign"],
        "md5": {
            28: "750601b1f35ba3300ea97c75c52ff8f6",
            64: "742edef2a1fd1524b2efff4bd7ba9364",
            128: "363e4b3f8d712e9b5de15470a2aaadf1",
            224: "b56378a6eefa9fed602bb16d192d4c8b",
        },
    },
}


def _file_name(name: str, size: int) -> str:
    # The 28 x 28 files keep their MedMNIST v2 names (no size suffix).
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


def medmnist_url(name: str, size: int) -> str:
    """The published download URL of one MedMNIST file."""
    _check_name_size(name, size)
    return f"{_ZENODO}/{_file_name(name, size)}?download=1"


def medmnist_path(name: str = "bloodmnist", size: int = 28, cache_dir=None) -> Path:
    """Where :func:`load_medmnist` looks for (and downloads) a file: ``<data_dir>/medmnist/<file>``."""
    _check_name_size(name, size)
    return data_dir(cache_dir, "medmnist") / _file_name(name, size)


def load_medmnist(
    name: str = "bloodmnist",
    split: str = "train",
    size: int = 28,
    path=None,
    download: bool = False,
    cache_dir=None,
) -> ImageDataset:
    """Load one split of a MedMNIST ``.npz`` file as an :class:`ImageDataset`.

    Parameters
    ----------
    name : str
        A key of :data:`MEDMNIST`, e.g. ``"bloodmnist"``.
    split : {"train", "val", "test"}
        MedMNIST's official split.
    size : {28, 64, 128, 224}
        Image side in pixels.
    path : str or Path, optional
        A local ``.npz`` file to read (e.g. downloaded by hand from
        https://zenodo.org/records/10519652). Default: :func:`medmnist_path`.
    download : bool
        When the file is not there, download it (checking the published MD5).
    cache_dir : str or Path, optional
        Data folder used when ``path`` is not given.

    Returns
    -------
    ImageDataset
        float32 images in [0, 1], (N, 3, size, size) for RGB sets, (N, 1, size, size) for grey ones.

    Examples
    --------
    >>> ds = load_medmnist("bloodmnist", "test", size=28, path="bloodmnist.npz")  # doctest: +SKIP
    >>> ds.classes[:2]  # doctest: +SKIP
    ['basophil', 'eosinophil']
    """
    _check_name_size(name, size)
    check_choice(split, "split", ("train", "val", "test"))
    download = check_bool(download, "download")
    if path is None:
        path = medmnist_path(name, size, cache_dir)
        if not path.exists():
            if not download:
                raise FileNotFoundError(
                    f"{name} at size {size} is not at {path}. Download it from {medmnist_url(name, size)} "
                    f"(MD5 {MEDMNIST[name]['md5'][size]}) and pass path=, or call with download=True."
                )
            fetch_file(
                medmnist_url(name, size),
                "md5:" + MEDMNIST[name]["md5"][size],
                fname=path.name,
                path=path.parent,
                progress=True,
            )
    path = as_path(path, "path")
    if not path.is_file():
        raise FileNotFoundError(f"MedMNIST file {path} does not exist (expected a .npz file)")
    images, labels = _read_split(path, split)
    return _to_dataset(images, labels, MEDMNIST[name]["classes"], path)


def _read_split(path: Path, split: str):
    """The images and labels arrays of one split, read without ever unpickling (the file may be untrusted)."""
    expected = "expected a MedMNIST .npz file with train/val/test_images and train/val/test_labels"
    # An .npz is a zip archive of .npy files; anything else (an empty file, text, an HTML error
    # page saved as .npz) is refused here rather than with numpy's messages about pickles.
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a .npz (zip) archive; {expected}")
    wanted = (f"{split}_images", f"{split}_labels")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in wanted if k not in npz.files]
            if not missing:
                for key in wanted:
                    _check_array_header(npz.zip, key, path)
                return npz[wanted[0]], npz[wanted[1]]
    except ValueError as err:
        # numpy refuses object arrays when allow_pickle=False; its message suggests allow_pickle=True,
        # which would run code from the file. The file is simply not what MedMNIST publishes.
        reason = "it holds Python objects, not numeric arrays" if "allow_pickle" in str(err) else str(err)
        raise ValueError(f"{path} cannot be read as MedMNIST data: {reason}; {expected}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is damaged and cannot be read ({err}); {expected}") from None
    raise ValueError(f"{path} lacks the key(s) {missing}; {expected}, found {sorted(npz.files)}")


MAX_ARRAY_BYTES = 2**34  # 16 GiB; the largest MedMNIST array (BloodMNIST 224, train) is 1.8 GB


def _check_array_header(archive: zipfile.ZipFile, key: str, path: Path) -> None:
    """Refuse an array whose header claims more than MAX_ARRAY_BYTES, before numpy allocates it.

    A .npy member starts with a header giving its dtype and shape; a damaged or hostile file can
    claim exabytes (a compressed member can even hold them). Reading the header costs nothing.
    """
    with archive.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(member)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise ValueError(
            f"{path}: {key} claims shape {shape} of {dtype} = {nbytes / 2**30:.3g} GiB, more than the "
            f"{MAX_ARRAY_BYTES / 2**30:.0f} GiB any MedMNIST array needs; the file is damaged or not MedMNIST"
        )


def _to_dataset(images, labels, classes, path) -> ImageDataset:
    if images.ndim == 3:  # grey sets store (N, H, W)
        images = images[..., None]
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{path}: images must be uint8 of shape (N, H, W) or (N, H, W, C), C = 1 or 3; "
            f"got {images.dtype} of shape {images.shape}"
        )
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels must be integer class indices; got dtype {labels.dtype}")
    # One label per image: shape (N, 1), or (N,); math.prod, not reshape(N, -1), which fails for N = 0.
    if labels.ndim == 0 or labels.shape[0] != len(images) or math.prod(labels.shape[1:]) != 1:
        raise ValueError(
            f"{path}: expected one label per image, shape ({len(images)}, 1); got {labels.shape} "
            "(multi-label sets such as ChestMNIST are not supported)"
        )
    labels = labels.reshape(len(labels), 1)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(
            f"{path}: labels must be in [0, {len(classes) - 1}] for the {len(classes)} classes; "
            f"got values in [{labels.min()}, {labels.max()}]"
        )
    # Stored as uint8 (N, C, H, W), as the file holds it; read as float one batch at a time.
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageDataset(tensor, torch.from_numpy(labels[:, 0].astype(np.int64)), list(classes))


def _check_name_size(name, size):
    if not isinstance(name, str) or name not in MEDMNIST:
        raise ValueError(f"unknown MedMNIST name {name!r}; expected one of {sorted(MEDMNIST)}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size not in MEDMNIST_SIZES:
        raise ValueError(f"MedMNIST size must be one of {list(MEDMNIST_SIZES)}; got {size!r}")
