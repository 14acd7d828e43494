"""CUDA check of the physical layers (needs an NVIDIA GPU; not run in CI).

    python benchmarks/check_physics_cuda.py

For every registered layer: runs in train and eval mode on CUDA, stays in
[0, 1], every learnable parameter gets a gradient through a BasicCNN, and
layers without randomness give the CPU's output to float32 round-off. Seeded
noise repeats on CUDA.
"""

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


def main():
    cuda = torch.device("cuda")
    failures = []
    for name, value in VALUES.items():
        shape = (9, 32, 32) if name == "led_weighting" else (3, 32, 32)
        x = torch.rand(8, *shape, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        layer = P.make_layer(name, value, shape)
        cpu_out = {mode: layer.train(mode)(x).detach() for mode in (True, False)}
        layer.to(cuda)
        model = PhysicalModel(layer, BasicCNN(P.output_shape(layer.cpu(), shape)[0], 4)).to(cuda).train()
        loss = torch.nn.functional.cross_entropy(model(x.to(cuda)), torch.arange(8, device=cuda) % 4)
        loss.backward()
        no_grad = [n for n, p in layer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        worst = 0.0
        for mode in (True, False):
            y = layer.train(mode)(x.to(cuda)).detach()
            if not (y.min() >= 0 and y.max() <= 1):
                failures.append(f"{name}: output outside [0, 1]")
            if name not in RANDOM:
                worst = max(worst, float((y.cpu() - cpu_out[mode]).abs().max()))
        # Quantized layers may flip one level where a value sits on a rounding boundary.
        tolerance = 1e-4 if name not in ("quantize", "learned_discretization", "bit_allocation") else 0.5
        ok = not no_grad and worst <= tolerance
        print(f"{name:22s} cuda ok={ok}  max |cuda - cpu| = {worst:.2e}  params without gradient: {no_grad}")
        if not ok:
            failures.append(name)
    a, b = (P.Sensor(50, seed=3).to(cuda)(torch.full((2, 3, 16, 16), 0.5, device=cuda)) for _ in range(2))
    print("seeded sensor noise repeats on cuda:", torch.equal(a, b))
    if not torch.equal(a, b):
        failures.append("seeded noise")
    print("FAILURES:", failures if failures else "none")


if __name__ == "__main__":
    main()
