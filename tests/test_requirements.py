"""A missing requirement skips locally and fails under CI, with a message naming what is missing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _requirements import import_or_missing, in_ci, missing

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "value, expected",
    [("true", True), ("1", True), ("yes", True), ("", False), ("0", False), ("false", False), (None, False)],
)
def test_ci_is_set_by_any_value_but_empty_zero_or_false(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_a_missing_requirement_skips_without_ci_and_fails_with_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no such data"):
        missing("no such data")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no such data.*CI is set"):
        missing("no such data")
    with pytest.raises(pytest.fail.Exception, match="cannot import no_such_module_xyz.*install it"):
        import_or_missing("no_such_module_xyz", "install it")
    assert import_or_missing("json", "never needed").dumps([1]) == "[1]"


def run_pytest(test_id, **env):
    """Run one test of this suite in a fresh process with ``env`` added; (return code, output)."""
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(env, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "pytest", test_id, "-q", "-p", "no:cacheprovider", "-rsf"]
    done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_a_test_needing_bccd_fails_under_ci_naming_the_missing_data(tmp_path):
    test_id = "tests/test_data_loaders.py::test_bccd_photos_have_boxes_inside_the_640x480_frame"
    absent = str(tmp_path / "BCCD")
    code, output = run_pytest(test_id, DEEPIMAGING_BCCD=absent, CI="true")
    assert code == 1 and "1 error" in output, output
    assert f"BCCD data not found at {absent}" in output


def test_a_browser_test_fails_under_ci_when_chromium_is_missing(tmp_path):
    test_id = (
        "tests/browser/test_browser_harness.py::test_harness_passes_a_working_explorer_moved_by_keyboard"
    )
    absent = str(tmp_path / "chromium")
    code, output = run_pytest(test_id, DEEPIMAGING_CHROMIUM=absent, CI="true")
    assert code == 1 and f"chromium not found at {absent}" in output, output
