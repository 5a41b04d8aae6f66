"""Where the head is: the centre of the confident head keypoints, for Everybody Dance Now's face enhancer."""

from __future__ import annotations

import numpy as np

from reenact.body.layout import POSE

HEAD_POINTS = [POSE[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]


def head_centers(keypoints: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) mean of the confident head points and (T,) whether there were at least two."""
    head = keypoints[:, HEAD_POINTS]
    confident = head[..., 2] >= min_confidence
    count = confident.sum(axis=1)
    centers = (head[..., :2] * confident[..., None]).sum(axis=1) / np.maximum(count, 1)[:, None]
    return centers.astype(np.float32), count >= 2


def face_crop_size(resolution: int) -> int:
    """The enhancer's square: about a sixth of the frame, a multiple of 8 so its generator can halve it twice."""
    return max(16, 8 * round(resolution / 6 / 8))
