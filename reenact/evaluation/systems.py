"""The systems an evaluation compares on held-out frames: the model, the model without its
previous-frame input, and nearest-neighbour retrieval from the training frames."""

from __future__ import annotations

import numpy as np
import torch

from reenact.data import SubjectClip, generator_input, proxy_windows, to_model_range, to_uint8

NEAREST_CHUNK = 64


@torch.no_grad()
def generate_held_out(generator: torch.nn.Module, clip: SubjectClip, feedback: bool) -> np.ndarray:
    """(N, R, R, 3) uint8 frames for the held-out range, in order; ``feedback`` feeds back the previous output."""
    low, high = clip.train_end, len(clip.frames)
    previous, frames = None, []
    for t in range(low, high):
        window = to_model_range(proxy_windows(clip.proxies, torch.tensor([t], device=clip.frames.device), clip.window, low, high))
        if previous is None or not feedback:
            previous = torch.zeros(1, 3, *window.shape[-2:], device=window.device)
        previous = generator(generator_input(window, previous))
        frames.append(to_uint8(previous[0]).permute(1, 2, 0).cpu().numpy())
    return np.stack(frames)


def nearest_neighbours(features: np.ndarray, present: np.ndarray, train_end: int) -> np.ndarray:
    """For each held-out frame, the training frame whose features are closest.

    ``features`` (T, F, D) with ``present`` (T, F): the distance is the mean over features present
    in both frames (frames sharing none are never picked).
    """
    train_features, train_present = features[:train_end], present[:train_end]
    picks = []
    for start in range(train_end, len(features), NEAREST_CHUNK):
        query, query_present = features[start:start + NEAREST_CHUNK], present[start:start + NEAREST_CHUNK]
        both = query_present[:, None] & train_present[None]
        distance = np.linalg.norm(query[:, None] - train_features[None], axis=-1)
        mean = (distance * both).sum(-1) / np.maximum(both.sum(-1), 1)
        mean[both.sum(-1) == 0] = np.inf
        picks.append(mean.argmin(axis=1))
    return np.concatenate(picks)


def body_pose_features(keypoints_in_model: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Pose points relative to the hip centre (a pose, not a position), and which are confident."""
    pose = keypoints_in_model[:, :33]
    hips = pose[:, [23, 24], :2].mean(axis=1, keepdims=True)
    return pose[..., :2] - hips, pose[..., 2] >= min_confidence


def face_pose_features(tracks: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Expression weights and head rotation, as single-feature vectors."""
    features = np.concatenate([tracks["expression"], tracks["rotation"].reshape(len(tracks["rotation"]), 9)], axis=1)
    return features[:, None, :], np.ones((len(features), 1), bool)
