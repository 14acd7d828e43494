"""Cost of each physical layer inside a training step of PhysicalModel(layer, BasicCNN).

Run:  python benchmarks/bench_physics.py [--device cpu|cuda] [--batch 128] [--repeats 5] [--layers noise ...]
      python benchmarks/bench_physics.py --count-ops [--verbose] [--layers ...]   (operator launches)
      python benchmarks/bench_physics.py --compile --skip-convolution [--layers ...]   (through torch.compile)

Prints, for every layer of deepimaging.physics.LAYERS, the layer's forward +
backward time as a share of one full training step (forward, backward, Adam
step) of PhysicalModel(layer, BasicCNN) on a batch of 128 images of 3x64x64,
measured in the same run. Target: <= 20% for every layer except the coherent
microscope. First it times direct against FFT convolution for PSF sizes 3 to
31 (the crossover sets how deepimaging.physics.blur's method="auto" chooses).

Measured 2026-11-27 (commit "physics: auto convolution by measured device"), median of 5 (CPU) or
10 (GPU) steps, share = layer forward+backward / whole training step:

- CPU, 4 threads of an otherwise idle 16-core x86 machine (step 124-312 ms): every layer <= 13%
  except shift_variant_blur 23%, noise 49%, sensor 51% (torch.poisson draws serially on the CPU:
  ~150 ms for 1.5 M pixels) and the microscope 36%.
  FFT / direct convolution: fixed PSF 0.25-0.85x, learnable PSF 0.03-0.51x (FFT faster at every size).
- CPU after the hybrid Poisson sampler and the per-pixel-kernel shift-variant blur (2026-11-27), 4 threads
  on a shared, loaded 2-core machine, runs alternating the package before and after the change
  (--skip-convolution --layers noise sensor shift_variant_blur, 8 runs each): shift_variant_blur 25-64%
  -> 8-17%, noise 19-42% -> 6-13%, sensor 18-35% -> 7-14% (layer 75-265 -> 40-92 ms, 75-152 -> 21-50 ms,
  82-105 -> 34-54 ms). One full run: every layer <= 20% except the microscope (shift_variant_blur 19%).
  Not remeasured on the idle machine nor on a GPU (where "auto" keeps torch.poisson and the grouped conv).
- GPU, NVIDIA H100 (step 3.4-5.9 ms, launch-bound): quantize 6%, blurs 6-8%, learned_psf 19%,
  noise 11%, sensor 18%, led_weighting 19%, but learned_discretization 73%, bit_allocation 30%,
  shift_variant_blur 36%, learned_cfa 24%, sparse_mask 39% (0.8-3.3 ms of small kernels each) and
  the microscope 42%. Direct (cuDNN) convolution was faster up to 15 px, the FFT at 31 px.

Operator launches (--count-ops --threads 1; load-independent; batch 128, on the path a GPU takes), layer
forward + backward / training step (the step alone, with nn.Identity, is 47 launches), before -> after the
rewrite of 2026-11-27 (custom autograd Functions, cached zone weights, tile broadcast, one sync in
check_images): learned_discretization 62 (2 syncs) / 109 = 57% -> 35 (1) / 82 = 43%; bit_allocation
104 (16) / 151 = 69% -> 71 (7) / 118 = 60%; shift_variant_blur 43 (2) / 90 = 48% -> 12 (1) / 59 = 20%;
sparse_mask 13 (2) / 60 = 22% -> 10 (1) / 57 = 18%; learned_cfa 15 (2) / 62 = 24% -> 9 (1) / 56 = 16%.
Every layer's check_images has one device-to-host copy instead of two (one launch less). Still above 20% of
the launches: learned_discretization, bit_allocation (its budget bisection: 4 rounds of ~6 launches and
one sync each), variable_pixels 21, sensor 20 (6 syncs), the microscope 71. Not yet timed on a GPU.

CPU after BasicCNN took the channels-last layout (a faster step, so larger shares), 2 threads of the
quiet 2-core machine, --skip-convolution, one run (step 157-341 ms): every layer <= 20%
(learned_discretization 18.7%, sensor 17.6%, the others 0.2-11.3%) except the microscope 50.8%.

Third session (2026-11-27). The launch count now leaves out what only a CPU runs: BasicCNN's
channels-last copies (they had raised the step from 47 to 65 launches, so every share looked smaller)
and the copies the CPU makes to promote an operand's dtype inside an elementwise operator (a GPU kernel
casts as it reads). Rewritten with their gradients written out: quantization (2 operations, none
backward), shot noise (the forward pass only draws), pixels of different sizes (one index_add and one
index_select, the same backward); ShiftVariantBlur learns its PSFs rotated by 180 degrees (no flip);
Sensor reads none of its buffers back from the device. Launches (--count-ops --threads 1), layer /
step of 47: variable_pixels 21 -> 6 (11%), sensor 20 (6 syncs) -> 11 (1) (19%), shift_variant_blur
12 -> 10 (17.5%), quantize 5 (10%); still above 20%: learned_discretization 34 (42%), bit_allocation
71 (7 syncs, 60%); the microscope 71. Not yet timed on a GPU.
CPU, same machine, --skip-convolution, one run each: with glibc's default allocator every layer
<= 20% (learned_discretization 17.6%, sensor 17.3%, noise 12.5%) except the microscope 50.5%; after
--keep-freed-memory (deepimaging.train.keep_freed_memory(), which the notebooks and the CLI call) the
step itself is about twice as fast (80-95 ms), and noise (21.6-24.8%) and sensor (23.5-29.7%) go above
20%: their forward pass is random-number generation, which PyTorch's CPU generator does serially
(3.5 ns per normal draw, about 70 ns per exact Poisson draw).

Fourth session (2026-11-27). The share is now the median of 9 alternating (layer, step) pairs. The hybrid
Poisson sampler gathers its exact draws by position (1.7 ms less). Layer ms and share against the commit
before (e9ec0d9), alternating, 3 runs each, --keep-freed-memory: noise 20.9-22.0 ms (19.7-20.3%) ->
18.9-25.3 ms (16.1-18.8%), sensor 27.6-28.8 ms (23.7-25.0%) -> 25.3-34.2 ms (21.2-24.1%): the sensor stays
above 20% after keep_freed_memory (it is below with glibc's defaults), bound by PyTorch's serial CPU random
number generation (two normal fields and the exact small-rate Poisson draws, ~20 of its ~27 ms).
Tried and not kept: drawing in fixed chunks on a thread pool, each chunk with its own seeded generator.
Alone it drew 1.2-1.8x faster, but in a training step libgomp's workers spin for milliseconds after
every parallel region and hold the cores the drawing threads need: after a parallel operation the
chunked sensor took 26.2-27.4 ms against 24.7-25.1 ms drawn serially (it won, 17.9-21.5 against
25.7-28.0 ms, only with OMP_WAIT_POLICY=PASSIVE). Where a drawing thread ran a parallel operator itself
(torch.poisson zero-fills its output) it started a second OpenMP team, after which libgomp let every
worker sleep between regions; that made the draws look faster and slowed later parallel work
(shift_variant_blur 15.9-22.8 ms before such a draw, 23.1-26.0 ms after).
On this 2-core virtual machine some processes run PyTorch's two-thread parallel regions 2-3x slower
than others while one thread runs as fast as ever (shift_variant_blur, ~200 small parallel regions:
13-17 ms in most processes, 33-43 ms in some, and in 3 of 3 processes that first ran the eight layers
before it; OMP_WAIT_POLICY=PASSIVE made every process slow, ACTIVE made 3 of 4 fast; direct convolution
32-45 ms, FFT 66-77 ms), so a single run can flag it.
--scene blood (the course's simulated blood smear: no pixel below 0.1, so no exact Poisson draws at 100
photons), --skip-convolution --keep-freed-memory, one full run: every layer <= 20% (sensor 18.3%,
shift_variant_blur 14.4%, learned_psf 13.0%, noise 9.9%) except the microscope 32.7%; noise and sensor
alone, two more runs: 9.4-10.1% and 15.4-17.7%.
The microscope now shifts the pupil per LED instead of tilting the object (LED frequencies are whole
cycles per field): one FFT per object instead of one per LED. Alternating with the commit before, 2 runs,
--keep-freed-memory: layer 92-96 ms (36.4-36.7%) -> 63-72 ms (29.2-30.6%); launches 71 -> 70 (2 syncs).
--compile --keep-freed-memory (every layer now traced once; bit_allocation had recompiled at every step,
294 ms): every layer <= 20% (sensor 18.2%, shift_variant_blur 16.5%, noise 14.7%, learned_psf 12.7%,
learned_discretization 3.9 ms instead of ~10-12 ms eager) except the microscope 27.3% (inductor does not
generate code for complex operators); the training step itself is not faster on this CPU (82-127 ms).
Not yet run on a GPU: python benchmarks/bench_physics.py --device cuda [--compile] --skip-convolution.
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
