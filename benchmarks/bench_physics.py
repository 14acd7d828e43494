"""Cost of each physical layer inside a training step of PhysicalModel(layer, BasicCNN).

Run:  python benchmarks/bench_physics.py [--device cpu|cuda] [--batch 128] [--repeats 9] [--layers noise ...]
                                         [--skip-convolution] [--keep-freed-memory] [--scene uniform|blood]
      python benchmarks/bench_physics.py --count-ops [--verbose] [--layers ...]   (operator launches)
      python benchmarks/bench_physics.py --compile --skip-convolution [--layers ...]   (through torch.compile)

Prints, for every layer of deepimaging.physics.LAYERS, the layer's forward +
backward time as a share of one full training step (forward, backward, Adam
step) of PhysicalModel(layer, BasicCNN) on a batch of 128 images of 3x64x64,
measured in the same run. Target: <= 20% for every layer except the coherent
microscope. First it times direct against FFT convolution for PSF sizes 3 to
31 (the crossover sets how deepimaging.physics.blur's method="auto" chooses).

The figures measured so far, and what was tried and dropped, are in
benchmarks/physics_results.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

import deepimaging.models as models
import deepimaging.physics as P
from deepimaging.data import simulate_blood_smear
from deepimaging.models import BasicCNN, PhysicalModel
from deepimaging.physics import mosaic
from deepimaging.train import keep_freed_memory

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


def once(fn, device):
    """Wall time of one call of fn() (on a GPU, until its work is done)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed(fn, device, repeats):
    """Median wall time of fn() over repeats, after one warm-up call."""
    fn()
    return statistics.median(once(fn, device) for _ in range(repeats))


def bench_convolution(x, device, repeats):
    print("PSF size | fixed PSF, forward (ms)     | learnable PSF, forward + backward (ms)")
    print("         | direct    FFT   FFT/direct | direct    FFT   FFT/direct")
    for k in (3, 5, 7, 9, 15, 31):
        fixed = P.gaussian_psf(k, k / 6).to(device)
        learned = fixed.clone().requires_grad_()
        row = []
        for psf in (fixed, learned):
            result = {}
            for method in ("direct", "fft"):

                def step(method=method, psf=psf):
                    out = P.blur(x, psf, method)
                    if psf.requires_grad:
                        torch.autograd.grad(out, psf, torch.ones_like(out))

                result[method] = timed(step, device, repeats)
            row.append(
                f"{1e3 * result['direct']:6.1f} {1e3 * result['fft']:6.1f} {result['fft'] / result['direct']:8.2f}x"
            )
        print(f"{k:8d} | {row[0]}   | {row[1]}")


def build(name, value, x, device, options=None, foreach=None):
    """(scene, layer, model, optimizer, layer's learnable parameters) for one registered layer."""
    shape = (9, *x.shape[-2:]) if name == "led_weighting" else tuple(x.shape[1:])
    scene = torch.rand(len(x), *shape, device=device) if name == "led_weighting" else x
    torch.manual_seed(0)
    layer = P.make_layer(name, value, shape, **(options or {}))
    channels = P.output_shape(layer, shape)[0]
    model = PhysicalModel(layer, BasicCNN(channels, 4)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=foreach)
    params = [p for p in layer.parameters() if p.requires_grad]
    return scene, layer, model, optimizer, params


def measure_layer(name, value, x, labels, device, repeats, compile_=False):
    """(layer forward + backward, full training step, share) for one registered layer: medians over repeats.

    The layer and the step are timed in alternation and the share is the median of the pairs' ratios, so a
    machine that slows down or speeds up during the run moves both alike. ``compile_``: the layer and the
    whole model run through ``torch.compile`` (their first calls, which compile, are not timed).
    """
    scene, layer, model, optimizer, params = build(name, value, x, device)
    loss_fn = torch.nn.CrossEntropyLoss()
    run_layer, run_model = (torch.compile(layer), torch.compile(model)) if compile_ else (layer, model)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(run_model(scene), labels).backward()
        optimizer.step()

    def layer_step():
        out = run_layer(scene)
        if params:  # in a training step the layer's backward only reaches its own parameters
            torch.autograd.grad(out, params, torch.ones_like(out))

    layer_step(), train_step()  # warm-up
    pairs = [(once(layer_step, device), once(train_step, device)) for _ in range(repeats)]
    layer_times, step_times = zip(*pairs)
    share = statistics.median(a / b for a, b in pairs)
    return statistics.median(layer_times), statistics.median(step_times), share


# Operator launches, a load-independent proxy for a GPU step that is launch-bound (an H100 runs a step of
# BasicCNN on 128 x 3 x 64 x 64 in ~4 ms, so every small kernel of a physical layer counts). The CPU
# profiler records every aten operator, nested (conv2d > convolution > mkldnn_convolution). An operator
# counts as one launch when none of the operators it calls does; operators that only make views or
# allocate memory launch nothing. A multi-tensor operator (the optimizer's _foreach_*) counts once, as one
# multi_tensor_apply kernel on a GPU (so does aminmax, see ONE_LAUNCH). _local_scalar_dense (.item(), float(tensor)) is a device-to-host copy
# that makes the CPU wait for the GPU: counted as a launch and listed as a "sync".
NO_LAUNCH = {
    "aten::" + op
    for op in """alias as_strided as_strided_ chunk contiguous detach detach_ diagonal empty empty_like
    empty_strided expand expand_as flatten lift_fresh movedim narrow new_empty new_empty_strided numpy_T permute
    reshape _reshape_alias resize_ resolve_conj resolve_neg result_type select set_ slice split split_with_sizes
    squeeze t to _to_copy transpose unbind unflatten unfold unsqueeze _unsafe_view view view_as""".split()
}
# One kernel on a GPU, though the CPU implementation calls others (aminmax fills its outputs first).
ONE_LAUNCH = {"aten::aminmax"}
# Layers whose method="auto" picks another computation on a GPU than on the CPU: count the GPU's path.
CUDA_OPTIONS = {
    "gaussian_blur": {"method": "direct"},
    "defocus_blur": {"method": "direct"},
    "airy_blur": {"method": "direct"},
    "learned_psf": {"method": "direct"},
    "shift_variant_blur": {"method": "direct"},
    "noise": {"method": "exact"},
    "sensor": {"method": "exact"},
}


# Tensor.tolist() copies a device tensor to the host in one go, but on the CPU it dispatches no operator;
# count_launches marks it with this name.
TOLIST = "aten::_local_scalar_dense (tolist)"
SYNCS = ("aten::_local_scalar_dense", TOLIST)


# Elementwise operators (TensorIterator) whose inputs of another dtype (a Python number, a bool mask) the CPU
# first copies to the common dtype (an aten::to inside the operator), while a GPU kernel casts them as it
# reads them: on a GPU those copies are not launches.
CASTS_IN_KERNEL = {
    "aten::" + op
    for op in """add add_ sub sub_ mul mul_ div div_ addcmul addcmul_ addcdiv eq ne ge gt le lt maximum minimum
    clamp clamp_ clamp_min clamp_max where lerp pow rsub""".split()
}


def _launches(event, tally, parent=None) -> int:
    if event.name.startswith("aten::_foreach_") or event.name in ONE_LAUNCH or event.name == TOLIST:
        tally[event.name] += 1
        return 1
    if event.name == "aten::to" and parent in CASTS_IN_KERNEL:
        return 0
    inner = sum(
        _launches(child, tally, event.name) for child in event.cpu_children if child.name.startswith("aten::")
    )
    if inner or event.name in NO_LAUNCH:
        return inner
    tally[event.name] += 1
    return 1


def _marked_tolist(tensor):
    with torch.profiler.record_function(TOLIST):
        return _TOLIST(tensor)


_TOLIST = torch.Tensor.tolist


def count_launches(fn) -> collections.Counter:
    """Operator launches of ``fn()`` by operator name (see NO_LAUNCH above); fn runs once, profiled."""
    torch.Tensor.tolist = _marked_tolist
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
    finally:
        torch.Tensor.tolist = _TOLIST
    tally = collections.Counter()
    for event in prof.events():
        parent = event.cpu_parent
        if event.name.startswith("aten::") and (parent is None or not parent.name.startswith("aten::")):
            _launches(event, tally)
    return tally


def count_layer(name, value, x, labels, device):
    """(layer launches, layer syncs, training step launches) for one registered layer, on a GPU's path."""
    # foreach=True is the optimizer a GPU uses by default; its step counters stay on the CPU there, so
    # their .item() calls are not device syncs and are left out.
    options = CUDA_OPTIONS.get(name) if device.type == "cpu" else None
    with _gpu_paths():
        return _count_layer(name, value, x, labels, device, options)


@contextlib.contextmanager
def _gpu_paths():
    """Count what a GPU runs where the CPU runs something else.

    Filter mosaics broadcast the tile over blocks on a GPU but copy it over the field on a CPU, and
    BasicCNN lays its input out channels-last on a CPU only (its copies, forward and backward, would
    add launches to every step that a GPU does not run).
    """
    times_tile, fast_layout = mosaic._times_tile, models._fast_layout
    mosaic._times_tile = functools.partial(times_tile, blocks=True)
    models._fast_layout = lambda x: x
    try:
        yield
    finally:
        mosaic._times_tile, models._fast_layout = times_tile, fast_layout


def _count_layer(name, value, x, labels, device, options):
    scene, layer, model, optimizer, params = build(name, value, x, device, options, foreach=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward_backward():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(scene), labels).backward()

    forward_backward()  # warm-up: lazy state (optimizer moments, cached buffers) is not part of a step
    optimizer.step()
    step = count_launches(forward_backward)
    adam = count_launches(optimizer.step)
    step_total = step.total() + adam.total() - sum(adam[name] for name in SYNCS)
    grad = torch.ones_like(layer(scene))

    def layer_step():
        out = layer(scene)
        if params:  # as in a training step, the layer's backward only reaches its own parameters
            torch.autograd.grad(out, params, grad)

    layer_step()
    tally = count_launches(layer_step)
    return tally, step_total


def bench_counts(x, labels, device, names=None, verbose=False):
    print("\nlayer                  | layer launches (syncs) | training step launches | share of step")
    for name, value in VALUES.items():
        if names and name not in names:
            continue
        tally, step = count_layer(name, value, x, labels, device)
        share = tally.total() / step
        flag = "" if share <= 0.2 or name == "microscope" else "  <-- above 20%"
        syncs = sum(tally[name] for name in SYNCS)
        print(f"{name:22s} | {tally.total():14d} ({syncs:3d}) | {step:22d} | {100 * share:11.1f}%{flag}")
        if verbose:
            print("    " + ", ".join(f"{op.removeprefix('aten::')} {n}" for op, n in tally.most_common()))


def bench_layers(x, labels, device, repeats, names=None, compile_=False):
    print(
        f"\nlayer                  | layer fwd+bwd (ms) | training step (ms) | share of step (median of {repeats} pairs)"
        + (", torch.compile" if compile_ else "")
    )
    for name, value in VALUES.items():
        if names and name not in names:
            continue
        t_layer, t_step, share = measure_layer(name, value, x, labels, device, repeats, compile_)
        flag = "" if share <= 0.2 or name == "microscope" else "  <-- above 20%"
        print(f"{name:22s} | {1e3 * t_layer:18.1f} | {1e3 * t_step:18.1f} | {100 * share:11.1f}%{flag}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--skip-convolution", action="store_true")
    parser.add_argument("--layers", nargs="+", choices=list(VALUES), help="only these layers (default: all)")
    parser.add_argument(
        "--count-ops",
        action="store_true",
        help="count operator launches (layer and training step) instead of timing; load-independent",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="with --count-ops: list each layer's operators"
    )
    parser.add_argument(
        "--scene",
        choices=("uniform", "blood"),
        default="uniform",
        help="the images: uniform noise in [0, 1] (10%% of pixels below 0.1: the darkest case for the shot "
        "noise's exact draws) or the built-in simulated blood smear",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="time the layer and the training step through torch.compile (compiling takes seconds per layer)",
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="call deepimaging.train.keep_freed_memory() first, as the notebooks and the CLI do",
    )
    args = parser.parse_args()
    if args.keep_freed_memory:
        print("keep_freed_memory():", keep_freed_memory())
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    if args.scene == "uniform":
        x = torch.rand(args.batch, 3, args.size, args.size, generator=generator)
        labels = torch.randint(0, 4, (args.batch,), generator=generator)
    else:  # the course's built-in images: bright background, no pixel below 0.1
        smear = simulate_blood_smear(-(-args.batch // 4), size=args.size, seed=0)
        x, labels = smear.images[: args.batch], smear.labels[: args.batch]
    x, labels = x.to(device), labels.to(device)
    print(
        f"device {device}, {torch.get_num_threads()} threads, batch {tuple(x.shape)} ({args.scene}), "
        f"torch {torch.__version__}\n"
    )
    if args.count_ops:
        bench_counts(x, labels, device, args.layers, args.verbose)
        return
    if not args.skip_convolution:
        bench_convolution(x, device, args.repeats)
    bench_layers(x, labels, device, args.repeats, args.layers, args.compile)


if __name__ == "__main__":
    main()
