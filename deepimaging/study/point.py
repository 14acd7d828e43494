"""One point of a study: build the layer and its CNN, train, test, record the numbers, reopen the network."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch

from ..data import ImageDataset
from .config import StudyConfig, Sweep
from .folder import FORMAT_VERSION, POINTS_DIR, STUDY_FILE, _prepare_folder, _write_json_atomic, point_paths
from .splits import class_counts, load_data
from .weights import WEIGHTS_SUFFIX, read_weights, save_weights


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
