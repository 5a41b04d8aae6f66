#!/usr/bin/env bash
# Create a virtual environment and install reenact into it with its test tools.
# One install path for the README, CI and the Dockerfile.
#   REENACT_VENV  where the environment goes (default: .venv in the repository)
#   PYTHON        the interpreter to build it from (default: the newest python3.9-3.12 found)
#   TORCH_SPEC    the torch requirement installed first (default: torch==2.13.0; a CPU build
#                 where one is offered locally). Set it to "" to keep a torch already present.
#   REENACT_SYSTEM_SITE_PACKAGES=1  let the environment see the interpreter's packages (the
#                 Docker image uses this to keep its base image's CUDA build of torch).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${REENACT_VENV:-.venv}
torch_spec=${TORCH_SPEC-torch==2.13.0}

supported() { "$1" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; }
if [ -z "${PYTHON:-}" ]; then
  for candidate in python3.12 python3.11 python3.10 python3.9 python3; do
    if command -v "$candidate" >/dev/null && supported "$candidate"; then PYTHON=$candidate; break; fi
  done
fi
if [ -z "${PYTHON:-}" ] || ! supported "$PYTHON"; then
  echo "install.sh: needs Python 3.9-3.12 (mediapipe 0.10.21 has no wheels for newer ones)" >&2
  exit 1
fi

venv_options=()
if [ "${REENACT_SYSTEM_SITE_PACKAGES:-0}" = 1 ]; then venv_options+=(--system-site-packages); fi
[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "${venv_options[@]}" "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
if [ -n "$torch_spec" ]; then "$venv/bin/python" -m pip install -q "$torch_spec"; fi
"$venv/bin/python" -m pip install -q -e ".[dev]"
echo "installed reenact into $venv ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
