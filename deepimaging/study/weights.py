"""Each point's trained network, saved beside its record and read back without running code from the file.

The file holds the whole ``PhysicalModel.state_dict()``: the CNN's weights and
BatchNorm statistics and the physical layer's parameters and buffers (a learned
PSF, colour-filter tile or bits map). It is written with :func:`torch.save` and
read with ``torch.load(..., weights_only=True)``.

Why ``torch.load(weights_only=True)`` and not safetensors: it needs no new
dependency, and its unpickler accepts only tensors, plain containers and
numbers; any other object (the way a malicious pickle runs code) is refused
before it is built. Two further checks come first: the file's size and SHA-256
must match the point record, so a truncated or altered file is refused before
the unpickler even sees it.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import torch

from .._util import atomic_write

#: Extension of a point's weights file (beside its ``.json`` record, same stem).
WEIGHTS_SUFFIX = ".pt"


class WeightsFileError(ValueError):
    """A weights file that is truncated, altered, or holds something other than tensors."""


def save_weights(model: torch.nn.Module, path) -> dict:
    """Write ``model.state_dict()`` to ``path`` atomically; return what the point record keeps.

    Parameters
    ----------
    model : nn.Module
        The trained ``PhysicalModel``.
    path : path
        The weights file, e.g. ``points/quantize__v1__s0.pt``.

    Returns
    -------
    dict
        ``{"file": name, "sha256": hex digest, "bytes": size}``.
    """
    # On the CPU, so that a network trained on a GPU opens on a laptop.
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(data))
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def read_weights(path, expected: dict) -> dict:
    """The state dict in ``path``, after checking it against the point record's ``weights`` entry.

    Parameters
    ----------
    path : path
        The weights file.
    expected : dict
        ``{"sha256": ..., "bytes": ...}`` from the point record.

    Returns
    -------
    dict of str to torch.Tensor

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    WeightsFileError
        Size or SHA-256 differ from the record (truncated or altered), or the
        file holds anything but a dict of tensors. Nothing in the file is run.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) != expected["bytes"]:
        raise WeightsFileError(
            f"weights file {path} has {len(data)} bytes, its record says {expected['bytes']}: "
            "the file is truncated or was replaced; refused"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected["sha256"]:
        raise WeightsFileError(
            f"weights file {path} has SHA-256 {digest[:16]}..., its record says {expected['sha256'][:16]}...: "
            "the file was altered after the study wrote it; refused"
        )
    try:
        # weights_only: the unpickler builds tensors and plain containers only, never arbitrary objects.
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        raise WeightsFileError(
            f"weights file {path} does not hold plain tensors (refused without running it): {err}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsFileError(
            f"weights file {path} holds {type(state).__name__}, not a state dict of named tensors; refused"
        )
    return state
