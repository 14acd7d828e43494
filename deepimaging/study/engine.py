"""Running a study: the data, one point, the output folder (atomic, resumable, guarded), the whole sweep, results."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int
from .._util import package_version
from ..data import ImageDataset, simulate_blood_smear, split
from ._files import (
    FORMAT_VERSION,
    POINTS_DIR,
    STUDY_FILE,
    _check_writable,
    _write_json_atomic,
)
from .config import StudyConfig, Sweep
from .results import StudyResults


class StudyConfigMismatch(FileExistsError):
    """The output folder holds results of a different study configuration."""


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
    from .. import data

    if name == "blood_smear":
        return simulate_blood_smear(n_per_class=n_per_class or 300, size=size, seed=seed, **options)
    loader = data.dataset_loader(name)
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
    from .. import physics

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
    from ..models import BasicCNN, PhysicalModel
    from ..train import fit, predict, seed_everything

    train, test, val = load_data(config)
    start = time.perf_counter()
    with _single_thread():
        seed_everything(seed)
        layer = _make_layer(sweep, value, train.image_shape)
        with torch.no_grad():
            channels = layer(train.images_at(slice(0, 2))).shape[1]  # some layers change the channel count
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
    from .. import metrics

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
            "deepimaging_version": package_version(),
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
    from ..train import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()  # the study's own process: reuse freed memory, as the deepimaging command does
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
