"""A student's first hour, as the README writes it (issue 26, items 1 and 5).

``bash run.sh demo`` sets up a fresh virtual environment; then ``. .venv/bin/activate &&
jupyter lab notebooks/`` starts a lab that lists the course's notebooks; a second ``bash run.sh
demo`` works without the network and installs nothing.

To keep this within CI's time, the fresh environment borrows the heavy numerical packages
(torch, scikit-learn, matplotlib, seaborn and what they import) from the tests' own environment
through a ``.pth`` file, so ``run.sh`` finds torch installed, as it would on a second call;
everything else (deepimaging, JupyterLab, ipykernel, the widgets and their front end, and
their dependencies) ``run.sh`` installs into it for real.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BORROWED = ("torch", "scikit-learn", "matplotlib", "seaborn")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="run.sh is bash")]


def _closure(name: str) -> set[str]:
    """Distribution names that ``name`` needs on this Python, itself included."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        try:
            dist = metadata.distribution(current)
        except metadata.PackageNotFoundError:
            continue
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            if ";" in requirement and not _marker_holds(requirement.split(";", 1)[1]):
                continue
            todo.append(re.split(r"[ <>=!~;\[(]", requirement, maxsplit=1)[0])
    return seen


def _marker_holds(marker: str) -> bool:
    try:
        from packaging.markers import Marker
    except ImportError:
        return True
    return Marker(marker).evaluate()


def _borrow(venv: Path, into: Path) -> None:
    """Make ``BORROWED`` importable in ``venv`` without installing them: links to them and what they need."""
    into.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in set().union(*map(_closure, BORROWED)):
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if (site / top).exists() and not (into / top).exists():
                (into / top).symlink_to(site / top)
    (site_of(venv) / "borrowed_torch.pth").write_text(str(into) + "\n")


def site_of(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def _offline_env(env: dict) -> dict:
    """pip without an index: a rerun that reaches for the network fails."""
    env = dict(env, PIP_NO_INDEX="1", PIP_INDEX_URL="http://127.0.0.1:9/", PIP_EXTRA_INDEX_URL="")
    env.update(PIP_FIND_LINKS="", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    return env


def _no_network_prefix() -> list[str]:
    """``unshare -n`` where this machine allows it (a namespace without a network), else nothing."""
    if shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "-n"]
    return []


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A fresh venv set up by ``bash run.sh demo`` (the network allowed, as the first time)."""
    tmp = tmp_path_factory.mktemp("first_hour")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _borrow(venv, tmp / "borrowed")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "DEEPIMAGING_TORCH")}
    env.update(DEEPIMAGING_VENV=str(venv), DEEPIMAGING_SMOKE="1", MPLBACKEND="Agg")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    done = subprocess.run(
        ["bash", str(ROOT / "run.sh"), "demo", "--out", str(tmp / "demo1"), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp, venv, env, done


def test_first_run_installs_and_runs_the_demo(first_run):
    tmp, venv, _, done = first_run
    assert "Installing deepimaging with its 'lab' extra" in done.stdout
    assert (tmp / "demo1" / "index.html").is_file()
    assert (venv / ".deepimaging-lab").read_text().strip()
    assert (venv / "bin" / "jupyter").is_file(), "the lab extra puts jupyter into the venv"


def test_second_run_works_offline_and_installs_nothing(first_run):
    tmp, venv, env, _ = first_run
    started = time.monotonic()
    done = subprocess.run(
        [
            *_no_network_prefix(),
            "bash",
            str(ROOT / "run.sh"),
            "demo",
            "--out",
            str(tmp / "demo2"),
            "--no-progress",
        ],
        env=_offline_env(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Installing" not in done.stdout and "Creating" not in done.stdout, done.stdout
    assert (tmp / "demo2" / "index.html").is_file()
    assert time.monotonic() - started < 300


def test_deepimaging_torch_is_reported_when_ignored(first_run):
    tmp, _, env, _ = first_run
    env = _offline_env(dict(env, DEEPIMAGING_TORCH="torch==1.0.0"))
    done = subprocess.run(
        ["bash", str(ROOT / "run.sh"), "demo", "--help"],  # run.sh's own steps, then a quick exit
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'DEEPIMAGING_TORCH="torch==1.0.0" is ignored' in done.stderr
    assert "already has torch" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_jupyter_lab_starts_from_the_venv_and_lists_the_notebooks(first_run):
    """The README's `. .venv/bin/activate` then `jupyter lab notebooks/`, with a port and token fixed."""
    tmp, venv, env, _ = first_run
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        env, JUPYTER_CONFIG_DIR=str(tmp / "jupyter_config"), JUPYTER_RUNTIME_DIR=str(tmp / "jupyter_rt")
    )
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    command = (
        f". {venv}/bin/activate && exec jupyter lab notebooks/ --no-browser --ip=127.0.0.1 --port={port}"
        f" --port-retries=0 --IdentityProvider.token={token} --allow-root"
    )
    server = subprocess.Popen(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                contents = json.loads(_get(f"{base}/api/contents?token={token}"))
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "jupyter lab exited"
                assert time.monotonic() < deadline, "jupyter lab did not answer within 120 s"
                time.sleep(1)
        listed = {item["name"] for item in contents["content"]}
        expected = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert expected and expected <= listed, (expected, listed)
        kernels = json.loads(_get(f"{base}/api/kernelspecs?token={token}"))
        assert "python3" in kernels["kernelspecs"]
        page = _get(f"{base}/lab?token={token}")
        assert "@jupyter-widgets/jupyterlab-manager" in page, "the widgets' front end is not installed"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output, _ = server.communicate()
    assert str(venv) in output or "Jupyter Server" in output
