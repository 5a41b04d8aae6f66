#!/usr/bin/env bash
# Self-reenactment on the shipped tai-chi clip: train on its first 12.5 s, transfer the motion of the rest.
# Writes everything under examples/out/. CPU-sized: 3 min 29 s on an idle 2-core CPU (2026-12-05).
set -euo pipefail
cd "$(dirname "$0")"
reenact=${REENACT:-../.venv/bin/reenact}
steps=${DEMO_STEPS:-300}
mkdir -p out
"$reenact" track taiji_target.mp4 --mode body --resolution 128 --out out/taiji_target
"$reenact" train out/taiji_target --preset tiny --steps "$steps" --out out/taiji_target.ckpt
"$reenact" transfer taiji_source.mp4 out/taiji_target.ckpt --side-by-side --out out/taiji_source_as_target.mp4
echo "demo done: look at out/taiji_target/preview.mp4, out/taiji_target.train/samples/ and out/taiji_source_as_target.mp4"
