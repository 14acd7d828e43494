"""BCCD: real blood-smear photos with boxes (Pascal VOC layout).

The Blood Cell Count and Detection dataset holds 364 light-microscope photos
(640 x 480, JPEG) of stained peripheral blood smears with boxes around red
cells (RBC), white cells (WBC) and platelets. Layout (Pascal VOC)::

    BCCD/
      Annotations/BloodImage_00000.xml      one <object> per box: name, bndbox xmin..ymax
      JPEGImages/BloodImage_00000.jpg
      ImageSets/Main/{train,val,test,trainval}.txt   image ids, one per line

Two views are offered:

* :func:`load_bccd_images` - the full photos with their boxes, for detection
  and the sliding-window lesson (photos are decoded when indexed, since all
  364 as float32 would take 1.3 GB);
* :func:`load_bccd_crops` - one fixed-size square crop per box, a 3-class
  classification :class:`ImageDataset` (decoded once, then cached).

Licence: MIT, (c) 2017 shenggan. Upstream: github.com/Shenggan/BCCD_Dataset,
whose README credits cosmicad/dataset and akshaylamba/all_CELL_data.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._checks import check_choice, check_int
from .cache import cached_array, data_dir, fingerprint
from .dataset import ImageDataset
from .download import fetch_file
from .folder import _threads, to_dataset

__all__ = [
    "BCCD_CLASSES",
    "BCCD_BASE_URL",
    "BoxedImages",
    "find_bccd",
    "load_bccd_images",
    "load_bccd_crops",
    "download_bccd",
]

BCCD_CLASSES = ["RBC", "WBC", "Platelets"]
BCCD_COMMIT = "d272fb1"
# github.com/<repo>/raw/<commit>/<path> serves the file as committed (redirecting to
# raw.githubusercontent.com): git blobs, so the bytes, and their hashes, never change.
BCCD_BASE_URL = f"https://github.com/Shenggan/BCCD_Dataset/raw/{BCCD_COMMIT}/BCCD/"
# SHA-256 of each of the 732 files of the BCCD folder at that commit (a pooch registry).
BCCD_REGISTRY = Path(__file__).with_name("bccd_registry.txt")
BCCD_SPLITS = ("train", "val", "test", "trainval", "all")
ENV_VAR = "DEEPIMAGING_BCCD"


@dataclass
class BoxedImages:
    """Full-size photos with boxes, read from disk when indexed.

    ``ds[i]`` returns ``(image, boxes, labels)`` like
    :func:`deepimaging.data.simulate_smear_field`: image (3, H, W) float32 in
    [0, 1], boxes (K, 4) float ``(x_min, y_min, x_max, y_max)`` in pixels,
    labels (K,) int64 indices into ``classes``.
    """

    files: list
    boxes: list
    labels: list
    classes: list

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        from PIL import Image

        with Image.open(self.files[index]) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        image = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)
        return image, self.boxes[index], self.labels[index]

    def __repr__(self) -> str:
        counts = torch.bincount(torch.cat(self.labels), minlength=len(self.classes)).tolist()
        per_class = ", ".join(f"{c}: {n}" for c, n in zip(self.classes, counts))
        return f"BoxedImages({len(self)} photos; boxes {per_class})"


def find_bccd(root=None) -> Path:
    """The BCCD folder (holding ``Annotations``, ``JPEGImages``, ``ImageSets``).

    ``root`` may be that folder or any folder above it (e.g. an unzipped
    download). Default: ``$DEEPIMAGING_BCCD`` when set; else ``<data_dir>/BCCD``
    (a copy you put there) when it exists; else where :func:`download_bccd`
    saves it by default, ``<data_dir>/downloads/BCCD_Dataset-d272fb1/BCCD``.
    """
    if root is None:
        root = os.environ.get(ENV_VAR) or None
    if root is None:
        # The two default places, in the order the docstring gives; the error names both.
        own_copy, downloaded = data_dir(sub="BCCD"), _download_target(None)
        root = own_copy if own_copy.is_dir() or not downloaded.is_dir() else downloaded
        if not root.is_dir():
            raise FileNotFoundError(
                f"BCCD was not found in {own_copy} nor in {downloaded}. Get it with "
                "deepimaging.data.download_bccd(), or `git clone https://github.com/Shenggan/BCCD_Dataset` "
                f"and pass its BCCD folder (or set {ENV_VAR})."
            )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"BCCD folder {root} does not exist. Get it with deepimaging.data.download_bccd(), "
            f"or `git clone https://github.com/Shenggan/BCCD_Dataset` and pass its BCCD folder "
            f"(or set {ENV_VAR})."
        )
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        if "Annotations" in dirnames and "JPEGImages" in dirnames:
            return Path(dirpath)
    raise FileNotFoundError(
        f"no Pascal VOC layout under {root}: expected a folder holding Annotations/*.xml, "
        "JPEGImages/*.jpg and ImageSets/Main/*.txt"
    )


def load_bccd_images(root=None, split: str = "all") -> BoxedImages:
    """The full BCCD photos of one split with their boxes.

    Parameters
    ----------
    root : str or Path, optional
        See :func:`find_bccd`.
    split : {"train", "val", "test", "trainval", "all"}
        The ImageSets/Main split; ``"all"`` takes every annotated photo.
    """
    root = find_bccd(root)
    ids = _split_ids(root, check_choice(split, "split", BCCD_SPLITS))
    files, boxes, labels = [], [], []
    for image_id in ids:
        file, image_boxes, image_labels = _read_annotation(root, image_id)
        files.append(file)
        boxes.append(torch.tensor(image_boxes, dtype=torch.float32).reshape(-1, 4))
        labels.append(torch.tensor(image_labels, dtype=torch.long))
    return BoxedImages(files, boxes, labels, list(BCCD_CLASSES))


def load_bccd_crops(
    root=None, split: str = "train", size: int = 64, cache_dir=None, n_jobs: int | None = None
) -> ImageDataset:
    """One square crop per BCCD box, resized to ``size x size``: a 3-class dataset.

    Each crop is the square of side ``max(width, height)`` centred on the box,
    shifted to lie inside the photo, so every cell keeps its aspect ratio and
    a little of its surroundings. Degenerate boxes (zero width or height; two
    in BCCD) are dropped. The result is cached like an image folder.

    Parameters
    ----------
    root : str or Path, optional
        See :func:`find_bccd`.
    split : {"train", "val", "test", "trainval", "all"}
    size : int
        Crop side in pixels after resizing.
    cache_dir : str or Path, optional
    n_jobs : int, optional
        Decoding threads (default one per core).

    Returns
    -------
    ImageDataset
        (N, 3, size, size) float32 in [0, 1]; classes ``["RBC", "WBC", "Platelets"]``.
        Red cells outnumber the others about 11 to 1.
    """
    size = check_int(size, "size", 1)
    photos = load_bccd_images(root, split)
    xml_files = [Path(f).parent.parent / "Annotations" / (Path(f).stem + ".xml") for f in photos.files]
    key = fingerprint(list(photos.files) + xml_files, root=find_bccd(root), size=size, kind="bccd-crops-2")

    def build():
        def crops_of(index):
            return _crop_boxes(photos.files[index], photos.boxes[index], size)

        with ThreadPoolExecutor(max_workers=_threads(n_jobs)) as pool:
            crops = list(pool.map(crops_of, range(len(photos))))
        images = np.concatenate(crops) if crops else np.zeros((0, 3, size, size), np.uint8)
        labels = torch.cat(photos.labels).tolist() if len(photos) else []
        return images, {"labels": labels}

    images, meta = cached_array(data_dir(cache_dir, "decoded"), f"bccd-{key}", build)
    return to_dataset(images, meta["labels"], BCCD_CLASSES)


def download_bccd(path=None, n_jobs: int = 8, progress: bool = False) -> Path:
    """Download the BCCD folder at commit d272fb1, file by file, each checked against its SHA-256.

    The 732 files (364 photos, 364 annotations, 4 split lists, 10 MB) are
    fetched with pooch (:func:`~deepimaging.data.fetch_file`) against the
    hashes in :data:`BCCD_REGISTRY`, into a ``.part`` folder that is renamed
    into place only when every file is there and verified. An interrupted
    download keeps the verified files and a later call fetches only the rest;
    a file whose hash does not match is deleted and stops the download.

    Parameters
    ----------
    path : str or Path, optional
        Where to keep it; default ``<data_dir>/downloads``, where
        :func:`load_bccd_images` and :func:`load_bccd_crops` look when given
        no ``root``.
    n_jobs : int
        Files downloaded at once.
    progress : bool
        Show a progress bar over files.

    Returns
    -------
    Path
        The ``BCCD`` folder (``Annotations``, ``JPEGImages``, ``ImageSets``),
        ready for :func:`load_bccd_images` and :func:`load_bccd_crops`.

    Raises
    ------
    ValueError
        A downloaded file did not match its hash (it was deleted).
    ConnectionError
        A download failed or was cut off (files already verified are kept
        in the ``.part`` folder for the next call).
    """
    check_int(n_jobs, "n_jobs", 1)
    target = _download_target(path)
    if target.is_dir():  # only ever renamed into place complete
        return target
    root, name = target.parent.parent, target.parent.name
    partial = root / f".{name}.part"
    files = _read_registry(BCCD_REGISTRY)

    def fetch(item):
        relative, known_hash = item
        folder = partial / "BCCD" / Path(relative).parent
        return fetch_file(BCCD_BASE_URL + relative, known_hash, fname=Path(relative).name, path=folder)

    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # not one "Downloading ..." line per file
    try:
        with ThreadPoolExecutor(n_jobs) as pool:
            results = pool.map(fetch, files.items())
            if progress:
                from tqdm.auto import tqdm

                results = tqdm(results, total=len(files), desc="BCCD files")
            for _ in results:  # re-raises the first failure
                pass
    finally:
        logger.setLevel(level)
    os.replace(partial, root / name)
    return target


def _download_target(path) -> Path:
    """The ``BCCD`` folder that :func:`download_bccd` writes under ``path`` (default
    ``<data_dir>/downloads``); :func:`find_bccd` looks there too, so the two always agree."""
    root = Path(path).expanduser() if path is not None else data_dir(sub="downloads")
    return root / f"BCCD_Dataset-{BCCD_COMMIT}" / "BCCD"


def _read_registry(path: Path) -> dict:
    """{relative path: "sha256:<hex>"} from a pooch-style registry file (``#`` starts a comment)."""
    files = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            relative, known_hash = line.split()
            files[relative] = known_hash
    return files


def _split_ids(root: Path, split: str) -> list:
    if split == "all":
        return sorted(p.stem for p in (root / "Annotations").glob("*.xml"))
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise FileNotFoundError(
            f"BCCD split file {listing} does not exist (expected ImageSets/Main/{split}.txt)"
        )
    return [line.strip() for line in listing.read_text().splitlines() if line.strip()]


def _read_annotation(root: Path, image_id: str):
    """(photo path, [[x0, y0, x1, y1], ...], [label, ...]) from one VOC XML file."""
    xml = root / "Annotations" / f"{image_id}.xml"
    if not xml.is_file():
        raise FileNotFoundError(f"BCCD annotation {xml} does not exist")
    tree = ET.parse(xml).getroot()
    boxes, labels = [], []
    for obj in tree.iter("object"):
        name = obj.findtext("name", "").strip()
        if name not in BCCD_CLASSES:
            raise ValueError(f"{xml}: unknown class {name!r}; expected one of {BCCD_CLASSES}")
        box = obj.find("bndbox")
        x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        if x1 > x0 and y1 > y0:
            boxes.append([x0, y0, x1, y1])
            labels.append(BCCD_CLASSES.index(name))
    return root / "JPEGImages" / f"{image_id}.jpg", boxes, labels


def _crop_boxes(file, boxes: torch.Tensor, size: int) -> np.ndarray:
    """Square crops around ``boxes`` from one photo, resized: uint8 (K, 3, size, size)."""
    from PIL import Image

    with Image.open(file) as photo:
        photo = photo.convert("RGB")
        width, height = photo.size
        out = np.empty((len(boxes), 3, size, size), dtype=np.uint8)
        for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            side = min(max(x1 - x0, y1 - y0), width, height)
            # Centre the square on the box, then shift it back inside the photo.
            left = min(max((x0 + x1 - side) / 2, 0), width - side)
            top = min(max((y0 + y1 - side) / 2, 0), height - side)
            crop = photo.resize(
                (size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
            )
            out[k] = np.asarray(crop).transpose(2, 0, 1)
    return out
