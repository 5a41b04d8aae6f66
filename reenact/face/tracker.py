"""MediaPipe FaceMesh with iris refinement: 478 landmarks per frame in source pixels."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from reenact.progress import native_stderr_silenced, warn

NUM_FACEMESH = 478


def track_face(frames: Iterable[np.ndarray], source_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(T, 478, 3) landmarks (x, y in source pixels; z relative depth in the same units) and (T,) found.

    When several faces are visible the largest is kept. Frames without a face get zeros.
    """
    import mediapipe as mp

    width, height = source_size
    landmarks, found, crowded = [], [], 0
    with native_stderr_silenced(), mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=2, refine_landmarks=True,
            min_detection_confidence=0.5, min_tracking_confidence=0.5) as model:
        for frame in frames:
            faces = model.process(frame).multi_face_landmarks or []
            points = [np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark], np.float32) for face in faces]
            landmarks.append(max(points, key=_face_area) if points else np.zeros((NUM_FACEMESH, 3), np.float32))
            found.append(bool(points))
            crowded += len(points) > 1
    if crowded:
        warn(f"more than one face in {crowded} of {len(found)} frames; following the largest")
    if not landmarks:
        return np.zeros((0, NUM_FACEMESH, 3), np.float32), np.zeros(0, bool)
    return np.stack(landmarks), np.array(found)


def _face_area(points: np.ndarray) -> float:
    extent = points[:, :2].max(axis=0) - points[:, :2].min(axis=0)
    return float(extent[0] * extent[1])
