"""Face `--paste-back`: each generated crop composited into the target's own footage, looped."""

from __future__ import annotations

import itertools
from typing import Iterator

import cv2
import numpy as np

from reenact.io import iter_frames, probe_video

FEATHER = 0.08   # of the crop side: the soft edge when pasting back


def looped_footage(target: dict) -> Iterator[np.ndarray]:
    """The target's own video, frame by frame, over and over."""
    target_video = probe_video(target["source_video"])
    return itertools.chain.from_iterable(iter_frames(target_video) for _ in itertools.count())


def composite(frame: np.ndarray, generated: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """``generated`` scaled into ``crop`` (x, y, size) of ``frame`` with a feathered edge."""
    x, y, size = (int(v) for v in crop)
    patch = cv2.resize(generated, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / max(1.0, FEATHER * size), 0, 1)
    alpha = np.minimum(ramp[:, None], ramp[None, :])[..., None]
    out = frame.astype(np.float32)
    top, left = max(0, y), max(0, x)
    bottom, right = min(frame.shape[0], y + size), min(frame.shape[1], x + size)
    if bottom > top and right > left:
        region = (slice(top - y, bottom - y), slice(left - x, right - x))
        out[top:bottom, left:right] = alpha[region] * patch[region] + (1 - alpha[region]) * out[top:bottom, left:right]
    return out.round().astype(np.uint8)
