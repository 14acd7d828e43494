"""The results of a study: the point records and their summary over seeds, as JSON and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .._util import write_text_atomic
from .config import IMBALANCE_RATIO, METRIC_NAMES, METRICS, StudyConfig
from .folder import FORMAT_VERSION, _write_json_atomic

#: Confidence level of the intervals over seeds.
CONFIDENCE = 0.95


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Confidence interval of the mean of ``values`` from Student's t distribution over the seeds.

    ``mean ± t_{(1+confidence)/2, n-1} * s / sqrt(n)`` with ``s`` the sample
    standard deviation (``ddof=1``): the interval in which the mean over
    *further* seeds would fall, given the same data split. It says nothing
    about another draw of test images. With one value the interval is
    undefined and ``(nan, nan)`` is returned.

    Parameters
    ----------
    values : array_like
        One number per seed.
    confidence : float
        0.95 for a 95% interval.

    Returns
    -------
    (low, high) : tuple of float
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf((1 + confidence) / 2, df=n - 1) * values.std(ddof=1) / np.sqrt(n)
    return float(values.mean() - half), float(values.mean() + half)


class StudyResults:
    """The points of a study and their summary over seeds.

    Attributes
    ----------
    config : StudyConfig
    points : list of dict
        One record per finished point (see :func:`run_point`).
    folder : pathlib.Path or None
        The study folder the points were read from or written to (where
        :meth:`load_model` finds the saved networks).
    """

    def __init__(self, config: StudyConfig, points: list, folder=None):
        self.config = config
        self.points = [p for p in points if p is not None]
        self.folder = None if folder is None else Path(folder)

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

    @property
    def test_counts(self) -> dict:
        """Test images per class (the row sums of a point's confusion matrix)."""
        if not self.points:
            return {}
        rows = np.asarray(self.points[0]["confusion_matrix"]).sum(axis=1)
        return {c: int(n) for c, n in zip(self.classes, rows)}

    @property
    def imbalance(self) -> float:
        """Largest over smallest number of test images per class (1.0 when balanced)."""
        counts = [n for n in self.test_counts.values()]
        if not counts or min(counts) == 0:
            return float("inf") if counts else 1.0
        return max(counts) / min(counts)

    @property
    def metric(self) -> str:
        """The metric plots and tables show: the configuration's, or for ``"auto"`` balanced accuracy
        when the test classes are imbalanced (largest/smallest > 1.5), else accuracy."""
        if self.config.metric != "auto":
            return self.config.metric
        return "balanced_accuracy" if self.imbalance > IMBALANCE_RATIO else "accuracy"

    @property
    def metric_name(self) -> str:
        """The shown metric in words, e.g. ``"balanced accuracy"``."""
        return METRIC_NAMES[self.metric]

    def metric_note(self) -> str:
        """One sentence for captions: which metric is shown and why."""
        counts = ", ".join(f"{c} {n}" for c, n in self.test_counts.items())
        if self.metric == "balanced_accuracy" and self.config.metric == "auto":
            return (
                f"Balanced accuracy (the mean of the per-class recalls) is shown because the test classes "
                f"are imbalanced ({counts}; largest/smallest {self.imbalance:.1f} > {IMBALANCE_RATIO}), "
                "where plain accuracy would mostly measure the largest class."
            )
        return f"The metric shown is {self.metric_name} (test images per class: {counts})."

    def summary(self) -> list[dict]:
        """One row per (sweep, value): every metric's mean, standard deviation and 95% interval over seeds.

        For each metric ``m`` in ``accuracy``, ``balanced_accuracy``,
        ``macro_f1`` and ``macro_auc`` the row holds ``m_mean``, ``m_std`` (the
        sample standard deviation, ``ddof=1``; 0 with a single seed), and
        ``m_ci_low`` / ``m_ci_high``, a 95% t-interval over seeds
        (:func:`t_interval`; None with a single seed). ``accuracy_min`` and
        ``accuracy_max`` give the range, ``n_seeds`` the count; ``metric`` names
        the metric plots and tables show, and ``mean``, ``std``, ``ci_low``,
        ``ci_high`` repeat its numbers. ``recall_mean`` holds the mean recall of
        each class, ``warnings`` how many seeds' records carry a warning.
        """
        shown = self.metric
        rows = []
        for sweep in self.config.sweeps:
            for value in sweep.values:
                points = self.select(sweep.name, value)
                if not points:
                    continue
                acc = np.array([p["accuracy"] for p in points])
                row = {
                    "sweep": sweep.name,
                    "layer": sweep.layer,
                    "value": value,
                    "n_seeds": len(acc),
                }
                for metric in METRICS:
                    numbers = [p[metric] for p in points if p.get(metric) is not None]
                    row.update(_spread(metric, numbers))
                row.update(
                    {
                        "accuracy_min": float(acc.min()),
                        "accuracy_max": float(acc.max()),
                        "metric": shown,
                        "mean": row[f"{shown}_mean"],
                        "std": row[f"{shown}_std"],
                        "ci_low": row[f"{shown}_ci_low"],
                        "ci_high": row[f"{shown}_ci_high"],
                        "recall_mean": {
                            c: float(np.mean([p["recall"][c] for p in points]))
                            for c in self.classes
                            if all("recall" in p for p in points)
                        },
                        "warnings": sum(1 for p in points if p.get("warnings")),
                    }
                )
                rows.append(row)
        return rows

    def compare(self, sweep_a: str, sweep_b: str, metric: str | None = None) -> list[dict]:
        """Paired comparison of two sweeps at each value they share, over the seeds they share.

        The same seed trains both sweeps' models from the same initial CNN
        weights on the same split, so the per-seed differences ``a - b`` are
        paired. Each row gives their mean, standard deviation, a 95% t-interval
        (:func:`t_interval`) and the two-sided p-value of the paired t-test
        (:func:`scipy.stats.ttest_rel`), and ``within_spread``: True when the
        interval contains 0, i.e. the difference is within the spread over seeds.

        Parameters
        ----------
        sweep_a, sweep_b : str
            Sweep names (e.g. ``"learned_discretization"`` and ``"quantize"``).
        metric : str, optional
            One of the recorded metrics; default :attr:`metric`.
        """
        from scipy import stats

        metric = metric or self.metric
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}; got {metric!r}")
        a_sweep, b_sweep = self.config.sweep(sweep_a), self.config.sweep(sweep_b)
        rows = []
        for value in a_sweep.values:
            if not any(float(value) == float(v) for v in b_sweep.values):
                continue
            a = {p["seed"]: p.get(metric) for p in self.select(sweep_a, value)}
            b = {p["seed"]: p.get(metric) for p in self.select(sweep_b, value)}
            seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)
            if not seeds:
                continue
            diff = np.array([a[s] - b[s] for s in seeds])
            low, high = t_interval(diff)
            p_value = None
            if len(seeds) > 1 and diff.std(ddof=1) > 0:
                p_value = float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
            rows.append(
                {
                    "value": value,
                    "metric": metric,
                    "a": sweep_a,
                    "b": sweep_b,
                    "n_seeds": len(seeds),
                    "difference_mean": float(diff.mean()),
                    "difference_std": float(diff.std(ddof=1)) if len(seeds) > 1 else 0.0,
                    "ci_low": None if np.isnan(low) else low,
                    "ci_high": None if np.isnan(high) else high,
                    "p_value": p_value,
                    "within_spread": bool(np.isnan(low) or low <= 0.0 <= high),
                }
            )
        return rows

    def comparisons(self) -> list[dict]:
        """:meth:`compare` for every pair of sweeps that share a value (in configuration order)."""
        names = [s.name for s in self.config.sweeps]
        rows = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                rows.extend(self.compare(a, b))
        return rows

    def confusion_matrix(self, sweep: str, value) -> np.ndarray:
        """The confusion matrix (K x K, rows = true class) summed over the seeds of one point."""
        points = self.select(sweep, value)
        if not points:
            raise ValueError(f"no finished points for sweep {sweep!r} at value {value!r}")
        return np.sum([np.asarray(p["confusion_matrix"]) for p in points], axis=0)

    def load_model(self, sweep: str, value, seed: int | None = None, *, device: str = "cpu"):
        """The trained network of one point, rebuilt and loaded from its saved weights, in eval mode.

        Ready for :func:`deepimaging.train.predict`, :func:`deepimaging.interpret.occlusion_map`,
        ``saliency_map``, ``filter_weights``, ``extract_features``; its predictions on
        the study's test set (:func:`deepimaging.study.load_data`) reproduce the point's
        recorded confusion matrix (on the device it trained on).

        Parameters
        ----------
        sweep : str
            The sweep's name.
        value : int or float
            One of its values.
        seed : int, optional
            One of the study's seeds (default: the first).
        device : str
            Where the model is put (default the CPU).

        Returns
        -------
        PhysicalModel

        Raises
        ------
        ValueError
            No such point, a folder-less result, or a weights file that does not fit.
        FileNotFoundError
            The point has no saved weights (the message says how to rerun it only).
        deepimaging.study.weights.WeightsFileError
            The weights file was altered or truncated, or holds something other than tensors.
        """
        from .point import load_point_model

        seed = self.config.seeds[0] if seed is None else seed
        if self.folder is None:
            raise ValueError(
                "these results are not tied to a study folder; open them with "
                "deepimaging.study.load_results(folder) to reach the saved networks"
            )
        found = [p for p in self.select(sweep, value) if p["seed"] == seed]
        if not found:
            raise ValueError(
                f"no finished point sweep={sweep!r}, value={value!r}, seed={seed!r}; points: "
                f"{[(p['sweep'], p['value'], p['seed']) for p in self.points]}"
            )
        return load_point_model(self.folder, self.config, found[0], device=device)

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
            "metric": self.metric if self.points else None,
            "metric_note": self.metric_note() if self.points else None,
            "class_counts": self.points[0].get("class_counts") if self.points else None,
            "summary": self.summary(),
            "comparisons": self.comparisons(),
            "points": self.points,
        }

    def summary_csv(self) -> str:
        rows = [{k: v for k, v in row.items() if not isinstance(v, dict)} for row in self.summary()]
        return _csv(rows)

    def points_csv(self) -> str:
        keys = [
            "sweep",
            "layer",
            "value",
            "seed",
            "device",
            "accuracy",
            "balanced_accuracy",
            "macro_f1",
            "macro_auc",
            "train_loss",
            "train_accuracy",
            "train_eval_accuracy",
            "seconds",
        ]
        return _csv(
            [
                {**{k: p.get(k) for k in keys}, "weights_bytes": p.get("weights", {}).get("bytes")}
                for p in self.points
            ]
        )

    def save(self, out_dir) -> None:
        """Write ``results.json``, ``results.csv`` (summary) and ``points.csv`` atomically."""
        out = Path(out_dir)
        _write_json_atomic(out / "results.json", self.to_dict())
        write_text_atomic(out / "results.csv", self.summary_csv())
        write_text_atomic(out / "points.csv", self.points_csv())


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _spread(metric: str, numbers: list) -> dict:
    """``{metric_mean, metric_std, metric_ci_low, metric_ci_high}`` over seeds (None where undefined)."""
    if not numbers:
        return {f"{metric}_{k}": None for k in ("mean", "std", "ci_low", "ci_high")}
    values = np.asarray(numbers, dtype=float)
    low, high = t_interval(values)
    return {
        f"{metric}_mean": float(values.mean()),
        f"{metric}_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        f"{metric}_ci_low": None if np.isnan(low) else low,
        f"{metric}_ci_high": None if np.isnan(high) else high,
    }
