"""fit leaves a model whose eval mode is right; the history shows what eval mode sees; clear errors."""

import copy

import pytest
import torch
from torch import nn

from deepimaging.data import simulate_blood_smear, split
from deepimaging.data.dataset import as_float
from deepimaging.models import BasicCNN
from deepimaging.train import (
    History,
    evaluate,
    fit,
    get_device,
    recalibrate_batchnorm_statistics,
    seed_everything,
)


def _stale_case():
    """168 training images, batches of 64: 8 epochs are 24 steps, and BatchNorm's moving averages (momentum 0.1)
    still mix in the statistics of the first, long-gone weights."""
    data = simulate_blood_smear(n_per_class=60, size=16, seed=0)
    train, val, test = split(data, val=0.15, test=0.15, seed=0)
    return train, val, test


def _trained(recalibrate, epochs=8):
    train, val, _ = _stale_case()
    seed_everything(0)
    model = BasicCNN(3, train.num_classes, widths=(8, 16))
    history = fit(
        model,
        train,
        val,
        epochs=epochs,
        lr=1e-2,
        batch_size=64,
        device="cpu",
        progress=False,
        recalibrate_batchnorm=recalibrate,
    )
    return model, history, train


def _batch_statistics_accuracy(model, data, batch_size):
    """Hand-written oracle: accuracy with BatchNorm normalising each batch by its own statistics."""
    model = copy.deepcopy(model).train()  # a copy: train mode would update the original's statistics
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            images = as_float(data.storage[start : start + batch_size])
            correct += int((model(images).argmax(1) == data.labels[start : start + batch_size]).sum())
    return correct / len(data)


def test_recalibration_makes_eval_mode_match_batch_statistics_where_stale_statistics_hurt():
    stale, _, train = _trained(recalibrate=False)
    fixed, history, _ = _trained(recalibrate=True)
    # The oracle normalises with the statistics of all training images at once (one batch).
    oracle = _batch_statistics_accuracy(fixed, train, batch_size=len(train))
    assert oracle > 0.5  # the network did learn something (chance is 0.25)
    # Same weights in both (the recalibration changes only BatchNorm's buffers) ...
    for (name, a), (_, b) in zip(stale.named_parameters(), fixed.named_parameters()):
        torch.testing.assert_close(a, b, msg=name)
    assert _batch_statistics_accuracy(stale, train, len(train)) == pytest.approx(oracle)
    # ... but eval mode with the stale statistics is far off, the recalibrated one within 2 points.
    stale_eval = evaluate(stale, train, device="cpu")["accuracy"]
    fixed_eval = evaluate(fixed, train, device="cpu")["accuracy"]
    assert stale_eval < oracle - 0.2
    assert abs(fixed_eval - oracle) <= 0.02
    assert history.recalibrated and not fixed.training


def test_recalibrated_running_mean_is_the_mean_of_the_first_convolution_over_the_training_images():
    model, _, train = _trained(recalibrate=True)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    first_bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        # update_bn averages per-batch means; with batches of 64 the last batch is smaller,
        # so compare against the same per-batch average computed by hand.
        means = [
            first_conv(as_float(train.storage[i : i + 64])).mean(dim=(0, 2, 3))
            for i in range(0, len(train), 64)
        ]
    torch.testing.assert_close(first_bn.running_mean, torch.stack(means).mean(0), rtol=1e-4, atol=1e-5)


def test_recalibration_without_batchnorm_reports_false_and_changes_nothing():
    train, _, _ = _stale_case()
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    before = copy.deepcopy(model.state_dict())
    assert recalibrate_batchnorm_statistics(model, train, device="cpu") is False
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_history_records_eval_mode_accuracy_on_a_training_sample_and_on_validation():
    model, history, train = _trained(recalibrate=True)
    assert isinstance(history, History)
    assert len(history.train_eval_accuracy) == len(history.val_accuracy) == history.epochs == 8
    # During training eval mode uses the stale statistics: the gap is visible in the history ...
    assert history.train_eval_accuracy[-1] < history.train_accuracy[-1] - 0.2
    # ... and the final numbers are those of the recalibrated model (the whole training set is the sample here).
    assert len(train) <= 512
    assert history.final["train_eval_accuracy"] == pytest.approx(
        evaluate(model, train, device="cpu")["accuracy"]
    )
    _, val, _ = _stale_case()
    assert history.final["val_accuracy"] == pytest.approx(evaluate(model, val, device="cpu")["accuracy"])


def test_early_stopping_keeps_the_weights_of_the_best_validation_loss():
    train, val, _ = _stale_case()
    seed_everything(0)
    model = BasicCNN(3, 4, widths=(8, 16))
    history = fit(
        model,
        train,
        val,
        epochs=12,
        lr=3e-2,
        batch_size=64,
        device="cpu",
        progress=False,
        patience=1,
        recalibrate_batchnorm=False,
    )
    best = history.best_epoch
    assert best == 1 + min(range(history.epochs), key=lambda e: history.val_loss[e])
    assert history.epochs == best + 1 or history.epochs == 12
    # Without recalibration the kept model is exactly the best epoch's: its validation loss is the best one.
    assert evaluate(model, val, device="cpu")["loss"] == pytest.approx(history.val_loss[best - 1], rel=1e-5)


def test_early_stopping_needs_validation_data_and_a_positive_patience():
    train, val, _ = _stale_case()
    model = BasicCNN(3, 4, widths=(8, 16))
    with pytest.raises(ValueError, match="patience .*needs validation data"):
        fit(model, train, patience=2, device="cpu", progress=False)
    with pytest.raises(ValueError, match="patience must be in"):
        fit(model, train, val, patience=0, device="cpu", progress=False)
    with pytest.raises(TypeError, match="recalibrate_batchnorm must be True or False"):
        fit(model, train, recalibrate_batchnorm="yes", device="cpu", progress=False)


def test_a_model_with_fewer_outputs_than_classes_is_a_clear_error_before_training():
    train, _, _ = _stale_case()  # 4 classes
    model = BasicCNN(3, 3, widths=(8, 16))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"4 classes .*output has shape \(2, 3\).*BasicCNN\(channels, 4\)"):
        fit(model, train, device="cpu", progress=False)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # nothing was trained, no statistic moved


@pytest.mark.parametrize("seed", [2**70, 2**63, -1])
def test_seed_outside_the_64_bit_range_is_a_clear_error_naming_seed(seed):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 9223372036854775807\]"):
        seed_everything(seed)


def test_largest_seed_is_accepted():
    seed_everything(2**63 - 1)


def test_auto_device_picks_cuda_when_it_is_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device("auto").type in ("cpu", "mps")
