"""Nearest-neighbour retrieval, the baseline eval compares the model with: pose distances, the
nearest training frame, and the novel-pose threshold."""

from __future__ import annotations

import numpy as np

NEAREST_CHUNK = 64
# A held-out pose is new when it is farther from the training poses than this share of training
# poses are from the rest of their clip (frames within a second of each other aside).
NOVELTY_QUANTILE = 0.9
NOVELTY_SAMPLES = 600


def pose_distances(query: np.ndarray, query_present: np.ndarray, pool: np.ndarray, pool_present: np.ndarray) -> np.ndarray:
    """(Q, P) mean distance over the features present in both frames; inf where they share none."""
    both = query_present[:, None] & pool_present[None]
    distance = np.linalg.norm(query[:, None] - pool[None], axis=-1)
    mean = (distance * both).sum(-1) / np.maximum(both.sum(-1), 1)
    mean[both.sum(-1) == 0] = np.inf
    return mean


def nearest_neighbours(features: np.ndarray, present: np.ndarray, train_end: int) -> tuple[np.ndarray, np.ndarray]:
    """For each held-out frame, the training frame whose features are closest, and how far it is.

    ``features`` (T, F, D) with ``present`` (T, F): the distance is the mean over features present
    in both frames (frames sharing none are never picked).
    """
    picks, distances = [], []
    for start in range(train_end, len(features), NEAREST_CHUNK):
        mean = pose_distances(features[start:start + NEAREST_CHUNK], present[start:start + NEAREST_CHUNK],
                              features[:train_end], present[:train_end])
        picks.append(mean.argmin(axis=1))
        distances.append(mean.min(axis=1))
    return np.concatenate(picks), np.concatenate(distances)


def novelty_threshold(features: np.ndarray, present: np.ndarray, train_end: int, gap: int,
                      quantile: float = NOVELTY_QUANTILE, samples: int = NOVELTY_SAMPLES) -> float:
    """How far a pose must be from every training pose to count as new.

    For evenly spaced training frames, the distance to the nearest training frame at least ``gap``
    frames away (its own neighbours in time would always be near); the threshold is the
    ``quantile`` of those distances. A held-out frame beyond it is farther from the training set
    than 90 % of training poses are from the rest of their own clip.
    """
    queries = np.unique(np.linspace(0, train_end - 1, min(samples, train_end)).round().astype(int))
    nearest = []
    for start in range(0, len(queries), NEAREST_CHUNK):
        chosen = queries[start:start + NEAREST_CHUNK]
        mean = pose_distances(features[chosen], present[chosen], features[:train_end], present[:train_end])
        mean[np.abs(chosen[:, None] - np.arange(train_end)[None]) < gap] = np.inf
        nearest.append(mean.min(axis=1))
    finite = np.concatenate(nearest)
    finite = finite[np.isfinite(finite)]
    return float(np.quantile(finite, quantile)) if len(finite) else float("inf")


def body_pose_features(keypoints_in_model: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Pose points relative to the hip centre (a pose, not a position), and which are confident."""
    pose = keypoints_in_model[:, :33]
    hips = pose[:, [23, 24], :2].mean(axis=1, keepdims=True)
    return pose[..., :2] - hips, pose[..., 2] >= min_confidence


def face_pose_features(tracks: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Expression weights and head rotation, as single-feature vectors."""
    features = np.concatenate([tracks["expression"], tracks["rotation"].reshape(len(tracks["rotation"]), 9)], axis=1)
    return features[:, None, :], np.ones((len(features), 1), bool)
