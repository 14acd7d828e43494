"""Honest study numbers: metrics against scikit-learn, intervals against SciPy, the metric choice,
the whole dataset and its counts, warnings, devices, and the bad input of issue 17."""

import functools
import json
from pathlib import Path

import _study
import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score, roc_auc_score

import deepimaging.data
from deepimaging.cli import main
from deepimaging.data import simulate_blood_smear
from deepimaging.study import StudyConfig, Sweep, run_study, splits
from deepimaging.study import point as study_point
from deepimaging.study.results import StudyResults, t_interval
from deepimaging.train import get_device

# A validation split and more images per class: the records' val_accuracy and class counts are checked.
tiny_config = functools.partial(_study.tiny_config, n_per_class=12, test=0.4, val=0.2, device="cpu")


@pytest.fixture
def fake_loader(monkeypatch):
    """Register ``deepimaging.data.load_<name>`` returning a dataset with the given images per class."""

    def register(name, per_class, split_names=None):
        def load(size=16, split="train"):
            parts = split_names or {"train": per_class}
            counts = parts[split] if split_names else per_class
            smear = simulate_blood_smear(n_per_class=max(counts), size=size, seed=len(split))
            keep = np.concatenate(
                [np.flatnonzero(smear.labels.numpy() == k)[:n] for k, n in enumerate(counts)]
            )
            return smear.subset(keep)

        monkeypatch.setattr(deepimaging.data, f"load_{name}", load, raising=False)
        # A study finds datasets among the public loaders (deepimaging.data.__all__).
        monkeypatch.setattr(deepimaging.data, "__all__", [*deepimaging.data.__all__, f"load_{name}"])
        splits._load_split.cache_clear()
        return name

    yield register
    splits._load_split.cache_clear()


# ---------------------------------------------------------------------------------------------------
# Metrics against scikit-learn
# ---------------------------------------------------------------------------------------------------


def test_point_metrics_match_scikit_learn_on_an_imbalanced_test_set():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=200, p=[0.8, 0.15, 0.05])
    logits = rng.normal(size=(200, 3)) + 2.0 * np.eye(3)[labels] * rng.random((200, 1))
    probabilities = torch.softmax(torch.tensor(logits), dim=1)
    predicted = probabilities.argmax(1)
    record = study_point._classification_metrics(
        torch.tensor(labels), predicted, probabilities.float(), ["a", "b", "c"]
    )
    assert record["accuracy"] == pytest.approx(np.mean(predicted.numpy() == labels))
    assert record["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted.numpy()))
    assert record["macro_f1"] == pytest.approx(f1_score(labels, predicted.numpy(), average="macro"))
    recalls = recall_score(labels, predicted.numpy(), average=None)
    assert [record["recall"][c] for c in "abc"] == pytest.approx(list(recalls))
    assert record["macro_auc"] == pytest.approx(
        roc_auc_score(labels, probabilities.numpy(), multi_class="ovr", average="macro"), abs=1e-6
    )
    assert record["balanced_accuracy"] != pytest.approx(record["accuracy"], abs=0.02)  # the case matters


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("honest") / "out"
    return out, run_study(tiny_config(), out, progress=False)


def test_study_points_record_every_metric_consistent_with_scikit_learn_and_the_device(finished):
    _, results = finished
    for point in results.points:
        matrix = np.asarray(point["confusion_matrix"])
        truth = np.repeat(np.arange(len(matrix)), matrix.sum(1))
        guess = np.concatenate([np.repeat(np.arange(len(matrix)), row) for row in matrix])
        assert point["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, guess))
        assert point["macro_f1"] == pytest.approx(
            f1_score(truth, guess, average="macro", labels=range(len(matrix)), zero_division=0)
        )
        assert list(point["recall"].values()) == pytest.approx(
            list(recall_score(truth, guess, average=None, labels=range(len(matrix)), zero_division=0))
        )
        assert point["device"] == "cpu"
        assert len(point["history"]["train_eval_accuracy"]) == 1 and point["history"]["recalibrated"]
        assert isinstance(point["warnings"], list)


def test_summary_gives_mean_sd_and_a_95_percent_t_interval_over_seeds(finished):
    _, results = finished
    for row in results.summary():
        for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
            values = [p[metric] for p in results.select(row["sweep"], row["value"])]
            assert row[f"{metric}_mean"] == pytest.approx(np.mean(values))
            assert row[f"{metric}_std"] == pytest.approx(np.std(values, ddof=1))
            if np.std(values) > 0:
                low, high = stats.t.interval(
                    0.95, df=len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
                )
                assert (row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]) == pytest.approx((low, high))
        assert row["mean"] == row[f"{row['metric']}_mean"]


def test_t_interval_matches_scipy_and_is_undefined_for_one_seed():
    values = [0.71, 0.75, 0.69, 0.80]
    assert t_interval(values) == pytest.approx(
        stats.t.interval(0.95, df=3, loc=np.mean(values), scale=stats.sem(values))
    )
    assert all(np.isnan(t_interval([0.7])))


def test_paired_comparison_matches_scipys_paired_t_test():
    config = tiny_config(sweeps=[Sweep("quantize", [2, 4]), Sweep("quantize", [4], label="other")])
    a = [0.70, 0.74, 0.71]
    b = [0.69, 0.70, 0.70]
    points = [
        {
            "sweep": "quantize",
            "value": 4,
            "seed": s,
            "accuracy": x,
            "classes": ["a", "b"],
            "confusion_matrix": [[5, 0], [0, 5]],
        }
        for s, x in zip([0, 1, 2], a)
    ] + [
        {
            "sweep": "other",
            "value": 4,
            "seed": s,
            "accuracy": x,
            "classes": ["a", "b"],
            "confusion_matrix": [[5, 0], [0, 5]],
        }
        for s, x in zip([0, 1, 2], b)
    ]
    results = StudyResults(config, points)
    (row,) = results.compare("quantize", "other", metric="accuracy")
    diff = np.subtract(a, b)
    assert row["value"] == 4 and row["n_seeds"] == 3
    assert row["difference_mean"] == pytest.approx(diff.mean())
    assert row["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    low, high = stats.t.interval(0.95, df=2, loc=diff.mean(), scale=stats.sem(diff))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert row["within_spread"] == (low <= 0 <= high)
    assert results.comparisons() == [row]


# ---------------------------------------------------------------------------------------------------
# The metric shown
# ---------------------------------------------------------------------------------------------------


def _results_with_test_counts(counts, metric="auto"):
    matrix = np.diag(counts).tolist()
    config = tiny_config(metric=metric)
    points = [
        {
            "sweep": "quantize",
            "value": 1,
            "seed": 0,
            "classes": list("abcd")[: len(counts)],
            "accuracy": 1.0,
            "confusion_matrix": matrix,
        }
    ]
    return StudyResults(config, points)


def test_balanced_accuracy_is_shown_when_the_test_classes_are_imbalanced_and_the_caption_says_so():
    imbalanced = _results_with_test_counts([16, 10, 10])  # 1.6 > 1.5
    assert imbalanced.metric == "balanced_accuracy"
    assert "imbalanced" in imbalanced.metric_note() and "1.6" in imbalanced.metric_note()
    assert _results_with_test_counts([15, 10, 10]).metric == "accuracy"  # 1.5 is not above 1.5
    assert _results_with_test_counts([15, 10, 10], metric="macro_f1").metric == "macro_f1"


def test_an_imbalanced_study_shows_balanced_accuracy_in_its_summary(tmp_path, fake_loader):
    name = fake_loader("lopsided", [40, 10, 10, 10])
    config = tiny_config(dataset=name, n_per_class=None, sweeps=[Sweep("quantize", [8])], seeds=[0])
    results = run_study(config, tmp_path / "o", progress=False)
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["metric"] == "balanced_accuracy" and "imbalanced" in saved["metric_note"]
    (row,) = saved["summary"]
    assert row["metric"] == "balanced_accuracy" and row["mean"] == row["balanced_accuracy_mean"]
    # results.json records how many images of each class went to each part: all 70 of them.
    counts = saved["class_counts"]
    assert sum(sum(part.values()) for part in counts.values()) == 70
    assert sum(counts[p]["eosinophil"] for p in counts) == 40
    assert all(counts[p][c] >= 1 for p in counts for c in counts[p])
    assert results.metric == "balanced_accuracy"


# ---------------------------------------------------------------------------------------------------
# The whole dataset
# ---------------------------------------------------------------------------------------------------


def test_a_study_joins_every_official_split_unless_the_options_name_one(tmp_path, fake_loader, monkeypatch):
    name = fake_loader("splitset", None, split_names={"train": [6, 6, 6, 6], "test": [3, 3, 3, 3]})
    monkeypatch.setitem(splits.WHOLE_SET_SPLITS, name, ("train", "test"))
    whole = tiny_config(dataset=name, n_per_class=None)
    counts = splits.class_counts(whole)
    assert sum(sum(part.values()) for part in counts.values()) == 4 * 9
    named = tiny_config(dataset=name, n_per_class=None, dataset_options={"split": "train"})
    counts = splits.class_counts(named)
    assert sum(sum(part.values()) for part in counts.values()) == 4 * 6


def test_bccd_crops_in_a_study_are_the_whole_set(bccd_root):
    from deepimaging.data import load_bccd_crops

    splits._load_split.cache_clear()
    config = tiny_config(dataset="bccd_crops", dataset_options={"root": bccd_root}, n_per_class=None, size=16)
    counts = splits.class_counts(config)
    every = load_bccd_crops(bccd_root, split="all", size=16)
    expected = np.bincount(every.labels.numpy(), minlength=3)
    assert [sum(counts[p][c] for p in counts) for c in every.classes] == expected.tolist()
    assert len(load_bccd_crops(bccd_root, split="train", size=16)) < len(every)


# ---------------------------------------------------------------------------------------------------
# Bad input, before anything is trained
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(metric="f1"), r"metric must be one of .*'balanced_accuracy'.*got 'f1'"),
        (dict(val=1.0), r"val must be a fraction of the data in \[0, 1\); got 1.0"),
        (dict(val=-0.1), r"val must be a fraction of the data in \[0, 1\); got -0.1"),
        (dict(test=0.0), r"test must be a fraction of the data in \(0, 1\); got 0.0"),
        (dict(val=0.5, test=0.5), r"val \+ test must be below 1"),
        (dict(patience=2, val=0.0), r"patience .*needs a validation split"),
    ],
)
def test_bad_configuration_values_name_the_key_and_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**kwargs)


def test_a_validation_fraction_that_leaves_a_class_without_images_is_refused_before_training(
    tmp_path, fake_loader, monkeypatch
):
    name = fake_loader("thin", [30, 30, 30, 3])
    trained = []
    monkeypatch.setattr(study_point, "_train_point", lambda *a, **k: trained.append(a))
    config = tiny_config(dataset=name, n_per_class=None, val=0.05, test=0.3)
    with pytest.raises(
        ValueError, match=r"val=0.05 .*class\(es\) \['neutrophil'\] with no val image.*\[0, 1\)"
    ):
        run_study(config, tmp_path / "o", progress=False)
    assert not trained and not (tmp_path / "o" / "study.json").exists()


def test_a_class_with_fewer_than_two_images_is_refused_before_training(tmp_path, fake_loader):
    name = fake_loader("single", [10, 10, 10, 1])
    config = tiny_config(dataset=name, n_per_class=None)
    with pytest.raises(ValueError, match=r"fewer than 2 images \{'neutrophil': 1\}"):
        run_study(config, tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "study.json").exists()


# ---------------------------------------------------------------------------------------------------
# A failing first run leaves nothing that refuses the corrected command
# ---------------------------------------------------------------------------------------------------


def test_a_first_run_that_fails_in_training_leaves_no_study_file(tmp_path, monkeypatch):
    out = tmp_path / "o"
    original = study_point._train_point

    def broken(*args, **kwargs):
        raise RuntimeError("the layer does not fit the data")

    monkeypatch.setattr(study_point, "_train_point", broken)
    with pytest.raises(RuntimeError):
        run_study(tiny_config(epochs=2), out, progress=False)
    assert not (out / "study.json").exists()
    monkeypatch.setattr(study_point, "_train_point", original)
    results = run_study(
        tiny_config(epochs=1, seeds=[0], sweeps=[Sweep("quantize", [8])]), out, progress=False
    )
    assert results.complete and (out / "study.json").exists()


def test_device_cuda_without_cuda_fails_before_writing_and_the_cpu_command_then_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "o"
    small = [
        "--layer",
        "quantize",
        "--values",
        "8",
        "--seeds",
        "0",
        "--size",
        "16",
        "--n-per-class",
        "8",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(["study", *small, "--device", "cuda"]) == 2
    assert not (out / "study.json").exists()
    assert main(["study", *small, "--device", "cpu"]) == 0
    assert json.loads((out / "results.json").read_text())["points"][0]["device"] == "cpu"


def test_a_layer_that_does_not_fit_the_data_fails_and_leaves_no_study_file(tmp_path):
    out = tmp_path / "o"
    config = tiny_config(dataset="digits", n_per_class=10, val=0.0, sweeps=[Sweep("bayer", [1])], seeds=[0])
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        run_study(config, out, progress=False)
    assert not (out / "study.json").exists()


# ---------------------------------------------------------------------------------------------------
# Devices and warnings
# ---------------------------------------------------------------------------------------------------


def test_studies_and_the_demo_default_to_the_auto_device_which_picks_cuda_when_available(monkeypatch):
    from deepimaging.study import bit_depth_config

    assert StudyConfig(sweeps=[Sweep("quantize", [1])]).device == "auto"
    assert bit_depth_config(smoke=True).device == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device(StudyConfig(sweeps=[Sweep("quantize", [1])]).device) == torch.device("cuda")
    captured = {}

    def fake_demo(out_dir, **kwargs):
        captured.update(kwargs)
        return Path(out_dir) / "index.html"

    import deepimaging.cli.study
    import deepimaging.project
    import deepimaging.study

    monkeypatch.setattr(deepimaging.project, "run_demo", fake_demo)
    # The fake demo writes no study folder: nothing to read back for the warnings.
    monkeypatch.setattr(deepimaging.study, "load_results", lambda out: None)
    monkeypatch.setattr(deepimaging.cli.study, "_print_warnings", lambda results: None)
    assert main(["demo", "--smoke", "--no-progress"]) == 0
    assert captured["device"] == "auto"
    assert main(["demo", "--smoke", "--no-progress", "--device", "cpu"]) == 0
    assert captured["device"] == "cpu"


def test_points_at_chance_carry_a_warning_and_the_command_prints_one_line_each(tmp_path, capsys):
    from deepimaging.cli._shared import _print_warnings

    # A learning rate of 1e-6 for one epoch learns nothing: test balanced accuracy stays near chance.
    config = tiny_config(lr=1e-6, sweeps=[Sweep("quantize", [8])], seeds=[0, 1])
    results = run_study(config, tmp_path / "o", progress=False)
    flagged = [p for p in results.points if p["warnings"]]
    for p in results.points:
        at_chance = p["balanced_accuracy"] <= 1 / 4 + study_point.CHANCE_MARGIN
        assert at_chance == any("at chance" in w for w in p["warnings"])
    assert flagged
    _print_warnings(results)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(lines) == len(flagged) and "quantize=8 seed" in lines[0]


# ---------------------------------------------------------------------------------------------------
# Figures, page and paper table show the study's metric
# ---------------------------------------------------------------------------------------------------


def test_learning_curves_draw_the_as_trained_and_the_eval_mode_accuracy():
    from deepimaging import plots
    from deepimaging.train import History

    history = History(
        train_loss=[1.0, 0.5],
        train_accuracy=[0.6, 0.9],
        train_eval_accuracy=[0.3, 0.4],
        val_loss=[1.1, 0.7],
        val_accuracy=[0.3, 0.35],
        recalibrated=True,
        final={"train_eval_accuracy": 0.88, "val_accuracy": 0.85},
    )
    ax = plots.learning_curves(history)
    lines = {line.get_label(): line for line in ax.get_legend().get_lines()}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "train accuracy (as trained)" in labels and "train accuracy (eval mode)" in labels
    assert "validation accuracy (eval mode)" in labels
    twin = [a for a in ax.figure.axes if a is not ax][0]
    by_label = {line.get_label(): line for line in twin.get_lines()}
    assert list(by_label["train accuracy (eval mode)"].get_ydata()) == [0.3, 0.4]
    assert list(by_label["train, eval mode after recalibration"].get_ydata()) == [0.88]
    assert lines  # the legend lists every line


def test_plot_table_and_paper_table_use_balanced_accuracy_on_imbalanced_test_sets():
    from deepimaging import plots
    from deepimaging.project import results_table_latex
    from deepimaging.report import _results_table

    matrix = [[30, 0, 0], [5, 5, 0], [4, 0, 6]]  # accuracy 41/50 = 0.82, balanced (1 + 0.5 + 0.6) / 3 = 0.7
    points = [
        {
            "sweep": "quantize",
            "value": v,
            "seed": s,
            "classes": ["a", "b", "c"],
            "confusion_matrix": matrix,
            "accuracy": 0.82,
            "balanced_accuracy": 0.7 + 0.01 * s,
            "macro_f1": 0.7,
            "macro_auc": 0.9,
            "recall": {"a": 1.0, "b": 0.5, "c": 0.6},
            "warnings": [],
        }
        for v in (1, 8)
        for s in (0, 1, 2)
    ]
    results = StudyResults(tiny_config(), points)
    assert results.metric == "balanced_accuracy"
    ax = plots.plot_accuracy_vs_parameter(results)
    assert "balanced accuracy" in ax.get_ylabel()
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.71, 0.71])
    table = _results_table(results)
    assert table["header"][3] == "test balanced accuracy (mean ± s.d.)"
    assert table["rows"][0][3] == "0.710 ± 0.010"
    assert any("imbalanced" in note for note in table["notes"])
    latex = results_table_latex(results)
    assert "Balanced accuracy" in latex and "$0.710 \\pm 0.010$" in latex


def test_the_page_says_within_the_spread_over_seeds_for_paired_differences_inside_the_interval():
    from deepimaging.report import comparison_sentences

    config = tiny_config(sweeps=[Sweep("quantize", [2]), Sweep("quantize", [2], label="learned")])
    points = [
        {
            "sweep": name,
            "value": 2,
            "seed": s,
            "classes": ["a", "b"],
            "confusion_matrix": [[5, 0], [0, 5]],
            "accuracy": x,
        }
        for name, xs in (("quantize", [0.70, 0.75, 0.72]), ("learned", [0.71, 0.73, 0.74]))
        for s, x in zip((0, 1, 2), xs)
    ]
    (sentence,) = comparison_sentences(StudyResults(config, points))
    assert "within the spread over seeds" in sentence and "quantize minus learned at 2 bits" in sentence
