"""Everybody Dance Now global pose normalisation.

Each video gets statistics of where the person's feet meet the ground: the far (highest in
the image) and near (lowest) ankle lines, and the person's height in pixels at each. A
source pose is scaled and moved vertically as linear functions of its ankle height between
the source's far and near lines, so that it stands on the matching line of the target at the
target's height there. When a clip never shows the ankles, the hips serve as the ground line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from reenact.body.layout import POSE

HEAD_POINTS = [POSE[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
GROUND_POINTS = {
    "ankles": [POSE["left_ankle"], POSE["right_ankle"]],
    "hips": [POSE["left_hip"], POSE["right_hip"]],
}
# Below this fraction of frames with confident ankles, the hips are the ground reference.
MIN_ANKLE_FRACTION = 0.2


@dataclass(frozen=True)
class GroundStats:
    """Per-video statistics in source pixels for one ground reference (ankles or hips)."""

    far_y: float
    near_y: float
    far_height: float
    near_height: float
    center_x: float

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "GroundStats":
        return cls(**{k: float(data[k]) for k in cls.__dataclass_fields__})


def frame_ground_and_height(keypoints: np.ndarray, reference: str, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame ground line y (the lower of the confident reference points) and height above it.

    Height runs from the highest confident head point down to the ground line. NaN where unknown.
    """
    ground = keypoints[:, GROUND_POINTS[reference]]
    head = keypoints[:, HEAD_POINTS]
    ground_y = np.where(ground[..., 2] >= min_confidence, ground[..., 1], -np.inf).max(axis=1)
    head_y = np.where(head[..., 2] >= min_confidence, head[..., 1], np.inf).min(axis=1)
    ground_y[np.isinf(ground_y)] = np.nan
    head_y[np.isinf(head_y)] = np.nan
    return ground_y, ground_y - head_y


def ground_stats(keypoints: np.ndarray, valid: np.ndarray, min_confidence: float) -> dict[str, dict | None]:
    """Statistics for every reference that the clip shows often enough; ``None`` for the others."""
    stats: dict[str, dict | None] = {}
    for reference in GROUND_POINTS:
        ground_y, height = frame_ground_and_height(keypoints[valid], reference, min_confidence)
        usable = np.isfinite(ground_y) & np.isfinite(height) & (height > 0)
        enough = usable.mean() >= MIN_ANKLE_FRACTION if usable.size else False
        stats[reference] = _line_stats(ground_y[usable], height[usable], keypoints[valid][usable]).to_dict() if enough else None
    return stats


def _line_stats(ground_y: np.ndarray, height: np.ndarray, keypoints: np.ndarray) -> GroundStats:
    """Far and near lines are the 5th and 95th ground percentiles; heights are medians near each."""
    far_y, near_y = np.percentile(ground_y, [5, 95])
    band = 0.05 * np.median(height)
    far_height = np.median(height[ground_y <= far_y + band])
    near_height = np.median(height[ground_y >= near_y - band])
    hips = keypoints[:, [POSE["left_hip"], POSE["right_hip"]], 0].mean(axis=1)
    return GroundStats(float(far_y), float(near_y), float(far_height), float(near_height), float(np.median(hips)))


def shared_reference(source: dict, target: dict) -> str:
    """Ankles when both clips have ankle statistics, else hips."""
    if source.get("ankles") and target.get("ankles"):
        return "ankles"
    return "hips"


def scale_and_ground(ground_y: np.ndarray, source: GroundStats, target: GroundStats) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame scale and the target ground line for source ground lines ``ground_y``.

    Both interpolate linearly between the far and near lines. A source whose far and near lines
    coincide (the person never walks towards the camera) maps to the middle of the target's.
    """
    far_ratio = target.far_height / source.far_height
    near_ratio = target.near_height / source.near_height
    span = source.near_y - source.far_y
    if span > 0.02 * max(source.far_height, source.near_height):
        position = (ground_y - source.far_y) / span
        target_ground = target.far_y + position * (target.near_y - target.far_y)
        scale = far_ratio + position * (near_ratio - far_ratio)
    else:
        scale = np.full_like(ground_y, 0.5 * (far_ratio + near_ratio))
        source_mid = 0.5 * (source.far_y + source.near_y)
        target_ground = 0.5 * (target.far_y + target.near_y) + scale * (ground_y - source_mid)
    return scale, target_ground


def normalize_poses(keypoints: np.ndarray, source_stats: dict, target_stats: dict, min_confidence: float) -> np.ndarray:
    """Map source keypoints (T, K, 3) into the target video's pixel frame; confidences are kept."""
    reference = shared_reference(source_stats, target_stats)
    source = GroundStats.from_dict(source_stats[reference])
    target = GroundStats.from_dict(target_stats[reference])
    ground_y, _ = frame_ground_and_height(keypoints, reference, min_confidence)
    # Frames that hide the reference points stand on the middle of the source's ground lines.
    ground_y = np.where(np.isfinite(ground_y), ground_y, 0.5 * (source.far_y + source.near_y))
    scale, target_ground = scale_and_ground(ground_y, source, target)
    normalized = keypoints.astype(np.float32).copy()
    normalized[..., 0] = target.center_x + scale[:, None] * (keypoints[..., 0] - source.center_x)
    normalized[..., 1] = target_ground[:, None] + scale[:, None] * (keypoints[..., 1] - ground_y[:, None])
    return normalized
