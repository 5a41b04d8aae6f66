"""The face crop: a fixed-size square that follows the head, smoothed over time, framed for
head and shoulders as in Deep Video Portraits, and kept inside the video: in a close-up, where
that framing is wider than the picture, the crop is the picture's full height (or width), so
the model's pixels go to the face rather than to black borders (liveportrait_d6's face filled
37 % of the crop's width, 62 % once inside)."""

from __future__ import annotations

import cv2
import numpy as np

from reenact.face.model import CHIN, FOREHEAD

CROP_FACE_LENGTHS = 2.6      # crop side in forehead-to-chin lengths
CROP_DOWN_SHIFT = 0.12       # of the side: move the box down so shoulders show
SMOOTHING_SECONDS = 0.25     # Gaussian sigma of the centre's smoothing


def face_crops(landmarks: np.ndarray, valid: np.ndarray, fps: float, image_size: tuple[int, int],
               size: int | None = None) -> np.ndarray:
    """(T, 3) int crops (x, y, size) in source pixels of a (width, height) video; ``size`` defaults
    to the clip's own framing, at most the picture's shorter side."""
    face_length = np.linalg.norm(landmarks[:, FOREHEAD, :2] - landmarks[:, CHIN, :2], axis=1)
    if size is None:
        size = min(int(round(CROP_FACE_LENGTHS * np.median(face_length[valid]))), min(image_size))
    centers = smooth_over_time(fill_invalid(face_centers(landmarks), valid), fps * SMOOTHING_SECONDS)
    return crops_around(centers, size, image_size)


def face_centers(landmarks: np.ndarray) -> np.ndarray:
    """(T, 2) middle of each frame's face box."""
    return (landmarks[:, :468, :2].min(axis=1) + landmarks[:, :468, :2].max(axis=1)) / 2


def crops_around(centers: np.ndarray, size: int, image_size: tuple[int, int]) -> np.ndarray:
    """Crops of side ``size`` around ``centers``, moved inside the picture along each side it fits
    in (a crop wider than the picture, from an older subject, stays where the face puts it)."""
    corners = np.round(centers - size / 2 + [0, CROP_DOWN_SHIFT * size]).astype(np.int64)
    room = np.asarray(image_size, np.int64) - size
    corners = np.where(room >= 0, np.clip(corners, 0, np.maximum(room, 0)), corners)
    return np.concatenate([corners, np.full((len(corners), 1), size)], axis=1)


class CausalCrop:
    """``face_crops`` one frame at a time (live): the centre follows the face through an exponential
    average with the Gaussian's sigma as its time constant, instead of a window both ways."""

    def __init__(self, fps: float, size: int, image_size: tuple[int, int]):
        self.size, self.image_size = size, image_size
        self.alpha = 1 - np.exp(-1 / max(fps * SMOOTHING_SECONDS, 1e-6))
        self.center: np.ndarray | None = None

    def __call__(self, landmarks: np.ndarray) -> np.ndarray:
        """(3,) crop for one frame's (468+, 2) landmarks."""
        center = face_centers(landmarks[None])[0]
        self.center = center if self.center is None else self.center + self.alpha * (center - self.center)
        return crops_around(self.center[None], self.size, self.image_size)[0]


def fill_invalid(series: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation over invalid frames (held constant beyond the ends)."""
    times = np.arange(len(series))
    return np.stack([np.interp(times, times[valid], series[valid, k]) for k in range(series.shape[1])], axis=1)


def smooth_over_time(series: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with edges held (no shrinking towards zero at the ends)."""
    if sigma <= 0 or len(series) < 2:
        return series.copy()
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(series, ((radius, radius), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(series.shape[1])], axis=1)


def crop_square(frame: np.ndarray, crop: np.ndarray, resolution: int) -> np.ndarray:
    """The (x, y, size) square of ``frame`` (black outside it) resized to resolution² with area averaging."""
    x, y, size = (int(v) for v in crop)
    height, width = frame.shape[:2]
    canvas = np.zeros((size, size, 3), np.uint8)
    left, top = max(0, x), max(0, y)
    right, bottom = min(width, x + size), min(height, y + size)
    if right > left and bottom > top:
        canvas[top - y:bottom - y, left - x:right - x] = frame[top:bottom, left:right]
    return cv2.resize(canvas, (resolution, resolution), interpolation=cv2.INTER_AREA)
