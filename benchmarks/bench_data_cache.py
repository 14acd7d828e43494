"""Image-folder loading: second load (uint8 cache) against the first load (JPEG decode), in one run.

python benchmarks/bench_data_cache.py [--n 2000] [--size 128] [--repeats 3]

Writes ``n`` JPEGs of the simulated blood smear (rounded up to a multiple of 32) into a temporary folder, then times

* the first load with serial decoding (``n_jobs=1``) and with one thread per core,
* the second load from the cache (``load_image_folder``, an ``ImageDataset`` that
  keeps the uint8 pixels and reads them as float one batch at a time),
* what reading the images then costs: one epoch of float batches as ``fit`` converts
  them, and the whole set as one float tensor (``dataset.images``),

and measures the peak memory of a first load with tracemalloc (numpy reports its
buffers to it), scaled to the 12,500 images of the Kaggle set. Every timing that is compared
with another is the best of ``--repeats`` runs (a first load into a fresh cache folder each
time); the 700 MB memory budget is a target, printed as one.
"""

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepimaging.data import load_image_folder, read_image_folder, simulate_blood_smear
from deepimaging.models import BasicCNN

KAGGLE_IMAGES = 12_500
BUDGET_MB = 700


def write_jpegs(root: Path, n: int, size: int) -> None:
    """``n`` distinct JPEGs: n/8 simulated cells at half size, upscaled, in their 8 rotations/flips.

    (Simulating every image at full size would take longer than the benchmark itself.)
    """
    ds = simulate_blood_smear(n_per_class=-(-n // 32), size=size // 2, seed=0)
    pixels = (ds.images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    k = 0
    for array, label in zip(pixels, ds.labels.tolist()):
        folder = root / ds.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(array).resize((size, size), Image.Resampling.BICUBIC)
        for variant in range(8):
            flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if variant >= 4 else image
            flipped.rotate(90 * (variant % 4)).save(folder / f"{k:05d}.jpeg", quality=90)
            k += 1


def training_step_seconds(batch: torch.Tensor, num_classes: int, repeats: int = 3) -> float:
    """Best time of one Adam step of BasicCNN on ``batch`` (forward, backward, update)."""
    model = BasicCNN(batch.shape[1], num_classes)
    optimizer = torch.optim.Adam(model.parameters())
    labels = torch.arange(len(batch)) % num_classes

    def step():
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    return min(timed(step)[0] for _ in range(repeats))


def timed(run):
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs of each timing")
    args = parser.parse_args()
    repeats = args.repeats
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        root, tmp = Path(tmp) / "images", Path(tmp)
        seconds, _ = timed(lambda: write_jpegs(root, args.n, args.size))
        n = sum(1 for _ in root.rglob("*.jpeg"))
        print(f"wrote {n} JPEGs of {args.size}x{args.size} in {seconds:.1f} s; {cores} CPU cores")

        # First loads: each run into a fresh cache folder (a cached folder would be a second load),
        # serial and parallel interleaved so that drift in machine load hits both alike.
        serial = parallel = float("inf")
        for r in range(repeats):
            serial = min(
                serial,
                timed(lambda r=r: load_image_folder(root, args.size, cache_dir=tmp / f"s{r}", n_jobs=1))[0],
            )
            parallel = min(
                parallel, timed(lambda r=r: load_image_folder(root, args.size, cache_dir=tmp / f"p{r}"))[0]
            )
        print(
            f"first load, decode 1 thread:    {serial:.2f} s ({n / serial:,.0f} images/s; best of {repeats})"
        )
        print(
            f"first load, decode {cores} threads:   {parallel:.2f} s ({n / parallel:,.0f} images/s) "
            f"= {serial / parallel:.2f}x serial decode"
        )
        first = min(serial, parallel)
        second, dataset = min(
            (timed(lambda: load_image_folder(root, args.size, cache_dir=tmp / "s0")) for _ in range(repeats)),
            key=lambda run: run[0],
        )
        print(
            f"second load (cache, uint8 ImageDataset): {second * 1000:.1f} ms "
            f"= {first / second:.0f}x faster than the first load"
        )
        # What reading the images costs afterwards, so the cache is not credited with work moved elsewhere.
        batches = min(
            timed(lambda: [dataset.images_at(slice(i, i + 64)) for i in range(0, len(dataset), 64)])[0]
            for _ in range(repeats)
        )
        print(
            f"  then one epoch of float batches (64 images each, converted as fit does): {batches * 1000:.1f} ms"
        )
        whole, _ = timed(lambda: dataset.images)
        print(f"  or the whole set as one float32 tensor (dataset.images, once): {whole * 1000:.1f} ms")
        step = training_step_seconds(dataset.images_at(slice(0, 64)), dataset.num_classes, repeats)
        epoch = step * -(-len(dataset) // 64)
        print(
            f"  next to a training epoch of BasicCNN on these images ({epoch:.1f} s, from {step * 1000:.0f} ms "
            f"per step of 64), the batch conversion is {batches / epoch:.1%} of an epoch"
        )

        tracemalloc.start()
        images, _, _ = read_image_folder(root, args.size, cache_dir=tmp / "memory")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        per_image = images.nbytes / len(images)
        print(
            f"cache: {per_image:,.0f} bytes/image; {KAGGLE_IMAGES:,} images = {KAGGLE_IMAGES * per_image / 1e6:.0f} MB "
            f"(target: within a budget of {BUDGET_MB} MB)"
        )
        print(
            f"peak traced memory of a first load: {peak / 1e6:.1f} MB for {n} images "
            f"-> {peak / n * KAGGLE_IMAGES / 1e6:.0f} MB for {KAGGLE_IMAGES:,}"
        )
        del images
        assert np.isfinite(peak)


if __name__ == "__main__":
    main()
