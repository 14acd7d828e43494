"""Put back, one at a time, the bugs that issue 25 found no test for, and show which tests now fail.

    python benchmarks/issue_mutants.py            # every mutant; exits 1 if any survives
    python benchmarks/issue_mutants.py auc ssim   # only these

Each mutant is one textual edit of one file, applied to a scratch copy of the working tree (the
repository itself is never touched). The copy's tests then run against the copy's package, and
the mutant counts as *caught* when at least one of them fails; the failing tests are listed by
name. An edit whose "before" text is no longer found exactly once stops the script with an error
instead of passing silently: the code moved, and the mutant must be rewritten to match it.

Takes about two minutes on 2 cores (the study's mutants train tiny networks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant(
        "auc",
        "auc returns abs(area), whatever the sign of the curve",
        "deepimaging/metrics/curves.py",
        "return float(-area) if np.all(dx <= 0) else float(area)",
        "return float(abs(area))",
        ("tests/test_oracles.py", "tests/test_metrics.py"),
    ),
    Mutant(
        "neighbours-chunk",
        "nearest_neighbors(exclude_self=True) ignores the chunk's offset",
        "deepimaging/interpret/neighbors.py",
        "own[start : start + chunk_size]",
        "own[: len(a)]",
        ("tests/test_oracles.py", "tests/test_interpret_features.py"),
    ),
    Mutant(
        "ssim-c1",
        "SSIM's c1 = k1 L instead of (k1 L)^2",
        "deepimaging/metrics/image.py",
        "c1 = (k1 * data_range) ** 2",
        "c1 = k1 * data_range",
        ("tests/test_oracles.py", "tests/test_metrics.py"),
    ),
    Mutant(
        "quantize-ties",
        "quantization rounds ties up (floor(v + 1/2)) instead of to the even level",
        "deepimaging/physics/quantization.py",
        "rounded = torch.round(values * levels) / levels",
        "rounded = torch.floor(values * levels + 0.5) / levels",
        ("tests/test_quantization_oracle.py", "tests/test_physics.py"),
    ),
    Mutant(
        "point-not-atomic",
        "point files written in place instead of a temporary file and a rename",
        "deepimaging/study/folder.py",
        'write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\\n")',
        'Path(path).write_text(json.dumps(data, indent=1, allow_nan=False) + "\\n", encoding="utf-8")',
        ("tests/test_study_oracles.py",),
    ),
    Mutant(
        "resume-other-point",
        "a resume accepts a point file that holds another point's record",
        "deepimaging/study/folder.py",
        'and (record["sweep"], float(record["value"]), record["seed"]) == (key[0], float(key[1]), key[2])\n',
        "",
        ("tests/test_study_oracles.py",),
    ),
    Mutant(
        "auc-from-labels",
        "a study's macro AUC computed from the hard labels instead of the probabilities",
        "deepimaging/study/point.py",
        'metrics.roc_auc_ovr(labels, probabilities.double().numpy(), average="macro")',
        'metrics.roc_auc_ovr(labels, np.eye(k)[predicted], average="macro")',
        ("tests/test_study_oracles.py",),
    ),
]


def copy_tree(target: Path) -> None:
    """The tracked and not-ignored files of the working tree, as they are now."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, names):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            (target / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            (target / os.fsdecode(name)).write_bytes(source.read_bytes())


def apply(mutant: Mutant, root: Path) -> str:
    """Edit the copy; return the file's original text so that it can be put back."""
    path = root / mutant.path
    text = path.read_text(encoding="utf-8")
    found = text.count(mutant.before)
    if found != 1:
        raise SystemExit(
            f"{mutant.name}: expected the text to change once in {mutant.path}, found it {found} times"
        )
    path.write_text(text.replace(mutant.before, mutant.after), encoding="utf-8")
    return text


def failing_tests(root: Path, tests) -> tuple[list[str], str]:
    """Run the tests in the copy (its own package first on the path); the node ids that failed."""
    env = dict(os.environ, PYTHONPATH=str(root), DEEPIMAGING_SMOKE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-rf", "--no-header"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    failed = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("FAILED ")]
    return failed, run.stdout[-2000:] + run.stderr[-2000:]


def main(names) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    unknown = set(names) - {m.name for m in MUTANTS}
    if unknown:
        raise SystemExit(f"unknown mutant(s) {sorted(unknown)}; expected some of {[m.name for m in MUTANTS]}")
    survivors = []
    with tempfile.TemporaryDirectory(prefix="deepimaging-issue-mutants-") as scratch:
        root = Path(scratch)
        copy_tree(root)
        # The tests must import the copy's package, not the installed one.
        check = subprocess.run(
            [sys.executable, "-c", "import deepimaging; print(deepimaging.__file__)"],
            cwd=root,
            env=dict(os.environ, PYTHONPATH=str(root)),
            capture_output=True,
            text=True,
            check=True,
        )
        if not check.stdout.strip().startswith(str(root)):
            raise SystemExit(f"the copy's tests would import {check.stdout.strip()}, not the copy")
        for mutant in chosen:
            original = apply(mutant, root)
            try:
                failed, tail = failing_tests(root, mutant.tests)
            finally:
                (root / mutant.path).write_text(original, encoding="utf-8")
            if failed:
                print(f"caught   {mutant.name}: {mutant.what}; {len(failed)} failing test(s):")
                for node in failed:
                    print(f"           {node}")
            else:
                survivors.append(mutant.name)
                print(
                    f"SURVIVED {mutant.name}: {mutant.what}; no test of {', '.join(mutant.tests)} failed\n{tail}"
                )
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutants caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
