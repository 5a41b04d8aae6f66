"""MediaPipe FaceMesh with iris refinement: 478 landmarks per frame in source pixels."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from reenact.progress import native_stderr_silenced, warn

NUM_FACEMESH = 478


class FaceMeshDetector:
    """FaceMesh in video mode, frame by frame: ``track`` runs it over a clip, ``live`` over a stream."""

    def __init__(self, source_size: tuple[int, int]):
        import mediapipe as mp

        self.width, self.height = source_size
        self.crowded_frames = 0
        with native_stderr_silenced():
            self.model = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=2, refine_landmarks=True,
                min_detection_confidence=0.5, min_tracking_confidence=0.5)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks of the largest face in an RGB frame (x, y in source pixels; z relative
        depth in the same units), or None."""
        faces = self.model.process(frame).multi_face_landmarks or []
        points = [np.array([(p.x * self.width, p.y * self.height, p.z * self.width) for p in face.landmark], np.float32)
                  for face in faces]
        self.crowded_frames += len(points) > 1
        return max(points, key=_face_area) if points else None

    def close(self) -> None:
        self.model.close()

    def __enter__(self) -> "FaceMeshDetector":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def track_face(frames: Iterable[np.ndarray], source_size: tuple[int, int], what: str) -> tuple[np.ndarray, np.ndarray]:
    """(T, 478, 3) landmarks and (T,) found for a clip; frames without a face get zeros.

    When several faces are visible the largest is kept, and a warning names ``what`` was tracked.
    """
    landmarks, found, crowded = detect_faces(frames, source_size)
    warn_crowded(what, crowded, len(found))
    return landmarks, found


def warn_crowded(what: str, crowded: int, frames: int) -> None:
    if crowded:
        warn(f"{what}: more than one face in {crowded} of {frames} frames; following the largest")


def detect_faces(frames: Iterable[np.ndarray], source_size: tuple[int, int],
                 count_from: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """track_face's landmarks and found, and how many frames from ``count_from`` on showed more than one face."""
    landmarks, found, crowded = [], [], 0
    with native_stderr_silenced(), FaceMeshDetector(source_size) as detector:
        for index, frame in enumerate(frames):
            before = detector.crowded_frames
            points = detector(frame)
            crowded += index >= count_from and detector.crowded_frames > before
            landmarks.append(points if points is not None else np.zeros((NUM_FACEMESH, 3), np.float32))
            found.append(points is not None)
    if not landmarks:
        return np.zeros((0, NUM_FACEMESH, 3), np.float32), np.zeros(0, bool), 0
    return np.stack(landmarks), np.array(found), int(crowded)


def _face_area(points: np.ndarray) -> float:
    extent = points[:, :2].max(axis=0) - points[:, :2].min(axis=0)
    return float(extent[0] * extent[1])
