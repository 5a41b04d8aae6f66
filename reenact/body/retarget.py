"""Body retargeting for transfer: Everybody Dance Now normalisation into the target's crop."""

from __future__ import annotations

from typing import Callable

import numpy as np

from reenact.body.crop import Crop
from reenact.body.head import head_centers
from reenact.body.normalize import ground_stats, normalize_poses
from reenact.render.skeleton import SkeletonRenderer


def retarget_keypoints(tracks, target: dict) -> np.ndarray:
    """(T, K, 3) the source's keypoints normalised onto the target, in the target's crop at the
    subject's resolution; frames the source was not tracked in have zero confidence."""
    source_ground = ground_stats(tracks.keypoints, tracks.valid, target["track_config"]["min_confidence"])
    return normalize_into_crop(tracks.keypoints, tracks.valid, source_ground, target)


def normalize_into_crop(keypoints: np.ndarray, valid: np.ndarray, source_ground: dict, target: dict) -> np.ndarray:
    """(T, K, 3) source keypoints normalised with the source's ground statistics (its whole clip's in
    ``transfer``, its warm-up's in ``live``) into the target's crop at the subject's resolution."""
    normalized = normalize_poses(keypoints, source_ground, target["ground"], target["track_config"]["min_confidence"])
    normalized[~valid, :, 2] = 0.0
    return Crop.from_dict(target["crop"]).to_crop_pixels(normalized, target["subject_resolution"])


def proxy_source(tracks, target: dict) -> tuple[Callable[[int], np.ndarray], np.ndarray]:
    """(t → (R, R, 3) uint8 proxy at the subject's resolution, (T, 3) head x, y and seen, in subject pixels)."""
    min_confidence = target["track_config"]["min_confidence"]
    in_crop = retarget_keypoints(tracks, target)
    renderer = SkeletonRenderer(target["subject_resolution"])
    centers, seen = head_centers(in_crop, min_confidence)
    return (lambda t: renderer.render(in_crop[t])), np.concatenate([centers, seen[:, None]], axis=1)


def target_fields(subject) -> dict:
    """What transfer needs from a body subject folder."""
    return {"crop": subject.meta["crop"], "ground": subject.meta["ground"]}
