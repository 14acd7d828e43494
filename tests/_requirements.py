"""What a test needs from the machine, and what happens when it is missing.

Locally a missing requirement (the real BCCD photos, Debian's chromium, otter-grader)
skips the tests that need it, with a message saying how to get it. Under CI (the
environment variable ``CI`` set, as GitHub Actions, GitLab and ``.ci/run`` do) the
same tests *fail* with that message: a run that skipped them would be green without
having checked them.
"""

from __future__ import annotations

import importlib
import os

import pytest


def in_ci() -> bool:
    """True when ``CI`` is set to anything but an empty string, ``0`` or ``false``."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(message: str) -> None:
    """Skip the current test (or module) because ``message`` names something missing; under CI, fail."""
    if in_ci():
        pytest.fail(
            f"{message} [CI is set: a missing requirement fails the run instead of skipping]", pytrace=False
        )
    pytest.skip(message, allow_module_level=True)


def import_or_missing(module: str, hint: str):
    """``importlib.import_module(module)``, or :func:`missing` with ``hint`` when it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing(f"cannot import {module} ({err}); {hint}")
