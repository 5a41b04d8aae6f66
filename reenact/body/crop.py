"""The fixed square subject crop: one box over the whole clip that holds the person."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from reenact.body.layout import FACE_START


@dataclass(frozen=True)
class Crop:
    """A square box in displayed source pixels; it may extend past the frame (padded black)."""

    x: int
    y: int
    size: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Crop":
        return cls(int(data["x"]), int(data["y"]), int(data["size"]))

    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.size, self.size)

    def to_crop_pixels(self, points: np.ndarray, resolution: int) -> np.ndarray:
        """Map (..., 2+) source-pixel points into a ``resolution``² image of this crop."""
        mapped = points.astype(np.float32).copy()
        mapped[..., 0] = (points[..., 0] - self.x) * (resolution / self.size)
        mapped[..., 1] = (points[..., 1] - self.y) * (resolution / self.size)
        return mapped


def footage_coverage(crop: Crop, frame_size: tuple[int, int], resolution: int) -> np.ndarray:
    """(R, R) float32: the share of each pixel of a ``resolution``² image of ``crop`` that lies inside
    a (width, height) frame; the rest is the black padding past its edges."""
    step = crop.size / resolution

    def inside(start: int, extent: int) -> np.ndarray:
        low = start + step * np.arange(resolution)
        return (np.clip(low + step, 0, extent) - np.clip(low, 0, extent)) / step

    width, height = frame_size
    return (inside(crop.y, height)[:, None] * inside(crop.x, width)[None, :]).astype(np.float32)


def subject_crop(keypoints: np.ndarray, valid: np.ndarray, frame_size: tuple[int, int],
                 min_confidence: float, margin: float) -> Crop:
    """The square that holds the person's extent over the clip, plus ``margin`` of its height.

    Keypoints stop at the eyes and ankles, so the top gets an extra margin for the head.
    Per-frame extents are pooled with 0.5/99.5 percentiles so a few bad frames can't blow it up.
    """
    body = keypoints[valid][:, :FACE_START]
    confident = body[..., 2] >= min_confidence
    xs = np.where(confident, body[..., 0], np.nan)
    ys = np.where(confident, body[..., 1], np.nan)
    has_points = confident.any(axis=1)
    left = np.nanpercentile(np.nanmin(xs[has_points], axis=1), 0.5)
    right = np.nanpercentile(np.nanmax(xs[has_points], axis=1), 99.5)
    top = np.nanpercentile(np.nanmin(ys[has_points], axis=1), 0.5)
    bottom = np.nanpercentile(np.nanmax(ys[has_points], axis=1), 99.5)
    height = bottom - top
    top -= 2 * margin * height
    bottom += margin * height
    left -= margin * height
    right += margin * height
    size = int(np.ceil(max(right - left, bottom - top, 16)))
    size = min(size, 4 * max(frame_size))
    center_x, center_y = (left + right) / 2, (top + bottom) / 2
    return Crop(int(round(center_x - size / 2)), int(round(center_y - size / 2)), size)
