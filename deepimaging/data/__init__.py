"""Datasets: the simulated blood smear (built in, no download) and loaders for real data.

Every dataset is an :class:`ImageDataset`: float images in [0, 1] of shape
(N, C, H, W), int64 labels and class names. Loaders of real data keep the
decoded 8-bit pixels (a quarter of the memory) and convert them to float one
batch at a time as they are read.

================================ ===============================================
:func:`simulate_blood_smear`     built in, 4 white-cell classes, any size
:func:`load_digits`              scikit-learn digits, 8 x 8 grey, 10 classes
:func:`load_image_folder`        any folder with one sub-folder per class (cached)
:func:`load_kaggle_blood_cells`  Kaggle "blood cells", 4 classes (local copy)
:func:`load_medmnist`            MedMNIST .npz, e.g. BloodMNIST, 8 classes
:func:`load_bccd_crops`          BCCD cell crops, 3 classes; :func:`load_bccd_images`
                                 gives the full photos with boxes
================================ ===============================================

The plumbing beneath the loaders (archive extraction, the decoded-array cache)
lives in :mod:`.download`, :mod:`.folder` and :mod:`.cache`, for readers who want
to see how it works; ``__all__`` lists what a student or instructor calls.
"""

from .bccd import BCCD_CLASSES, BoxedImages, download_bccd, find_bccd, load_bccd_crops, load_bccd_images
from .cache import data_dir
from .dataset import ImageDataset, as_float, split
from .digits import load_digits
from .download import UnsafeArchiveError, fetch_file
from .folder import decode_image, load_image_folder, read_image_folder
from .kaggle import KAGGLE_URL, find_kaggle_blood_cells, load_kaggle_blood_cells
from .medmnist import BLOODMNIST_CLASSES, MEDMNIST, load_medmnist, medmnist_path, medmnist_url
from .names import dataset_loader, dataset_names
from .smear import CLASSES, simulate_blood_smear, simulate_smear_field

__all__ = [
    "BCCD_CLASSES",
    "BLOODMNIST_CLASSES",
    "BoxedImages",
    "CLASSES",
    "ImageDataset",
    "KAGGLE_URL",
    "MEDMNIST",
    "UnsafeArchiveError",
    "as_float",
    "data_dir",
    "dataset_loader",
    "dataset_names",
    "decode_image",
    "download_bccd",
    "fetch_file",
    "find_bccd",
    "find_kaggle_blood_cells",
    "load_bccd_crops",
    "load_bccd_images",
    "load_digits",
    "load_image_folder",
    "load_kaggle_blood_cells",
    "load_medmnist",
    "medmnist_path",
    "medmnist_url",
    "read_image_folder",
    "simulate_blood_smear",
    "simulate_smear_field",
    "split",
]
