"""The study engine: resume, corrupt points, configuration guard, bad input, report escaping."""

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from _study import tiny_config
from PIL import Image

from deepimaging.report import ReportFigure, render_report, save_figure
from deepimaging.study import (
    StudyConfig,
    StudyConfigMismatch,
    Sweep,
    load_results,
    run_point,
    run_study,
)
from deepimaging.study import point as study_point


def snapshot(folder):
    """{relative path: (bytes, mtime_ns)} of every file under folder."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def count_trainings(monkeypatch, fail_on=None):
    """Count calls of the training step; optionally raise once for one (sweep, value, seed)."""
    calls, failed = [], []
    original = study_point._train_point

    def counting(config, sweep, value, seed, progress=False):
        calls.append((sweep.name, value, seed))
        if fail_on == (sweep.name, value, seed) and not failed:
            failed.append(True)
            raise RuntimeError("simulated crash in the middle of the sweep")
        return original(config, sweep, value, seed, progress=progress)

    monkeypatch.setattr(study_point, "_train_point", counting)
    return calls


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny study, shared by the read-only tests."""
    out = tmp_path_factory.mktemp("study") / "out"
    results = run_study(tiny_config(), out, progress=False)
    return out, results


# ---------------------------------------------------------------------------------------------------------
# Resume, corrupt points, same numbers
# ---------------------------------------------------------------------------------------------------------


def test_a_crash_midway_then_rerun_computes_only_the_missing_points(tmp_path, monkeypatch):
    config = tiny_config()
    calls = count_trainings(monkeypatch, fail_on=("quantize", 8, 1))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_study(config, tmp_path, progress=False)
    finished_before = snapshot(tmp_path / "points")
    # The 4 points before the crash are on disk (a record and its network each), nothing half-written.
    assert len(finished_before) == 8
    assert not list((tmp_path / "points").glob(".*.part"))

    calls.clear()
    results = run_study(config, tmp_path, progress=False)
    assert calls == [("quantize", 8, 1), ("quantize", 8, 2)]
    after = snapshot(tmp_path / "points")
    for name, (data, mtime) in finished_before.items():
        assert after[name] == (data, mtime), f"{name} was rewritten"
    assert results.complete and len(results.points) == 6


def test_killing_the_command_midway_and_rerunning_finishes_only_missing_points(tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "deepimaging.cli",
        "study",
        "--layer",
        "quantize",
        "--values",
        "1,2,3,4,5,6",
    ]
    command += ["--seeds", "0", "--size", "16", "--n-per-class", "40", "--epochs", "2", "--out", str(out)]
    command += ["--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((out / "points").glob("*.json"))) < 2:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    done = snapshot(out / "points")
    done = {k: v for k, v in done.items() if k.endswith(".json") and not k.startswith(".")}
    assert 2 <= len(done) < 6, "the kill should land between the first points and the end"

    config = StudyConfig.from_dict(json.loads((out / "study.json").read_text())["config"])
    results = run_study(config, out, progress=False)
    assert results.complete
    after = snapshot(out / "points")
    for name, (data, mtime) in done.items():
        assert after[name] == (data, mtime), f"finished point {name} was recomputed"
    assert len([k for k in after if k.endswith(".json") and not k.startswith(".")]) == 6


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated by a crash of a non-atomic writer
        lambda text: "",  # empty file
        lambda text: text.replace('"config_hash": "', '"config_hash": "0'),  # from another configuration
        lambda text: json.dumps({**json.loads(text), "accuracy": "high"}),  # a field of the wrong type
    ],
    ids=["truncated", "empty", "other-config", "bad-field"],
)
def test_a_corrupt_point_file_is_detected_and_recomputed(tmp_path, monkeypatch, damage):
    config = tiny_config(sweeps=[Sweep("quantize", [1])], seeds=[0, 1])
    first = run_study(config, tmp_path, progress=False)
    path = tmp_path / "points" / "quantize__v1__s1.json"
    path.write_text(damage(path.read_text()))

    calls = count_trainings(monkeypatch)
    with pytest.warns(UserWarning, match="corrupt"):
        again = run_study(config, tmp_path, progress=False)
    assert calls == [("quantize", 1, 1)]
    assert json.loads(path.read_text())["accuracy"] == first.select("quantize", 1)[1]["accuracy"]
    assert again.complete


def test_same_seeds_give_the_same_numbers_in_one_process_or_two(tmp_path):
    config = tiny_config(sweeps=[Sweep("quantize", [2]), Sweep("learned_discretization", [2])], seeds=[0, 1])
    serial = run_study(config, tmp_path / "a", jobs=1, progress=False)
    parallel = run_study(config, tmp_path / "b", jobs=2, progress=False)
    keys = ("accuracy", "macro_auc", "confusion_matrix", "per_class", "train_loss", "train_accuracy")
    assert [{k: p[k] for k in keys} for p in serial.points] == [
        {k: p[k] for k in keys} for p in parallel.points
    ]
    # different seeds do differ somewhere (otherwise the error bars would be meaningless)
    assert serial.points[0]["train_loss"] != serial.points[1]["train_loss"]


def test_a_single_point_runs_on_its_own_into_the_shared_folder(tmp_path):
    config = tiny_config()
    record = run_point(config, "quantize", 8, 2, out_dir=tmp_path)
    assert (tmp_path / "points" / "quantize__v8__s2.json").exists()
    assert json.loads((tmp_path / "study.json").read_text())["config_hash"] == config.hash()
    partial = load_results(tmp_path, allow_incomplete=True)
    assert len(partial.points) == 1 and partial.points[0]["accuracy"] == record["accuracy"]
    with pytest.raises(FileNotFoundError, match="5 of 6 points"):
        load_results(tmp_path)


# ---------------------------------------------------------------------------------------------------------
# What is recorded: checked against NumPy and the confusion matrix itself
# ---------------------------------------------------------------------------------------------------------


def test_summary_is_the_mean_and_sample_std_over_seeds(finished):
    out, results = finished
    for row in results.summary():
        acc = [p["accuracy"] for p in results.select(row["sweep"], row["value"])]
        assert row["n_seeds"] == 3
        assert row["accuracy_mean"] == pytest.approx(np.mean(acc))
        assert row["accuracy_std"] == pytest.approx(np.std(acc, ddof=1))
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["summary"] == json.loads(json.dumps(results.summary()))
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert csv_lines[0].startswith("sweep,layer,value,n_seeds,accuracy_mean,accuracy_std")
    assert len(csv_lines) == 1 + 2


def test_each_point_records_metrics_consistent_with_its_confusion_matrix(finished):
    _, results = finished
    for p in results.points:
        matrix = np.array(p["confusion_matrix"])
        assert matrix.shape == (4, 4)
        assert p["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
        for k, name in enumerate(p["classes"]):
            assert p["per_class"][name]["support"] == matrix[k].sum()
            if matrix[k].sum():
                assert p["per_class"][name]["recall"] == pytest.approx(matrix[k, k] / matrix[k].sum())
        assert p["macro_auc"] is None or 0.0 <= p["macro_auc"] <= 1.0


def test_bit_allocation_points_keep_their_bits_map_within_the_budget(tmp_path):
    config = tiny_config(sweeps=[Sweep("bit_allocation", [2])], seeds=[0])
    results = run_study(config, tmp_path, progress=False)
    bits_map = results.bits_map("bit_allocation", 2)
    assert bits_map.shape == (16, 16)
    assert bits_map.mean() == pytest.approx(2.0, abs=0.01)
    assert bits_map.min() >= 1 and bits_map.max() <= 8


# ---------------------------------------------------------------------------------------------------------
# Bad input: clear errors, nothing lost
# ---------------------------------------------------------------------------------------------------------


def test_a_folder_with_a_different_configuration_is_refused_and_left_untouched(finished):
    out, _ = finished
    before = snapshot(out)
    with pytest.raises(
        StudyConfigMismatch, match=r"different study configuration.*epochs: 1 in the folder, 2 now"
    ):
        run_study(tiny_config(epochs=2), out, progress=False)
    with pytest.raises(StudyConfigMismatch):
        run_point(tiny_config(epochs=2), "quantize", 1, 0, out_dir=out)
    assert snapshot(out) == before


def test_point_files_without_a_study_file_are_refused(tmp_path):
    (tmp_path / "points").mkdir()
    (tmp_path / "points" / "quantize__v1__s0.json").write_text("{}")
    with pytest.raises(StudyConfigMismatch, match="no study.json"):
        run_study(tiny_config(), tmp_path, progress=False)


def test_an_output_folder_that_cannot_be_created_is_a_clear_error():
    with pytest.raises(PermissionError, match="cannot write to output folder /sys/deepimaging-study"):
        run_study(tiny_config(), "/sys/deepimaging-study", progress=False)


def test_a_read_only_output_folder_is_a_clear_error_and_keeps_earlier_results(finished, monkeypatch):
    out, _ = finished
    before = snapshot(out)
    modes = {p: p.stat().st_mode for p in [out, out / "points"]}
    try:
        for p in modes:
            p.chmod(0o555)
        if os.geteuid() == 0:  # root ignores permission bits: make the OS refusal explicit
            import tempfile

            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(tempfile, "mkstemp", refuse)
        with pytest.raises(PermissionError, match="cannot write to output folder .*nothing was changed"):
            run_study(tiny_config(), out, progress=False)
    finally:
        monkeypatch.undo()
        for p, mode in modes.items():
            p.chmod(mode)
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "sweep, message",
    [
        (Sweep("no_such_layer", [1]), "unknown physical layer 'no_such_layer'"),
        (Sweep("quantize", [0]), r"bits for layer 'quantize' must be int in \[1, 16\]; got 0"),
        (Sweep("quantize", [17]), r"bits .* got 17"),
        (Sweep("quantize", [2.5]), "not an integer"),
        (Sweep("binning", [3]), "does not divide"),
    ],
)
def test_unknown_layers_and_out_of_range_values_fail_before_anything_is_written(tmp_path, sweep, message):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        run_study(tiny_config(sweeps=[sweep]), out, progress=False)
    assert not out.exists()


def test_an_unknown_layer_option_names_the_option(tmp_path):
    with pytest.raises(TypeError, match="brightness"):
        run_study(
            tiny_config(sweeps=[Sweep("quantize", [2], {"brightness": 2})]), tmp_path / "o", progress=False
        )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(seeds=[0, 0]), ValueError, "distinct"),
        (dict(seeds=[-1]), ValueError, "seeds"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(sweeps=[]), ValueError, "at least one"),
        (dict(sweeps=[Sweep("quantize", [1]), Sweep("quantize", [2])]), ValueError, "unique"),
        (dict(dataset="imagenet"), ValueError, "unknown dataset name 'imagenet'"),
    ],
)
def test_bad_configurations_are_clear_errors(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        config = tiny_config(**kwargs)
        run_study(config, tmp_path / "o", progress=False)


def test_unknown_configuration_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown study configuration key\(s\) \['epoch'\]"):
        StudyConfig.from_dict({"sweeps": [{"layer": "quantize", "values": [1]}], "epoch": 3})


def test_sweep_values_must_be_numbers():
    with pytest.raises(TypeError, match="values"):
        Sweep("quantize", "1,2")
    with pytest.raises(TypeError):
        Sweep("quantize", [1, "two"])
    with pytest.raises(ValueError, match="repeat"):
        Sweep("quantize", [1, 1])


# ---------------------------------------------------------------------------------------------------------
# The results page
# ---------------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects tags, the text of elements by id, and image sources (an independent HTML parser)."""

    def __init__(self):
        super().__init__()
        self.tags, self.text, self.images, self._stack = [], {}, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src"))
        self._stack.append(attrs.get("id"))

    def handle_endtag(self, tag):
        if self._stack:
            self._stack.pop()

    def handle_data(self, data):
        for element_id in self._stack:
            if element_id:
                self.text[element_id] = self.text.get(element_id, "") + data


def test_user_text_in_the_page_is_escaped_and_shown_as_text(tmp_path):
    import matplotlib.pyplot as plt

    title = '<script>alert("x")</script> Bits & <b>bold</b>'
    authors = ["Ada <img src=x onerror=alert(1)>", "Bob"]
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    files = save_figure(fig, tmp_path / "figures", "line")
    figure = ReportFigure(
        "line", "a <i>caption</i>", {k: str(p.relative_to(tmp_path)) for k, p in files.items()}
    )
    path = render_report(tmp_path, title=title, authors=authors, description="<p>desc</p>", figures=[figure])
    page = _Page()
    page.feed(path.read_text())
    assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
    assert page.text["title"] == title
    assert page.text["authors"] == ", ".join(authors)
    assert page.tags.count("img") == 1  # only the figure, not the author's <img>


def test_report_embeds_every_figure_as_a_valid_png_and_links_the_pdf(finished):
    from deepimaging.report import write_report

    out, results = finished
    path = write_report(results, out, title="Tiny", authors=["A"])
    page = _Page()
    page.feed(path.read_text())
    # accuracy, confusion matrices, sensor examples; from the saved networks: attribution, filters, neighbours
    assert len(page.images) == 6
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG" and min(image.size) > 100
    for pdf in (out / "figures").glob("*.pdf"):
        assert pdf.read_bytes().startswith(b"%PDF")
        assert f'href="figures/{pdf.name}"' in path.read_text()
    assert "results table" in page.text["results-table"].lower()


def test_a_study_runs_on_a_dataset_from_the_loaders_by_option(tmp_path):
    # scikit-learn digits: grey 8x8 images, 10 classes; the layer is built for (1, 8, 8)
    config = tiny_config(dataset="digits", n_per_class=6, sweeps=[Sweep("quantize", [1])], seeds=[0], val=0.0)
    results = run_study(config, tmp_path, progress=False)
    point = results.points[0]
    assert len(point["classes"]) == 10
    assert np.array(point["confusion_matrix"]).sum() == 30  # half of 6 x 10 images are the test split
