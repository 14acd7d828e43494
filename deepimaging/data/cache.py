"""Where downloaded and decoded data live, and how files get there safely.

Decoding thousands of JPEGs takes seconds to minutes; reading the same pixels
back from one uint8 ``.npy`` file takes milliseconds. Loaders therefore decode
once and keep the result in a cache folder:

1. the ``cache_dir`` argument of the loader, when given;
2. else the ``DEEPIMAGING_DATA`` environment variable;
3. else the user's cache folder (``platformdirs.user_cache_dir("deepimaging")``,
   e.g. ``~/.cache/deepimaging`` on Linux).

Every file is written *atomically*: first to a temporary file in the same
folder, then renamed over the final name with :func:`os.replace`. A rename
within one file system either happens completely or not at all, so a crash,
a full disk or Ctrl-C never leaves a half-written file that a later call
would mistake for a complete one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import _util

__all__ = ["data_dir", "fingerprint", "atomic_write", "save_array", "save_json", "load_array", "cached_array"]

ENV_VAR = "DEEPIMAGING_DATA"


def data_dir(cache_dir=None, sub: str | None = None) -> Path:
    """The folder that holds deepimaging's downloads and decode caches.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Use this folder. Default: ``$DEEPIMAGING_DATA``, else the user cache
        folder from ``platformdirs``.
    sub : str, optional
        A sub-folder inside it (e.g. ``"decoded"``, ``"medmnist"``).

    Returns
    -------
    Path
        The folder (not created here; writers create it when they first write).
    """
    if cache_dir is None:
        cache_dir = os.environ.get(ENV_VAR) or _user_cache_dir()
    path = as_path(cache_dir, "cache_dir")
    if sub is not None and (not isinstance(sub, str) or sub in (".", "..") or "/" in sub or os.sep in sub):
        raise ValueError(
            f"sub must be a plain folder name inside the data folder (no '/', no '..'); got {sub!r}"
        )
    return path / sub if sub else path


def as_path(value, name: str) -> Path:
    """``value`` (a str or path-like) as a :class:`~pathlib.Path` with ``~`` expanded; a TypeError naming ``name`` otherwise."""
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a path (str or pathlib.Path); got {value!r} ({type(value).__name__})"
        )
    if not str(value):
        raise ValueError(f"{name} must be a path; got an empty string")
    if "\0" in str(value):
        raise ValueError(f"{name} must be a path without NUL characters; got {str(value)!r}")
    return Path(value).expanduser()


def _user_cache_dir() -> str:
    import platformdirs

    return platformdirs.user_cache_dir("deepimaging")


def fingerprint(files, root=None, **params) -> str:
    """A short hash naming a cache entry: the files' names, sizes and modification times, plus ``params``.

    Any added, removed, renamed, resized or touched file changes the hash, and so
    does any loader parameter (image size, colour mode), so a stale cache entry is
    never read back for changed inputs.
    """
    prefix = os.path.join(str(root), "") if root is not None else ""
    entries = []
    for file in files:
        file = str(file)
        stat = os.stat(file)
        # Names relative to the root (a plain prefix cut: os.path.relpath costs more than the stat).
        name = (
            file[len(prefix) :] if prefix and file.startswith(prefix) else os.path.relpath(file, root or ".")
        )
        entries.append((name.replace(os.sep, "/"), stat.st_size, stat.st_mtime_ns))
    text = json.dumps({"files": entries, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def atomic_write(path, write: Callable) -> Path:
    """Write a file so that it either appears complete or not at all.

    ``write(f)`` receives a binary file object opened on a temporary file in the
    same folder; when it returns, the file is flushed, synced and renamed to
    ``path`` with :func:`os.replace`. On any error (full disk, permission,
    interrupt) the temporary file is removed and the error is re-raised with a
    message naming the folder, so nothing half-written remains.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _util.atomic_write(path, write)
    except OSError as err:
        raise _explain(err, folder) from err


def _explain(err: OSError, folder: Path) -> OSError:
    """The same OSError type with a message that says what to do about it."""
    if err.errno == errno.ENOSPC:
        hint = (
            f"the disk holding the cache folder {folder} is full; free space there, or pass "
            f"cache_dir= (or set {ENV_VAR}) to a folder on another disk"
        )
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = (
            f"the cache folder {folder} is not writable; pass cache_dir= (or set {ENV_VAR}) "
            "to a folder you can write to"
        )
    else:
        hint = f"could not write to the cache folder {folder}: {err.strerror or err}"
    return type(err)(err.errno, hint)


def save_array(path, array: np.ndarray) -> Path:
    """Save ``array`` as a ``.npy`` file atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def save_json(path, obj) -> Path:
    """Save ``obj`` as JSON atomically."""
    return atomic_write(path, lambda f: f.write(json.dumps(obj).encode()))


def load_array(path, mmap: bool = True) -> np.ndarray:
    """Read a ``.npy`` file, memory-mapped copy-on-write by default.

    A memory map reads pixels from the page cache only when they are touched,
    so opening a 600 MB cache takes milliseconds. Copy-on-write (``mode="c"``)
    lets the array be changed in memory (a torch tensor can share it) while
    the file on disk never is.
    """
    return np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)


def cached_array(folder, name: str, build: Callable, meta_keys=()) -> tuple[np.ndarray, dict]:
    """Return ``(array, meta)`` from ``folder/name.npy`` and ``name.json``, building them first if absent.

    ``build()`` returns ``(array, meta)`` with ``meta`` a JSON-able dict. The
    array is written first and the JSON last, each atomically, so the JSON's
    presence means the entry is complete. The array comes back memory-mapped.

    An entry that exists but cannot be read back (a ``.npy`` cut short by a full
    disk or copied half-way, a ``.json`` that is not JSON or lacks one of
    ``meta_keys``) is damaged: it is deleted and rebuilt once, with a warning,
    instead of failing on every later call until someone finds the cache folder.
    """
    folder = Path(folder)
    array_path, meta_path = folder / f"{name}.npy", folder / f"{name}.json"
    if meta_path.exists() and array_path.exists():
        try:
            return _read_entry(array_path, meta_path, meta_keys)
        except (OSError, ValueError, EOFError) as err:  # what np.load and json raise on damaged files
            warnings.warn(
                f"the cache entry {array_path.with_suffix('')} is damaged ({err}); rebuilding it",
                UserWarning,
                stacklevel=_outside_this_package(),
            )
            for path in (meta_path, array_path):  # the JSON first: without it the entry counts as absent
                try:
                    path.unlink(missing_ok=True)
                except OSError as unlink_err:
                    raise type(unlink_err)(
                        unlink_err.errno,
                        f"the damaged cache file {path} cannot be removed; delete it by hand",
                    ) from err
    array, meta = build()
    save_array(array_path, array)
    del array
    try:
        save_json(meta_path, meta)
    except BaseException:
        array_path.unlink(missing_ok=True)  # an array without its JSON is no cache entry
        raise
    return _read_entry(array_path, meta_path, meta_keys)


def _read_entry(array_path: Path, meta_path: Path, meta_keys) -> tuple[np.ndarray, dict]:
    """The array (memory-mapped) and the metadata of one cache entry; ValueError if either is damaged."""
    meta = json.loads(meta_path.read_text())
    if not isinstance(meta, dict) or any(key not in meta for key in meta_keys):
        raise ValueError(f"{meta_path} does not hold the keys {list(meta_keys)}")
    return load_array(array_path), meta


def _outside_this_package() -> int:
    """The ``stacklevel`` at which ``warnings.warn`` names the first caller outside ``deepimaging.data``.

    The loaders call one another (``load_kaggle_blood_cells`` calls ``load_image_folder``, which
    calls ``read_image_folder``, which calls :func:`cached_array`), so no fixed stacklevel names
    the student's line from all of them: a warning would name a line of this package instead. Level 1 is the function that
    calls ``warnings.warn``; each step out to its caller adds one. (Python 3.12's
    ``skip_file_prefixes`` does this, but the package supports 3.10.)
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(__package__ + "."):
        frame, level = frame.f_back, level + 1
    return level
