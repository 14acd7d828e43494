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
