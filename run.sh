#!/usr/bin/env bash
# One entry point for the README's Quickstart:
#   bash run.sh demo   set up .venv with deepimaging and JupyterLab, then run `deepimaging demo`
#                      (further arguments go to it, e.g. `bash run.sh demo --smoke --out demo-smoke`)
#   bash run.sh test   set up .venv with the dev tools too, then run every test, notebooks included:
#                      the notebooks, then the tests on all cores (pytest-xdist). Further arguments
#                      go to one plain pytest run over both, e.g. `bash run.sh test -x -q -k ssim`
#   bash run.sh docs   set up .venv with the docs tools, then build the course site into
#                      docs/_build/html (DEEPIMAGING_SMOKE=1: notebooks in quick mode)
#
# Setting up happens once. .venv/.deepimaging-<extra> records the hash of the pyproject.toml
# that was installed; later calls install nothing, need no network and do not touch pip, until
# pyproject.toml changes. The package is installed editable: edits to deepimaging/ need nothing.
#
# torch is installed only when .venv has none. DEEPIMAGING_TORCH, if set, is what pip gets for it
# (a requirement, optionally followed by pip options), for example
#   DEEPIMAGING_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" bash run.sh demo
# Without it, a Linux machine without an NVIDIA GPU gets the CPU build from that index (about
# 200 MB instead of several GB), and other machines get PyPI's torch.
set -euo pipefail
cd "$(dirname "$0")"
task="${1:-}"
case "$task" in
  demo) extra=lab ;;
  test) extra=dev ;;
  docs) extra=docs ;;
  *)
    echo "usage: bash run.sh demo [deepimaging demo options] | bash run.sh test [pytest options] | bash run.sh docs" >&2
    exit 2
    ;;
esac

VENV="${DEEPIMAGING_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating the virtual environment $VENV (first time only)."
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

# ---- torch: installed once; an installed torch is never replaced (reruns must work offline)
torch_args=()
if [ -n "${DEEPIMAGING_TORCH:-}" ]; then
  read -r -a torch_args <<<"$DEEPIMAGING_TORCH"
fi
if python -c "import torch" >/dev/null 2>&1; then
  if [ "${#torch_args[@]}" -gt 0 ] && ! python - "${torch_args[0]}" <<'PY'; then
import sys
from importlib.metadata import version

try:
    from packaging.requirements import Requirement
except ImportError:  # a venv without packaging yet: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement
wanted, installed = Requirement(sys.argv[1]), version("torch")
sys.exit(0 if wanted.specifier.contains(installed, prereleases=True) else 1)
PY
    echo "run.sh: DEEPIMAGING_TORCH=\"$DEEPIMAGING_TORCH\" is ignored: $VENV already has torch" \
      "$(python -c 'import torch; print(torch.__version__)'), and run.sh never replaces an installed" \
      "torch (so that reruns work offline). To switch, delete $VENV, or run" \
      "$VENV/bin/pip install --force-reinstall $DEEPIMAGING_TORCH" >&2
  fi
elif [ "${#torch_args[@]}" -gt 0 ]; then
  echo "Installing torch: pip install $DEEPIMAGING_TORCH"
  python -m pip install -q "${torch_args[@]}"
elif [ "$(uname -s)" = "Linux" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "No NVIDIA GPU found: installing the CPU build of torch (about 200 MB instead of several GB)."
  if ! python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu; then
    # download.pytorch.org unreachable: take pip's own torch only if it is a CPU build, i.e. one
    # that does not pull NVIDIA's CUDA packages (a local wheel, a mirror of the CPU index).
    if python -m pip install -q --dry-run --ignore-installed --report - torch 2>/dev/null \
      | python -c 'import json, sys; names = [i["metadata"]["name"] for i in json.load(sys.stdin)["install"]]; sys.exit(any(n.lower().startswith("nvidia") for n in names))'; then
      echo "download.pytorch.org could not be reached; pip's own torch is a CPU build: installing it."
      python -m pip install -q torch
    else
      echo "run.sh: the CPU build of torch could not be installed from download.pytorch.org, and" \
        "pip's own torch is a CUDA build of several GB. Set DEEPIMAGING_TORCH to a torch your pip" \
        "can reach (see the top of run.sh), or install torch into $VENV yourself, then rerun." >&2
      exit 1
    fi
  fi
else
  python -m pip install -q "torch>=2.1"
fi

# ---- deepimaging and its extra: only when pyproject.toml changed since the last install
want="$(python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
installed_for() { [ -f "$VENV/.deepimaging-$1" ] && [ "$(cat "$VENV/.deepimaging-$1")" = "$want" ]; }
if installed_for "$extra" || { [ "$extra" != dev ] && installed_for dev; }; then
  : # set up already (the dev extra includes lab and docs)
else
  echo "Installing deepimaging with its '$extra' extra into $VENV (again whenever pyproject.toml changes)."
  # Editable installs need pip >= 21.3; upgrade only an older pip.
  if ! python -c 'import sys, pip; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (21, 3))'; then
    python -m pip install -q --upgrade pip
  fi
  if ! python -m pip install -q -e ".[$extra]"; then
    echo "run.sh: installing deepimaging failed (no network? it is needed the first time and" \
      "after pyproject.toml changes)." >&2
    exit 1
  fi
  if [ "$extra" != lab ]; then
    # A Jupyter kernel named python3 inside .venv (not user-wide); JUPYTER_PATH below makes the
    # tests use it even where ~/.local/share/jupyter holds a python3 kernel of another Python.
    python -m ipykernel install --sys-prefix --name python3 >/dev/null
  fi
  echo "$want" >"$VENV/.deepimaging-$extra"
fi

if [ "$task" = demo ]; then
  deepimaging demo "${@:2}"
  echo "Open the course: . $VENV/bin/activate && jupyter lab notebooks/"
  exit 0
fi

export JUPYTER_PATH="$VIRTUAL_ENV/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
if [ "$task" = docs ]; then
  python -m sphinx -W --keep-going -b html docs docs/_build/html "${@:2}"
  echo "The site: docs/_build/html/index.html"
  exit 0
fi

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests of the widgets."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
    >/dev/null 2>&1 || echo "chromium could not be installed: the browser tests will be skipped."
fi
export DEEPIMAGING_SMOKE=1 MPLBACKEND=Agg
ruff check .
ruff format --check .
if [ $# -gt 1 ]; then
  # A selection (`bash run.sh test -k ssim`): one pytest run over everything, as given.
  python -m pytest notebooks tests --nbval-lax -p no:cacheprovider "${@:2}"
else
  # The notebooks first, each in its own kernel, cell by cell; what they show fills the course
  # site's notebook cache (conftest.py), so the site built by the browser test runs none again.
  python -m pytest notebooks --nbval-lax -p no:cacheprovider --durations=5
  # Then the tests, one worker per core, each test file on one worker: most of the slow tests wait
  # on subprocesses (a fresh venv, the CLI, otter's kernels, JupyterLab, Chromium), so a single
  # pytest process would leave the other cores idle.
  # The slowest files go first (tests/conftest.py), so no core waits at the end on one long file.
  python -m pytest tests -n auto --dist loadfile --no-loadscope-reorder -p no:cacheprovider --durations=25
fi
