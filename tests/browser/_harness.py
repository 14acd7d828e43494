"""The browser harness: a JupyterLab server on 127.0.0.1, notebooks run in headless Chromium.

Why JupyterLab rather than Voila: JupyterLab 4 is what students open, and the
failures this suite exists for ("Error displaying widget: model not found", a
widget manager that is missing or too old for the kernel's ipywidgets, the
static fallback shown instead of the widget) are failures of the Lab front end.
Voila would render the same outputs without the Lab UI, but through its own
widget manager, so it could pass where Lab fails; it also adds a dependency.
Lab costs a few seconds more per page, which the 5-minute budget allows
because all notebooks run at the same time in one server (one page each).

Everything here is plain functions and small classes so that the tests can use
it twice: on the course notebooks, and on a deliberately broken fixture to show
that a broken explorer makes the check fail.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("DEEPIMAGING_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps opening connections that a
# closed network refuses (and that slow the first page down); none are needed here.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
INSTALL_HINT = (
    "Debian's chromium is needed for the browser tests of the widgets: "
    "`sudo apt-get install chromium chromium-driver` (or set DEEPIMAGING_CHROMIUM to a Chromium binary); "
    "`bash run.sh test` installs it when run as root"
)

# Lab settings for a reproducible, offline, side-effect-free session: no autosave (the
# notebooks are copies, but a saved output would still be a surprise), every cell
# attached to the DOM (no windowing), no news or update checks (no network).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
SERVER_CONFIG = {
    "LabApp": {"news_url": None},
    # The server extensions a notebook page does not need: fewer things to start and to fail.
    "ServerApp": {
        "jpserver_extensions": {
            "jupyter_lsp": False,
            "jupyter_server_terminals": False,
            "jupyterlab_jupytext": False,
        }
    },
}
# Runs in every kernel before the notebook: records every exception the kernel reports
# in a file the test reads, tagged with the notebook's path. An exception raised by a widget
# observer never reaches a notebook cell: ipywidgets hands it to IPython's showtraceback
# (JupyterLab files it in the log console) or ipykernel's comm manager logs it.
KERNEL_STARTUP = """\
import json as _json
import logging as _logging
import os as _os
import traceback as _traceback


def _deepimaging_record(message):
    path = _os.environ.get("DEEPIMAGING_BROWSER_KERNEL_LOG")
    if path:
        line = {"notebook": _os.environ.get("JPY_SESSION_NAME", ""), "message": message}
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(_json.dumps(line) + "\\n")


class _DeepimagingErrorLog(_logging.Handler):
    def emit(self, record):
        _deepimaging_record(self.format(record))


_handler = _DeepimagingErrorLog(level=_logging.ERROR)
_handler.setFormatter(_logging.Formatter("%(name)s: %(message)s"))
_logging.getLogger().addHandler(_handler)


def _deepimaging_wrap(shell):
    original = shell.showtraceback

    def showtraceback(*args, **kwargs):
        _deepimaging_record(_traceback.format_exc())
        return original(*args, **kwargs)

    shell.showtraceback = showtraceback


_deepimaging_wrap(get_ipython())
del _handler, _deepimaging_wrap

# jupyter_client starts each kernel in its own session, so killing the server's process
# group does not reach it: the harness kills the kernels listed here when it stops.
if _os.environ.get("DEEPIMAGING_BROWSER_KERNEL_PIDS"):
    with open(_os.environ["DEEPIMAGING_BROWSER_KERNEL_PIDS"], "a", encoding="utf-8") as _pids:
        _pids.write(f"{_os.getpid()}\\n")
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


@dataclass
class LabServer:
    """A running JupyterLab: where it is and how to reach it."""

    process: subprocess.Popen
    url: str
    token: str
    root: Path
    log: Path
    kernel_log: Path

    def kernel_errors(self, notebook: str | None = None) -> list[str]:
        """ERROR log records written by kernels (all, or those of one notebook path)."""
        if not self.kernel_log.exists():
            return []
        records = [
            json.loads(line) for line in self.kernel_log.read_text(encoding="utf-8").splitlines() if line
        ]
        return [r["message"] for r in records if notebook is None or r["notebook"].endswith(notebook)]

    def server_log(self, tail: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-tail:] if self.log.exists() else ""


def stop_process_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything in its group.

    SIGTERM to the whole group (the server shuts its kernels down), then SIGKILL to
    whatever is left.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


def kill_kernels(pid_file: Path) -> list[int]:
    """SIGKILL every kernel listed in ``pid_file`` that is still alive (and is still a kernel)."""
    killed = []
    if not pid_file.exists():
        return killed
    for line in pid_file.read_text(encoding="utf-8").split():
        pid = int(line)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"ipykernel" not in handle.read():
                    continue  # the pid was reused by something else
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return killed


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def running_lab(root: Path, state: Path, env: dict | None = None, timeout: float = 90.0):
    """Start JupyterLab on 127.0.0.1 with a fresh port and token; always stop it on exit.

    Parameters
    ----------
    root : the directory the server serves (notebooks are opened relative to it).
    state : a scratch directory for config, settings, workspaces, runtime and logs.
    env : extra environment for the server and its kernels (e.g. DEEPIMAGING_SMOKE=1).
    """
    state.mkdir(parents=True, exist_ok=True)
    for name, data in LAB_SETTINGS.items():
        _write_json(state / "settings" / name, data)
    _write_json(state / "config" / "jupyter_server_config.json", SERVER_CONFIG)
    startup = state / "ipython" / "profile_default" / "startup" / "00-deepimaging-browser-test.py"
    startup.parent.mkdir(parents=True, exist_ok=True)
    startup.write_text(KERNEL_STARTUP, encoding="utf-8")
    (state / "workspaces").mkdir(exist_ok=True)

    port, token = free_port(), secrets.token_hex(16)
    kernel_log = state / "kernel-errors.jsonl"
    log = state / "server.log"
    full_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "IPYTHONDIR": str(state / "ipython"),
        "DEEPIMAGING_BROWSER_KERNEL_LOG": str(kernel_log),
        "DEEPIMAGING_BROWSER_KERNEL_PIDS": str(state / "kernel-pids"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    full_env.pop("JUPYTER_TOKEN", None)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--expose-app-in-browser",
        f"--LabApp.user_settings_dir={state / 'settings'}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # one process group: server + kernels, killed together
        )
    server = LabServer(process, f"http://127.0.0.1:{port}", token, root, log, kernel_log)

    def stop():
        stop_process_group(process)
        kill_kernels(state / "kernel-pids")

    # SIGTERM (a CI timeout, `kill`) would end Python without running finally blocks: turn it
    # into KeyboardInterrupt, which unwinds through them; atexit covers a plain exit.
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    atexit.register(stop)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{server.server_log()}")
            try:
                with urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"JupyterLab did not answer within {timeout:.0f} s:\n{server.server_log()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        stop()
        atexit.unregister(stop)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def copy_into(root: Path, files) -> None:
    """Copy files into the served directory (the tests run copies, never the committed notebooks)."""
    root.mkdir(parents=True, exist_ok=True)
    for source in files:
        shutil.copy2(source, root / Path(source).name)


# --- one notebook in one page ---------------------------------------------------------------

_OPEN_AND_RUN = """
(path) => {
  // Started in the background so that every notebook's page can be opened at once; the
  // outcome lands in window.__deepimagingDone, which NotebookRun.wait polls for.
  window.__deepimagingDone = null;
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  (async () => {
    while (!window.jupyterapp) await sleep(100);
    const app = window.jupyterapp;
    await app.started;
    await app.restored;
    let panel = null;
    for (let i = 0; i < 1200 && !panel; i++) {
      const w = app.shell.currentWidget;
      if (w && w.context && w.context.path === path && w.sessionContext) panel = w;
      else await sleep(100);
    }
    if (!panel) throw new Error('notebook ' + path + ' did not open');
    await panel.context.ready;
    await panel.sessionContext.ready;
    window.__deepimagingPanel = panel;
    const started = performance.now();
    const ok = await app.commands.execute('notebook:run-all-cells');
    window.__deepimagingDone = {ok: Boolean(ok), seconds: (performance.now() - started) / 1000};
  })().catch(err => { window.__deepimagingDone = {ok: false, error: String(err)}; });
  return true;
}
"""

# Where a notebook stands, for a failure message: a dialog, the execution prompts, the kernel.
_WHERE = """
() => {
  const app = window.jupyterapp, panel = window.__deepimagingPanel;
  const current = app && app.shell.currentWidget;
  return {
    app: Boolean(app),
    current: current && current.context ? current.context.path : String(current && current.id),
    kernel: panel ? panel.sessionContext.kernelDisplayStatus : 'no notebook panel yet',
    dialog: [...document.querySelectorAll('.jp-Dialog')].map(d => d.textContent.slice(0, 300)),
    prompts: [...document.querySelectorAll('.jp-InputArea-prompt')].map(p => p.textContent.trim()).join(' '),
  };
}
"""

# Errors the notebook shows in its cells (a raised exception in a cell).
_CELL_ERRORS = """
() => [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.textContent)
  .filter(t => /Traceback|Error\\b/.test(t))
  .map(t => t.slice(0, 2000))
"""

_KERNEL_EXEC = """
async (code) => {
  const kernel = window.__deepimagingPanel.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, silent: false, store_history: false});
  let out = '', err = '';
  future.onIOPub = msg => {
    const t = msg.header.msg_type;
    if (t === 'stream') { if (msg.content.name === 'stdout') out += msg.content.text; else err += msg.content.text; }
    if (t === 'error') err += msg.content.ename + ': ' + msg.content.evalue;
  };
  const reply = await future.done;
  return {out, err, status: reply.content.status};
}
"""

# What an explorer shows: a digest of every image's bytes (not only its src, so an image
# re-sent with the same picture does not count as a change) and the text of every readout.
_EXPLORER_STATE = """
async (root) => {
  const images = [];
  for (const img of root.querySelectorAll('img')) {
    let digest = img.src;
    try {
      const bytes = await (await fetch(img.src)).arrayBuffer();
      const hash = await crypto.subtle.digest('SHA-256', bytes);
      digest = [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join('');
    } catch (e) {}
    images.push(digest);
  }
  const readouts = [...root.querySelectorAll('.widget-html-content, .widget-label, .widget-readout')]
    .map(e => e.textContent.trim());
  return {images, readouts};
}
"""


class NotebookRun:
    """One notebook opened in its own page (and JupyterLab workspace) and run top to bottom."""

    def __init__(self, server: LabServer, context, path: str):
        self.server, self.path = server, path
        self.page = context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console.append(m.text))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.result: dict | None = None
        self.timings: dict[str, float] = {}

    def _mark(self, what: str) -> None:
        self.timings[what] = round(time.monotonic() - self._t0, 2)

    def start(self) -> None:
        """Open the notebook and start 'Run All Cells' without waiting for it."""
        self._t0 = time.monotonic()
        workspace = re.sub(r"\W", "-", self.path)
        url = f"{self.server.url}/lab/workspaces/{workspace}/tree/{self.path}?token={self.server.token}"
        self.page.goto(url, wait_until="domcontentloaded", timeout=120_000)
        self.page.evaluate(_OPEN_AND_RUN, self.path)
        self._mark("page loaded, run requested")

    def wait_for_kernel(self, timeout: float = 90.0, retries: int = 1) -> bool:
        """Wait until the notebook's panel and kernel are ready; reload the page once if they are not.

        Opening the notebooks one kernel at a time (the fixture calls this after each
        start) keeps simultaneous kernel starts from starving each other on a small
        machine, where a page could otherwise wait forever for its session.
        """
        for attempt in range(retries + 1):
            try:
                self.page.wait_for_function(
                    "() => Boolean(window.__deepimagingPanel)", timeout=timeout * 1000
                )
                self._mark(f"kernel ready (attempt {attempt + 1})")
                return True
            except Exception:  # Playwright's TimeoutError
                if attempt < retries:
                    self.start()
        return False

    def wait(self, timeout: float = 300.0) -> dict:
        """Wait until every cell has run (at most ``timeout`` s after the notebook was opened).

        The result says whether all cells ran without error. The limit counts from the
        start, not from the call, so notebooks that hang fail one after the other quickly.
        """
        if self.result is None:
            timeout = max(5.0, self._t0 + timeout - time.monotonic())
            try:
                handle = self.page.wait_for_function(
                    "() => window.__deepimagingDone", timeout=timeout * 1000, polling=250
                )
            except Exception as error:  # Playwright's TimeoutError: say where the notebook stood
                raise ExplorerCheckError(
                    f"{self.path} did not finish running within {timeout:.0f} s: {self.page.evaluate(_WHERE)}"
                ) from error
            self.result = handle.json_value()
            self._mark("test saw all cells ran")
            self.timings["all cells ran (s, in the page)"] = round(self.result.get("seconds", -1), 2)
        return self.result

    def cell_errors(self) -> list[str]:
        return self.page.evaluate(_CELL_ERRORS)

    def kernel_exec(self, code: str) -> str:
        """Run code in the notebook's kernel (after the notebook) and return what it printed."""
        reply = self.page.evaluate(_KERNEL_EXEC, code)
        if reply["status"] != "ok":
            raise RuntimeError(f"kernel code failed: {reply['err']}\n{code}")
        return reply["out"]

    def kernel_errors(self) -> list[str]:
        return self.server.kernel_errors(self.path)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.page.close()


# --- one explorer -------------------------------------------------------------------------


@dataclass
class ExplorerCase:
    """How to check one explorer: where it is, which control to move, what must follow.

    ``move(root, page)`` moves the control and returns a short description of the move;
    ``check(run, root, before, after)`` may assert more than "the image changed" (e.g. that
    a readout shows an independently computed value) and returns problems as strings; it is
    called again until it returns none or time is up, so it must be repeatable.
    """

    notebook: str
    name: str
    move: Callable
    check: Callable | None = None
    must_change: str = "image"  # "image", "readout" or "either"
    timeout: float = 30.0
    id: str = field(default="")

    def __post_init__(self):
        self.id = self.id or self.name


class ExplorerCheckError(AssertionError):
    """An explorer did not render, or did not follow its control."""


def _dismiss_dialogs(page) -> None:
    """Close any modal dialog Lab may show (e.g. a kernel choice) so it cannot hide widgets."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        with contextlib.suppress(Exception):
            page.keyboard.press("Escape")


def check_explorer(run: NotebookRun, case: ExplorerCase, artifacts: Path) -> dict:
    """Render, move, re-render one explorer in a notebook that has finished running.

    Raises :class:`ExplorerCheckError` listing every problem found: the notebook failed,
    "Error displaying widget", the explorer is absent (or only its static fallback shows),
    the output did not change, a readout is wrong, or the kernel logged an exception
    (what an observer that raises produces). Screenshots go to ``artifacts``.
    """
    page = run.page
    result = run.wait()
    problems: list[str] = []
    if not result.get("ok"):
        problems.append(f"'Run All Cells' failed: {result}; cell errors: {run.cell_errors()}")
    _dismiss_dialogs(page)
    root_all = page.locator(f".deepimaging-{case.name}")
    # Widgets render once their models arrive: wait for any explorer, then for this one.
    # (Not long when the notebook failed: the explorer's cell may never have run.)
    with contextlib.suppress(Exception):
        wait_ms = 60_000 if result.get("ok") else 3_000
        page.locator(".deepimaging-explorer").first.wait_for(state="attached", timeout=wait_ms)
    with contextlib.suppress(Exception):
        root_all.first.wait_for(state="attached", timeout=5_000)
    broken = page.get_by_text(re.compile("Error displaying widget"))
    if broken.count():
        problems.append(f"{broken.count()} output(s) say {broken.first.text_content()!r}")
    if root_all.count() == 0:
        fallback = page.locator('.jp-OutputArea-output[data-mime-type="image/png"]').count()
        problems.append(
            f"no element .deepimaging-{case.name} in {run.path}"
            + (
                f" ({fallback} static PNG output(s) shown instead: is the widget manager installed?)"
                if fallback
                else ""
            )
        )
        raise ExplorerCheckError("; ".join(problems) + _context(run))
    for index in range(root_all.count()):
        if not root_all.nth(index).is_visible():
            root_all.nth(index).scroll_into_view_if_needed()
        if not root_all.nth(index).is_visible():
            problems.append(f".deepimaging-{case.name} #{index} is not visible")

    root = root_all.first
    root.scroll_into_view_if_needed()
    artifacts.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(run.path).stem}-{case.id}"
    root.screenshot(path=str(artifacts / f"{stem}-before.png"))
    before = root.evaluate(_EXPLORER_STATE)
    if not before["images"] and case.must_change != "readout":
        problems.append(f"the explorer shows no image (readouts: {before['readouts']})")

    run._mark(f"{case.id}: rendered")
    errors_before = len(run.kernel_errors())
    moved = case.move(root, page)

    # Wait for the output to follow the control (the kernel recomputes and sends new bytes).
    def changed(state):
        image = state["images"] != before["images"]
        readout = state["readouts"] != before["readouts"]
        return {"image": image, "readout": readout, "either": image or readout}[case.must_change]

    # Poll until the output has changed (an exception logged by the kernel ends the wait), then
    # until any extra check holds: a readout may arrive after the image, and three key
    # presses send three updates.
    deadline = time.monotonic() + case.timeout

    def failed_or_late():
        return time.monotonic() > deadline or len(run.kernel_errors()) > errors_before

    after = root.evaluate(_EXPLORER_STATE)
    while not changed(after) and not failed_or_late():
        page.wait_for_timeout(250)
        after = root.evaluate(_EXPLORER_STATE)
    late = []
    if case.check is not None:
        while True:
            late = case.check(run, root, before, after) or []
            if not late or failed_or_late():
                break
            page.wait_for_timeout(500)
            after = root.evaluate(_EXPLORER_STATE)
    run._mark(f"{case.id}: output followed the control")
    root.screenshot(path=str(artifacts / f"{stem}-after.png"))
    if not changed(after):
        problems.append(
            f"after {moved}, the explorer's {case.must_change} did not change within {case.timeout:.0f} s "
            f"(readouts before {before['readouts']}, after {after['readouts']})"
        )
    problems.extend(late)
    kernel_errors = run.kernel_errors()[errors_before:]
    if kernel_errors:
        problems.append("the kernel logged an exception after the move:\n" + "\n".join(kernel_errors)[-3000:])
    if problems:
        raise ExplorerCheckError(f"{case.id} in {run.path}: " + "\n- ".join(["", *problems]) + _context(run))
    return {"before": before, "after": after, "moved": moved, "seconds": result.get("seconds")}


def _context(run: NotebookRun) -> str:
    console = "\n".join(run.console[-10:])
    return f"\n[browser console errors]\n{console}" if console else ""


# --- moving controls ----------------------------------------------------------------------


def _control(root, kind: str, description: str | None):
    """The control of a kind ('slider', 'dropdown', ...) with a description, inside an explorer."""
    selector = {
        "slider": ".widget-slider",
        "dropdown": ".widget-dropdown",
        "toggle": ".widget-toggle-buttons",
        "radio": ".widget-radio",
    }[kind]
    controls = root.locator(selector)
    if description is not None:
        controls = controls.filter(has=root.page.locator(".widget-label", has_text=description))
    if controls.count() == 0:
        labels = root.locator(".widget-label").all_text_contents()
        raise ExplorerCheckError(f"no {kind} described {description!r} (labels: {labels})")
    return controls.first


def press_slider(description: str | None = None, presses: int = 3, jump: bool = False):
    """Move a slider with the keyboard: focus its handle, press keys (as a student would).

    Arrow keys move by one step each (away from the end the slider is at); ``jump=True``
    presses Home or End instead, for sliders whose step is too fine for a few presses to
    change what is shown.
    """

    def move(root, page):
        slider = _control(root, "slider", description)
        handle = slider.locator(".noUi-handle").first
        handle.focus()
        readout = slider.locator(".widget-readout")
        shown = readout.first.text_content().strip() if readout.count() else None
        value, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
        at_top = value is not None and top is not None and float(value) >= float(top)
        if jump:
            key, count = ("Home" if at_top else "End"), 1
        else:
            key, count = ("ArrowLeft" if at_top else "ArrowRight"), presses
        for _ in range(count):
            page.keyboard.press(key)
        return f"pressing {key} x{count} on slider {description or ''!r} (was {shown if shown is not None else value})"

    return move


def drag_slider(description: str | None = None, fraction: float = 0.8):
    """Move a slider with the mouse: drag its handle to ``fraction`` of the track."""

    def move(root, page):
        slider = _control(root, "slider", description)
        track = slider.locator(".noUi-target").first.bounding_box()
        handle = slider.locator(".noUi-handle").first.bounding_box()
        page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
        page.mouse.down()
        page.mouse.move(track["x"] + fraction * track["width"], track["y"] + track["height"] / 2, steps=8)
        page.mouse.up()
        return f"dragging slider {description or ''!r} to {fraction:.0%} of its track"

    return move


def type_slider(value: float, description: str | None = None):
    """Set a slider to an exact value by typing into its readout (for a readout checked by value)."""

    def move(root, page):
        slider = _control(root, "slider", description)
        readout = slider.locator(".widget-readout").first
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(str(value))
        page.keyboard.press("Enter")
        return f"typing {value} into slider {description or ''!r}"

    return move


def select_option(description: str | None = None, index: int | None = None):
    """Pick another entry in a dropdown (the next one, or ``index``)."""

    def move(root, page):
        select = _control(root, "dropdown", description).locator("select").first
        options = select.locator("option").all_text_contents()
        current = select.evaluate("s => s.selectedIndex")
        target = index if index is not None else (current + 1) % len(options)
        select.select_option(index=target)
        return f"selecting {options[target]!r} in dropdown {description or ''!r} (was {options[current]!r})"

    return move


def readout_text(root, contains: str) -> str:
    """The text of the explorer's HTML readout that contains ``contains`` ('' when none does)."""
    for text in root.locator(".widget-html-content").all_text_contents():
        if contains in text:
            return " ".join(text.split())
    return ""


def slider_value(root, description: str | None = None) -> float:
    """The value a slider shows in the page (its readout), as a float."""
    text = _control(root, "slider", description).locator(".widget-readout").first.text_content()
    return float(text.strip())


def click_toggle(description: str | None = None, index: int | None = None):
    """Click another button of a ToggleButtons control (the next one, or ``index``)."""

    def move(root, page):
        buttons = _control(root, "toggle", description).locator("button")
        labels = buttons.all_text_contents()
        active = [
            i for i in range(buttons.count()) if "mod-active" in (buttons.nth(i).get_attribute("class") or "")
        ]
        current = active[0] if active else 0
        target = index if index is not None else (current + 1) % len(labels)
        buttons.nth(target).click()
        return (
            f"clicking {labels[target]!r} in toggle buttons {description or ''!r} (was {labels[current]!r})"
        )

    return move


def first_control():
    """Move whatever control the explorer shows first: a slider, else a dropdown, else toggle buttons."""

    def move(root, page):
        if root.locator(".widget-slider").count():
            return press_slider()(root, page)
        if root.locator(".widget-dropdown").count():
            return select_option()(root, page)
        if root.locator(".widget-toggle-buttons").count():
            return click_toggle()(root, page)
        raise ExplorerCheckError("the explorer has no slider, dropdown or toggle buttons to move")

    return move


_MODEL_ID = """
(root) => {
  const panel = window.__deepimagingPanel;
  for (const cell of panel.content.widgets) {
    const area = cell.outputArea;
    if (!area) continue;
    for (let i = 0; i < area.model.length; i++) {
      const view = area.widgets[i];
      if (view && view.node.contains(root)) {
        const data = area.model.get(i).data['application/vnd.jupyter.widget-view+json'];
        if (data) return data.model_id;
      }
    }
  }
  return null;
}
"""


def bind_explorer(run: NotebookRun, root) -> None:
    """Bind the kernel variable ``_explorer`` to the explorer object shown by ``root`` in the page.

    Explorers are often displayed without a name; the page knows the model id of the
    root widget it shows, and the kernel knows which explorer owns that widget.
    """
    model_id = root.evaluate(_MODEL_ID)
    if model_id is None:
        raise ExplorerCheckError("could not find the widget model id of the explorer in the page")
    run.kernel_exec(
        "import gc as _gc\n"
        "import ipywidgets as _ipw\n"
        "from deepimaging.widgets import Explorer as _Explorer\n"
        f"_root = _ipw.Widget.widgets[{model_id!r}]\n"
        "_explorer = next(o for o in _gc.get_objects() if isinstance(o, _Explorer) and o.widget is _root)\n"
    )
