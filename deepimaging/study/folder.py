"""The study folder on disk: its layout, its atomic JSON files, the configuration guard, reading a point back.

A reader (or a killed writer) never leaves half a file: every file is written to a
temporary file beside it and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

from .._util import package_version, write_text_atomic
from .config import StudyConfig

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


class StudyConfigMismatch(FileExistsError):
    """The output folder holds results of a different study configuration."""


def point_paths(out_dir, config: StudyConfig) -> dict:
    """``{(sweep, value, seed): path}`` of every point file of ``config`` under ``out_dir``."""
    folder = Path(out_dir) / POINTS_DIR
    return {p: folder / _point_filename(*p) for p in config.points()}


def _point_filename(name, value, seed) -> str:
    # A value written 1.0 in one run and 1 in another is the same point (the configuration's hash
    # reads every value as a float): name it the same way, so a resume finds the point's file.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{name}__v{value}__s{seed}")
    return safe + ".json"


def _prepare_folder(out_dir, config: StudyConfig, *, write: bool = True) -> Path:
    """Create the folder (or check the one there), refuse a different configuration, write ``study.json``.

    With ``write=False`` only the checks run (and the empty folders are made).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output folder {out} exists and is a file, not a folder")
    try:
        (out / POINTS_DIR).mkdir(parents=True, exist_ok=True)
        _check_writable(out)
        _check_writable(out / POINTS_DIR)
    except PermissionError as err:
        raise PermissionError(
            f"cannot write to output folder {out} ({err.strerror or err}); "
            "choose a writable folder or fix its permissions — nothing was changed"
        ) from None
    study_file = out / STUDY_FILE
    if study_file.exists():
        try:
            saved = json.loads(study_file.read_text())
            saved_hash = saved["config_hash"]
        except (ValueError, KeyError, TypeError):
            raise StudyConfigMismatch(
                f"{study_file} is unreadable or not a deepimaging study file; "
                "move it away or choose another output folder"
            ) from None
        if saved_hash != config.hash():
            diffs = _describe_differences(saved.get("config", {}), config.to_dict())
            raise StudyConfigMismatch(
                f"output folder {out} holds results of a different study configuration "
                f"(hash {saved_hash}, now {config.hash()}; differences: {diffs}). "
                "A study resumes only in a folder made with the same configuration; "
                "choose a new output folder, or delete this one to start over."
            )
    else:
        leftovers = [p for p in (out / POINTS_DIR).iterdir() if p.suffix == ".json"]
        if leftovers and study_file.exists():  # another process wrote both meanwhile: check its file
            return _prepare_folder(out_dir, config, write=write)
        if leftovers:
            raise StudyConfigMismatch(
                f"output folder {out} holds point files but no {STUDY_FILE}, so their configuration "
                "is unknown; choose a new output folder"
            )
        if not write:
            return out
        info = {
            "format": FORMAT_VERSION,
            "config_hash": config.hash(),
            "config": config.to_dict(),
            "deepimaging_version": package_version(),
        }
        if not _create_json_exclusive(study_file, info):
            # Another process (a second submission, another array task) created it first: check it.
            return _prepare_folder(out_dir, config, write=write)
    return out


def _describe_differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    diffs = [
        f"{k}: {old.get(k)!r} in the folder, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k)
    ]
    text = "; ".join(diffs) or "none visible (an older format)"
    return text if len(text) < 600 else text[:600] + " ..."


def _read_point(path: Path, config_hash: str, key, action: str = "recomputing it") -> dict | None:
    """The record in ``path`` if it is a valid, finished point of this configuration, else None."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        valid = (
            isinstance(record, dict)
            and record.get("config_hash") == config_hash
            and (record["sweep"], float(record["value"]), record["seed"]) == (key[0], float(key[1]), key[2])
            and isinstance(record["accuracy"], float)
            and isinstance(record["confusion_matrix"], list)
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        valid = False
    if not valid:
        warnings.warn(
            f"point file {path} is corrupt, truncated or from another configuration; {action}", stacklevel=3
        )
        return None
    return record
