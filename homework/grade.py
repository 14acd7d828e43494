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

Each submission is graded in a folder of its own: its own read-only copy of the autograder, a
temporary working directory (also its ``TMPDIR``, where otter unpacks the tests), and its own
process session. Afterwards every process it started is killed, those that left the session
included, and the folder is deleted, timeouts included. A submission that deletes or changes
its copy of the autograder is marked ``error`` and gets no points. All paths are resolved
before grading starts, so relative paths work from any folder.

This is damage control, not a sandbox: grading runs the submission's code on this machine, as
you, in the current Python environment (the course environment plus otter-grader). Run it as a
user that can afford that, or use the Gradescope autograder, which runs each submission in its
own container.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import psutil  # comes with ipykernel; finds the processes a submission started

# Every process of one grading carries this variable in its environment, set to a fresh token:
# a process that leaves otter's session (setsid, a double fork) still inherits it.
TOKEN_VARIABLE = "DEEPIMAGING_GRADING_TOKEN"

STATUSES = ("graded", "rejected", "timeout", "error")

# nbclient's error when the notebook's kernel is not ready within its fixed 60 s (otter gives no way to
# raise that limit). It happens on a loaded grading machine and says nothing about the submission, so
# such a grading is tried once more.
KERNEL_DID_NOT_START = "Kernel didn't respond"


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
    autograder: str | os.PathLike | bytes,
    *,
    timeout: float = 600,
    log_dir: str | os.PathLike | None = None,
) -> dict:
    """Grade one submission with ``otter run`` in a folder of its own; never raises for a bad submission.

    A grading whose notebook kernel did not start in time (:data:`KERNEL_DID_NOT_START`, a loaded
    machine) is run once more before it counts as an error.

    Parameters
    ----------
    submission : str or Path
        The ``.ipynb`` or export ``.zip``.
    autograder : str, Path or bytes
        The autograder zip, or its content (as :func:`grade_folder` passes it, read once, so
        that a submission deleting the file cannot stop the gradings after it).
    timeout : float
        Seconds before grading is stopped and every process it started is killed.
    log_dir : str or Path, optional
        Folder for ``<submission name>.log``, otter's full output.

    Returns
    -------
    dict
        ``submission``, ``status`` (one of ``STATUSES``), ``score``, ``max_score``,
        ``questions`` ({name: points}), ``reason``, ``seconds``.
    """
    submission = Path(submission).resolve()  # before anything runs in another folder
    if not isinstance(autograder, bytes):
        autograder = Path(autograder).resolve().read_bytes()
    log_dir = None if log_dir is None else Path(log_dir).resolve()
    row = {"submission": submission.name, "status": "rejected", "score": None, "max_score": None}
    row.update(questions={}, reason="", seconds=0.0)
    reason = check_submission(submission)
    if reason:
        row["reason"] = reason
        return row
    start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="grade-"))
    try:
        for attempt in range(2):
            folder = tmp / f"attempt{attempt}"
            folder.mkdir()
            output, code, timed_out, results_file, autograder_copy = _run_otter(
                submission, autograder, folder, timeout
            )
            if timed_out or code == 0 or KERNEL_DID_NOT_START not in output:
                break
        row["seconds"] = round(time.monotonic() - start, 1)
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / f"{submission.name}.log").write_text(output)
        if timed_out:
            row.update(status="timeout", reason=f"grading stopped after the {timeout:g} s time limit")
            return row
        if not autograder_copy.is_file() or autograder_copy.read_bytes() != autograder:
            row.update(status="error", reason="the submission deleted or changed the autograder: not graded")
            return row
        if code != 0 or not results_file.is_file():
            row.update(status="error", reason=_last_error(output) or f"otter run exited with {code}")
            return row
        tests = json.loads(results_file.read_text()).get("tests", [])
    finally:
        _remove_tree(tmp)
    for test in tests:
        if "score" in test and "max_score" in test:  # skips the score-less "Public Tests" summary
            row["questions"][test["name"]] = float(test["score"])
            row["max_score"] = (row["max_score"] or 0.0) + float(test["max_score"])
    missing = sorted(set(_question_names(autograder)) - set(row["questions"]), key=_natural)
    if missing:  # otter only grades the test files it finds: the submission removed some
        row.update(questions={}, max_score=None, status="error")
        row["reason"] = f"the results lack the tests of {', '.join(missing)} (removed by the submission?)"
        return row
    row.update(status="graded", score=sum(row["questions"].values()))
    return row


def _question_names(autograder: bytes) -> list[str]:
    """The auto-graded questions of an autograder zip: the stems of its ``tests/*.py``."""
    with zipfile.ZipFile(io.BytesIO(autograder)) as archive:
        names = archive.namelist()
    return [Path(n).stem for n in names if n.startswith("tests/") and n.endswith(".py") and n.count("/") == 1]


def _run_otter(submission: Path, autograder: bytes, tmp: Path, timeout: float):
    """Run ``otter run`` on a copy of ``submission`` inside ``tmp``; kill all it started afterwards.

    Layout of ``tmp``: ``autograder/`` (a read-only copy of the zip, in a read-only folder),
    ``submission/``, ``results/``, ``work/`` (the working directory) and ``tmp/`` (``TMPDIR``:
    otter unpacks the tests there, so they go when ``tmp`` goes, even after a timeout).

    Returns
    -------
    tuple
        (output, exit code, timed out, path of results.json, path of the autograder copy)
    """
    copy = tmp / "submission" / submission.name
    copy.parent.mkdir()
    shutil.copy(submission, copy)
    if copy.suffix.lower() == ".ipynb":
        _use_python3_kernel(copy)
    autograder_copy = tmp / "autograder" / "autograder.zip"
    autograder_copy.parent.mkdir()
    autograder_copy.write_bytes(autograder)
    autograder_copy.chmod(stat.S_IRUSR | stat.S_IRGRP)
    autograder_copy.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)  # no file can be added or removed
    for folder in ("results", "work", "tmp"):
        (tmp / folder).mkdir()
    env = dict(os.environ, TMPDIR=str(tmp / "tmp"), TEMP=str(tmp / "tmp"), TMP=str(tmp / "tmp"))
    env[TOKEN_VARIABLE] = uuid.uuid4().hex
    command = [sys.executable, "-m", "otter", "run", "--no-logo", "-a", str(autograder_copy)]
    command += ["-o", str(tmp / "results"), str(copy)]
    output, code, timed_out = _run_with_timeout(command, timeout, cwd=tmp / "work", env=env)
    return output, code, timed_out, tmp / "results" / "results.json", autograder_copy


def _remove_tree(path: Path) -> None:
    """Delete ``path`` even where it (or the submission) made folders read-only."""

    def writable_again(function, failed, _exc_info):
        for folder in (Path(failed).parent, Path(failed)):
            try:
                folder.chmod(folder.stat().st_mode | stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
            except OSError:
                pass
        function(failed)

    if path.exists():
        shutil.rmtree(path, onerror=writable_again)


def grade_folder(
    autograder: str | os.PathLike,
    folder: str | os.PathLike,
    csv_path: str | os.PathLike | None = None,
    *,
    timeout: float = 600,
    jobs: int | None = None,
) -> list[dict]:
    """Grade every file in ``folder`` (in parallel) and write the CSV; return the rows, by name."""
    # Resolved here, before any grading runs in a folder of its own.
    autograder, folder = Path(autograder).resolve(), Path(folder).resolve()
    csv_path = None if csv_path is None else Path(csv_path).resolve()
    if not zipfile.is_zipfile(autograder):
        raise ValueError(f"autograder must be the zip written by release.py / otter assign; got {autograder}")
    if not folder.is_dir():
        raise ValueError(f"submissions must be a folder; got {folder}")
    submissions = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    log_dir = None if csv_path is None else csv_path.with_name(csv_path.stem + "_logs")
    jobs = jobs or max(1, min(len(submissions), os.cpu_count() or 1))
    content = autograder.read_bytes()  # read once: a submission that deletes the file stops nothing
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # threads only wait on otter processes
        rows = list(
            pool.map(lambda p: grade_submission(p, content, timeout=timeout, log_dir=log_dir), submissions)
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


def _run_with_timeout(command, timeout, cwd, env):
    """Run ``command`` in a session of its own; afterwards (finished or timed out) kill every
    process it started: its session, its descendants, and any process carrying its token.

    The output goes to a file, not a pipe: a process the submission leaves running would hold a
    pipe open, and reading it to its end would then wait for that process.
    """
    log = Path(cwd).parent / "otter.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        process.wait(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_all(process, env[TOKEN_VARIABLE])
    process.wait()
    return log.read_text(encoding="utf-8", errors="replace"), process.returncode, timed_out


def _kill_all(process, token: str, rounds: int = 5) -> None:
    # The Jupyter kernel runs in a session of its own, and a submission can start more sessions
    # (setsid, double forks), so killing otter's process group is not enough: kill the tree and
    # every process whose environment holds this grading's token, until none is left.
    for _ in range(rounds):
        victims = _carrying(token)
        if process.poll() is None:  # its id is still its own (not reaped, so not reused)
            victims |= _descendants(process.pid)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        victims = {p for p in victims if p.pid != os.getpid()}
        if not victims:
            return
        for victim in victims:
            try:
                victim.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(list(victims), timeout=5)


def _descendants(pid: int) -> set:
    try:
        return set(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return set()


def _carrying(token: str) -> set:
    found = set()
    for candidate in psutil.process_iter():
        try:
            if (
                candidate.environ().get(TOKEN_VARIABLE) == token
                and candidate.status() != psutil.STATUS_ZOMBIE
            ):
                found.add(candidate)
        except psutil.Error:  # gone, or another user's process
            pass
    return found


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
