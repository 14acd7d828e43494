"""GPU check: train a few epochs and run occlusion and sliding windows on CUDA, against the CPU.

For a machine with an NVIDIA GPU (not run in CI, which has none):

    python benchmarks/gpu_check.py

It checks that every piece runs on ``device="auto"`` = CUDA, that a trained model gives the same
probabilities on GPU and CPU (to float32 round-off), that learnable physical parameters move
on the GPU, and that occlusion maps agree between GPU and CPU and with Captum on the GPU.
Timings are GPU against CPU on the same machine, in the same run.
"""

import time

import torch

from deepimaging import data, interpret, models, physics, train

LAYERS = [
    ("quantize", 4),
    ("learned_discretization", 2),
    ("bit_allocation", 2),
    ("gaussian_blur", 1.5),
    ("sensor", 100.0),
]
# Layers that draw fresh noise at every forward pass: two predictions differ by the noise
# whatever the device, so their GPU and CPU probabilities are not compared.
STOCHASTIC = {"sensor"}


def timed(run):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main():
    device = train.get_device("auto")
    print(f"device auto -> {device}; torch {torch.__version__}")
    if device.type != "cuda":
        raise SystemExit("no CUDA device: this check is for a GPU machine")
    print(torch.cuda.get_device_name())
    smear = data.simulate_blood_smear(n_per_class=300, size=64, seed=0)
    train_set, val_set, test_set = data.split(smear, seed=0)

    failures = 0
    for name, value in LAYERS:
        try:
            results = {}
            for dev in ("cuda", "cpu"):
                train.seed_everything(0)
                layer = physics.make_layer(name, value, image_shape=smear.image_shape)
                model = models.PhysicalModel(layer, models.BasicCNN(3, 4))
                before = {k: p.detach().clone() for k, p in model.physics.named_parameters()}
                history, seconds = timed(
                    lambda m=model, d=dev: train.fit(
                        m, train_set, val_set, epochs=3, seed=0, device=d, progress=False
                    )
                )
                moved = all(
                    not torch.equal(before[k].to(p.device), p.detach())
                    for k, p in model.physics.named_parameters()
                )
                accuracy = train.evaluate(model, test_set, device=dev)["accuracy"]
                results[dev] = (model, seconds, accuracy, moved, history)
            model = results["cuda"][0]
            on_gpu = train.predict(model, test_set, device="cuda").probabilities
            on_cpu = train.predict(model, test_set, device="cpu").probabilities
            same = "n/a (noise)" if name in STOCHASTIC else torch.allclose(on_gpu, on_cpu, atol=1e-4)
            print(
                f"{name:>24s}={value}: cuda {results['cuda'][1]:.2f} s, cpu {results['cpu'][1]:.2f} s "
                f"({results['cpu'][1] / results['cuda'][1]:.1f}x); test accuracy cuda {results['cuda'][2]:.3f} "
                f"cpu {results['cpu'][2]:.3f}; learnable physics moved on cuda: {results['cuda'][3]}; "
                f"same probabilities on cuda and cpu (atol 1e-4): {same}"
            )
            failures += same is False
        except Exception as err:  # report every layer, then fail at the end
            failures += 1
            print(f"{name:>24s}: FAILED {type(err).__name__}: {err}")

    # Occlusion and sliding window: a 128 px model on the GPU against the same model on the CPU.
    train.seed_everything(0)
    cnn = models.BasicCNN(3, 4).eval()
    image = torch.rand(3, 128, 128)
    cpu_map, cpu_s = timed(
        lambda: interpret.occlusion_map(cnn, image, sliding_window_shapes=8, strides=4, target=0)
    )
    cnn.cuda()
    interpret.occlusion_map(cnn, image.cuda(), sliding_window_shapes=8, strides=4, target=0)  # warm-up
    gpu_map, gpu_s = timed(
        lambda: interpret.occlusion_map(cnn, image.cuda(), sliding_window_shapes=8, strides=4, target=0)
    )
    agree = torch.allclose(gpu_map.cpu(), cpu_map, atol=1e-5)
    print(
        f"occlusion 3x128x128, 8x8 window, stride 4: cuda {gpu_s * 1e3:.1f} ms, cpu {cpu_s * 1e3:.1f} ms; "
        f"maps agree (atol 1e-5): {agree}"
    )
    failures += not agree
    try:
        from captum.attr import Occlusion

        wrapped = torch.nn.Sequential(cnn, torch.nn.Softmax(dim=1)).eval()
        x = image[None].cuda()
        ref, captum_s = timed(
            lambda: Occlusion(wrapped).attribute(
                x,
                sliding_window_shapes=(3, 8, 8),
                strides=(3, 4, 4),
                baselines=0.5,
                target=0,
                perturbations_per_eval=64,
            )
        )
        # Captum attributes the drop p(x) - p(x_occluded) to each covered pixel, like occlusion_map.
        equal = torch.allclose(ref[0, 0].cpu(), gpu_map.cpu(), atol=1e-5)
        print(f"captum Occlusion on cuda: {captum_s * 1e3:.1f} ms; equals occlusion_map: {equal}")
        failures += not equal
    except ImportError:
        print("captum not installed: skipped the Captum comparison")

    field = torch.rand(3, 480, 640)
    cnn.cpu()
    cpu_heat, cpu_s = timed(lambda: interpret.sliding_window(cnn, field, window=64, stride=16))
    cnn.cuda()
    interpret.sliding_window(cnn, field.cuda(), window=64, stride=16)
    gpu_heat, gpu_s = timed(lambda: interpret.sliding_window(cnn, field.cuda(), window=64, stride=16))
    agree = torch.allclose(gpu_heat.cpu(), cpu_heat, atol=1e-4)
    print(
        f"sliding window 640x480, window 64, stride 16: cuda {gpu_s * 1e3:.1f} ms, cpu {cpu_s * 1e3:.1f} ms; "
        f"agree (atol 1e-4): {agree}"
    )
    failures += not agree
    print("GPU CHECK", "PASSED" if failures == 0 else f"FAILED ({failures})")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
