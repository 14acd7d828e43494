"""Executors: a study through submitit's real processes, SLURM's script without a cluster, status, races.

Oracles: the plain local run (same seeds give the same numbers, wherever a point ran), the
submission script submitit writes (checked against sbatch's documented flags), the arguments
a fake ``sbatch`` received, and the point files on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deepimaging.cli import main
from deepimaging.study import Submission, run_study, study_status
from deepimaging.study.status import JOBS_FILE, LOG_DIR

submitit = pytest.importorskip("submitit")

sys.path.insert(0, str(Path(__file__).parent))
from test_study import snapshot, tiny_config  # noqa: E402


def small_config(**overrides):
    return tiny_config(seeds=[0, 1], **overrides)  # 4 points: quantize 1 and 8, seeds 0 and 1


def comparable(results) -> dict:
    """What must not depend on where a point ran: its test numbers, per (sweep, value, seed)."""
    return {
        (p["sweep"], p["value"], p["seed"]): (p["accuracy"], p["confusion_matrix"], p["macro_f1"])
        for p in results.points
    }


# ---------------------------------------------------------------------------------------------------------
# submitit-local: real processes, a killed job, resubmission
# ---------------------------------------------------------------------------------------------------------


def kill_job_with_its_task(pid: int) -> None:
    """SIGKILL a submitit-local job: its controller ``pid`` and the task it runs, once that has started.

    Killing the controller alone is a race: if it has started the point's process by then, that
    process runs on as an orphan and finishes the point.
    """
    controller = psutil.Process(pid)
    deadline = time.monotonic() + 120
    while not (tasks := controller.children(recursive=True)):
        assert time.monotonic() < deadline, "the job's task never started"
        time.sleep(0.05)
    for process in [controller, *tasks]:
        process.kill()


def test_a_killed_job_shows_as_failed_and_resubmitting_completes_it_with_the_local_numbers(tmp_path):
    config = small_config()
    local = run_study(config, tmp_path / "local", progress=False)

    out = tmp_path / "submitit"
    submission = run_study(config, out, executor="submitit-local", time_min=10)
    assert isinstance(submission, Submission) and submission.points == [0, 1, 2, 3]
    entries = json.loads((out / LOG_DIR / JOBS_FILE).read_text())
    victim = next(e for e in entries if e["point"] == 2)
    kill_job_with_its_task(int(victim["job_id"].split("_")[0]))  # as a node that dies, or scancel

    deadline = time.monotonic() + 240
    while (status := study_status(out))["running"] and time.monotonic() < deadline:
        time.sleep(1)
    assert status["done"] == [0, 1, 3] and status["failed"] == [2] and status["missing"] == []
    assert status["running"] == []
    assert 2 in status["logs"] and status["logs"][2].strip()
    finished = snapshot(out / "points")

    results = run_study(config, out, executor="submitit-local", time_min=10, wait=True, progress=False)
    entries = json.loads((out / LOG_DIR / JOBS_FILE).read_text())
    assert [e["point"] for e in entries[4:]] == [2]  # only the failed point was resubmitted
    after = snapshot(out / "points")
    assert all(after[name] == finished[name] for name in finished)  # finished points untouched
    assert study_status(out)["done"] == [0, 1, 2, 3]
    assert comparable(results) == comparable(local)
    assert (out / "results.json").is_file()


def test_status_lists_missing_points_of_a_folder_with_a_point_run_alone(tmp_path, capsys):
    config = small_config()
    from deepimaging.study import run_point_number

    run_point_number(config, 1, tmp_path, progress=False)
    status = study_status(tmp_path)
    assert status["done"] == [1] and status["missing"] == [0, 2, 3] and status["failed"] == []
    assert main(["status", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "done: 1 of 4" in printed and "missing: 3 of 4" in printed
    assert "missing point 0: quantize=1 seed 0" in printed


def test_status_of_a_folder_that_is_no_study_is_one_line(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a study folder" in err


# ---------------------------------------------------------------------------------------------------------
# SLURM without a cluster: a fake sbatch that records what it was given
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``sbatch`` and ``srun`` on PATH: sbatch keeps a copy of the script and answers like SLURM."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "sbatch_calls"
    record.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\n"
        f'n=$(ls {record} | wc -l); echo "$@" > {record}/args$n; cp "$1" {record}/script$n\n'
        'echo "Submitted batch job 4242"\n'
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for name in ("sbatch", "srun"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def test_slurm_submits_one_array_job_with_the_requested_resources(tmp_path, fake_slurm):
    out = tmp_path / "study"
    submission = run_study(
        small_config(),
        out,
        executor="slurm",
        partition="gpu",
        time_min=90,
        cpus=4,
        gpus=1,
        mem_gb=8,
        max_parallel=2,
    )
    assert submission.job_id == "4242" and submission.points == [0, 1, 2, 3]
    scripts = sorted(fake_slurm.glob("script*"))
    assert len(scripts) == 1  # ONE array job, not one job per point
    script = scripts[0].read_text()
    # sbatch's documented flags: --array=first-last%limit, --time in minutes, --mem with a unit.
    for line in (
        "#SBATCH --array=0-3%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --mem=8192MB",
    ):
        assert line in script.splitlines(), (line, script)
    assert str(out / LOG_DIR) in script  # submitit's logs stay inside the study folder
    entries = json.loads((out / LOG_DIR / JOBS_FILE).read_text())
    assert [(e["job_id"], e["point"]) for e in entries] == [(f"4242_{k}", k) for k in range(4)]


def test_slurm_resubmission_skips_points_already_done(tmp_path, fake_slurm):
    from deepimaging.study import run_point_number

    config = small_config()
    run_point_number(config, 0, tmp_path, progress=False)
    run_point_number(config, 3, tmp_path, progress=False)
    submission = run_study(config, tmp_path, executor="slurm", max_parallel=5)
    assert submission.points == [1, 2]
    (script,) = fake_slurm.glob("script*")
    # two tasks: submitit caps the parallelism at the number of tasks (0-1%2, not %5)
    assert "#SBATCH --array=0-1%2" in script.read_text().splitlines()
    entries = json.loads((tmp_path / LOG_DIR / JOBS_FILE).read_text())
    assert [(e["job_id"], e["point"]) for e in entries] == [("4242_0", 1), ("4242_1", 2)]


def test_slurm_without_sbatch_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "study"
    argv = ["study", "--layer", "quantize", "--values", "1,8", "--size", "16", "--out", str(out)]
    assert main([*argv, "--executor", "slurm"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "sbatch" in err and "--executor local" in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line, nothing written
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--executor", "pbs"], "invalid choice"),
        (["--executor", "slurm", "--time", "0"], "time_min"),
        (["--executor", "slurm", "--mem", "-1"], "mem_gb"),
        (["--executor", "slurm", "--cpus", "0"], "cpus"),
        (["--executor", "submitit-local", "--max-parallel", "0"], "max_parallel"),
        (["--partition", "gpu"], "--partition apply to --executor slurm"),
        (["--executor", "slurm", "--bogus", "1"], "unrecognized arguments"),
    ],
)
def test_bad_executor_options_are_refused_before_anything_is_written(tmp_path, options, expected, capsys):
    out = tmp_path / "study"
    argv = ["study", "--layer", "quantize", "--values", "1,8", "--size", "16", "--out", str(out), *options]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_of_another_configuration_is_refused_by_a_submission(tmp_path, fake_slurm):
    from deepimaging.study import StudyConfigMismatch, run_point_number

    run_point_number(small_config(), 0, tmp_path, progress=False)
    before = snapshot(tmp_path)
    with pytest.raises(StudyConfigMismatch, match="different study configuration"):
        run_study(small_config(epochs=2), tmp_path, executor="slurm")
    assert snapshot(tmp_path) == before and not list(fake_slurm.iterdir())


# ---------------------------------------------------------------------------------------------------------
# study.json: two processes that create it at once
# ---------------------------------------------------------------------------------------------------------

RACE = """
import sys, time
sys.path.insert(0, {tests!r})
from test_study import tiny_config
from deepimaging.study.folder import _prepare_folder
start = float(sys.argv[1])
while time.time() < start:
    pass
try:
    _prepare_folder({out!r}, tiny_config(seeds=[0, 1], epochs=int(sys.argv[2])))
    print("ok")
except FileExistsError as err:
    print("refused:", err)
"""


@pytest.mark.parametrize("same", [True, False])
def test_two_processes_creating_study_json_at_once_never_corrupt_it(tmp_path, same):
    out = tmp_path / "study"
    script = RACE.format(tests=str(Path(__file__).parent), out=str(out))
    for _attempt in range(3):  # a real race is likelier in one of several tries
        if out.exists():
            for p in sorted(out.rglob("*"), reverse=True):
                p.rmdir() if p.is_dir() else p.unlink()
        start = time.time() + 4  # both processes are imported and spinning by then
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(start), "1" if same or k == 0 else "2"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for k in range(2)
        ]
        answers = sorted(run.communicate(timeout=120)[0].strip() for run in runs)
        saved = json.loads((out / "study.json").read_text())  # always complete JSON
        hashes = {small_config().hash(), small_config(epochs=2).hash()}
        assert saved["config_hash"] in hashes
        if same:
            assert answers == ["ok", "ok"]
        else:
            # exactly one wins; the other sees the winner's configuration and is refused
            assert answers[0] == "ok" and answers[1].startswith("refused:")
            assert "different study configuration" in answers[1]


# ---------------------------------------------------------------------------------------------------------
# deepimaging run PROJECT --executor, and a study trained on several devices
# ---------------------------------------------------------------------------------------------------------


def test_run_project_with_the_slurm_executor_submits_its_study(tmp_path, fake_slurm, capsys):
    project = tmp_path / "p"
    assert main(["new-project", str(project)]) == 0
    capsys.readouterr()
    argv = ["run", str(project), "--smoke", "--no-progress", "--executor", "slurm", "--time", "15"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "job 4242" in printed and "deepimaging status" in printed
    (script,) = fake_slurm.glob("script*")
    assert "#SBATCH --time=15" in script.read_text().splitlines()
    status = study_status(project / "results_smoke")
    assert status["done"] == [] and len(status["points"]) >= 1
    # A SLURM-only option without --executor is a forgotten --executor: refused, not ignored.
    assert main(["run", str(project), "--smoke", "--gpus", "1"]) == 2
    assert "--gpus apply to --executor slurm" in capsys.readouterr().err


@pytest.mark.parametrize("devices, mixed", [(["cpu", "cpu"], False), (["cpu", "cuda:0"], True)])
def test_the_report_says_when_points_trained_on_different_devices(tmp_path, devices, mixed):
    from deepimaging.report import write_report
    from deepimaging.study import StudyResults

    config = tiny_config(seeds=[0])
    results = run_study(config, tmp_path / "study", progress=False)
    points = [dict(p, device=d) for p, d in zip(results.points, devices)]
    page = write_report(StudyResults(config, points), tmp_path / "page")
    assert ("mixed devices" in page.read_text()) == mixed


# ---------------------------------------------------------------------------------------------------------
# status of SLURM jobs: what sacct and submitit's result files say
# ---------------------------------------------------------------------------------------------------------


def test_status_reads_slurm_states_from_sacct_and_failures_from_submitits_files(tmp_path, fake_slurm):
    config = small_config()
    run_study(config, tmp_path, executor="slurm")  # tasks 4242_0 .. 4242_3 for points 0 .. 3
    bin_dir = fake_slurm.parent / "bin"
    # sacct's --parsable2 answer (submitit parses it): one task running, one pending, one cancelled.
    (bin_dir / "sacct").write_text(
        "#!/bin/sh\necho 'JobID|State|NodeList'\n"
        "echo '4242_0|RUNNING|node1'\necho '4242_1|PENDING|'\necho '4242_2|CANCELLED by 1000|node2'\n"
    )
    (bin_dir / "sacct").chmod(0o755)
    # Task 3 ended with an error: submitit's result pickle and its log, as its job would leave them.
    paths = submitit.core.utils.JobPaths(tmp_path / LOG_DIR, "4242_3")
    submitit.core.utils.cloudpickle_dump(
        ("error", "Traceback ...\nRuntimeError: CUDA out of memory"), paths.result_pickle
    )
    paths.stderr.write_text("loading data\nRuntimeError: CUDA out of memory\n")
    submitit.SlurmJob.watcher.clear()

    status = study_status(tmp_path)
    assert status["running"] == [0, 1] and status["failed"] == [2, 3] and status["done"] == []
    assert status["logs"][3].endswith("RuntimeError: CUDA out of memory")
    assert "killed before it started" in status["logs"][2]  # cancelled while pending: no log at all

    # Rerunning the command resubmits the failed points only, not those still queued or running.
    submission = run_study(config, tmp_path, executor="slurm")
    assert submission.points == [2, 3]


def test_waiting_on_the_command_line_prints_the_summary_and_a_failed_point_is_not_trained_here(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "study"
    argv = ["study", "--layer", "quantize", "--values", "1,8", "--seeds", "0", "--size", "16"]
    argv += ["--n-per-class", "8", "--epochs", "1", "--out", str(out), "--no-progress"]
    argv += ["--executor", "submitit-local", "--wait"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "submitted 2 point(s)" in printed and "quantize=1:" in printed and "quantize=8:" in printed
    assert (out / "results.csv").is_file()

    # A job that fails: waiting reports it and returns, and this process trains nothing itself.
    (out / "points" / "quantize__v8__s0.json").unlink()
    import deepimaging.study.point as study_point

    monkeypatch.setattr(
        study_point, "_train_point", lambda *a, **k: pytest.fail("trained in the submitting process")
    )
    monkeypatch.setattr("deepimaging.study.executors._run_task", _failing_task)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 point(s) did not finish" in printed and "deepimaging status" in printed
    assert study_status(out)["failed"] == [1]


def _failing_task(config_dict, number, out_dir):
    raise RuntimeError(f"simulated failure of point {number}")


def test_cluster_options_with_the_local_executor_are_refused_in_python_too(tmp_path):
    with pytest.raises(ValueError, match="partition, gpus apply to executor='slurm'"):
        run_study(small_config(), tmp_path / "o", partition="gpu", gpus=1)
    with pytest.raises(ValueError, match="executor must be one of local, slurm, submitit-local; got 'pbs'"):
        run_study(small_config(), tmp_path / "o", executor="pbs")
    with pytest.raises(TypeError, match="time_min must be an integer"):
        run_study(small_config(), tmp_path / "o", executor="slurm", time_min="1h")
    assert not (tmp_path / "o").exists()
