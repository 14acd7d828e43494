import os

import matplotlib
import pytest

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
