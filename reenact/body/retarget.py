"""Body retargeting for transfer: Everybody Dance Now normalisation into the target's crop."""

from __future__ import annotations

import numpy as np

from reenact.body.crop import Crop
from reenact.body.normalize import ground_stats, normalize_poses


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
