"""The whole study on this machine: run every point its folder lacks, write the results, read them back."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .._checks import check_int
from .config import StudyConfig
from .folder import STUDY_FILE, _prepare_folder, _read_point, point_paths
from .point import _validate_layers, run_point
from .results import StudyResults
from .splits import load_data


def run_study(config: StudyConfig, out_dir, *, jobs: int = 1, progress: bool = True) -> StudyResults:
    """Run every point of ``config`` that ``out_dir`` does not hold yet, then write the results.

    Parameters
    ----------
    config : StudyConfig
    out_dir : path
        The study folder (created if missing). An existing folder resumes only
        when its ``study.json`` holds the same configuration (same hash);
        otherwise :class:`StudyConfigMismatch` is raised and nothing is touched.
    jobs : int
        Points trained at once in separate processes (joblib); 1 runs in this
        process. Use the number of cores. Numbers do not depend on ``jobs``.
    progress : bool
        A progress bar over points (finished points from an earlier run count as done).

    Returns
    -------
    StudyResults
        Also written to ``results.json``, ``results.csv`` and ``points.csv``.

    Raises
    ------
    ValueError, TypeError
        Unknown layer or dataset, or a value outside the layer's range; raised
        before anything is trained.
    StudyConfigMismatch
        ``out_dir`` holds a different configuration.
    PermissionError
        ``out_dir`` cannot be written.
    """
    from tqdm.auto import tqdm

    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig; got {type(config).__name__}")
    jobs = check_int(jobs, "jobs", 1)
    from ..train import get_device

    get_device(config.device)  # a device that is not there fails here, before anything is written
    train, _, _ = load_data(config)
    _validate_layers(config, train.image_shape)
    # study.json comes with the first finished point (run_point), so a failing first run leaves none.
    out = _prepare_folder(out_dir, config, write=False)

    config_hash = config.hash()
    paths = point_paths(out, config)
    records = {key: _read_point(path, config_hash, key) for key, path in paths.items()}
    todo = [key for key, record in records.items() if record is None]

    bar = tqdm(
        total=len(paths),
        initial=len(paths) - len(todo),
        desc="study points",
        unit="point",
        disable=not progress,
    )
    try:
        if jobs == 1 or len(todo) <= 1:
            for key in todo:
                bar.set_postfix_str(f"{key[0]}={key[1]} seed {key[2]}")
                records[key] = run_point(config, *key, out_dir=out)
                bar.update()
        else:
            from joblib import Parallel, delayed

            config_dict = config.to_dict()
            tasks = (delayed(_worker)(config_dict, key, str(out)) for key in todo)
            with Parallel(n_jobs=min(jobs, len(todo)), return_as="generator_unordered") as parallel:
                for key, record in parallel(tasks):
                    records[key] = record
                    bar.update()
    finally:
        bar.close()

    results = StudyResults(config, [records[key] for key in paths], folder=out)
    results.save(out)
    return results


def _worker(config_dict: dict, key, out_dir: str):
    """One point in a joblib worker process (it rebuilds the configuration from plain data)."""
    from ..train import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()  # the study's own process: reuse freed memory, as the deepimaging command does
    config = StudyConfig.from_dict(config_dict)
    return key, run_point(config, *key, out_dir=out_dir)


def load_results(out_dir, *, allow_incomplete: bool = False) -> StudyResults:
    """Read a study folder's configuration and point files.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`run_study` or :func:`run_point`.
    allow_incomplete : bool
        Return the finished points even when some are missing (``results.complete``
        is then False); by default a missing point is an error that says how to
        finish the study.
    """
    out = Path(out_dir)
    study_file = out / STUDY_FILE
    if not study_file.exists():
        raise FileNotFoundError(
            f"{out} is not a study folder (no {STUDY_FILE}); run the study first "
            "(deepimaging study / deepimaging demo / run_study)"
        )
    try:
        config = StudyConfig.from_dict(json.loads(study_file.read_text())["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{study_file} is not a readable study file: {err}") from None
    config_hash = config.hash()
    records = []
    missing = []
    for key, path in point_paths(out, config).items():
        record = _read_point(path, config_hash, key, "treating the point as missing")
        if record is None:
            missing.append(key)
        else:
            records.append(record)
    if missing and not allow_incomplete:
        raise FileNotFoundError(
            f"{len(missing)} of {len(config.points())} points of the study in {out} are not finished "
            f"(first: {missing[0]}); rerun the study into the same folder to finish them"
        )
    return StudyResults(config, records, folder=out)
