"""CUDA check of the physical layers (needs an NVIDIA GPU; not run in CI). Exits 1 on any failure.

    python benchmarks/check_physics_cuda.py

For every registered layer: it runs in train and eval mode on CUDA, stays in
[0, 1], every learnable parameter gets a gradient through a BasicCNN, and a
layer without randomness gives the CPU's output. Shot noise on CUDA follows
the Poisson law, and seeded noise repeats.

Tolerances, and why:

- ``1e-4`` (absolute, on values in [0, 1]) between CPU and CUDA for layers
  without rounding: both compute in float32 (unit round-off 6e-8) but sum in
  different orders (cuDNN and cuFFT against MKL); a blur sums at most a few
  hundred products and an FFT of 32 x 32 has ~10 stages, so the differences
  stay near 1e-6. 1e-4 leaves a hundredfold margin and still catches any
  wrong index, flip or scale, which moves values by 1e-2 or more.
- Quantized layers (quantize, learned_discretization, bit_allocation): a
  value within round-off of a rounding midpoint can land on the neighbouring
  level on one device, so up to 0.1% of the pixels may differ by more than
  1e-4 (by one level step); a real fault moves far more of them.
- The Poisson law on CUDA: mean and variance of 10^6 counts at rate 50 within
  5 standard errors (sqrt(50 / n) and sqrt((50 + 2 * 50^2) / n)): a false
  alarm has probability below 1e-6.
"""

import math

import torch

import deepimaging.physics as P
from deepimaging.models import BasicCNN, PhysicalModel

VALUES = {
    "identity": None, "quantize": 4, "learned_discretization": 4, "bit_allocation": 3.0,
    "gaussian_blur": 2.0, "defocus_blur": 3.0, "airy_blur": 2.0, "learned_psf": 9,
    "shift_variant_blur": 2, "binning": 4, "variable_pixels": 4, "noise": 100.0, "sensor": 100.0,
    "bayer": None, "learned_cfa": 2, "exposure_mosaic": 8.0, "sparse_mask": 0.25,
    "led_weighting": None, "microscope": 0.5,
}  # fmt: skip
RANDOM = {"noise", "sensor"}
QUANTIZED = {"quantize", "learned_discretization", "bit_allocation"}
TOLERANCE = 1e-4
FLIPPED_SHARE = 1e-3


def check_layer(name, value, cuda) -> list:
    """Failures of one registered layer on CUDA (an empty list if it passes)."""
    failures = []
    shape = (9, 32, 32) if name == "led_weighting" else (3, 32, 32)
    x = torch.rand(8, *shape, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    layer = P.make_layer(name, value, shape)
    cpu_out = {mode: layer.train(mode)(x).detach() for mode in (True, False)}
    channels = P.output_shape(layer, shape)[0]
    model = PhysicalModel(layer, BasicCNN(channels, 4)).to(cuda).train()
    loss = torch.nn.functional.cross_entropy(model(x.to(cuda)), torch.arange(8, device=cuda) % 4)
    loss.backward()
    no_grad = [n for n, p in layer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    if no_grad:
        failures.append(f"{name}: parameters without gradient on cuda: {no_grad}")
    for mode in (True, False):
        y = layer.train(mode)(x.to(cuda)).detach().cpu()
        if not (y.min() >= 0 and y.max() <= 1):
            failures.append(f"{name}: output outside [0, 1] on cuda")
        if name in RANDOM:
            continue
        off = (y - cpu_out[mode]).abs() > TOLERANCE
        allowed = FLIPPED_SHARE * off.numel() if name in QUANTIZED else 0
        if off.sum() > allowed:
            failures.append(
                f"{name}: {int(off.sum())} of {off.numel()} values differ from the CPU's by more than "
                f"{TOLERANCE} (train={mode}; allowed {int(allowed)})"
            )
    print(f"{name:24s} {'ok' if not failures else 'FAILED'}")
    return failures


def check_noise(cuda) -> list:
    failures = []
    n, rate = 10**6, 50.0
    counts = P.poisson_sample(
        torch.full((n,), rate, device=cuda), torch.Generator(cuda).manual_seed(0)
    ).double()
    mean, var = float(counts.mean()), float(counts.var())
    if abs(mean - rate) > 5 * math.sqrt(rate / n) or abs(var - rate) > 5 * math.sqrt(
        (rate + 2 * rate**2) / n
    ):
        failures.append(f"Poisson law on cuda: mean {mean:.4f}, variance {var:.4f}, expected {rate}")
    a, b = (P.Sensor(50, seed=3).to(cuda)(torch.full((2, 3, 16, 16), 0.5, device=cuda)) for _ in range(2))
    if not torch.equal(a, b):
        failures.append("seeded sensor noise does not repeat on cuda")
    print(f"{'noise law and seeds':24s} {'ok' if not failures else 'FAILED'}")
    return failures


def main() -> int:
    if not torch.cuda.is_available():
        print("FAILED: no CUDA device")
        return 1
    cuda = torch.device("cuda")
    failures = [f for name, value in VALUES.items() for f in check_layer(name, value, cuda)]
    failures += check_noise(cuda)
    for failure in failures:
        print("FAIL", failure)
    print("all checks passed" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
