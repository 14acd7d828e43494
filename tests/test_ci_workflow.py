"""The GitHub Actions workflow, checked here since it cannot run here.

Two checks: the workflow is valid against the GitHub Actions workflow schema (check-jsonschema's
vendored copy of SchemaStore's schema, no network), and it says what the project needs: the
test command on every push and pull request, the site built by ``bash run.sh docs``, and the
site published to GitHub Pages from main only, after the tests pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
ON_MAIN = "github.event_name == 'push' && github.ref == 'refs/heads/main'"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _uses(job: dict, action: str) -> list[dict]:
    return [step for step in job.get("steps", []) if step.get("uses", "").split("@")[0] == action]


def _check_jsonschema() -> list[str]:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(exe).exists():
        pytest.skip("check-jsonschema is not installed (the dev extra installs it)")
    return [exe, "--builtin-schema", "vendor.github-workflows"]


def test_workflow_is_valid_against_the_github_actions_schema():
    done = subprocess.run([*_check_jsonschema(), str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    # `runs-on` missing and a step with neither `run` nor `uses`: both invalid in the schema.
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - name: nothing\n", encoding="utf-8")
    done = subprocess.run([*_check_jsonschema(), str(broken)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0


def test_every_push_and_pull_request_runs_the_project_test_command(workflow):
    triggers = _triggers(workflow)
    assert "push" in triggers and "pull_request" in triggers
    assert triggers["push"] is None or not triggers["push"].get("branches"), (
        "push must not be limited to branches"
    )
    test = workflow["jobs"]["test"]
    assert "if" not in test
    assert _uses(test, "actions/checkout")
    assert "bash .ci/run" in _runs(test)
    assert (REPO / ".ci" / "run").is_file()


def test_the_test_job_fetches_the_bccd_photos_before_running_ci(workflow):
    """The data tests need the real photos; GitHub's runner has no ../shared/data/BCCD."""
    runs = _runs(workflow["jobs"]["test"])
    fetch = next((i for i, run in enumerate(runs) if "BCCD_Dataset" in run), None)
    assert fetch is not None, "no step fetches the BCCD photos"
    assert fetch < runs.index("bash .ci/run")
    assert "DEEPIMAGING_BCCD=" in runs[fetch] and "$GITHUB_ENV" in runs[fetch]


def test_ci_run_stops_at_once_naming_the_missing_bccd_photos(tmp_path):
    """With CI set and no BCCD copy anywhere, .ci/run fails before installing or testing anything."""
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", checkout / ".ci" / "run")
    # A run.sh that would show it had been reached: .ci/run must stop before it.
    (checkout / "run.sh").write_text("echo run.sh was reached; exit 0\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CI": "true"}
    done = subprocess.run(
        ["bash", ".ci/run"], cwd=checkout, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "run.sh was reached" not in done.stdout
    assert (
        "BCCD" in done.stderr and "../shared/data/BCCD" in done.stderr and "DEEPIMAGING_BCCD" in done.stderr
    )
    # Pointing DEEPIMAGING_BCCD at a copy lets it through to run.sh.
    bccd = tmp_path / "BCCD"
    (bccd / "Annotations").mkdir(parents=True)
    env["DEEPIMAGING_BCCD"] = str(bccd)
    done = subprocess.run(
        ["bash", ".ci/run"], cwd=checkout, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "run.sh was reached" in done.stdout, done.stderr


def test_the_site_is_built_by_run_sh_docs_and_uploaded_from_its_output_folder(workflow):
    site = workflow["jobs"]["site"]
    assert "bash run.sh docs" in _runs(site)
    run_sh = (REPO / "run.sh").read_text(encoding="utf-8")
    assert "docs)" in run_sh or "|docs" in run_sh, "run.sh has no docs task"
    (upload,) = _uses(site, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "docs/_build/html"
    assert "docs/_build/html" in run_sh, "run.sh builds the site somewhere else than the workflow uploads"
    assert upload["if"] == ON_MAIN
    # Quick mode (tiny data) except for the published build on main.
    assert ON_MAIN in site["env"]["DEEPIMAGING_SMOKE"]
    (cache,) = _uses(site, "actions/cache")
    assert cache["with"]["path"] == "docs/_build/.jupyter_cache"


def test_the_site_is_deployed_to_pages_from_main_only_after_the_tests_pass(workflow):
    deploy = workflow["jobs"]["deploy"]
    assert deploy["if"] == ON_MAIN
    assert set(deploy["needs"]) == {"test", "site"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    (step,) = _uses(deploy, "actions/deploy-pages")
    assert deploy["environment"]["url"] == f"${{{{ steps.{step['id']}.outputs.page_url }}}}"
    # Nothing else may write: the other jobs only read the repository.
    assert workflow["permissions"] == {"contents": "read"}
