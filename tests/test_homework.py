"""Homework: otter-grader masters release, hide solutions and hidden tests, and grade robustly.

Everything expensive happens once per session in two module fixtures: ``released`` runs
``homework/release.py`` on every master into a temporary folder, and ``grading`` grades a set
of prepared submissions (solutions, blank student versions, broken variants) with
``homework/grade.py`` in parallel. The tests then read the results.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from _requirements import import_or_missing

import_or_missing("otter", "otter-grader (the dev extra) grades the homework")  # fails instead under CI

ROOT = Path(__file__).resolve().parents[1]
HOMEWORK = ROOT / "homework"
NAMES = ("hw1", "hw2", "hw3")
LOOP_TIMEOUT = 60  # s: the time limit in the folder with the endless loop (and otter refusing a
# notebook of another assignment after it must fit in it on a loaded machine: 30 s did not)
TIMEOUT = 400

pytestmark = pytest.mark.slow


def _load(name):
    spec = importlib.util.spec_from_file_location(f"homework_{name}", HOMEWORK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


release = _load("release")
grade = _load("grade")


# ---------------------------------------------------------------- reading the masters


def _source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def _master_parts(path):
    """Split a master into solution lines, hidden-test cells, public-test cells and the rest."""
    nb = nbformat.read(path, as_version=4)
    solution, hidden, public, visible = [], [], [], []
    block = []
    for cell in nb.cells:
        text = _source(cell).strip()
        if cell.cell_type == "raw":
            first = text.splitlines()[0].strip().upper() if text else ""
            for kind in ("QUESTION", "SOLUTION", "TESTS"):
                if first == f"# BEGIN {kind}":
                    block.append(kind)
                elif first == f"# END {kind}":
                    assert block and block.pop() == kind, f"unbalanced {kind} block in {path.name}"
            continue
        if block and block[-1] == "TESTS":
            (hidden if text.startswith("# HIDDEN") else public).append(text)
        elif block and block[-1] == "SOLUTION":
            inside = False
            for line in text.splitlines():
                marker = line.strip().upper()
                if marker == "# BEGIN SOLUTION":
                    inside = True
                elif marker == "# END SOLUTION":
                    inside = False
                elif inside or cell.cell_type == "markdown":
                    solution.append(line)
                else:
                    visible.append(line)
        else:
            visible.extend(text.splitlines())
    assert not block, f"unclosed blocks {block} in {path.name}"
    return nb, solution, hidden, public, visible


def _significant(lines, shown):
    """Lines worth scanning for: long enough to be specific, and not part of a line students see."""
    shown = [line.strip() for line in shown]
    out = set()
    for line in lines:
        stripped = line.strip()
        if (
            len(stripped) >= 12
            and not stripped.startswith("# HIDDEN")
            and not any(stripped in s for s in shown)
        ):
            out.add(stripped)
    return out


def _statements(cells):
    """Each top-level statement of the cells, as ``ast.unparse`` writes it (as otter's test files do)."""
    return {ast.unparse(node) for cell in cells for node in ast.parse(cell).body}


def _notebook_text(nb) -> str:
    parts = [_source(cell) for cell in nb.cells]
    parts += [json.dumps(cell.get("outputs", [])) for cell in nb.cells]
    return "\n".join(parts) + json.dumps(nb.metadata)


def _test_cases(test_file: Path):
    """The OK-format test dict of an otter test file, read without executing it."""
    tree = ast.parse(test_file.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "test":
            test = ast.literal_eval(node.value)
            return [case for suite in test["suites"] for case in suite["cases"]]
    raise AssertionError(f"{test_file} has no `test` dict")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Release every assignment once, in parallel (otter assign with --no-run-tests: the solutions
    are checked by grading them below, public and hidden tests together)."""
    out = tmp_path_factory.mktemp("dist")
    with ThreadPoolExecutor(len(NAMES)) as pool:
        paths = pool.map(lambda name: release.release(name, out, run_tests=False), NAMES)
        return dict(zip(NAMES, paths))


def _index(nb, predicate, what):
    hits = [i for i, cell in enumerate(nb.cells) if predicate(cell)]
    assert hits, f"no cell with {what}"
    return hits[0]


def _answer_cell(nb, defines):
    return _index(nb, lambda c: c.cell_type == "code" and f"def {defines}(" in _source(c), f"def {defines}")


def _check_cell(nb, question):
    return _index(nb, lambda c: _source(c).strip() == f'grader.check("{question}")', f"check {question}")


def _write(nb, path):
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def submissions(released, tmp_path_factory):
    """Prepared submissions {key: (path, assignment)}, and a folder for grade_folder."""
    root = tmp_path_factory.mktemp("submissions")
    made = {}
    for name in NAMES:
        made[f"{name}_blank"] = (shutil.copy(released[name]["student"], root / f"{name}_blank.ipynb"), name)
        made[f"{name}_solution"] = (
            shutil.copy(released[name]["solution"], root / f"{name}_solution.ipynb"),
            name,
        )

    solution = released["hw1"]["solution"]

    nb = nbformat.read(solution, as_version=4)  # q2's answer raises: q2 gets 0, the rest full marks
    cell = nb.cells[_answer_cell(nb, "binary_rates")]
    cell.source = 'raise RuntimeError("a bug in my answer")\n' + _source(cell)
    made["hw1_raises_q2"] = (_write(nb, root / "hw1_raises_q2.ipynb"), "hw1")

    nb = nbformat.read(solution, as_version=4)  # q5's answer and q3's check cell deleted
    del nb.cells[_answer_cell(nb, "ssim")]
    del nb.cells[_check_cell(nb, "q3")]
    del nb.cells[0]  # the title cell: deleting markdown changes nothing
    made["hw1_deleted_cells"] = (_write(nb, root / "hw1_deleted_cells.ipynb"), "hw1")

    nb = nbformat.read(solution, as_version=4)  # q1's answer moved below its check cell
    cell = nb.cells.pop(_answer_cell(nb, "confusion_matrix"))
    nb.cells.insert(_check_cell(nb, "q1") + 1, cell)
    nb.cells[0], nb.cells[1] = nb.cells[1], nb.cells[0]
    made["hw1_reordered"] = (_write(nb, root / "hw1_reordered.ipynb"), "hw1")

    # The folder for grade_folder, graded one at a time in name order: bad files, an endless loop,
    # then a notebook that otter itself refuses, so we see grading go on after the timeout.
    folder = tmp_path_factory.mktemp("hw1_folder")
    nb = nbformat.read(solution, as_version=4)
    loop = nbformat.v4.new_code_cell("import time\n\nwhile True:  # never ends\n    time.sleep(0.2)")
    nb.cells.insert(_answer_cell(nb, "confusion_matrix"), loop)
    _write(nb, folder / "endless_loop.ipynb")
    shutil.copy(released["hw2"]["student"], folder / "hw2_for_hw1.ipynb")
    text = Path(solution).read_text()
    (folder / "corrupt.ipynb").write_text(text[: len(text) // 2])
    (folder / "notes.txt").write_text("I did the homework on paper.\n")
    (folder / "answers.py").write_text("def confusion_matrix(*args):\n    return None\n")
    return made, folder


@pytest.fixture(scope="module")
def grading(released, submissions, tmp_path_factory):
    """Grade everything at once: the hw1 folder (one job) beside a pool of 2 for the rest.

    The graders' temporary folders go into a folder of the test's own, to see what is left there.
    """
    made, folder = submissions
    csv_path = tmp_path_factory.mktemp("scores") / "hw1.csv"
    autograder = released["hw1"]["autograder_zip"]
    scratch = tmp_path_factory.mktemp("grader_tmp")
    saved, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        with ThreadPoolExecutor(1) as outer:
            folder_rows = outer.submit(
                grade.grade_folder, autograder, folder, csv_path, timeout=LOOP_TIMEOUT, jobs=1
            )
            with ThreadPoolExecutor(2) as pool:
                futures = {
                    key: pool.submit(
                        grade.grade_submission, path, released[hw]["autograder_zip"], timeout=TIMEOUT
                    )
                    for key, (path, hw) in made.items()
                }
                rows = {key: future.result() for key, future in futures.items()}
            rows["folder"] = {row["submission"]: row for row in folder_rows.result()}
    finally:
        tempfile.tempdir = saved
    rows["left_in_tmp"] = sorted(p.name for p in scratch.iterdir())
    rows["csv"] = csv_path
    rows["csv_all"] = csv_path.with_name("all.csv")
    grade.write_csv([rows[key] for key in sorted(made)], rows["csv_all"])
    return rows


def _autograded(released, name):
    return {p.stem: _test_cases(p) for p in sorted(released[name]["autograder_tests"].glob("q*.py"))}


def _assert_full(row, questions):
    assert row["status"] == "graded", row
    for q in questions:
        assert row["questions"][q] > 0, (q, row)


# ---------------------------------------------------------------- releasing


def test_every_master_is_found_and_has_a_python3_kernelspec_and_no_outputs():
    found = release.masters()
    assert sorted(found) == list(NAMES)
    for path in found.values():
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert all(
            not c.get("outputs") and c.get("execution_count") is None
            for c in nb.cells
            if c.cell_type == "code"
        )


@pytest.mark.parametrize("name", NAMES)
def test_release_writes_student_notebook_tests_and_autograder_zip(released, name):
    paths = released[name]
    for key in ("student", "solution", "student_zip", "autograder_zip"):
        assert paths[key].is_file(), key
    with zipfile.ZipFile(paths["autograder_zip"]) as archive:
        names = archive.namelist()
    assert "otter_config.json" in names and any(n.startswith("tests/q1") for n in names)
    with zipfile.ZipFile(paths["student_zip"]) as archive:
        assert f"{name}.ipynb" in archive.namelist() and "tests/q1.py" in archive.namelist()


def test_release_rejects_an_unknown_assignment(tmp_path):
    with pytest.raises(ValueError, match="unknown assignment 'hw9'.*hw1"):
        release.release("hw9", tmp_path)
    assert not any(tmp_path.iterdir()), "a failed release must not leave files behind"


@pytest.mark.parametrize("name", NAMES)
def test_every_autograded_question_has_public_and_hidden_tests(released, name):
    questions = _autograded(released, name)
    assert len(questions) >= 3
    for question, cases in questions.items():
        assert any(c["hidden"] for c in cases), f"{name} {question} has no hidden test"
        assert any(not c["hidden"] for c in cases), f"{name} {question} has no public test"


@pytest.mark.parametrize("name", NAMES)
def test_student_version_contains_no_solution_and_no_hidden_test(released, name):
    master, solution, hidden, public, visible = _master_parts(release.masters()[name])
    student = nbformat.read(released[name]["student"], as_version=4)
    text = _notebook_text(student)
    text += "".join(p.read_text() for p in released[name]["student_tests"].glob("*.py"))
    with zipfile.ZipFile(released[name]["student_zip"]) as archive:
        text += "".join(archive.read(n).decode() for n in archive.namelist())
    shown = visible + [line for cell in public for line in cell.splitlines()]
    secret = _significant(solution, shown) | _significant(
        [ln for c in hidden for ln in c.splitlines()], shown
    )
    assert len(secret) >= 10, "the scan found too few lines to be meaningful"
    secret |= _statements(hidden) - _statements(public)  # hidden tests as otter's test files spell them
    leaked = sorted(line for line in secret if line in text)
    assert not leaked, f"{name}: student files contain solution or hidden-test lines: {leaked[:5]}"
    # The hidden tests are also gone from the student's test files, counted case by case.
    for test_file in released[name]["student_tests"].glob("q*.py"):
        cases = _test_cases(test_file)
        assert cases and not any(c["hidden"] for c in cases), test_file.name
    # The answer cells are blanked to `...`.
    assert sum("    ..." in _source(c) or _source(c).startswith("...") for c in student.cells) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_student_version_runs_on_colab_and_jupyterlab(released, name):
    student = nbformat.read(released[name]["student"], as_version=4)
    assert student.metadata["kernelspec"]["name"] == "python3"
    sources = [_source(c) for c in student.cells if c.cell_type == "code"]
    install = [s for s in sources if "pip install" in s]
    assert len(install) == 1 and 'if "google.colab" in sys.modules:' in install[0]
    assert "otter-grader" in install[0]
    assert any(f'otter.Notebook("{name}.ipynb")' in s for s in sources)
    assert sources.index(install[0]) < next(i for i, s in enumerate(sources) if "import otter" in s)


def test_release_pip_spec_reaches_the_colab_cell(tmp_path):
    # otter assign itself is the expensive part and is covered by `released`; here check the edit.
    master = release.masters()["hw1"]
    copy = tmp_path / master.name
    shutil.copy(master, copy)
    release._set_pip_spec(copy, "deepimaging @ git+https://example.org/deepimaging")
    cell = next(c for c in nbformat.read(copy, as_version=4).cells if "pip install" in _source(c))
    assert 'DEEPIMAGING = "deepimaging @ git+https://example.org/deepimaging"' in _source(cell)


def test_deepimaging_does_not_depend_on_otter():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any("otter" in dep for dep in project["dependencies"])


# ---------------------------------------------------------------- grading


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_every_public_and_hidden_test(released, grading, name):
    row = grading[f"{name}_solution"]
    assert row["status"] == "graded", row
    questions = _autograded(released, name)
    assert sorted(row["questions"]) == sorted(questions)
    assert row["score"] == row["max_score"] > 0, row


@pytest.mark.parametrize("name", NAMES)
def test_blank_student_version_fails_every_autograded_question(released, grading, name):
    row = grading[f"{name}_blank"]
    assert row["status"] == "graded", row
    assert sorted(row["questions"]) == sorted(_autograded(released, name))
    # Zero points means every test case of the question failed, public and hidden.
    assert all(points == 0 for points in row["questions"].values()), row
    assert row["score"] == 0 < row["max_score"]


def test_error_in_one_answer_costs_only_that_question(grading):
    row = grading["hw1_raises_q2"]
    assert row["questions"]["q2"] == 0
    _assert_full(row, ["q1", "q3", "q4", "q5"])
    assert row["score"] == row["max_score"] - 4


def test_deleted_cells_are_graded_without_the_deleted_answer(grading):
    row = grading["hw1_deleted_cells"]
    assert row["questions"]["q5"] == 0
    _assert_full(row, ["q1", "q2", "q3", "q4"])  # q3 lost its check cell: its tests run at the end


def test_reordered_cells_are_graded_on_the_state_they_leave(grading):
    # Observed with otter 7.0.0: q1's check cell runs before q1's answer, yet q1 scores full marks;
    # otter scores the questions on what the notebook defines once all its cells ran.
    row = grading["hw1_reordered"]
    _assert_full(row, ["q1", "q2", "q3", "q4", "q5"])
    assert row["score"] == row["max_score"]


def test_folder_grading_goes_on_after_an_endless_loop_corrupt_json_and_non_notebooks(grading):
    rows = grading["folder"]
    assert set(rows) == {
        "endless_loop.ipynb",
        "corrupt.ipynb",
        "notes.txt",
        "answers.py",
        "hw2_for_hw1.ipynb",
    }
    assert rows["endless_loop.ipynb"]["status"] == "timeout"
    assert f"{LOOP_TIMEOUT:g} s" in rows["endless_loop.ipynb"]["reason"]
    assert rows["corrupt.ipynb"]["status"] == "rejected"
    assert "invalid JSON" in rows["corrupt.ipynb"]["reason"]
    for other in ("notes.txt", "answers.py"):
        assert rows[other]["status"] == "rejected" and "not a notebook" in rows[other]["reason"]
    # Graded after the loop timed out (one job, name order): otter ran and said why it refused.
    wrong = rows["hw2_for_hw1.ipynb"]
    assert wrong["status"] == "error" and wrong["score"] is None
    assert "'hw2'" in wrong["reason"] and "'hw1'" in wrong["reason"], wrong["reason"]


def test_grading_leaves_no_temporary_folder_behind_timeouts_included(grading):
    assert grading["folder"]["endless_loop.ipynb"]["status"] == "timeout"
    assert grading["left_in_tmp"] == []


def test_scores_csv_has_one_row_per_submission_with_reasons(grading):
    with open(grading["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["submission"] for row in table] == sorted(grading["folder"])
    assert list(table[0]) == ["submission", "status", "score", "max_score", "reason"]  # none graded
    assert all(row["reason"] and row["score"] == "" for row in table)
    assert (grading["csv"].parent / "hw1_logs" / "endless_loop.ipynb.log").is_file()


def test_scores_csv_has_points_per_question(grading):
    with open(grading["csv_all"], newline="") as f:
        table = {row["submission"]: row for row in csv.DictReader(f)}
    header = list(next(iter(table.values())))
    assert header[:4] == ["submission", "status", "score", "max_score"] and header[-1] == "reason"
    assert header[4:-1] == [f"q{k}" for k in range(1, 10)]
    solution = table["hw1_solution.ipynb"]
    assert float(solution["score"]) == sum(float(solution[q]) for q in header[4:-1]) == 26
    assert table["hw2_blank.ipynb"]["q1"] == "0.0"


# ---------------------------------------------------------------- the README's command, a hostile submission

HOSTILE = """
import os, pathlib, shutil, subprocess, sys, tempfile
import psutil

# 1. Delete every autograder zip named on the command line of a process above this kernel:
#    otter's copy (after making its folder writable) and grade.py's own argument.
for ancestor in psutil.Process().parents():
    try:
        args, cwd = ancestor.cmdline(), ancestor.cwd()
    except psutil.Error:
        continue
    for arg in args:
        path = pathlib.Path(cwd, arg)
        if arg.endswith(".zip") and path.is_file():
            os.chmod(path.parent, 0o700)
            path.unlink()
# 2. A process in a session of its own, meant to outlive the grading.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
pathlib.Path({pid_file!r}).write_text(str(child.pid))
# 3. Copy the tests, hidden ones included, into the working and the temporary folder.
for target in (pathlib.Path("stolen"), pathlib.Path(tempfile.gettempdir(), "stolen")):
    shutil.copytree("tests", target, dirs_exist_ok=True)
"""


def _readme_grading_command() -> str:
    """The grading command of homework/README.md, as written there."""
    text = (HOMEWORK / "README.md").read_text()
    blocks = [b for b in text.split("```bash\n")[1:] if "homework/grade.py" in b.split("```")[0]]
    assert len(blocks) == 1, "homework/README.md should show the grading command once"
    (command,) = [line for line in blocks[0].split("```")[0].splitlines() if "grade.py" in line]
    return command


def test_readme_grading_command_works_verbatim_and_isolates_a_hostile_submission(released, tmp_path):
    """From the folder the README assumes, with its relative paths: a solution, a blank notebook and
    a submission that deletes the autograder, starts a process in a new session and copies the
    hidden tests. The others are graded right, the hostile one gets nothing, and nothing is left."""
    command = _readme_grading_command()
    assert command.startswith("python homework/grade.py homework/dist/hw1/autograder/hw1-autograder_*.zip")
    (tmp_path / "homework").mkdir()
    shutil.copy(HOMEWORK / "grade.py", tmp_path / "homework" / "grade.py")
    autograder = released["hw1"]["autograder_zip"]
    (tmp_path / "homework" / "dist" / "hw1" / "autograder").mkdir(parents=True)
    shutil.copy(autograder, tmp_path / "homework" / "dist" / "hw1" / "autograder" / autograder.name)
    folder = tmp_path / "submissions" / "hw1"
    folder.mkdir(parents=True)
    shutil.copy(released["hw1"]["solution"], folder / "b_solution.ipynb")
    shutil.copy(released["hw1"]["student"], folder / "c_blank.ipynb")
    pid_file = tmp_path / "spawned.pid"
    nb = nbformat.read(released["hw1"]["student"], as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(HOSTILE.format(pid_file=str(pid_file))))
    nbformat.write(nb, folder / "a_hostile.ipynb")
    scratch = tmp_path / "grader_tmp"  # the graders' TMPDIR: must be empty afterwards
    scratch.mkdir()
    env = dict(
        os.environ, TMPDIR=str(scratch), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    done = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=2 * TIMEOUT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with open(tmp_path / "hw1-scores.csv", newline="") as f:
        table = {row["submission"]: row for row in csv.DictReader(f)}
    assert set(table) == {"a_hostile.ipynb", "b_solution.ipynb", "c_blank.ipynb"}
    hostile = table["a_hostile.ipynb"]
    assert hostile["status"] == "error" and hostile["score"] == "", hostile
    assert "deleted or changed the autograder" in hostile["reason"]
    assert table["b_solution.ipynb"]["status"] == "graded"
    assert (
        float(table["b_solution.ipynb"]["score"]) == float(table["b_solution.ipynb"]["max_score"]) == 26
    )  # hw1: q1-q9
    assert table["c_blank.ipynb"]["status"] == "graded" and float(table["c_blank.ipynb"]["score"]) == 0
    # The spawned process ran (it wrote its id) and was killed with the grading.
    import psutil

    pid = int(pid_file.read_text())
    try:
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"process {pid} survived grading"
    except psutil.NoSuchProcess:
        pass
    assert list(scratch.iterdir()) == [], "grading left files in its temporary folder"
    assert not list(tmp_path.rglob("stolen")), "the copied tests were left behind"


# ---------------------------------------------------------------- bad input, without running otter


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.ipynb", b"", "invalid JSON"),
        ("binary.ipynb", b"\xff\xfe\x00garbage", "not UTF-8"),
        ("list.ipynb", b"[1, 2, 3]", "no list of 'cells'"),
        ("report.pdf", b"%PDF-1.4", "not a notebook"),
        ("noext", b"{}", "suffix-less"),
        ("fake.zip", b"PK not really", "not a valid zip"),
    ],
)
def test_check_submission_gives_a_reason_for_each_kind_of_bad_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    assert reason in grade.check_submission(path)


def test_check_submission_accepts_notebooks_and_export_zips_and_rejects_empty_zips(tmp_path):
    nb = tmp_path / "hw.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), nb)
    assert grade.check_submission(nb) is None
    good, empty = tmp_path / "export.zip", tmp_path / "empty.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.write(nb, "hw.ipynb")
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "no notebook")
    assert grade.check_submission(good) is None
    assert "exactly one notebook" in grade.check_submission(empty)
    assert "is a folder" in grade.check_submission(tmp_path)


def test_grade_folder_rejects_a_missing_autograder_or_folder(tmp_path):
    with pytest.raises(ValueError, match="autograder must be the zip"):
        grade.grade_folder(tmp_path / "nope.zip", tmp_path)
    fake = tmp_path / "ag.zip"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("otter_config.json", "{}")
    with pytest.raises(ValueError, match="submissions must be a folder"):
        grade.grade_folder(fake, tmp_path / "missing")


def test_scores_csv_orders_questions_naturally(tmp_path):
    rows = [{"submission": "a.ipynb", "status": "graded", "score": 3.0, "max_score": 3.0}]
    rows[0].update(questions={"q10": 1.0, "q2": 1.0, "q1": 1.0}, reason="")
    grade.write_csv(rows, tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().splitlines()[
        0
    ] == "submission,status,score,max_score,q1,q2,q10,reason"


def _fake_otter(outcomes, calls):
    """A stand-in for grade._run_otter: each call takes the next outcome, "kernel" or "graded"."""

    def run(submission, autograder, folder, timeout):
        calls.append(folder)
        copy = folder / "autograder" / "autograder.zip"
        copy.parent.mkdir()
        copy.write_bytes(autograder)
        results = folder / "results" / "results.json"
        if outcomes[len(calls) - 1] == "kernel":
            return (
                "Traceback ...\nRuntimeError: Kernel didn't respond in 60 seconds\n",
                1,
                False,
                results,
                copy,
            )
        results.parent.mkdir()
        results.write_text(json.dumps({"tests": [{"name": "q1", "score": 2, "max_score": 2}]}))
        return "", 0, False, results, copy

    return run


@pytest.mark.parametrize(
    "outcomes, status, tries",
    [(["graded"], "graded", 1), (["kernel", "graded"], "graded", 2), (["kernel", "kernel"], "error", 2)],
)
def test_a_kernel_that_did_not_start_in_time_is_tried_once_more(
    tmp_path, monkeypatch, outcomes, status, tries
):
    """nbclient's 60 s kernel start limit, hit on a loaded machine, says nothing about the submission."""
    autograder = tmp_path / "ag.zip"
    with zipfile.ZipFile(autograder, "w") as archive:
        archive.writestr("tests/q1.py", "test = {}")
    submission = tmp_path / "hw.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), submission)
    calls = []
    monkeypatch.setattr(grade, "_run_otter", _fake_otter(outcomes, calls))
    row = grade.grade_submission(submission, autograder)
    assert (row["status"], len(calls)) == (status, tries)
    assert len(set(calls)) == tries  # each try in a fresh folder
    if status == "graded":
        assert row["score"] == 2.0 and row["questions"] == {"q1": 2.0}
    else:
        assert row["reason"] == "RuntimeError: Kernel didn't respond in 60 seconds"


# ---------------------------------------------------------------- the tests catch wrong answers

# Plausible wrong answers: (assignment, question, function, replacement). Each must fail at least
# one test of its question, though some pass the public tests (that is why hidden tests exist).
MUTANTS = [
    (
        "hw1",
        "q1",
        "confusion_matrix",
        "def f(t, p, k):\n    C = np.zeros((k, k), int)\n    np.add.at(C, (p, t), 1)\n    return C",
    ),
    (
        "hw1",
        "q1",
        "confusion_matrix",
        "def f(t, p, k):\n    C = np.zeros((k, k), int)\n    C[t, p] += 1\n    return C",
    ),
    (
        "hw1",
        "q3",
        "roc_curve",
        "def f(y, s):\n    y, s = np.asarray(y), np.asarray(s)\n"
        "    th = np.concatenate([[np.inf], np.sort(s)[::-1]])  # ties not merged\n"
        "    P = s[None] >= th[:, None]\n"
        "    return (P & (y == 0)).sum(1) / (y == 0).sum(), (P & (y == 1)).sum(1) / (y == 1).sum(), th",
    ),
    (
        "hw1",
        "q4",
        "auc",
        "def f(x, y):\n    return float(np.sum(np.diff(x) * np.asarray(y)[1:]))  # rectangles",
    ),
    (
        "hw1",
        "q5",
        "ssim",
        "def f(x, y, data_range):\n    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5,"
        " use_sample_covariance=True, data_range=data_range)",
    ),
    (
        "hw1",
        "q2",
        "binary_rates",
        "def f(t, p):\n    t, p = np.asarray(t), np.asarray(p)\n"
        "    tp, fp = np.sum((t == 1) & (p == 1)), np.sum((t == 0) & (p == 1))\n"
        "    fn, tn = np.sum((t == 1) & (p == 0)), np.sum((t == 0) & (p == 0))\n"
        "    P, R = (tp / (tp + fp) if tp + fp else 0.0), (tp / (tp + fn) if tp + fn else 0.0)\n"
        "    f1 = 1 / (1 / P + 1 / R) if P and R else 0.0  # the lecture's form: half of F1\n"
        "    return {'sensitivity': R, 'specificity': tn / (tn + fp), 'precision': P, 'f1': f1}",
    ),
    (
        "hw1",
        "q6",
        "average_precision",
        "def f(y, s):\n    return float(np.mean(precision_recall_curve(y, s)[0]))  # unweighted mean",
    ),
    (
        "hw1",
        "q8",
        "box_iou",
        "def f(a, b):\n    w = min(a[2], b[2]) - max(a[0], b[0])\n    h = min(a[3], b[3]) - max(a[1], b[1])\n"
        "    i = w * h  # negative overlaps not clipped\n"
        "    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)",
    ),
    (
        "hw2",
        "q1",
        "Quantize",
        "class f(Quantize):\n    def forward(self, x):\n        n = 2**self.bits - 1\n        return torch.round(x * n) / n",
    ),
    (
        "hw2",
        "q2",
        "learned_discretization",
        "def f(x, gain, low, high, bits):\n    n = 2**bits - 1\n    u = (torch.clamp(gain * x, low, high) - low) / (high - low)\n"
        "    return x + (torch.round(u * n) / n - x).detach()  # straight-through to x: gain, low, high get none",
    ),
    (
        "hw2",
        "q2",
        "learned_discretization",
        "def f(x, gain, low, high, bits):\n    n = 2**bits - 1\n    u = torch.clamp(gain * x, low, high) / high  # low not subtracted\n"
        "    return u + (torch.round(u * n) / n - u).detach()",
    ),
    (
        "hw2",
        "q2",
        "learned_discretization",
        "def f(x, gain, low, high, bits):\n    n = 2**bits - 1\n    u = (torch.clamp(gain * x, low, high) - low) / (high - low)\n"
        "    return torch.round(u * n) / n  # no straight-through: zero gradient",
    ),
    (
        "hw2",
        "q3",
        "central_difference",
        "def f(fn, t, eps=1e-3):\n    g = torch.zeros_like(t)\n    for i in range(t.numel()):\n"
        "        s = torch.zeros_like(t)\n        s.view(-1)[i] = eps\n"
        "        g.view(-1)[i] = (fn(t + s) - fn(t)) / eps  # one-sided\n    return g",
    ),
    (
        "hw2",
        "q3",
        "central_difference",
        "def f(fn, t, eps=1e-3):\n    g = torch.zeros_like(t)\n    for i in range(t.numel()):\n"
        "        s = torch.zeros_like(t)\n        s.view(-1)[i] = 1e-4  # eps ignored\n"
        "        g.view(-1)[i] = (fn(t + s) - fn(t - s)) / 2e-4\n    return g",
    ),
    (
        "hw2",
        "q5",
        "PSFBlur",
        "class f(PSFBlur):\n    def forward(self, x):\n        r = self.psf.shape[-1] // 2\n"
        "        k = self.psf.expand(x.shape[1], 1, *self.psf.shape)\n"
        "        return F.conv2d(x, k, padding=r, groups=x.shape[1])  # zero padding",
    ),
    (
        "hw3",
        "q6",
        "saliency_map",
        "def f(model, image, target):\n    x = image.detach().clone().requires_grad_(True)\n"
        "    (g,) = torch.autograd.grad(model(x[None])[0, target], x)\n    return g.amax(dim=0)  # signed, not |grad|",
    ),
    (
        "hw3",
        "q9",
        "filter_images",
        "def f(w):\n    w = w.detach()\n    return ((w - w.min()) / (w.max() - w.min())).permute(0, 2, 3, 1)  # one scale for the layer",
    ),
    (
        "hw3",
        "q2",
        "nearest_neighbours",
        "def f(q, d, k):\n    return (q @ d.T).argsort(dim=1, descending=True)[:, :k]  # dot product, not distance",
    ),
]


def _run_solution_code(notebook, stop_at=None):
    """Execute the solution notebook's code cells (without otter and the Colab cell) in a namespace."""
    env = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        source = _source(cell)
        if cell.cell_type != "code" or "otter" in source or "grader." in source or "pip install" in source:
            continue
        if stop_at and stop_at in source:
            break
        exec(compile(source, str(notebook), "exec"), env)
    return env


@pytest.mark.parametrize("name", NAMES)
def test_plausible_wrong_answers_fail_their_tests(released, name):
    import matplotlib.pyplot as plt
    from otter.execute import Checker
    from otter.nbmeta_config import NBMetadataConfig

    mutants = [m for m in MUTANTS if m[0] == name]
    # hw2: stop before the bit-depth sweep, which the mutated questions do not need.
    env = _run_solution_code(
        released[name]["solution"], stop_at="BITS = [1, 2, 4, 8]" if name == "hw2" else None
    )
    plt.close("all")

    def passed(question):
        test_file = released[name]["autograder_tests"] / f"{question}.py"
        result = Checker.check(str(test_file), NBMetadataConfig(), global_env=env)
        return [case.passed for case in result.test_case_results]

    for _, question, _function, _ in mutants:
        assert all(passed(question)), f"{name} {question}: the solution must pass"
    for _, question, function, code in mutants:
        original = env[function]
        exec(code, env)
        env[function] = env.pop("f")
        try:
            assert not all(passed(question)), f"{name} {question}: a wrong {function} passed every test"
        finally:
            env[function] = original
