"""Parameter sweeps: the class-project engine.

A study asks one question: *how does a parameter of the imaging system change
classification accuracy?* For every value of a physical-layer parameter and
every seed it builds ``PhysicalModel(make_layer(layer, value), BasicCNN)``,
trains it on the training split, and records on the test split the accuracy,
the per-class precision/recall/F1, the confusion matrix and the macro
one-vs-rest ROC AUC. One (sweep, value, seed) triple is a **point**.

How the results are kept (the output folder)::

    OUT/
      study.json            the configuration and its hash (written first)
      points/               one JSON file per finished point, written atomically
        quantize__v1__s0.json
        ...
      results.json          every point plus the summary (mean and spread over seeds)
      results.csv           the summary, one row per (sweep, value)
      points.csv            one row per point

- **Resume**: rerunning a study into the same folder computes only the points
  that have no valid file yet, so a killed sweep loses at most the points that
  were running.
- **Same configuration only**: a folder whose ``study.json`` holds a different
  configuration is refused (:class:`StudyConfigMismatch`); it is never mixed
  or overwritten. A folder resumes only when the configuration hash matches.
- **Corrupt points**: a point file that does not parse, belongs to another
  configuration, or lacks a field is recomputed (with a warning).
- **One point on its own**: :func:`run_point` (and ``deepimaging study
  --point K``) runs a single point, so a cluster scheduler can run the points
  as an array job into one shared folder.
- **Parallel**: points run in separate processes with joblib; each process
  uses one PyTorch thread so that ``jobs`` processes do not oversubscribe the
  cores. Because every point trains single-threaded, the numbers do not
  depend on ``jobs``: the same seeds give the same numbers.

Examples
--------
>>> config = StudyConfig(sweeps=[Sweep("quantize", [1, 8])], seeds=[0, 1, 2])  # doctest: +SKIP
>>> results = run_study(config, "bit_depth_study", jobs=2)  # doctest: +SKIP
>>> results.summary()[0]["accuracy_mean"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import functools
import hashlib
import inspect
import io
import json
import numbers
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._checks import check_int, check_number
from .data import ImageDataset, simulate_blood_smear, split

__all__ = [
    "Sweep",
    "StudyConfig",
    "StudyResults",
    "StudyConfigMismatch",
    "bit_depth_config",
    "run_study",
    "run_point",
    "load_results",
    "load_data",
    "point_paths",
    "add_cli",
]

FORMAT_VERSION = 1
STUDY_FILE = "study.json"
POINTS_DIR = "points"


class StudyConfigMismatch(FileExistsError):
    """The output folder holds results of a different study configuration."""


# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Sweep:
    """One physical layer and the values of its parameter to try.

    Parameters
    ----------
    layer : str
        A name in ``deepimaging.physics.LAYERS`` (e.g. ``"quantize"``, ``"binning"``).
    values : list of int or float
        The parameter values; each becomes ``make_layer(layer, value, image_shape, **options)``.
    options : dict
        Further keyword arguments of the layer (fixed for the whole sweep).
    label : str, optional
        Name of the sweep in tables and legends; defaults to ``layer``. Labels must
        be unique within a study (e.g. the same layer with two option sets).
    """

    layer: str
    values: list
    options: dict = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self):
        if not isinstance(self.layer, str) or not self.layer:
            raise TypeError(f"layer must be a non-empty string naming a physical layer; got {self.layer!r}")
        if isinstance(self.values, (str, bytes)) or not hasattr(self.values, "__iter__"):
            raise TypeError(f"values must be a list of numbers; got {self.values!r}")
        values = list(self.values)
        if not values:
            raise ValueError(f"values of sweep {self.layer!r} must hold at least one value; got []")
        for v in values:
            check_number(v, f"values of sweep {self.layer!r}")
        # Integers stay ints (also NumPy ones) so that file names and tables read "4", not "4.0".
        self.values = [int(v) if isinstance(v, numbers.Integral) else float(v) for v in values]
        if len(set(map(float, self.values))) != len(self.values):
            raise ValueError(f"values of sweep {self.layer!r} must not repeat; got {self.values}")
        if not isinstance(self.options, dict):
            raise TypeError(f"options must be a dict of layer keyword arguments; got {self.options!r}")
        self.options = dict(self.options)
        if self.label is None:
            self.label = self.layer
        if not isinstance(self.label, str) or not self.label:
            raise TypeError(f"label must be a non-empty string; got {self.label!r}")

    @property
    def name(self) -> str:
        """The sweep's key in results and file names (its label)."""
        return self.label


@dataclass
class StudyConfig:
    """Everything that decides a study's numbers; its hash names the output folder's contents.

    Parameters
    ----------
    sweeps : list of Sweep (or dicts with the same keys)
        The layers and values to sweep. Several sweeps share the x axis of the
        accuracy plot (e.g. fixed vs learned discretization, both in bits).
    seeds : list of int
        One training per seed and value (model initialisation and batch order);
        the spread over seeds gives the error bars. Use at least 3.
    dataset : str
        ``"blood_smear"`` (built in, simulated) or the name of a loader in
        :mod:`deepimaging.data` (called with ``dataset_options``).
    dataset_options : dict
        Keyword arguments of the loader.
    size : int
        Image height and width in pixels (passed to loaders that take ``size``).
    n_per_class : int or None
        Images per class: simulated ones for ``blood_smear``, otherwise a seeded
        subsample (None keeps all).
    data_seed : int
        Seed of the simulation, the subsample and the train/test split. It is
        fixed across points so that points differ only by the layer and ``seeds``.
    val, test : float
        Fractions of the data for validation and test. The study does no model
        selection (cosine decay to zero, the last model is tested), so ``val``
        defaults to 0 and only reports a learning curve when set.
    epochs, lr, batch_size, weight_decay : training settings of :func:`deepimaging.train.fit`.
    widths : list of int
        Channels of the :class:`~deepimaging.models.BasicCNN` blocks.
    device : str
        ``"cpu"`` (default, reproducible), ``"auto"``, ``"cuda"`` or ``"mps"``.
    parameter : str
        Axis label of the swept parameter, e.g. ``"sensor bits"``.
    """

    sweeps: list
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    dataset: str = "blood_smear"
    dataset_options: dict = field(default_factory=dict)
    size: int = 32
    n_per_class: int | None = 300
    data_seed: int = 0
    val: float = 0.0
    test: float = 0.3
    epochs: int = 8
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    widths: list = field(default_factory=lambda: [16, 32, 64])
    device: str = "cpu"
    parameter: str = "value"

    def __post_init__(self):
        if isinstance(self.sweeps, (Sweep, dict)):
            self.sweeps = [self.sweeps]
        if not self.sweeps:
            raise ValueError("sweeps must hold at least one Sweep(layer, values)")
        self.sweeps = [s if isinstance(s, Sweep) else Sweep(**s) for s in self.sweeps]
        names = [s.name for s in self.sweeps]
        if len(set(names)) != len(names):
            raise ValueError(f"sweep labels must be unique; got {names} (set label= to tell them apart)")
        if isinstance(self.seeds, int):
            self.seeds = [self.seeds]
        self.seeds = [check_int(s, "seeds", 0) for s in self.seeds]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers; got {self.seeds}")
        if not isinstance(self.dataset, str):
            raise TypeError(f"dataset must be a string; got {self.dataset!r}")
        self.dataset_options = dict(self.dataset_options)
        check_int(self.size, "size", 8)
        if self.n_per_class is not None:
            check_int(self.n_per_class, "n_per_class", 1)
        check_int(self.data_seed, "data_seed", 0)
        check_number(self.val, "val", 0.0, 0.9)
        check_number(self.test, "test", 0.0, 0.9, low_open=True)
        check_int(self.epochs, "epochs", 1)
        check_number(self.lr, "lr", 0.0, low_open=True)
        check_int(self.batch_size, "batch_size", 1)
        check_number(self.weight_decay, "weight_decay", 0.0)
        self.widths = [check_int(w, "widths", 1) for w in self.widths]
        if self.device not in ("cpu", "auto", "cuda", "mps") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu', 'auto', 'cuda' or 'mps'; got {self.device!r}")
        if not isinstance(self.parameter, str):
            raise TypeError(f"parameter must be a string (axis label); got {self.parameter!r}")

    # -- identity --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready dict; ``StudyConfig.from_dict(config.to_dict()) == config``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StudyConfig:
        """Build a configuration from a dict (as read from ``study.json`` or a TOML file).

        Unknown keys are an error that names them and the allowed keys.
        """
        if not isinstance(data, dict):
            raise TypeError(f"a study configuration must be a dict; got {type(data).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown study configuration key(s) {unknown}; allowed keys: {sorted(allowed)}")
        return cls(**copy.deepcopy(data))

    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of the configuration.

        Two configurations with the same hash give the same numbers (same machine);
        the ``parameter`` axis label is left out because it does not change them.
        """
        data = self.to_dict()
        data.pop("parameter")
        for sweep in data["sweeps"]:
            sweep["values"] = [float(v) for v in sweep["values"]]
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def points(self) -> list[tuple[str, int | float, int]]:
        """All (sweep name, value, seed) triples in a fixed order (sweep, then value, then seed)."""
        return [(s.name, v, seed) for s in self.sweeps for v in s.values for seed in self.seeds]

    def sweep(self, name: str) -> Sweep:
        """The sweep called ``name``."""
        for s in self.sweeps:
            if s.name == name:
                return s
        raise ValueError(f"no sweep called {name!r}; sweeps: {[s.name for s in self.sweeps]}")


def bit_depth_config(smoke: bool | None = None, **overrides) -> StudyConfig:
    """The worked class project's study: sensor bits 1..8 at default settings.

    Three sweeps share the x axis "bits per pixel":

    - ``quantize``: a fixed uniform quantizer with 1..8 bits;
    - ``learned_discretization``: the same bit depths, with a learnable per-pixel
      gain and threshold in front of the quantizer;
    - ``bit_allocation``: a learned per-pixel bit depth under a budget of mean
      bits per pixel (its bits map shows where the network wants bits).

    Parameters
    ----------
    smoke : bool, optional
        A tiny version (few images, 1 epoch) for CI and notebooks; defaults to
        :func:`deepimaging.train.smoke_mode`.
    **overrides
        Any :class:`StudyConfig` field.
    """
    from .train import smoke_mode

    if smoke is None:
        smoke = smoke_mode()
    if smoke:
        settings = dict(
            sweeps=[
                Sweep("quantize", [1, 8]),
                Sweep("learned_discretization", [1]),
                Sweep("bit_allocation", [2]),
            ],
            seeds=[0, 1, 2],
            n_per_class=24,
            epochs=1,
            parameter="bits per pixel",
        )
    else:
        settings = dict(
            sweeps=[
                Sweep("quantize", list(range(1, 9))),
                Sweep("learned_discretization", [1, 2, 3]),
                Sweep("bit_allocation", [2]),
            ],
            seeds=[0, 1, 2],
            parameter="bits per pixel",
        )
    settings.update(overrides)
    return StudyConfig(**settings)


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------


def load_data(config: StudyConfig) -> tuple[ImageDataset, ImageDataset, ImageDataset | None]:
    """The (train, test, val-or-None) splits a study's points train and test on.

    Cached per process: every point of a study in the same worker reuses them.
    """
    key = json.dumps(
        [config.dataset, config.dataset_options, config.size, config.n_per_class, config.data_seed],
        sort_keys=True,
    )
    train, val, test = _load_split(key, config.val, config.test)
    return train, test, (val if len(val) else None)


@functools.lru_cache(maxsize=2)
def _load_split(key, val, test):
    name, options, size, n_per_class, data_seed = json.loads(key)
    dataset = _load_dataset(name, options, size, n_per_class, data_seed)
    return split(dataset, val=val, test=test, seed=data_seed)


def _load_dataset(name, options, size, n_per_class, seed) -> ImageDataset:
    from . import data

    if name == "blood_smear":
        return simulate_blood_smear(n_per_class=n_per_class or 300, size=size, seed=seed, **options)
    loader = getattr(data, f"load_{name}", None)
    if name.startswith("_") or not callable(loader):
        loader = getattr(data, name, None)
    if name.startswith("_") or not callable(loader):
        available = ["blood_smear"] + sorted(
            n[len("load_") :] for n in getattr(data, "__all__", []) if n.startswith("load_")
        )
        raise ValueError(f"unknown dataset {name!r}; available: {available}")
    if "size" in inspect.signature(loader).parameters and "size" not in options:
        options = {**options, "size": size}
    dataset = loader(**options)
    if isinstance(dataset, tuple):  # loaders that return (train, test) or similar: use the first
        dataset = dataset[0]
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset loader {name!r} returned {type(dataset).__name__}, not an ImageDataset")
    if n_per_class is not None:
        # A seeded class-balanced subsample keeps the study fast on large real datasets.
        g = np.random.default_rng(seed)
        keep = [
            g.permutation(np.flatnonzero(dataset.labels.numpy() == k))[:n_per_class]
            for k in range(dataset.num_classes)
        ]
        dataset = dataset.subset(np.sort(np.concatenate(keep)))
    return dataset


def _make_layer(sweep: Sweep, value, image_shape):
    from . import physics

    return physics.make_layer(sweep.layer, value, image_shape=tuple(image_shape), **sweep.options)


def _validate_layers(config: StudyConfig, image_shape) -> None:
    """Build every layer once so that a bad name or value fails before anything is trained or written."""
    for sweep in config.sweeps:
        for value in sweep.values:
            try:
                _make_layer(sweep, value, image_shape)
            except (ValueError, TypeError) as err:
                raise type(err)(f"sweep {sweep.name!r}, value {value!r}: {err}") from None


# ---------------------------------------------------------------------------------------------------------
# One point
# ---------------------------------------------------------------------------------------------------------


def point_paths(out_dir, config: StudyConfig) -> dict:
    """``{(sweep, value, seed): path}`` of every point file of ``config`` under ``out_dir``."""
    folder = Path(out_dir) / POINTS_DIR
    return {p: folder / _point_filename(*p) for p in config.points()}


def _point_filename(name, value, seed) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{name}__v{value}__s{seed}")
    return safe + ".json"


def run_point(
    config: StudyConfig, sweep: str, value, seed: int, out_dir=None, *, progress: bool = False
) -> dict:
    """Train and test one point; write it to ``out_dir/points/`` atomically when ``out_dir`` is given.

    Parameters
    ----------
    config : StudyConfig
    sweep : str
        The sweep's name (its label; the layer name unless a label was set).
    value : int or float
        One of the sweep's values.
    seed : int
        One of ``config.seeds``.
    out_dir : path, optional
        A study folder. If it has no ``study.json`` yet it is created; if it holds
        a different configuration, :class:`StudyConfigMismatch` is raised.
    progress : bool
        Show the epoch progress bar of :func:`~deepimaging.train.fit`.

    Returns
    -------
    dict
        The point record: ``sweep``, ``layer``, ``value``, ``seed``, ``accuracy``,
        ``macro_auc``, ``confusion_matrix`` (K x K list, rows = true class),
        ``per_class`` ({class: precision, recall, f1-score, specificity, support}), ``classes``,
        ``train_loss`` and ``train_accuracy`` of the last epoch, ``val_accuracy`` (list per epoch, empty without val),
        ``seconds``, ``config_hash`` and, for layers with a ``bits_map()``,
        ``bits_map`` (H x W list; the learned fractional bits per pixel, before the
        sensor rounds them to integers in eval mode).
    """
    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig; got {type(config).__name__}")
    the_sweep = config.sweep(sweep)
    if not any(float(value) == float(v) for v in the_sweep.values):
        raise ValueError(f"value {value!r} is not among the values {the_sweep.values} of sweep {sweep!r}")
    value = next(v for v in the_sweep.values if float(v) == float(value))
    if seed not in config.seeds:
        raise ValueError(f"seed {seed!r} is not among the study's seeds {config.seeds}")
    if out_dir is not None:
        _prepare_folder(out_dir, config)
    record = _train_point(config, the_sweep, value, seed, progress=progress)
    if out_dir is not None:
        _write_json_atomic(point_paths(out_dir, config)[(sweep, value, seed)], record)
    return record


def _train_point(config: StudyConfig, sweep: Sweep, value, seed: int, progress: bool = False) -> dict:
    from .models import BasicCNN, PhysicalModel
    from .train import fit, predict, seed_everything

    train, test, val = load_data(config)
    start = time.perf_counter()
    with _single_thread():
        seed_everything(seed)
        layer = _make_layer(sweep, value, train.image_shape)
        with torch.no_grad():
            channels = layer(train.images[:2]).shape[1]  # some layers change the channel count
        cnn = BasicCNN(channels, train.num_classes, widths=tuple(config.widths))
        model = PhysicalModel(layer, cnn)
        history = fit(
            model,
            train,
            val,
            epochs=config.epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            weight_decay=config.weight_decay,
            seed=seed,
            device=config.device,
            progress=progress,
        )
        result = predict(model, test, device=config.device)
    record = {
        "format": FORMAT_VERSION,
        "config_hash": config.hash(),
        "sweep": sweep.name,
        "layer": sweep.layer,
        "value": value,
        "seed": seed,
        "classes": list(test.classes),
        **_classification_metrics(result.labels, result.predicted, result.probabilities, test.classes),
        "train_loss": history.train_loss[-1],
        "train_accuracy": history.train_accuracy[-1],
        "val_accuracy": list(history.val_accuracy),
        "seconds": round(time.perf_counter() - start, 3),
    }
    physics = model.physics.cpu()
    if hasattr(physics, "bits_map"):
        # The fractional map is the learned preference; the integer map (eval) can round it flat.
        with torch.no_grad():
            try:
                bits_map = physics.bits_map(integer=False)
            except TypeError:
                bits_map = physics.bits_map()
        record["bits_map"] = np.round(bits_map.detach().cpu().numpy().astype(float), 4).tolist()
    return record


def _classification_metrics(labels, predicted, probabilities, classes) -> dict:
    """Accuracy, confusion matrix, per-class precision/recall/F1 and macro one-vs-rest ROC AUC."""
    from . import metrics

    labels, predicted = labels.numpy(), predicted.numpy()
    k = len(classes)
    report = metrics.classification_report(labels, predicted, classes=classes)
    try:
        auc = float(metrics.roc_auc_ovr(labels, probabilities.double().numpy(), average="macro"))
    except ValueError:  # a class missing from a tiny test split: AUC undefined
        auc = None
    return {
        "accuracy": float(report["accuracy"]),
        "macro_auc": auc,
        "confusion_matrix": metrics.confusion_matrix(labels, predicted, num_classes=k).astype(int).tolist(),
        "per_class": {
            c: {key: report[c][key] for key in ("precision", "recall", "f1-score", "specificity", "support")}
            for c in classes
        },
    }


@contextlib.contextmanager
def _single_thread():
    """Train with one PyTorch thread: jobs processes share the cores, and numbers do not depend on jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------
# The output folder
# ---------------------------------------------------------------------------------------------------------


def _prepare_folder(out_dir, config: StudyConfig) -> Path:
    """Create the folder (or check the one there), refuse a different configuration, write ``study.json``."""
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
        if leftovers:
            raise StudyConfigMismatch(
                f"output folder {out} holds point files but no {STUDY_FILE}, so their configuration "
                "is unknown; choose a new output folder"
            )
        info = {
            "format": FORMAT_VERSION,
            "config_hash": config.hash(),
            "config": config.to_dict(),
            "deepimaging_version": _version(),
        }
        _write_json_atomic(study_file, info)
    return out


def _describe_differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    diffs = [
        f"{k}: {old.get(k)!r} in the folder, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k)
    ]
    text = "; ".join(diffs) or "none visible (an older format)"
    return text if len(text) < 600 else text[:600] + " ..."


def _check_writable(folder: Path) -> None:
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


def _version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------------------------------------------------
# The whole study
# ---------------------------------------------------------------------------------------------------------


def run_study(config: StudyConfig, out_dir, *, jobs: int = 1, progress: bool = True) -> StudyResults:
    """Run every point of ``config`` that ``out_dir`` does not hold yet, then write the results.

    Parameters
    ----------
    config : StudyConfig
    out_dir : path
        The study folder (created if missing). An existing folder resumes only
        when its ``study.json`` holds the same configuration (same hash);
        otherwise :class:`StudyConfigMismatch` is raised and nothing is touched.
    jobs : int
        Points trained at once in separate processes (joblib); 1 runs in this
        process. Use the number of cores. Numbers do not depend on ``jobs``.
    progress : bool
        A progress bar over points (finished points from an earlier run count as done).

    Returns
    -------
    StudyResults
        Also written to ``results.json``, ``results.csv`` and ``points.csv``.

    Raises
    ------
    ValueError, TypeError
        Unknown layer or dataset, or a value outside the layer's range; raised
        before anything is trained.
    StudyConfigMismatch
        ``out_dir`` holds a different configuration.
    PermissionError
        ``out_dir`` cannot be written.
    """
    from tqdm.auto import tqdm

    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig; got {type(config).__name__}")
    jobs = check_int(jobs, "jobs", 1)
    train, _, _ = load_data(config)
    _validate_layers(config, train.image_shape)
    out = _prepare_folder(out_dir, config)

    config_hash = config.hash()
    paths = point_paths(out, config)
    records = {key: _read_point(path, config_hash, key) for key, path in paths.items()}
    todo = [key for key, record in records.items() if record is None]

    bar = tqdm(
        total=len(paths),
        initial=len(paths) - len(todo),
        desc="study points",
        unit="point",
        disable=not progress,
    )
    try:
        if jobs == 1 or len(todo) <= 1:
            for key in todo:
                bar.set_postfix_str(f"{key[0]}={key[1]} seed {key[2]}")
                records[key] = run_point(config, *key, out_dir=out)
                bar.update()
        else:
            from joblib import Parallel, delayed

            config_dict = config.to_dict()
            tasks = (delayed(_worker)(config_dict, key, str(out)) for key in todo)
            with Parallel(n_jobs=min(jobs, len(todo)), return_as="generator_unordered") as parallel:
                for key, record in parallel(tasks):
                    records[key] = record
                    bar.update()
    finally:
        bar.close()

    results = StudyResults(config, [records[key] for key in paths])
    results.save(out)
    return results


def _worker(config_dict: dict, key, out_dir: str):
    """One point in a joblib worker process (it rebuilds the configuration from plain data)."""
    torch.set_num_threads(1)
    config = StudyConfig.from_dict(config_dict)
    return key, run_point(config, *key, out_dir=out_dir)


def load_results(out_dir, *, allow_incomplete: bool = False) -> StudyResults:
    """Read a study folder's configuration and point files.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`run_study` or :func:`run_point`.
    allow_incomplete : bool
        Return the finished points even when some are missing (``results.complete``
        is then False); by default a missing point is an error that says how to
        finish the study.
    """
    out = Path(out_dir)
    study_file = out / STUDY_FILE
    if not study_file.exists():
        raise FileNotFoundError(
            f"{out} is not a study folder (no {STUDY_FILE}); run the study first "
            "(deepimaging study / deepimaging demo / run_study)"
        )
    try:
        config = StudyConfig.from_dict(json.loads(study_file.read_text())["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{study_file} is not a readable study file: {err}") from None
    config_hash = config.hash()
    records = []
    missing = []
    for key, path in point_paths(out, config).items():
        record = _read_point(path, config_hash, key, "treating the point as missing")
        if record is None:
            missing.append(key)
        else:
            records.append(record)
    if missing and not allow_incomplete:
        raise FileNotFoundError(
            f"{len(missing)} of {len(config.points())} points of the study in {out} are not finished "
            f"(first: {missing[0]}); rerun the study into the same folder to finish them"
        )
    return StudyResults(config, records)


class StudyResults:
    """The points of a study and their summary over seeds.

    Attributes
    ----------
    config : StudyConfig
    points : list of dict
        One record per finished point (see :func:`run_point`).
    """

    def __init__(self, config: StudyConfig, points: list):
        self.config = config
        self.points = [p for p in points if p is not None]

    def __repr__(self) -> str:
        return f"StudyResults({len(self.points)} of {len(self.config.points())} points, sweeps {[s.name for s in self.config.sweeps]})"

    @property
    def complete(self) -> bool:
        return len(self.points) == len(self.config.points())

    @property
    def classes(self) -> list:
        return self.points[0]["classes"] if self.points else []

    def select(self, sweep: str | None = None, value=None) -> list:
        """Point records of one sweep (and one value), in seed order."""
        return [
            p
            for p in self.points
            if (sweep is None or p["sweep"] == sweep) and (value is None or float(p["value"]) == float(value))
        ]

    def summary(self) -> list[dict]:
        """One row per (sweep, value): accuracy mean, standard deviation over seeds, min, max, n.

        The spread is the sample standard deviation (``ddof=1``) of the
        per-seed test accuracies; 0 with a single seed.
        """
        rows = []
        for sweep in self.config.sweeps:
            for value in sweep.values:
                points = self.select(sweep.name, value)
                if not points:
                    continue
                acc = np.array([p["accuracy"] for p in points])
                aucs = [p["macro_auc"] for p in points if p.get("macro_auc") is not None]
                rows.append(
                    {
                        "sweep": sweep.name,
                        "layer": sweep.layer,
                        "value": value,
                        "n_seeds": len(acc),
                        "accuracy_mean": float(acc.mean()),
                        "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                        "accuracy_min": float(acc.min()),
                        "accuracy_max": float(acc.max()),
                        "macro_auc_mean": float(np.mean(aucs)) if aucs else None,
                    }
                )
        return rows

    def confusion_matrix(self, sweep: str, value) -> np.ndarray:
        """The confusion matrix (K x K, rows = true class) summed over the seeds of one point."""
        points = self.select(sweep, value)
        if not points:
            raise ValueError(f"no finished points for sweep {sweep!r} at value {value!r}")
        return np.sum([np.asarray(p["confusion_matrix"]) for p in points], axis=0)

    def bits_map(self, sweep: str, value) -> np.ndarray | None:
        """The mean over seeds of the learned bits map (H, W) of one point, or None if the layer has none."""
        maps = [np.asarray(p["bits_map"]) for p in self.select(sweep, value) if "bits_map" in p]
        return np.mean(maps, axis=0) if maps else None

    def to_dict(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "config_hash": self.config.hash(),
            "config": self.config.to_dict(),
            "complete": self.complete,
            "summary": self.summary(),
            "points": self.points,
        }

    def summary_csv(self) -> str:
        return _csv(self.summary())

    def points_csv(self) -> str:
        keys = [
            "sweep",
            "layer",
            "value",
            "seed",
            "accuracy",
            "macro_auc",
            "train_loss",
            "train_accuracy",
            "seconds",
        ]
        return _csv([{k: p.get(k) for k in keys} for p in self.points])

    def save(self, out_dir) -> None:
        """Write ``results.json``, ``results.csv`` (summary) and ``points.csv`` atomically."""
        out = Path(out_dir)
        _write_json_atomic(out / "results.json", self.to_dict())
        _write_text_atomic(out / "results.csv", self.summary_csv())
        _write_text_atomic(out / "points.csv", self.points_csv())


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def add_cli(subparsers) -> None:
    """Add the ``demo`` and ``study`` sub-commands to the ``deepimaging`` command."""
    demo = subparsers.add_parser(
        "demo",
        help="run the worked bit-depth study on the built-in data and write a results web page",
        description="Sensor bit depth vs accuracy on the simulated blood smear: results.json/CSV, "
        "figures (PNG + PDF) and index.html in the output folder. Rerunning resumes.",
    )
    demo.add_argument("--out", default="deepimaging-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel points")
    demo.add_argument("--smoke", action="store_true", help="a tiny, fast version (CI)")
    demo.add_argument("--title", default=None, help="page title")
    demo.add_argument("--authors", default=None, help="comma-separated author names")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(run=_run_demo_cli)

    study = subparsers.add_parser(
        "study",
        help="sweep one physical layer's parameter and train a CNN per value and seed",
        description="Example: deepimaging study --layer binning --values 1,2,4,8 --seeds 0,1,2 --out binning",
    )
    study.add_argument("--layer", help="physical layer name (deepimaging.physics.LAYERS)")
    study.add_argument("--values", help="comma-separated parameter values, e.g. 1,2,4,8")
    study.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="layer option (repeatable)"
    )
    study.add_argument("--config", help="a study configuration as JSON (e.g. another folder's study.json)")
    study.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    study.add_argument("--dataset", default="blood_smear", help="dataset name (default: %(default)s)")
    study.add_argument("--size", type=int, default=32)
    study.add_argument("--n-per-class", type=int, default=300)
    study.add_argument("--epochs", type=int, default=8)
    study.add_argument("--lr", type=float, default=3e-3)
    study.add_argument("--batch-size", type=int, default=64)
    study.add_argument("--device", default="cpu")
    study.add_argument("--out", required=True, help="output folder (rerun to resume)")
    study.add_argument("--jobs", type=int, default=1, help="parallel points")
    study.add_argument(
        "--point",
        type=int,
        default=None,
        help="run only point number K (0-based; e.g. $SLURM_ARRAY_TASK_ID) and exit",
    )
    study.add_argument("--list-points", action="store_true", help="print the numbered points and exit")
    study.add_argument("--report", action="store_true", help="also write figures and index.html")
    study.add_argument("--no-progress", action="store_true")
    study.set_defaults(run=_run_study_cli)


def _parse_number(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number; got {text!r}") from None


def _parse_list(text: str, what: str) -> list:
    try:
        return [_parse_number(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise ValueError(
            f"{what} must be comma-separated numbers like 1,2,4,8; got {text!r} ({err})"
        ) from None


def _parse_options(items) -> dict:
    options = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--option must look like KEY=VALUE; got {item!r}")
        key, text = item.split("=", 1)
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text  # a plain string, e.g. kind=gaussian
    return options


def _config_from_args(args) -> StudyConfig:
    if args.config:
        data = json.loads(Path(args.config).read_text())
        return StudyConfig.from_dict(data.get("config", data))
    if not args.layer or not args.values:
        raise ValueError("deepimaging study needs --layer and --values (or --config FILE)")
    return StudyConfig(
        sweeps=[Sweep(args.layer, _parse_list(args.values, "--values"), _parse_options(args.option))],
        seeds=_parse_list(args.seeds, "--seeds"),
        dataset=args.dataset,
        size=args.size,
        n_per_class=args.n_per_class,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        device=args.device,
        parameter=_parameter_name(args.layer),
    )


def _parameter_name(layer: str) -> str:
    from .physics import LAYERS

    spec = LAYERS.get(layer)
    return spec.parameter if spec is not None and spec.parameter else layer


def _run_study_cli(args) -> int:
    config = _config_from_args(args)
    points = config.points()
    if args.list_points:
        for k, (name, value, seed) in enumerate(points):
            print(f"{k}\t{name}\t{value}\tseed {seed}")
        return 0
    if args.point is not None:
        if not 0 <= args.point < len(points):
            raise ValueError(f"--point must be in [0, {len(points) - 1}] for this study; got {args.point}")
        train, _, _ = load_data(config)
        _validate_layers(config, train.image_shape)
        record = run_point(config, *points[args.point], out_dir=args.out, progress=not args.no_progress)
        print(f"point {args.point} {points[args.point]}: test accuracy {record['accuracy']:.3f}")
        return 0
    results = run_study(config, args.out, jobs=args.jobs, progress=not args.no_progress)
    for row in results.summary():
        print(
            f"{row['sweep']}={row['value']}: accuracy {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f}"
        )
    if args.report:
        import matplotlib

        matplotlib.use("Agg")
        from .report import write_report

        page = write_report(results, args.out)
        print(f"results page: {page}")
    return 0


def _run_demo_cli(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # figures go to files; works without a display
    from .report import run_demo

    authors = [a.strip() for a in args.authors.split(",")] if args.authors else None
    page = run_demo(
        args.out,
        jobs=args.jobs,
        smoke=args.smoke or None,
        title=args.title,
        authors=authors,
        progress=not args.no_progress,
    )
    print(f"results page: {page}")
    return 0
