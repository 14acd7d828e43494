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


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a ``torch.Generator`` seeded the same way."""
    check_int(seed, "seed", 0)
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
    """Per-epoch losses and accuracies recorded by :func:`fit`."""

    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)

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
) -> History:
    """Train ``model`` with Adam, cosine learning-rate decay and cross-entropy; return the history.

    Each epoch visits the training images once in a seeded random order and,
    when ``val`` is given, evaluates on it. The model is left on ``device`` and
    in eval mode.

    Parameters
    ----------
    model : nn.Module
        Maps images (N, C, H, W) to logits (N, K).
    train, val : ImageDataset
    epochs, lr, batch_size, weight_decay : training settings
    seed : int
        Seeds the shuffling; seed the model's initial weights yourself with
        :func:`seed_everything` before building it.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    progress : bool
        Show a progress bar over epochs (notebook or terminal).

    Returns
    -------
    History
    """
    _check_dataset(train, "train")
    if val is not None:
        _check_dataset(val, "val")
    check_int(epochs, "epochs", 1)
    check_int(batch_size, "batch_size", 1)
    check_number(lr, "lr", 0.0, low_open=True)
    device = get_device(device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(train) / batch_size)
    # Cosine decay to zero: the last epochs settle, so the final accuracy is stable, not a lucky epoch.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    generator = torch.Generator().manual_seed(seed)
    # uint8 storage moves as uint8 (a quarter of the bytes) and is converted one batch at a time.
    images, labels = train.storage.to(device), train.labels.to(device)
    history = History()

    bar = tqdm(range(epochs), desc="epochs", disable=not progress, leave=False)
    for _ in bar:
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
        if val is not None:
            result = evaluate(model, val, batch_size=max(batch_size, 256), device=device)
            history.val_loss.append(result["loss"])
            history.val_accuracy.append(result["accuracy"])
            bar.set_postfix(val_accuracy=f"{result['accuracy']:.3f}")
    model.eval()
    return history


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
