#!/usr/bin/env bash
# One entry point for the README's Quickstart:
#   bash run.sh demo   set up .venv (first time only) and run `deepimaging demo`
#   bash run.sh test   set up .venv with the dev tools and run every test, notebooks included
#   bash run.sh docs   build the course site into docs/_build/html (DEEPIMAGING_SMOKE=1: quick)
# Set DEEPIMAGING_TORCH to a pip requirement (e.g. "torch==2.13.0") to choose the torch build;
# by default a Linux machine without an NVIDIA GPU gets the small CPU build.
set -euo pipefail
cd "$(dirname "$0")"
task="${1:-}"
case "$task" in demo|test|docs) ;; *) echo "usage: bash run.sh demo|test|docs" >&2; exit 2 ;; esac

VENV="${DEEPIMAGING_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip >/dev/null

if ! python -c "import torch" >/dev/null 2>&1; then
  if [ -n "${DEEPIMAGING_TORCH:-}" ]; then
    python -m pip install -q "$DEEPIMAGING_TORCH"
  elif [ "$(uname -s)" = "Linux" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "No NVIDIA GPU found: installing the CPU build of torch (about 200 MB instead of several GB)."
    python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu \
      || python -m pip install -q "torch>=2.1"
  else
    python -m pip install -q "torch>=2.1"
  fi
fi

if [ "$task" = demo ]; then
  python -m pip install -q -e .
  deepimaging demo
  exit 0
fi

if [ "$task" = docs ]; then
  python -m pip install -q -e ".[docs]"
  python -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
  python -m sphinx -W --keep-going -b html docs docs/_build/html "${@:2}"
  echo "The site: docs/_build/html/index.html"
  exit 0
fi

python -m pip install -q -e ".[dev]"
python -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests of the widgets."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
    >/dev/null 2>&1 || echo "chromium could not be installed: the browser tests will be skipped."
fi
export DEEPIMAGING_SMOKE=1 MPLBACKEND=Agg
ruff check .
ruff format --check .
python -m pytest tests notebooks --nbval-lax -p no:cacheprovider "${@:2}"
