"""The study's files and numbers, checked from outside: interrupted writes, foreign point files, metrics.

- A write interrupted half-way (a full disk, a crash before the rename) leaves no half
  file where a reader or a resumed run would find it.
- A resume refuses a point file that holds another point's record and trains that point again.
- Every recorded metric is recomputed with scikit-learn from the probabilities and labels
  the point's model produced (captured as ``predict`` returns them).
"""

import builtins
import functools
import io
import json
import os
import sys
from pathlib import Path

import _study
import numpy as np
import pytest
import sklearn.metrics as skm

import deepimaging.train
from deepimaging.study import load_results, run_point, run_study
from deepimaging.study import point as study_point

# Two seeds are enough to check the records; the folder tests run every point.
tiny_config = functools.partial(_study.tiny_config, seeds=[0, 1])


def files_under(folder):
    """{relative path: bytes} of every file under folder, hidden temporary files included."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- interrupted writes


class _DiskFullAfterHalf:
    """A text file whose ``write`` puts half the text on disk, then fails as a full disk would."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, text):
        self._handle.write(text[: len(text) // 2])
        self._handle.flush()
        raise OSError(28, "No space left on device (simulated)")

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()
        return False


def fill_disk_under(monkeypatch, folder):
    """Every file opened for writing under ``folder`` fails half-way through its first write.

    Covers every way Python opens a file for writing (``open``, ``io.open`` as
    ``Path.write_text`` uses, ``os.fdopen`` on a descriptor of a file in ``folder``),
    so the test holds whichever way the package writes.
    """
    folder = str(Path(folder).resolve())
    real_open, real_fdopen = builtins.open, os.fdopen

    def inside(path):
        return str(Path(os.fspath(path)).resolve()).startswith(folder)

    def writing(mode):
        return any(c in mode for c in "wax+")

    def sabotaged_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and writing(mode) and inside(file):
            return _DiskFullAfterHalf(handle)
        return handle

    def sabotaged_fdopen(fd, mode="r", *args, **kwargs):
        handle = real_fdopen(fd, mode, *args, **kwargs)
        if writing(mode) and inside(os.readlink(f"/proc/self/fd/{fd}")):
            return _DiskFullAfterHalf(handle)
        return handle

    monkeypatch.setattr(builtins, "open", sabotaged_open)
    monkeypatch.setattr(io, "open", sabotaged_open)
    monkeypatch.setattr(os, "fdopen", sabotaged_fdopen)


# With weights saved, the weights file is written first and is the one the failure hits; without,
# the failure hits the point's record itself. Both files must be written whole or not at all.
SAVE_WEIGHTS = pytest.mark.parametrize("save_weights", [False, True], ids=["record", "weights"])


@SAVE_WEIGHTS
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds a descriptor's file through /proc")
def test_a_point_write_that_fails_half_way_leaves_no_half_file(tmp_path, monkeypatch, save_weights):
    """Mutant: point files written in place (``path.write_text``) instead of a temporary file and a rename."""
    config = tiny_config(save_weights=save_weights)
    run_point(config, "quantize", 1, 0, out_dir=tmp_path)  # study.json and one finished point
    before = files_under(tmp_path)

    fill_disk_under(monkeypatch, tmp_path / "points")
    with pytest.raises(OSError, match="No space left"):
        run_point(config, "quantize", 8, 0, out_dir=tmp_path)
    monkeypatch.undo()

    assert files_under(tmp_path) == before  # no half point file, no temporary file left behind
    results = load_results(tmp_path, allow_incomplete=True)
    assert [(p["value"], p["seed"]) for p in results.points] == [(1, 0)]


@SAVE_WEIGHTS
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds a descriptor's file through /proc")
def test_rewriting_a_point_that_fails_half_way_keeps_the_old_file_whole(tmp_path, monkeypatch, save_weights):
    config = tiny_config(save_weights=save_weights)
    run_point(config, "quantize", 1, 0, out_dir=tmp_path)
    before = files_under(tmp_path)
    fill_disk_under(monkeypatch, tmp_path / "points")
    with pytest.raises(OSError, match="No space left"):
        run_point(config, "quantize", 1, 0, out_dir=tmp_path)
    monkeypatch.undo()
    assert files_under(tmp_path) == before


@SAVE_WEIGHTS
def test_a_crash_before_the_rename_leaves_neither_the_point_nor_a_temporary_file(
    tmp_path, monkeypatch, save_weights
):
    config = tiny_config(save_weights=save_weights)
    run_point(config, "quantize", 1, 0, out_dir=tmp_path)
    before = files_under(tmp_path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between writing and renaming (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        run_point(config, "quantize", 8, 1, out_dir=tmp_path)
    monkeypatch.undo()
    assert files_under(tmp_path) == before


# ---------------------------------------------------------------- a point file with another point's record


def count_trainings(monkeypatch):
    calls = []
    original = study_point._train_point

    def counting(config, sweep, value, seed, progress=False):
        calls.append((sweep.name, value, seed))
        return original(config, sweep, value, seed, progress=progress)

    monkeypatch.setattr(study_point, "_train_point", counting)
    return calls


@pytest.mark.parametrize(
    "source, target",
    [
        ("quantize__v1__s0.json", "quantize__v1__s1.json"),  # another seed
        ("quantize__v1__s0.json", "quantize__v8__s0.json"),  # another value
    ],
    ids=["other-seed", "other-value"],
)
def test_a_resume_refuses_a_point_file_holding_another_points_record(tmp_path, monkeypatch, source, target):
    """Mutant: the resume checks only the configuration hash, so a copied file passes for another point."""
    config = tiny_config()
    first = run_study(config, tmp_path, progress=False)
    points = tmp_path / "points"
    (points / target).write_bytes((points / source).read_bytes())  # same configuration, wrong point

    calls = count_trainings(monkeypatch)
    with pytest.warns(UserWarning, match="another configuration|corrupt"):
        again = run_study(config, tmp_path, progress=False)
    recorded = json.loads((points / target).read_text())
    assert len(calls) == 1  # only the foreign file's point is trained again
    assert (calls[0][1], calls[0][2]) == (recorded["value"], recorded["seed"])
    assert f"quantize__v{recorded['value']}__s{recorded['seed']}.json" == target
    assert [(p["value"], p["seed"]) for p in again.points] == [(p["value"], p["seed"]) for p in first.points]


def test_loading_results_treats_a_point_file_holding_another_points_record_as_missing(tmp_path):
    config = tiny_config()
    run_study(config, tmp_path, progress=False)
    points = tmp_path / "points"
    (points / "quantize__v8__s1.json").write_bytes((points / "quantize__v1__s0.json").read_bytes())
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match="1 of 4 points"):
        load_results(tmp_path)


# ---------------------------------------------------------------- recorded metrics, recomputed with sklearn


@pytest.fixture(scope="module")
def recorded_and_predicted(tmp_path_factory):
    """A finished study and, per point, the predictions its model made (captured from ``predict``)."""
    mp = pytest.MonkeyPatch()
    captured = []
    original = deepimaging.train.predict

    def capturing(*args, **kwargs):
        result = original(*args, **kwargs)
        # Only the point's own call on the test set; fit also predicts (validation, training sample).
        if sys._getframe(1).f_globals["__name__"] == "deepimaging.study.point":
            captured.append(result)
        return result

    mp.setattr(deepimaging.train, "predict", capturing)
    try:
        # Eight images per class in the test half, so every class is present and the AUC is defined.
        config = tiny_config(n_per_class=16, seeds=[0, 1])
        results = run_study(config, tmp_path_factory.mktemp("study"), progress=False)
    finally:
        mp.undo()
    assert len(captured) == len(results.points)
    return results.points, captured


def test_recorded_macro_auc_is_sklearns_one_vs_rest_auc_of_the_probabilities(recorded_and_predicted):
    """Mutant: macro AUC computed from the hard labels (one-hot predictions) instead of probabilities."""
    points, predictions = recorded_and_predicted
    for point, result in zip(points, predictions):
        labels, probabilities = result.labels.numpy(), result.probabilities.double().numpy()
        expected = skm.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
        assert point["macro_auc"] == pytest.approx(expected, abs=1e-12)
    hard = [
        skm.roc_auc_score(
            r.labels.numpy(), np.eye(4)[r.predicted.numpy()], multi_class="ovr", average="macro"
        )
        for r in predictions
    ]
    # the check above can tell the two apart: the hard-label AUC differs on these points
    assert any(p["macro_auc"] != pytest.approx(h, abs=1e-6) for p, h in zip(points, hard))


def test_recorded_accuracy_confusion_and_per_class_scores_match_sklearn(recorded_and_predicted):
    points, predictions = recorded_and_predicted
    for point, result in zip(points, predictions):
        labels, predicted = result.labels.numpy(), result.probabilities.argmax(1).numpy()
        assert point["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
        matrix = skm.confusion_matrix(labels, predicted, labels=range(4))
        assert point["confusion_matrix"] == matrix.tolist()
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            labels, predicted, labels=range(4), zero_division=0
        )
        for k, name in enumerate(point["classes"]):
            scores = point["per_class"][name]
            assert scores["precision"] == pytest.approx(precision[k])
            assert scores["recall"] == pytest.approx(recall[k])
            assert scores["f1-score"] == pytest.approx(f1[k])
            assert scores["support"] == support[k]
            negatives = labels != k
            assert scores["specificity"] == pytest.approx(np.mean(predicted[negatives] != k))
