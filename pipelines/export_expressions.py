"""`reenact export-expressions`: a face subject's per-frame ARKit weights, head pose and gaze as CSV or JSON."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from reenact.config import ExportConfig
from reenact.errors import ReenactError
from reenact.face.arkit import ARKIT_NAMES, NO_COUNTERPART, to_arkit
from reenact.face.geometry import matrix_to_euler_degrees
from reenact.files import atomic_path, strict_json
from reenact.progress import info
from reenact.subject import Subject

POSE_COLUMNS = ("head_pitch_deg", "head_yaw_deg", "head_roll_deg", "head_x_cm", "head_y_cm", "head_z_cm")
GAZE_COLUMNS = ("gaze_right_yaw_in_deg", "gaze_right_pitch_up_deg", "gaze_left_yaw_in_deg", "gaze_left_pitch_up_deg")


def run(config: ExportConfig) -> list[Path]:
    # 1. The subject must be a face subject, and at least one output must be asked for.
    subject = Subject.load(config.subject)
    if not subject.mode.has_expressions:
        raise ReenactError(f"{config.subject}: a {subject.mode.name} subject; expressions exist only for face subjects")
    if not config.csv and not config.json:
        raise ReenactError("export-expressions: give --csv PATH and/or --json PATH")
    if config.names not in LAYOUTS:
        raise ReenactError(f"--names {config.names}: not a naming reenact knows (use {', '.join(LAYOUTS)})")
    # 2. One row per frame: time, validity, the weights (the model's 53 or ARKit's 52), head pose and gaze.
    columns, rows = LAYOUTS[config.names](subject)
    # 3. Write each requested file atomically.
    written = []
    if config.csv:
        written.append(write_csv(Path(config.csv), columns, rows))
    if config.json:
        written.append(write_json_rows(Path(config.json), columns, rows))
    info(f"wrote {', '.join(map(str, written))} ({len(rows)} frames)")
    return written


def model_table(subject: Subject) -> tuple[list[str], list[list]]:
    """The face model's 53 expressions by its own names (``eyeBlink_L``)."""
    names = [str(n) for n in subject.tracks["expression_names"]]
    return table(subject, names, subject.tracks["expression"])


def arkit_table(subject: Subject) -> tuple[list[str], list[list]]:
    """ARKit's 52 names in ARKit's order (``eyeBlinkLeft``), for Live Link, VRM and Unity rigs."""
    names = [str(n) for n in subject.tracks["expression_names"]]
    missing = ", ".join(NO_COUNTERPART)
    info(f"ARKit names: browInnerUp and cheekPuff are the means of the model's halves; {missing} has no counterpart (0)")
    return table(subject, list(ARKIT_NAMES), to_arkit(subject.tracks["expression"], names))


def live_link_table(subject: Subject) -> tuple[list[str], list[list]]:
    """Live Link Face's CSV columns: Timecode, BlendShapeCount, the ARKit weights with capitalised
    names, then head and eye angles (here in degrees, as in every reenact export)."""
    _, rows = arkit_table(subject)
    fps = subject.meta["fps"]
    columns = ["Timecode", "BlendShapeCount", *(n[0].upper() + n[1:] for n in ARKIT_NAMES),
               "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
               "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    named = len(ARKIT_NAMES)
    live_rows = []
    for row in rows:
        weights, (pitch, yaw, roll), gaze = row[3:3 + named], row[3 + named:6 + named], row[9 + named:]
        right_yaw, right_pitch, left_yaw, left_pitch = gaze
        live_rows.append([timecode(row[0], fps), len(columns) - 2, *weights, yaw, pitch, roll,
                          left_yaw, left_pitch, 0.0, right_yaw, right_pitch, 0.0])
    return columns, live_rows


def timecode(frame: int, fps: float) -> str:
    """HH:MM:SS:FF.mmm, frames within the second and the millisecond of the frame's time."""
    seconds = frame / fps
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{int(round(frame - whole * fps)):02d}.{int(seconds * 1000) % 1000:03d}"


def table(subject: Subject, names: list[str], expression: np.ndarray) -> tuple[list[str], list[list]]:
    """One row per frame: frame, time, valid, the weights, head pose, gaze; rounded to what the
    fit resolves (float64 first, so the CSV has 0.0575, not float32's 0.05754999816417694)."""
    tracks = subject.tracks
    euler = matrix_to_euler_degrees(torch.as_tensor(tracks["rotation"])).numpy()
    pose = np.concatenate([euler, tracks["translation"]], axis=1).astype(np.float64)
    gaze = tracks["gaze"].reshape(len(pose), 4).astype(np.float64)
    weights = np.asarray(expression, np.float64)
    columns = ["frame", "time_s", "valid", *names, *POSE_COLUMNS, *GAZE_COLUMNS]
    rows = [[t, round(t / subject.meta["fps"], 4), bool(tracks["valid"][t]),
             *np.round(weights[t], 4).tolist(), *np.round(pose[t], 3).tolist(), *np.round(gaze[t], 2).tolist()]
            for t in range(len(pose))]
    return columns, rows


LAYOUTS = {"model": model_table, "arkit": arkit_table, "live_link": live_link_table}


def write_csv(path: Path, columns: list[str], rows: list[list]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def write_json_rows(path: Path, columns: list[str], rows: list[list]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(strict_json([dict(zip(columns, row)) for row in rows]) + "\n")
    return path
