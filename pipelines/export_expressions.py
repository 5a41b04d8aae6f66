"""`reenact export-expressions`: a face subject's per-frame ARKit weights, head pose and gaze as CSV or JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from reenact.config import ExportConfig
from reenact.errors import ReenactError
from reenact.face.geometry import matrix_to_euler_degrees
from reenact.files import atomic_path
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
    # 2. One row per frame: time, validity, the 53 weights, head pose and gaze.
    columns, rows = expression_table(subject)
    # 3. Write each requested file atomically.
    written = []
    if config.csv:
        written.append(write_csv(Path(config.csv), columns, rows))
    if config.json:
        written.append(write_json_rows(Path(config.json), columns, rows))
    info(f"wrote {', '.join(map(str, written))} ({len(rows)} frames)")
    return written


def expression_table(subject: Subject) -> tuple[list[str], list[list]]:
    tracks = subject.tracks
    names = [str(n) for n in tracks["expression_names"]]
    euler = matrix_to_euler_degrees(torch.as_tensor(tracks["rotation"])).numpy()
    pose = np.concatenate([euler, tracks["translation"]], axis=1)
    gaze = tracks["gaze"].reshape(len(pose), 4)
    columns = ["frame", "time_s", "valid", *names, *POSE_COLUMNS, *GAZE_COLUMNS]
    rows = [[t, round(t / subject.meta["fps"], 6), bool(tracks["valid"][t]),
             *np.round(tracks["expression"][t], 5).tolist(), *np.round(pose[t], 4).tolist(), *np.round(gaze[t], 3).tolist()]
            for t in range(len(pose))]
    return columns, rows


def write_csv(path: Path, columns: list[str], rows: list[list]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def write_json_rows(path: Path, columns: list[str], rows: list[list]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps([dict(zip(columns, row)) for row in rows]) + "\n")
    return path
