"""Image-folder loading: second load (uint8 cache) against the first load (JPEG decode), in one run.

python benchmarks/bench_data_cache.py [--n 2000] [--size 128]

Writes ``n`` JPEGs of the simulated blood smear (rounded up to a multiple of 32) into a temporary folder, then times

* the first load with serial decoding (``n_jobs=1``) and with one thread per core,
* the second load from the cache, as the uint8 memory map (``read_image_folder``)
  and as the float ``ImageDataset`` (``load_image_folder``),

and measures the peak memory of a first load with tracemalloc (numpy reports its
buffers to it), scaled to the 12,500 images of the Kaggle set.
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


def timed(run):
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        root, tmp = Path(tmp) / "images", Path(tmp)
        seconds, _ = timed(lambda: write_jpegs(root, args.n, args.size))
        n = sum(1 for _ in root.rglob("*.jpeg"))
        print(f"wrote {n} JPEGs of {args.size}x{args.size} in {seconds:.1f} s; {cores} CPU cores")

        serial, _ = timed(lambda: read_image_folder(root, args.size, cache_dir=tmp / "serial", n_jobs=1))
        parallel, _ = timed(lambda: read_image_folder(root, args.size, cache_dir=tmp / "parallel"))
        print(f"first load, decode 1 thread:    {serial:.2f} s ({n / serial:,.0f} images/s)")
        print(
            f"first load, decode {cores} threads:   {parallel:.2f} s ({n / parallel:,.0f} images/s) "
            f"= {serial / parallel:.2f}x serial decode"
        )
        first = min(serial, parallel)
        cached = min(
            timed(lambda: read_image_folder(root, args.size, cache_dir=tmp / "serial"))[0] for _ in range(3)
        )
        dataset = min(
            timed(lambda: load_image_folder(root, args.size, cache_dir=tmp / "serial"))[0] for _ in range(3)
        )
        print(
            f"second load, uint8 memory map:  {cached * 1000:.1f} ms = {first / cached:.0f}x faster than first load"
        )
        pixels = torch.from_numpy(np.array(read_image_folder(root, args.size, cache_dir=tmp / "serial")[0]))
        cast = min(timed(lambda: pixels.float().div_(255))[0] for _ in range(3))
        print(f"  (uint8 -> float32 cast of the same pixels already in memory: {cast * 1000:.1f} ms)")
        print(
            f"second load, float ImageDataset: {dataset * 1000:.1f} ms = {first / dataset:.0f}x faster than first load"
        )

        tracemalloc.start()
        images, _, _ = read_image_folder(root, args.size, cache_dir=tmp / "memory")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        per_image = images.nbytes / len(images)
        print(
            f"cache: {per_image:,.0f} bytes/image; {KAGGLE_IMAGES:,} images = {KAGGLE_IMAGES * per_image / 1e6:.0f} MB "
            f"(budget {BUDGET_MB} MB)"
        )
        print(
            f"peak traced memory of a first load: {peak / 1e6:.1f} MB for {n} images "
            f"-> {peak / n * KAGGLE_IMAGES / 1e6:.0f} MB for {KAGGLE_IMAGES:,}"
        )
        del images
        assert np.isfinite(peak)


if __name__ == "__main__":
    main()
