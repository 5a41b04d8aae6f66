"""`reenact live` in real time: a shared clip streamed over loopback UDP, as a camera would deliver it.

    python benchmarks/live.py [--face-checkpoint F.ckpt] [--body-checkpoint B.ckpt] [--seconds 20]
                              [--preset tiny|128|256] [--no-stabilise] [--lookaheads hold,wait]
                              [--videos DIR]
                              [--workdir DIR] [--out benchmarks/live.json]

An ffmpeg sender plays each clip at its own rate (`-re`), scaled to 640x480 at 30 fps, as
MPEG-TS to udp://127.0.0.1:PORT; `reenact live CKPT --input udp://… --output out.mp4 --stats`
takes it, with each lookahead (hold, wait). Printed per run: input and output frames/s, frames
dropped and held, and the latency from a frame leaving the input's decoder to its output being
written, p50 and p95. Without checkpoints, ones of --preset (default tiny, the CPU goal's; 256 is
the GPU goal's) are trained for a few steps in --workdir (speed does not depend on how well a model
is trained). --no-stabilise runs `live --no-stabilise`, to show what the stabiliser costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reenact.files import strict_json  # noqa: E402
SHARED = REPO.parent / "shared" / "videos"
CLIPS = {"face": ("face/liveportrait_d3.mp4", "face/liveportrait_d10.mp4"),      # (target, driver)
         "body": ("body/hybrik_taiji.mp4", "body/animatex_dance_3.mp4")}
GOALS = {"tiny": {"face": {"output_fps": 15, "latency_ms_p95": 150}, "body": {"output_fps": 10, "latency_ms_p95": 200}},
         "256": {"face": {"output_fps": 30, "latency_ms_p95": 60}, "body": {"output_fps": 30, "latency_ms_p95": 60}}}
LOOKAHEADS = ("hold", "wait")


def main() -> None:
    args = parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    videos, stabilise = Path(args.videos), not args.no_stabilise
    results = {"machine": machine(), "seconds": args.seconds, "preset": args.preset, "stabilise": stabilise, "runs": []}
    for mode in ("face", "body"):
        checkpoint = getattr(args, f"{mode}_checkpoint") or short_checkpoint(mode, args.preset, videos, workdir)
        for lookahead in args.lookaheads.split(","):
            figures = run_live(checkpoint, videos / CLIPS[mode][1], lookahead, stabilise, args.seconds,
                               workdir / f"{mode}_{lookahead}")
            figures.update(mode=mode, checkpoint=str(checkpoint), goals=GOALS.get(args.preset, {}).get(mode))
            print(strict_json(figures), flush=True)
            results["runs"].append(figures)
    Path(args.out).write_text(strict_json(results, indent=2) + "\n")
    print(table(results))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--face-checkpoint")
    parser.add_argument("--body-checkpoint")
    parser.add_argument("--seconds", type=float, default=20.0, help="of stream per run")
    parser.add_argument("--preset", default="tiny", help="of the checkpoints trained when none is given")
    parser.add_argument("--lookaheads", default=",".join(LOOKAHEADS), help="those to run, comma-separated")
    parser.add_argument("--no-stabilise", action="store_true", help="run live --no-stabilise")
    parser.add_argument("--videos", default=str(SHARED), help="the shared clips' folder")
    parser.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "reenact_live_bench"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "live.json"))
    return parser.parse_args()


def machine() -> dict:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()})"
    return {"device": device, "cpu_cores": os.cpu_count(), "torch": torch.__version__}


def reenact(*args) -> str:
    command = [sys.executable, str(REPO / "cli.py"), *map(str, args)]
    finished = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    if finished.returncode != 0:
        raise SystemExit(f"reenact {' '.join(map(str, args))} failed:\n{finished.stdout}{finished.stderr}")
    return finished.stdout + finished.stderr


def short_checkpoint(mode: str, preset: str, videos: Path, workdir: Path) -> Path:
    """A checkpoint of the mode's target clip at ``preset``, trained a few steps (cached in ``workdir``)."""
    from reenact.presets import PRESETS

    resolution = PRESETS[preset].resolution
    subject, checkpoint = workdir / f"{mode}_target_{resolution}", workdir / f"{mode}_{preset}.ckpt"
    if not checkpoint.is_file():
        if not (subject / "subject.json").is_file():
            reenact("track", videos / CLIPS[mode][0], "--mode", mode, "--resolution", resolution, "--out", subject)
        reenact("train", subject, "--preset", preset, "--steps", 20, "--out", checkpoint)
    return checkpoint


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_live(checkpoint: Path, clip: Path, lookahead: str, stabilise: bool, seconds: float, out: Path) -> dict:
    """One live run fed by an ffmpeg sender; the figures `reenact live --stats` wrote."""
    from reenact.io import ffmpeg_exe

    settings = out.parent / "live_settings.toml"
    settings.write_text("stop_after_seconds = 2.0\n")     # the sender is done: stop soon after its last frame
    port = free_udp_port()
    url = f"udp://127.0.0.1:{port}"
    receiver = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "live", str(checkpoint), "--input", url,
                                 "--output", f"{out}.mp4", "--stats", f"{out}.json", "--lookahead", lookahead,
                                 "--config", str(settings), "--stabilise" if stabilise else "--no-stabilise"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    log, opening = [], threading.Event()
    threading.Thread(target=read_log, args=(receiver, log, opening), daemon=True).start()
    # Start-up (imports, CUDA, MediaPipe) can outlast a short stream: send once the receiver opens it.
    opening.wait(timeout=180)
    time.sleep(1.0)
    sender = subprocess.run([ffmpeg_exe(), "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-t", str(seconds),
                             "-vf", "scale=640:480,fps=30", "-an", "-c:v", "libx264", "-preset", "ultrafast",
                             "-tune", "zerolatency", "-g", "30", "-f", "mpegts", f"{url}?pkt_size=1316"])
    receiver.wait(timeout=120)     # it stops on its own once the stream has stalled long enough
    if receiver.returncode != 0 or sender.returncode != 0:
        raise SystemExit(f"live run failed ({receiver.returncode}, sender {sender.returncode}):\n{''.join(log)}")
    figures = json.loads(Path(f"{out}.json").read_text())
    return {"lookahead": lookahead, "stabilise": stabilise, **{k: v for k, v in figures.items() if k != "live"}}


def read_log(receiver: subprocess.Popen, log: list[str], opening: threading.Event) -> None:
    for line in receiver.stdout:
        log.append(line)
        if line.startswith("live: opening"):
            opening.set()
    opening.set()


def table(results: dict) -> str:
    lines = [f"live, {results['machine']['device']}, {results['machine']['cpu_cores']} cores, 640x480 30 fps over UDP, "
             f"preset {results['preset']}, stabiliser {'on' if results['stabilise'] else 'off'}",
             "| mode | lookahead | input fps | output fps | dropped | held | latency p50 ms | p95 ms | goal |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        goal = run["goals"] or {"output_fps": "–", "latency_ms_p95": "–"}
        lines.append(f"| {run['mode']} | {run['lookahead']} | {run['input_fps']} | {run['output_fps']} | {run['dropped']} | "
                     f"{run['held']} | {run['latency_ms_p50']} | {run['latency_ms_p95']} | "
                     f"≥ {goal['output_fps']} fps, p95 ≤ {goal['latency_ms_p95']} ms |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
