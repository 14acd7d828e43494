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

from deepimaging.study import StudyConfig, Sweep, engine, executors, point, splits
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
