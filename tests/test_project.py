"""Class-project template: scaffold, configuration checks, run and report in smoke mode."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from deepimaging.project import (
    EXAMPLES,
    ProjectConfigError,
    latex_escape,
    load_project,
    new_project,
    report_project,
    run_project,
)

# --- scaffold ---------------------------------------------------------------------------------


def test_new_project_writes_config_notebook_proposal_paper_and_readme(tmp_path):
    path = new_project(tmp_path / "p", title="Blur & me", authors=["Ada", "Bo"])
    names = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert {
        "project.toml",
        "project.ipynb",
        "proposal.md",
        "README.md",
        "paper/main.tex",
        "paper/references.bib",
    } <= names
    project = load_project(path, smoke=True)
    assert project.title == "Blur & me" and project.authors == ["Ada", "Bo"]
    proposal = (path / "proposal.md").read_text()
    for section in (
        "General aim",
        "Data source",
        "Expected simulations",
        "Expected CNN",
        "Quantitative analysis",
    ):
        assert section in proposal
    paper = (path / "paper" / "main.tex").read_text()
    for section in ("Introduction", "Methods", "Results", "Discussion"):
        assert f"\\section{{{section}}}" in paper
    assert "\\bibliography{references}" in paper


def test_new_project_refuses_a_non_empty_folder_and_leaves_it_untouched(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="never overwrites"):
        new_project(tmp_path / "p")
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["notes.txt"]


def test_new_project_accepts_an_existing_empty_folder(tmp_path):
    (tmp_path / "p").mkdir()
    assert (new_project(tmp_path / "p") / "project.toml").is_file()


def test_project_notebook_is_notebook_08():
    root = Path(__file__).parents[1]
    template = root / "deepimaging" / "project_template" / "project.ipynb"
    assert template.read_text() == (root / "notebooks" / "08_project_template.ipynb").read_text()


# --- configuration checks ----------------------------------------------------------------------


def _project_with(tmp_path, edit):
    path = new_project(tmp_path / "p")
    config = path / "project.toml"
    config.write_text(edit(config.read_text()))
    return path


def _line_of(path, pattern):
    lines = (path / "project.toml").read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if re.search(pattern, line))


def test_misspelled_key_names_the_file_line_and_suggests_the_key(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace("epochs = 8", "epoch = 8"))
    with pytest.raises(ProjectConfigError) as err:
        load_project(path)
    line = _line_of(path, r"^epoch = 8")
    message = str(err.value)
    assert f"project.toml, line {line}" in message
    assert "'epoch'" in message and "did you mean 'epochs'" in message and "allowed keys" in message


def test_missing_required_key_is_named(tmp_path):
    path = _project_with(tmp_path, lambda t: re.sub(r"(?m)^layer = .*$", "", t))
    with pytest.raises(ProjectConfigError, match="needs the key 'layer'"):
        load_project(path)


def test_missing_title_is_named(tmp_path):
    path = _project_with(tmp_path, lambda t: re.sub(r"(?m)^title = .*$", "", t))
    with pytest.raises(ProjectConfigError, match="needs the key 'title'"):
        load_project(path)


def test_unknown_layer_lists_the_allowed_layers(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace('layer = "quantize"', 'layer = "quantise"'))
    with pytest.raises(ProjectConfigError) as err:
        load_project(path)
    message = str(err.value)
    assert f"line {_line_of(path, '^layer = ')}" in message
    assert "unknown layer 'quantise'" in message and "'quantize'" in message and "allowed layers" in message


def test_value_out_of_range_names_the_line_and_range(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace("values = [1, 2, 3, 4, 8]", "values = [1, 17]"))
    with pytest.raises(ProjectConfigError) as err:
        load_project(path)
    assert f"line {_line_of(path, '^values = ')}" in str(err.value)
    assert "17" in str(err.value)


def test_value_of_wrong_type_names_the_expected_type(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace("epochs = 8", 'epochs = "eight"'))
    with pytest.raises(ProjectConfigError, match="epochs must be an int; got 'eight'"):
        load_project(path)


def test_out_of_range_training_setting_is_named(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace("epochs = 8", "epochs = 0"))
    with pytest.raises(ProjectConfigError, match=r"line \d+: .*epochs must be in"):
        load_project(path)


def test_unknown_dataset_lists_the_available_ones(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace('name = "blood_smear"', 'name = "imagenet"'))
    with pytest.raises(ValueError, match="unknown dataset name 'imagenet'; available"):
        run_project(path, smoke=True, progress=False)


def test_invalid_toml_and_missing_file_are_clear(tmp_path):
    path = _project_with(tmp_path, lambda t: t + "\nthis is not toml\n")
    with pytest.raises(ProjectConfigError, match="not valid TOML"):
        load_project(path)
    with pytest.raises(FileNotFoundError, match="is this a project folder"):
        load_project(tmp_path)


def test_report_before_run_says_to_run_first(tmp_path):
    path = new_project(tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="run the study first"):
        report_project(path, smoke=True)


# --- escaping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("50% & more", r"50\% \& more"),
        ("a_b", r"a\_b"),
        ("back\\slash", r"back\textbackslash{}slash"),
        ("<script>", r"\textless{}script\textgreater{}"),
        ("{$#~^}", r"\{\$\#\textasciitilde{}\textasciicircum{}\}"),
    ],
)
def test_latex_escape_makes_special_characters_print_as_text(text, expected):
    assert latex_escape(text) == expected


# --- the whole path ----------------------------------------------------------------------------

EVIL_TITLE = "<script>alert(1)</script> 100% R&D_x \\o/"


@pytest.mark.slow
def test_scaffold_run_report_gives_page_and_paper_with_figures_and_measured_numbers(tmp_path):
    path = new_project(tmp_path / "p", title=EVIL_TITLE, authors=["A & B"])
    config = path / "project.toml"
    config.write_text(config.read_text().replace("values = [1, 2, 3, 4, 8]", "values = [1, 8]"))
    config.write_text(config.read_text().replace("seeds = [0, 1, 2]", "seeds = [0, 1]"))
    results = run_project(path, smoke=True, progress=False)
    written = report_project(path, smoke=True)

    page = Path(written["page"]).read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert len(re.findall(r"<img ", page)) >= 2
    for row in results.summary():  # the measured numbers, as the engine computed them
        assert f"{row['accuracy_mean']:.3f}" in page

    generated = path / "paper" / "generated"
    main = (path / "paper" / "main.tex").read_text()
    # The figures main.tex includes; attribution_across is drawn from the saved networks of the points.
    for name in ("accuracy_vs_parameter.pdf", "confusion_matrices.pdf", "attribution_across.pdf"):
        assert f"generated/{name}" in main
        assert (generated / name).read_bytes().startswith(b"%PDF")
    table = (generated / "results_table.tex").read_text()
    assert table.startswith("\\begin{tabular}") and table.rstrip().endswith("\\end{tabular}")
    for row in results.summary():
        assert f"{row['accuracy_mean']:.3f}" in table
    metadata = (generated / "metadata.tex").read_text()
    assert latex_escape(EVIL_TITLE) in metadata and "<script>" not in metadata
    assert r"A \& B" in metadata


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES)
def test_each_example_configuration_runs_in_smoke_mode(tmp_path, example):
    path = new_project(tmp_path / example, example=example)
    config = path / "project.toml"
    config.write_text(config.read_text().replace("seeds = [0, 1, 2]", "seeds = [0]"))
    results = run_project(path, smoke=True, progress=False)
    assert results.complete
    assert all(0.0 <= row["accuracy_mean"] <= 1.0 for row in results.summary())


def test_cli_reports_a_bad_config_in_one_line_without_a_traceback(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace("epochs = 8", "epoch = 8"))
    proc = subprocess.run(
        [sys.executable, "-m", "deepimaging.cli", "run", str(path), "--smoke"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "did you mean 'epochs'" in proc.stderr


# --- checked up front, with the file and the line ------------------------------------------------


def _error_of(path):
    with pytest.raises(ProjectConfigError) as err:
        load_project(path)
    return str(err.value)


def test_unknown_dataset_is_refused_by_load_project_with_its_line(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace('name = "blood_smear"', 'name = "imagenet"'))
    message = _error_of(path)
    assert f"project.toml, line {_line_of(path, '^name = ')}" in message
    assert (
        "unknown dataset name 'imagenet'" in message and "'digits'" in message and "'blood_smear'" in message
    )


def test_dataset_given_as_its_loader_name_is_accepted(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace('name = "blood_smear"', 'name = "load_digits"'))
    assert load_project(path).study.dataset == "load_digits"


@pytest.mark.parametrize(
    "dataset, options",
    [("blood_smear", "{ noise = 3 }"), ("blood_smear", "{ size = 16 }"), ("digits", "{ root = 'x' }")],
)
def test_bogus_dataset_options_are_refused_naming_the_loader_options(tmp_path, dataset, options):
    def edit(t):
        t = t.replace('name = "blood_smear"', f'name = "{dataset}"')
        return t.replace("# options = { }        # keyword", f"options = {options}  # keyword")

    path = _project_with(tmp_path, edit)
    message = _error_of(path)
    assert f"line {_line_of(path, '^options = ')}" in message
    assert "do not fit the" in message and dataset in message


def test_a_loader_option_that_is_required_but_missing_is_named(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace('name = "blood_smear"', 'name = "image_folder"'))
    assert "missing a required argument: 'root'" in _error_of(path)


def test_widths_too_deep_for_the_image_size_are_refused(tmp_path):
    def edit(t):
        return t.replace("size = 32 ", "size = 16 ").replace(
            "widths = [16, 32, 64]", "widths = [4, 4, 4, 4, 4]"
        )

    path = _project_with(tmp_path, edit)
    message = _error_of(path)
    # Five 2x poolings need 2**5 = 32 pixels; a 16x16 image allows four (16 = 2**4).
    assert f"line {_line_of(path, '^widths = ')}" in message
    assert "allows at most 4 blocks" in message and "[4, 4, 4, 4, 4]" in message
    assert load_project(_project_with(tmp_path / "ok", lambda t: t.replace("size = 32 ", "size = 16 ")))


def test_an_image_size_that_would_exhaust_memory_is_refused(tmp_path):
    path = _project_with(tmp_path, lambda t: t.replace("size = 32 ", "size = 1000000000 "))
    message = _error_of(path)
    assert f"line {_line_of(path, '^size = ')}" in message and "at most 1024" in message


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("values = [1, 2, 3, 4, 8]", "values = [1, inf]", "values"),
        ("values = [1, 2, 3, 4, 8]", "values = [1, nan]", "values"),
        ("lr = 0.003", "lr = inf", "lr"),
        ("test = 0.3 ", "test = -inf ", "test"),
    ],
)
def test_infinite_or_nan_settings_are_refused_with_their_line(tmp_path, old, new, key):
    path = _project_with(tmp_path, lambda t: t.replace(old, new))
    message = _error_of(path)
    assert f"line {_line_of(path, f'^{key} = ')}" in message and f"{key} must hold finite numbers" in message


def test_a_project_toml_that_is_not_utf8_names_the_file(tmp_path):
    path = new_project(tmp_path / "p")
    text = (path / "project.toml").read_text().replace("Your Name", "Jos\u00e9")
    (path / "project.toml").write_bytes(text.encode("latin-1"))  # what an old editor may save
    message = _error_of(path)
    assert str(path / "project.toml") in message and "not UTF-8" in message


def test_datasets_are_found_by_name_only_among_the_public_loaders():
    from deepimaging import data

    assert data.dataset_loader("digits") is data.load_digits is data.dataset_loader("load_digits")
    assert data.dataset_loader("blood_smear") is data.simulate_blood_smear
    assert data.dataset_names()[0] == "blood_smear" and "bccd_crops" in data.dataset_names()
    for name in ("split", "_threads", "cache", "imagenet"):  # functions and modules that load nothing
        with pytest.raises(ValueError, match=f"unknown dataset name '{name}'; available: .*'digits'"):
            data.dataset_loader(name)
    with pytest.raises(TypeError, match="dataset must be a name"):
        data.dataset_loader(3)
