"""Temporal cleaning of keypoint tracks: fill short gaps, then smooth.

Tracks are (T, K, 3) arrays of x, y and confidence; a point is missing in a frame when its
confidence is below a threshold. The smoothing filter is picked by name from ``SMOOTHERS``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def fill_short_gaps(tracks: np.ndarray, min_confidence: float, max_gap: int) -> np.ndarray:
    """Linearly interpolate each point across runs of at most ``max_gap`` missing frames.

    Interpolated points take the lower confidence of the two frames that bound the gap.
    Longer gaps, and gaps at the start or end of the clip, stay missing.
    """
    filled = tracks.copy()
    present = tracks[..., 2] >= min_confidence
    for k in range(tracks.shape[1]):
        for start, stop in _missing_runs(present[:, k]):
            if start == 0 or stop == len(tracks) or stop - start > max_gap:
                continue
            before, after = tracks[start - 1, k], tracks[stop, k]
            weights = (np.arange(start, stop) - (start - 1)) / (stop - (start - 1))
            filled[start:stop, k, :2] = before[:2] + weights[:, None] * (after[:2] - before[:2])
            filled[start:stop, k, 2] = min(before[2], after[2])
    return filled


def _missing_runs(present: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) ranges of consecutive False values."""
    edges = np.diff(np.concatenate([[1], present.astype(np.int8), [1]]))
    return list(zip(np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)))


def one_euro(signal: np.ndarray, present: np.ndarray, fps: float,
             min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """One-Euro filter (Casiez et al. 2012) along axis 0 of ``signal`` (T, K, D).

    The cutoff rises with speed, so slow jitter is smoothed hard while fast motion keeps up.
    ``present`` (T, K) marks where each point exists; the filter restarts after every gap
    and leaves missing samples untouched. One pass over time, vectorised over points.
    """
    smoothed = signal.astype(np.float64)
    state = smoothed[0].copy()
    derivative = np.zeros_like(state)
    alpha_d = _smoothing_factor(fps, d_cutoff)
    for t in range(1, len(signal)):
        sample = smoothed[t]
        restart = (present[t] & ~present[t - 1])[:, None]
        derivative = np.where(restart, 0.0, alpha_d * (sample - state) * fps + (1 - alpha_d) * derivative)
        alpha = _smoothing_factor(fps, min_cutoff + beta * np.abs(derivative))
        filtered = np.where(restart, sample, alpha * sample + (1 - alpha) * state)
        state = np.where(present[t][:, None], filtered, state)
        smoothed[t] = np.where(present[t][:, None], filtered, sample)
    return smoothed.astype(signal.dtype)


def _smoothing_factor(fps: float, cutoff: float | np.ndarray) -> float | np.ndarray:
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau * fps)


def smooth_one_euro(tracks: np.ndarray, min_confidence: float, fps: float, scale: float,
                    min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """One-Euro smoothing of every point's x, y where it is present.

    Coordinates are divided by ``scale`` (the frame's long side) first, so ``beta`` means the
    same thing at every video size.
    """
    present = tracks[..., 2] >= min_confidence
    smoothed = tracks.copy()
    smoothed[..., :2] = one_euro(tracks[..., :2] / scale, present, fps, min_cutoff, beta, d_cutoff) * scale
    return smoothed


def smooth_none(tracks: np.ndarray, **_: float) -> np.ndarray:
    return tracks.copy()


SMOOTHERS: dict[str, Callable[..., np.ndarray]] = {"one_euro": smooth_one_euro, "none": smooth_none}
