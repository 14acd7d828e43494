"""Grade a folder of homework submissions into a CSV of scores, without Docker.

Each submission is graded by ``otter run`` (otter-grader's non-containerized grader) in its
own process, with a time limit, in parallel. A submission that cannot be graded is rejected
or marked with a reason in its row; it never stops the grading of the others::

    python homework/grade.py homework/dist/hw1/autograder/hw1-autograder_*.zip submissions/ -o hw1.csv

Input: every file directly inside the folder is one submission, either a notebook (``.ipynb``)
or the zip that the notebook's export cell writes. Output: one CSV row per submission with

``submission``  file name
``status``      ``graded``; ``rejected`` (not gradable: not a notebook, corrupt JSON, ...);
                ``timeout`` (ran past ``--timeout`` seconds, e.g. an endless loop); ``error``
                (otter could not grade it, e.g. a notebook of another assignment)
``score``, ``max_score``   auto-graded points (manual questions are graded by hand)
``q1``, ``q2``, ...        points per auto-graded question
``reason``      why a submission was not graded, in words

and the full ``otter run`` log of each submission in ``<csv name>_logs/``.

Grading runs the submission's code on this machine, in the current Python environment (the
course environment plus otter-grader): run it as a user that can afford that, or use the
Gradescope autograder, which runs each submission in its own container.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

STATUSES = ("graded", "rejected", "timeout", "error")


def check_submission(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be graded, in words, or ``None`` when it looks like a notebook submission."""
    path = Path(path)
    if path.is_dir():
        return "is a folder; expected a .ipynb notebook or the .zip written by the export cell"
    suffix = path.suffix.lower()
    if suffix == ".zip":
        if not zipfile.is_zipfile(path):
            return "is not a valid zip file"
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".ipynb") and "/" not in n.strip("/")]
            if len(names) != 1:
                return f"the zip must hold exactly one notebook at its top level; it holds {len(names)}"
            try:
                text = archive.read(names[0]).decode("utf-8")
            except UnicodeDecodeError:
                return f"{names[0]} in the zip is not UTF-8 text"
        return _check_notebook_text(text)
    if suffix != ".ipynb":
        return f"not a notebook: expected a .ipynb file (or the export .zip), got a {suffix or 'suffix-less'} file"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "not a notebook: the file is not UTF-8 text"
    return _check_notebook_text(text)


def _check_notebook_text(text: str) -> str | None:
    try:
        content = json.loads(text)
    except json.JSONDecodeError as err:
        return f"corrupt notebook: invalid JSON at line {err.lineno}, column {err.colno} ({err.msg})"
    if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
        return "not a notebook: the JSON has no list of 'cells'"
    try:
        nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises several types for malformed notebooks
        return f"not a readable notebook: {type(err).__name__}: {err}"
    return None


def grade_submission(
    submission: str | os.PathLike,
    autograder: str | os.PathLike,
    *,
    timeout: float = 600,
    log_dir: str | os.PathLike | None = None,
) -> dict:
    """Grade one submission with ``otter run``; never raises for a bad submission.

    Returns
    -------
    dict
        ``submission``, ``status`` (one of ``STATUSES``), ``score``, ``max_score``,
        ``questions`` ({name: points}), ``reason``, ``seconds``.
    """
    submission = Path(submission)
    row = {"submission": submission.name, "status": "rejected", "score": None, "max_score": None}
    row.update(questions={}, reason="", seconds=0.0)
    reason = check_submission(submission)
    if reason:
        row["reason"] = reason
        return row
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        tmp = Path(tmp)
        copy = tmp / "submission" / submission.name
        copy.parent.mkdir()
        shutil.copy(submission, copy)
        if copy.suffix.lower() == ".ipynb":
            _use_python3_kernel(copy)
        results = tmp / "results"
        results.mkdir()
        command = [sys.executable, "-m", "otter", "run", "--no-logo", "-a", str(autograder)]
        command += ["-o", str(results), str(copy)]
        output, code, timed_out = _run_with_timeout(command, timeout, cwd=tmp)
        row["seconds"] = round(time.monotonic() - start, 1)
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            (Path(log_dir) / f"{submission.name}.log").write_text(output)
        if timed_out:
            row.update(status="timeout", reason=f"grading stopped after the {timeout:g} s time limit")
            return row
        results_file = results / "results.json"
        if code != 0 or not results_file.is_file():
            row.update(status="error", reason=_last_error(output) or f"otter run exited with {code}")
            return row
        tests = json.loads(results_file.read_text()).get("tests", [])
    for test in tests:
        if "score" in test and "max_score" in test:  # skips the score-less "Public Tests" summary
            row["questions"][test["name"]] = float(test["score"])
            row["max_score"] = (row["max_score"] or 0.0) + float(test["max_score"])
    row.update(status="graded", score=sum(row["questions"].values()))
    return row


def grade_folder(
    autograder: str | os.PathLike,
    folder: str | os.PathLike,
    csv_path: str | os.PathLike | None = None,
    *,
    timeout: float = 600,
    jobs: int | None = None,
) -> list[dict]:
    """Grade every file in ``folder`` (in parallel) and write the CSV; return the rows, by name."""
    autograder, folder = Path(autograder), Path(folder)
    if not zipfile.is_zipfile(autograder):
        raise ValueError(f"autograder must be the zip written by release.py / otter assign; got {autograder}")
    if not folder.is_dir():
        raise ValueError(f"submissions must be a folder; got {folder}")
    submissions = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    log_dir = None if csv_path is None else Path(csv_path).with_name(Path(csv_path).stem + "_logs")
    jobs = jobs or max(1, min(len(submissions), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # threads only wait on otter processes
        rows = list(
            pool.map(lambda p: grade_submission(p, autograder, timeout=timeout, log_dir=log_dir), submissions)
        )
    if csv_path is not None:
        write_csv(rows, csv_path)
    return rows


def write_csv(rows: list[dict], path: str | os.PathLike) -> None:
    """One row per submission: name, status, total, points per question (natural order), reason."""
    questions = sorted({q for row in rows for q in row["questions"]}, key=_natural)
    header = ["submission", "status", "score", "max_score", *questions, "reason"]
    tmp = Path(path).with_suffix(".csv.partial")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            points = [row["questions"].get(q, "") for q in questions]
            score = [_blank(row["score"]), _blank(row["max_score"])]
            writer.writerow([row["submission"], row["status"], *score, *points, row["reason"]])
    os.replace(tmp, path)  # never leave a half-written CSV


def _blank(value):
    return "" if value is None else value


def _natural(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _use_python3_kernel(notebook: Path) -> None:
    # otter run starts the kernel the notebook names; a student's Colab or conda kernel name does
    # not exist here, so grade every notebook with the environment's "python3" kernel.
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    nb.setdefault("metadata", {})["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.write_text(json.dumps(nb), encoding="utf-8")


def _run_with_timeout(command, timeout, cwd):
    """Run ``command``; on timeout kill it and every process it started (the kernel included)."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        return output, process.returncode, False
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        output, _ = process.communicate()
        return output, process.returncode, True


def _kill_tree(process) -> None:
    # The Jupyter kernel runs in a session of its own, so killing otter's process group misses it:
    # collect the whole tree first, then kill each process by its id.
    try:
        import psutil

        children = psutil.Process(process.pid).children(recursive=True)
    except Exception:
        children = []
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for child in children:
        try:
            child.kill()
        except Exception:
            pass


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception)\b", line):
            return line[:500]
    return lines[-1][:500] if lines else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("autograder", help="the autograder zip from release.py")
    parser.add_argument("submissions", help="folder with one file per submission")
    parser.add_argument("-o", "--output", default="scores.csv", help="CSV to write (default: scores.csv)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per submission (default: 600)")
    parser.add_argument(
        "--jobs", type=int, default=None, help="submissions graded at once (default: CPU count)"
    )
    args = parser.parse_args(argv)
    rows = grade_folder(args.autograder, args.submissions, args.output, timeout=args.timeout, jobs=args.jobs)
    for row in rows:
        score = f"{row['score']:g}/{row['max_score']:g}" if row["status"] == "graded" else row["reason"]
        print(f"{row['submission']}: {row['status']} {score}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
