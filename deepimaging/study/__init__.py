"""Parameter sweeps: the class-project engine.

A study asks one question: *how does a parameter of the imaging system change
classification accuracy?* For every value of a physical-layer parameter and
every seed it builds ``PhysicalModel(make_layer(layer, value), BasicCNN)``,
trains it on the training split, and records on the test split the accuracy,
the per-class precision/recall/F1, the confusion matrix and the macro
one-vs-rest ROC AUC. One (sweep, value, seed) triple is a **point**.

How the results are kept (the output folder)::

    OUT/
      study.json            the configuration and its hash (written first)
      points/               one JSON file per finished point, written atomically,
        quantize__v1__s0.json   and beside it the trained network (unless save_weights=False),
        quantize__v1__s0.pt     reopened with StudyResults.load_model(sweep, value, seed)
        ...
      results.json          every point plus the summary (mean and spread over seeds)
      results.csv           the summary, one row per (sweep, value)
      points.csv            one row per point

- **Resume**: rerunning a study into the same folder computes only the points
  that have no valid file yet, so a killed sweep loses at most the points that
  were running.
- **Same configuration only**: a folder whose ``study.json`` holds a different
  configuration is refused (:class:`StudyConfigMismatch`); it is never mixed
  or overwritten. A folder resumes only when the configuration hash matches.
- **Corrupt points**: a point file that does not parse, belongs to another
  configuration, or lacks a field is recomputed (with a warning).
- **One point on its own**: :func:`run_point` (and ``deepimaging study
  --point K``) runs a single point, so a cluster scheduler can run the points
  as an array job into one shared folder.
- **On a cluster**: ``run_study(..., executor="slurm")`` submits the missing points as
  one SLURM array job through submitit, and :func:`study_status` lists what is done,
  running, failed (with its log) or missing (:mod:`.executors`).
- **Parallel**: points run in separate processes with joblib; each process
  uses one PyTorch thread so that ``jobs`` processes do not oversubscribe the
  cores. Because every point trains single-threaded, the numbers do not
  depend on ``jobs``: the same seeds give the same numbers.

Modules: :mod:`.config` (what decides the numbers), :mod:`.splits` (the data),
:mod:`.point` (one point: train, test, record), :mod:`.folder` (the folder's layout,
its atomic files, the configuration guard), :mod:`.engine` (the sweep on this machine; reading a folder
back), :mod:`.results` (summary, JSON, CSV),
:mod:`.jobs` (one numbered point for array jobs; a configuration from a JSON
file), :mod:`.executors` (local workers or submitit jobs), :mod:`.status` (what is done,
running, failed). The ``deepimaging study`` command that calls them is in :mod:`deepimaging.cli`.

Examples
--------
>>> config = StudyConfig(sweeps=[Sweep("quantize", [1, 8])], seeds=[0, 1, 2])  # doctest: +SKIP
>>> results = run_study(config, "bit_depth_study", jobs=2)  # doctest: +SKIP
>>> results.summary()[0]["accuracy_mean"]  # doctest: +SKIP
"""

from .config import StudyConfig, Sweep, bit_depth_config
from .engine import load_results
from .executors import EXECUTORS, Submission, run_study
from .folder import StudyConfigMismatch, point_paths
from .jobs import load_config, run_point_number
from .point import run_point
from .results import StudyResults
from .splits import load_data
from .status import study_status
from .weights import WeightsFileError

__all__ = [
    "Sweep",
    "StudyConfig",
    "StudyResults",
    "StudyConfigMismatch",
    "WeightsFileError",
    "bit_depth_config",
    "run_study",
    "run_point",
    "load_results",
    "load_data",
    "point_paths",
    "load_config",
    "run_point_number",
    "EXECUTORS",
    "Submission",
    "study_status",
]
