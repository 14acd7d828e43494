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

import hashlib
import re
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

from .._checks import check_bool
from .._util import atomic_folder
from .cache import as_path, data_dir

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
        File name, a plain name inside ``path`` (no ``/``, no ``..``); default: the last part of the URL.
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
    TypeError, ValueError
        A malformed argument (checked before anything is downloaded): ``url`` not
        http(s)/ftp, ``known_hash`` not ``"<algorithm>:<hex digest>"``, ``fname`` not a
        plain file name. Also ValueError when the downloaded file's hash differs from
        ``known_hash`` (the file is deleted).
    ConnectionError
        The download failed or was cut off (nothing is kept).
    """
    import pooch
    import requests

    _check_url(url)
    known_hash = _check_known_hash(known_hash, url)
    progress = check_bool(progress, "progress")
    if fname is not None:
        fname = _check_file_name(fname, "fname")
    folder = as_path(path, "path") if path is not None else data_dir(sub="downloads")
    try:
        file = pooch.retrieve(url, known_hash=known_hash, fname=fname, path=folder, progressbar=progress)
    except requests.exceptions.RequestException as err:
        raise ConnectionError(
            f"download of {url} failed or was cut off ({type(err).__name__}); nothing was kept in "
            f"{folder}. Check the connection and call again."
        ) from err
    except ValueError as err:
        # pooch raises ValueError for a hash mismatch and for other problems (no tqdm for the
        # progress bar, a protocol it cannot fetch): say which one happened.
        if "does not match the known hash" in str(err):
            raise ValueError(
                f"download of {url} did not match its known hash and was deleted: {err}"
            ) from err
        raise ValueError(f"download of {url} failed: {err}") from err
    return Path(file)


_URL_SCHEMES = ("http", "https", "ftp")


def _check_url(url) -> None:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str; got {url!r} ({type(url).__name__})")
    parts = urlsplit(url)
    if parts.scheme.lower() not in _URL_SCHEMES or not parts.netloc:
        raise ValueError(f"url must be an http, https or ftp address such as https://host/file; got {url!r}")


def _check_known_hash(known_hash, url) -> str:
    """``"<algorithm>:<hex>"`` (or bare SHA-256 hex) with a digest of the algorithm's length, lower-cased."""
    if not isinstance(known_hash, str) or not known_hash:
        raise ValueError(
            f"known_hash is required to download {url}, as 'sha256:<hex digest>' or 'md5:<hex digest>'; "
            f"got {known_hash!r}"
        )
    algorithm, _, digest = known_hash.rpartition(":")
    algorithm = (algorithm or "sha256").lower()
    if algorithm not in hashlib.algorithms_guaranteed or algorithm.startswith("shake"):
        raise ValueError(
            f"known_hash must name a hash algorithm such as sha256 or md5; got {known_hash!r} "
            f"(algorithm {algorithm!r})"
        )
    length = 2 * hashlib.new(algorithm).digest_size
    if not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", digest):
        raise ValueError(
            f"known_hash must be {algorithm}: followed by {length} hexadecimal digits; got {known_hash!r}"
        )
    return f"{algorithm}:{digest.lower()}"


def _check_file_name(fname, name: str) -> str:
    """A plain file name: one path component, so the file lands inside its folder."""
    if not isinstance(fname, str):
        raise TypeError(f"{name} must be a file name (str); got {fname!r} ({type(fname).__name__})")
    if fname in ("", ".", "..") or "/" in fname or "\\" in fname or "\0" in fname:
        raise ValueError(
            f"{name} must be a plain file name without '/', '\\' or '..', so the file stays in its folder; "
            f"got {fname!r}"
        )
    return fname


def extract_archive(archive, target) -> Path:
    """Unpack a ``.zip`` or ``.tar(.gz/.bz2/.xz)`` archive into ``target`` safely.

    If ``target`` already exists and is not empty it is returned unchanged: it
    can only exist complete, because the archive is unpacked into a temporary
    folder beside it that is renamed to ``target`` at the end. An empty
    ``target`` folder (made by hand, or by ``mkdir``) is filled.

    Raises
    ------
    UnsafeArchiveError
        A member has an absolute path, a path that leaves ``target`` (``../``),
        or is a symbolic/hard link or device file. Nothing is extracted.
    ValueError
        The file is neither a zip nor a tar archive.
    """
    archive, target = as_path(archive, "archive"), as_path(target, "target")
    if _is_unpacked(target):
        return target
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"cannot unpack {archive} into {target}: a file of that name exists")
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = atomic_folder(target)
    except OSError as err:
        raise type(err)(err.errno, f"cannot unpack {archive} into {target}: {err.strerror}") from err
    with staging as tmp:
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
    return target


def _is_unpacked(target: Path) -> bool:
    """Whether ``target`` is a folder with something in it (an empty folder holds no unpacked archive)."""
    return target.is_dir() and any(target.iterdir())


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
    root = as_path(path, "path") if path is not None else data_dir(sub="downloads")
    target = root / _check_file_name(folder, "folder")
    if _is_unpacked(target):
        return target
    archive = fetch_file(url, known_hash, fname=fname, path=root)
    try:
        return extract_archive(archive, target)
    except UnsafeArchiveError:
        archive.unlink(missing_ok=True)  # a refused archive is not kept as if it were usable
        raise
