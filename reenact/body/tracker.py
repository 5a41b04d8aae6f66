"""MediaPipe Holistic body tracking: 33 pose, 2×21 hand and face-feature keypoints per frame (or the pose alone)."""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import numpy as np

from reenact.body import layout
from reenact.progress import native_stderr_silenced


@contextlib.contextmanager
def holistic_model() -> Iterator[object]:
    """A MediaPipe Holistic graph in video mode.

    model_complexity=1 is the pose model shipped inside the mediapipe wheel (0 and 2 download).
    MediaPipe's own landmark smoothing is off: our named filter does the smoothing.
    """
    import mediapipe as mp

    model = mp.solutions.holistic.Holistic(
        static_image_mode=False, model_complexity=1, smooth_landmarks=False,
        refine_face_landmarks=False, min_detection_confidence=0.5, min_tracking_confidence=0.5,
    )
    try:
        yield model
    finally:
        model.close()


@contextlib.contextmanager
def pose_model() -> Iterator[object]:
    """MediaPipe Pose alone in video mode: Holistic's pose graph without its face and hand models.

    Its 33 pose keypoints are Holistic's (within 1e-5 px on the demo's outputs) at 1.8× the speed,
    so eval measures the pose of generated frames with it.
    """
    import mediapipe as mp

    model = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False,
                                   min_detection_confidence=0.5, min_tracking_confidence=0.5)
    try:
        yield model
    finally:
        model.close()


def keypoints_from_result(result: object, width: int, height: int) -> np.ndarray:
    """(K, 3) keypoints in pixels of a ``width``×``height`` frame; confidence 0 where not found.

    Pose confidence is MediaPipe's visibility; hand and face points get 1 when detected (never
    from pose_model, whose results have none).
    """
    keypoints = np.zeros((layout.NUM_KEYPOINTS, 3), np.float32)
    scale = np.array([width, height], np.float32)
    if result.pose_landmarks is not None:
        pose = result.pose_landmarks.landmark
        keypoints[: layout.NUM_POSE, :2] = [(p.x, p.y) for p in pose] * scale
        keypoints[: layout.NUM_POSE, 2] = [p.visibility for p in pose]
    for hand, start in ((getattr(result, "left_hand_landmarks", None), layout.LEFT_HAND_START),
                        (getattr(result, "right_hand_landmarks", None), layout.RIGHT_HAND_START)):
        if hand is not None:
            keypoints[start:start + 21, :2] = [(p.x, p.y) for p in hand.landmark] * scale
            keypoints[start:start + 21, 2] = 1.0
    if getattr(result, "face_landmarks", None) is not None:
        face = result.face_landmarks.landmark
        keypoints[layout.FACE_START:, :2] = [(face[i].x, face[i].y) for i in layout.FACE_MESH_INDICES] * scale
        keypoints[layout.FACE_START:, 2] = 1.0
    return keypoints


TORSO = [layout.POSE[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]


def person_found(keypoints: np.ndarray, min_confidence: float) -> np.ndarray:
    """(...,) for (..., K, 3) keypoints: a person is there when three of shoulders and hips are confident."""
    return (keypoints[..., TORSO, 2] >= min_confidence).sum(axis=-1) >= 3


def track_body(frames: Iterable[np.ndarray], source_size: tuple[int, int], model_factory=holistic_model) -> np.ndarray:
    """Raw (T, K, 3) keypoints in source pixels for RGB frames of any size with the source's aspect;
    ``model_factory``: holistic_model, or pose_model where only the pose counts."""
    width, height = source_size
    tracks = []
    with native_stderr_silenced(), model_factory() as model:
        for frame in frames:
            tracks.append(keypoints_from_result(model.process(frame), width, height))
    if not tracks:
        return np.zeros((0, layout.NUM_KEYPOINTS, 3), np.float32)
    return np.stack(tracks)
