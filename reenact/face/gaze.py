"""Per-eye gaze from the iris landmarks relative to the eye corners, and as ARKit eyeLook weights.

The iris centre's offset from the middle of the eye corners is measured along the corner
axis (inward positive) and across it (up positive), in eye widths, relative to the clip's
median offset: the iris rests a little inward of the corners' midpoint, by an amount that
varies between people, and people in front of a camera look at it most of the time. With an
eye about 3 cm wide and an eyeball radius of about 1.2 cm, that offset gives yaw and pitch.
"""

from __future__ import annotations

import numpy as np

from reenact.face.model import (LEFT_EYE_INNER, LEFT_EYE_OUTER, LEFT_IRIS, RIGHT_EYE_INNER, RIGHT_EYE_OUTER,
                                RIGHT_IRIS)

EYE_WIDTH_OVER_RADIUS = 3.0 / 1.2
# Iris offsets (eye widths) that count as a full eyeLook weight of 1.
FULL_LOOK_SIDEWAYS = 0.18
FULL_LOOK_VERTICAL = 0.10
EYES = {"R": (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_IRIS[0]), "L": (LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_IRIS[0])}


def eye_frames(landmarks: np.ndarray, eye: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame eye centre, inward unit axis, upward unit axis and width (pixels) of one eye."""
    outer, inner, _ = EYES[eye]
    axis = landmarks[:, inner, :2] - landmarks[:, outer, :2]
    width = np.linalg.norm(axis, axis=1, keepdims=True).clip(1e-6)
    along = axis / width
    up = np.stack([along[:, 1], -along[:, 0]], axis=1)   # the axis turned towards the top of the image
    if eye == "L":
        up = -up  # the left eye's inward axis points the other way
    return (landmarks[:, inner, :2] + landmarks[:, outer, :2]) / 2, along, up, width


def raw_iris_offsets(landmarks: np.ndarray) -> np.ndarray:
    """(T, 2, 3): per eye [R, L], the iris centre's (inward, up) offset and its radius, in eye widths."""
    offsets = []
    for eye, (_, _, iris) in EYES.items():
        center, along, up, width = eye_frames(landmarks, eye)
        relative = landmarks[:, iris, :2] - center
        radius = np.linalg.norm(landmarks[:, iris + 1:iris + 5, :2] - landmarks[:, iris, None, :2], axis=2).mean(1)
        offsets.append(np.stack([(relative * along).sum(1), (relative * up).sum(1), radius], axis=1) / width)
    return np.stack(offsets, axis=1)


def irises_from_offsets(landmarks: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(T, 2, 3) iris x, y, radius in pixels placed by ``raw_iris_offsets``-style offsets on these eyes."""
    irises = []
    for index, eye in enumerate(EYES):
        center, along, up, width = eye_frames(landmarks, eye)
        position = center + (offsets[:, index, :1] * along + offsets[:, index, 1:2] * up) * width
        irises.append(np.concatenate([position, offsets[:, index, 2:3] * width], axis=1))
    return np.stack(irises, axis=1)


def resting_offsets(landmarks: np.ndarray) -> np.ndarray:
    """(2, 2): per eye, the median (inward, up) iris offset over the frames: where the eyes rest."""
    return np.median(raw_iris_offsets(landmarks)[..., :2], axis=0)


def iris_offsets(landmarks: np.ndarray, rest: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{"R"|"L": (T, 2)} iris offset (inward, up) in eye widths relative to ``rest`` (default the
    clip's own ``resting_offsets``; live holds those of its first second)."""
    raw = raw_iris_offsets(landmarks)[..., :2]
    rest = resting_offsets(landmarks) if rest is None else rest
    return {eye: raw[:, index] - rest[index] for index, eye in enumerate(EYES)}


def gaze_angles(landmarks: np.ndarray) -> np.ndarray:
    """(T, 2, 2) degrees: [right eye, left eye] × [inward yaw, upward pitch]."""
    offsets = iris_offsets(landmarks)
    stacked = np.stack([offsets["R"], offsets["L"]], axis=1)
    return np.degrees(np.arcsin(np.clip(stacked * EYE_WIDTH_OVER_RADIUS, -1, 1)))


def eye_look_weights(landmarks: np.ndarray, expression_names: tuple[str, ...],
                     rest: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """eyeLookIn/Out/Up/Down_L/R weights in [0, 1], each (T,)."""
    weights = {}
    for eye, offset in iris_offsets(landmarks, rest).items():
        sideways, vertical = offset[:, 0] / FULL_LOOK_SIDEWAYS, offset[:, 1] / FULL_LOOK_VERTICAL
        weights[f"eyeLookIn_{eye}"] = np.clip(sideways, 0, 1)
        weights[f"eyeLookOut_{eye}"] = np.clip(-sideways, 0, 1)
        weights[f"eyeLookUp_{eye}"] = np.clip(vertical, 0, 1)
        weights[f"eyeLookDown_{eye}"] = np.clip(-vertical, 0, 1)
    return {name: value for name, value in weights.items() if name in expression_names}
