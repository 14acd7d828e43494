"""The results of a study: the point records and their summary over seeds, as JSON and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ._files import FORMAT_VERSION, _write_json_atomic, _write_text_atomic
from .config import StudyConfig


class StudyResults:
    """The points of a study and their summary over seeds.

    Attributes
    ----------
    config : StudyConfig
    points : list of dict
        One record per finished point (see :func:`run_point`).
    """

    def __init__(self, config: StudyConfig, points: list):
        self.config = config
        self.points = [p for p in points if p is not None]

    def __repr__(self) -> str:
        return f"StudyResults({len(self.points)} of {len(self.config.points())} points, sweeps {[s.name for s in self.config.sweeps]})"

    @property
    def complete(self) -> bool:
        return len(self.points) == len(self.config.points())

    @property
    def classes(self) -> list:
        return self.points[0]["classes"] if self.points else []

    def select(self, sweep: str | None = None, value=None) -> list:
        """Point records of one sweep (and one value), in seed order."""
        return [
            p
            for p in self.points
            if (sweep is None or p["sweep"] == sweep) and (value is None or float(p["value"]) == float(value))
        ]

    def summary(self) -> list[dict]:
        """One row per (sweep, value): accuracy mean, standard deviation over seeds, min, max, n.

        The spread is the sample standard deviation (``ddof=1``) of the
        per-seed test accuracies; 0 with a single seed.
        """
        rows = []
        for sweep in self.config.sweeps:
            for value in sweep.values:
                points = self.select(sweep.name, value)
                if not points:
                    continue
                acc = np.array([p["accuracy"] for p in points])
                aucs = [p["macro_auc"] for p in points if p.get("macro_auc") is not None]
                rows.append(
                    {
                        "sweep": sweep.name,
                        "layer": sweep.layer,
                        "value": value,
                        "n_seeds": len(acc),
                        "accuracy_mean": float(acc.mean()),
                        "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                        "accuracy_min": float(acc.min()),
                        "accuracy_max": float(acc.max()),
                        "macro_auc_mean": float(np.mean(aucs)) if aucs else None,
                    }
                )
        return rows

    def confusion_matrix(self, sweep: str, value) -> np.ndarray:
        """The confusion matrix (K x K, rows = true class) summed over the seeds of one point."""
        points = self.select(sweep, value)
        if not points:
            raise ValueError(f"no finished points for sweep {sweep!r} at value {value!r}")
        return np.sum([np.asarray(p["confusion_matrix"]) for p in points], axis=0)

    def bits_map(self, sweep: str, value) -> np.ndarray | None:
        """The mean over seeds of the learned bits map (H, W) of one point, or None if the layer has none."""
        maps = [np.asarray(p["bits_map"]) for p in self.select(sweep, value) if "bits_map" in p]
        return np.mean(maps, axis=0) if maps else None

    def to_dict(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "config_hash": self.config.hash(),
            "config": self.config.to_dict(),
            "complete": self.complete,
            "summary": self.summary(),
            "points": self.points,
        }

    def summary_csv(self) -> str:
        return _csv(self.summary())

    def points_csv(self) -> str:
        keys = [
            "sweep",
            "layer",
            "value",
            "seed",
            "accuracy",
            "macro_auc",
            "train_loss",
            "train_accuracy",
            "seconds",
        ]
        return _csv([{k: p.get(k) for k in keys} for p in self.points])

    def save(self, out_dir) -> None:
        """Write ``results.json``, ``results.csv`` (summary) and ``points.csv`` atomically."""
        out = Path(out_dir)
        _write_json_atomic(out / "results.json", self.to_dict())
        _write_text_atomic(out / "results.csv", self.summary_csv())
        _write_text_atomic(out / "points.csv", self.points_csv())


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()
