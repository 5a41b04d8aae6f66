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


class OneEuroFilter:
    """One-Euro filter (Casiez et al. 2012), one sample at a time, vectorised over points.

    The cutoff rises with speed, so slow jitter is smoothed hard while fast motion keeps up. It
    is causal: ``live`` runs it frame by frame, ``track`` over a whole clip (``one_euro``).
    A point restarts after every gap; missing samples pass through untouched.
    """

    def __init__(self, fps: float, min_cutoff: float, beta: float, d_cutoff: float):
        self.fps, self.min_cutoff, self.beta = fps, min_cutoff, beta
        self.alpha_d = _smoothing_factor(fps, d_cutoff)
        self.state = self.derivative = self.was_present = None

    def __call__(self, sample: np.ndarray, present: np.ndarray) -> np.ndarray:
        """(K, D) sample, (K,) present → the filtered (K, D) sample (float64)."""
        sample = np.asarray(sample, np.float64)
        if self.state is None:
            self.state, self.derivative, self.was_present = sample.copy(), np.zeros_like(sample), present.copy()
            return sample.copy()
        restart = (present & ~self.was_present)[:, None]
        self.derivative = np.where(restart, 0.0, self.alpha_d * (sample - self.state) * self.fps
                                   + (1 - self.alpha_d) * self.derivative)
        alpha = _smoothing_factor(self.fps, self.min_cutoff + self.beta * np.abs(self.derivative))
        filtered = np.where(restart, sample, alpha * sample + (1 - alpha) * self.state)
        self.state = np.where(present[:, None], filtered, self.state)
        self.was_present = present.copy()
        return np.where(present[:, None], filtered, sample)


def one_euro(signal: np.ndarray, present: np.ndarray, fps: float,
             min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """``OneEuroFilter`` run along axis 0 of ``signal`` (T, K, D) with ``present`` (T, K)."""
    step = OneEuroFilter(fps, min_cutoff, beta, d_cutoff)
    smoothed = np.stack([step(signal[t], present[t]) for t in range(len(signal))]) if len(signal) else signal.astype(np.float64)
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


class NoFilter:
    """The causal counterpart of ``smooth_none``: samples pass through."""

    def __call__(self, sample: np.ndarray, present: np.ndarray) -> np.ndarray:
        return np.asarray(sample, np.float64).copy()


def causal_smoother(settings: dict, fps: float) -> OneEuroFilter | NoFilter:
    """The frame-by-frame filter for a track config's ``smoothing``: what `live` runs where `track`
    ran ``SMOOTHERS[smoothing]`` over the whole clip."""
    return CAUSAL_SMOOTHERS[settings["smoothing"]](settings, fps)


CAUSAL_SMOOTHERS: dict[str, Callable[[dict, float], OneEuroFilter | NoFilter]] = {
    "one_euro": lambda settings, fps: OneEuroFilter(fps, settings["one_euro_min_cutoff"], settings["one_euro_beta"],
                                                    settings["one_euro_d_cutoff"]),
    "none": lambda settings, fps: NoFilter(),
}
