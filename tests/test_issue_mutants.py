"""benchmarks/issue_mutants.py stays runnable: each listed bug still applies to the code as it is.

The script itself runs the tests against each bug (two minutes, too slow for CI); this checks in
milliseconds that every edit still finds its text exactly once and names test files that exist,
so a refactoring that moves the code breaks this test instead of silently retiring a mutant.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("issue_mutants", ROOT / "benchmarks" / "issue_mutants.py")
issue_mutants = importlib.util.module_from_spec(spec)
sys.modules["issue_mutants"] = issue_mutants  # dataclasses look their module up there
spec.loader.exec_module(issue_mutants)


@pytest.mark.parametrize("mutant", issue_mutants.MUTANTS, ids=lambda m: m.name)
def test_each_listed_bug_changes_its_file_exactly_once_and_names_existing_tests(mutant, tmp_path):
    assert (ROOT / mutant.path).read_text(encoding="utf-8").count(mutant.before) == 1
    assert mutant.before != mutant.after
    for test_file in mutant.tests:
        assert (ROOT / test_file).is_file(), test_file
    # apply() edits the copy and hands back the original text.
    copy = tmp_path / mutant.path
    copy.parent.mkdir(parents=True)
    original = (ROOT / mutant.path).read_text(encoding="utf-8")
    copy.write_text(original, encoding="utf-8")
    assert issue_mutants.apply(mutant, tmp_path) == original
    assert mutant.after in copy.read_text(encoding="utf-8")
    compile(copy.read_text(encoding="utf-8"), str(copy), "exec")  # the mutant is still Python


def test_the_issue_lists_seven_bugs_with_distinct_names():
    names = [m.name for m in issue_mutants.MUTANTS]
    assert len(names) == len(set(names)) == 7
