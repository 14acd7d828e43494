"""Every fenced shell command of the READMEs is checked, so that they cannot drift (issue 26, item 7).

Each command line of a ``bash`` block belongs to exactly one of two tables below: ``EXECUTED``
(network-free and cheap: this file runs it, verbatim, in a temporary folder) or ``ELSEWHERE``
(needs the network or minutes: the reason names what checks it). Every block must also pass
``bash -n``. A command added to a README, or changed, fails ``test_every_command_is_checked``
until it is put in a table; a table entry no README shows any more fails too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = {
    "README.md": ROOT / "README.md",
    "homework/README.md": ROOT / "homework" / "README.md",
    "project_template/README.md": ROOT / "deepimaging" / "project_template" / "README.md",
    "benchmarks/README.md": ROOT / "benchmarks" / "README.md",
}
SHELLS = ("bash", "sh", "shell", "console")

# (README, command): run by test_executed_commands_work, in this order, in one temporary folder.
EXECUTED = [
    ("README.md", "python3 -m venv .venv"),
    ("README.md", ". .venv/bin/activate"),
    ("README.md", "deepimaging demo --smoke --out demo-smoke"),
    (
        "README.md",
        "deepimaging study --layer binning --values 1,2,4 --seeds 0 --epochs 1 --n-per-class 20 --out binning --report",
    ),
    ("README.md", 'deepimaging new-project my-project --title "Pixel size and white cells"'),
    ("README.md", "deepimaging run my-project --smoke"),
    ("README.md", "deepimaging report my-project --smoke"),
    # The project template's README, inside the project folder made above (smoke mode is set).
    ("project_template/README.md", "deepimaging run ."),
    ("project_template/README.md", "deepimaging report ."),
]

# (README, command): why this file only parses it, and what checks it instead.
ELSEWHERE = {
    ("README.md", "bash run.sh demo"): "tests/test_readme_first_hour.py: in a fresh venv, then offline",
    ("README.md", "bash run.sh test"): "CI's command (.ci/run)",
    (
        "README.md",
        'DEEPIMAGING_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" bash run.sh demo',
    ): "needs download.pytorch.org; test_readme_first_hour checks how run.sh treats DEEPIMAGING_TORCH",
    ("README.md", "pip install torch --index-url https://download.pytorch.org/whl/cpu"): "needs the network",
    ("README.md", 'pip install -e ".[lab]"'): "needs the network; run.sh demo does the same",
    (
        "README.md",
        "jupyter lab notebooks/",
    ): "a server: test_readme_first_hour starts it and lists the notebooks",
    (
        "README.md",
        "deepimaging study --layer quantize --values 1,2,4,8 --seeds 0,1,2,3,4 --size 64 --out bits64 "
        "--executor slurm --partition gpu --gpus 1 --cpus 4 --mem 8 --time 30 --max-parallel 20",
    ): "needs SLURM: tests/test_executors.py submits these options to a fake sbatch and checks the script",
    (
        "README.md",
        "deepimaging status bits64",
    ): "needs the cluster's folder: tests/test_executors.py runs status",
    ("homework/README.md", "python homework/release.py hw1"): "otter assign: tests/test_homework.py releases",
    ("homework/README.md", "python homework/release.py all"): "otter assign: tests/test_homework.py releases",
    (
        "homework/README.md",
        'python homework/release.py all --pip-spec "deepimaging @ $WHEEL_URL"',
    ): "otter assign; test_release_pip_spec_reaches_the_colab_cell checks the spec's way",
    (
        "homework/README.md",
        "python homework/grade.py homework/dist/hw1/autograder/hw1-autograder_*.zip submissions/hw1 -o hw1-scores.csv",
    ): "tests/test_homework.py runs it verbatim (test_readme_grading_command_works_verbatim...)",
    (
        "homework/README.md",
        "DEEPIMAGING_SMOKE=1 python -m pytest tests/test_homework.py",
    ): "the homework tests themselves; CI runs them",
}


def _commands(readme: str):
    """(command, block text) for every command line of the shell blocks; comments stripped."""
    text = READMES[readme].read_text(encoding="utf-8")
    found = []
    for language, block in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if language not in SHELLS:
            continue
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                found.append((command, block))
    return found


def test_every_shell_block_parses():
    for readme in READMES:
        for command, block in _commands(readme):
            done = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
            assert done.returncode == 0, f"{readme}: {command!r} does not parse: {done.stderr}"


def test_every_command_is_checked():
    shown = {(readme, command) for readme in READMES for command, _ in _commands(readme)}
    checked = set(EXECUTED) | set(ELSEWHERE)
    assert shown - checked == set(), "commands in a README that no test checks: add them to a table"
    assert checked - shown == set(), "table entries no README shows any more: remove them"
    assert not set(EXECUTED) & set(ELSEWHERE)


def test_readmes_hold_no_placeholders():
    for readme, path in READMES.items():
        text = path.read_text(encoding="utf-8")
        for placeholder in ("<your-org>", "<you>", "your-org"):
            assert placeholder not in text, f"{readme} still says {placeholder}"


@pytest.mark.slow
def test_executed_commands_work(tmp_path):
    """Run the EXECUTED commands verbatim, in order, with the tests' Python first on PATH."""
    env = dict(os.environ, DEEPIMAGING_SMOKE="1", MPLBACKEND="Agg")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for readme, command in EXECUTED:
        cwd = tmp_path / "my-project" if readme == "project_template/README.md" else tmp_path
        if command == ". .venv/bin/activate":
            # Sourcing works when a later command sees the venv's Python.
            script = f'{command} && test "$(command -v python)" = "$PWD/.venv/bin/python"'
        else:
            script = command
        done = subprocess.run(
            ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, (
            f"{readme}: {command!r} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
        assert "Traceback" not in done.stderr, f"{readme}: {command!r}:\n{done.stderr[-3000:]}"
    # What the commands say they write.
    assert (tmp_path / "demo-smoke" / "index.html").is_file()
    assert (tmp_path / "binning" / "index.html").is_file()
    project = tmp_path / "my-project"
    for name in ("project.toml", "project.ipynb", "proposal.md", "paper/main.tex"):
        assert (project / name).is_file(), name
    assert (project / "report" / "index.html").is_file()
    assert (project / "paper" / "generated" / "results_table.tex").is_file()
