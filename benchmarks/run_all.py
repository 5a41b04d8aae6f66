"""Every stage's speed and peak memory on this machine, as JSON and a table.

    python benchmarks/run_all.py [--shared ../shared/videos] [--out benchmarks/results.json]

Runs the real commands on real clips (the shipped example when ../shared is absent): body and
face tracking (with fitting), proxy rendering, training and transfer. Each stage runs in its
own process, so its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reenact.files import strict_json  # noqa: E402
# Runs one reenact command in this process and prints the process's peak memory as the last line.
RUNNER = """
import json, resource, sys
from cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps({"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
FIGURES = {  # figure name: the command that writes it, and its keys in the JSON that command writes (figures_file)
    "tracking_fps": ("track", "timings", "tracking_fps"),
    "fitting_fps": ("track", "timings", "fitting_fps"),
    "training_it_per_s": ("train", "it_per_s"),
    "generation_fps": ("transfer", "generation_fps"),
}


def figures_file(args: list[str], cwd: Path) -> Path | None:
    """The JSON file `reenact ARGS` writes its figures to, beside the --out it was given: the subject's
    subject.json (track), the run folder's summary.json (train), the video's .json (transfer)."""
    if "--out" not in args[:-1]:
        return None
    out = cwd / args[args.index("--out") + 1]
    return {"track": out / "subject.json", "train": out.with_suffix(".train") / "summary.json",
            "transfer": out.with_suffix(".json")}.get(args[0])


def written_json(path: Path | None, since: float) -> dict | None:
    """The JSON at ``path`` if it was written since ``since`` (a time.time()), else None."""
    try:
        if path is None or path.stat().st_mtime < since:
            return None
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_figures(args: list[str], cwd: Path, since: float, figures: dict = FIGURES) -> dict:
    """``figures`` of `reenact ARGS` run in ``cwd``, from the JSON file it wrote; left out when that file is
    absent, was not written since ``since`` (a time.time(): an earlier run's), or lacks the figure."""
    written = written_json(figures_file(args, cwd), since)
    if written is None:
        return {}
    found = {}
    for name, (command, *keys) in figures.items():
        value = written if command == args[0] else None
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            found[name] = float(value)
    return found


def run_stage(name: str, args: list[str], workdir: Path, frames: int | None = None) -> dict:
    start, started_at = time.perf_counter(), time.time()
    result = subprocess.run([sys.executable, "-c", RUNNER, *args], cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stderr[-2000:]}")
    figures = read_figures(args, workdir, started_at)
    record = {"stage": name, "wall_s": round(seconds, 1), **figures,
              "peak_memory_mb": round(json.loads(result.stdout.strip().splitlines()[-1])["peak_memory_mb"], 1)}
    if frames:
        record["end_to_end_fps"] = round(frames / seconds, 1)
    return record


def frame_count(path: Path) -> int:
    from reenact.io import iter_frames, probe_video

    return sum(1 for _ in iter_frames(probe_video(path), size=(32, 32)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "videos")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results.json")
    args = parser.parse_args()
    body = args.shared / "body" / "hybrik_taiji.mp4"
    body = body if body.exists() else REPO / "examples" / "taiji_target.mp4"
    face = args.shared / "face" / "liveportrait_d3.mp4"
    source = REPO / "examples" / "taiji_source.mp4"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        records = [run_stage(f"track body ({body.name})", ["track", str(body), "--mode", "body", "--out", "body", "--resolution", "128"],
                             work, frame_count(body))]
        if face.exists():
            records.append(run_stage(f"track face ({face.name})", ["track", str(face), "--mode", "face", "--out", "face", "--resolution", "128"],
                                     work, frame_count(face)))
        records.append(run_stage("train tiny (100 steps)", ["train", "body", "--preset", "tiny", "--steps", "100", "--out", "body.ckpt"], work))
        records.append(run_stage(f"transfer ({source.name})", ["transfer", str(source), "body.ckpt", "--out", "out.mp4"], work,
                                 frame_count(source)))
        proxy = subprocess.run([sys.executable, str(REPO / "benchmarks" / "proxy_render.py"), "--subject", str(work / "body")],
                               capture_output=True, text=True, check=True)
        records.append({"stage": "proxy render, skeleton 256² (1 thread)", **json.loads(proxy.stdout)})
        for threads in (1, 2):
            face_render = subprocess.run([sys.executable, str(REPO / "benchmarks" / "face_render.py"), "--threads", str(threads)],
                                         capture_output=True, text=True, check=True)
            records.append({"stage": f"proxy render, face mesh 256² ({threads} thread{'s' * (threads > 1)})",
                            **json.loads(face_render.stdout)})
    results = {"device": device, "torch": torch.__version__, "stages": records}
    args.out.write_text(strict_json(results, indent=2) + "\n")
    keys = ("wall_s", "tracking_fps", "fitting_fps", "training_it_per_s", "generation_fps", "end_to_end_fps",
            "frames_per_second", "peak_memory_mb")
    print(f"device: {device}")
    print("| stage | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for record in records:
        print(f"| {record['stage']} | " + " | ".join(str(record.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
