"""``deepimaging demo``: the worked bit-depth study, from configuration to run to results page."""

from __future__ import annotations

from pathlib import Path

from ..report import write_report
from ..study import bit_depth_config, run_study

__all__ = ["run_demo"]

DEMO_TITLE = "Sensor bit depth versus classification accuracy"
DEMO_DESCRIPTION = (
    "We test the classification performance of a microscope as a function of its sensor bit depth. "
    "Simulated stained blood smears of four white-cell types are recorded by a sensor with 1 to 8 bits "
    "per pixel, and a small CNN is trained on each sensor's images; we plot the mean test accuracy "
    "over several seeds against the number of bits. We then ask whether the discretization can be "
    "optimised as a physical layer: each pixel's raw intensity is multiplied by a learned weight and "
    "clipped at a threshold before quantization (learned discretization), and, under a budget of mean "
    "bits per pixel, the network learns how many bits every pixel gets (bit allocation) — its bits map "
    "shows where the network prefers more bits."
)


def run_demo(
    out_dir="deepimaging-demo",
    *,
    jobs: int = 2,
    smoke=None,
    title=None,
    authors=None,
    progress=True,
    dataset: str = "blood_smear",
    dataset_options: dict | None = None,
    device: str = "auto",
) -> Path:
    """``deepimaging demo``: the worked bit-depth study, from run to web page.

    Runs :func:`deepimaging.study.bit_depth_config` (resuming in ``out_dir`` if
    it holds the same configuration), then writes results.json/CSV, the figures
    as PNG and PDF and ``index.html``. Returns the page's path.

    ``dataset`` (default: the built-in simulated smear) may name any loader of
    :mod:`deepimaging.data` (e.g. ``"bccd_crops"`` with ``{"root": ...}``, or ``"digits"``).
    ``device`` is the study's (``"auto"``: CUDA, then MPS, then the CPU).
    """
    config = bit_depth_config(
        smoke=smoke, dataset=dataset, dataset_options=dict(dataset_options or {}), device=device
    )
    results = run_study(config, out_dir, jobs=jobs, progress=progress)
    description = DEMO_DESCRIPTION
    if dataset != "blood_smear":
        description = (
            f"The bit-depth study of the deepimaging demo on the {dataset} dataset: test accuracy against "
            "sensor bits (fixed quantization and learned discretization) and a learned per-pixel bit "
            "allocation under a budget of mean bits per pixel."
        )
    return write_report(
        results,
        out_dir,
        title=title or DEMO_TITLE,
        authors=authors or ["deepimaging demo"],
        description=description,
    )
