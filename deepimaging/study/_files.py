"""Files of a study folder, written atomically: a reader (or a killed writer) never leaves half a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

FORMAT_VERSION = 1
STUDY_FILE = "study.json"
POINTS_DIR = "points"


def _check_writable(folder: Path) -> None:
    """Raise PermissionError (or OSError) unless a file can be created in ``folder``: a real probe, not ``os.access``."""
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
    os.close(fd)
    os.remove(probe)


def _write_json_atomic(path, data) -> None:
    """Write JSON to a temporary file beside ``path``, then rename: readers never see half a file."""
    _write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _write_text_atomic(path, text: str) -> None:
    """Write ``text`` to a temporary file in the same folder, flush it to disk, then ``os.replace`` it into place.

    ``os.replace`` is atomic on POSIX and Windows within one file system: ``path``
    holds either its old content or the new one, never a part.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are shared like any other file
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
