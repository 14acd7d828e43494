import os
import sys

import matplotlib
import pytest
from hypothesis import settings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "browser"))
from _harness import CHROMIUM, CHROMIUM_ARGS, INSTALL_HINT  # noqa: E402
from _requirements import import_or_missing, missing  # noqa: E402

matplotlib.use("Agg")
os.environ.setdefault("DEEPIMAGING_SMOKE", "1")

# Hypothesis under CI draws the same examples on every run, so a red run can be rerun and debugged
# and nothing lands or fails by the luck of the draw; a developer's run explores new examples each
# time. Both print the blob that reproduces a failing example (@reproduce_failure).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "explore")

BCCD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "BCCD")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _write_image_folder(root, classes=("a", "b", "c"), n=4, size=16, seed=0, ext=".png") -> dict:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = {}
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(array).save(root / name / f"img{k}{ext}")
            written[f"{name}/img{k}{ext}"] = array
    return written


@pytest.fixture
def write_image_folder():
    """A function that writes random RGB images as ``root/<class>/img<k><ext>`` and returns them.

    ``write_image_folder(root, classes=("a", "b", "c"), n=4, size=16, seed=0, ext=".png")``
    returns ``{"<class>/img<k><ext>": uint8 array (size, size, 3)}``: the pixels as written,
    the oracle a loader's output is compared with (PNG is lossless; JPEG is not).
    """
    return _write_image_folder


def _write_medmnist_claiming(path, shape):
    """Write a MedMNIST ``.npz`` whose ``test_images`` holds only a header claiming ``shape`` (no pixels)."""
    import io
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("test_images.npy", "w") as member:
            header = {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)}
            np.lib.format.write_array_header_1_0(member, header)
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((1, 1), np.uint8))
        archive.writestr("test_labels.npy", buffer.getvalue())
    return path


@pytest.fixture
def write_medmnist_claiming():
    """A function ``(path, shape)`` writing a MedMNIST file whose image header claims ``shape``."""
    return _write_medmnist_claiming


@pytest.fixture
def bccd_root():
    """The real BCCD copy beside the project (../shared/data/BCCD); skip when absent (fail under CI)."""
    path = os.path.abspath(os.environ.get("DEEPIMAGING_BCCD", BCCD))
    if not os.path.isdir(os.path.join(path, "Annotations")):
        missing(
            f"BCCD data not found at {path} (no Annotations folder); set DEEPIMAGING_BCCD to a copy of it"
        )
    return path


@pytest.fixture(scope="session")
def chromium():
    """One headless Debian Chromium driven by Playwright for the whole session; skips where it is missing (fails under CI).

    Shared by every test that opens a page: Playwright's sync API cannot start a second
    instance while one is running in the same process.
    """
    if not os.path.exists(CHROMIUM):
        missing(f"chromium not found at {CHROMIUM}. {INSTALL_HINT}")
    sync_api = import_or_missing("playwright.sync_api", "pip install playwright (the dev extra)")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


# The slowest files first. `bash run.sh test` runs the tests on every core with pytest-xdist, which
# hands each worker whole files in collection order (--dist loadfile --no-loadscope-reorder): a slow
# file that started last would keep one core busy while the others wait. Measured in CI (seconds of
# the slowest tests): homework's otter gradings, the README's commands, the CLI's study jobs, the
# browser tests (each starts JupyterLab or builds the site), the fresh venv of the first hour.
SLOW_FILES = (
    "tests/test_homework.py",
    "tests/test_readme.py",
    "tests/test_executors.py",
    "tests/browser/test_browser_explorers.py",
    "tests/browser/test_docs_site.py",
    "tests/test_readme_first_hour.py",
    "tests/browser/test_browser_harness.py",
    "tests/test_cli_demo.py",
    "tests/test_study.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: position for position, name in enumerate(SLOW_FILES)}
    # A stable sort: each file keeps its own order, and the other files theirs.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOW_FILES)))
