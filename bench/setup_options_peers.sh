#!/usr/bin/env bash
# Build the peers of `bench/bench_options.py` in their own virtual environments
# under bench/.venvs/ (git-ignored), so their pins never touch shardex's env.
#
#   options-peers : pyvolr, vollib, QuantLib, scipy (current pins)
#   options-og    : opengreeks (needs CPython >= 3.12)
#   options-pvv   : py_vollib_vectorized 0.1.1, which only imports with the old
#                   py_vollib / py_lets_be_rational it was written against.
#
# Usage: bash bench/setup_options_peers.sh   (idempotent; re-run to repair)
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p .venvs
PY=${PYTHON:-python3}
export PY

build() {  # build NAME PKG...: one venv, installs best-effort, reports what failed
    local name=$1; shift
    local PY=${PY:-python3}
    local venv=.venvs/$name
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1
    for pkg in "$@"; do
        if "$venv/bin/python" -m pip install -q "$pkg" >/dev/null 2>&1; then
            echo "[$name] installed $pkg"
        else
            echo "[$name] FAILED to install $pkg (the bench reports it as missing)"
        fi
    done
}

build options-peers "numpy" "scipy" "QuantLib" "pyvolr" "vollib"
# opengreeks ships abi3 wheels that need CPython >= 3.12 (PyErr_SetRaisedException)
PY312=${PYTHON312:-}
if [ -z "$PY312" ]; then  # a pyenv shim may exist without the version being active: try it
    for c in python3.12 python3.13 "$HOME"/.pyenv/versions/3.1[23]*/bin/python3; do
        if "$c" -c "import sys" >/dev/null 2>&1; then PY312=$c; break; fi
    done
fi
if [ -n "$PY312" ]; then
    PY=$PY312 build options-og "numpy" "opengreeks"
else
    echo "[options-og] no python3.12: opengreeks is skipped"
fi
build options-pvv "numpy<2.1" "numba" "scipy" "pandas" \
    "py_lets_be_rational==1.0.1" "py_vollib==1.0.1" "py_vollib_vectorized==0.1.1"
