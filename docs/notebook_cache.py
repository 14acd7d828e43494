"""Where the course site keeps its executed notebooks: shared by the Sphinx build and the test run.

MyST-NB caches each executed notebook with jupyter-cache, keyed by its code cells and their
metadata, in a folder named after the run mode (quick ``DEEPIMAGING_SMOKE=1`` or full settings)
and a hash of the package's source, since the outputs depend on both. A notebook found there is
shown without being executed again.

The test run executes every notebook anyway (nbval, in quick mode); the ``conftest.py`` at the
root of the repository stores each notebook that ran without an error here, with its outputs, so
the site built later in the same run (``tests/browser/test_docs_site.py``) or by ``bash run.sh
docs`` in quick mode shows those outputs instead of executing the notebooks a second time.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
CACHES = DOCS / "_build" / ".jupyter_cache"


def package_hash() -> str:
    """A short hash of every ``.py`` file of the package: executed outputs depend on it."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "deepimaging").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_folder(smoke: bool) -> Path:
    """The jupyter-cache folder for this run mode and this package source."""
    return CACHES / f"{'smoke' if smoke else 'full'}-{package_hash()}"


def remove_stale_caches(smoke: bool) -> None:
    """Delete the caches of older package sources in this mode: their outputs are never shown again."""
    current = cache_folder(smoke)
    for stale in CACHES.glob(f"{'smoke' if smoke else 'full'}-*") if CACHES.is_dir() else ():
        if stale != current:
            shutil.rmtree(stale, ignore_errors=True)


def store_executed(notebook, source: Path, smoke: bool, seconds: float) -> None:
    """Put an executed notebook (an ``nbformat`` node with its outputs) into the site's cache."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(cache_folder(smoke)))
    bundle = CacheBundleIn(notebook, str(source), data={"execution_seconds": seconds})
    cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
