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
