"""Datasets by name, as a study or a project's ``project.toml`` names them: ``"blood_smear"``, ``"digits"``, ..."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["dataset_loader", "dataset_names"]


def dataset_names() -> list[str]:
    """The names a study accepts: ``"blood_smear"`` (simulated, built in), then every ``load_<name>`` loader."""
    from . import __all__ as public

    return ["blood_smear"] + sorted(n[len("load_") :] for n in public if n.startswith("load_"))


def dataset_loader(name: str) -> Callable:
    """The function that makes dataset ``name``: ``"digits"`` or ``"load_digits"`` give ``load_digits``.

    ``"blood_smear"`` gives :func:`~deepimaging.data.simulate_blood_smear`. Only
    the loaders that :mod:`deepimaging.data` lists publicly count, never a
    private or unrelated attribute of the package.

    Raises
    ------
    TypeError
        When ``name`` is not a string.
    ValueError
        For a name that is no dataset, listing the names there are.
    """
    from .. import data

    if not isinstance(name, str):
        raise TypeError(
            f"dataset must be a name such as 'blood_smear' or 'digits'; got {type(name).__name__}"
        )
    if name == "blood_smear":
        return data.simulate_blood_smear
    for candidate in (f"load_{name}", name):
        if candidate.startswith("load_") and candidate in data.__all__:
            return getattr(data, candidate)
    raise ValueError(f"unknown dataset name {name!r}; available: {dataset_names()}")
