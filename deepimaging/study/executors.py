"""Where a study's points run: this machine (``local``), or jobs through submitit (``slurm``, ``submitit-local``).

Every executor runs the same single-point function (:func:`~deepimaging.study.run_point_number`),
so each point is written atomically into the one study folder, exactly as a local run writes
it, and the numbers do not depend on where a point ran (same seed, same numbers on a CPU).

- ``local``: :func:`deepimaging.study.engine.run_study`, ``jobs`` worker processes.
- ``slurm``: every missing point as **one** SLURM array job through submitit's
  ``SlurmExecutor`` (submitit is the optional ``cluster`` extra). Returns once submitted,
  unless ``wait=True``.
- ``submitit-local``: submitit's ``LocalExecutor``, real processes on this machine; the
  same code path as ``slurm`` without a cluster (what the tests run).

submitit keeps its logs and pickles in ``OUT/slurm_logs/``; ``OUT/slurm_logs/jobs.json``
records which job computes which point, so :func:`~.status.study_status` can say what failed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .._checks import check_int
from .config import StudyConfig
from .engine import run_study as run_study_here
from .folder import _prepare_folder, _write_json_atomic
from .jobs import run_point_number
from .point import _validate_layers
from .splits import load_data
from .status import JOBS_FILE, LOG_DIR, _read_jobs, study_status

EXECUTORS = ("local", "slurm", "submitit-local")


@dataclass
class Submission:
    """What :func:`run_study` submitted: the job id(s), the point numbers, and where the logs go."""

    executor: str
    job_id: str
    points: list
    log_folder: Path


def run_study(
    config: StudyConfig,
    out_dir,
    *,
    executor: str = "local",
    jobs: int = 1,
    progress: bool = True,
    wait: bool = False,
    partition: str | None = None,
    time_min: int = 60,
    cpus: int = 1,
    gpus: int = 0,
    mem_gb: float = 4,
    max_parallel: int | None = None,
):
    """Run (or submit) every point of ``config`` that ``out_dir`` does not hold yet.

    Parameters
    ----------
    config : StudyConfig
    out_dir : path
        The study folder; the same rules as :func:`deepimaging.study.engine.run_study`
        (resume, refuse another configuration).
    executor : {"local", "slurm", "submitit-local"}
        Where the points run (see the module's description).
    jobs : int
        ``local`` only: points trained at once in worker processes.
    progress : bool
        A progress bar over points (``local``, or a submitit executor with ``wait``).
    wait : bool
        Submitit executors: wait for the jobs, then write the results. By default
        return right after submitting; ``deepimaging status OUT`` shows progress.
    partition : str, optional
        SLURM partition (``--partition``); the cluster's default when None.
    time_min : int
        Time limit per point in minutes (SLURM kills a point that runs longer).
    cpus, gpus : int
        CPU cores and GPUs per point (``--cpus-per-task``, ``--gpus-per-node``).
    mem_gb : float
        Memory per point in GB (``--mem``).
    max_parallel : int, optional
        At most this many points run at once (the ``%P`` of ``--array=0-N%P``).

    Returns
    -------
    StudyResults or Submission
        The results when every point has finished (``local``, or ``wait=True``);
        otherwise the :class:`Submission` (nothing left to run gives the results too).

    Raises
    ------
    ValueError
        An unknown executor, a non-positive time, memory, CPU count or parallelism,
        or ``executor="slurm"`` where SLURM's ``sbatch`` and ``srun`` are not installed; raised
        before anything is written.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    if executor == "local":
        given = {"wait": wait, "partition": partition, "time_min": time_min, "cpus": cpus, "gpus": gpus}
        given.update(mem_gb=mem_gb, max_parallel=max_parallel)
        defaults = {"wait": False, "partition": None, "time_min": 60, "cpus": 1, "gpus": 0}
        defaults.update(mem_gb=4, max_parallel=None)
        ignored = [name for name in given if given[name] != defaults[name]]
        if ignored:  # a forgotten executor="slurm" would otherwise train here, silently
            raise ValueError(
                f"{', '.join(ignored)} apply to executor='slurm' or 'submitit-local', not 'local'"
            )
        return run_study_here(config, out_dir, jobs=jobs, progress=progress)
    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig; got {type(config).__name__}")
    time_min = check_int(time_min, "time_min", 1)
    cpus = check_int(cpus, "cpus", 1)
    gpus = check_int(gpus, "gpus", 0)
    if isinstance(mem_gb, bool) or not isinstance(mem_gb, (int, float)) or not mem_gb > 0:
        raise ValueError(f"mem_gb (memory per point in GB) must be a positive number; got {mem_gb!r}")
    if max_parallel is not None:
        max_parallel = check_int(max_parallel, "max_parallel", 1)
    if executor == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise ValueError(
            "--executor slurm needs SLURM's sbatch and srun, which are not installed on this machine; "
            "run on the cluster's login node, or here with --executor local (add --jobs N for N cores)"
        )
    submitit = _import_submitit()
    train, _, _ = load_data(config)  # a bad dataset or layer fails here, before anything is written
    _validate_layers(config, train.image_shape)
    # Unlike a local run, a submission writes study.json now: `deepimaging status` needs the
    # configuration before any job has finished, and a second submission of another configuration
    # into the same folder is refused at once (the file is created exclusively).
    out = _prepare_folder(out_dir, config)

    status = study_status(out, config=config)
    todo = sorted(status["missing"] + status["failed"])
    if not todo:
        if status["running"]:
            raise ValueError(
                f"every unfinished point of {out} is still queued or running ({len(status['running'])}); "
                f"see `deepimaging status {out}`"
            )
        return run_study_here(config, out, progress=False)  # all done: just write the results

    logs = out / LOG_DIR
    logs.mkdir(exist_ok=True)
    if executor == "slurm":
        pool = submitit.SlurmExecutor(folder=logs)
        pool.update_parameters(
            time=time_min,
            cpus_per_task=cpus,
            mem=f"{max(1, round(mem_gb * 1024))}MB",
            array_parallelism=max_parallel or len(todo),
            job_name=f"deepimaging-{out.name}"[:64],
            **({"partition": partition} if partition else {}),
            **({"gpus_per_node": gpus} if gpus else {}),
        )
    else:
        pool = submitit.LocalExecutor(folder=logs)
        pool.update_parameters(timeout_min=time_min, gpus_per_node=gpus)
    config_dict = config.to_dict()
    submitted = pool.map_array(_run_task, [config_dict] * len(todo), todo, [str(out)] * len(todo))
    record = _read_jobs(out)
    record.extend(
        {"executor": executor, "job_id": job.job_id, "point": k, "submitted": time.time()}
        for job, k in zip(submitted, todo)
    )
    _write_json_atomic(logs / JOBS_FILE, record)
    job_id = submitted[0].job_id.split("_")[0]
    print(f"submitted {len(todo)} point(s) as job {job_id} ({executor}); logs in {logs}")
    if not wait:
        return Submission(executor, job_id, todo, logs)

    from tqdm.auto import tqdm

    with tqdm(total=len(todo), desc="study points", unit="point", disable=not progress) as bar:
        # Ask every second about local processes; SLURM's sacct only every 30 s (it is shared).
        poll = 1 if executor == "submitit-local" else 30
        for job in submitit.helpers.as_completed(submitted, poll_frequency=poll):
            job.exception()  # a failed point is reported by study_status, not raised here
            bar.update()
    unfinished = len(config.points()) - len(study_status(out, config=config)["done"])
    if unfinished:
        # Never fall back to training here (a login node): say what failed and how to resubmit.
        print(f"{unfinished} point(s) did not finish: see `deepimaging status {out}`, then rerun to resubmit")
        return Submission(executor, job_id, todo, logs)
    return run_study_here(config, out, progress=False)  # every point has its file: only the results


def _run_task(config_dict: dict, number: int, out_dir: str):
    """One array task: rebuild the configuration from plain data and run point ``number``."""
    key, record = run_point_number(StudyConfig.from_dict(config_dict), number, out_dir, progress=False)
    return number, record["accuracy"], record["device"]


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise ValueError(
            "the slurm and submitit-local executors need submitit: pip install 'deepimaging[cluster]' "
            "(or use --executor local)"
        ) from None
    return submitit
