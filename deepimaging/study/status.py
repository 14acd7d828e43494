"""A study folder's state: which points are done, queued or running, failed (with their log), or missing.

What a submission leaves (see :mod:`.executors`): ``OUT/slurm_logs/jobs.json`` maps each
submitted task to its point number; submitit writes each task's log and, when the task
ends, a result pickle (``("success", value)`` or ``("error", traceback)``) beside it. SLURM's
own view of a task that has not finished comes from ``sacct`` (through submitit); a task of
submitit's local executor is a process on this machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import StudyConfig
from .folder import _read_point, point_paths

LOG_DIR = "slurm_logs"
JOBS_FILE = "jobs.json"
#: SLURM job states that mean "not finished yet" (see ``sacct --helpstate``).
WAITING_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "READY", "SUSPENDED"}


def _read_jobs(out: Path) -> list:
    path = out / LOG_DIR / JOBS_FILE
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return []


def _job_states(entries: list, logs: Path) -> list:
    """``"waiting"``, ``"failed"`` or ``"finished"`` for each recorded task in ``entries``."""
    import submitit

    states = []
    for entry in entries:
        paths = submitit.core.utils.JobPaths(logs, entry["job_id"])
        if paths.result_pickle.exists():  # submitit's own record: ("success", value) or ("error", traceback)
            outcome, _ = submitit.core.utils.pickle_load(paths.result_pickle)
            states.append("finished" if outcome == "success" else "failed")
        elif entry["executor"] == "submitit-local":
            alive = _process_alive(int(entry["job_id"].split("_")[0]))
            states.append("waiting" if alive else "failed")
        else:
            states.append(None)  # ask SLURM, below, for all these tasks in one sacct call
    ask = [entry["job_id"] for entry, state in zip(entries, states) if state is None]
    if ask:
        watcher = submitit.SlurmJob.watcher
        for job_id in ask:
            watcher.register_job(job_id)
        try:
            watcher.update()
        except Exception:  # noqa: BLE001 - no sacct (or it failed): the states stay UNKNOWN
            pass
        for k, state in enumerate(states):
            if state is None:
                # "CANCELLED by 1234" -> CANCELLED; UNKNOWN (sacct cannot tell yet) counts as waiting.
                slurm = (watcher.get_state(entries[k]["job_id"], mode="cache") or "UNKNOWN").split()[0]
                states[k] = "waiting" if slurm in WAITING_STATES | {"UNKNOWN"} else "failed"
    return states


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a killed child that nobody reaped yet is a zombie: not alive
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def _log_tail(entry: dict, logs: Path, lines: int = 5) -> str:
    import submitit

    paths = submitit.core.utils.JobPaths(logs, entry["job_id"])
    for path in (paths.stderr, paths.stdout):
        if path.is_file():
            text = [t for t in path.read_text(errors="replace").splitlines() if t.strip()]
            if text:
                return "\n".join(text[-lines:])
    return f"(no log in {paths.stderr.parent}: the job was killed before it started, or never ran)"


def study_status(folder, *, config: StudyConfig | None = None) -> dict:
    """Which points of the study in ``folder`` are done, running or queued, failed, or missing.

    Parameters
    ----------
    folder : path
        A study folder (with ``study.json``, or give ``config`` for one not started yet).
    config : StudyConfig, optional
        The configuration; read from ``folder/study.json`` when None.

    Returns
    -------
    dict
        ``done``, ``running`` (queued or running), ``failed`` and ``missing``: lists of
        point numbers (0-based, in the order of ``config.points()``); ``points``: the
        (sweep, value, seed) of each number; ``logs``: ``{number: last lines of the log}``
        for the failed points.
    """
    from .jobs import load_config

    out = Path(folder)
    if config is None:
        if not (out / "study.json").is_file():
            raise FileNotFoundError(f"{out} is not a study folder (no study.json); run or submit the study")
        config = load_config(out / "study.json")
    points = config.points()
    paths = point_paths(out, config)
    latest = {entry["point"]: entry for entry in _read_jobs(out)}  # the last submission of each point
    status = {"done": [], "running": [], "failed": [], "missing": [], "points": points, "logs": {}}
    submitted = []
    for k, key in enumerate(points):
        if _read_point(paths[key], config.hash(), key, "treating the point as not done") is not None:
            status["done"].append(k)
        elif k not in latest:
            status["missing"].append(k)
        else:
            submitted.append(k)
    states = _job_states([latest[k] for k in submitted], out / LOG_DIR) if submitted else []
    for k, state in zip(submitted, states):
        if state == "waiting":
            status["running"].append(k)
        else:  # a job that finished without writing a valid point file failed too
            status["failed"].append(k)
            status["logs"][k] = _log_tail(latest[k], out / LOG_DIR)
    status["running"].sort()
    return status
