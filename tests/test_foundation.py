"""The foundation: the simulated smear, the dataset type, BasicCNN, PhysicalModel and training."""

import numpy as np
import pytest
import torch
from torch import nn

from deepimaging.data import CLASSES, ImageDataset, simulate_blood_smear, simulate_smear_field, split
from deepimaging.models import BasicCNN, PhysicalModel
from deepimaging.train import History, evaluate, fit, get_device, predict, seed_everything, smoke_mode

# --- simulated blood smear -------------------------------------------------------------------


def test_simulated_smear_has_requested_shape_range_and_balanced_classes():
    ds = simulate_blood_smear(n_per_class=5, size=40, seed=1)
    assert ds.images.shape == (20, 3, 40, 40)
    assert ds.images.dtype == torch.float32
    assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0
    assert ds.labels.dtype == torch.int64
    assert torch.bincount(ds.labels).tolist() == [5, 5, 5, 5]
    assert ds.classes == ["eosinophil", "lymphocyte", "monocyte", "neutrophil"] == CLASSES


def test_same_seed_gives_identical_images_and_other_seed_differs():
    a = simulate_blood_smear(n_per_class=3, size=32, seed=7)
    b = simulate_blood_smear(n_per_class=3, size=32, seed=7)
    c = simulate_blood_smear(n_per_class=3, size=32, seed=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_nucleus_is_the_darkest_part_and_red_cells_are_red():
    # Morphology check by hand: the stained nucleus (purple) is darker than the plasma,
    # and the image holds pixels where red clearly dominates blue (red cells).
    ds = simulate_blood_smear(n_per_class=4, size=64, seed=0)
    centre = ds.images[:, :, 28:36, 28:36].mean(dim=(2, 3))
    corner_brightness = ds.images[:, :, :4, :4].mean()
    assert (centre.mean(dim=1) < corner_brightness).float().mean() > 0.8
    redness = ds.images[:, 0] - ds.images[:, 2]
    assert (redness > 0.15).any(dim=(1, 2)).float().mean() > 0.8


def test_eosinophil_cytoplasm_is_redder_than_lymphocyte_cytoplasm():
    ds = simulate_blood_smear(n_per_class=20, size=64, seed=0)
    # A ring around the nucleus, inside the cell: cytoplasm.
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    r = ((yy - 32) ** 2 + (xx - 32) ** 2).sqrt()
    ring = (r >= 13) & (r <= 15)
    red_minus_blue = (ds.images[:, 0] - ds.images[:, 2])[:, ring].mean(dim=1)
    eos = red_minus_blue[ds.labels == 0].mean()
    lym = red_minus_blue[ds.labels == 1].mean()
    assert eos > lym + 0.05


def test_smear_field_boxes_lie_inside_the_field_and_do_not_overlap():
    image, boxes, labels, classes = simulate_smear_field(size=256, n_cells=4, cell_size=64, seed=0)
    assert image.shape == (3, 256, 256)
    assert boxes.shape == (4, 4) and labels.shape == (4,)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 256).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    for i in range(4):
        for j in range(i + 1, 4):
            a, b = boxes[i], boxes[j]
            overlap_x = min(a[2], b[2]) - max(a[0], b[0])
            overlap_y = min(a[3], b[3]) - max(a[1], b[1])
            assert overlap_x <= 0 or overlap_y <= 0
    # The box centre holds a stained nucleus: darker than the field's median.
    cx, cy = int((boxes[0, 0] + boxes[0, 2]) / 2), int((boxes[0, 1] + boxes[0, 3]) / 2)
    assert image[:, cy - 2 : cy + 2, cx - 2 : cx + 2].mean() < image.median()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"n_per_class": 0}, ValueError, "n_per_class must be in"),
        ({"n_per_class": 2.5}, TypeError, "n_per_class must be an integer"),
        ({"size": 8}, ValueError, "size must be in"),
        ({"seed": -1}, ValueError, "seed must be in"),
    ],
)
def test_simulator_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        simulate_blood_smear(**{"n_per_class": 1, **kwargs})


def test_smear_field_too_small_for_cells_is_an_error():
    with pytest.raises(ValueError, match="cannot place"):
        simulate_smear_field(size=128, n_cells=9, cell_size=64)


# --- dataset type and split --------------------------------------------------------------------


def test_split_is_stratified_disjoint_and_seeded():
    ds = simulate_blood_smear(n_per_class=20, size=16, seed=0)
    ds.images[:, 0, 0, 0] = torch.arange(len(ds)) / len(ds)  # tag each image to track it
    train, val, test = split(ds, val=0.25, test=0.25, seed=3)
    assert (len(train), len(val), len(test)) == (40, 20, 20)
    for part in (val, test):
        assert torch.bincount(part.labels).tolist() == [5, 5, 5, 5]
    tags = [set(p.images[:, 0, 0, 0].tolist()) for p in (train, val, test)]
    assert not (tags[0] & tags[1] or tags[0] & tags[2] or tags[1] & tags[2])
    again = split(ds, val=0.25, test=0.25, seed=3)
    assert torch.equal(again[2].images, test.images)


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (np.zeros((2, 3, 8, 8)), [0, 1], "must be a torch.Tensor"),
        (torch.zeros(2, 8, 8), [0, 1], r"shape \(N, C, H, W\)"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), [0, 1], "floating-point"),
        (torch.zeros(2, 8, 8, dtype=torch.uint8), [0, 1], r"shape \(N, C, H, W\)"),
        (torch.full((2, 3, 8, 8), 2.0), [0, 1], r"values in \[0, 1\]"),
        (torch.zeros(2, 3, 8, 8), [0, 1, 1], "labels must have shape"),
        (torch.zeros(2, 3, 8, 8), [0, 5], "labels must be in"),
    ],
)
def test_dataset_rejects_bad_images_and_labels(images, labels, message):
    with pytest.raises((TypeError, ValueError), match=message):
        ImageDataset(images, torch.tensor(labels), ["a", "b"])


def test_split_rejects_fractions_that_leave_no_training_data():
    ds = simulate_blood_smear(n_per_class=5, size=16)
    with pytest.raises(ValueError, match="val \\+ test must be below 1"):
        split(ds, val=0.5, test=0.5)


# --- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels, classes, size", [(1, 2, 16), (3, 4, 64), (5, 10, 37)])
def test_basic_cnn_accepts_any_channels_classes_and_size(channels, classes, size):
    model = BasicCNN(in_channels=channels, num_classes=classes)
    assert model(torch.rand(2, channels, size, size)).shape == (2, classes)
    assert model.embed(torch.rand(2, channels, size, size)).shape == (2, model.feature_dim)


def test_basic_cnn_logits_are_the_classifier_applied_to_the_features():
    model = BasicCNN(3, 4).eval()
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(model(x), model.classifier(model.embed(x)))


def test_physical_model_applies_physics_before_the_cnn():
    cnn = BasicCNN(3, 4).eval()
    halve = PhysicalModel(_Scale(0.5), cnn).eval()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(halve(x), cnn(x * 0.5))


class _Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.rand(3, 32, 32), r"shape \(N, C, H, W\)"),
        (torch.rand(2, 1, 32, 32), "3 input channel"),
        (torch.rand(2, 3, 4, 4), "at least 8x8"),
    ],
)
def test_basic_cnn_rejects_wrong_shapes(x, message):
    with pytest.raises(ValueError, match=message):
        BasicCNN(3, 4)(x)


def test_basic_cnn_rejects_even_kernels_and_one_class():
    with pytest.raises(ValueError, match="odd"):
        BasicCNN(kernel_size=4)
    with pytest.raises(ValueError, match="num_classes"):
        BasicCNN(num_classes=1)


# --- training ----------------------------------------------------------------------------------


def _tiny_data():
    ds = simulate_blood_smear(n_per_class=30, size=32, seed=0)
    return split(ds, val=0.2, test=0.2, seed=0)


def _train_once(seed):
    train, val, test = _tiny_data()
    seed_everything(seed)
    model = BasicCNN(3, 4, widths=(8, 16))
    history = fit(model, train, val, epochs=2, batch_size=16, seed=seed, device="cpu", progress=False)
    return model, history, test


def test_same_seed_reproduces_the_same_history_and_accuracy():
    _, h1, test = _train_once(0)
    m2, h2, _ = _train_once(0)
    assert h1.train_loss == h2.train_loss and h1.val_accuracy == h2.val_accuracy
    m3, h3, _ = _train_once(1)
    assert h3.train_loss != h1.train_loss


def test_fit_records_one_entry_per_epoch_and_lowers_the_loss():
    train, val, _ = _tiny_data()
    seed_everything(0)
    model = BasicCNN(3, 4, widths=(8, 16))
    history = fit(model, train, val, epochs=4, batch_size=16, device="cpu", progress=False)
    assert isinstance(history, History) and history.epochs == 4
    assert len(history.val_accuracy) == 4
    assert history.train_loss[-1] < history.train_loss[0]
    assert not model.training


def test_predict_probabilities_sum_to_one_and_accuracy_matches_a_hand_count():
    model, _, test = _train_once(0)
    result = predict(model, test, device="cpu")
    torch.testing.assert_close(result.probabilities.sum(1), torch.ones(len(test)))
    assert torch.equal(result.labels, test.labels)
    by_hand = sum(int(p == t) for p, t in zip(result.predicted.tolist(), test.labels.tolist())) / len(test)
    assert evaluate(model, test, device="cpu")["accuracy"] == pytest.approx(by_hand)
    # Loss is the mean negative log probability of the true class (cross-entropy from torch).
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(test.images), test.labels).item()
    assert evaluate(model, test, device="cpu")["loss"] == pytest.approx(expected, rel=1e-4)


def test_predict_restores_training_mode():
    model, _, test = _train_once(0)
    model.train()
    predict(model, test, device="cpu")
    assert model.training


def test_unknown_device_is_an_error_that_lists_the_choices():
    with pytest.raises(ValueError, match="device must be one of"):
        get_device("tpu")
    assert get_device("cpu") == torch.device("cpu")
    assert get_device("auto").type in ("cpu", "cuda", "mps")


def test_fit_rejects_tensors_and_bad_settings():
    train, val, _ = _tiny_data()
    model = BasicCNN(3, 4)
    with pytest.raises(TypeError, match="must be an ImageDataset"):
        fit(model, train.images, progress=False)
    with pytest.raises(ValueError, match="epochs must be in"):
        fit(model, train, epochs=0, progress=False)
    with pytest.raises(ValueError, match="lr must be greater than 0"):
        fit(model, train, lr=0.0, progress=False)


def test_smoke_mode_follows_the_environment(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("DEEPIMAGING_SMOKE", "1")
    assert smoke_mode()
    monkeypatch.setenv("DEEPIMAGING_SMOKE", "0")
    monkeypatch.setenv("CI", "true")
    assert not smoke_mode()
    monkeypatch.delenv("DEEPIMAGING_SMOKE")
    assert smoke_mode()


def test_basic_cnn_channels_last_fast_path_gives_the_nchw_results():
    """On a CPU, BasicCNN lays its input out channels-last; values and gradients stay those of (N, C, H, W)."""
    torch.manual_seed(0)
    model = BasicCNN(3, 4).eval()
    x = torch.rand(5, 3, 32, 32, requires_grad=True)
    out = model(x)
    reference = model.classifier(model.features(x.detach().clone().requires_grad_()))  # plain NCHW path
    torch.testing.assert_close(out, reference, atol=1e-6, rtol=1e-5)
    (grad,) = torch.autograd.grad(out[:, 1].sum(), x)
    ref_input = x.detach().clone().requires_grad_()
    (ref_grad,) = torch.autograd.grad(model.classifier(model.features(ref_input))[:, 1].sum(), ref_input)
    torch.testing.assert_close(grad, ref_grad, atol=1e-6, rtol=1e-5)
    assert x.is_contiguous()  # the caller's tensor is not changed


FAULTS_AFTER_FREE = """
import resource, sys
import torch
from deepimaging.train import keep_freed_memory

took = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def activations():  # a 64 MB tensor, written (as a layer's output is), then freed
    torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
for _ in range(3):  # warm up: the first blocks and any threads the fill starts
    activations()
before = faults()
for _ in range(5):
    activations()
print(took, faults() - before)
"""


def _glibc() -> bool:
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


@pytest.mark.skipif(not _glibc(), reason="keep_freed_memory acts on glibc (Linux) only")
def test_keep_freed_memory_reuses_freed_blocks_instead_of_faulting_them_in_again():
    """The kernel's page-fault counter is the oracle: 5 x 64 MB written after a first allocation.

    With glibc's defaults a 64 MB block is mapped on allocation and unmapped on free, so every
    one of its 16,384 pages faults again each time; kept in the heap, it is reused as it is.
    """
    import subprocess
    import sys

    def run(mode):
        out = subprocess.run(
            [sys.executable, "-c", FAULTS_AFTER_FREE, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0], int(out[1])

    pages = 5 * (64 << 20) // 4096
    took, faults_kept = run("keep")
    _, faults_default = run("default")
    assert took == "True"
    assert faults_default >= 0.9 * pages  # the test can fail: the default does fault every page
    assert faults_kept < 0.25 * pages  # at most one of the five blocks faulted in again


def test_keep_freed_memory_does_nothing_off_linux(monkeypatch):
    import sys

    from deepimaging.train import keep_freed_memory

    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
