"""The fidelity benchmark: does the model beat nearest-neighbour retrieval on what users see?

    python benchmarks/fidelity.py [--train-minutes 10] [--preset tiny] [--videos ../shared/videos]
                                  [--workdir /tmp/reenact_fidelity] [--only NAME]... [--fresh] [--train-config FILE]

For each target below (two bodies, two faces, chosen for varied motion), with a driver that is
another shared clip of the same mode: `reenact track` the target at the preset's resolution,
`reenact train --minutes` it for --train-minutes of wall-clock time (the learning-rate schedule
runs its whole course in that time), then `reenact eval --driver`: self-reenactment on all held-out frames and on the novel-pose
subset, and cross-reenactment by the driver, for the model, the model without its previous-frame
input, and nearest-neighbour retrieval.

Writes benchmarks/fidelity.json (every figure, the machine, the date), benchmarks/fidelity.md (the
tables, for the README) and docs/fidelity/NAME.png (rows of driver | proxy | model | retrieval at
a quarter, half and three quarters of the driver). A stage whose output is in --workdir is not run
again (--fresh runs everything), so an interrupted run resumes. With the defaults the whole run
takes about 50 minutes on a 2-core CPU; leave the machine otherwise idle, since training gets a
fixed time, not a fixed number of steps. A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from reenact.files import strict_json  # noqa: E402

SYSTEMS = ("model", "model_unstabilised", "model_no_temporal", "nearest_neighbour")


@dataclass(frozen=True)
class Target:
    name: str
    mode: str
    clip: str        # under --videos
    driver: str      # under --videos: another person, the same mode
    motion: str      # what the target does, and what the driver asks of it


TARGETS = (
    Target("taiji", "body", "body/hybrik_taiji.mp4", "body/animatex_dance_3.mp4",
           "a slow tai-chi form, driven by a fast dance"),
    Target("fashion", "body", "body/musepose_ubcfashion_91-3003CN5S.mp4", "body/hybrik_taiji.mp4",
           "a model turning on the spot, driven by tai-chi arm movements"),
    Target("d6", "face", "face/liveportrait_d6.mp4", "face/liveportrait_d10.mp4",
           "exaggerated expressions, driven by talking with expressive brows"),
    Target("d3", "face", "face/liveportrait_d3.mp4", "face/tpsmm_driving.mp4",
           "frowns and head turns, driven by talking with head tilts"),
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    missing = [str(Path(args.videos) / p) for t in targets for p in (t.clip, t.driver) if not (Path(args.videos) / p).is_file()]
    if missing:
        print(f"fidelity: {missing[0]} is not there (pass --videos DIR)", file=sys.stderr)
        return 1
    results = load_json(Path(args.out)) or {"targets": {}}
    results.update(machine=machine(), preset=args.preset, train_minutes=args.train_minutes)
    for target in targets:
        print(f"== {target.name}: {target.motion}", flush=True)
        earlier = results["targets"].get(target.name, {})
        # A stage skipped on resume keeps the timings and budget the earlier run recorded for it.
        carried = {k: earlier[k] for k in ("track_s", "train_s", "train_it_per_s", "train_minutes") if k in earlier}
        results["targets"][target.name] = {**carried, **run_target(target, args, workdir)}
        results["date"] = datetime.date.today().isoformat()
        write_json(Path(args.out), results)
    Path(args.markdown).write_text(markdown(results))
    print(markdown(results))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-minutes", type=float, default=10.0, help="wall-clock training time per target")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--videos", default=str(REPO.parent / "shared" / "videos"))
    parser.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "reenact_fidelity"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "fidelity.json"))
    parser.add_argument("--markdown", default=str(REPO / "benchmarks" / "fidelity.md"))
    parser.add_argument("--samples", default=str(REPO / "docs" / "fidelity"))
    parser.add_argument("--only", action="append", choices=[t.name for t in TARGETS], help="only this target (repeatable)")
    parser.add_argument("--fresh", action="store_true", help="run every stage, even those whose output is there")
    parser.add_argument("--train-config", help="a TOML file of `reenact train` settings, for an ablation "
                                               "(e.g. generator = \"global\"); use its own --workdir")
    return parser.parse_args(argv)


def run_target(target: Target, args: argparse.Namespace, workdir: Path) -> dict:
    """Track, train for the budget, evaluate with the driver, and draw the sample frames."""
    from reenact.presets import get_preset

    clip, driver = Path(args.videos) / target.clip, Path(args.videos) / target.driver
    subject, checkpoint, metrics = workdir / target.name, workdir / f"{target.name}.ckpt", workdir / f"{target.name}.eval.json"
    resolution = get_preset(args.preset).resolution
    timings = {}
    if args.fresh or not (subject / "subject.json").is_file():
        timings["track_s"] = reenact("track", clip, "--mode", target.mode, "--resolution", resolution, "--out", subject)[1]
    trained = args.fresh or not checkpoint.is_file()
    if trained:
        settings = ("--config", args.train_config) if args.train_config else ()
        _, timings["train_s"] = reenact("train", subject, "--preset", args.preset, "--minutes", args.train_minutes,
                                        "--out", checkpoint, *settings)
        timings["train_it_per_s"] = float(json.loads((checkpoint.with_suffix(".train") / "summary.json").read_text())["it_per_s"])
        timings["train_minutes"] = args.train_minutes
    if trained or not metrics.is_file():
        timings["eval_s"] = reenact("eval", checkpoint, "--driver", driver, "--json", metrics,
                                    "--report", workdir / f"{target.name}.eval")[1]
    figures = json.loads(metrics.read_text())
    sample = Path(args.samples) / f"{target.name}.png"
    write_samples(driver, workdir / f"{target.name}.eval" / "cross_side_by_side.mp4", sample)
    return {"mode": target.mode, "clip": target.clip, "driver": target.driver, "motion": target.motion,
            "date": datetime.date.today().isoformat(), "train_config": Path(args.train_config).read_text() if args.train_config else "",
            "steps": figures["checkpoint_step"], "sample": str(sample.relative_to(REPO)) if sample.is_relative_to(REPO) else str(sample),
            **timings, "eval": figures}


def reenact(*args) -> tuple[str, float]:
    """Run `reenact ARGS`, echo its output, and return it with the seconds it took; stop on failure."""
    command = [sys.executable, str(REPO / "cli.py"), *map(str, args)]
    print("   $ reenact " + " ".join(map(str, args)), flush=True)
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    seconds = time.perf_counter() - start
    if finished.returncode != 0:
        sys.exit(f"fidelity: `reenact {args[0]}` failed:\n{finished.stdout[-2000:]}{finished.stderr[-2000:]}")
    print(f"     done in {seconds:.0f} s", flush=True)
    return finished.stdout + finished.stderr, seconds


def write_samples(driver: Path, cross_video: Path, out: Path) -> None:
    """Rows of driver | proxy | model | retrieval at a quarter, half and three quarters of the driver."""
    composite = read_frames(cross_video)           # proxy | model | retrieval, side by side
    size = composite.shape[1]
    picks = [len(composite) * k // 4 for k in (1, 2, 3)]
    driver_frames = read_frames(driver, picks)
    rows = [np.concatenate([square(driver_frames[i], size), composite[t]], axis=1) for i, t in enumerate(picks)]
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def read_frames(path: Path, picks: list[int] | None = None) -> np.ndarray:
    """RGB frames of a video: all, or those at ``picks``."""
    capture, frames, index = cv2.VideoCapture(str(path)), [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if picks is None or index in picks:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    return np.stack(frames)


def square(image: np.ndarray, size: int) -> np.ndarray:
    """The image scaled to fit a size × size square, padded with black."""
    scale = size / max(image.shape[:2])
    height, width = round(image.shape[0] * scale), round(image.shape[1] * scale)
    canvas = np.zeros((size, size, 3), np.uint8)
    top, left = (size - height) // 2, (size - width) // 2
    canvas[top:top + height, left:left + width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return canvas


# ---------------------------------------------------------------- tables

SELF_COLUMNS = (("psnr_masked", "PSNR m", "{:.2f}"), ("ssim_masked", "SSIM m", "{:.3f}"), ("sharpness", "sharp", "{:.2f}"))
LOOKS = {"body": ("appearance_distance", "colour ΔE", "{:.1f}"), "face": ("identity_distance", "identity", "{:.2f}")}
CROSS_COLUMNS = {
    "body": (("pose_distance", "pose dist.", "{:.3f}"), ("detection_share", "found", "{:.2f}"), ("sharpness", "sharp", "{:.2f}"),
             LOOKS["body"], ("flicker", "flicker", "{:.4f}")),
    "face": (("pose_distance", "pose dist.", "{:.3f}"), ("detection_share", "found", "{:.2f}"), ("sharpness", "sharp", "{:.2f}"),
             LOOKS["face"], ("jawOpen_correlation", "jawOpen r", "{:.2f}"), ("head_rotation_error_deg", "head °", "{:.1f}"),
             ("flicker", "flicker", "{:.4f}")),
}


def markdown(results: dict) -> str:
    machine_line = results["machine"]
    minutes = ", ".join(f"{name} {target.get('train_minutes', results['train_minutes']):g}"
                        for name, target in results["targets"].items())
    lines = [f"Fidelity benchmark, {results.get('date')}: preset `{results['preset']}`, "
             f"minutes of training per target: {minutes}; on {machine_line['device']} "
             f"({machine_line['cpu_cores']} CPU cores, torch {machine_line['torch']}).", ""]
    for mode in ("body", "face"):
        names = [n for n, r in results["targets"].items() if r["mode"] == mode]
        if names:
            lines += mode_table(mode, {n: results["targets"][n] for n in names}) + [""]
    return "\n".join(lines)


def mode_table(mode: str, targets: dict) -> list[str]:
    cross_columns, self_columns = CROSS_COLUMNS[mode], (*SELF_COLUMNS, LOOKS[mode])
    header = (["target ← driver", "steps", "system"] + [f"all: {c[1]}" for c in self_columns] + ["all: flicker ×real"]
              + ["novel frames"] + [f"novel: {c[1]}" for c in self_columns] + [f"cross: {c[1]}" for c in cross_columns])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, target in targets.items():
        figures = target["eval"]
        novel = figures["novel_pose"]["frames"]
        for system in [s for s in SYSTEMS if s in figures["systems"]]:
            self_all, self_novel = figures["systems"][system], figures["systems_novel"][system]
            cross = figures.get("cross", {}).get("systems", {}).get(system, {})
            # Targets can come from runs of different days (--only): each says its own.
            label = f"{name} ← {Path(target['driver']).stem}" + (f" ({target['date']})" if target.get("date") else "")
            cells = ([label if system == "model" else "", str(target["steps"]) if system == "model" else "",
                      system.replace("_", " ")]
                     + [cell(self_all.get(k), f) for k, _, f in self_columns]
                     + [cell(ratio(self_all["flicker"], figures["real"]["flicker"]), "{:.2f}")]
                     + [f"{novel} of {figures['held_out_frames']}" if system == "model" else ""]
                     + [cell(self_novel.get(k), f) if novel else "—" for k, _, f in self_columns]
                     + [cell(cross.get(k), f) for k, _, f in cross_columns])
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Undefined figures are null in the strict JSON, so either side may be None."""
    return None if numerator is None or not denominator else numerator / denominator


def cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return fmt.format(value)


# ---------------------------------------------------------------- files

def machine() -> dict:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    return {"device": device, "cpu_cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def load_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(strict_json(data, indent=1))
    temporary.replace(path)


if __name__ == "__main__":
    sys.exit(main())
