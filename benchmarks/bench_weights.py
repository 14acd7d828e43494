"""What keeping each point's network costs, and how long the attribution-across figure takes.

1. **Saving** (target: at most +5 % of a point's time). The same points are run
   with ``save_weights`` on and off, interleaved (on, off, on, off, ...) into
   fresh folders so that drift in machine load hits both alike. Reported: each
   point's own record of the time spent writing its weights (``weights.seconds``,
   hashing included) against its training time, the file size, and the
   wall-clock ratio of the whole ``run_point`` with saving on over off (noisier:
   it includes the run-to-run spread of training).
2. **Attribution across values** (target: under 30 s on 2 CPU cores): a study of
   8 bit depths (quantize 1..8), one seed, 64x64 images, is trained quickly,
   then :func:`deepimaging.plots.plot_attribution_across` draws 4 test images x
   8 values from the saved points (8 models reopened and verified, 32 occlusion
   maps with an 8x8 window and stride 4). The figure is written to ``--out``.

    python benchmarks/bench_weights.py                 # both parts
    python benchmarks/bench_weights.py --rounds 5      # more save on/off rounds
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from deepimaging import plots  # noqa: E402
from deepimaging.study import StudyConfig, Sweep, load_results, run_point, run_study  # noqa: E402


def bench_saving(rounds: int) -> None:
    # A point of the demo (deepimaging demo): its network, image size, images and epochs.
    base = dict(sweeps=[Sweep("quantize", [8])], seeds=[0], size=32, n_per_class=300, epochs=8, device="cpu")
    times = {True: [], False: []}
    save_seconds, point_seconds, sizes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for save in (True, False) if r % 2 == 0 else (False, True):  # alternate who goes first
                config = StudyConfig(**base, save_weights=save)
                start = time.perf_counter()
                record = run_point(config, "quantize", 8, 0, out_dir=Path(tmp) / f"r{r}-{save}")
                times[save].append(time.perf_counter() - start)
                if save:
                    save_seconds.append(record["weights"]["seconds"])
                    point_seconds.append(record["seconds"])
                    sizes.append(record["weights"]["bytes"])
    share = [s / p for s, p in zip(save_seconds, point_seconds)]
    ratio = min(times[True]) / min(times[False])
    print(f"1. saving, {rounds} interleaved rounds; a demo point (size 32, 4x300 images, 8 epochs)")
    print(f"   weights file: {sizes[0] / 1024:.1f} KiB per point")
    print(
        f"   time to write it (serialise, SHA-256, atomic write): median {statistics.median(save_seconds) * 1e3:.1f} ms "
        f"= {100 * statistics.median(share):.2f} % of the point's training time "
        f"(median {statistics.median(point_seconds):.2f} s)"
    )
    print(
        f"   run_point wall time, best of {rounds}: save on {min(times[True]):.2f} s, off {min(times[False]):.2f} s, "
        f"ratio {ratio:.3f} (target <= 1.05)"
    )


def bench_attribution_across(out: Path) -> None:
    config = StudyConfig(
        sweeps=[Sweep("quantize", list(range(1, 9)))],
        seeds=[0],
        size=64,
        n_per_class=40,
        epochs=2,
        device="cpu",
        parameter="bits per pixel",
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_study(config, tmp, progress=False)
        results = load_results(tmp)
        start = time.perf_counter()
        fig = plots.plot_attribution_across(
            results, method="occlusion", images=4, sliding_window_shapes=8, strides=4
        )
        seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    print(
        f"2. attribution across values: 8 values x 4 images at 64x64, occlusion 8x8 stride 4, "
        f"{torch.get_num_threads()} torch threads: {seconds:.1f} s (target < 30 s); figure: {out}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="save on/off rounds (default: %(default)s)")
    parser.add_argument(
        "--out", type=Path, default=Path("attribution_across.png"), help="where the figure goes"
    )
    parser.add_argument("--skip-saving", action="store_true")
    parser.add_argument("--skip-figure", action="store_true")
    args = parser.parse_args()
    if not args.skip_saving:
        bench_saving(args.rounds)
    if not args.skip_figure:
        bench_attribution_across(args.out)


if __name__ == "__main__":
    main()
