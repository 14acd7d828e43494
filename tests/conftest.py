import os
import sys

import matplotlib
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "browser"))
from _harness import CHROMIUM, CHROMIUM_ARGS, INSTALL_HINT  # noqa: E402

matplotlib.use("Agg")
os.environ.setdefault("DEEPIMAGING_SMOKE", "1")

BCCD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "BCCD")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def bccd_root():
    """The real BCCD copy beside the project (../shared/data/BCCD); skip when absent."""
    path = os.path.abspath(os.environ.get("DEEPIMAGING_BCCD", BCCD))
    if not os.path.isdir(os.path.join(path, "Annotations")):
        pytest.skip(f"BCCD not found at {path}; set DEEPIMAGING_BCCD to a copy of it")
    return path


@pytest.fixture(scope="session")
def chromium():
    """One headless Debian Chromium driven by Playwright for the whole session; skips where it is missing.

    Shared by every test that opens a page: Playwright's sync API cannot start a second
    instance while one is running in the same process.
    """
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found. {INSTALL_HINT}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()
