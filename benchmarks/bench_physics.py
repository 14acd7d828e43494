"""What a physical layer costs a user: one training step with the layer, relative to the CNN alone; and the demo.

Run:  python benchmarks/bench_physics.py [--device cpu|cuda] [--batch 64] [--size 64] [--repeats 7]
                                         [--layers noise sensor ...] [--demo] [--no-guard]

1. Per layer of :data:`deepimaging.physics.LAYERS`: the median time of one
   training step (forward, backward, Adam step) of
   ``PhysicalModel(layer, BasicCNN)`` divided by that of ``BasicCNN`` alone, on
   a batch of ``--batch`` images of 3 x ``--size`` x ``--size`` (the two are
   timed in alternation, so a busy machine slows both alike). Guard: no layer
   except the coherent microscope above 2x; the script exits with status 1 if
   one is (``--no-guard`` only reports).
2. ``--demo``: ``deepimaging demo`` in a fresh process (its own output folder,
   ``--jobs 2``): wall time, peak memory of the whole process tree (sampled
   every 0.2 s), and the demo's own numbers. Guard: under 3 minutes, under
   2 GB, test accuracy at 8 bits >= 90% and at 1 bit at least 10 points lower.

The figures of earlier sessions, and what was learnt from them, are in
benchmarks/physics_results.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import deepimaging.physics as P
from deepimaging.models import BasicCNN, PhysicalModel

# The swept value used for each layer: a typical point of a study.
VALUES = {
    "identity": None,
    "quantize": 4,
    "learned_discretization": 4,
    "bit_allocation": 3.0,
    "gaussian_blur": 2.0,
    "defocus_blur": 3.0,
    "airy_blur": 2.0,
    "learned_psf": 9,
    "shift_variant_blur": 2,
    "binning": 4,
    "variable_pixels": 4,
    "noise": 100.0,
    "sensor": 100.0,
    "bayer": None,
    "learned_cfa": 2,
    "exposure_mosaic": 8.0,
    "sparse_mask": 0.25,
    "led_weighting": None,
    "microscope": 0.5,
}
EXEMPT = {"microscope"}  # coherent imaging: a complex FFT per LED, the cost of the physics itself
MAX_RATIO = 2.0


def _step_timer(model, images, labels, device):
    """A function that runs one training step and returns its duration in seconds."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step


def layer_ratios(names, device, batch, size, repeats) -> dict:
    """{name: (seconds with the layer, seconds of the CNN alone)}, medians over ``repeats`` alternated steps."""
    results = {}
    for name in names:
        shape = (9, size, size) if name == "led_weighting" else (3, size, size)
        layer = P.make_layer(name, VALUES[name], shape)
        channels = P.output_shape(layer, shape)[0]
        torch.manual_seed(0)
        images = torch.rand(batch, *shape, device=device)
        labels = torch.randint(0, 3, (batch,), device=device)
        with_layer = _step_timer(
            PhysicalModel(layer, BasicCNN(channels, 3)).to(device), images, labels, device
        )
        # The CNN alone sees what the layer outputs (same channels, same size): only the layer differs.
        cnn_images = layer.to(device)(images).detach().clamp(0, 1)
        alone = _step_timer(BasicCNN(channels, 3).to(device), cnn_images, labels, device)
        for step in (with_layer, alone):  # warm-up: allocations, lazy initialisation
            step(), step()
        pairs = [(with_layer(), alone()) for _ in range(repeats)]
        results[name] = (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))
    return results


def _tree_rss(process) -> int:
    """Resident memory of a process and all its children, in bytes (0 for one that has just ended)."""
    import psutil

    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_demo() -> dict:
    """Wall time, peak memory and the numbers of ``deepimaging demo`` in a fresh process."""
    import psutil

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "demo"
        command = [sys.executable, "-m", "deepimaging.cli", "demo", "--out", str(out), "--no-progress"]
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        process, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(process))
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        if child.returncode:
            raise SystemExit(f"deepimaging demo failed with status {child.returncode}")
        results = json.loads((out / "results.json").read_text())
    return {"seconds": seconds, "peak_bytes": peak, "accuracy": _quantize_accuracy(results)}


def _quantize_accuracy(results: dict) -> dict:
    """{bits: mean test accuracy over seeds} of the demo's fixed-quantizer sweep."""
    by_bits: dict = {}
    for point in results["points"]:
        if point["sweep"] == "quantize":
            by_bits.setdefault(int(point["value"]), []).append(point["accuracy"])
    return {bits: statistics.mean(values) for bits, values in sorted(by_bits.items())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--layers", nargs="*", default=list(VALUES))
    parser.add_argument("--demo", action="store_true", help="also time deepimaging demo")
    parser.add_argument("--no-guard", action="store_true", help="report only, exit 0")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch} x 3 x {args.size}^2")
    failures = []
    print(f"{'layer':24s} {'step with layer':>16s} {'CNN alone':>10s} {'ratio':>6s}")
    for name, (seconds, alone) in layer_ratios(
        args.layers, device, args.batch, args.size, args.repeats
    ).items():
        ratio = seconds / alone
        flag = ""
        if ratio > MAX_RATIO and name not in EXEMPT:
            failures.append(f"{name}: {ratio:.2f}x the CNN alone (limit {MAX_RATIO}x)")
            flag = "  above the limit"
        print(f"{name:24s} {seconds * 1e3:13.1f} ms {alone * 1e3:7.1f} ms {ratio:5.2f}x{flag}")
    if args.demo:
        demo = run_demo()
        accuracy = demo["accuracy"]
        print(
            f"demo: {demo['seconds']:.0f} s, peak memory {demo['peak_bytes'] / 2**30:.2f} GB, "
            f"test accuracy by bits { ({b: round(a, 3) for b, a in accuracy.items()}) }"
        )
        if demo["seconds"] > 180:
            failures.append(f"demo took {demo['seconds']:.0f} s (limit 180 s)")
        if demo["peak_bytes"] > 2 * 2**30:
            failures.append(f"demo peak memory {demo['peak_bytes'] / 2**30:.2f} GB (limit 2 GB)")
        if not (accuracy.get(8, 0) >= 0.9 and accuracy.get(1, 1) <= accuracy.get(8, 0) - 0.10):
            failures.append(
                f"demo accuracy: 8 bits must be >= 0.90 and 1 bit 10 points lower; got {accuracy}"
            )
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures and not args.no_guard else 0


if __name__ == "__main__":
    raise SystemExit(main())
