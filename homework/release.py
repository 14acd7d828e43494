"""Release homework: solution notebooks in, student notebooks and autograder zips out.

Each assignment is one otter-grader *master notebook* (``homework/hwN_*/hwN.ipynb``): the
questions, the solutions between ``# BEGIN SOLUTION`` / ``# END SOLUTION`` and the tests,
public and ``# HIDDEN``. This script runs ``otter assign`` on it and writes::

    homework/dist/hwN/student/hwN.ipynb        the notebook students get (no solutions)
    homework/dist/hwN/student/tests/qK.py      its public tests, for grader.check("qK")
    homework/dist/hwN-student.zip              the two above in one file (LMS, Colab)
    homework/dist/hwN/autograder/hwN.ipynb     the solution notebook
    homework/dist/hwN/autograder/tests/qK.py   all tests, hidden ones included
    homework/dist/hwN/autograder/hwN-autograder_<time>.zip
                                               the autograder: Gradescope upload, `otter run`, grade.py

Usage::

    python homework/release.py all                  # every assignment
    python homework/release.py hw2                  # one
    python homework/release.py all --pip-spec "deepimaging @ git+https://github.com/<you>/deepimaging"

``--pip-spec`` is how Colab and Gradescope install the course package: it replaces the
requirement in each notebook's Colab install cell and is added to the autograder's
requirements. ``otter assign`` also runs the solution notebook against every test (skip
with ``--no-run-tests``) and refuses to release when one fails.

The release is written to a temporary folder and moved into place only when it succeeded, so a
failed release never leaves a half-written ``dist/hwN``.

otter-grader is a dev/instructor tool, not a dependency of the ``deepimaging`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HOMEWORK = Path(__file__).resolve().parent
DIST = HOMEWORK / "dist"
# The line of the Colab install cell that names the course package (see the masters).
PIP_LINE = 'DEEPIMAGING = "deepimaging"'


def masters(root: Path = HOMEWORK) -> dict[str, Path]:
    """Master notebooks by assignment name: ``{"hw1": .../hw1_.../hw1.ipynb, ...}``."""
    found = {}
    for path in sorted(root.glob("hw*/hw*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts:
            found[path.stem] = path
    return found


def release(
    name: str,
    out: str | os.PathLike = DIST,
    *,
    pip_spec: str | None = None,
    run_tests: bool = True,
    timeout: float = 900,
) -> dict[str, Path]:
    """Release one assignment with ``otter assign``; return the paths of what it wrote.

    Parameters
    ----------
    name : str
        Assignment name, e.g. ``"hw1"`` (the stem of its master notebook).
    out : path
        Folder that receives ``<name>/student``, ``<name>/autograder`` and ``<name>-student.zip``;
        an existing ``<name>`` release there is replaced.
    pip_spec : str, optional
        pip requirement of the course package for Colab and Gradescope.
    run_tests : bool
        Let ``otter assign`` run the solution notebook against all tests first.
    timeout : float
        Seconds before ``otter assign`` is stopped.

    Returns
    -------
    dict
        ``student`` (notebook), ``student_tests`` (folder), ``student_zip``, ``solution``
        (notebook), ``autograder_tests`` (folder), ``autograder_zip``.
    """
    found = masters()
    if name not in found:
        raise ValueError(f"unknown assignment {name!r}; the masters here are {sorted(found)}")
    master = found[name]
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"release-{name}-", dir=out) as tmp:
        tmp = Path(tmp)
        # Stage a copy: the master refers to ../requirements.txt, and --pip-spec edits the copy only.
        staged_dir = tmp / "source" / master.parent.name
        shutil.copytree(master.parent, staged_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        requirements = (HOMEWORK / "requirements.txt").read_text()
        if pip_spec:
            requirements += f"{pip_spec}\n"
            _set_pip_spec(staged_dir / master.name, pip_spec)
        (tmp / "source" / "requirements.txt").write_text(requirements)

        result = tmp / name
        command = [sys.executable, "-m", "otter", "assign", "--no-pdfs"]
        if not run_tests:
            command.append("--no-run-tests")
        command += [str(staged_dir / master.name), str(result)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"otter assign {name} did not finish within {timeout:g} s") from None
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
            raise RuntimeError(f"otter assign {name} failed (exit {done.returncode}):\n{tail}")

        zips = sorted((result / "autograder").glob(f"{name}-autograder_*.zip"))
        if len(zips) != 1:
            raise RuntimeError(f"otter assign {name} wrote {len(zips)} autograder zips; expected 1")
        student_zip = tmp / f"{name}-student.zip"
        with zipfile.ZipFile(student_zip, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted((result / "student").rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(result / "student"))

        # Everything succeeded: replace the previous release.
        shutil.rmtree(out / name, ignore_errors=True)
        shutil.move(str(result), out / name)
        shutil.move(str(student_zip), out / student_zip.name)

    final = out / name
    return {
        "student": final / "student" / master.name,
        "student_tests": final / "student" / "tests",
        "student_zip": out / f"{name}-student.zip",
        "solution": final / "autograder" / master.name,
        "autograder_tests": final / "autograder" / "tests",
        "autograder_zip": final / "autograder" / zips[0].name,
    }


def _set_pip_spec(notebook: Path, pip_spec: str) -> None:
    nb = json.loads(notebook.read_text())
    hits = 0
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and PIP_LINE in source:
            cell["source"] = source.replace(PIP_LINE, f"DEEPIMAGING = {json.dumps(pip_spec)}")
            hits += 1
    if hits != 1:
        raise ValueError(f"{notebook.name}: expected one Colab install cell with {PIP_LINE!r}; found {hits}")
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="+", help="assignment names (hw1 hw2 ...) or 'all'")
    parser.add_argument("--out", default=str(DIST), help="output folder (default: homework/dist)")
    parser.add_argument("--pip-spec", help="pip requirement of deepimaging for Colab and Gradescope")
    parser.add_argument(
        "--no-run-tests", action="store_true", help="do not run the solutions against the tests"
    )
    args = parser.parse_args(argv)
    names = sorted(masters()) if args.assignments == ["all"] else args.assignments
    if not args.pip_spec:
        print(
            "note: no --pip-spec given; Colab installs the requirement 'deepimaging' and the Gradescope "
            "autograder installs no deepimaging (fine for `otter run` / grade.py on this machine)."
        )
    for name in names:
        paths = release(name, args.out, pip_spec=args.pip_spec, run_tests=not args.no_run_tests)
        print(f"{name}: student {paths['student'].parent}  autograder {paths['autograder_zip']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
