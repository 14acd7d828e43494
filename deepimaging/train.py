"""Training: seeds, devices, fit / predict / evaluate.

Conventions: the same ``seed`` on the same machine gives the same numbers;
``device="auto"`` picks CUDA, then Apple's MPS, then the CPU.
"""

from __future__ import annotations

import ctypes
import math
import os
import random
import sys
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_int, check_number
from ._util import softmax_in_batches
from .data.dataset import ImageDataset, as_float

__all__ = [
    "DEVICES",
    "History",
    "Predictions",
    "evaluate",
    "fit",
    "get_device",
    "keep_freed_memory",
    "predict",
    "seed_everything",
    "smoke_mode",
]

DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_SEED = 2**63 - 1  # the largest seed every generator (Python, NumPy via % 2**32, PyTorch) accepts
TRAIN_SAMPLE_SIZE = 512  # training images evaluated in eval mode after each epoch (a fixed sample)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a ``torch.Generator`` seeded the same way.

    ``seed`` must lie in [0, 2**63 - 1]: PyTorch keeps seeds as 64-bit integers.
    """
    check_int(seed, "seed", 0, MAX_SEED)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA, then MPS, then CPU; check that a named device exists."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)} (or 'cuda:N'); got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'"
        )
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but MPS is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


def smoke_mode() -> bool:
    """True when notebooks and scripts should shrink data and epochs: ``DEEPIMAGING_SMOKE=1`` or ``CI`` set."""
    flag = os.environ.get("DEEPIMAGING_SMOKE", "")
    if flag:
        return flag not in ("0", "false", "False", "no")
    return bool(os.environ.get("CI"))


# glibc's mallopt() parameters (malloc.h) and the values keep_freed_memory() gives them.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP_BLOCKS_UP_TO = 256 << 20  # blocks up to 256 MB come from the heap, not from their own mapping
_KEEP_FREE_UP_TO = 512 << 20  # the heap gives memory back to the system only beyond 512 MB free


def keep_freed_memory() -> bool:
    """Let this process reuse the memory PyTorch frees on the CPU instead of handing it back (Linux).

    Each training step or batch of predictions allocates the network's activations
    (tens of MB) and frees them at the end. With its default settings, the C
    library on Linux (glibc) gives memory that large back to the operating system
    on free, so the next batch asks for it again and the system zeroes every 4 kB
    page as it is touched: hundreds of thousands of page faults per second of
    compute. This call changes two of glibc's settings (``mallopt``) for the
    current process: blocks up to 256 MB come from the heap, and the heap keeps up
    to 512 MB of freed memory for reuse. The numbers are unchanged; only where the
    memory comes from changes. On a 2-core CPU, BasicCNN training ran 1.14x as
    fast, predictions 2.2x and an occlusion map 1.8x (``benchmarks/bench_memory.py``,
    ``benchmarks/bench_attribution.py``).

    The cost: the process keeps up to 512 MB of memory it no longer uses until it
    exits. Call it once, at the start (the ``deepimaging`` command and the course
    notebooks do). Elsewhere than Linux with glibc (macOS, Windows, musl) it does
    nothing and returns False: their allocators keep freed memory already.

    Returns
    -------
    bool
        True when glibc took both settings.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it (musl takes no such settings)
    except (OSError, AttributeError):
        return False
    took_blocks = libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCKS_UP_TO)
    took_free = libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_UP_TO)
    return bool(took_blocks and took_free)


@dataclass
class History:
    """Per-epoch losses and accuracies recorded by :func:`fit`.

    Two kinds of accuracy tell different stories. ``train_loss`` and
    ``train_accuracy`` are measured *as trained*: in train mode, on each batch
    while the weights still move, with BatchNorm normalising by the batch's own
    statistics. ``train_eval_accuracy``, ``val_loss`` and ``val_accuracy`` are
    measured the way the model is used afterwards: in eval mode, with
    BatchNorm's running statistics, on a fixed sample of the training images
    and on the validation set. A large gap between ``train_accuracy`` and
    ``train_eval_accuracy`` means the running statistics do not describe the
    weights (a short training), which is what the recalibration at the end of
    :func:`fit` repairs.

    Attributes
    ----------
    train_loss, train_accuracy : list of float
        Per epoch, as trained.
    train_eval_accuracy : list of float
        Per epoch, eval mode, on a fixed sample of up to 512 training images.
    val_loss, val_accuracy : list of float
        Per epoch, eval mode, on the validation set (empty without one).
    best_epoch : int or None
        With early stopping: the 1-based epoch whose weights were kept.
    recalibrated : bool
        Whether BatchNorm's running statistics were recomputed after training.
    final : dict
        The eval-mode numbers of the model ``fit`` returns (after recalibration
        and early stopping): ``train_eval_accuracy`` and, with validation data,
        ``val_loss`` and ``val_accuracy``.
    """

    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    train_eval_accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    best_epoch: int | None = None
    recalibrated: bool = False
    final: dict = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict:
        return asdict(self)


class Predictions(NamedTuple):
    """What :func:`predict` returns: probabilities (N, K), predicted (N,), labels (N,)."""

    probabilities: torch.Tensor
    predicted: torch.Tensor
    labels: torch.Tensor


def fit(
    model: nn.Module,
    train: ImageDataset,
    val: ImageDataset | None = None,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    recalibrate_batchnorm: bool = True,
    patience: int | None = None,
) -> History:
    """Train ``model`` with Adam, cosine learning-rate decay and cross-entropy; return the history.

    Each epoch visits the training images once in a seeded random order, then
    evaluates in eval mode on a fixed sample of the training images and, when
    ``val`` is given, on ``val``. After the last epoch, every BatchNorm layer's
    running statistics are recomputed over the training images with the final
    weights (see Notes). The model is left on ``device`` and in eval mode.

    Parameters
    ----------
    model : nn.Module
        Maps images (N, C, H, W) to logits (N, K), K at least the number of classes.
    train, val : ImageDataset
    epochs, lr, batch_size, weight_decay : training settings
    seed : int
        Seeds the shuffling; seed the model's initial weights yourself with
        :func:`seed_everything` before building it.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    progress : bool
        Show a progress bar over epochs (notebook or terminal).
    recalibrate_batchnorm : bool
        Recompute BatchNorm's running statistics after training (default True).
    patience : int, optional
        Early stopping: stop when the validation loss has not improved for
        ``patience`` epochs and keep the weights of the best epoch. Needs ``val``.

    Returns
    -------
    History

    Notes
    -----
    In train mode BatchNorm normalises each batch by its own mean and variance
    and keeps an exponential moving average of them (momentum 0.1) for eval
    mode. After a short training that average mixes statistics of early,
    long-gone weights, and eval mode can be far worse than training suggests
    (on BCCD crops after 6 epochs: white-cell recall 0 in eval mode, 0.99 with
    batch statistics). The recalibration is PyTorch's
    :func:`torch.optim.swa_utils.update_bn`: reset the statistics, set
    ``momentum=None`` (a plain average over batches) and run every training
    image through the model once in train mode without gradients, so the
    physical layer in front runs exactly as in training.
    """
    _check_dataset(train, "train")
    if val is not None:
        _check_dataset(val, "val")
    check_int(epochs, "epochs", 1)
    check_int(batch_size, "batch_size", 1)
    check_number(lr, "lr", 0.0, low_open=True)
    if not isinstance(recalibrate_batchnorm, bool):
        raise TypeError(f"recalibrate_batchnorm must be True or False; got {recalibrate_batchnorm!r}")
    if patience is not None:
        check_int(patience, "patience", 1)
        if val is None:
            raise ValueError("patience (early stopping) needs validation data: pass val=")
    device = get_device(device)
    model.to(device)
    _check_outputs(model, train, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(train) / batch_size)
    # Cosine decay to zero: the last epochs settle, so the final accuracy is stable, not a lucky epoch.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    generator = torch.Generator().manual_seed(seed)
    # uint8 storage moves as uint8 (a quarter of the bytes) and is converted one batch at a time.
    images, labels = train.storage.to(device), train.labels.to(device)
    # A fixed sample of the training images, drawn with its own generator so that the batch order
    # does not depend on whether (or how large) a sample is taken.
    sample_generator = torch.Generator().manual_seed(seed)
    train_sample = train.subset(
        torch.randperm(len(train), generator=sample_generator)[:TRAIN_SAMPLE_SIZE].sort().values
    )
    history = History()
    best_loss, best_state = math.inf, None

    bar = tqdm(range(epochs), desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(labels), generator=generator).to(device)
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            logits = model(as_float(images[batch]))
            loss = loss_fn(logits, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            (loss / len(batch)).backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.detach()
            correct += (logits.argmax(1) == labels[batch]).sum()
        history.train_loss.append(total_loss.item() / len(labels))
        history.train_accuracy.append(correct.item() / len(labels))
        eval_batch = max(batch_size, 256)
        history.train_eval_accuracy.append(
            evaluate(model, train_sample, batch_size=eval_batch, device=device)["accuracy"]
        )
        if val is not None:
            result = evaluate(model, val, batch_size=eval_batch, device=device)
            history.val_loss.append(result["loss"])
            history.val_accuracy.append(result["accuracy"])
            bar.set_postfix(val_accuracy=f"{result['accuracy']:.3f}")
            if patience is not None:
                if result["loss"] < best_loss:
                    best_loss, history.best_epoch = result["loss"], epoch + 1
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif epoch + 1 - history.best_epoch >= patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    if recalibrate_batchnorm:
        history.recalibrated = recalibrate_batchnorm_statistics(
            model, train, batch_size=batch_size, device=device
        )
    model.eval()
    history.final["train_eval_accuracy"] = evaluate(model, train_sample, device=device)["accuracy"]
    if val is not None:
        result = evaluate(model, val, device=device)
        history.final.update(val_loss=result["loss"], val_accuracy=result["accuracy"])
    return history


def recalibrate_batchnorm_statistics(
    model: nn.Module, data: ImageDataset, *, batch_size: int = 64, device: str = "auto"
) -> bool:
    """Recompute every BatchNorm layer's running mean and variance over ``data`` with the current weights.

    A thin wrapper of :func:`torch.optim.swa_utils.update_bn`: it resets the
    running statistics, sets ``momentum=None`` so they become the plain average
    over the batches, and runs each image through ``model`` once in train mode
    (no gradients; the weights do not change). Train mode matters for a
    :class:`~deepimaging.models.PhysicalModel`: its physical layer sees the
    images exactly as in training. The model's train/eval mode is restored.

    Parameters
    ----------
    model : nn.Module
    data : ImageDataset
        The training images (the statistics the network was trained with).
    batch_size : int
        Use the training batch size: BatchNorm's variance is averaged per batch.
    device : str

    Returns
    -------
    bool
        True if the model has BatchNorm layers (and they were recalibrated).
    """
    _check_dataset(data, "data")
    check_int(batch_size, "batch_size", 1)
    device = get_device(device)
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return False
    model.to(device)
    batches = (as_float(data.storage[i : i + batch_size].to(device)) for i in range(0, len(data), batch_size))
    torch.optim.swa_utils.update_bn(batches, model)
    return True


def _check_outputs(model: nn.Module, train: ImageDataset, device: torch.device) -> None:
    """Fail with a clear message when the model has fewer outputs than the data has classes."""
    was_training = model.training
    model.eval()  # eval mode: one forward pass that changes no BatchNorm statistics
    try:
        with torch.no_grad():
            logits = model(as_float(train.storage[:2].to(device)))
    finally:
        model.train(was_training)
    if logits.ndim != 2 or logits.shape[1] < train.num_classes:
        raise ValueError(
            f"the model must output one logit per class: the training data has {train.num_classes} classes "
            f"{list(train.classes)}, the model's output has shape {tuple(logits.shape)}; "
            f"build it with {train.num_classes} classes, e.g. BasicCNN(channels, {train.num_classes})"
        )


@torch.no_grad()
def predict(
    model: nn.Module, data: ImageDataset, *, batch_size: int = 256, device: str = "auto"
) -> Predictions:
    """Class probabilities, predicted labels and true labels for every image, in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    _check_dataset(data, "data")
    check_int(batch_size, "batch_size", 1)
    model.to(get_device(device))
    probabilities = softmax_in_batches(model, data.storage, batch_size=batch_size, convert=as_float)
    return Predictions(probabilities, probabilities.argmax(1), data.labels.clone())


def evaluate(model: nn.Module, data: ImageDataset, *, batch_size: int = 256, device: str = "auto") -> dict:
    """Mean cross-entropy loss and accuracy on ``data``: ``{"loss": ..., "accuracy": ...}``."""
    result = predict(model, data, batch_size=batch_size, device=device)
    nll = -torch.log(result.probabilities.gather(1, result.labels[:, None]).clamp_min(1e-12))
    return {
        "loss": float(nll.mean()),
        "accuracy": float((result.predicted == result.labels).float().mean()),
    }


def _check_dataset(data, name):
    if not isinstance(data, ImageDataset):
        raise TypeError(
            f"{name} must be an ImageDataset (images, labels, classes); got {type(data).__name__}. "
            "Wrap tensors with deepimaging.data.ImageDataset(images, labels, classes)."
        )
    if len(data) == 0:
        raise ValueError(f"{name} holds no images")
