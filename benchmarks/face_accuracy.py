"""Face tracking accuracy and speed per clip: the figures the face issue's acceptance names.

    python benchmarks/face_accuracy.py [--online] [CLIP ...]   (default: every clip in ../shared/videos/face)

Runs `reenact track CLIP --mode face` on each clip and prints one JSON line per clip: the
share of frames with a face, the median over frames of the mean distance between fitted and
detected landmarks (468 points) over the inter-ocular distance (33-263), the correlations of
eyeBlink_L / eyeBlink_R with the opening of that eye (386-374, 159-145), of jawOpen with the
inner-lip gap (13-14), and the tracking and fitting speeds the command reports. With --online,
also the same figures for `reenact live`'s online fit (reenact/face/online.py) run over the same
detections, frame by frame after a one-second warm-up, and its error over the whole-clip fit's on
those frames (the live issue asks for at most 1.25).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from run_all import FIGURES, REPO, read_figures, strict_json   # this folder is on the path when the script runs

SPEEDS = {key: FIGURES[key] for key in ("tracking_fps", "fitting_fps")}


def distance(landmarks: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(landmarks[:, a, :2] - landmarks[:, b, :2], axis=1)


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.corrcoef(x, y)[0, 1]), 3)


def fit_error(fitted: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    return np.linalg.norm(fitted[:, :468] - landmarks[:, :468, :2], axis=2).mean(axis=1) / distance(landmarks, 33, 263)


def measure_online(tracks: dict, fps: float, offline_error: np.ndarray) -> dict:
    """The online fit over the detections, as `reenact live` runs it; figures on the frames after the warm-up."""
    from reenact.face.model import load_face_model
    from reenact.face.online import OnlineFaceFit, warm_up, warm_up_frames
    from reenact.face.driver import FACE_WARMUP_SECONDS

    valid, landmarks, size = tracks["valid"], tracks["landmarks"], tuple(int(v) for v in tracks["image_size"])
    warmup = np.flatnonzero(valid)[:max(2, round(fps * FACE_WARMUP_SECONDS))]
    model = load_face_model()
    fit = OnlineFaceFit(model, warm_up(model, warm_up_frames(landmarks[warmup]), size), size)
    fitted, jaw, frames = np.zeros((len(valid), 468, 2), np.float32), np.zeros(len(valid)), np.arange(warmup[-1] + 1, len(valid))
    start = time.process_time()
    for t in frames:
        if not valid[t]:
            fit.lose()
            continue
        face = fit.fit(landmarks[t])
        fitted[t], jaw[t] = face.fitted_landmarks, face.expression[model.expression_index("jawOpen")]
    cpu_ms = 1000 * (time.process_time() - start) / max(1, valid[frames].sum())
    scored = frames[valid[frames]]
    online_error = np.median(fit_error(fitted[scored], landmarks[scored]))
    return {"online_fit_error_median_iod": round(float(online_error), 4),
            "offline_fit_error_same_frames": round(float(np.median(offline_error[scored])), 4),
            "online_over_offline": round(float(online_error / np.median(offline_error[scored])), 3),
            "online_jaw_open_r": correlation(jaw[scored], distance(landmarks[scored], 13, 14)),
            "online_cpu_ms_per_frame": round(cpu_ms, 1)}


def measure(clip: Path, work: Path, online: bool = False) -> dict:
    out = work / clip.stem
    args, since = ["track", str(clip), "--mode", "face", "--resolution", "64", "--out", str(out)], time.time()
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True)
    if result.returncode != 0:
        return {"clip": clip.name, "error": result.stderr.strip().splitlines()[-1]}
    with np.load(out / "tracks.npz") as npz:
        tracks = dict(npz)
    valid, landmarks, fitted = tracks["valid"], tracks["landmarks"], tracks["fitted_landmarks"]
    expression, names = tracks["expression"], list(tracks["expression_names"])
    error = fit_error(fitted, landmarks)
    weight = lambda name: expression[:, names.index(name)]
    fps = json.loads((out / "subject.json").read_text())["fps"]
    return {
        "clip": clip.name, "frames": int(len(valid)), "valid": round(float(valid.mean()), 4),
        "fit_error_median_iod": round(float(np.median(error[valid])), 4),
        "blink_left_r": correlation(weight("eyeBlink_L"), distance(landmarks, 386, 374)),
        "blink_right_r": correlation(weight("eyeBlink_R"), distance(landmarks, 159, 145)),
        "jaw_open_r": correlation(weight("jawOpen"), distance(landmarks, 13, 14)),
        **read_figures(args, work, since, SPEEDS),
        **(measure_online(tracks, fps, error) if online else {}),
    }


def main() -> None:
    online = "--online" in sys.argv[1:]
    clips = [Path(a) for a in sys.argv[1:] if a != "--online"] or sorted((REPO.parent / "shared" / "videos" / "face").glob("*.mp4"))
    if not clips:
        raise SystemExit("no clips: pass some, or put ../shared/videos/face beside the repository")
    with tempfile.TemporaryDirectory() as folder:
        for clip in clips:
            print(strict_json(measure(clip, Path(folder), online)), flush=True)


if __name__ == "__main__":
    main()
