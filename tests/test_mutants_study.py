"""Tests written to kill the mutants of ``deepimaging.study`` that the study tests let survive.

Each test names the mutant it was written for (``SAMPLE=60 bash benchmarks/mutation.sh study``,
see benchmarks/mutation_results.md). None trains a network: the records are written by hand and the
expected values computed from them with NumPy and SciPy.
"""

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from deepimaging.study import StudyConfig, Sweep, config, engine, executors, folder, point, splits, weights
from deepimaging.study.jobs import run_point_number
from deepimaging.study.results import StudyResults
from deepimaging.study.status import _process_alive


def _config(sweeps):
    return StudyConfig(sweeps=sweeps, seeds=[0, 1, 2], size=16, n_per_class=12, epochs=1, device="cpu")


def _record(sweep, value, seed, accuracy):
    return {
        "sweep": sweep,
        "value": value,
        "seed": seed,
        "accuracy": accuracy,
        "classes": ["a", "b"],
        "confusion_matrix": [[5, 0], [0, 5]],
    }


def test_paired_comparison_pairs_each_value_with_the_same_value_of_the_other_sweep():
    # results.StudyResults.compare 31: the other sweep's records taken from all its values, so the
    # last value's accuracy (per seed) was compared with every value of the first sweep.
    config = _config([Sweep("quantize", [2, 4]), Sweep("quantize", [2, 4], label="other")])
    rng = np.random.default_rng(0)
    accuracy = {(sweep, value): rng.random(3) for sweep in ("quantize", "other") for value in (2, 4)}
    points = [
        _record(sweep, value, seed, float(accuracy[sweep, value][seed]))
        for (sweep, value) in accuracy
        for seed in range(3)
    ]
    rows = StudyResults(config, points).compare("quantize", "other", metric="accuracy")
    assert [row["value"] for row in rows] == [2, 4]
    for row in rows:
        a, b = accuracy["quantize", row["value"]], accuracy["other", row["value"]]
        assert row["difference_mean"] == pytest.approx(np.mean(a - b))
        assert row["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_run_point_number_names_the_valid_numbers_when_it_is_out_of_range():
    # jobs.x_run_point_number__mutmut_11: 2 values x 3 seeds = 6 points, numbered 0 to 5.
    config = _config([Sweep("quantize", [2, 4])])
    assert len(config.points()) == 6
    with pytest.raises(
        ValueError, match=r"^number must be a point number in \[0, 5\] for this study; got 6$"
    ):
        run_point_number(config, 6, "unused")


def test_a_process_that_has_exited_is_not_alive():
    # status.x__process_alive__mutmut_6: "no such process" read as alive.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: the pid names no process now
    assert _process_alive(os.getpid())
    assert not _process_alive(child.pid)


def test_the_eval_gap_warning_quotes_the_last_epochs_training_accuracy():
    # point.x__symptoms__mutmut_12 (engine before the split): the second epoch's accuracy ([+1]) quoted for the last one ([-1]).
    history = SimpleNamespace(train_accuracy=[0.40, 0.55, 0.90], final={"train_eval_accuracy": 0.30})
    metrics = {"balanced_accuracy": 0.8, "per_class": {"a": {"support": 5, "recall": 0.8}}}
    (warning,) = point._symptoms(history, metrics, num_classes=2)
    assert "eval-mode training accuracy 0.300 is far below the accuracy during training 0.900" in warning


def test_without_submitit_the_error_says_how_to_run_without_it(monkeypatch):
    # executors.x__import_submitit__mutmut_5 (the advice upper-cased): a None entry in sys.modules
    # makes `import submitit` raise ImportError, as on a machine without it.
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ValueError, match=r"pip install 'deepimaging\[cluster\]' \(or use --executor local\)"):
        executors._import_submitit()


def test_class_counts_add_up_to_the_images_per_class_and_match_each_split():
    # splits.x_class_counts__mutmut_4 (engine before the split): the "train" entry renamed.
    config = _config([Sweep("quantize", [2])])
    counts = splits.class_counts(config)
    assert set(counts) == {"train", "val", "test"}
    train, test, val = splits.load_data(config)
    for part, data in {"train": train, "val": val, "test": test}.items():
        assert counts[part] == dict(Counter(data.classes[k] for k in data.labels.tolist()))
    # The three splits partition the simulated set of n_per_class images of each class.
    for name in train.classes:
        assert sum(counts[part][name] for part in counts) == config.n_per_class


def test_results_say_whether_every_point_is_there():
    # results.StudyResults.to_dict 8: the "complete" entry renamed.
    config = _config([Sweep("quantize", [2])])  # 1 value x 3 seeds
    points = [_record("quantize", 2, seed, 0.5) for seed in range(3)]
    assert StudyResults(config, points[:2]).to_dict()["complete"] is False
    assert StudyResults(config, points).to_dict()["complete"] is True


def test_run_study_refuses_zero_jobs_before_writing_anything(tmp_path):
    # engine.x_run_study__mutmut_9: the lower bound of jobs dropped.
    with pytest.raises(ValueError, match=r"^jobs must be in \[1, inf\]; got 0"):
        engine.run_study(_config([Sweep("quantize", [2])]), tmp_path / "study", jobs=0)
    assert not (tmp_path / "study").exists()


def test_the_metric_note_of_an_imbalanced_study_says_why_balanced_accuracy_is_shown():
    # results.StudyResults.metric_note 11 (the reason's text changed). Test classes 20 and 5: ratio 4.
    config = StudyConfig(sweeps=[Sweep("quantize", [2])], seeds=[0], size=16, n_per_class=12, epochs=1)
    point = _record("quantize", 2, 0, 0.5) | {"confusion_matrix": [[20, 0], [0, 5]]}
    note = StudyResults(config, [point]).metric_note()
    assert note == (
        "Balanced accuracy (the mean of the per-class recalls) is shown because the test classes "
        "are imbalanced (a 20, b 5; largest/smallest 4.0 > 1.5), "
        "where plain accuracy would mostly measure the largest class."
    )


def test_summary_rows_hold_every_documented_number_and_none_for_an_unrecorded_metric():
    # results.StudyResults.summary 35 (accuracy_max renamed) and results._spread 7 (an unrecorded
    # metric's ci_low renamed). The records carry accuracy only; SciPy gives the t-interval.
    config = _config([Sweep("quantize", [2])])
    accuracy = [0.61, 0.72, 0.66]
    (row,) = StudyResults(config, [_record("quantize", 2, s, a) for s, a in enumerate(accuracy)]).summary()
    assert (row["accuracy_min"], row["accuracy_max"]) == (min(accuracy), max(accuracy))
    low, high = stats.t.interval(0.95, df=2, loc=np.mean(accuracy), scale=stats.sem(accuracy))
    assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == pytest.approx((low, high))
    for metric in ("balanced_accuracy", "macro_f1", "macro_auc"):
        assert {k: row[f"{metric}_{k}"] for k in ("mean", "std", "ci_low", "ci_high")} == dict.fromkeys(
            ("mean", "std", "ci_low", "ci_high")
        )


@pytest.mark.parametrize("epochs", [0, -3])
def test_a_study_needs_at_least_one_epoch(epochs):
    # config.StudyConfig.__post_init__ 103: epochs checked without its name or lower bound.
    with pytest.raises(ValueError, match=rf"^epochs must be in \[1, .*\]; got {epochs}$"):
        StudyConfig(sweeps=[Sweep("quantize", [2])], epochs=epochs)


def test_the_configuration_hash_is_the_documented_sha256_of_the_compact_canonical_json():
    # config.StudyConfig.hash 25 (separators dropped) and 30 (17 digits): a study folder written
    # before must keep its hash, or resuming it refuses a configuration that has not changed.
    config = _config([Sweep("quantize", [2, 4])])
    data = {k: v for k, v in config.to_dict().items() if k not in ("parameter", "metric", "save_weights")}
    data["sweeps"] = [dict(s, values=[float(v) for v in s["values"]]) for s in data["sweeps"]]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert config.hash() == hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --- a second sample (SEED=1), drawn to check the tests above out of sample ---------------------


def test_the_smoke_study_is_the_full_study_made_smaller():
    # config.bit_depth_config 17 (the smoke study's epochs=1 dropped: 8 epochs) and 43 (its seeds
    # 0, 1, 3): the smoke version keeps the study's sweeps, seeds and axis, with fewer images, 1 epoch.
    smoke, full = config.bit_depth_config(smoke=True), config.bit_depth_config(smoke=False)
    assert smoke.epochs == 1 < full.epochs
    assert smoke.seeds == full.seeds == [0, 1, 2]
    assert smoke.parameter == full.parameter
    full_values = {s.name: set(s.values) for s in full.sweeps}
    assert all(set(s.values) <= full_values[s.name] for s in smoke.sweeps)


def test_a_dataset_loader_that_returns_something_else_is_named_with_what_it_returned():
    # splits._call_loader 5 (the message dropped).
    with pytest.raises(TypeError, match="^dataset loader 'mine' returned str, not an ImageDataset"):
        splits._call_loader("mine", lambda: "images", {})


def _weights_file(tmp_path, obj, monkeypatch, location=None):
    """Write ``obj`` with torch.save (storages tagged ``location`` if given) and its record, by hashlib."""
    import torch

    path = tmp_path / "w.pt"
    with monkeypatch.context() as patch:
        if location is not None:
            patch.setattr(torch.serialization, "location_tag", lambda storage: location)
        torch.save(obj, path)
    data = path.read_bytes()
    return path, {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_weights_saved_on_a_gpu_load_on_a_machine_without_one(tmp_path, monkeypatch):
    # weights.read_weights 29 (map_location="cpu" dropped): a file written by a GPU study (its
    # storages tagged cuda:0, as torch.save writes them on a GPU) must still open on a laptop.
    import torch

    path, record = _weights_file(tmp_path, {"w": torch.arange(3.0)}, monkeypatch, "cuda:0")
    state = weights.read_weights(path, record)
    assert state["w"].device.type == "cpu" and state["w"].tolist() == [0.0, 1.0, 2.0]


def test_a_weights_file_of_a_list_is_refused_naming_what_it_holds(tmp_path, monkeypatch):
    # weights.read_weights 42 (the message said NoneType whatever the file held).
    import torch

    path, record = _weights_file(tmp_path, [torch.zeros(2)], monkeypatch)
    with pytest.raises(weights.WeightsFileError, match="holds list, not a state dict of named tensors"):
        weights.read_weights(path, record)


def test_a_changed_hash_with_no_visible_difference_says_so(tmp_path):
    # folder._describe_differences 17 (the words upper-cased): a study.json whose hash differs while
    # every configuration field is the same (an older hash format) is refused with that explanation.
    cfg = _config([Sweep("quantize", [2])])
    folder._prepare_folder(tmp_path, cfg)
    study = tmp_path / folder.STUDY_FILE
    saved = json.loads(study.read_text())
    study.write_text(json.dumps({**saved, "config_hash": "0" * 16}))
    with pytest.raises(folder.StudyConfigMismatch, match=r"differences: none visible \(an older format\)\)"):
        folder._prepare_folder(tmp_path, cfg)


def test_a_parallel_worker_rebuilds_the_configuration_from_plain_data(tmp_path, monkeypatch):
    # engine._worker 4 (the configuration built from None). _worker runs in joblib's processes,
    # where mutmut cannot see it; here it runs in this one with run_point replaced by a recorder.
    import torch

    import deepimaging.train

    cfg = _config([Sweep("quantize", [2, 4])])
    calls = []
    monkeypatch.setattr(
        engine, "run_point", lambda c, *key, out_dir: calls.append((c, key, out_dir)) or "record"
    )
    monkeypatch.setattr(deepimaging.train, "keep_freed_memory", lambda: None)
    threads = torch.get_num_threads()
    try:
        assert engine._worker(cfg.to_dict(), ("quantize", 4, 1), str(tmp_path)) == (
            ("quantize", 4, 1),
            "record",
        )
    finally:
        torch.set_num_threads(threads)
    ((rebuilt, key, out_dir),) = calls
    assert rebuilt.hash() == cfg.hash() and key == ("quantize", 4, 1) and out_dir == str(tmp_path)


def test_the_at_chance_warning_says_why_the_model_learned_nothing():
    # point._symptoms 28 (the reason upper-cased). Balanced accuracy 0.52 with 2 classes is within
    # CHANCE_MARGIN (0.05) of chance 0.5; no eval gap, every class recognised: one warning, this one.
    history = SimpleNamespace(train_accuracy=[0.5, 0.55], final={"train_eval_accuracy": 0.55})
    metrics = {"balanced_accuracy": 0.52, "per_class": {"a": {"support": 5, "recall": 0.6}}}
    (warning,) = point._symptoms(history, metrics, num_classes=2)
    assert warning == (
        "test balanced accuracy 0.520 is at chance (0.500): the model learned nothing usable "
        "(too few epochs, too high a learning rate, or no signal left)"
    )


def test_a_saved_points_weights_entry_holds_the_documented_fields(tmp_path, monkeypatch):
    # point.run_point 62 (the `seconds` key renamed). Training is replaced by a tiny model so that
    # only run_point's writing is tested: the entry is {"file", "sha256", "bytes", "seconds"}, with
    # the file's SHA-256 and size as hashlib and the file system give them.
    import torch

    cfg = _config([Sweep("quantize", [2])])
    model = torch.nn.Linear(3, 2)
    monkeypatch.setattr(point, "_train_point", lambda *args, **kwargs: ({"sweep": "quantize"}, model))
    record = point.run_point(cfg, "quantize", 2, 0, out_dir=tmp_path)
    entry = record["weights"]
    assert set(entry) == {"file", "sha256", "bytes", "seconds"} and entry["seconds"] >= 0
    (weights_file,) = (tmp_path / "points").glob("*.pt")
    data = weights_file.read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)


def test_the_auc_of_a_test_split_missing_a_class_is_none():
    # point._classification_metrics 20 (an undefined AUC recorded as "" instead of None). Class "c"
    # has no test image: scikit-learn's one-vs-rest AUC is undefined for it.
    import torch
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import roc_auc_score

    labels, predicted = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1])
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    with pytest.warns(UndefinedMetricWarning, match="not defined"):
        one_vs_rest = [roc_auc_score(labels.numpy() == k, probabilities[:, k].numpy()) for k in range(3)]
    assert np.isnan(one_vs_rest[2])
    found = point._classification_metrics(labels, predicted, probabilities, ["a", "b", "c"])
    assert found["macro_auc"] is None


def test_slurm_is_asked_about_exactly_the_tasks_with_no_known_state(tmp_path, monkeypatch):
    # status._job_states 48 ("state is not None": SLURM asked about the tasks already known, and the
    # others left without a state). A stand-in for submitit's sacct watcher records what it is asked.
    submitit = pytest.importorskip("submitit")
    from deepimaging.study.status import _job_states

    class Watcher:
        def __init__(self):
            self.asked = []

        def register_job(self, job_id):
            self.asked.append(job_id)

        def update(self):
            pass

        def get_state(self, job_id, mode="standard"):
            return {"7_0": "CANCELLED by 1234", "7_1": "RUNNING"}.get(job_id, "UNKNOWN")

    watcher = Watcher()
    monkeypatch.setattr(submitit.SlurmJob, "watcher", watcher)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid is no live process, so its local task has failed
    entries = [
        {"executor": "slurm", "job_id": "7_0"},
        {"executor": "submitit-local", "job_id": f"{child.pid}_0"},
        {"executor": "slurm", "job_id": "7_1"},
    ]
    assert _job_states(entries, tmp_path) == ["failed", "failed", "waiting"]
    assert watcher.asked == ["7_0", "7_1"]


def test_a_cluster_run_names_gpus_when_it_is_negative(tmp_path):
    # executors.run_study 95 (gpus named GPUS). Refused before anything is written or submitted.
    with pytest.raises(ValueError, match=r"^gpus must be in \[0, inf\]; got -1"):
        executors.run_study(_config([Sweep("quantize", [2])]), tmp_path / "out", executor="slurm", gpus=-1)
    assert not (tmp_path / "out").exists()


def test_a_write_probe_left_behind_is_hidden_and_says_what_it_is(tmp_path, monkeypatch):
    # folder._check_writable 5 (the probe's prefix dropped: mkstemp's "tmpXXXXXXXX"). The probe is
    # removed at once; if the removal fails (a crash, a file system that refuses), what stays in the
    # study folder must be recognisable and hidden from `ls`.
    def refuse(path):
        raise PermissionError("removal refused")

    monkeypatch.setattr(folder.os, "remove", refuse)
    with pytest.raises(PermissionError):
        folder._check_writable(tmp_path)
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".write-test-")


# --- a third sample (SEED=2): its four survivors ----------------------------------------------------


def test_a_point_without_a_weights_entry_says_it_was_run_without_saving(tmp_path):
    """point.load_point_model 27 (the reason wrapped in XX): the message gives why there is no network."""
    cfg = _config([Sweep("quantize", [2])])
    record = _record("quantize", 2, 1, 0.5)  # no "weights" entry: run with save_weights off
    with pytest.raises(FileNotFoundError) as err:
        point.load_point_model(tmp_path, cfg, record)
    message = str(err.value)
    assert message.startswith(
        f"point quantize=2 seed 1 has no saved network in {tmp_path / 'points'} "
        "(it was run with save_weights off or by an older version). Rerun that point only, with saving on: "
        f"`deepimaging study --config {tmp_path / 'study.json'} --out {tmp_path} --point 1 --save-weights`"
    )


def test_a_point_whose_weights_file_is_gone_names_the_missing_file(tmp_path):
    """point.load_point_model: a record naming weights whose file was deleted says which file is missing."""
    cfg = _config([Sweep("quantize", [2, 4])])
    record = _record("quantize", 4, 2, 0.5) | {"weights": {"file": "x.pt", "sha256": "0", "bytes": 1}}
    name = folder.point_paths(tmp_path, cfg)["quantize", 4, 2].with_suffix(".pt").name
    with pytest.raises(FileNotFoundError) as err:
        point.load_point_model(tmp_path, cfg, record)
    # quantize=4 seed 2 is the 6th point (values, then seeds): number 5.
    assert f"({name} is missing)" in str(err.value) and "--point 5 --save-weights" in str(err.value)


def test_points_csv_has_one_row_per_point_with_the_documented_columns():
    """results.StudyResults.points_csv 21 (train_loss named TRAIN_LOSS): read back with the csv module."""
    import csv
    import io

    cfg = _config([Sweep("quantize", [2, 4])])
    records = [
        _record("quantize", v, s, 0.5 + 0.1 * s)
        | {"layer": "quantize", "train_loss": 0.25 * s, "seconds": 1.5, "weights": {"bytes": 10 + s}}
        for v in (2, 4)
        for s in range(2)
    ]
    rows = list(csv.DictReader(io.StringIO(StudyResults(cfg, records).points_csv())))
    assert list(rows[0]) == [
        *("sweep", "layer", "value", "seed", "device", "accuracy", "balanced_accuracy", "macro_f1"),
        *("macro_auc", "train_loss", "train_accuracy", "train_eval_accuracy", "seconds", "weights_bytes"),
    ]
    assert [(r["value"], r["seed"], r["train_loss"], r["weights_bytes"]) for r in rows] == [
        (str(v), str(s), str(0.25 * s), str(10 + s)) for v in (2, 4) for s in range(2)
    ]
    assert rows[0]["device"] == "" and float(rows[3]["accuracy"]) == pytest.approx(0.6)


def test_a_loader_size_option_given_by_the_user_is_kept(monkeypatch):
    """splits._load_dataset 22 (the user's size overridden by the study's): dataset_options win."""
    import torch

    from deepimaging import data
    from deepimaging.data import ImageDataset

    asked = []

    def loader(size=64):
        asked.append(size)
        return ImageDataset(torch.zeros(4, 3, size, size), torch.tensor([0, 0, 1, 1]), ["a", "b"])

    monkeypatch.setattr(data, "dataset_loader", lambda name: loader)
    assert splits._load_dataset("mine", {"size": 12}, 32, None, 0).storage.shape[-1] == 12
    assert splits._load_dataset("mine", {}, 16, None, 0).storage.shape[-1] == 16
    assert asked == [12, 16]


def test_slurm_states_are_read_from_one_cached_sacct_table(tmp_path, monkeypatch):
    """status._job_states 58 (mode="cache" dropped): each state is read from the watcher's cache."""
    submitit = pytest.importorskip("submitit")
    from deepimaging.study.status import _job_states

    class Watcher:
        def register_job(self, job_id):
            pass

        def update(self):
            pass

        def get_state(self, job_id, mode="standard"):
            # submitit's default mode "standard" calls sacct again for a job it last read long ago.
            assert mode == "cache", f"state of {job_id} asked with mode={mode!r}"
            return "RUNNING"

    monkeypatch.setattr(submitit.SlurmJob, "watcher", Watcher())
    assert _job_states([{"executor": "slurm", "job_id": "7_0"}], tmp_path) == ["waiting"]
