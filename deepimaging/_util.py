"""Internal helpers shared by several subpackages: one home for each, private to the package.

What lives here is small plumbing that two or more floors of the package need
(see the layering in :mod:`deepimaging`): writing a file or a folder atomically, the
package version, running a model in eval mode on its own device, batched
softmax prediction, and reading an ``int or (height, width)`` argument.
Input checks with user-facing messages live beside it in :mod:`._checks`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ._checks import check_int


def _current_umask() -> int:
    mask = os.umask(0)  # the only portable way to read the umask is to set it and set it back
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, so reading it later from a thread could race.
_UMASK = _current_umask()


def atomic_write(path, write: Callable) -> Path:
    """Write ``path`` so that it holds either its old content or the complete new one, never a part.

    ``write(f)`` receives a binary file object opened on a temporary file in the
    same folder; when it returns, the file is flushed, synced to disk and renamed
    to ``path`` with :func:`os.replace` (atomic on POSIX and Windows within one
    file system). On any error, Ctrl-C included, the temporary file is removed
    and the error re-raised. The folder must exist.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_write`)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_folder(path):
    """Build the folder ``path`` so that it is either absent (or empty) or complete, never half-made.

    A context manager: ``with atomic_folder(path) as tmp:`` fills ``tmp``, a new folder
    beside ``path`` (``.<name>.XXXX.part``); when the block ends without error an empty
    folder at ``path`` (an earlier ``mkdir``) is removed and ``tmp`` renamed to ``path``
    with :func:`os.replace`. On any error, Ctrl-C included, ``tmp`` is removed and the
    error re-raised. The parent folder must exist, and the caller checks beforehand that
    ``path`` is missing or empty. ``tmp`` is created by this call, not by ``with``, so a
    caller can tell an error in making it from one in filling it.
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    return _renamed_into_place(tmp, path)


@contextlib.contextmanager
def _renamed_into_place(tmp: Path, path: Path):
    try:
        yield tmp
        if path.is_dir():
            path.rmdir()  # empty (checked by the caller); a folder that filled meanwhile raises here
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def package_version() -> str:
    """The installed deepimaging version (recorded in study files and shown on results pages)."""
    from . import __version__

    return __version__


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run the block with ``model`` in eval mode, then restore every submodule's own mode."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def softmax_in_batches(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 256, convert: Callable | None = None
) -> torch.Tensor:
    """Class probabilities of ``images`` (N, C, H, W), ``batch_size`` at a time, in eval mode, on the CPU.

    The images go to the model's device one batch at a time, so a large dataset
    never has to fit in GPU memory. ``convert`` (e.g. uint8 to float) is applied
    to each batch on the device.
    """
    check_int(batch_size, "batch_size", 1)
    with eval_mode(model):
        device = model_device(model)
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            if convert is not None:
                batch = convert(batch)
            chunks.append(torch.softmax(model(batch), dim=1).cpu())
    if not chunks:
        raise ValueError("images holds no images; class probabilities need at least one")
    return torch.cat(chunks)


def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints >= 1, as (height, width); ``name`` is the argument's name in errors."""
    values = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(values) != 2:
        raise ValueError(f"{name} must be an int or a pair (height, width); got {value!r}")
    return check_int(values[0], name, 1), check_int(values[1], name, 1)
