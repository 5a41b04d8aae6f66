"""Image and video metrics for self-reenactment: PSNR, SSIM (full and masked), flicker, pose distance.

Images are float arrays in [0, 1], (H, W, 3); masks are (H, W) bool.
"""

from __future__ import annotations

import cv2
import numpy as np

from reenact.stabilise import optical_flow, warp

SSIM_SIGMA = 1.5
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2
# A missed detection counts as this pose distance (one body height or one inter-ocular distance).
MISSED_POSE_DISTANCE = 1.0


def psnr(generated: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None) -> float:
    squared = ((generated - real) ** 2).mean(axis=-1)
    mse = squared[mask].mean() if mask is not None else squared.mean()
    return float(10 * np.log10(1.0 / max(mse, 1e-10)))


def ssim_map(generated: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004) with an 11×11 Gaussian window, averaged over channels."""
    blur = lambda image: cv2.GaussianBlur(image, (11, 11), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)
    mu_x, mu_y = blur(generated), blur(real)
    var_x = blur(generated * generated) - mu_x ** 2
    var_y = blur(real * real) - mu_y ** 2
    covariance = blur(generated * real) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * covariance + SSIM_C2)
    denominator = (mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (numerator / denominator).mean(axis=-1)


def ssim(generated: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None) -> float:
    values = ssim_map(generated.astype(np.float32), real.astype(np.float32))
    return float(values[mask].mean() if mask is not None else values.mean())


def real_frame_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """DIS optical flow from ``current`` back to ``previous`` (float RGB in [0, 1]), for backward warping."""
    as_uint8 = lambda image: (image * 255).astype(np.uint8)
    return optical_flow(as_uint8(previous), as_uint8(current))


def warping_error(previous: np.ndarray, current: np.ndarray, flow: np.ndarray) -> float:
    """Mean absolute difference between ``current`` and ``previous`` warped to it by the real frames' flow."""
    return float(np.abs(warp(previous, flow) - current).mean())


def pose_distance(detected: np.ndarray, found: bool, reference: np.ndarray, scale: float) -> float:
    """Mean distance between detected and reference points (both (K, 2) in the same pixels) over ``scale``."""
    if not found:
        return MISSED_POSE_DISTANCE
    return float(np.linalg.norm(detected - reference, axis=1).mean() / max(scale, 1e-6))


def body_heights(points: np.ndarray, fallback: float, min_confidence: float = 0.5) -> np.ndarray:
    """(T,) the vertical extent of each frame's confident (T, K, 3) points, at least 1; ``fallback`` where none are."""
    ys = np.where(points[..., 2] >= min_confidence, points[..., 1], np.nan)
    with np.errstate(all="ignore"):
        height = np.nan_to_num(np.nanmax(ys, axis=1) - np.nanmin(ys, axis=1), nan=fallback)
    return np.maximum(height, 1.0)


def face_points_in_crop(landmarks: np.ndarray, crops: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, 468, 3) FaceMesh points from frame pixels into ``resolution``-pixel crops (confidence 1),
    and (T,) their inter-ocular distance."""
    crops = crops.astype(np.float32)
    points = (landmarks[:, :468, :2] - crops[:, None, :2]) * (resolution / crops[:, None, 2:3])
    points = np.concatenate([points, np.ones((*points.shape[:2], 1), np.float32)], axis=-1)
    return points, np.linalg.norm(points[:, 33, :2] - points[:, 263, :2], axis=1)
