"""Verified downloads and safe archive extraction.

Links in course notebooks break and downloads get cut off. Every file the
toolkit fetches therefore has a known hash, and is fetched with pooch
(https://www.fatiando.org/pooch), which

* streams the download into a temporary file in the target folder,
* checks the hash of that temporary file,
* renames it to its final name only when the hash matches, and deletes it
  otherwise (or when the connection breaks),

so the final name only ever holds a complete, verified file. Archives are then
unpacked into a temporary folder, checked member by member *before* anything is
written (no absolute paths, no ``..`` escaping the target, no links or device
files), and the folder is renamed into place when complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from .cache import data_dir

__all__ = ["fetch_file", "extract_archive", "fetch_archive", "UnsafeArchiveError"]


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target folder, or is a link or device."""


def fetch_file(
    url: str, known_hash: str, fname: str | None = None, path=None, progress: bool = False
) -> Path:
    """Download ``url`` to ``path/fname`` unless a file with the right hash is already there.

    Parameters
    ----------
    url : str
    known_hash : str
        ``"md5:<hex>"``, ``"sha256:<hex>"`` (or a bare SHA-256 hex string).
        Required: an unverified file is never kept.
    fname : str, optional
        File name; default: the last part of the URL.
    path : str or Path, optional
        Folder; default ``<data_dir>/downloads`` (see :func:`deepimaging.data.cache.data_dir`).
    progress : bool
        Show a progress bar (needs tqdm).

    Returns
    -------
    Path
        The verified file.

    Raises
    ------
    ValueError
        The downloaded file's hash differs from ``known_hash`` (the file is deleted).
    ConnectionError
        The download failed or was cut off (nothing is kept).
    """
    import pooch
    import requests

    if not known_hash:
        raise ValueError(f"known_hash is required to download {url}; got {known_hash!r}")
    folder = Path(path) if path is not None else data_dir(sub="downloads")
    try:
        file = pooch.retrieve(url, known_hash=known_hash, fname=fname, path=folder, progressbar=progress)
    except requests.exceptions.RequestException as err:
        raise ConnectionError(
            f"download of {url} failed or was cut off ({type(err).__name__}); nothing was kept in "
            f"{folder}. Check the connection and call again."
        ) from err
    except ValueError as err:
        raise ValueError(f"download of {url} did not match its known hash and was deleted: {err}") from err
    return Path(file)


def extract_archive(archive, target) -> Path:
    """Unpack a ``.zip`` or ``.tar(.gz/.bz2/.xz)`` archive into ``target`` safely.

    If ``target`` already exists it is returned unchanged: it can only exist
    complete, because the archive is unpacked into a temporary folder beside
    it that is renamed to ``target`` at the end.

    Raises
    ------
    UnsafeArchiveError
        A member has an absolute path, a path that leaves ``target`` (``../``),
        or is a symbolic/hard link or device file. Nothing is extracted.
    ValueError
        The file is neither a zip nor a tar archive.
    """
    archive, target = Path(archive), Path(target)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    is_link = stat.S_ISLNK(info.external_attr >> 16)
                    _check_member(archive, info.filename, tmp, "link" if is_link else None)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    kind = None if (member.isfile() or member.isdir()) else "link or special file"
                    _check_member(archive, member.name, tmp, kind)
                tf.extractall(tmp, members=members, **_tar_filter())
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive")
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _check_member(archive, name: str, root: Path, kind: str | None) -> None:
    if kind is not None:
        raise UnsafeArchiveError(f"refusing to extract {archive}: member {name!r} is a {kind}")
    if (
        PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).is_absolute()
        or PureWindowsPath(name).drive
    ):
        raise UnsafeArchiveError(f"refusing to extract {archive}: member {name!r} has an absolute path")
    destination = (root / name).resolve()
    if not destination.is_relative_to(root.resolve()):
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {name!r} would be written outside the target "
            "folder (path traversal)"
        )


def _tar_filter() -> dict:
    # Python >= 3.11.4 (and security backports) also filter tar members themselves; use it when present.
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def fetch_archive(url: str, known_hash: str, folder: str, path=None, fname: str | None = None) -> Path:
    """Download an archive with :func:`fetch_file` and unpack it into ``path/folder``.

    Returns the unpacked folder. A second call finds the folder and downloads
    nothing. An archive refused by :func:`extract_archive` is deleted.
    """
    root = Path(path) if path is not None else data_dir(sub="downloads")
    target = root / folder
    if target.is_dir():
        return target
    archive = fetch_file(url, known_hash, fname=fname, path=root)
    try:
        return extract_archive(archive, target)
    except UnsafeArchiveError:
        archive.unlink(missing_ok=True)  # a refused archive is not kept as if it were usable
        raise
