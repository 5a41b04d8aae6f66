"""Face tracking accuracy and speed per clip: the figures the face issue's acceptance names.

    python benchmarks/face_accuracy.py [CLIP ...]   (default: every clip in ../shared/videos/face)

Runs `reenact track CLIP --mode face` on each clip and prints one JSON line per clip: the
share of frames with a face, the median over frames of the mean distance between fitted and
detected landmarks (468 points) over the inter-ocular distance (33-263), the correlations of
eyeBlink_L / eyeBlink_R with the opening of that eye (386-374, 159-145), of jawOpen with the
inner-lip gap (13-14), and the tracking and fitting speeds the command reports.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from run_all import FIGURES, REPO   # this folder is on the path when the script runs

SPEEDS = {key: FIGURES[key] for key in ("tracking_fps", "fitting_fps")}


def distance(landmarks: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(landmarks[:, a, :2] - landmarks[:, b, :2], axis=1)


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.corrcoef(x, y)[0, 1]), 3)


def measure(clip: Path, work: Path) -> dict:
    out = work / clip.stem
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "track", str(clip), "--mode", "face",
                             "--resolution", "64", "--out", str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        return {"clip": clip.name, "error": result.stderr.strip().splitlines()[-1]}
    output = " ".join((result.stdout + result.stderr).split())
    with np.load(out / "tracks.npz") as tracks:
        valid, landmarks, fitted = tracks["valid"], tracks["landmarks"], tracks["fitted_landmarks"]
        expression, names = tracks["expression"], list(tracks["expression_names"])
    error = np.linalg.norm(fitted[:, :468] - landmarks[:, :468, :2], axis=2).mean(axis=1) / distance(landmarks, 33, 263)
    weight = lambda name: expression[:, names.index(name)]
    return {
        "clip": clip.name, "frames": int(len(valid)), "valid": round(float(valid.mean()), 4),
        "fit_error_median_iod": round(float(np.median(error[valid])), 4),
        "blink_left_r": correlation(weight("eyeBlink_L"), distance(landmarks, 386, 374)),
        "blink_right_r": correlation(weight("eyeBlink_R"), distance(landmarks, 159, 145)),
        "jaw_open_r": correlation(weight("jawOpen"), distance(landmarks, 13, 14)),
        **{key: float(m.group(1)) for key, pattern in SPEEDS.items() if (m := re.search(pattern, output))},
    }


def main() -> None:
    clips = [Path(a) for a in sys.argv[1:]] or sorted((REPO.parent / "shared" / "videos" / "face").glob("*.mp4"))
    if not clips:
        raise SystemExit("no clips: pass some, or put ../shared/videos/face beside the repository")
    with tempfile.TemporaryDirectory() as folder:
        for clip in clips:
            print(json.dumps(measure(clip, Path(folder))), flush=True)


if __name__ == "__main__":
    main()
