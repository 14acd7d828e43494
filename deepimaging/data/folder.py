"""A folder of images, one sub-folder per class, decoded once and cached.

Layout::

    root/
      eosinophil/  img001.jpg  img002.png ...
      lymphocyte/  ...

Every image is resized to ``size x size`` and converted to RGB (or grayscale),
then all images are stored together as one uint8 array of shape (N, C, H, W)
(torch's layout, so turning it into floats is one cast) in the cache folder (see :mod:`deepimaging.data.cache`). The cache entry's name
is a hash of the file names, sizes and modification times and of the loader's
parameters, so changing any image makes a new entry instead of reading stale
pixels. uint8 keeps the cache small: 12,500 RGB images at 128 x 128 take
12,500 * 128 * 128 * 3 bytes = 614 MB (float32 would take four times that).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .._checks import check_bool, check_int
from .cache import _outside_this_package, as_path, cached_array, data_dir, fingerprint
from .dataset import ImageDataset

__all__ = ["IMAGE_EXTENSIONS", "decode_image", "read_image_folder", "load_image_folder", "to_dataset"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")
_CACHE_VERSION = 2  # bump when the decoding changes, so old cache entries are not reused
MAX_SIZE = 4096  # a side in pixels; 10**5 would ask for 30 GB per image before any decoding


def decode_image(path, size: int, grayscale: bool = False) -> np.ndarray:
    """Decode one image file and resize it to ``size x size``.

    Returns a uint8 array of shape (size, size, C), C = 1 for grayscale, else 3.
    The aspect ratio is not kept: every image is stretched to a square, as
    in most classification datasets. Raises ``OSError`` (PIL's
    ``UnidentifiedImageError`` is one) when the file is not a readable image,
    and ``ValueError`` when its header claims more pixels than Pillow decodes
    safely (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 million: a "decompression
    bomb" would need gigabytes of memory).
    """
    from PIL import Image

    size = check_int(size, "size", 1, MAX_SIZE)
    mode = "L" if check_bool(grayscale, "grayscale") else "RGB"
    if not hasattr(path, "read"):  # an open file is fine too; anything else must be a path
        path = as_path(path, "path")
    try:
        with warnings.catch_warnings():
            # Between its limit and twice it Pillow only warns; the check below refuses that case
            # itself, with a message that says what to do, so the warning would say it twice.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as err:  # more than twice Pillow's pixel limit
        raise ValueError(f"{path} is too large to decode safely: {err}") from None
    with image:
        # Only the header has been read so far. Pillow merely warns between its limit and twice
        # it; a file whose header claims that many pixels is refused here, before decoding.
        if image.width * image.height > (Image.MAX_IMAGE_PIXELS or float("inf")):
            raise ValueError(
                f"{path} claims {image.width} x {image.height} pixels, more than Pillow's limit of "
                f"{Image.MAX_IMAGE_PIXELS} (PIL.Image.MAX_IMAGE_PIXELS) for decoding safely"
            )
        # For JPEGs, draft() lets the decoder skip detail below the target size
        # (DCT scaling by 1/2, 1/4 or 1/8): the same look after resizing, much faster.
        image.draft(mode, (size, size))
        image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if grayscale else array


def read_image_folder(
    root, size: int = 64, grayscale: bool = False, classes=None, cache_dir=None, n_jobs: int | None = None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Decode an image folder once, cache it as uint8, and return the cached arrays.

    Parameters are those of :func:`load_image_folder`.

    Returns
    -------
    images : numpy.ndarray
        uint8, shape (N, C, size, size), memory-mapped read-only from the cache.
    labels : numpy.ndarray
        int64, shape (N,).
    classes : list of str
        The class (sub-folder) names; ``classes[k]`` is label ``k``.
    """
    size = check_int(size, "size", 1, MAX_SIZE)
    grayscale = check_bool(grayscale, "grayscale")
    if n_jobs is not None:
        check_int(n_jobs, "n_jobs", 1)
    root, classes, files, labels = _list_folder(root, classes)
    key = fingerprint(files, root=root, size=size, grayscale=grayscale, version=_CACHE_VERSION)

    def build():
        images, keep, skipped = _decode_all(files, size, grayscale, n_jobs)
        return images, {"labels": labels[keep].tolist(), "classes": classes, "skipped": skipped}

    images, meta = cached_array(
        data_dir(cache_dir, "decoded"), f"folder-{key}", build, meta_keys=("labels", "classes", "skipped")
    )
    if meta["skipped"]:
        _warn_skipped(root, meta["skipped"])
    return images, np.asarray(meta["labels"], dtype=np.int64), meta["classes"]


def load_image_folder(
    root, size: int = 64, grayscale: bool = False, classes=None, cache_dir=None, n_jobs: int | None = None
) -> ImageDataset:
    """Load a folder of images (one sub-folder per class) as an :class:`ImageDataset`.

    The first call decodes every image (in parallel threads) and stores a
    uint8 array in the cache folder; later calls with the same files and
    parameters read that array back instead (memory-mapped).

    Parameters
    ----------
    root : str or Path
        The folder holding one sub-folder of images per class.
    size : int
        Images are resized to ``size x size`` pixels, 1 to 4096.
    grayscale : bool
        Convert to one grey channel instead of RGB.
    classes : list of str, optional
        Names of sub-folders of ``root`` to read, in label order (a plain name each: no
        ``/``, no ``..``). Default: every sub-folder, sorted by name.
    cache_dir : str or Path, optional
        Cache folder; default ``$DEEPIMAGING_DATA`` or the user cache folder.
    n_jobs : int, optional
        Decoding threads; default: one per CPU core (PIL releases the GIL while
        decoding, so threads run in parallel). ``1`` decodes serially.

    Returns
    -------
    ImageDataset
        Images float32 in [0, 1] of shape (N, C, size, size), C = 1 or 3.

    Raises
    ------
    FileNotFoundError
        ``root`` (or a requested class folder) does not exist.
    ValueError
        ``root`` holds no class sub-folders, or a class folder holds no images.
    OSError
        The cache folder cannot be written (read-only, disk full); nothing
        half-written is left behind.

    Notes
    -----
    Files that are not readable images (truncated, corrupt, a header claiming
    more pixels than Pillow decodes safely, a link that points nowhere or to
    itself) are skipped with one warning that counts and names them. Hidden
    files and files without an image extension (:data:`IMAGE_EXTENSIONS`) are
    ignored.
    """
    images, labels, classes = read_image_folder(root, size, grayscale, classes, cache_dir, n_jobs)
    return to_dataset(images, labels, classes)


def to_dataset(images: np.ndarray, labels, classes) -> ImageDataset:
    """An :class:`ImageDataset` stored as uint8 from images of shape (N, C, H, W), e.g. a cache memory map.

    Nothing is converted or copied here: the dataset shares the array's memory
    (for a copy-on-write memory map, pages are read from disk as they are
    used) and converts images to float one batch at a time when they are read.
    """
    try:
        images = np.asarray(images)
    except ValueError as err:  # a ragged list
        raise TypeError(
            f"images must be a uint8 array of shape (N, C, H, W); got {type(images).__name__}"
        ) from err
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be uint8 of shape (N, C, H, W); got {images.dtype} of shape {images.shape}"
        )
    return ImageDataset(torch.from_numpy(images), labels, classes)  # which checks labels and classes


def _list_folder(root, classes):
    """(root, class names, image paths, labels) for a folder-per-class layout; errors name the path."""
    root = as_path(root, "root")
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist (expected root/<class>/<image files>)")
    if not root.is_dir():
        raise NotADirectoryError(f"expected a folder with one sub-folder per class; {root} is a file")
    if classes is None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise ValueError(
                f"image folder {root} has no class sub-folders; expected root/<class>/<image files>, "
                "one sub-folder per class"
            )
    classes = _check_class_names(classes)
    files, labels = [], []
    for label, name in enumerate(classes):
        class_dir = root / name
        if not class_dir.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            raise FileNotFoundError(
                f"class folder {class_dir} does not exist (classes names {name!r}; {root} holds {found})"
            )
        found = [class_dir / n for n in _image_names(class_dir)]
        if not found:
            raise ValueError(
                f"class folder {class_dir} holds no images (expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)})"
            )
        files += found
        labels += [label] * len(found)
    return root, classes, files, np.asarray(labels, dtype=np.int64)


def _check_class_names(classes) -> list:
    """Class names as a list of plain folder names: never a string (``"ab"`` is not two classes), never a path."""
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(
            f"classes must be a list of class folder names, e.g. ['eosinophil', 'lymphocyte']; "
            f"got {classes!r} ({type(classes).__name__})"
        )
    classes = list(classes)
    if not classes:
        raise ValueError("classes must name at least one class folder; got an empty list")
    for name in classes:
        if not isinstance(name, str):
            raise TypeError(f"classes must hold folder names (str); got {name!r} ({type(name).__name__})")
        # One path component inside root: "../x", "/etc" or "a/b" would read outside the class layout.
        if name in ("", ".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
            raise ValueError(
                f"classes must hold plain folder names inside root (no '/', no '..'); got {name!r}"
            )
    if len(set(classes)) < len(classes):
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        raise ValueError(f"classes must not repeat a name; {repeated} appear more than once")
    return classes


def _image_names(class_dir: Path) -> list:
    """Sorted names of the image files in ``class_dir``; links that cannot be followed are skipped with a warning."""
    names, broken = [], []
    # os.scandir reads the file type from the directory listing: no stat per file, which keeps
    # a cached load (that must list the folder to check the cache key) fast.
    with os.scandir(class_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") or os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                is_file = entry.is_file()
            except OSError:  # a link to itself or a cycle of links (ELOOP): it names no file
                broken.append(entry.name)
                continue
            if is_file:
                names.append(entry.name)
    if broken:
        warnings.warn(
            f"skipped {len(broken)} link(s) in {class_dir} that lead to no file (a link to itself or a "
            f"cycle of links): {', '.join(sorted(broken)[:10])}",
            UserWarning,
            stacklevel=_outside_this_package(),
        )
    return sorted(names)


def _decode_all(files, size, grayscale, n_jobs):
    """Decode ``files`` into one uint8 array; returns (images, kept indices, skipped relative names)."""
    channels = 1 if grayscale else 3
    images = np.empty((len(files), channels, size, size), dtype=np.uint8)

    def decode(index):
        try:
            images[index] = decode_image(files[index], size, grayscale).transpose(2, 0, 1)
            return True
        except Exception:  # noqa: BLE001 - Pillow's decoders raise many types on damaged files
            # (OSError, SyntaxError, EOFError, struct.error, ...): one bad file is skipped, never the load.
            return False

    n_jobs = _threads(n_jobs)
    if n_jobs == 1:
        ok = [decode(i) for i in range(len(files))]
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            ok = list(pool.map(decode, range(len(files))))
    keep = np.flatnonzero(ok)
    skipped = [f"{files[i].parent.name}/{files[i].name}" for i in np.flatnonzero(~np.asarray(ok))]
    if len(keep) == 0:
        raise ValueError(f"none of the {len(files)} image files could be decoded (e.g. {skipped[:3]})")
    if len(keep) < len(files):
        # Move the good images forward in place (target index <= source index), then cut.
        for target, source in enumerate(keep):
            images[target] = images[source]
        images = images[: len(keep)]
    return images, keep, skipped


def _threads(n_jobs) -> int:
    """Decoding threads: ``n_jobs``, or one per core (at most 32) when None."""
    if n_jobs is None:
        return min(os.cpu_count() or 1, 32)
    return check_int(n_jobs, "n_jobs", 1)


def _warn_skipped(root, skipped):
    names = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
    warnings.warn(
        f"skipped {len(skipped)} unreadable image file(s) under {root}: {names}",
        UserWarning,
        stacklevel=_outside_this_package(),
    )
