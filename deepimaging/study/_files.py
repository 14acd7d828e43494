"""Files of a study folder, written atomically: a reader (or a killed writer) never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .._util import write_text_atomic

# The study's files share the package's one atomic writer (results.py writes its CSVs with it).
_write_text_atomic = write_text_atomic

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
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def _create_json_exclusive(path, data) -> bool:
    """Create ``path`` with ``data`` only if no such file exists; return whether this call created it.

    The JSON goes to a temporary file first, which is then hard-linked to ``path``: a link
    fails when the name exists, so of two processes that race to create the file exactly
    one wins, and nobody ever reads half a file. The loser compares configurations instead.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, indent=1, allow_nan=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.remove(tmp)
