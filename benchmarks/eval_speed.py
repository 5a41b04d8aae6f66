"""`eval --driver` against `transfer` of the same driver, in wall-clock seconds.

    python benchmarks/eval_speed.py [CHECKPOINT] [DRIVER] [--repeats 3] [--json FILE]

Defaults: the demo's checkpoint (examples/out/taiji_target.ckpt: run examples/demo.sh first) and
examples/taiji_source.mp4. Each repeat starts from an empty motion cache (REENACT_CACHE) and runs
`transfer` (it tracks the driver), `eval --driver` with the motion file transfer saved (the usual
order), then `eval --driver` from an empty cache again (it tracks the driver too). Prints each
run and the medians, and eval's medians over transfer's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = ("transfer", "eval, motion file reused", "eval, driver tracked")


def timed(args: list[str], cache: Path) -> float:
    """Seconds one reenact command takes in its own process, from ``cache``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from cli import app; app(sys.argv[1:])", *args], cwd=REPO,
                   env={**os.environ, "REENACT_CACHE": str(cache)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def one_repeat(checkpoint: str, driver: str, work: Path) -> dict[str, float]:
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    eval_args = ["eval", checkpoint, "--driver", driver, "--report", str(work / "report")]
    seconds = {RUNS[0]: timed(["transfer", driver, checkpoint, "--out", str(work / "out.mp4")], cache),
               RUNS[1]: timed(eval_args, cache)}
    shutil.rmtree(cache)
    seconds[RUNS[2]] = timed(eval_args, cache)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=str(REPO / "examples/out/taiji_target.ckpt"))
    parser.add_argument("driver", nargs="?", default=str(REPO / "examples/taiji_source.mp4"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        repeats = []
        for index in range(args.repeats):
            repeats.append(one_repeat(args.checkpoint, args.driver, Path(folder)))
            print(f"repeat {index + 1}: " + ", ".join(f"{name} {value:.1f} s" for name, value in repeats[-1].items()), flush=True)
    medians = {name: statistics.median(repeat[name] for repeat in repeats) for name in RUNS}
    ratios = {f"{name} / transfer": medians[name] / medians[RUNS[0]] for name in RUNS[1:]}
    print("medians: " + ", ".join(f"{name} {value:.1f} s" for name, value in medians.items()))
    print("ratios: " + ", ".join(f"{name} {value:.2f}" for name, value in ratios.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "driver": args.driver, "repeats": repeats,
                                               "medians": medians, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
