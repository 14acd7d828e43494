"""Tests written to kill the mutants of ``deepimaging.study`` that the study tests let survive.

The first tests each name the mutant they were written for (``SAMPLE=60 bash benchmarks/mutation.sh
study``, see benchmarks/mutation_results.md). Those after the seed-2 survivors are written per
function, one group per function with a header comment: every input check (each bound, the type, the
whole message), every branch and the documented result. None trains a network: the records are written
by hand, training and submitit are replaced by stand-ins, and the expected values come from NumPy,
SciPy, scikit-learn, hashlib, the csv module or a hand computation.
"""

import dataclasses
import hashlib
import inspect
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


# --- per function: every check of config.Sweep and config.StudyConfig ------------------------------
# Each refusal is compared with the whole message: it names the parameter and what arrived.

MAX_SEED = 2**63 - 1  # the largest seed NumPy, PyTorch and Python's random all accept


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"layer": ""}, TypeError, "layer must be a non-empty string naming a physical layer; got ''"),
        ({"layer": 3}, TypeError, "layer must be a non-empty string naming a physical layer; got 3"),
        ({"values": "12"}, TypeError, "values must be a list of numbers; got '12'"),
        ({"values": b"12"}, TypeError, "values must be a list of numbers; got b'12'"),
        ({"values": 2}, TypeError, "values must be a list of numbers; got 2"),
        ({"values": []}, ValueError, "values of sweep 'quantize' must hold at least one value; got []"),
        ({"values": [2, "4"]}, TypeError, "values of sweep 'quantize' must be a number; got '4' (str)"),
        ({"values": [2, float("nan")]}, ValueError, "values of sweep 'quantize' must be a number; got NaN"),
        (
            {"values": [2, float("-inf")]},
            ValueError,
            "values of sweep 'quantize' must be finite numbers; got [2, -inf]",
        ),
        ({"values": [2, 2.0]}, ValueError, "values of sweep 'quantize' must not repeat; got [2, 2.0]"),
        (
            {"options": [("gain", 2)]},
            TypeError,
            "options must be a dict of layer keyword arguments; got [('gain', 2)]",
        ),
        ({"label": ""}, TypeError, "label must be a non-empty string; got ''"),
        ({"label": 7}, TypeError, "label must be a non-empty string; got 7"),
    ],
)
def test_a_sweep_refuses_each_bad_field_naming_it_and_what_arrived(kwargs, error, message):
    """config.Sweep.__post_init__: each check's exception type and whole message."""
    with pytest.raises(error) as err:
        Sweep(**({"layer": "quantize", "values": [2, 4]} | kwargs))
    assert str(err.value) == message


def test_a_sweep_keeps_integers_as_ints_copies_its_options_and_defaults_its_label_to_the_layer():
    """config.Sweep.__post_init__: NumPy integers become ints, the rest floats; options are a copy."""
    options = {"gain": 2.0}
    sweep = Sweep("quantize", (np.int64(3), np.float32(0.5), 7), options)
    assert sweep.values == [3, 0.5, 7] and [type(v) for v in sweep.values] == [int, float, int]
    options["gain"] = 9.0
    assert sweep.options == {"gain": 2.0}
    assert sweep.label == sweep.name == "quantize"
    assert Sweep("quantize", [1], label="fixed").name == "fixed"


def _study(**kwargs):
    return StudyConfig(**({"sweeps": [Sweep("quantize", [2])]} | kwargs))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"sweeps": []}, ValueError, "sweeps must hold at least one Sweep(layer, values)"),
        (
            {"sweeps": [Sweep("quantize", [2]), Sweep("quantize", [4])]},
            ValueError,
            "sweep labels must be unique; got ['quantize', 'quantize'] (set label= to tell them apart)",
        ),
        ({"seeds": "012"}, TypeError, "seeds must be a list of integers; got '012'"),
        ({"seeds": b"0"}, TypeError, "seeds must be a list of integers; got b'0'"),
        ({"seeds": {0: 1}}, TypeError, "seeds must be a list of integers; got {0: 1}"),
        ({"seeds": 1.0}, TypeError, "seeds must be a list of integers; got 1.0"),
        ({"seeds": [0, 1.5]}, TypeError, "seeds must be an integer; got 1.5 (float)"),
        ({"seeds": [-1]}, ValueError, f"seeds must be in [0, {MAX_SEED}]; got -1"),
        ({"seeds": [MAX_SEED + 1]}, ValueError, f"seeds must be in [0, {MAX_SEED}]; got {MAX_SEED + 1}"),
        ({"seeds": []}, ValueError, "seeds must be a non-empty list of distinct integers; got []"),
        ({"seeds": [1, 1]}, ValueError, "seeds must be a non-empty list of distinct integers; got [1, 1]"),
        ({"dataset": 3}, TypeError, "dataset must be a string; got 3"),
        (
            {"dataset_options": [("size", 8)]},
            TypeError,
            "dataset_options must be a dict of loader keyword arguments; got [('size', 8)]",
        ),
        ({"size": 7}, ValueError, "size must be in [8, inf]; got 7"),
        ({"size": 8.0}, TypeError, "size must be an integer; got 8.0 (float)"),
        (
            {"size": 1025},
            ValueError,
            "size must be at most 1024 pixels (images are size x size x 3 floats each, and a study "
            "holds thousands of them); got 1025",
        ),
        ({"n_per_class": 0}, ValueError, "n_per_class must be in [1, inf]; got 0"),
        ({"n_per_class": 2.0}, TypeError, "n_per_class must be an integer; got 2.0 (float)"),
        ({"data_seed": -1}, ValueError, f"data_seed must be in [0, {MAX_SEED}]; got -1"),
        (
            {"data_seed": MAX_SEED + 1},
            ValueError,
            f"data_seed must be in [0, {MAX_SEED}]; got {MAX_SEED + 1}",
        ),
        ({"data_seed": "0"}, TypeError, "data_seed must be an integer; got '0' (str)"),
        ({"val": "0.1"}, TypeError, "val must be a number; got '0.1' (str)"),
        ({"val": -0.1}, ValueError, "val must be a fraction of the data in [0, 1); got -0.1"),
        ({"val": 1.0}, ValueError, "val must be a fraction of the data in [0, 1); got 1.0"),
        ({"test": "x"}, TypeError, "test must be a number; got 'x' (str)"),
        ({"test": 0}, ValueError, "test must be a fraction of the data in (0, 1); got 0.0"),
        ({"test": -0.1}, ValueError, "test must be a fraction of the data in (0, 1); got -0.1"),
        ({"test": 1}, ValueError, "test must be a fraction of the data in (0, 1); got 1.0"),
        (
            {"val": 0.5, "test": 0.5},
            ValueError,
            "val + test must be below 1 so that training keeps images; got 1.0",
        ),
        ({"epochs": 1.0}, TypeError, "epochs must be an integer; got 1.0 (float)"),
        ({"lr": 0}, ValueError, "lr must be greater than 0.0; got 0.0"),
        ({"lr": -1e-3}, ValueError, "lr must be greater than 0.0; got -0.001"),
        ({"lr": "fast"}, TypeError, "lr must be a number; got 'fast' (str)"),
        ({"lr": float("inf")}, ValueError, "lr must be a finite number; got inf"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay must be in [0.0, inf]; got -0.1"),
        ({"weight_decay": float("inf")}, ValueError, "weight_decay must be a finite number; got inf"),
        ({"weight_decay": None}, TypeError, "weight_decay must be a number; got None (NoneType)"),
        ({"batch_size": 0}, ValueError, "batch_size must be in [1, inf]; got 0"),
        ({"batch_size": 8.0}, TypeError, "batch_size must be an integer; got 8.0 (float)"),
        ({"patience": 0}, ValueError, "patience must be in [1, inf]; got 0"),
        ({"patience": 2.0}, TypeError, "patience must be an integer; got 2.0 (float)"),
        (
            {"patience": 1, "val": 0},
            ValueError,
            "patience (early stopping) needs a validation split: set val > 0",
        ),
        ({"widths": "16"}, TypeError, "widths must be a list of channel counts, one per CNN block; got '16'"),
        (
            {"widths": b"16"},
            TypeError,
            "widths must be a list of channel counts, one per CNN block; got b'16'",
        ),
        (
            {"widths": {16: 1}},
            TypeError,
            "widths must be a list of channel counts, one per CNN block; got {16: 1}",
        ),
        ({"widths": 16}, TypeError, "widths must be a list of channel counts, one per CNN block; got 16"),
        ({"widths": [16, 0]}, ValueError, "widths must be in [1, 1024]; got 0"),
        ({"widths": [1025]}, ValueError, "widths must be in [1, 1024]; got 1025"),
        ({"widths": [16.0]}, TypeError, "widths must be an integer; got 16.0 (float)"),
        (
            {"widths": []},
            ValueError,
            "widths must name 1 to 10 CNN blocks (each halves the image, and images are at most 1024 "
            "pixels); got 0: []",
        ),
        (
            {"widths": [1] * 11},
            ValueError,
            "widths must name 1 to 10 CNN blocks (each halves the image, and images are at most 1024 "
            f"pixels); got 11: {[1] * 11}",
        ),
        ({"device": "gpu"}, ValueError, "device must be 'cpu', 'auto', 'cuda' or 'mps'; got 'gpu'"),
        ({"device": None}, ValueError, "device must be 'cpu', 'auto', 'cuda' or 'mps'; got None"),
        ({"parameter": 3}, TypeError, "parameter must be a string (axis label); got 3"),
        (
            {"metric": "f1"},
            ValueError,
            "metric must be one of ['accuracy', 'auto', 'balanced_accuracy', 'macro_auc', 'macro_f1']; got 'f1'",
        ),
        ({"save_weights": "yes"}, TypeError, "save_weights must be True or False; got 'yes'"),
        ({"save_weights": 1}, TypeError, "save_weights must be True or False; got 1"),
    ],
)
def test_a_study_configuration_refuses_each_bad_field_naming_it_and_what_arrived(kwargs, error, message):
    """config.StudyConfig.__post_init__: each check's exception type and whole message."""
    with pytest.raises(error) as err:
        _study(**kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seeds": [0, MAX_SEED]},
        {"data_seed": MAX_SEED},
        {"size": 8},
        {"size": 1024},
        {"n_per_class": 1},
        {"n_per_class": None},
        {"val": 0, "test": 0.99},
        {"val": 0.49, "test": 0.5},
        {"epochs": 1},
        {"lr": 1e-9, "weight_decay": 0},
        {"batch_size": 1},
        {"patience": 1, "val": 0.1},
        {"widths": [1024]},
        {"widths": [1] * 10},
        {"device": "cpu"},
        {"device": "cuda"},
        {"device": "cuda:1"},
        {"device": "mps"},
        {"device": "auto"},
        {"parameter": ""},
        {"metric": "accuracy"},
        {"metric": "balanced_accuracy"},
        {"metric": "macro_f1"},
        {"metric": "macro_auc"},
        {"save_weights": False},
    ],
)
def test_a_study_configuration_accepts_each_bound_itself(kwargs):
    """config.StudyConfig.__post_init__: every bound is inclusive where documented; the value is kept."""
    cfg = _study(**kwargs)
    assert {k: getattr(cfg, k) for k in kwargs} == kwargs


def test_a_study_configuration_normalises_its_sweeps_seeds_options_and_widths():
    """config.StudyConfig.__post_init__: one Sweep or dict becomes a list, one seed a list, copies kept."""
    options = {"split": "all"}
    widths = (np.int64(8), 16)
    cfg = StudyConfig(
        sweeps={"layer": "quantize", "values": [2]}, seeds=4, dataset_options=options, widths=widths
    )
    assert cfg.sweeps == [Sweep("quantize", [2])] and cfg.seeds == [4]
    assert cfg.widths == [8, 16] and [type(w) for w in cfg.widths] == [int, int]
    options["split"] = "train"
    assert cfg.dataset_options == {"split": "all"}
    assert StudyConfig(sweeps=Sweep("binning", [2]), seeds=(np.int64(5),)).seeds == [5]
    two = StudyConfig(sweeps=[{"layer": "quantize", "values": [2]}, Sweep("quantize", [2], label="b")])
    assert [s.name for s in two.sweeps] == ["quantize", "b"]
    assert isinstance(two.sweeps[0], Sweep)


# --- per function: results.StudyResults and its helpers ----------------------------------------------


def _results(values_a=(2, 4), values_b=(2, 4), seeds=(0, 1, 2), metric_values=None, folder_=None):
    """Results of two sweeps ``quantize`` and ``other``; accuracy and macro_f1 drawn from a seeded RNG."""
    cfg = StudyConfig(
        sweeps=[Sweep("quantize", list(values_a)), Sweep("binning", list(values_b), label="other")],
        seeds=list(seeds),
        size=16,
        n_per_class=12,
        epochs=1,
        device="cpu",
    )
    rng = np.random.default_rng(1)
    points = []
    for name, values in (("quantize", values_a), ("other", values_b)):
        for v in values:
            for s in seeds:
                points.append(
                    _record(name, v, s, float(rng.random()))
                    | {"macro_f1": float(rng.random()), "recall": {"a": float(rng.random()), "b": 0.5}}
                )
    return StudyResults(cfg, points, folder_)


def test_compare_gives_the_paired_t_statistics_of_each_shared_value_as_scipy_does():
    """results.StudyResults.compare: only shared values; mean, sd, t-interval and p-value of a - b."""
    res = _results(values_a=(2, 4, 6), values_b=(4, 6, 8))
    rows = res.compare("quantize", "other", metric="macro_f1")
    assert [r["value"] for r in rows] == [4, 6]
    for row in rows:
        a = np.array([p["macro_f1"] for p in res.select("quantize", row["value"])])
        b = np.array([p["macro_f1"] for p in res.select("other", row["value"])])
        d = a - b
        low, high = stats.t.interval(0.95, df=2, loc=d.mean(), scale=stats.sem(d))
        assert {k: row[k] for k in ("metric", "a", "b", "n_seeds")} == {
            "metric": "macro_f1",
            "a": "quantize",
            "b": "other",
            "n_seeds": 3,
        }
        assert row["difference_mean"] == pytest.approx(d.mean())
        assert row["difference_std"] == pytest.approx(d.std(ddof=1))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
        assert row["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
        assert row["within_spread"] is bool(low <= 0 <= high)
        assert type(row["p_value"]) is float and type(row["difference_mean"]) is float


def test_compare_uses_only_the_seeds_both_sweeps_recorded_a_number_for():
    """results.StudyResults.compare: a seed missing or None on one side is left out of the pairs."""
    res = _results(values_a=(2,), values_b=(2,), seeds=(0, 1, 2, 3))
    res.points = [p for p in res.points if not (p["sweep"] == "other" and p["seed"] == 3)]
    res.points[1] = res.points[1] | {"accuracy": None}  # quantize, seed 1
    (row,) = res.compare("quantize", "other", metric="accuracy")
    a = {p["seed"]: p["accuracy"] for p in res.select("quantize")}
    b = {p["seed"]: p["accuracy"] for p in res.select("other")}
    d = np.array([a[s] - b[s] for s in (0, 2)])
    assert row["n_seeds"] == 2 and row["difference_mean"] == pytest.approx(d.mean())
    assert row["p_value"] == pytest.approx(stats.ttest_rel([a[0], a[2]], [b[0], b[2]]).pvalue)


def test_compare_with_one_seed_or_no_spread_has_no_interval_or_p_value():
    """results.StudyResults.compare: one seed: sd 0, interval and p None, within spread; equal differences: p None."""
    (row,) = _results(values_a=(2,), values_b=(2,), seeds=(5,)).compare("quantize", "other", "accuracy")
    assert (row["n_seeds"], row["difference_std"], row["ci_low"], row["ci_high"], row["p_value"]) == (
        1,
        0.0,
        None,
        None,
        None,
    )
    assert row["within_spread"] is True
    res = _results(values_a=(2,), values_b=(2,), seeds=(0, 1))
    for p in res.points:
        p["accuracy"] = {("quantize", 0): 0.75, ("quantize", 1): 0.5, ("other", 0): 0.5, ("other", 1): 0.25}[
            p["sweep"], p["seed"]
        ]
    (row,) = res.compare("quantize", "other", "accuracy")
    assert row["p_value"] is None and row["difference_mean"] == 0.25 and row["difference_std"] == 0.0
    assert row["within_spread"] is False  # a zero-width interval at 0.25
    no_seed = _results(values_a=(2,), values_b=(2,))
    for p in no_seed.select("other"):
        p["macro_f1"] = None
    assert no_seed.compare("quantize", "other", "macro_f1") == []


def test_compare_refuses_an_unknown_metric_or_sweep_naming_it():
    """results.StudyResults.compare: the metric and the sweep are checked, the message lists the choices."""
    res = _results()
    with pytest.raises(ValueError) as err:
        res.compare("quantize", "other", metric="f1")
    assert (
        str(err.value)
        == "metric must be one of ['accuracy', 'balanced_accuracy', 'macro_f1', 'macro_auc']; got 'f1'"
    )
    with pytest.raises(ValueError) as err:
        res.compare("quantize", "nope")
    assert str(err.value) == "no sweep called 'nope'; sweeps: ['quantize', 'other']"


def test_compare_defaults_to_the_shown_metric_and_comparisons_cover_every_pair_in_order():
    """results.StudyResults.comparisons: compare(a, b) for each pair a before b, with the shown metric."""
    res = _results()
    assert res.metric == "accuracy"
    assert res.compare("quantize", "other") == res.compare("quantize", "other", metric="accuracy")
    cfg = StudyConfig(sweeps=[Sweep("quantize", [2], label=n) for n in "abc"], seeds=[0, 1])
    points = [_record(n, 2, s, 0.1 * s + ord(n) / 200) for n in "abc" for s in (0, 1)]
    rows = StudyResults(cfg, points).comparisons()
    assert [(r["a"], r["b"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]


def test_summary_rows_give_each_metric_over_seeds_the_shown_metric_and_the_mean_recalls():
    """results.StudyResults.summary: one row per (sweep, value) with points, numbers by NumPy and SciPy."""
    res = _results(values_a=(2, 4), values_b=(2,))
    res.points = [p for p in res.points if not (p["sweep"] == "quantize" and p["value"] == 4)]
    res.points[0]["warnings"] = ["at chance"]
    rows = res.summary()
    assert [(r["sweep"], r["layer"], r["value"], r["n_seeds"]) for r in rows] == [
        ("quantize", "quantize", 2, 3),
        ("other", "binning", 2, 3),
    ]
    row = rows[0]
    points = res.select("quantize", 2)
    f1 = np.array([p["macro_f1"] for p in points])
    low, high = stats.t.interval(0.95, df=2, loc=f1.mean(), scale=stats.sem(f1))
    assert row["macro_f1_mean"] == pytest.approx(f1.mean()) and row["macro_f1_std"] == pytest.approx(
        f1.std(ddof=1)
    )
    assert (row["macro_f1_ci_low"], row["macro_f1_ci_high"]) == pytest.approx((low, high))
    acc = [p["accuracy"] for p in points]
    assert row["metric"] == "accuracy"
    assert (row["mean"], row["std"], row["ci_low"], row["ci_high"]) == (
        row["accuracy_mean"],
        row["accuracy_std"],
        row["accuracy_ci_low"],
        row["accuracy_ci_high"],
    )
    assert row["accuracy_mean"] == pytest.approx(np.mean(acc))
    assert row["recall_mean"] == pytest.approx({"a": np.mean([p["recall"]["a"] for p in points]), "b": 0.5})
    assert (row["warnings"], rows[1]["warnings"]) == (1, 0)


def test_summary_of_one_seed_has_zero_spread_and_no_interval():
    """results._spread: a single seed gives std 0.0 and ci None (t_interval is undefined there)."""
    (row, *_) = _results(seeds=(3,)).summary()
    assert (row["accuracy_std"], row["accuracy_ci_low"], row["accuracy_ci_high"]) == (0.0, None, None)
    assert row["accuracy_mean"] == row["accuracy_min"] == row["accuracy_max"]


def test_t_interval_matches_scipy_at_any_confidence():
    """results.t_interval: mean +- t_{(1+c)/2, n-1} s / sqrt(n), as scipy.stats.t.interval gives it."""
    from deepimaging.study.results import t_interval

    values = [0.2, 0.5, 0.4, 0.9]
    for confidence in (0.5, 0.9, 0.95):
        expected = stats.t.interval(confidence, df=3, loc=np.mean(values), scale=stats.sem(values))
        assert t_interval(values, confidence) == pytest.approx(expected)
    assert t_interval([0.3, 0.5]) == pytest.approx(
        stats.t.interval(0.95, df=1, loc=0.4, scale=stats.sem([0.3, 0.5]))
    )
    assert all(np.isnan(t_interval([0.3]))) and all(np.isnan(t_interval([])))


def test_select_confusion_matrix_and_bits_map_pick_the_points_of_one_value():
    """results.StudyResults.select, confusion_matrix, bits_map: a value matches as a number (2 == 2.0)."""
    res = _results()
    assert len(res.select()) == 12 and len(res.select("other")) == 6 and len(res.select(value=4)) == 6
    assert [p["seed"] for p in res.select("quantize", 2.0)] == [0, 1, 2]
    for k, p in enumerate(res.select("quantize", 2)):
        p["confusion_matrix"] = [[k, 1], [2, 3]]
        p["bits_map"] = [[k, 2 * k]]
    assert res.confusion_matrix("quantize", 2).tolist() == [[0 + 1 + 2, 3], [6, 9]]
    assert res.bits_map("quantize", 2).tolist() == [[1.0, 2.0]] and res.bits_map("quantize", 4) is None
    with pytest.raises(ValueError) as err:
        res.confusion_matrix("quantize", 8)
    assert str(err.value) == "no finished points for sweep 'quantize' at value 8"


def test_load_model_refuses_results_without_a_folder_or_an_unfinished_point():
    """results.StudyResults.load_model: both refusals say why; the default seed is the first."""
    with pytest.raises(ValueError) as err:
        _results().load_model("quantize", 2)
    assert str(err.value) == (
        "these results are not tied to a study folder; open them with "
        "deepimaging.study.load_results(folder) to reach the saved networks"
    )
    res = _results(values_a=(2,), values_b=(2,), seeds=(0,), folder_="somewhere")
    with pytest.raises(ValueError) as err:
        res.load_model("quantize", 2, seed=1)
    assert str(err.value) == (
        "no finished point sweep='quantize', value=2, seed=1; points: [('quantize', 2, 0), ('other', 2, 0)]"
    )
    with pytest.raises(FileNotFoundError, match="point quantize=2 seed 0 has no saved network"):
        res.load_model("quantize", 2)


def test_results_repr_counts_and_metric_properties_follow_the_records():
    """results.StudyResults: None records dropped, folder a Path, test counts the confusion row sums."""
    from pathlib import Path

    res = _results(folder_="out")
    res2 = StudyResults(res.config, [None, *res.points[:5]], "out")
    assert res2.folder == Path("out") and len(res2.points) == 5 and res2.complete is False
    assert repr(res2) == "StudyResults(5 of 12 points, sweeps ['quantize', 'other'])"
    assert res.test_counts == {"a": 5, "b": 5} and res.imbalance == 1.0 and res.metric_name == "accuracy"
    assert res.metric_note() == "The metric shown is accuracy (test images per class: a 5, b 5)."
    empty = StudyResults(res.config, [])
    assert (empty.classes, empty.test_counts, empty.imbalance) == ([], {}, 1.0)
    res.points[0]["confusion_matrix"] = [[3, 0], [0, 0]]
    assert res.imbalance == float("inf") and res.metric == "balanced_accuracy"
    chosen = StudyResults(_study(metric="macro_f1"), res.points)
    assert chosen.metric == "macro_f1" and chosen.metric_note().startswith("The metric shown is macro-F1 (")


def test_to_dict_and_save_write_every_documented_part(tmp_path):
    """results.StudyResults.to_dict and save: the JSON's keys, the CSVs read back by the csv module."""
    import csv

    res = _results()
    res.points[0]["class_counts"] = {"train": {"a": 1}}
    data = res.to_dict()
    assert set(data) == {
        *("format", "config_hash", "config", "complete", "metric", "metric_note", "class_counts"),
        *("summary", "comparisons", "points"),
    }
    assert data["config_hash"] == res.config.hash() and data["config"] == res.config.to_dict()
    assert (data["metric"], data["metric_note"], data["class_counts"]) == (
        "accuracy",
        res.metric_note(),
        {"train": {"a": 1}},
    )
    assert data["summary"] == res.summary() and data["comparisons"] == res.comparisons()
    empty = StudyResults(res.config, []).to_dict()
    assert (empty["metric"], empty["metric_note"], empty["class_counts"], empty["summary"]) == (
        None,
        None,
        None,
        [],
    )
    res.save(tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(data))
    summary = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(r["sweep"], r["value"]) for r in summary] == [
        (r["sweep"], str(r["value"])) for r in res.summary()
    ]
    assert "recall_mean" not in summary[0] and "accuracy_ci_high" in summary[0]
    assert len(list(csv.DictReader((tmp_path / "points.csv").open()))) == 12
    assert StudyResults(res.config, []).points_csv() == ""


# --- per function: the study folder (folder.py) -------------------------------------------------------


def test_point_files_are_named_by_sweep_value_and_seed_with_unsafe_characters_replaced(tmp_path):
    """folder._point_filename and point_paths: one file per point under points/, only [A-Za-z0-9._-]."""
    assert folder._point_filename("quantize", 2, 0) == "quantize__v2__s0.json"
    assert folder._point_filename("my label/x", 0.5, 12) == "my-label-x__v0.5__s12.json"
    cfg = _config([Sweep("quantize", [2, 4])])
    paths = folder.point_paths(tmp_path, cfg)
    assert list(paths) == cfg.points()
    assert paths["quantize", 4, 1] == tmp_path / "points" / "quantize__v4__s1.json"


def test_a_value_written_as_an_integral_float_names_the_same_point_file_as_the_integer():
    """folder._point_filename: 1.0 and 1 are one point (the hash reads both as 1.0), so one file name."""
    assert (
        folder._point_filename("blur", 1.0, 0) == folder._point_filename("blur", 1, 0) == "blur__v1__s0.json"
    )
    assert folder._point_filename("blur", 1.5, 0) == "blur__v1.5__s0.json"
    assert folder._point_filename("blur", -2.0, 3) == "blur__v-2__s3.json"


def test_a_submission_resumed_with_values_written_differently_submits_nothing_already_done(
    tmp_path, monkeypatch
):
    """executors.run_study: the same study (same hash) with 1 instead of 1.0 finds every point done.

    Before point files were named canonically, the resume looked for blur__v1__s0.json, found only
    blur__v1.0__s0.json, and submitted (retrained) the point again.
    """
    pools = []
    _fake_submitit(monkeypatch, pools, [])
    ran = []
    monkeypatch.setattr(executors, "run_study_here", lambda *a, **k: ran.append(a) or "results")
    written = _config([Sweep("blur", [0.5, 1.0])])
    resumed = _config([Sweep("blur", [0.5, 1])])
    assert written.hash() == resumed.hash()
    folder._prepare_folder(tmp_path, written)
    for key, path in folder.point_paths(tmp_path, written).items():
        path.write_text(json.dumps(_valid_point(written, key)))
    assert executors.run_study(resumed, tmp_path, executor="slurm") == "results"
    assert pools == [] and ran == [(resumed, tmp_path)]


def test_a_new_study_folder_gets_its_study_file_and_the_same_configuration_resumes(tmp_path):
    """folder._prepare_folder: study.json holds the format, hash, configuration and package version."""
    from deepimaging._util import package_version

    cfg = _config([Sweep("quantize", [2])])
    out = tmp_path / "new" / "study"
    assert folder._prepare_folder(out, cfg) == out
    assert json.loads((out / "study.json").read_text()) == {
        "format": 1,
        "config_hash": cfg.hash(),
        "config": json.loads(json.dumps(cfg.to_dict())),
        "deepimaging_version": package_version(),
    }
    assert (out / "points").is_dir() and sorted(p.name for p in out.iterdir()) == ["points", "study.json"]
    assert folder._prepare_folder(out, _config([Sweep("quantize", [2])])) == out  # resumes
    dry = tmp_path / "dry"
    assert folder._prepare_folder(dry, cfg, write=False) == dry
    assert (dry / "points").is_dir() and not (dry / "study.json").exists()


def test_an_output_folder_that_is_a_file_or_not_writable_is_refused_naming_it(tmp_path, monkeypatch):
    """folder._prepare_folder: a file in the way, and a folder refusing writes (with or without strerror)."""
    cfg = _config([Sweep("quantize", [2])])
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError) as err:
        folder._prepare_folder(tmp_path / "f", cfg)
    assert str(err.value) == f"output folder {tmp_path / 'f'} exists and is a file, not a folder"
    for error, why in (
        (PermissionError(13, "Permission denied"), "Permission denied"),
        (PermissionError("no"), "no"),
    ):

        def refuse(path, error=error):
            raise error

        monkeypatch.setattr(folder, "_check_writable", refuse)
        with pytest.raises(PermissionError) as err:
            folder._prepare_folder(tmp_path / "ro", cfg)
        assert str(err.value) == (
            f"cannot write to output folder {tmp_path / 'ro'} ({why}); "
            "choose a writable folder or fix its permissions — nothing was changed"
        )


@pytest.mark.parametrize("text", ["not json", "[]", "{}", '"text"'])
def test_an_unreadable_study_file_is_refused_and_kept(tmp_path, text):
    """folder._prepare_folder: study.json that is no JSON object with a config_hash is named, not overwritten."""
    (tmp_path / "study.json").write_text(text)
    with pytest.raises(folder.StudyConfigMismatch) as err:
        folder._prepare_folder(tmp_path, _config([Sweep("quantize", [2])]))
    assert str(err.value) == (
        f"{tmp_path / 'study.json'} is unreadable or not a deepimaging study file; "
        "move it away or choose another output folder"
    )
    assert (tmp_path / "study.json").read_text() == text


def test_a_folder_of_another_configuration_is_refused_with_both_hashes_and_the_difference(tmp_path):
    """folder._prepare_folder and _describe_differences: the message names each changed key, old and new."""
    old, new = _config([Sweep("quantize", [2])]), _config([Sweep("quantize", [2])])
    new.epochs = 3
    folder._prepare_folder(tmp_path, old)
    with pytest.raises(folder.StudyConfigMismatch) as err:
        folder._prepare_folder(tmp_path, new)
    assert str(err.value) == (
        f"output folder {tmp_path} holds results of a different study configuration "
        f"(hash {old.hash()}, now {new.hash()}; differences: epochs: 1 in the folder, 3 now). "
        "A study resumes only in a folder made with the same configuration; "
        "choose a new output folder, or delete this one to start over."
    )


def test_differences_are_listed_by_key_and_cut_at_600_characters():
    """folder._describe_differences: sorted keys, '; '-joined, a text of 600 or more cut with ' ...'."""
    assert folder._describe_differences({"b": 1, "a": 2, "same": 0}, {"a": 3, "c": "x", "same": 0}) == (
        "a: 2 in the folder, 3 now; b: 1 in the folder, None now; c: None in the folder, 'x' now"
    )

    def text(n):  # 'k: ' + repr of n letters + ' in the folder, None now'
        return f"k: {'a' * n!r} in the folder, None now"

    n = 599 - len(text(0))
    assert len(text(n)) == 599 and folder._describe_differences({"k": "a" * n}, {}) == text(n)
    assert folder._describe_differences({"k": "a" * (n + 1)}, {}) == text(n + 1)[:600] + " ..."


def test_point_files_without_a_study_file_are_refused_but_other_files_are_not(tmp_path):
    """folder._prepare_folder: a leftover points/*.json without study.json is refused; a .pt is not."""
    cfg = _config([Sweep("quantize", [2])])
    (tmp_path / "points").mkdir()
    (tmp_path / "points" / "w.pt").write_text("")
    folder._prepare_folder(tmp_path / ".", cfg, write=False)
    (tmp_path / "points" / "quantize__v2__s0.json").write_text("{}")
    with pytest.raises(folder.StudyConfigMismatch) as err:
        folder._prepare_folder(tmp_path, cfg)
    assert str(err.value) == (
        f"output folder {tmp_path} holds point files but no study.json, so their configuration "
        "is unknown; choose a new output folder"
    )


def test_a_study_file_created_first_by_another_process_is_checked(tmp_path, monkeypatch):
    """folder._prepare_folder: when the exclusive create loses a race, the winner's file is compared."""
    mine, theirs = _config([Sweep("quantize", [2])]), _config([Sweep("quantize", [4])])

    def lose(path, data):
        path.write_text(json.dumps({"config_hash": theirs.hash(), "config": theirs.to_dict()}))
        return False

    monkeypatch.setattr(folder, "_create_json_exclusive", lose)
    with pytest.raises(folder.StudyConfigMismatch, match=rf"\(hash {theirs.hash()}, now {mine.hash()};"):
        folder._prepare_folder(tmp_path, mine)


def test_an_exclusive_create_writes_once_leaves_no_temporary_file_and_refuses_nan(tmp_path):
    """folder._create_json_exclusive and _write_json_atomic: one winner, a readable file, no NaN written."""
    path = tmp_path / "study.json"
    assert folder._create_json_exclusive(path, {"a": [1, 2]}) is True
    assert folder._create_json_exclusive(path, {"a": "second"}) is False
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": [1, 2]} and path.read_text().endswith("\n")
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in tmp_path.iterdir()] == ["study.json"]
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        folder._create_json_exclusive(tmp_path / "nan.json", {"a": float("nan")})
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        folder._write_json_atomic(tmp_path / "nan.json", {"a": float("inf")})
    assert [p.name for p in tmp_path.iterdir()] == ["study.json"]
    folder._write_json_atomic(tmp_path / "r.json", {"b": None})
    assert json.loads((tmp_path / "r.json").read_text()) == {"b": None}


def _valid_point(cfg, key):
    return {"config_hash": cfg.hash(), "sweep": key[0], "value": key[1], "seed": key[2]} | {
        "accuracy": 0.5,
        "confusion_matrix": [[1]],
        "classes": ["a"],
    }


@pytest.mark.parametrize(
    "change",
    [
        {"config_hash": "0" * 16},
        {"sweep": "other"},
        {"value": 4},
        {"seed": 1},
        {"accuracy": 1},
        {"confusion_matrix": "[[1]]"},
    ],
)
def test_a_point_file_that_is_not_this_points_finished_record_is_read_as_missing_with_a_warning(
    tmp_path, change
):
    """folder._read_point: each condition of a valid record; a failing one warns naming the file and the action."""
    cfg = _config([Sweep("quantize", [2])])
    path, key = tmp_path / "p.json", ("quantize", 2, 0)
    path.write_text(json.dumps(_valid_point(cfg, key) | change))
    with pytest.warns(UserWarning) as caught:
        assert folder._read_point(path, cfg.hash(), key, "skipping it") is None
    assert str(caught[0].message) == (
        f"point file {path} is corrupt, truncated or from another configuration; skipping it"
    )


@pytest.mark.parametrize("content", [b"[1]", b"{", b"\xff\xfe", b'{"config_hash": "x"}'])
def test_a_point_file_that_is_no_record_is_read_as_missing(tmp_path, content):
    """folder._read_point: not a dict, truncated, not UTF-8, keys missing: recomputed, with a warning."""
    cfg = _config([Sweep("quantize", [2])])
    path = tmp_path / "p.json"
    path.write_bytes(
        content if content != b'{"config_hash": "x"}' else json.dumps({"config_hash": cfg.hash()}).encode()
    )
    with pytest.warns(UserWarning, match="; recomputing it$"):
        assert folder._read_point(path, cfg.hash(), ("quantize", 2, 0)) is None


def test_a_valid_point_file_is_read_back_and_a_missing_one_is_none_without_warning(tmp_path, recwarn):
    """folder._read_point: the value matches as a number (2 and 2.0); no file, no warning."""
    cfg = _config([Sweep("quantize", [2])])
    record = _valid_point(cfg, ("quantize", 2.0, 0))
    (tmp_path / "p.json").write_text(json.dumps(record))
    assert folder._read_point(tmp_path / "p.json", cfg.hash(), ("quantize", 2, 0)) == record
    assert folder._read_point(tmp_path / "none.json", cfg.hash(), ("quantize", 2, 0)) is None
    assert len(recwarn) == 0


# --- per function: a study's state (status.py) and a configuration file (jobs.load_config) --------


def test_the_jobs_file_is_read_and_a_missing_or_broken_one_is_no_jobs(tmp_path):
    """status._read_jobs: OUT/slurm_logs/jobs.json's list; no file or invalid JSON gives []."""
    from deepimaging.study.status import _read_jobs

    assert _read_jobs(tmp_path) == []
    (tmp_path / "slurm_logs").mkdir()
    (tmp_path / "slurm_logs" / "jobs.json").write_text("[{")
    assert _read_jobs(tmp_path) == []
    (tmp_path / "slurm_logs" / "jobs.json").write_text(json.dumps([{"point": 0, "job_id": "7_0"}]))
    assert _read_jobs(tmp_path) == [{"point": 0, "job_id": "7_0"}]


def test_a_child_that_exited_but_was_not_reaped_is_not_alive():
    """status._process_alive: a zombie (state Z in /proc/PID/stat) counts as dead."""
    import time

    child = subprocess.Popen(["true"])
    stat = f"/proc/{child.pid}/stat"
    deadline = time.monotonic() + 60  # `true` exits at once; a loaded machine may take seconds to run it
    while open(stat).read().rsplit(")", 1)[-1].split()[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert not _process_alive(child.pid)
    finally:
        child.wait()


def _submitit_paths(logs, job_id):
    submitit = pytest.importorskip("submitit")
    return submitit.core.utils.JobPaths(logs, job_id)


def test_a_failed_tasks_log_tail_is_its_last_non_empty_lines_from_stderr_then_stdout(tmp_path):
    """status._log_tail: the last 5 non-blank lines of stderr, else of stdout, else says there is no log."""
    from deepimaging.study.status import _log_tail

    paths = _submitit_paths(tmp_path, "7_0")
    entry = {"job_id": "7_0"}
    assert _log_tail(entry, tmp_path) == (
        f"(no log in {paths.stderr.parent}: the job was killed before it started, or never ran)"
    )
    paths.stdout.parent.mkdir(parents=True, exist_ok=True)
    paths.stdout.write_text("out 1\nout 2\n")
    paths.stderr.write_text("\n  \n")
    assert _log_tail(entry, tmp_path) == "out 1\nout 2"
    paths.stderr.write_bytes(b"".join(b"line %d\n\n" % k for k in range(8)) + b"bad \xff\n")
    assert _log_tail(entry, tmp_path) == "line 4\nline 5\nline 6\nline 7\nbad \ufffd"
    assert _log_tail(entry, tmp_path, lines=1) == "bad \ufffd"


def test_job_states_read_submitits_result_files_local_processes_and_slurm_states(tmp_path, monkeypatch):
    """status._job_states: result pickle first; a local task by its process; SLURM's state word, UNKNOWN waits."""
    submitit = pytest.importorskip("submitit")
    from deepimaging.study.status import _job_states

    for job_id, outcome in (("1_0", "success"), ("1_1", "error")):
        paths = _submitit_paths(tmp_path, job_id)
        paths.result_pickle.parent.mkdir(parents=True, exist_ok=True)
        submitit.core.utils.cloudpickle_dump((outcome, None), paths.result_pickle)
    states = {"9_0": "PENDING", "9_1": "CANCELLED by 1234", "9_2": None, "9_3": "COMPLETED", "9_4": "UNKNOWN"}

    class Watcher:
        def register_job(self, job_id):
            pass

        def update(self):
            raise RuntimeError("no sacct here")  # the states then stay what the watcher knew

        def get_state(self, job_id, mode="standard"):
            return states[job_id]

    monkeypatch.setattr(submitit.SlurmJob, "watcher", Watcher())
    entries = [
        {"executor": "slurm", "job_id": "1_0"},
        {"executor": "slurm", "job_id": "1_1"},
        {"executor": "submitit-local", "job_id": f"{os.getpid()}_0"},
        *({"executor": "slurm", "job_id": job_id} for job_id in states),
    ]
    assert _job_states(entries, tmp_path) == [
        *("finished", "failed", "waiting"),
        *("waiting", "failed", "waiting", "failed", "waiting"),
    ]


def test_study_status_sorts_each_point_into_done_running_failed_or_missing(tmp_path, monkeypatch):
    """status.study_status: done from valid point files, the rest from the last submission of each point."""
    from deepimaging.study import status

    cfg = _config([Sweep("quantize", [2, 4])])  # 6 points
    with pytest.raises(FileNotFoundError) as err:
        status.study_status(tmp_path)
    assert str(err.value) == f"{tmp_path} is not a study folder (no study.json); run or submit the study"
    folder._prepare_folder(tmp_path, cfg)
    paths = folder.point_paths(tmp_path, cfg)
    for key in cfg.points()[:2]:
        paths[key].write_text(json.dumps(_valid_point(cfg, key)))
    (tmp_path / "slurm_logs").mkdir()
    jobs = [{"point": 4, "job_id": "1_4"}, {"point": 2, "job_id": "1_2"}, {"point": 3, "job_id": "1_3"}]
    jobs.append({"point": 4, "job_id": "2_4"})  # resubmitted: the last entry counts
    (tmp_path / "slurm_logs" / "jobs.json").write_text(json.dumps(jobs))
    asked = []

    def states(entries, logs):
        asked.append(([e["job_id"] for e in entries], logs))
        return ["failed", "waiting", "waiting"]

    monkeypatch.setattr(status, "_job_states", states)
    monkeypatch.setattr(status, "_log_tail", lambda entry, logs: f"log of {entry['job_id']}")
    found = status.study_status(tmp_path)
    assert asked == [(["1_2", "1_3", "2_4"], tmp_path / "slurm_logs")]
    assert found == {
        "done": [0, 1],
        "running": [3, 4],
        "failed": [2],
        "missing": [5],
        "points": cfg.points(),
        "logs": {2: "log of 1_2"},
    }
    assert status.study_status(tmp_path / "elsewhere", config=cfg)["missing"] == list(range(6))


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("{", ValueError, "is not valid JSON: Expecting property name enclosed in double quotes"),
        ('{"sweeps": NaN}', ValueError, "is not valid JSON: NaN is not a number a study can use"),
        ("[1, 2]", ValueError, "must hold a JSON object (keys such as sweeps, seeds); got a JSON list"),
        ('{"sweeps": [], "bogus": 1}', ValueError, ": unknown study configuration key(s) ['bogus']; allowed"),
        (
            '{"sweeps": {"layer": "quantize", "values": [2]}, "seeds": "0"}',
            TypeError,
            ": seeds must be a list",
        ),
    ],
)
def test_a_bad_configuration_file_is_refused_naming_the_file(tmp_path, text, error, message):
    """jobs.load_config: JSON errors, a non-object and a bad key each name the file and what is wrong."""
    from deepimaging.study.jobs import load_config

    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(error) as err:
        load_config(path)
    assert str(err.value).startswith(f"the study configuration {path}") and message in str(err.value)


def test_a_configuration_is_read_from_a_bare_file_or_a_study_folders_study_json(tmp_path):
    """jobs.load_config: both forms give the same configuration; a folder or a missing file is named."""
    from deepimaging.study.jobs import load_config

    cfg = _config([Sweep("quantize", [2, 4])])
    (tmp_path / "bare.json").write_text(json.dumps(cfg.to_dict()))
    folder._prepare_folder(tmp_path / "study", cfg)
    assert load_config(tmp_path / "bare.json") == cfg == load_config(str(tmp_path / "study" / "study.json"))
    with pytest.raises(IsADirectoryError) as err:
        load_config(tmp_path / "study")
    assert str(err.value) == (
        f"the study configuration {tmp_path / 'study'} is a folder; give a JSON file such as study.json"
    )
    with pytest.raises(FileNotFoundError) as err:
        load_config(tmp_path / "none.json")
    assert str(err.value) == f"the study configuration {tmp_path / 'none.json'} does not exist"


@pytest.mark.parametrize("number", [-1, 6, True, 2.0, "1"])
def test_run_point_number_refuses_anything_but_a_point_number(number):
    """jobs.run_point_number: bool, float, str and both ends of [0, 5] refused before loading data."""
    with pytest.raises(ValueError) as err:
        run_point_number(_config([Sweep("quantize", [2, 4])]), number, "unused")
    assert str(err.value) == f"number must be a point number in [0, 5] for this study; got {number!r}"


def test_a_configuration_round_trips_through_a_dict_and_refuses_unknown_keys():
    """config.StudyConfig.from_dict: to_dict's inverse, a deep copy; non-dicts and unknown keys named."""
    cfg = _config([Sweep("quantize", [2, 4], {"gain": [1]})])
    data = cfg.to_dict()
    again = StudyConfig.from_dict(data)
    assert again == cfg
    data["sweeps"][0]["options"]["gain"].append(2)
    assert again.sweeps[0].options == {"gain": [1]}
    with pytest.raises(TypeError) as err:
        StudyConfig.from_dict([("sweeps", [])])
    assert str(err.value) == "a study configuration must be a dict; got list"
    with pytest.raises(ValueError) as err:
        StudyConfig.from_dict({"sweeps": [], "zz": 1, "bogus": 2})
    allowed = sorted(f.name for f in dataclasses.fields(StudyConfig))
    assert str(err.value) == f"unknown study configuration key(s) ['bogus', 'zz']; allowed keys: {allowed}"


def test_the_hash_ignores_the_axis_label_shown_metric_and_saving_but_not_a_training_setting():
    """config.StudyConfig.hash: parameter, metric, save_weights left out; 2 and 2.0 hash alike; epochs count."""
    base = _config([Sweep("quantize", [2, 4])])
    same = StudyConfig(
        **(base.to_dict() | {"parameter": "bits", "metric": "macro_f1", "save_weights": False})
    )
    assert same.hash() == base.hash()
    assert _config([Sweep("quantize", [2.0, 4.0])]).hash() == base.hash()
    assert StudyConfig(**(base.to_dict() | {"epochs": 2})).hash() != base.hash()
    assert len(base.hash()) == 16 and int(base.hash(), 16) >= 0
    assert base.to_dict()["parameter"] == "value"  # hash() must not change the configuration


# --- per function: executors.run_study (its checks, and a submission through a stand-in submitit) ------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"executor": "cluster"}, "executor must be one of local, slurm, submitit-local; got 'cluster'"),
        ({"wait": True}, "wait apply to executor='slurm' or 'submitit-local', not 'local'"),
        ({"partition": "gpu"}, "partition apply to executor='slurm' or 'submitit-local', not 'local'"),
        ({"time_min": 61}, "time_min apply to executor='slurm' or 'submitit-local', not 'local'"),
        ({"cpus": 2}, "cpus apply to executor='slurm' or 'submitit-local', not 'local'"),
        ({"gpus": 1}, "gpus apply to executor='slurm' or 'submitit-local', not 'local'"),
        ({"mem_gb": 8}, "mem_gb apply to executor='slurm' or 'submitit-local', not 'local'"),
        ({"max_parallel": 2}, "max_parallel apply to executor='slurm' or 'submitit-local', not 'local'"),
        (
            {"cpus": 2, "max_parallel": 2},
            "cpus, max_parallel apply to executor='slurm' or 'submitit-local', not 'local'",
        ),
        ({"executor": "slurm", "time_min": 0}, "time_min must be in [1, inf]; got 0"),
        ({"executor": "slurm", "cpus": 0}, "cpus must be in [1, inf]; got 0"),
        ({"executor": "submitit-local", "gpus": -1}, "gpus must be in [0, inf]; got -1"),
        ({"executor": "slurm", "max_parallel": 0}, "max_parallel must be in [1, inf]; got 0"),
        (
            {"executor": "slurm", "mem_gb": 0},
            "mem_gb (memory per point in GB) must be a positive number; got 0",
        ),
        (
            {"executor": "slurm", "mem_gb": -2.5},
            "mem_gb (memory per point in GB) must be a positive number; got -2.5",
        ),
        (
            {"executor": "slurm", "mem_gb": True},
            "mem_gb (memory per point in GB) must be a positive number; got True",
        ),
        (
            {"executor": "slurm", "mem_gb": "4"},
            "mem_gb (memory per point in GB) must be a positive number; got '4'",
        ),
    ],
)
def test_run_study_refuses_each_bad_option_before_writing_anything(tmp_path, monkeypatch, kwargs, message):
    """executors.run_study: each refusal's whole message; nothing is run, submitted or written."""
    monkeypatch.setattr(executors, "run_study_here", lambda *a, **k: pytest.fail("ran the study"))
    monkeypatch.setattr(executors, "_import_submitit", lambda: pytest.fail("imported submitit"))
    with pytest.raises(ValueError) as err:
        executors.run_study(_config([Sweep("quantize", [2])]), tmp_path / "out", **kwargs)
    assert str(err.value) == message
    assert not (tmp_path / "out").exists()


def test_a_local_run_with_the_default_cluster_options_runs_here(tmp_path, monkeypatch):
    """executors.run_study: executor="local" with every cluster option at its default trains here."""
    calls = []
    monkeypatch.setattr(executors, "run_study_here", lambda *a, **k: calls.append((a, k)) or "results")
    cfg = _config([Sweep("quantize", [2])])
    defaults = {"wait": False, "partition": None, "time_min": 60, "cpus": 1, "gpus": 0, "mem_gb": 4.0}
    assert executors.run_study(cfg, "out", jobs=3, progress=False, max_parallel=None, **defaults) == "results"
    assert executors.run_study(cfg, "out") == "results"
    assert calls == [
        ((cfg, "out"), {"jobs": 3, "progress": False}),
        ((cfg, "out"), {"jobs": 1, "progress": True}),
    ]


def test_a_cluster_run_needs_a_study_configuration_and_slurm_installed(tmp_path, monkeypatch):
    """executors.run_study: a dict is no configuration; slurm without sbatch or srun says what to do."""
    with pytest.raises(TypeError) as err:
        executors.run_study({"sweeps": []}, tmp_path, executor="slurm")
    assert str(err.value) == "config must be a StudyConfig; got dict"
    for missing in ("sbatch", "srun"):
        monkeypatch.setattr(
            executors.shutil, "which", lambda name, missing=missing: None if name == missing else "/bin/x"
        )
        with pytest.raises(ValueError) as err:
            executors.run_study(_config([Sweep("quantize", [2])]), tmp_path / "out", executor="slurm")
        assert str(err.value) == (
            "--executor slurm needs SLURM's sbatch and srun, which are not installed on this machine; "
            "run on the cluster's login node, or here with --executor local (add --jobs N for N cores)"
        )
    assert not (tmp_path / "out").exists()


class _Pool:
    """A stand-in for submitit's executors: records its parameters and the array it is given."""

    def __init__(self, folder, kind, dead_pid):
        self.folder, self.kind, self.dead_pid, self.params, self.mapped = folder, kind, dead_pid, None, None

    def update_parameters(self, **params):
        self.params = params

    def map_array(self, fn, *args):
        self.mapped = (fn, args)
        # local job ids are "<pid>_<task>": a pid that names no process, so the task counts as failed.
        return [
            SimpleNamespace(job_id=f"{self.dead_pid}_{k}", exception=lambda: None)
            for k in range(len(args[1]))
        ]


def _fake_submitit(monkeypatch, pools, polls):
    child = subprocess.Popen(["true"])
    child.wait()
    fake = SimpleNamespace(
        SlurmExecutor=lambda folder: pools.append(_Pool(folder, "slurm", child.pid)) or pools[-1],
        LocalExecutor=lambda folder: pools.append(_Pool(folder, "local", child.pid)) or pools[-1],
        helpers=SimpleNamespace(
            as_completed=lambda jobs, poll_frequency: polls.append(poll_frequency) or jobs
        ),
    )
    monkeypatch.setattr(executors, "_import_submitit", lambda: fake)
    train = SimpleNamespace(image_shape=(3, 16, 16))
    monkeypatch.setattr(executors, "load_data", lambda config: (train, None, None))
    monkeypatch.setattr(executors, "_validate_layers", lambda config, shape: None)
    monkeypatch.setattr(executors.shutil, "which", lambda name: f"/usr/bin/{name}")
    return fake


def test_a_slurm_submission_asks_for_the_given_resources_and_records_each_task(tmp_path, monkeypatch, capsys):
    """executors.run_study: SLURM parameters, one array over the missing points, jobs.json, the Submission."""
    pools, polls = [], []
    _fake_submitit(monkeypatch, pools, polls)
    cfg = _config([Sweep("quantize", [2, 4])])
    out = tmp_path / ("s" * 70)
    folder._prepare_folder(out, cfg)
    done = cfg.points()[1]
    folder.point_paths(out, cfg)[done].write_text(json.dumps(_valid_point(cfg, done)))
    sub = executors.run_study(
        cfg, out, executor="slurm", partition="gpu", time_min=30, cpus=2, gpus=1, mem_gb=2.5, max_parallel=3
    )
    (pool,) = pools
    assert pool.kind == "slurm" and pool.folder == out / "slurm_logs"
    assert pool.params == {
        "time": 30,
        "cpus_per_task": 2,
        "mem": "2560MB",
        "array_parallelism": 3,
        "job_name": ("deepimaging-" + "s" * 70)[:64],
        "partition": "gpu",
        "gpus_per_node": 1,
    }
    todo = [0, 2, 3, 4, 5]
    fn, (configs, numbers, outs) = pool.mapped
    assert fn is executors._run_task and numbers == todo
    assert configs == [cfg.to_dict()] * 5 and outs == [str(out)] * 5
    dead = pool.dead_pid
    assert sub == executors.Submission("slurm", str(dead), todo, out / "slurm_logs")
    jobs = json.loads((out / "slurm_logs" / "jobs.json").read_text())
    assert [(j["executor"], j["job_id"], j["point"]) for j in jobs] == [
        ("slurm", f"{dead}_{k}", p) for k, p in enumerate(todo)
    ]
    assert all(isinstance(j["submitted"], float) for j in jobs)
    assert (
        capsys.readouterr().out
        == f"submitted 5 point(s) as job {dead} (slurm); logs in {out / 'slurm_logs'}\n"
    )
    assert polls == []


def test_a_slurm_submission_without_partition_or_gpus_leaves_them_to_the_cluster(tmp_path, monkeypatch):
    """executors.run_study: no partition or gpus keys by default; memory at least 1 MB; parallelism = tasks."""
    pools = []
    _fake_submitit(monkeypatch, pools, [])
    cfg = _config([Sweep("quantize", [2])])
    executors.run_study(cfg, tmp_path / "out", executor="slurm", mem_gb=1e-4)
    assert pools[0].params == {
        "time": 60,
        "cpus_per_task": 1,
        "mem": "1MB",
        "array_parallelism": 3,
        "job_name": "deepimaging-out",
    }


def test_a_submitit_local_run_that_waits_reports_unfinished_points_and_then_finishes(
    tmp_path, monkeypatch, capsys
):
    """executors.run_study: LocalExecutor parameters, polled every second; results only when every point is there."""
    pools, polls = [], []
    _fake_submitit(monkeypatch, pools, polls)
    ran = []
    monkeypatch.setattr(executors, "run_study_here", lambda *a, **k: ran.append((a, k)) or "results")
    cfg = _config([Sweep("quantize", [2])])
    out = tmp_path / "out"
    sub = executors.run_study(
        cfg, out, executor="submitit-local", time_min=5, gpus=0, wait=True, progress=False
    )
    assert pools[0].kind == "local" and pools[0].params == {"timeout_min": 5, "gpus_per_node": 0}
    assert polls == [1] and ran == []
    assert isinstance(sub, executors.Submission) and sub.points == [0, 1, 2]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"3 point(s) did not finish: see `deepimaging status {out}`, then rerun to resubmit"
    )
    # Every point written: nothing to submit, the results are written here.
    for key, path in folder.point_paths(out, cfg).items():
        path.write_text(json.dumps(_valid_point(cfg, key)))
    assert executors.run_study(cfg, out, executor="slurm", wait=True) == "results"
    assert ran == [((cfg, out), {"progress": False})] and len(pools) == 1


def test_a_slurm_run_that_waits_polls_every_30_seconds_and_writes_the_results(tmp_path, monkeypatch):
    """executors.run_study: once every job is through and every point file there, the results are written."""
    polls = []
    fake = _fake_submitit(monkeypatch, [], polls)
    cfg = _config([Sweep("quantize", [2])])
    paths = folder.point_paths(tmp_path, cfg)

    def finish(jobs, poll_frequency):  # the jobs write their points
        polls.append(poll_frequency)
        for key, path in paths.items():
            path.write_text(json.dumps(_valid_point(cfg, key)))
        return jobs

    fake.helpers.as_completed = finish
    monkeypatch.setattr(executors, "run_study_here", lambda *a, **k: ("results", a, k))
    assert executors.run_study(cfg, tmp_path, executor="slurm", wait=True) == (
        "results",
        (cfg, tmp_path),
        {"progress": False},
    )
    assert polls == [30]


def test_a_submission_with_every_point_still_queued_is_refused(tmp_path, monkeypatch):
    """executors.run_study: nothing missing or failed but points running: say so rather than submit again."""
    from deepimaging.study import status

    _fake_submitit(monkeypatch, [], [])
    cfg = _config([Sweep("quantize", [2])])
    folder._prepare_folder(tmp_path, cfg)
    (tmp_path / "slurm_logs").mkdir()
    (tmp_path / "slurm_logs" / "jobs.json").write_text(
        json.dumps([{"point": k, "job_id": f"1_{k}"} for k in range(3)])
    )
    monkeypatch.setattr(status, "_job_states", lambda entries, logs: ["waiting"] * len(entries))
    with pytest.raises(ValueError) as err:
        executors.run_study(cfg, tmp_path, executor="slurm")
    assert str(err.value) == (
        f"every unfinished point of {tmp_path} is still queued or running (3); see `deepimaging status {tmp_path}`"
    )


def test_an_array_task_runs_its_point_from_plain_data_and_returns_number_accuracy_and_device(monkeypatch):
    """executors._run_task: the configuration rebuilt from its dict; (number, accuracy, device) returned."""
    cfg = _config([Sweep("quantize", [2])])
    calls = []

    def run(config, number, out_dir, progress):
        calls.append((config, number, out_dir, progress))
        return ("key", {"accuracy": 0.75, "device": "cpu"})

    monkeypatch.setattr(executors, "run_point_number", run)
    assert executors._run_task(cfg.to_dict(), 2, "out") == (2, 0.75, "cpu")
    assert calls == [(cfg, 2, "out", False)]


# --- per function: engine.run_study and engine.load_results (training replaced by a recorder) --------


def _fake_engine(monkeypatch, cfg):
    """run_point writes a valid point file and returns its record; data loading and devices are recorded."""
    from deepimaging import train

    calls = {"run_point": [], "device": [], "shape": []}
    monkeypatch.setattr(train, "get_device", lambda device: calls["device"].append(device))
    monkeypatch.setattr(
        engine, "load_data", lambda config: (SimpleNamespace(image_shape=(3, 16, 16)), None, None)
    )
    monkeypatch.setattr(engine, "_validate_layers", lambda config, shape: calls["shape"].append(shape))

    def run_point(config, sweep, value, seed, out_dir):
        calls["run_point"].append((sweep, value, seed))
        record = _valid_point(config, (sweep, value, seed))
        folder.point_paths(out_dir, config)[sweep, value, seed].write_text(json.dumps(record))
        return record

    monkeypatch.setattr(engine, "run_point", run_point)
    return calls


def test_run_study_checks_its_arguments_naming_them(tmp_path):
    """engine.run_study: a dict is no configuration; jobs must be an integer of at least 1."""
    with pytest.raises(TypeError) as err:
        engine.run_study({"sweeps": []}, tmp_path)
    assert str(err.value) == "config must be a StudyConfig; got dict"
    with pytest.raises(TypeError) as err:
        engine.run_study(_config([Sweep("quantize", [2])]), tmp_path, jobs=1.5)
    assert str(err.value) == "jobs must be an integer; got 1.5 (float)"


def test_run_study_runs_only_the_missing_points_in_order_and_writes_the_results(
    tmp_path, monkeypatch, capsys
):
    """engine.run_study: the device and layers checked first, finished points kept, results saved in point order."""
    cfg = _config([Sweep("quantize", [2, 4])])
    calls = _fake_engine(monkeypatch, cfg)
    folder._prepare_folder(tmp_path, cfg)
    done = cfg.points()[2]
    folder.point_paths(tmp_path, cfg)[done].write_text(
        json.dumps(_valid_point(cfg, done) | {"accuracy": 0.25})
    )
    results = engine.run_study(cfg, tmp_path)
    assert calls["device"] == ["cpu"] and calls["shape"] == [(3, 16, 16)]
    assert calls["run_point"] == [p for p in cfg.points() if p != done]
    assert [(p["sweep"], p["value"], p["seed"]) for p in results.points] == cfg.points()
    assert results.points[2]["accuracy"] == 0.25 and results.folder == tmp_path and results.complete
    assert json.loads((tmp_path / "results.json").read_text())["points"] == results.points
    assert (tmp_path / "points.csv").read_text() == results.points_csv()
    assert (tmp_path / "results.csv").read_text() == results.summary_csv()
    # The progress bar counts the point found on disk as done and names the point it trains.
    bar = capsys.readouterr().err
    assert "study points:" in bar and "1/6" in bar and "6/6" in bar and "point" in bar
    assert "quantize=4 seed 2" in bar
    calls["run_point"].clear()
    engine.run_study(cfg, tmp_path, progress=False)
    assert calls["run_point"] == [] and capsys.readouterr().err == ""


def test_run_study_with_jobs_runs_the_missing_points_through_joblib_workers(tmp_path, monkeypatch):
    """engine.run_study: jobs > 1 and several points: min(jobs, points) workers, each given plain data."""
    import joblib
    import torch

    from deepimaging import train

    cfg = _config([Sweep("quantize", [2])])
    calls = _fake_engine(monkeypatch, cfg)
    folder._prepare_folder(tmp_path, cfg)  # run_point writes study.json with the first point
    monkeypatch.setattr(train, "keep_freed_memory", lambda: None)
    made = []

    class Parallel:  # joblib's interface, run in this process
        def __init__(self, n_jobs, return_as):
            made.append((n_jobs, return_as))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def __call__(self, tasks):
            tasks = list(tasks)
            assert all(isinstance(args[0], dict) and isinstance(args[2], str) for _, args, _ in tasks)
            return reversed([fn(*args, **kwargs) for fn, args, kwargs in tasks])  # any order

    monkeypatch.setattr(joblib, "Parallel", Parallel)
    threads = torch.get_num_threads()
    try:
        results = engine.run_study(cfg, tmp_path, jobs=8, progress=False)
        assert made == [(3, "generator_unordered")] and sorted(calls["run_point"]) == cfg.points()
        assert [(p["sweep"], p["value"], p["seed"]) for p in results.points] == cfg.points()
        # One point left to do: it runs here, with no workers.
        folder.point_paths(tmp_path, cfg)[cfg.points()[1]].unlink()
        engine.run_study(cfg, tmp_path, jobs=2, progress=False)
        assert len(made) == 1 and calls["run_point"][-1] == cfg.points()[1]
    finally:
        torch.set_num_threads(threads)


def test_load_results_reads_a_finished_study_and_says_how_to_finish_an_unfinished_one(tmp_path):
    """engine.load_results: point records in point order; missing points counted and the first named."""
    cfg = _config([Sweep("quantize", [2])])
    folder._prepare_folder(tmp_path, cfg)
    paths = folder.point_paths(tmp_path, cfg)
    for key in cfg.points()[::2]:
        paths[key].write_text(json.dumps(_valid_point(cfg, key)))
    with pytest.raises(FileNotFoundError) as err:
        engine.load_results(tmp_path)
    assert str(err.value) == (
        f"1 of 3 points of the study in {tmp_path} are not finished "
        "(first: ('quantize', 2, 1)); rerun the study into the same folder to finish them"
    )
    partial = engine.load_results(str(tmp_path), allow_incomplete=True)
    assert [p["seed"] for p in partial.points] == [0, 2] and not partial.complete
    assert partial.folder == tmp_path and partial.config == cfg
    paths["quantize", 2, 1].write_text("{")
    with pytest.warns(UserWarning, match="; treating the point as missing$"):
        engine.load_results(tmp_path, allow_incomplete=True)
    paths["quantize", 2, 1].write_text(json.dumps(_valid_point(cfg, ("quantize", 2, 1))))
    assert [p["seed"] for p in engine.load_results(tmp_path).points] == [0, 1, 2]


@pytest.mark.parametrize(
    "text, why",
    [
        ("x", "Expecting value: line 1 column 1 (char 0)"),
        ("{}", "'config'"),
        ('{"config": []}', "a study configuration must be a dict; got list"),
        ('{"config": {"sweeps": []}}', "sweeps must hold at least one Sweep(layer, values)"),
    ],
)
def test_load_results_names_a_study_file_it_cannot_read_and_why(tmp_path, text, why):
    """engine.load_results: no study.json, or one that holds no configuration, is a clear error."""
    with pytest.raises(FileNotFoundError) as err:
        engine.load_results(tmp_path)
    assert str(err.value) == (
        f"{tmp_path} is not a study folder (no study.json); run the study first "
        "(deepimaging study / deepimaging demo / run_study)"
    )
    (tmp_path / "study.json").write_text(text)
    with pytest.raises(ValueError) as err:
        engine.load_results(tmp_path)
    assert str(err.value) == f"{tmp_path / 'study.json'} is not a readable study file: {why}"


# --- per function: point.py (training replaced by stand-ins; the metrics against scikit-learn) -------


def _tiny_data(n=8, size=16):
    """An ImageDataset of n random images, two classes alternating (a, b)."""
    import torch

    from deepimaging.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    return ImageDataset(torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 2, ["a", "b"])


def test_run_point_refuses_a_point_that_is_not_in_the_study_before_training(tmp_path, monkeypatch):
    """point.run_point: the configuration, sweep, value and seed checked, each message naming what arrived."""
    monkeypatch.setattr(point, "_train_point", lambda *a, **k: pytest.fail("trained"))
    cfg = _config([Sweep("quantize", [2, 4])])
    cases = [
        (({"sweeps": []}, "quantize", 2, 0), TypeError, "config must be a StudyConfig; got dict"),
        ((cfg, "binning", 2, 0), ValueError, "no sweep called 'binning'; sweeps: ['quantize']"),
        ((cfg, "quantize", 3, 0), ValueError, "value 3 is not among the values [2, 4] of sweep 'quantize'"),
        ((cfg, "quantize", 2, 5), ValueError, "seed 5 is not among the study's seeds [0, 1, 2]"),
    ]
    for args, error, message in cases:
        with pytest.raises(error) as err:
            point.run_point(*args, out_dir=tmp_path / "out")
        assert str(err.value) == message
    assert not (tmp_path / "out").exists()
    folder._prepare_folder(tmp_path / "other", _config([Sweep("quantize", [8])]))
    with pytest.raises(folder.StudyConfigMismatch):
        point.run_point(cfg, "quantize", 2, 0, out_dir=tmp_path / "other")


def test_run_point_writes_the_record_under_the_values_own_spelling_and_weights_only_when_asked(
    tmp_path, monkeypatch
):
    """point.run_point: value 4.0 is the sweep's 4; study.json and the record written; no .pt without saving."""
    import torch

    calls = []
    model = torch.nn.Linear(2, 2)

    def train(config, sweep, value, seed, progress):
        calls.append((sweep.name, value, type(value), seed, progress))
        return {"value": value, "seed": seed}, model

    monkeypatch.setattr(point, "_train_point", train)
    cfg = _config([Sweep("quantize", [2, 4])])
    cfg.save_weights = False
    assert point.run_point(cfg, "quantize", 4.0, 1, tmp_path, progress=True) == {"value": 4, "seed": 1}
    assert calls == [("quantize", 4, int, 1, True)]
    assert json.loads((tmp_path / "points" / "quantize__v4__s1.json").read_text()) == {"value": 4, "seed": 1}
    assert json.loads((tmp_path / "study.json").read_text())["config_hash"] == cfg.hash()
    assert not list((tmp_path / "points").glob("*.pt"))
    assert point.run_point(cfg, "quantize", 2, 0) == {"value": 2, "seed": 0}  # no folder: nothing written
    assert calls[-1] == ("quantize", 2, int, 0, False)
    assert sorted(p.name for p in (tmp_path / "points").iterdir()) == ["quantize__v4__s1.json"]


def test_the_symptoms_flag_an_eval_gap_above_0_15_chance_within_0_05_and_unrecognised_classes():
    """point._symptoms: each warning's bound (strict gap, inclusive chance) and the classes never recognised."""
    per_class = {
        "a": {"support": 5, "recall": 0.9},
        "b": {"support": 5, "recall": 0.0},
        "c": {"support": 0, "recall": 0.0},
    }

    def history(last, evaluated):
        return SimpleNamespace(train_accuracy=[0.1, last], final={"train_eval_accuracy": evaluated})

    fine = {"balanced_accuracy": 0.9, "per_class": {"a": per_class["a"]}}
    assert point._symptoms(history(0.75, 0.625), fine, 4) == []  # gap 0.125
    assert point._symptoms(history(0.75, 0.5), fine, 4) == [
        "eval-mode training accuracy 0.500 is far below the accuracy during training 0.750: the model "
        "behaves differently in eval mode (BatchNorm statistics, dropout or a physical layer's eval mode)"
    ]
    at_chance = {"balanced_accuracy": 0.3, "per_class": {"a": per_class["a"]}}  # 1/4 + 0.05
    (warning,) = point._symptoms(history(0.5, 0.5), at_chance, 4)
    assert warning.startswith("test balanced accuracy 0.300 is at chance (0.250): ")
    assert point._symptoms(history(0.5, 0.5), {**at_chance, "balanced_accuracy": 0.3125}, 4) == []
    assert point._symptoms(history(0.5, 0.5), {"balanced_accuracy": 0.45, "per_class": per_class}, 3) == [
        "no test image of class(es) ['b'] was recognised (recall 0)"
    ]


def test_classification_metrics_match_scikit_learn_on_three_imbalanced_classes():
    """point._classification_metrics: every recorded number against scikit-learn's."""
    import torch
    from sklearn import metrics as skm

    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 0])
    probabilities = torch.softmax(torch.randn(10, 3, generator=torch.Generator().manual_seed(3)), dim=1)
    predicted = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
    y, p = labels.numpy(), predicted.numpy()
    found = point._classification_metrics(labels, predicted, probabilities, ["a", "b", "c"])
    assert found["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert found["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert found["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro"))
    assert found["macro_auc"] == pytest.approx(skm.roc_auc_score(y, probabilities.numpy(), multi_class="ovr"))
    recall = skm.recall_score(y, p, average=None)
    assert found["recall"] == pytest.approx(dict(zip("abc", recall)))
    assert found["confusion_matrix"] == skm.confusion_matrix(y, p).tolist()
    precision, _, f1, support = skm.precision_recall_fscore_support(y, p)
    cm = skm.confusion_matrix(y, p)
    for k, c in enumerate("abc"):
        tn = cm.sum() - cm[k].sum() - cm[:, k].sum() + cm[k, k]
        expected = {
            "precision": precision[k],
            "recall": recall[k],
            "f1-score": f1[k],
            "specificity": tn / (cm.sum() - cm[k].sum()),
            "support": support[k],
        }
        assert found["per_class"][c] == pytest.approx(expected)
    assert type(found["accuracy"]) is float and type(found["confusion_matrix"][0][0]) is int


def test_balanced_accuracy_averages_only_the_classes_the_test_split_holds():
    """point._classification_metrics: a class with no test image is left out of balanced accuracy (as sklearn)."""
    import torch
    from sklearn import metrics as skm

    labels, predicted = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 2])
    probabilities = torch.full((4, 3), 1 / 3)
    found = point._classification_metrics(labels, predicted, probabilities, ["a", "b", "c"])
    with pytest.warns(UserWarning):
        expected = skm.balanced_accuracy_score(labels.numpy(), predicted.numpy())
    assert found["balanced_accuracy"] == pytest.approx(expected) == pytest.approx(0.5)
    assert found["macro_f1"] == pytest.approx(
        skm.f1_score([0, 0, 1, 1], [0, 1, 1, 2], average="macro", labels=[0, 1, 2])
    )


def test_a_layer_that_cannot_be_built_is_named_with_its_sweep_and_value():
    """point._validate_layers: the layer's own error, its type kept, prefixed with the sweep and value."""
    from deepimaging import physics

    for layer, value, options, error in (
        ("quantize", 0, {}, ValueError),
        ("quantize", 2, {"bogus": 1}, TypeError),
    ):
        cfg = _config([Sweep("quantize", [2]), Sweep(layer, [value], options, label="bad")])
        with pytest.raises(error) as err:
            point._validate_layers(cfg, (3, 16, 16))
        with pytest.raises(error) as direct:
            physics.make_layer(layer, value, image_shape=(3, 16, 16), **options)
        assert str(err.value) == f"sweep 'bad', value {value!r}: {direct.value}"
    point._validate_layers(_config([Sweep("quantize", [1, 8])]), (3, 16, 16))


def test_a_points_network_is_the_layer_in_front_of_a_cnn_of_the_configured_widths():
    """point._build_model and _make_layer: the layer built with the sweep's options; the CNN's blocks."""
    from deepimaging.models import BasicCNN, PhysicalModel

    cfg = _config([Sweep("quantize", [3])])
    cfg.widths = [4, 6]
    model = point._build_model(cfg, cfg.sweeps[0], 3, _tiny_data())
    assert isinstance(model, PhysicalModel) and isinstance(model.cnn, BasicCNN)
    expected = BasicCNN(3, 2, widths=(4, 6))
    assert [p.shape for p in model.cnn.parameters()] == [p.shape for p in expected.parameters()]
    # led_weighting turns 3 colour channels into 1 image: the CNN is built for what the layer gives.
    led = Sweep("led_weighting", [2])
    model = point._build_model(cfg, led, 2, _tiny_data())
    assert model.cnn.features[0].in_channels == 1
    assert model.physics(_tiny_data().images_at(slice(0, 2))).shape == (2, 1, 16, 16)


def test_a_trained_points_record_holds_every_documented_number_from_fit_and_predict(monkeypatch):
    """point._train_point: fit given the configuration's settings on one thread; the record's fields."""
    import torch

    from deepimaging import train as train_module
    from deepimaging.train import History

    cfg = _config([Sweep("bit_allocation", [2])])
    cfg.lr, cfg.batch_size, cfg.weight_decay, cfg.epochs, cfg.patience = 0.01, 4, 0.001, 2, 1
    data = _tiny_data()
    monkeypatch.setattr(point, "load_data", lambda config: (data, data, None))
    monkeypatch.setattr(point, "class_counts", lambda config: {"train": {"a": 4, "b": 4}})
    monkeypatch.setattr(train_module, "get_device", lambda device: torch.device("cpu"))
    fitted = {}
    history = History(
        train_loss=[0.9, 0.4],
        train_accuracy=[0.5, 0.75],
        val_accuracy=[0.5, 0.625],
        final={"train_eval_accuracy": 0.7},
    )

    def fit(model, train, val, **kwargs):
        fitted.update(kwargs, threads=torch.get_num_threads(), train=train, val=val)
        return history

    labels = data.labels
    predicted = torch.tensor([0, 1, 0, 1, 1, 1, 0, 0])
    probabilities = torch.tensor([[0.75, 0.25], [0.25, 0.75]])[predicted]
    monkeypatch.setattr(train_module, "fit", fit)
    monkeypatch.setattr(
        train_module,
        "predict",
        lambda model, test, device: SimpleNamespace(
            labels=labels, predicted=predicted, probabilities=probabilities
        ),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        record, model = point._train_point(cfg, cfg.sweeps[0], 2, 1, progress=True)
        assert torch.get_num_threads() == 2  # restored after training on one thread
    finally:
        torch.set_num_threads(threads)
    assert fitted == {
        "epochs": 2,
        "lr": 0.01,
        "batch_size": 4,
        "weight_decay": 0.001,
        "seed": 1,
        "device": torch.device("cpu"),
        "progress": True,
        "patience": 1,
        "threads": 1,
        "train": data,
        "val": None,
    }
    metrics = point._classification_metrics(labels, predicted, probabilities, ["a", "b"])
    assert {k: record[k] for k in metrics} == metrics
    assert {
        k: record[k]
        for k in ("format", "config_hash", "sweep", "layer", "value", "seed", "device", "classes")
    } == {
        "format": 1,
        "config_hash": cfg.hash(),
        "sweep": "bit_allocation",
        "layer": "bit_allocation",
        "value": 2,
        "seed": 1,
        "device": "cpu",
        "classes": ["a", "b"],
    }
    assert (record["train_loss"], record["train_accuracy"], record["train_eval_accuracy"]) == (0.4, 0.75, 0.7)
    assert record["val_accuracy"] == [0.5, 0.625] and record["history"] == history.as_dict()
    assert record["class_counts"] == {"train": {"a": 4, "b": 4}}
    assert record["warnings"] == point._symptoms(history, metrics, 2) and record["seconds"] >= 0
    expected_map = np.round(model.physics.bits_map(integer=False).detach().numpy().astype(float), 4)
    assert record["bits_map"] == expected_map.tolist() and np.asarray(record["bits_map"]).shape == (16, 16)
    assert next(model.parameters()).device.type == "cpu"


def test_a_saved_network_reopens_in_eval_mode_without_touching_the_callers_random_state(
    tmp_path, monkeypatch
):
    """point.load_point_model: the weights loaded exactly; Python, NumPy and torch generators untouched."""
    import random

    import torch

    data = _tiny_data()
    monkeypatch.setattr(point, "load_data", lambda config: (data, data, None))
    cfg = _config([Sweep("quantize", [2])])
    cfg.widths = [4]
    trained = point._build_model(cfg, cfg.sweeps[0], 2, data)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    path = folder.point_paths(tmp_path, cfg)["quantize", 2, 0].with_suffix(".pt")
    path.parent.mkdir(parents=True)
    record = _record("quantize", 2, 0, 0.5) | {"weights": weights.save_weights(trained, path)}
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    model = point.load_point_model(tmp_path, cfg, record, device="cpu")
    after = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    assert after == (random.random(), np.random.random(), torch.rand(1).item())
    assert model.training is False
    for (name, a), (_, b) in zip(model.state_dict().items(), trained.state_dict().items()):
        assert torch.equal(a, b), name
    cfg.widths = [8]
    with pytest.raises(ValueError) as err:
        point.load_point_model(tmp_path, cfg, record)
    assert str(err.value).startswith(
        f"weights file {path} does not fit the network this configuration builds: "
    )


# --- per function: splits.py (a stand-in loader; the simulator recorded) ------------------------------


def _loader_returning(monkeypatch, make):
    """Make every dataset name resolve to ``make`` (a loader); return the list of the calls' options."""
    from deepimaging import data

    calls = []

    def loader(**options):
        calls.append(options)
        return make(**options)

    loader.__signature__ = inspect.signature(make)  # what _load_dataset reads
    monkeypatch.setattr(data, "dataset_loader", lambda name: loader)
    return calls


def _counted(counts, fill=0.0):
    """An ImageDataset with counts[k] images of class k; image i's first pixel holds i / 1000."""
    import torch

    from deepimaging.data import ImageDataset

    labels = torch.tensor([k for k, n in enumerate(counts) for _ in range(n)])
    images = torch.full((len(labels), 3, 8, 8), fill)
    images[:, 0, 0, 0] = torch.arange(len(labels)) / 1000
    return ImageDataset(images, labels, [f"c{k}" for k in range(len(counts))])


def test_the_same_dataset_options_in_another_order_reuse_the_cached_split(monkeypatch):
    # splits.x_load_data__mutmut_6 (study seed 5): the cache key written without sort_keys, so the
    # same options in another order loaded (and split) the whole dataset again.
    def make(color=True, split="train", size=16):
        return _counted([6, 6])

    calls = _loader_returning(monkeypatch, make)
    splits._load_split.cache_clear()
    try:
        first = dataclasses.replace(
            _config([Sweep("quantize", [2])]),
            dataset="mine",
            dataset_options={"color": False, "split": "val"},
        )
        second = dataclasses.replace(first, dataset_options={"split": "val", "color": False})
        train, test, val = splits.load_data(first)
        again = splits.load_data(second)
        assert len(calls) == 1
        assert again[0] is train and again[1] is test and again[2] is val
    finally:
        splits._load_split.cache_clear()


def test_the_simulated_set_gets_the_studys_size_seed_and_300_images_per_class_by_default(monkeypatch):
    """splits._load_dataset: blood_smear is simulated with n_per_class (300 when None), size, seed, options."""
    calls = []
    monkeypatch.setattr(splits, "simulate_blood_smear", lambda **kw: calls.append(kw) or "simulated")
    assert splits._load_dataset("blood_smear", {"noise": 0.1}, 24, None, 7) == "simulated"
    splits._load_dataset("blood_smear", {}, 16, 5, 0)
    assert calls == [
        {"n_per_class": 300, "size": 24, "seed": 7, "noise": 0.1},
        {"n_per_class": 5, "size": 16, "seed": 0},
    ]


def test_a_loader_with_official_splits_is_loaded_whole_unless_the_options_name_a_split(monkeypatch):
    """splits._load_dataset: medmnist's train, val and test joined in that order; a named split kept; size passed."""

    def make(split="train", size=28):
        return _counted(
            {"train": [2, 1], "val": [1, 1], "test": [1, 2]}[split],
            fill={"train": 0.1, "val": 0.2, "test": 0.3}[split],
        )

    calls = _loader_returning(monkeypatch, make)
    whole = splits._load_dataset("medmnist", {}, 16, None, 0)
    assert calls == [
        {"size": 16, "split": "train"},
        {"size": 16, "split": "val"},
        {"size": 16, "split": "test"},
    ]
    assert whole.labels.tolist() == [0, 0, 1, 0, 1, 0, 1, 1] and whole.classes == ["c0", "c1"]
    assert [round(float(x), 3) for x in whole.storage[:, 1, 0, 0]] == [0.1] * 3 + [0.2] * 2 + [0.3] * 3
    calls.clear()
    assert len(splits._load_dataset("medmnist", {"split": "val"}, 16, None, 0)) == 2
    assert calls == [{"split": "val", "size": 16}]
    calls.clear()
    splits._load_dataset("someone_elses", {}, 16, None, 0)  # not a known whole-set name: its own default
    assert calls == [{"size": 16}]


def test_a_loader_without_a_size_option_is_called_with_the_options_only(monkeypatch):
    """splits._load_dataset: size is passed only to a loader that takes it; a (train, test) tuple gives train."""
    calls = _loader_returning(monkeypatch, lambda color=True: (_counted([2, 2]), "test part"))
    dataset = splits._load_dataset("mine", {"color": False}, 16, None, 0)
    assert calls == [{"color": False}] and len(dataset) == 4


def test_a_subsample_keeps_n_per_class_images_of_each_class_in_order_and_depends_only_on_the_seed(
    monkeypatch,
):
    """splits._load_dataset: a seeded per-class subsample (all of a smaller class), original order kept."""
    _loader_returning(monkeypatch, lambda: _counted([10, 3, 6]))
    full = _counted([10, 3, 6])
    sub = splits._load_dataset("mine", {}, 8, 4, 1)
    ids = (sub.storage[:, 0, 0, 0] * 1000).round().long().tolist()
    assert Counter(sub.labels.tolist()) == {0: 4, 1: 3, 2: 4}
    assert ids == sorted(ids) and all(full.labels[i] == label for i, label in zip(ids, sub.labels.tolist()))
    again = splits._load_dataset("mine", {}, 8, 4, 1)
    assert (again.storage[:, 0, 0, 0] * 1000).round().long().tolist() == ids
    other = [
        (splits._load_dataset("mine", {}, 8, 4, s).storage[:, 0, 0, 0] * 1000).round().long().tolist()
        for s in range(2, 6)
    ]
    assert any(o != ids for o in other)
    assert len(splits._load_dataset("mine", {}, 8, None, 1)) == 19


def _split_config(n_per_class=None, val=0.15, test=0.3, dataset="mine"):
    return StudyConfig(
        sweeps=[Sweep("quantize", [2])], dataset=dataset, size=8, n_per_class=n_per_class, val=val, test=test
    )


def test_load_data_splits_by_class_and_returns_no_validation_set_when_val_is_zero(monkeypatch):
    """splits.load_data and class_counts: (train, test, val); val=0 gives None and zero counts; cached."""
    _loader_returning(monkeypatch, lambda: _counted([10, 10]))
    splits._load_split.cache_clear()
    cfg = _split_config(val=0.2, test=0.3)
    train, test, val = splits.load_data(cfg)
    assert len(train) + len(test) + len(val) == 20 and min(len(test), len(val)) > 0
    assert splits.load_data(cfg)[0] is train  # cached per process
    parts = {"train": train, "val": val, "test": test}
    assert splits.class_counts(cfg) == {
        part: {c: Counter(data.labels.tolist())[k] for k, c in enumerate(["c0", "c1"])}
        for part, data in parts.items()
    }
    no_val = _split_config(val=0, test=0.3)
    train, test, val = splits.load_data(no_val)
    assert val is None and len(train) + len(test) == 20
    assert splits.class_counts(no_val)["val"] == {"c0": 0, "c1": 0}
    splits._load_split.cache_clear()


@pytest.mark.parametrize(
    "counts, val, test, message",
    [
        (
            [5, 1, 0],
            0.15,
            0.3,
            "dataset 'mine' has classes with fewer than 2 images {'c1': 1, 'c2': 0}: a class needs images "
            "for training and for testing; add images, drop the class, or raise n_per_class",
        ),
        (
            [2, 10],
            0.3,
            0.3,
            "val=0.3, test=0.3 (each a fraction in [0, 1)) cannot split this dataset "
            "(images per class: {'c0': 2, 'c1': 10}): cannot make a stratified split of 8 images",
        ),
    ],
)
def test_a_dataset_the_fractions_cannot_split_is_refused_naming_the_classes(
    monkeypatch, counts, val, test, message
):
    """splits._load_split: too few images, or an empty part of a class, refused before training."""
    _loader_returning(monkeypatch, lambda: _counted(counts))
    splits._load_split.cache_clear()
    try:
        with pytest.raises(ValueError) as err:
            splits.load_data(_split_config(val=val, test=test))
        assert str(err.value).startswith(message)
    finally:
        splits._load_split.cache_clear()


# --- per function: weights.save_weights and read_weights ----------------------------------------------


def test_saved_weights_read_back_exactly_with_the_files_name_hash_and_size(tmp_path):
    """weights.save_weights: the record's sha256 and bytes are hashlib's and the file system's; folders made."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    path = tmp_path / "new" / "points" / "p.pt"
    record = weights.save_weights(model, path)
    data = path.read_bytes()
    assert record == {"file": "p.pt", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    state = weights.read_weights(str(path), record)
    assert list(state) == list(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert [p.name for p in path.parent.iterdir()] == ["p.pt"]  # no temporary file left


def test_a_weights_file_of_another_size_or_hash_is_refused_saying_which(tmp_path, monkeypatch):
    """weights.read_weights: size checked first, then SHA-256; each message gives both numbers."""
    import torch

    path, record = _weights_file(tmp_path, {"w": torch.zeros(2)}, monkeypatch)
    with pytest.raises(weights.WeightsFileError) as err:
        weights.read_weights(path, record | {"bytes": record["bytes"] + 1, "sha256": "0" * 64})
    assert str(err.value) == (
        f"weights file {path} has {record['bytes']} bytes, its record says {record['bytes'] + 1}: "
        "the file is truncated or was replaced; refused"
    )
    with pytest.raises(weights.WeightsFileError) as err:
        weights.read_weights(path, record | {"sha256": "ab" * 32})
    assert str(err.value) == (
        f"weights file {path} has SHA-256 {record['sha256'][:16]}..., its record says abababababababab...: "
        "the file was altered after the study wrote it; refused"
    )
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("kind", ["int value", "int key", "garbage"])
def test_a_weights_file_that_is_not_named_tensors_is_refused(tmp_path, monkeypatch, kind):
    """weights.read_weights: a dict with a non-tensor value or a non-string key, or no torch file at all."""
    import torch

    if kind == "garbage":
        path = tmp_path / "w.pt"
        path.write_bytes(b"not a torch file")
        record = {"sha256": hashlib.sha256(b"not a torch file").hexdigest(), "bytes": 16}
        message = f"weights file {path} does not hold plain tensors (refused without running it): "
    else:
        obj = {"w": 3} if kind == "int value" else {0: torch.zeros(1)}
        path, record = _weights_file(tmp_path, obj, monkeypatch)
        message = f"weights file {path} holds dict, not a state dict of named tensors; refused"
    with pytest.raises(weights.WeightsFileError) as err:
        weights.read_weights(path, record)
    assert str(err.value).startswith(message)


# --- per function: config.bit_depth_config -------------------------------------------------------------


def test_the_bit_depth_study_sweeps_sensor_bits_1_to_8_in_three_ways():
    """config.bit_depth_config: the documented sweeps (quantize 1..8, learned 1..3, allocation 2), 3 seeds."""
    full = config.bit_depth_config(smoke=False)
    assert [(s.layer, s.values, s.label, s.options) for s in full.sweeps] == [
        ("quantize", [1, 2, 3, 4, 5, 6, 7, 8], "quantize", {}),
        ("learned_discretization", [1, 2, 3], "learned_discretization", {}),
        ("bit_allocation", [2], "bit_allocation", {}),
    ]
    assert full.seeds == [0, 1, 2] and full.parameter == "bits per pixel"
    defaults = StudyConfig(sweeps=full.sweeps)
    assert (full.n_per_class, full.epochs, full.size) == (
        defaults.n_per_class,
        defaults.epochs,
        defaults.size,
    )
    smoke = config.bit_depth_config(smoke=True)
    assert [(s.layer, s.values) for s in smoke.sweeps] == [
        ("quantize", [1, 8]),
        ("learned_discretization", [1]),
        ("bit_allocation", [2]),
    ]
    assert (smoke.seeds, smoke.n_per_class, smoke.epochs, smoke.parameter) == (
        [0, 1, 2],
        24,
        1,
        "bits per pixel",
    )


def test_the_bit_depth_study_follows_smoke_mode_and_takes_any_field_as_an_override(monkeypatch):
    """config.bit_depth_config: smoke=None reads DEEPIMAGING_SMOKE; overrides replace fields, checked as usual."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("DEEPIMAGING_SMOKE", "1")
    assert config.bit_depth_config() == config.bit_depth_config(smoke=True)
    monkeypatch.setenv("DEEPIMAGING_SMOKE", "0")
    assert config.bit_depth_config() == config.bit_depth_config(smoke=False)
    custom = config.bit_depth_config(smoke=True, epochs=3, seeds=[4], sweeps=[Sweep("quantize", [2])])
    assert (custom.epochs, custom.seeds, [s.name for s in custom.sweeps], custom.n_per_class) == (
        3,
        [4],
        ["quantize"],
        24,
    )
    with pytest.raises(ValueError, match=r"^epochs must be in \[1, inf\]; got 0$"):
        config.bit_depth_config(smoke=False, epochs=0)
