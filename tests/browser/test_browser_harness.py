"""The browser harness checked on a tiny fixture explorer: it passes a working explorer,
fails a broken one, and always stops its server."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest
from _harness import (
    ExplorerCase,
    ExplorerCheckError,
    bind_explorer,
    check_explorer,
    drag_slider,
    press_slider,
    running_lab,
    select_option,
    slider_value,
)

pytestmark = pytest.mark.browser


def _level_squared_is_shown(run, root, before, after):
    """The readout must show the square of the slider value the page shows (computed here)."""
    level = slider_value(root, "level")
    shown = [t for t in after["readouts"] if t.startswith("level squared")]
    expected = round(level * level, 2)
    if not shown or abs(float(shown[0].split("=")[1]) - expected) > 1e-9:
        return [f"readout {shown} should show level squared = {expected:.2f} for level {level}"]
    return []


@pytest.mark.notebook("fixture_ok.ipynb")
def test_harness_passes_a_working_explorer_moved_by_keyboard(notebook_run, artifacts):
    case = ExplorerCase(
        "fixture_ok.ipynb", "fixture", press_slider("level"), _level_squared_is_shown, id="keys"
    )
    result = check_explorer(notebook_run, case, artifacts)
    assert result["before"]["images"] != result["after"]["images"]
    assert (artifacts / "fixture_ok-keys-after.png").stat().st_size > 0
    # The kernel's explorer (found from the page's widget) holds the value the page shows.
    root = notebook_run.page.locator(".deepimaging-fixture").first
    bind_explorer(notebook_run, root)
    assert float(notebook_run.kernel_exec("print(_explorer.slider.value)")) == slider_value(root, "level")


@pytest.mark.notebook("fixture_ok.ipynb")
def test_harness_passes_a_working_explorer_moved_by_mouse_and_dropdown(notebook_run, artifacts):
    drag = ExplorerCase(
        "fixture_ok.ipynb", "fixture", drag_slider("level", 0.2), _level_squared_is_shown, id="drag"
    )
    check_explorer(notebook_run, drag, artifacts)
    pick = ExplorerCase("fixture_ok.ipynb", "fixture", select_option("colormap"), id="dropdown")
    result = check_explorer(notebook_run, pick, artifacts)
    assert result["before"]["readouts"] == result["after"]["readouts"]  # only the colours change


@pytest.mark.notebook("fixture_broken.ipynb")
def test_harness_fails_an_explorer_whose_observer_raises(notebook_run, artifacts):
    case = ExplorerCase(
        "fixture_broken.ipynb", "fixture", press_slider("level"), _level_squared_is_shown, id="broken"
    )
    with pytest.raises(ExplorerCheckError) as failure:
        check_explorer(notebook_run, case, artifacts)
    message = str(failure.value)
    assert "did not change" in message
    assert "deliberately broken observer" in message  # the kernel's traceback reaches the report
    assert "level squared" in message  # and the readout check fails too


@pytest.mark.notebook("fixture_ok.ipynb")
def test_harness_fails_when_the_explorer_is_absent(notebook_run, artifacts):
    case = ExplorerCase("fixture_ok.ipynb", "no-such-explorer", press_slider(), id="absent")
    with pytest.raises(ExplorerCheckError, match=r"no element \.deepimaging-no-such-explorer"):
        check_explorer(notebook_run, case, artifacts)


def test_server_is_stopped_when_the_body_raises(tmp_path):
    (tmp_path / "root").mkdir()
    with pytest.raises(RuntimeError, match="a test failed here"):
        with running_lab(tmp_path / "root", tmp_path / "state") as server:
            port = int(re.search(r":(\d+)$", server.url).group(1))
            with urllib.request.urlopen(f"{server.url}/api/status?token={server.token}", timeout=5) as reply:
                assert reply.status == 200
            raise RuntimeError("a test failed here")
    assert server.process.poll() is not None
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the server's port still accepts connections"
