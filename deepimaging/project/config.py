"""A class project's ``project.toml``: its schema, and every key checked with the file and line of a mistake.

Every key of ``project.toml`` is checked before anything trains: a missing or
misspelled key, an unknown layer or dataset, a value of the wrong type or range
is a :class:`ProjectConfigError` naming the file, the line and the allowed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..study import StudyConfig, Sweep

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["CONFIG_NAME", "Project", "ProjectConfigError", "load_project"]

CONFIG_NAME = "project.toml"

# Each section: key -> (type or tuple of types, required?). Types are checked as written in TOML.
_SCHEMA = {
    "project": {
        "title": (str, True),
        "authors": (list, True),
        "description": (str, False),
        "code_url": (str, False),
        "data_url": (str, False),
    },
    "dataset": {
        "name": (str, False),
        "size": (int, False),
        "n_per_class": (int, False),
        "test": ((int, float), False),
        "val": ((int, float), False),
        "seed": (int, False),
        "options": (dict, False),
    },
    "sweep": {
        "layer": (str, True),
        "values": (list, True),
        "label": (str, False),
        "options": (dict, False),
    },
    "analysis": {"parameter": (str, False), "metric": (str, False)},
    "model": {"widths": (list, False)},
    "training": {
        "epochs": (int, False),
        "seeds": (list, False),
        "lr": ((int, float), False),
        "batch_size": (int, False),
        "weight_decay": ((int, float), False),
        "device": (str, False),
        "patience": (int, False),
        "save_weights": (bool, False),
    },
}
_REQUIRED_SECTIONS = ("project", "sweep")
# Where each project key goes in StudyConfig.
_STUDY_KEYS = {
    ("dataset", "name"): "dataset",
    ("dataset", "size"): "size",
    ("dataset", "n_per_class"): "n_per_class",
    ("dataset", "test"): "test",
    ("dataset", "val"): "val",
    ("dataset", "seed"): "data_seed",
    ("dataset", "options"): "dataset_options",
    ("analysis", "parameter"): "parameter",
    ("analysis", "metric"): "metric",
    ("model", "widths"): "widths",
    ("training", "epochs"): "epochs",
    ("training", "seeds"): "seeds",
    ("training", "lr"): "lr",
    ("training", "batch_size"): "batch_size",
    ("training", "weight_decay"): "weight_decay",
    ("training", "device"): "device",
    ("training", "patience"): "patience",
    ("training", "save_weights"): "save_weights",
}


class ProjectConfigError(ValueError):
    """A ``project.toml`` that cannot be run; the message names the file, line and allowed values."""


@dataclass
class Project:
    """A loaded project: its folder, the text of its page and paper, and the study to run."""

    path: Path
    title: str
    authors: list
    description: str
    code_url: str
    data_url: str
    study: StudyConfig


def load_project(path, *, smoke: bool | None = None) -> Project:
    """Read and check ``path/project.toml``; return the :class:`Project` it describes.

    In smoke mode (``smoke=True``, or :func:`deepimaging.train.smoke_mode`) the study
    shrinks to a few images per class and one epoch, keeping the same layers and values.
    """
    from ..train import smoke_mode

    path = Path(path)
    file = path / CONFIG_NAME
    if not file.is_file():
        raise FileNotFoundError(
            f"no {CONFIG_NAME} in {path}: is this a project folder? Create one with `deepimaging new-project {path}`"
        )
    try:
        text = file.read_text(encoding="utf-8")  # TOML files are UTF-8 by definition
    except UnicodeDecodeError as err:
        raise ProjectConfigError(
            f"{file}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8 in your editor"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProjectConfigError(f"{file}: not valid TOML: {err}") from None
    _check_schema(data, text, file)
    _check_finite(data, text, file)

    project = data["project"]
    authors = project["authors"]
    if not authors or not all(isinstance(a, str) and a.strip() for a in authors):
        raise ProjectConfigError(_where(file, text, "project", "authors") + "authors must be a list of names")
    settings = {"sweeps": []}
    for (section, key), field_name in _STUDY_KEYS.items():
        if key in data.get(section, {}):
            settings[field_name] = data[section][key]
    for i, sweep in enumerate(data["sweep"]):
        try:
            settings["sweeps"].append(Sweep(**sweep))
        except (TypeError, ValueError) as err:
            raise ProjectConfigError(_where(file, text, "sweep", "values", i) + str(err)) from None
    try:
        study = StudyConfig(**settings)
    except (TypeError, ValueError) as err:
        key = _study_key_in(str(err))
        raise ProjectConfigError(_where(file, text, *key) + str(err)) from None
    if smoke if smoke is not None else smoke_mode():
        # Checked as written above; only then shrunk, so smoke mode never hides a bad value.
        study = dataclasses.replace(study, n_per_class=min(study.n_per_class or 12, 12), epochs=1)
    image_size = _check_dataset(study, text, file)
    _check_layers(study, image_size, text, file)
    return Project(
        path=path,
        title=project["title"],
        authors=list(authors),
        description=project.get("description", "").strip(),
        code_url=project.get("code_url", ""),
        data_url=project.get("data_url", ""),
        study=study,
    )


def _check_schema(data: dict, text: str, file: Path) -> None:
    for section in data:
        if section not in _SCHEMA:
            hint = _did_you_mean(section, _SCHEMA)
            raise ProjectConfigError(
                f"{file}, line {_line_of(text, section)}: unknown section [{section}]{hint}; "
                f"allowed sections: {sorted(_SCHEMA)}"
            )
    for section in _REQUIRED_SECTIONS:
        if section not in data:
            header = "[[sweep]]" if section == "sweep" else f"[{section}]"
            raise ProjectConfigError(f"{file}: the section {header} is missing; it is required")
    if not isinstance(data["sweep"], list):
        raise ProjectConfigError(
            f"{file}, line {_line_of(text, 'sweep')}: write each sweep as a [[sweep]] table "
            "(double brackets), with layer and values"
        )
    for section, content in data.items():
        tables = content if section == "sweep" else [content]
        for index, table in enumerate(tables):
            if not isinstance(table, dict):
                raise ProjectConfigError(f"{file}: [{section}] must be a table of keys")
            schema = _SCHEMA[section]
            for key, value in table.items():
                if key not in schema:
                    hint = _did_you_mean(key, schema)
                    raise ProjectConfigError(
                        _where(file, text, section, key, index)
                        + f"unknown key {key!r} in [{section}]{hint}; allowed keys: {sorted(schema)}"
                    )
                expected, _ = schema[key]
                # A TOML true/false is a bool, which Python also counts as an int: only a bool key takes one.
                if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
                    names = " or ".join(
                        t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))
                    )
                    raise ProjectConfigError(
                        _where(file, text, section, key, index)
                        + f"{key} must be {_article(names)} {names}; got {value!r} ({type(value).__name__})"
                    )
            for key, (_, required) in schema.items():
                if required and key not in table:
                    raise ProjectConfigError(
                        f"{file}, line {_line_of(text, section, None, index)}: [{section}] needs the key {key!r}"
                    )


def _check_finite(data: dict, text: str, file: Path) -> None:
    """TOML can write ``inf`` and ``nan``; no setting of a project can take them."""
    for section, content in data.items():
        for index, table in enumerate(content if section == "sweep" else [content]):
            for key, value in table.items():
                values = value if isinstance(value, list) else [value]
                bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
                if bad:
                    raise ProjectConfigError(
                        _where(file, text, section, key, index)
                        + f"{key} must hold finite numbers; got {bad[0]} in {value!r}"
                    )


def _check_dataset(study: StudyConfig, text: str, file: Path) -> int | None:
    """Check the dataset's name, its options and the image size against the network; return the size.

    The loader is found and its options bound to its signature without loading
    anything, so a typo fails now, with its line, rather than after the first
    points have trained. Returns the images' height and width where the
    configuration decides it (``None`` where only the data will tell).
    """
    from .. import data

    try:
        loader = data.dataset_loader(study.dataset)
    except ValueError as err:
        hint = _did_you_mean(study.dataset, data.dataset_names())
        raise ProjectConfigError(_where(file, text, "dataset", "name") + f"{err}{hint}") from None
    # The engine passes these to the simulated smear itself; a loader gets the size unless options set it.
    given = {"n_per_class": 1, "size": study.size, "seed": 0} if study.dataset == "blood_smear" else {}
    parameters = inspect.signature(loader).parameters
    if study.dataset != "blood_smear" and "size" in parameters and "size" not in study.dataset_options:
        given["size"] = study.size  # as the study engine passes it
    try:
        inspect.signature(loader).bind(**study.dataset_options, **given)
    except TypeError as err:
        allowed = sorted(set(parameters) - set(given))
        raise ProjectConfigError(
            _where(file, text, "dataset", "options")
            + f"the options {study.dataset_options} do not fit the {study.dataset} loader ({err}); "
            f"its options are {allowed}"
        ) from None
    size = study.dataset_options.get("size", study.size) if "size" in parameters else None
    if isinstance(size, int) and 2 ** len(study.widths) > size:
        raise ProjectConfigError(
            _where(file, text, "model", "widths")
            + f"widths has {len(study.widths)} blocks, and each halves the image: a {size}x{size} image "
            f"allows at most {int(math.log2(size))} blocks; got widths = {study.widths}"
        )
    return size if isinstance(size, int) else None


def _check_layers(study: StudyConfig, image_size: int | None, text: str, file: Path) -> None:
    """Build every layer once (where the image shape is known) so that bad values fail now."""
    from .. import physics

    for index, sweep in enumerate(study.sweeps):
        if sweep.layer not in physics.LAYERS:
            hint = _did_you_mean(sweep.layer, physics.LAYERS)
            raise ProjectConfigError(
                _where(file, text, "sweep", "layer", index)
                + f"unknown layer {sweep.layer!r}{hint}; allowed layers: {sorted(physics.LAYERS)}"
            )
        if study.dataset != "blood_smear" or image_size is None:
            continue  # the channel count is known only once the data is loaded: `run` checks then
        for value in sweep.values:
            try:
                physics.make_layer(
                    sweep.layer, value, image_shape=(3, image_size, image_size), **sweep.options
                )
            except (TypeError, ValueError, OverflowError) as err:
                raise ProjectConfigError(_where(file, text, "sweep", "values", index) + str(err)) from None


def _study_key_in(message: str) -> tuple:
    """Map a StudyConfig error back to the project key it names, for the line number."""
    for (section, key), field_name in _STUDY_KEYS.items():
        if re.search(rf"\b{field_name}\b", message):
            return section, key
    return ("project", None)


def _where(file: Path, text: str, section: str, key: str | None, index: int = 0) -> str:
    return f"{file}, line {_line_of(text, section, key, index)}: "


def _line_of(text: str, section: str, key: str | None = None, index: int = 0) -> int:
    """1-based line of ``key`` in the ``index``-th ``[section]`` (or ``[[section]]``) of ``text``."""
    lines = text.splitlines()
    header = re.compile(rf"^\s*\[\[?\s*{re.escape(section)}\s*\]\]?\s*(#.*)?$")
    starts = [i for i, line in enumerate(lines) if header.match(line)]
    if not starts:
        return 1
    start = starts[min(index, len(starts) - 1)]
    if key is None:
        return start + 1
    for i in range(start + 1, len(lines)):
        if re.match(r"^\s*\[", lines[i]):
            break
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
            return i + 1
    return start + 1


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"
