"""occlusion_map and sliding_window against named baselines, measured in the same run.

1. ``occlusion_map`` on a 3x128x128 image, 8x8 window, stride 4 (961 occluded images), against
   - Captum's ``Occlusion`` on the softmax-wrapped model at its best ``perturbations_per_eval``
     (swept; target: ours no slower), and
   - the bare forward passes it needs: the unoccluded image, then the same 961 occluded images,
     built beforehand, pushed through the model in batches of the same size (target: ours
     within 1.3x).
2. ``sliding_window`` over a 640x480 image (a BCCD-sized field), 64x64 window, stride 8
   (3,869 windows), against the naive loop of one forward pass per window (target: >= 10x),
   and checks that both give the same heatmaps.

The model is the course's BasicCNN(3, 4). Each timing is the best of ``--repeats`` runs,
the runs of the things compared interleaved so that drift in machine load hits them alike.

    python benchmarks/bench_attribution.py                 # CPU
    python benchmarks/bench_attribution.py --device cuda --repeats 10   # GPU
"""

import argparse
import math
import time

import torch
from captum.attr import Occlusion

from deepimaging.interpret import occlusion_map, sliding_window
from deepimaging.models import BasicCNN


def timed(run, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def best(runs, repeats, device):
    """Best time of each named run over ``repeats`` interleaved rounds."""
    times = {name: math.inf for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name] = min(times[name], timed(run, device)[0])
    return times


def occluded_batches(image, window, stride, batch_size):
    """The occluded images occlusion_map needs, built once, in batches (the bare-forward baseline)."""
    _, height, width = image.shape
    batches, current = [], []
    for top in range(0, math.ceil((height - window) / stride) * stride + 1, stride):
        for left in range(0, math.ceil((width - window) / stride) * stride + 1, stride):
            occluded = image.clone()
            occluded[:, top : top + window, left : left + window] = 0.5
            current.append(occluded)
            if len(current) == batch_size:
                batches.append(torch.stack(current))
                current = []
    if current:
        batches.append(torch.stack(current))
    return batches


def bench_occlusion(model, device, repeats):
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0)).to(device)
    target = int(model(image[None]).argmax())
    softmax_model = lambda x: torch.softmax(model(x), dim=1)  # noqa: E731
    captum = Occlusion(softmax_model)

    def run_captum(ppe):
        return lambda: captum.attribute(
            image[None], sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), baselines=0.5, target=target,
            perturbations_per_eval=ppe,
        )  # fmt: skip

    sizes = [16, 32, 64] if device.type == "cpu" else [64, 256, 961]
    captum_times = best({ppe: run_captum(ppe) for ppe in sizes}, 1, device)
    ppe = min(captum_times, key=captum_times.get)
    print(
        "Captum Occlusion, perturbations_per_eval sweep:", {k: f"{v:.3f} s" for k, v in captum_times.items()}
    )

    batches = [b.to(device) for b in occluded_batches(image, 8, 4, ppe)]

    def bare():  # the unoccluded image's probability, then every occluded one's
        with torch.no_grad():
            reference = torch.softmax(model(image[None]), dim=1)[0, target]
            return [reference - torch.softmax(model(b), dim=1)[:, target] for b in batches]

    runs = {
        "ours": lambda: occlusion_map(
            model, image, target, sliding_window_shapes=8, strides=4, batch_size=ppe
        ),
        "captum": run_captum(ppe),
        "bare": bare,
    }
    times = best(runs, repeats, device)
    ours = occlusion_map(model, image, target, sliding_window_shapes=8, strides=4, batch_size=ppe)
    theirs = run_captum(ppe)()[0, 0].cpu()
    print(f"occlusion 3x128x128, 8x8 window, stride 4, {sum(len(b) for b in batches)} forward images, "
          f"batch {ppe}; max |ours - Captum| = {float((ours - theirs).abs().max()):.2e}")  # fmt: skip
    print(
        f"  occlusion_map {times['ours']:.3f} s, Captum {times['captum']:.3f} s, bare forwards {times['bare']:.3f} s"
    )
    print(f"occlusion_map: {times['ours'] / times['captum']:.2f}x Captum Occlusion at its best "
          f"perturbations_per_eval={ppe} (target <= 1.0x)")  # fmt: skip
    print(f"occlusion_map: {times['ours'] / times['bare']:.2f}x the bare forward passes (target <= 1.3x)")


def bench_sliding_window(model, device, repeats):
    image = torch.rand(3, 480, 640, generator=torch.Generator().manual_seed(1)).to(device)
    window, stride = 64, 8

    def naive():
        rows, cols = (480 - window) // stride + 1, (640 - window) // stride + 1
        out = torch.zeros(4, rows, cols, device=device)
        with torch.no_grad():
            for i in range(rows):
                for j in range(cols):
                    patch = image[None, :, i * stride : i * stride + window, j * stride : j * stride + window]
                    out[:, i, j] = torch.softmax(model(patch), dim=1)[0]
        return out.cpu()

    t_naive, expected = timed(naive, device)  # one naive run: it is the slow one
    batch = 32 if device.type == "cpu" else 1024  # CPU: batches that fit the caches; GPU: fill it
    t_ours = best(
        {"ours": lambda: sliding_window(model, image, window, stride, batch_size=batch)}, repeats, device
    )
    ours = sliding_window(model, image, window, stride, batch_size=batch)
    difference = float((ours - expected).abs().max())
    print(f"sliding window 640x480, 64x64 window, stride 8, {ours.shape[1] * ours.shape[2]} windows; "
          f"max |ours - naive| = {difference:.2e}")  # fmt: skip
    print(f"  sliding_window (batch {batch}) {t_ours['ours']:.3f} s, naive loop {t_naive:.3f} s")
    print(
        f"sliding_window: {t_naive / t_ours['ours']:.1f}x faster than the naive per-window loop (target >= 10x)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=["occlusion", "sliding"], default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = BasicCNN(3, 4).to(device).eval()
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; torch {torch.__version__}")
    if args.only in (None, "occlusion"):
        bench_occlusion(model, device, args.repeats)
    if args.only in (None, "sliding"):
        bench_sliding_window(model, device, args.repeats)


if __name__ == "__main__":
    main()
