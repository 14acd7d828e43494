"""The command line: `deepimaging demo` writes the whole results folder; `deepimaging study` sweeps any layer."""

import json

import pytest

from deepimaging.cli import main
from deepimaging.study import load_results

TINY = ["--size", "16", "--n-per-class", "8", "--epochs", "1", "--no-progress"]


TITLE = "<script>alert(1)</script>"
FIGURES = [
    "accuracy_vs_parameter",
    "confusion_matrices",
    "sensor_examples",
    "bits_map_bit_allocation",
    # drawn from the networks the points saved
    "attribution_across",
    "filters_across",
    "neighbor_agreement",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`deepimaging demo --smoke`, run once for the tests of this module."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", "--smoke", "--out", str(out), "--jobs", "1", "--no-progress", "--title", TITLE]) == 0
    return out


def test_demo_smoke_writes_results_figures_and_a_page(demo):
    results = json.loads((demo / "results.json").read_text())
    sweeps = {row["sweep"] for row in results["summary"]}
    assert sweeps == {"quantize", "learned_discretization", "bit_allocation"}
    assert all(row["n_seeds"] >= 3 for row in results["summary"])
    assert (demo / "results.csv").read_text().startswith("sweep,layer,value")
    for name in FIGURES:
        assert (demo / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert (demo / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    page = (demo / "index.html").read_text()
    assert TITLE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert "results.json" in page and "results table" in page.lower()


def test_demo_rerun_resumes_and_changes_no_point(demo, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (demo / "points").glob("*.json")}
    assert (
        main(["demo", "--smoke", "--out", str(demo), "--jobs", "1", "--no-progress", "--title", TITLE]) == 0
    )
    assert str(demo / "index.html") in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (demo / "points").glob("*.json")} == before


@pytest.mark.browser
def test_demo_page_opens_in_a_browser_with_every_figure_and_the_title_as_text(demo, chromium):
    page = chromium.new_page()
    try:
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto((demo / "index.html").as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all(
            "img", "images => images.map(i => i.complete ? i.naturalWidth : 0)"
        )
        heading = page.inner_text("h1")
    finally:
        page.close()
    assert len(widths) == len(FIGURES) and all(w > 100 for w in widths)
    assert heading == TITLE and dialogs == []


def test_study_command_sweeps_binning(tmp_path, capsys):
    out = tmp_path / "binning"
    argv = ["study", "--layer", "binning", "--values", "1,2,4,8", "--seeds", "0", "--out", str(out), *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "binning=8: accuracy" in printed
    results = load_results(out)
    assert [row["value"] for row in results.summary()] == [1, 2, 4, 8]
    assert results.config.parameter == "factor"


def test_study_command_runs_one_point_by_index_like_an_array_job(tmp_path, capsys):
    out = tmp_path / "array"
    base = ["study", "--layer", "quantize", "--values", "1,4", "--seeds", "0,1", "--out", str(out), *TINY]
    assert main([*base, "--list-points"]) == 0
    listing = capsys.readouterr().out.strip().splitlines()
    assert len(listing) == 4 and listing[3].split("\t")[:3] == ["3", "quantize", "4"]
    for k in range(4):
        assert main([*base, "--point", str(k)]) == 0
    assert load_results(out).complete
    # the same study from its saved configuration, e.g. on another machine of a cluster
    copy = tmp_path / "copy"
    assert (
        main(
            [
                "study",
                "--config",
                str(out / "study.json"),
                "--out",
                str(copy),
                "--point",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (copy / "points" / "quantize__v4__s1.json").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--layer", "warp_drive", "--values", "1"], "unknown physical layer 'warp_drive'"),
        (["--layer", "quantize", "--values", "0"], "bits for layer 'quantize' must be int in [1, 16]; got 0"),
        (["--layer", "quantize", "--values", "17"], "got 17"),
        (["--layer", "quantize", "--values", "1,x"], "--values must be comma-separated numbers"),
        (["--layer", "quantize", "--values", "1", "--option", "brightness=2"], "brightness"),
        (["--layer", "quantize"], "needs --layer and --values"),
        (["--layer", "quantize", "--values", "1", "--point", "5"], "--point must be in [0, 2]"),
    ],
)
def test_study_command_bad_input_is_one_clear_line(tmp_path, capsys, extra, message):
    code = main(["study", *extra, "--out", str(tmp_path / "o"), *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("deepimaging study: error:") and message in err
    assert "Traceback" not in err


def test_study_command_refuses_a_folder_of_another_configuration(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["study", "--layer", "quantize", "--values", "1", "--seeds", "0", "--out", str(out), *TINY]
    assert main(argv) == 0
    assert main([*argv, "--epochs", "2"]) == 2
    assert "different study configuration" in capsys.readouterr().err


def test_demo_runs_on_a_dataset_from_the_loaders(tmp_path):
    out = tmp_path / "digits"
    assert (
        main(["demo", "--smoke", "--dataset", "digits", "--out", str(out), "--jobs", "1", "--no-progress"])
        == 0
    )
    results = load_results(out)
    assert results.config.dataset == "digits" and len(results.classes) == 10
    assert "on the digits dataset" in (out / "index.html").read_text()


def test_study_command_reads_loader_options(tmp_path, capsys):
    argv = ["study", "--layer", "quantize", "--values", "1", "--dataset", "bccd_crops"]
    argv += [
        "--dataset-option",
        f"root={json.dumps(str(tmp_path / 'nowhere'))}",
        "--out",
        str(tmp_path / "o"),
        *TINY,
    ]
    assert main(argv) == 2
    assert "nowhere" in capsys.readouterr().err


# --- a user's mistake is one line on stderr and a non-zero exit, never a traceback -------------------


def _bad_inputs(tmp_path):
    """``(argv, expected text of the error line)`` for every sub-command, built in ``tmp_path``."""
    full = tmp_path / "full"
    full.mkdir()
    (full / "something.txt").write_text("x")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "infinite.json").write_text('{"sweeps": [{"layer": "quantize", "values": [Infinity]}]}')
    (tmp_path / "latin1.json").write_bytes('{"dataset": "caf\u00e9"}'.encode("latin-1"))
    (tmp_path / "folder.json").mkdir()
    not_utf8 = tmp_path / "not_utf8"
    not_utf8.mkdir()
    (not_utf8 / "project.toml").write_bytes('[project]\ntitle = "Caf\u00e9"\n'.encode("latin-1"))
    toml_folder = tmp_path / "toml_folder"
    (toml_folder / "project.toml").mkdir(parents=True)
    out = str(tmp_path / "out")
    study = ["study", "--layer", "quantize", "--out", out, *TINY]
    return [
        (["demo", "--dataset", "imagenet", "--out", out, "--no-progress"], "unknown dataset name 'imagenet'"),
        (["demo", "--dataset-option", "oops", "--out", out], "--dataset-option must look like KEY=VALUE"),
        ([*study, "--values", "inf"], "--values must be comma-separated numbers"),
        ([*study, "--values", "1,nan"], "expected a finite number; got 'nan'"),
        ([*study, "--values", "1", "--seeds", "0,-inf"], "--seeds must be comma-separated numbers"),
        (["study", "--config", str(tmp_path / "list.json"), "--out", out], "must hold a JSON object"),
        (["study", "--config", str(tmp_path / "infinite.json"), "--out", out], "Infinity is not a number"),
        (["study", "--config", str(tmp_path / "latin1.json"), "--out", out], "is not UTF-8 text"),
        (["study", "--config", str(tmp_path / "folder.json"), "--out", out], "is a folder"),
        (["study", "--config", str(tmp_path / "nowhere.json"), "--out", out], "does not exist"),
        (["new-project", str(full)], "already exists and is not an empty folder"),
        (["new-project", str(a_file)], "already exists"),
        (["run", str(tmp_path / "nowhere")], "is this a project folder"),
        (["run", str(not_utf8)], "not UTF-8"),
        (["run", str(toml_folder)], "is this a project folder"),
        (["report", str(tmp_path / "nowhere")], "is this a project folder"),
    ]


def _exit_and_stderr(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    return code, capsys.readouterr().err


def test_every_sub_command_answers_bad_input_with_one_line_and_no_traceback(tmp_path, capsys):
    for argv, expected in _bad_inputs(tmp_path):
        code, err = _exit_and_stderr(argv, capsys)
        assert code == 2, (argv, err)
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith(f"deepimaging {argv[0]}: error: ") and expected in lines[0], (argv, err)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--jobs", "two"],
        ["study", "--layer", "quantize", "--values", "1"],  # --out is required
        ["new-project", "p", "--example", "no_such_topic"],
        ["run"],
        ["report", "p", "--colour"],
        ["no-such-command"],
    ],
)
def test_argument_errors_are_argparse_usage_and_one_error_line(argv, capsys):
    code, err = _exit_and_stderr(argv, capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("deepimaging")
    assert ": error: " in err.strip().splitlines()[-1]


def test_a_point_file_replaced_by_a_folder_is_one_line_not_a_traceback(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["study", "--layer", "quantize", "--values", "1", "--seeds", "0", "--out", str(out), *TINY]
    assert main(argv) == 0
    (point,) = (out / "points").glob("*.json")
    point.unlink()
    point.mkdir()  # e.g. a careless `mkdir` or a sync tool
    code, err = _exit_and_stderr(argv, capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("deepimaging study: error: ") and point.name in err


@pytest.mark.parametrize(
    "argv, function",
    [
        (["study", "--layer", "quantize", "--values", "1", "--out", "o"], "deepimaging.study.run_study"),
        (["demo", "--out", "o"], "deepimaging.project.run_demo"),
        (["run", "p"], "deepimaging.project.run_project"),
    ],
)
def test_ctrl_c_is_one_line_and_exit_status_130(argv, function, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(function, interrupted)
    code, err = _exit_and_stderr(argv, capsys)
    assert code == 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
    assert err.strip() == f"deepimaging {argv[0]}: interrupted"


def test_ctrl_c_sent_to_the_real_command_stops_it_with_one_line(tmp_path):
    """SIGINT to a running `deepimaging study`, as a terminal sends it: exit 130, no traceback."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "o"
    argv = ["study", "--layer", "quantize", "--values", "1,2,3,4", "--seeds", "0,1", "--out", str(out)]
    argv += ["--size", "32", "--n-per-class", "200", "--epochs", "50", "--no-progress"]
    env = {**os.environ, "DEEPIMAGING_SMOKE": "0", "CI": ""}
    # A terminal's foreground command gets SIGINT with its default action. A test run started in
    # the background by a non-interactive shell (`bash .ci/run &`) passes SIGINT on as ignored, and
    # Python then installs no KeyboardInterrupt handler: restore the default, as a terminal has it.
    process = subprocess.Popen(
        [sys.executable, "-m", "deepimaging.cli", *argv],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "study.json").exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)  # study.json is written once the command is running the study
        assert process.poll() is None, process.stderr.read()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "deepimaging study: interrupted"
