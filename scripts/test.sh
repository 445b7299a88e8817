#!/usr/bin/env bash
# The test command of the README (and of .ci/run): set up a virtual environment from the project's own
# files, then run the whole suite. Needs only Python 3.11+ and pip access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=${MULTICAM_VENV:-.venv}
[ -f "$VENV/bin/activate" ] && [ -x "$VENV/bin/python" ] || "$PY" -m venv --clear "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
# torch first and pinned: the CPU build (a range would let pip pick a multi-GB CUDA build).
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[render,cluster,train,dev]"
# Headless Chromium for tests/test_preview.py's page screenshot (the test skips without it): best effort, quiet,
# only as root with apt-get; never fails the run.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends chromium; } \
        >/dev/null 2>&1 || true
fi
ruff check .
mypy trajectory exporters multicam multicam_app scene_catalog render_jobs recam
python -m pytest -q -p no:cacheprovider "$@"
