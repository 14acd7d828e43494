"""occlusion_map and sliding_window against named baselines, measured in the same run.

1. ``occlusion_map`` on a 3x128x128 image, 8x8 window, stride 4 (961 occluded images), against
   - Captum's ``Occlusion`` on the softmax-wrapped model at its best ``perturbations_per_eval``
     (swept; target: ours no slower), and
   - the bare forward passes it needs: the unoccluded image, then the same 961 occluded images,
     built beforehand, pushed through the model in batches of the same size (target: ours
     within 1.3x).
2. ``sliding_window`` over a 640x480 image (a BCCD-sized field), 64x64 window, stride 8
   (3,869 windows), against the naive loop of one forward pass per window (target: >= 10x):
   the exact batched method (checks it gives the same heatmaps) and ``method="dense"`` (trunk
   once over the image), with how far dense is from exact (max probability difference, argmax
   agreement). By default on a BasicCNN trained for 8 epochs on simulated 64 px cells plus
   background and a simulated smear field (``--random-model``: random init, random image).

For occlusion it also prints, per method, the minor page faults of its best run and the time
spent inside vs around the model's forward calls. On Linux, glibc may hand the memory of a
batch's activations back to the OS when they are freed, so the next batch faults it in again
(about 700,000 faults, +40 % time, per occlusion run here); whether that happens depends on the
heap's history in the process, not on the method, and it can favour either one in a given run.
``--keep-freed-memory`` first calls ``deepimaging.train.keep_freed_memory()``, which keeps freed
memory in the heap and so takes this out of the comparison. On the CPU the comparison is also
run with every contender in a fresh process of its own (``--rounds`` of them, alternating), so
that each starts from the same heap: once with glibc's defaults and once after that call.

The model is the course's BasicCNN(3, 4). Each timing, baselines included (Captum, the bare
forward passes, the naive per-window loop), is the best of ``--repeats`` runs, the runs of the
things compared interleaved so that drift in machine load hits them alike.

    python benchmarks/bench_attribution.py                 # CPU
    python benchmarks/bench_attribution.py --device cuda --repeats 10   # GPU
    python benchmarks/bench_attribution.py --keep-freed-memory          # CPU, no page-fault churn
"""

import argparse
import math
import sys
import time

import torch
from captum.attr import Occlusion

from deepimaging.data import ImageDataset, simulate_blood_smear, simulate_smear_field
from deepimaging.interpret import occlusion_map, sliding_window
from deepimaging.metrics import box_jaccard
from deepimaging.models import BasicCNN
from deepimaging.train import evaluate, fit, keep_freed_memory, seed_everything


def timed(run, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def best(runs, repeats, device):
    """Best time of each named run over ``repeats`` interleaved rounds.

    Each round starts with a different run (the order rotates), so that whichever comes
    first or last in a round (cold caches, a burst of load from other processes) is not
    always the same one.
    """
    times = {name: math.inf for name in runs}
    names = list(runs)
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            faults = page_faults()
            seconds = timed(runs[name], device)[0]
            if seconds < times[name]:
                times[name] = seconds
                FAULTS[name] = page_faults() - faults
    return times


FAULTS = {}  # minor page faults of the best run of each name (filled by best)


def page_faults():
    """Minor page faults of this process so far (0 where the OS does not report them)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_in_model(model, run):
    """(wall seconds of ``run``, seconds spent inside ``model``'s forward calls, number of calls).

    What is left, wall minus inside, is the work a method adds around the forward passes
    (building the occluded images, accumulating the map): a measure that shares the machine's
    load with the forward passes of the same run.
    """
    inside, calls, started = [0.0], [0], [0.0]

    def before(module, args):
        started[0] = time.perf_counter()

    def after(module, args, output):
        inside[0] += time.perf_counter() - started[0]
        calls[0] += 1

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    finally:
        for handle in handles:
            handle.remove()
    return wall, inside[0], calls[0]


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


def bench_occlusion(model, device, repeats, rounds=3):
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0)).to(device)
    target = int(model(image[None]).argmax())
    sizes = [16, 32, 64] if device.type == "cpu" else [64, 256, 961]
    captum_times = best(
        {ppe: occlusion_runs(model, image, target, ppe)["captum"] for ppe in sizes}, 1, device
    )
    ppe = min(captum_times, key=captum_times.get)
    print(
        "Captum Occlusion, perturbations_per_eval sweep:", {k: f"{v:.3f} s" for k, v in captum_times.items()}
    )
    runs = occlusion_runs(model, image, target, ppe)
    times = best(runs, repeats, device)
    ours = occlusion_map(model, image, target, sliding_window_shapes=8, strides=4, batch_size=ppe)
    theirs = runs["captum"]()[0, 0].cpu()
    n_occluded = (math.ceil((128 - 8) / 4) + 1) ** 2  # patch positions, as occlusion_map places them
    print(f"occlusion 3x128x128, 8x8 window, stride 4, {n_occluded} forward images, "
          f"batch {ppe}; max |ours - Captum| = {float((ours - theirs).abs().max()):.2e}")  # fmt: skip
    print(
        f"  occlusion_map {times['ours']:.3f} s, Captum {times['captum']:.3f} s, bare forwards {times['bare']:.3f} s"
    )
    # Page faults: the model's activations for a batch (16 x 16 x 128 x 128 floats = 16.8 MB for
    # the first block) are freed after every batch; whether glibc hands that memory back to the OS
    # (and the next batch faults it in again) depends on the heap's history, not on the method.
    print(f"  minor page faults in each best run: ours {FAULTS['ours']:,}, Captum {FAULTS['captum']:,}, "
          f"bare {FAULTS['bare']:,} (--keep-freed-memory keeps freed memory in the heap)")  # fmt: skip
    for name in ("ours", "captum"):
        wall, inside, calls = time_in_model(model, runs[name])
        print(f"  {name}: {calls} forward calls, {inside:.3f} s inside the model, "
              f"{wall - inside:.3f} s around it ({(wall - inside) / wall:.1%} of {wall:.3f} s)")  # fmt: skip
    print(f"occlusion_map: {times['ours'] / times['captum']:.2f}x Captum Occlusion at its best "
          f"perturbations_per_eval={ppe} (target <= 1.0x)")  # fmt: skip
    print(f"occlusion_map: {times['ours'] / times['bare']:.2f}x the bare forward passes (target <= 1.3x)")
    if device.type == "cpu":
        bench_occlusion_isolated(ppe, rounds)


def smear_classifier(window, seed=0):
    """A BasicCNN trained for 8 epochs on ``window``-pixel white cells plus a background class.

    The white cells come from ``simulate_blood_smear``; the background windows are cut from a
    simulated smear field where they touch no white cell (as notebook 06 does). Trained-ish, not
    tuned: enough that the heatmaps have structure, so the dense-vs-exact comparison is not that
    of a random network's near-uniform probabilities.
    """
    cells = simulate_blood_smear(n_per_class=60, size=window, seed=seed)
    field, true_boxes, _, _ = simulate_smear_field(size=384, n_cells=5, cell_size=window, seed=seed + 1)
    corners = torch.randint(0, 384 - window, (400, 2), generator=torch.Generator().manual_seed(seed))
    boxes = torch.cat([corners, corners + window], dim=1).float()
    empty = corners[box_jaccard(boxes, true_boxes).amax(dim=1) == 0][:60]
    background = torch.stack([field[:, y : y + window, x : x + window] for x, y in empty.tolist()])
    data = ImageDataset(
        torch.cat([cells.images, background]),
        torch.cat([cells.labels, torch.full((len(background),), len(cells.classes))]),
        cells.classes + ["background"],
    )
    seed_everything(seed)
    model = BasicCNN(3, len(data.classes))
    start = time.perf_counter()
    fit(model, data, epochs=8, lr=3e-3, batch_size=32, seed=seed, progress=False, device="cpu")
    held_out = simulate_blood_smear(n_per_class=20, size=window, seed=seed + 100)
    accuracy = evaluate(model, held_out)["accuracy"]
    print(f"trained BasicCNN on {len(data)} {window}px windows (5 classes), 8 epochs in "
          f"{time.perf_counter() - start:.1f} s; accuracy on 80 new white cells {accuracy:.2f}")  # fmt: skip
    return model.eval()


def bench_sliding_window(model, device, repeats, trained=True):
    window, stride = 64, 8
    if trained:
        model = smear_classifier(window).to(device)
        field, _, _, _ = simulate_smear_field(size=640, n_cells=12, cell_size=window, seed=7)
        image = field[:, :480, :].contiguous().to(device)  # a 640x480 (BCCD-sized) smear field
        what = "trained 5-class BasicCNN on a simulated 640x480 smear field"
    else:
        image = torch.rand(3, 480, 640, generator=torch.Generator().manual_seed(1)).to(device)
        what = "random-init 4-class BasicCNN on a random 640x480 image"
    classes = model.classifier.out_features

    def naive():
        rows, cols = (480 - window) // stride + 1, (640 - window) // stride + 1
        out = torch.zeros(classes, rows, cols, device=device)
        with torch.no_grad():
            for i in range(rows):
                for j in range(cols):
                    patch = image[None, :, i * stride : i * stride + window, j * stride : j * stride + window]
                    out[:, i, j] = torch.softmax(model(patch), dim=1)[0]
        return out.cpu()

    batch = 32 if device.type == "cpu" else 1024  # CPU: batches that fit the caches; GPU: fill it
    # The naive loop is the baseline: it gets the same best-of-``repeats`` as the methods (a single
    # run of the slow side would credit the fast side with the baseline's worst disturbance).
    times = best(
        {
            "naive": naive,
            "exact": lambda: sliding_window(model, image, window, stride, batch_size=batch),
            "dense": lambda: sliding_window(model, image, window, stride, method="dense"),
        },
        repeats,
        device,
    )
    t_naive, expected = times["naive"], naive()
    exact = sliding_window(model, image, window, stride, batch_size=batch)
    dense = sliding_window(model, image, window, stride, method="dense")
    n_windows = exact.shape[1] * exact.shape[2]
    print(f"sliding window 640x480, 64x64 window, stride 8, {n_windows} windows; {what}")
    print(f"  naive loop {t_naive:.3f} s, exact (batch {batch}) {times['exact']:.3f} s, "
          f"dense {times['dense']:.3f} s")  # fmt: skip
    print(f"  exact: max |exact - naive| = {float((exact - expected).abs().max()):.2e} (identical output)")
    difference = (dense - exact).abs()
    agree = float((dense.argmax(0) == exact.argmax(0)).float().mean())
    print(f"  dense vs exact: max |p difference| = {float(difference.max()):.3f}, mean "
          f"{float(difference.mean()):.4f}; argmax agrees on {agree:.1%} of windows "
          f"(border effect of zero padding, see sliding_window Notes)")  # fmt: skip
    # Load-independent: the trunk's convolutions run over this many input pixels (each pooling
    # stage divides the work of the later stages alike in both, so the ratio holds per layer).
    pixels_exact, pixels_dense = n_windows * window * window, image.shape[1] * image.shape[2]
    print(f"  trunk input pixels: exact/naive {pixels_exact:,}, dense {pixels_dense:,} "
          f"({pixels_exact / pixels_dense:.1f}x fewer convolutions)")  # fmt: skip
    print(f"sliding_window exact: {t_naive / times['exact']:.1f}x faster than the naive per-window loop")
    print(f"sliding_window dense: {t_naive / times['dense']:.1f}x faster than the naive per-window loop "
          f"(target >= 10x; not identical output, see above)")  # fmt: skip


def occlusion_runs(model, image, target, ppe):
    """The three occlusion contenders as callables: ours, Captum at ``ppe``, the bare forward passes."""
    captum = Occlusion(lambda x: torch.softmax(model(x), dim=1))
    batches = [b.to(image.device) for b in occluded_batches(image.cpu(), 8, 4, ppe)]

    def bare():
        with torch.no_grad():
            reference = torch.softmax(model(image[None]), dim=1)[0, target]
            return [reference - torch.softmax(model(b), dim=1)[:, target] for b in batches]

    return {
        "ours": lambda: occlusion_map(
            model, image, target, sliding_window_shapes=8, strides=4, batch_size=ppe
        ),
        "captum": lambda: captum.attribute(
            image[None],
            sliding_window_shapes=(3, 8, 8),
            strides=(3, 4, 4),
            baselines=0.5,
            target=target,
            perturbations_per_eval=ppe,
        ),  # fmt: skip
        "bare": bare,
    }


def occlusion_child(name, ppe):
    """Run one contender in this (fresh) process: a warm-up run, then print the time of a second run."""
    torch.manual_seed(0)
    model = BasicCNN(3, 4).eval()
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    run = occlusion_runs(model, image, int(model(image[None]).argmax()), ppe)[name]
    run()
    print(timed(run, torch.device("cpu"))[0])


def bench_occlusion_isolated(ppe, rounds):
    """Each contender in a fresh process of its own, ``rounds`` times, alternating; best and median.

    In one process, the memory allocator's history (what earlier runs left in the heap) decides
    whether a batch's freed activations are reused or handed back to the OS and faulted in again,
    and it can favour whichever method runs after a particular other one. A fresh process per
    run gives every method the same start. This is done twice: with glibc's default settings, and
    after ``deepimaging.train.keep_freed_memory()`` (as the course notebooks and the ``deepimaging``
    command run), which takes the page faults out and so compares the methods.
    """
    import statistics
    import subprocess

    names = ("ours", "captum", "bare")
    for label, flags in (("glibc defaults", []), ("after keep_freed_memory()", ["--keep-freed-memory"])):
        times = {name: [] for name in names}
        for round_ in range(rounds):
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                command = [sys.executable, __file__, "--child", name, "--ppe", str(ppe), *flags]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                times[name].append(float(output.split()[-1]))
        summary = {
            "best": {name: min(values) for name, values in times.items()},
            "median": {name: statistics.median(values) for name, values in times.items()},
        }
        print(
            f"  fresh process per run, {label} ({rounds} runs each, each after one warm-up run in its process):"
        )
        for statistic, value in summary.items():
            print(f"    {statistic}: occlusion_map {value['ours']:.3f} s, Captum {value['captum']:.3f} s, "
                  f"bare {value['bare']:.3f} s -> {value['ours'] / value['captum']:.2f}x Captum (target <= 1.0x), "
                  f"{value['ours'] / value['bare']:.2f}x the bare forward passes (target <= 1.3x)")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=["occlusion", "sliding"], default=None)
    parser.add_argument(
        "--rounds", type=int, default=5, help="fresh-process runs of each occlusion contender"
    )
    parser.add_argument("--child", choices=["ours", "captum", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--ppe", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument(
        "--random-model", action="store_true", help="sliding window with a random-init model (no training)"
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="call deepimaging.train.keep_freed_memory() first (Linux: no page-fault churn)",
    )
    args = parser.parse_args()
    if args.keep_freed_memory:
        print("keep_freed_memory():", keep_freed_memory())
    if args.child:
        return occlusion_child(args.child, args.ppe)
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
        bench_occlusion(model, device, args.repeats, args.rounds)
    if args.only in (None, "sliding"):
        bench_sliding_window(model, device, args.repeats, trained=not args.random_model)


if __name__ == "__main__":
    main()
