"""A study's points one at a time, for array jobs, and a study configuration read from a JSON file."""

from __future__ import annotations

import json
from pathlib import Path

from .config import StudyConfig
from .point import _validate_layers, run_point
from .splits import load_data

__all__ = ["load_config", "run_point_number"]


def load_config(path) -> StudyConfig:
    """Read a study configuration from a JSON file: a ``study.json`` of another folder, or the bare configuration.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        When ``path`` is not a file.
    ValueError
        When the file is not UTF-8 JSON holding an object (a dict), naming the file.
    TypeError
        When a key of the configuration has a value of the wrong type (see :class:`StudyConfig`).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"the study configuration {path} is a folder; give a JSON file such as study.json"
        )
    if not path.is_file():
        raise FileNotFoundError(f"the study configuration {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"the study configuration {path} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except ValueError as err:
        raise ValueError(f"the study configuration {path} is not valid JSON: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]  # a study folder's study.json: the configuration beside its hash
    if not isinstance(data, dict):
        raise ValueError(
            f"the study configuration {path} must hold a JSON object (keys such as sweeps, seeds); "
            f"got a JSON {type(data).__name__}"
        )
    try:
        return StudyConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise type(err)(f"the study configuration {path}: {err}") from None


def _no_constants(name: str):
    # json accepts NaN and Infinity, which no study parameter can take; say so with the file's name.
    raise ValueError(f"{name} is not a number a study can use")


def run_point_number(
    config: StudyConfig, number: int, out_dir, *, progress: bool = True
) -> tuple[tuple, dict]:
    """Run point ``number`` (0-based, in the order of ``config.points()``) into ``out_dir``.

    This is what a cluster array job runs: task K computes point K, and all the
    tasks write into one shared folder. The layers are built once on the real
    data's image shape first, so a bad value fails before anything trains.

    Returns
    -------
    tuple
        ``((sweep, value, seed), record)`` with the record of :func:`run_point`.
    """
    points = config.points()
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < len(points):
        raise ValueError(
            f"number must be a point number in [0, {len(points) - 1}] for this study; got {number!r}"
        )
    train, _, _ = load_data(config)
    _validate_layers(config, train.image_shape)
    key = points[number]
    return key, run_point(config, *key, out_dir=out_dir, progress=progress)
