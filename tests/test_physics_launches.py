"""Physical layers rewritten for fewer operator launches compute what the plain autograd formulations did.

Each test writes the straightforward formulation (the code the layers used before, autograd doing the
backward pass) and compares the new layer's output and the gradients of every input and parameter with
it, in float64 to 1e-6 (and in float32 where the two must agree bit for bit).
"""

import pytest
import torch
import torch.nn.functional as F

import deepimaging.physics as P
from deepimaging.physics import optics

torch.set_num_threads(1)


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def outputs_and_grads(fn, inputs, seed=1):
    """fn(*inputs) and the gradients of sum(weight * fn) with respect to each input (None: no path)."""
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    weight = rand(*out.shape, seed=seed, dtype=out.dtype) - 0.5  # a loss that weighs pixels differently
    grads = torch.autograd.grad((out * weight).sum(), inputs, allow_unused=True)
    return out.detach(), grads


def assert_same(new, reference, atol=1e-6):
    (out, grads), (ref_out, ref_grads) = new, reference
    torch.testing.assert_close(out, ref_out, atol=atol, rtol=0)
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert (g is None) == (r is None), f"input {i}: gradient {g} against {r}"
        if g is not None:
            torch.testing.assert_close(g, r, atol=atol, rtol=0, msg=lambda m, i=i: f"input {i}: {m}")


# ---------------------------------------------------------------- learned discretization


def _round_ste(values):
    return torch.round(values).detach() + (values - values.detach())


def discretization_reference(images, gain, low, high, bits):
    values = torch.minimum(torch.maximum(gain * images, low), high)
    span = (high - low).clamp_min(1e-3)
    normalized = ((values - low) / span).clamp(0, 1)
    return _round_ste(normalized * (2**bits - 1)) / (2**bits - 1)


def tied_images(n=4, c=3, h=8, w=8):
    """8-bit intensities (k / 255): many pixels exactly 0 or 1, so max/min meet their thresholds in ties."""
    images = torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(0)) / 255
    images[:, :, 0, :4] = 0.0
    images[:, :, 1, :4] = 1.0
    images[:, :, 2, :4] = 0.5
    return images.double()


@pytest.mark.parametrize("bits", [1, 4, 16])
def test_learned_discretization_at_initialisation_matches_autograd_with_ties_at_0_and_1(bits):
    images = tied_images()
    gain, low, high = torch.ones(3, 8, 8, dtype=torch.float64), torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
    args = (images, gain, low.double(), high.double())
    new = outputs_and_grads(lambda *a: P.learned_discretization(*a, bits), args)
    assert_same(new, outputs_and_grads(lambda *a: discretization_reference(*a, bits), args))
    assert new[1][2].abs().sum() > 0 and new[1][3].abs().sum() > 0  # ties do pass gradient to thresholds


def test_learned_discretization_matches_autograd_when_thresholds_cross_nearly_meet_or_are_equal():
    images = tied_images(c=4)
    gain = 0.5 + 1.5 * rand(4, 8, 8, seed=2)
    gain[:, 2, :4] = 1.0  # pixels of value 0.5 with gain 1: exactly on the thresholds of channel 3
    # Channel 0 ordinary, 1 crossed (low > high), 2 a span below 1e-3 (clamped), 3 low == high == 0.5.
    low = torch.tensor([0.2, 0.7, 0.4, 0.5], dtype=torch.float64).view(4, 1, 1)
    high = torch.tensor([0.9, 0.3, 0.4005, 0.5], dtype=torch.float64).view(4, 1, 1)
    args = (images, gain, low, high)
    new = outputs_and_grads(lambda *a: P.learned_discretization(*a, 3), args)
    assert_same(new, outputs_and_grads(lambda *a: discretization_reference(*a, 3), args))


def test_learned_discretization_matches_autograd_with_per_pixel_thresholds_of_other_shapes():
    images = rand(3, 2, 6, 7, seed=4)
    gain = (0.5 + rand(2, 1, 7, seed=5)).requires_grad_()
    low = 0.3 * rand(1, 6, 1, seed=6)  # low and high broadcast differently: the general reduction
    high = 0.6 + 0.4 * rand(6, 7, seed=7)
    args = (images, gain, low, high)
    new = outputs_and_grads(lambda *a: P.learned_discretization(*a, 5), args)
    assert_same(new, outputs_and_grads(lambda *a: discretization_reference(*a, 5), args))


def test_learned_discretization_layer_in_float32_gives_the_same_values_bit_for_bit():
    layer = P.LearnedDiscretization(4, (3, 8, 8))
    with torch.no_grad():
        layer.gain.copy_(0.5 + rand(3, 8, 8, seed=8, dtype=torch.float32))
        layer.low.copy_(torch.tensor([0.1, 0.0, 0.3]).view(3, 1, 1))
        layer.high.copy_(torch.tensor([0.8, 1.0, 0.31]).view(3, 1, 1))
    images = tied_images().float()
    out = layer(images)
    assert torch.equal(out, discretization_reference(images, layer.gain, layer.low, layer.high, 4))
    params = list(layer.parameters())
    new = torch.autograd.grad((out * images).sum(), params)
    ref = discretization_reference(images, *params, 4)
    # float32 sums over 256 pixels in another order, divided by a span of 0.01: a few 1e-5 relative.
    for g, r in zip(new, torch.autograd.grad((ref * images).sum(), params)):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- sparse mask


@pytest.mark.parametrize("fraction", [0.1, 0.3, 1.0])
def test_sparse_mask_matches_the_autograd_straight_through_expression(fraction):
    layer = P.SparseMask(fraction, (3, 12, 10)).double()
    images = rand(4, 3, 12, 10, seed=2)

    def reference(images, scores):
        hard = torch.zeros(120, dtype=scores.dtype)
        hard[torch.argsort(scores.detach().flatten(), descending=True)[: layer.k]] = 1.0  # k best, by sorting
        soft = torch.sigmoid(scores)
        return images * (hard.view(12, 10) + (soft - soft.detach()))

    def new(images, scores):
        with torch.no_grad():
            layer.scores.copy_(scores)
        out = layer(images)
        return out, torch.autograd.grad(out, [images, layer.scores], weight, allow_unused=True)

    weight = rand(4, 3, 12, 10, seed=3) - 0.5
    x = images.clone().requires_grad_()
    out, (g_images, g_scores) = new(x, layer.scores.detach())
    scores = layer.scores.detach().clone().requires_grad_()
    x_ref = images.clone().requires_grad_()
    ref = reference(x_ref, scores)
    ref_images, ref_scores = torch.autograd.grad(ref, [x_ref, scores], weight)
    assert torch.equal(out, ref)
    torch.testing.assert_close(g_images, ref_images, atol=1e-6, rtol=0)
    torch.testing.assert_close(g_scores, ref_scores, atol=1e-6, rtol=0)
    assert g_scores.abs().sum() > 0


# ---------------------------------------------------------------- filter mosaics


def tile_reference(images, tile):
    """The tile copied over the field (torch.repeat, then cropped), times the images."""
    k = tile.shape[-1]
    h, w = images.shape[-2:]
    reps = (-(-h // k), -(-w // k))
    return images * tile.repeat(*([1] * (tile.ndim - 2)), *reps)[..., :h, :w]


@pytest.mark.parametrize("size", [(8, 8), (9, 8), (8, 10)])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("output", ["masked", "raw"])
def test_filter_mosaic_matches_a_tile_copied_over_the_field(size, k, output):
    images, tile = rand(2, 3, *size, seed=1), rand(3, k, k, seed=2)

    def reference(images, tile):
        masked = tile_reference(images, tile)
        return masked if output == "masked" else masked.sum(1, keepdim=True)

    args = (images, tile)
    new = outputs_and_grads(lambda *a: P.filter_mosaic(*a, output=output), args)
    assert_same(new, outputs_and_grads(reference, args))


@pytest.mark.parametrize("k", [2, 3])
def test_tile_broadcast_over_blocks_gpu_path_matches_the_copied_tile(k):
    from deepimaging.physics.mosaic import _times_tile

    images, tile = rand(2, 3, 12, 6 * k, seed=3), rand(3, k, k, seed=4)
    new = outputs_and_grads(lambda *a: _times_tile(*a, blocks=True), (images, tile))
    ref = outputs_and_grads(tile_reference, (images, tile))
    for a, b in zip(new, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_learned_cfa_and_exposure_mosaic_match_a_tile_copied_over_the_field():
    images = rand(2, 3, 12, 12, seed=3)
    cfa = P.LearnedCFA(3, 3, temperature=0.7, seed=1).double()
    new = outputs_and_grads(
        lambda x, logits: P.filter_mosaic(x, torch.softmax(logits / 0.7, 0)), [images, cfa.logits]
    )
    ref = outputs_and_grads(
        lambda x, logits: tile_reference(x, torch.softmax(logits / 0.7, 0)), [images, cfa.logits]
    )
    assert_same(new, ref)
    torch.testing.assert_close(cfa(images), ref[0], atol=1e-12, rtol=0)
    log_exposures = torch.tensor([[0.0, 0.7], [1.4, 2.1]], dtype=torch.float64)
    new = outputs_and_grads(lambda x, e: P.exposure_mosaic(x, e.exp()), [images, log_exposures])
    ref = outputs_and_grads(lambda x, e: tile_reference(x, e.exp()).clamp(max=1.0), [images, log_exposures])
    assert_same(new, ref)


# ---------------------------------------------------------------- shift-variant blur


def shift_variant_reference(images, logits):
    """The former direct path: zone weights rebuilt in the call, one grouped convolution per channel."""
    gy, gx, k, _ = logits.shape
    psfs = torch.softmax(logits.reshape(gy, gx, k * k), -1).view_as(logits)
    n, c, h, w = images.shape
    zones, pad = gy * gx, k // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    weights = (
        optics._zone_weights(gy, h, images.device)[:, None, :, None]
        * optics._zone_weights(gx, w, images.device)[None, :, None, :]
    ).reshape(zones, h, w)
    weight = psfs.reshape(zones, k, k).flip(-2, -1)[:, None].repeat(c, 1, 1, 1)
    blurred = F.conv2d(padded, weight, groups=c).view(n, c, zones, h, w)
    return (blurred * weights.to(images.dtype)).sum(2)


@pytest.mark.parametrize("method", ["direct", "fft", "local"])
def test_shift_variant_blur_matches_the_grouped_convolution_with_weights_built_each_call(method):
    layer = P.ShiftVariantBlur(
        size=5, grid=(2, 3), init_sigma=torch.tensor([[0.5, 1.0, 2.0], [1.5, 0.8, 1.2]])
    )
    logits = layer.logits.detach().double() + 0.3 * rand(2, 3, 5, 5, seed=4)  # asymmetric PSFs
    images = rand(2, 3, 16, 18, seed=5)

    def new(images, logits):
        gy, gx, k, _ = logits.shape
        psfs = torch.softmax(logits.reshape(gy, gx, k * k), -1).view_as(logits)
        return P.shift_variant_blur(images, psfs, method)

    args = (images, logits)
    assert_same(outputs_and_grads(new, args), outputs_and_grads(shift_variant_reference, args))


@pytest.mark.parametrize("method", ["direct", "fft", "local"])
def test_shift_variant_blur_layer_learning_rotated_psfs_blurs_with_its_psfs(method):
    """The layer keeps the logits of its PSFs rotated by 180 degrees; what it applies is still ``psfs``."""
    layer = P.ShiftVariantBlur(size=5, grid=(2, 3), method=method).double()
    with torch.no_grad():
        layer.logits += 0.5 * rand(2, 3, 5, 5, seed=6)  # asymmetric PSFs: a missing flip would show
    images = rand(2, 3, 16, 18, seed=7)

    def new(images, logits):
        return torch.func.functional_call(layer, {"logits": logits}, (images,))

    args = (images, layer.logits.detach().clone())
    reference = outputs_and_grads(lambda x, rotated: shift_variant_reference(x, rotated.flip(-2, -1)), args)
    assert_same(outputs_and_grads(new, args), reference)
    torch.testing.assert_close(layer(images), P.shift_variant_blur(images, layer.psfs, method))


def test_shift_variant_blur_builds_its_zone_weights_once_per_size():
    layer = P.ShiftVariantBlur(size=3, grid=(2, 2), method="direct")
    images = rand(1, 1, 10, 12, dtype=torch.float32)
    layer(images)
    hits = optics._blend_weights.cache_info().hits
    out = layer(images)
    assert optics._blend_weights.cache_info().hits == hits + 1
    torch.testing.assert_close(out, shift_variant_reference(images, layer.logits.detach()), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- bit allocation


def budget_shift_reference(logits, fraction, rounds=4, candidates=64):
    """The former bisection: three device-to-host reads per round."""
    with torch.no_grad():
        bound = float(logits.detach().abs().max()) + 40.0
        low, high = -bound, bound
        flat = logits.detach().flatten()
        for _ in range(rounds):
            shifts = torch.linspace(low, high, candidates, dtype=logits.dtype)
            means = torch.sigmoid(flat[None, :] + shifts[:, None]).mean(1)
            above = int((means < fraction).sum())
            i = min(max(above, 1), candidates - 1)
            low, high = float(shifts[i - 1]), float(shifts[i])
        return torch.tensor((low + high) / 2, dtype=logits.dtype)


class SensitivityReference(torch.autograd.Function):
    @staticmethod
    def forward(ctx, images, bits):
        step = 1.0 / (2.0**bits - 1.0)
        ctx.save_for_backward(step)
        return (step * torch.round(images / step)).clamp(0, 1)

    @staticmethod
    def backward(ctx, grad):
        (step,) = ctx.saved_tensors
        fisher = grad.shape[0] * (grad**2).sum((0, 1))
        return grad, -fisher * step**2 * (1 + step) * torch.log(torch.tensor(2.0, dtype=grad.dtype)) / 12


def bit_allocation_reference(layer, images, scores):
    """The former BitAllocation.forward: implicit shift gradient and rounding by autograd expressions."""
    span = layer.max_bits - layer.min_bits
    logits = layer.logit_scale * scores
    shift = budget_shift_reference(logits, (layer.mean_bits - layer.min_bits) / span)
    with torch.no_grad():
        slope = torch.sigmoid(logits + shift)
        slope = slope * (1 - slope)
        weights = slope / slope.sum().clamp_min(1e-12)
    shift = shift - (weights * (logits - logits.detach())).sum()
    bits = layer.min_bits + span * torch.sigmoid(logits + shift)
    base = bits.detach().floor()
    remainder = (bits.detach() - base).flatten()
    extra = int(round(float(bits.detach().sum() - base.sum())))
    base = base.flatten()
    base[remainder.topk(min(max(extra, 0), remainder.numel())).indices] += 1
    whole = base.view_as(bits).clamp(layer.min_bits, layer.max_bits)
    return SensitivityReference.apply(images, whole + (bits - bits.detach()))


@pytest.mark.parametrize(
    "mean_bits, max_bits, dtype", [(3.0, 8, torch.float64), (2.7, 6, torch.float64), (2.0, 8, torch.float32)]
)
def test_bit_allocation_matches_the_autograd_formulation(mean_bits, max_bits, dtype):
    layer = P.BitAllocation(mean_bits, (3, 12, 12), max_bits=max_bits).to(dtype)
    with torch.no_grad():
        layer.scores.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))  # a map that has moved
    images = rand(6, 3, 12, 12, seed=2, dtype=dtype)

    def new(images, scores):
        with torch.no_grad():
            layer.scores.copy_(scores)
        return layer(images)

    args = (images, layer.scores.detach().clone())
    out, (g_images, _) = outputs_and_grads(new, args)
    g_scores = torch.autograd.grad(
        (layer(images) * (rand(*out.shape, seed=1, dtype=dtype) - 0.5)).sum(), layer.scores
    )[0]
    ref_out, (ref_images, ref_scores) = outputs_and_grads(
        lambda x, s: bit_allocation_reference(layer, x, s), args
    )
    assert torch.equal(out, ref_out)  # the same whole bits and levels, bit for bit
    tol = 1e-6 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(g_images, ref_images, atol=tol, rtol=0)
    torch.testing.assert_close(g_scores, ref_scores, atol=tol, rtol=tol)
    assert g_scores.abs().sum() > 0


@pytest.mark.parametrize("fraction", [0.1, 2 / 7, 0.5, 0.9])
def test_budget_shift_reads_the_device_once_per_round_and_finds_the_same_shift(fraction):
    logits = 3 * torch.randn(20, 20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(P._common.budget_shift(logits, fraction), budget_shift_reference(logits, fraction))


# ---------------------------------------------------------------- quantization


@pytest.mark.parametrize("bits", [1, 3, 8, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantize_matches_the_autograd_straight_through_expression(bits, dtype):
    levels = 2**bits - 1

    def reference(x):
        return _round_ste(x * levels) / levels

    images = tied_images().to(dtype)
    new, ref = outputs_and_grads(P.Quantize(bits), [images]), outputs_and_grads(reference, [images])
    assert torch.equal(new[0], ref[0])  # the same values, bit for bit
    assert_same(new, ref)


# ---------------------------------------------------------------- shot noise and the sensor


def shot_reference(rates, generator, method):
    """The autograd expression ShotNoise and Sensor used before _ShotNoise wrote its gradient out."""
    counts = P.poisson_sample(rates, generator, method)
    std = rates.clamp_min(1e-8).sqrt()
    epsilon = ((counts - rates) / std).detach()
    surrogate = rates + std * epsilon
    return counts + (surrogate - surrogate.detach())


def dim_images(dtype):
    """Intensities from 0 (no light: rate 0, below the clamp) through 1e-9 to 1: all the rate regimes."""
    images = rand(2, 3, 8, 8, dtype=dtype)
    images[:, :, 0, :3] = 0.0
    images[:, :, 1, :3] = 1e-9
    images[:, :, 2, :3] = 1.0
    return images


@pytest.mark.parametrize("method", ["exact", "hybrid"])
@pytest.mark.parametrize("photons", [5.0, 50.0, 1000.0])
def test_shot_noise_gradient_matches_the_autograd_reparameterisation(method, photons):
    layer = P.ShotNoise(photons, seed=3, method=method).double()

    def reference(x):
        counts = shot_reference(x * photons, torch.Generator().manual_seed(3), method)
        return (counts / photons).clamp(0.0, 1.0)

    assert_same(
        outputs_and_grads(layer, [dim_images(torch.float64)]),
        outputs_and_grads(reference, [dim_images(torch.float64)]),
    )


def sum_reference(rates, sigma, generator, method):
    """Counts, then read noise, with the gradient written as autograd of the sum's reparameterisation."""
    electrons = P.read_noise(P.poisson_sample(rates, generator, method), sigma, generator)
    std = (rates + sigma**2).clamp_min(1e-8).sqrt()
    z = ((electrons - rates) / std).detach()
    surrogate = rates + std * z
    return electrons + (surrogate - surrogate.detach())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "method, sigma",
    # The paths that draw counts, then read noise: "exact" always; "hybrid" below SMOOTH_READ_NOISE.
    [("exact", 2.5), ("exact", 0.0), ("hybrid", 0.3), ("hybrid", 0.0)],
)
def test_sensor_matches_shot_read_saturate_quantize_composed(dtype, method, sigma):
    photons, full_well, bits = 40.0, 30.0, 6
    sensor = P.Sensor(photons, read_noise=sigma, full_well=full_well, bits=bits, seed=7, method=method).to(
        dtype
    )

    def reference(x):
        electrons = sum_reference(x * photons, sigma, torch.Generator().manual_seed(7), method)
        return P.quantize(P.saturate(electrons, full_well) / full_well, bits)

    images = dim_images(dtype)
    assert_same(outputs_and_grads(sensor, [images]), outputs_and_grads(reference, [images]), atol=1e-6)


def test_sensor_and_shot_noise_read_no_number_back_from_the_device():
    """Their fixed parameters are used as tensors: float(buffer) would be a device-to-host copy (a sync on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    images = rand(2, 3, 8, 8, dtype=torch.float32).requires_grad_()
    # "exact" is the sampler a GPU runs ("auto" there); the CPU's hybrid one reads the read noise from the host.
    layers = (P.Sensor(100.0, read_noise=2.0, bits=8, seed=0, method="exact"), P.ShotNoise(100.0, seed=0))
    for layer in layers:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            layer(images).sum().backward()
        names = [event.key for event in prof.key_averages()]
        # check_images reads min and max back once; nothing else may.
        assert sum(e.count for e in prof.key_averages() if e.key == "aten::_local_scalar_dense") <= 1, names


# ---------------------------------------------------------------- pixels of different sizes


def variable_pixels_reference(images, pixel_sizes):
    """Bin the whole image at every pixel size, then keep each size where the map says so (the former code)."""
    out = torch.zeros_like(images)
    for f in [int(f) for f in pixel_sizes.unique().tolist()]:
        small = F.avg_pool2d(images, f).repeat_interleave(f, -2).repeat_interleave(f, -1)
        out = out + (pixel_sizes == f).to(images.dtype) * small
    return out


def patchwork_pixel_sizes():
    """A 16x24 map with aligned blocks of sides 1, 2, 4 and 8 in no ring order."""
    sizes = torch.ones(16, 24, dtype=torch.long)
    sizes[:8, :8] = 8
    sizes[8:16, 16:24] = 8
    sizes[:4, 8:16] = 4
    sizes[12:16, 0:4] = 4
    sizes[4:8, 8:12] = 2
    sizes[8:12, 4:8] = 2
    return sizes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("which", ["foveated", "patchwork"])
def test_variable_pixels_matches_binning_at_every_size_blended_with_masks(dtype, which):
    if which == "foveated":
        pixel_sizes, images = P.foveated_pixel_sizes(32, 32, (1, 2, 4, 8)), rand(3, 2, 32, 32, dtype=dtype)
    else:
        pixel_sizes, images = patchwork_pixel_sizes(), rand(3, 2, 16, 24, dtype=dtype)
    layer = P.VariablePixelSensor(tuple(images.shape[1:]), pixel_sizes=pixel_sizes).to(dtype)
    reference = outputs_and_grads(lambda x: variable_pixels_reference(x, pixel_sizes), [images])
    assert_same(outputs_and_grads(layer, [images]), reference)
    assert_same(outputs_and_grads(lambda x: P.variable_pixels(x, pixel_sizes), [images]), reference)
