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
    _create_json_exclusive,
    _write_json_atomic,
)
from .config import StudyConfig, Sweep
from .results import StudyResults
from .weights import WEIGHTS_SUFFIX, read_weights, save_weights

#: The official splits that make up the whole of each loader's dataset; a study joins them unless
#: ``dataset_options`` names a ``split``.
WHOLE_SET_SPLITS = {
    "bccd_crops": ("all",),
    "medmnist": ("train", "val", "test"),
    "kaggle_blood_cells": ("TRAIN", "TEST"),
}


class StudyConfigMismatch(FileExistsError):
    """The output folder holds results of a different study configuration."""


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------


def load_data(config: StudyConfig) -> tuple[ImageDataset, ImageDataset, ImageDataset | None]:
    """The (train, test, val-or-None) splits a study's points train and test on.

    The split is stratified by class and seeded with ``config.data_seed``.
    Cached per process: every point of a study in the same worker reuses them.

    Raises
    ------
    ValueError
        A class with fewer than 2 images, or a ``val`` / ``test`` fraction that
        leaves a class without an image in that part; raised before anything is
        trained.
    """
    key = json.dumps(
        [config.dataset, config.dataset_options, config.size, config.n_per_class, config.data_seed],
        sort_keys=True,
    )
    train, val, test = _load_split(key, config.val, config.test)
    return train, test, (val if len(val) else None)


def class_counts(config: StudyConfig) -> dict:
    """How many images of each class the study trains, validates and tests on.

    Returns
    -------
    dict
        ``{"train": {class: n}, "val": {class: n}, "test": {class: n}}``.
    """
    train, test, val = load_data(config)
    parts = {"train": train, "val": val, "test": test}
    return {
        part: {
            c: int((data.labels == k).sum()) if data is not None else 0 for k, c in enumerate(train.classes)
        }
        for part, data in parts.items()
    }


@functools.lru_cache(maxsize=2)
def _load_split(key, val, test):
    name, options, size, n_per_class, data_seed = json.loads(key)
    dataset = _load_dataset(name, options, size, n_per_class, data_seed)
    counts = np.bincount(dataset.labels.numpy(), minlength=dataset.num_classes)
    small = {c: int(n) for c, n in zip(dataset.classes, counts) if n < 2}
    if small:
        raise ValueError(
            f"dataset {name!r} has classes with fewer than 2 images {small}: a class needs images "
            "for training and for testing; add images, drop the class, or raise n_per_class"
        )
    try:
        parts = split(dataset, val=val, test=test, seed=data_seed)
    except ValueError as err:
        raise ValueError(
            f"val={val}, test={test} (each a fraction in [0, 1)) cannot split this dataset "
            f"(images per class: {dict(zip(dataset.classes, counts.tolist()))}): {err}"
        ) from None
    for part_name, fraction, part in (("val", val, parts[1]), ("test", test, parts[2])):
        if fraction == 0:
            continue
        present = np.bincount(part.labels.numpy(), minlength=dataset.num_classes)
        empty = [c for c, n in zip(dataset.classes, present) if n == 0]
        if empty:
            raise ValueError(
                f"{part_name}={fraction} leaves class(es) {empty} with no {part_name} image "
                f"(images per class: {dict(zip(dataset.classes, counts.tolist()))}); "
                f"raise {part_name} (allowed: a fraction in [0, 1)) or add images"
                + ("; val=0 turns validation off" if part_name == "val" else "")
            )
    return parts


def _load_dataset(name, options, size, n_per_class, seed) -> ImageDataset:
    from .. import data

    if name == "blood_smear":
        return simulate_blood_smear(n_per_class=n_per_class or 300, size=size, seed=seed, **options)
    loader = data.dataset_loader(name)
    parameters = inspect.signature(loader).parameters
    if "size" in parameters and "size" not in options:
        options = {**options, "size": size}
    if "split" in parameters and "split" not in options and name in WHOLE_SET_SPLITS:
        # The study splits the data itself; a loader's own default split (BCCD's "train") would
        # silently drop the rest of the images. Load every official split and join them.
        parts = [_call_loader(name, loader, {**options, "split": part}) for part in WHOLE_SET_SPLITS[name]]
        dataset = ImageDataset(
            torch.cat([part.storage for part in parts]),
            torch.cat([part.labels for part in parts]),
            parts[0].classes,
        )
    else:
        dataset = _call_loader(name, loader, options)
    if n_per_class is not None:
        # A seeded class-balanced subsample keeps the study fast on large real datasets.
        g = np.random.default_rng(seed)
        keep = [
            g.permutation(np.flatnonzero(dataset.labels.numpy() == k))[:n_per_class]
            for k in range(dataset.num_classes)
        ]
        dataset = dataset.subset(np.sort(np.concatenate(keep)))
    return dataset


def _call_loader(name, loader, options) -> ImageDataset:
    dataset = loader(**options)
    if isinstance(dataset, tuple):  # loaders that return (train, test) or similar: use the first
        dataset = dataset[0]
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset loader {name!r} returned {type(dataset).__name__}, not an ImageDataset")
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
        The point record: ``sweep``, ``layer``, ``value``, ``seed``, ``device`` (where it
        trained), ``classes``; the test metrics ``accuracy``, ``balanced_accuracy`` (mean
        per-class recall), ``macro_f1``, ``macro_auc`` (one-vs-rest, from the probabilities;
        None when a class is missing), ``recall`` ({class: recall}), ``confusion_matrix``
        (K x K list, rows = true class), ``per_class`` ({class: precision, recall, f1-score,
        specificity, support}); ``train_loss`` and ``train_accuracy`` of the last epoch as
        trained, ``train_eval_accuracy`` (eval mode, after BatchNorm recalibration),
        ``val_accuracy`` (list per epoch, empty without val), ``history`` (the whole
        :class:`~deepimaging.train.History`), ``class_counts`` (images per class in
        train/val/test), ``warnings`` (plain-language symptoms, empty when none),
        ``seconds``, ``config_hash`` and, for layers with a ``bits_map()``, ``bits_map``
        (H x W list; the learned fractional bits per pixel, before the sensor rounds them
        to integers in eval mode). With ``out_dir`` and ``config.save_weights``,
        ``weights`` = ``{"file", "sha256", "bytes", "seconds"}``: the trained network's
        state dict, written beside the record (see :mod:`deepimaging.study.weights`).
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
        _prepare_folder(out_dir, config, write=False)  # refuse a wrong folder before training
    record, model = _train_point(config, the_sweep, value, seed, progress=progress)
    if out_dir is not None:
        # study.json is written only once a point has trained: a first run that fails (a device that
        # is not there, a layer that does not fit the data) leaves nothing that refuses the fixed command.
        _prepare_folder(out_dir, config)
        path = point_paths(out_dir, config)[(sweep, value, seed)]
        if config.save_weights:
            # The weights go first and the record last: a record that names a weights file means it is there.
            start = time.perf_counter()
            record["weights"] = save_weights(model, path.with_suffix(WEIGHTS_SUFFIX))
            record["weights"]["seconds"] = round(time.perf_counter() - start, 4)
        _write_json_atomic(path, record)
    return record


def _build_model(config: StudyConfig, sweep: Sweep, value, train: ImageDataset):
    """The point's model: its physical layer in front of a BasicCNN with as many inputs as the layer gives."""
    from ..models import BasicCNN, PhysicalModel

    layer = _make_layer(sweep, value, train.image_shape)
    with torch.no_grad():
        channels = layer(train.images_at(slice(0, 2))).shape[1]  # some layers change the channel count
    cnn = BasicCNN(channels, train.num_classes, widths=tuple(config.widths))
    return PhysicalModel(layer, cnn)


def _train_point(config: StudyConfig, sweep: Sweep, value, seed: int, progress: bool = False):
    """Train and test one point; return its record and the trained model (on the CPU)."""
    from ..train import fit, get_device, predict, seed_everything

    train, test, val = load_data(config)
    device = get_device(config.device)
    start = time.perf_counter()
    with _single_thread():
        seed_everything(seed)
        model = _build_model(config, sweep, value, train)
        history = fit(
            model,
            train,
            val,
            epochs=config.epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            weight_decay=config.weight_decay,
            seed=seed,
            device=device,
            progress=progress,
            patience=config.patience,
        )
        # The test set is used once, here, with the model fit returns (recalibrated, best epoch).
        result = predict(model, test, device=device)
    metrics = _classification_metrics(result.labels, result.predicted, result.probabilities, test.classes)
    record = {
        "format": FORMAT_VERSION,
        "config_hash": config.hash(),
        "sweep": sweep.name,
        "layer": sweep.layer,
        "value": value,
        "seed": seed,
        "device": str(device),
        "classes": list(test.classes),
        **metrics,
        "train_loss": history.train_loss[-1],
        "train_accuracy": history.train_accuracy[-1],
        "train_eval_accuracy": history.final["train_eval_accuracy"],
        "val_accuracy": list(history.val_accuracy),
        "history": history.as_dict(),
        "class_counts": class_counts(config),
        "warnings": _symptoms(history, metrics, len(test.classes)),
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
    return record, model.cpu()


def load_point_model(out_dir, config: StudyConfig, record: dict, *, device="cpu"):
    """Rebuild a point's ``PhysicalModel`` from the configuration and load its saved weights.

    Parameters
    ----------
    out_dir : path
        The study folder.
    config : StudyConfig
    record : dict
        The point record (it names the weights file and its SHA-256).
    device : str
        Where the model is put (default the CPU).

    Returns
    -------
    PhysicalModel
        In eval mode.

    Raises
    ------
    FileNotFoundError
        The point has no saved weights; the message says how to rerun that point only.
    deepimaging.study.weights.WeightsFileError
        The file was altered or truncated, or holds anything but tensors.
    """
    from ..train import get_device, seed_everything

    key = (record["sweep"], record["value"], record["seed"])
    path = point_paths(out_dir, config)[key].with_suffix(WEIGHTS_SUFFIX)
    if "weights" not in record or not path.exists():
        k = config.points().index(key)
        why = (
            "it was run with save_weights off or by an older version"
            if "weights" not in record
            else f"{path.name} is missing"
        )
        raise FileNotFoundError(
            f"point {key[0]}={key[1]} seed {key[2]} has no saved network in {Path(out_dir) / POINTS_DIR} ({why}). "
            f"Rerun that point only, with saving on: `deepimaging study --config {Path(out_dir) / STUDY_FILE} "
            f"--out {out_dir} --point {k} --save-weights` (or run_point(config, {key[0]!r}, {key[1]!r}, {key[2]}, out_dir=...) "
            "with config.save_weights=True); it retrains the network with the same seed."
        )
    state = read_weights(path, record["weights"])
    train, _, _ = load_data(config)
    with _kept_random_state():  # reopening a network must not reseed the caller's notebook
        seed_everything(record["seed"])  # the same construction as in training, for layers that draw at init
        model = _build_model(config, config.sweep(record["sweep"]), record["value"], train)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"weights file {path} does not fit the network this configuration builds: {err}"
        ) from None
    return model.to(get_device(device)).eval()


#: A point is flagged when its eval-mode training accuracy trails the as-trained one by more than this.
EVAL_GAP_WARNING = 0.15
#: ... or when its balanced accuracy is within this of chance (1 / number of classes).
CHANCE_MARGIN = 0.05


def _symptoms(history, metrics: dict, num_classes: int) -> list:
    """Plain-language warnings about numbers a reader should not trust as they stand."""
    found = []
    gap = history.train_accuracy[-1] - history.final["train_eval_accuracy"]
    if gap > EVAL_GAP_WARNING:
        found.append(
            f"eval-mode training accuracy {history.final['train_eval_accuracy']:.3f} is far below the "
            f"accuracy during training {history.train_accuracy[-1]:.3f}: the model behaves differently "
            "in eval mode (BatchNorm statistics, dropout or a physical layer's eval mode)"
        )
    chance = 1.0 / num_classes
    if metrics["balanced_accuracy"] <= chance + CHANCE_MARGIN:
        found.append(
            f"test balanced accuracy {metrics['balanced_accuracy']:.3f} is at chance ({chance:.3f}): "
            "the model learned nothing usable (too few epochs, too high a learning rate, or no signal left)"
        )
    never = [c for c, row in metrics["per_class"].items() if row["support"] > 0 and row["recall"] == 0]
    if never:
        found.append(f"no test image of class(es) {never} was recognised (recall 0)")
    return found


def _classification_metrics(labels, predicted, probabilities, classes) -> dict:
    """Accuracy, balanced accuracy, macro-F1, macro one-vs-rest ROC AUC, confusion matrix, per-class numbers.

    Balanced accuracy is the mean of the per-class recalls and macro-F1 the
    mean of the per-class F1 scores (as scikit-learn's ``balanced_accuracy_score``
    and ``f1_score(average="macro")``): on imbalanced test sets they weigh every
    class equally, where accuracy is dominated by the largest class.
    """
    from .. import metrics

    labels, predicted = labels.numpy(), predicted.numpy()
    k = len(classes)
    report = metrics.classification_report(labels, predicted, classes=classes)
    try:
        auc = float(metrics.roc_auc_ovr(labels, probabilities.double().numpy(), average="macro"))
    except ValueError:  # a class missing from a tiny test split: AUC undefined
        auc = None
    present = [c for c in classes if report[c]["support"] > 0]
    return {
        "accuracy": float(report["accuracy"]),
        "balanced_accuracy": float(np.mean([report[c]["recall"] for c in present])),
        "macro_f1": float(np.mean([report[c]["f1-score"] for c in classes])),
        "macro_auc": auc,
        "recall": {c: float(report[c]["recall"]) for c in classes},
        "confusion_matrix": metrics.confusion_matrix(labels, predicted, num_classes=k).astype(int).tolist(),
        "per_class": {
            c: {key: report[c][key] for key in ("precision", "recall", "f1-score", "specificity", "support")}
            for c in classes
        },
    }


@contextlib.contextmanager
def _kept_random_state():
    """Restore Python's, NumPy's and PyTorch's random number generators afterwards."""
    import random

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng():
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


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
    from ..train import get_device

    get_device(config.device)  # a device that is not there fails here, before anything is written
    train, _, _ = load_data(config)
    _validate_layers(config, train.image_shape)
    # study.json comes with the first finished point (run_point), so a failing first run leaves none.
    out = _prepare_folder(out_dir, config, write=False)

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

    results = StudyResults(config, [records[key] for key in paths], folder=out)
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
    return StudyResults(config, records, folder=out)
