"""What a driver gives the engine for each frame it drives (``Drive``), and the warm-up a live
driver gathers before it can retarget (``WarmUp``)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Drive:
    proxy: np.ndarray | None               # (R, R, C) uint8 at the subject's resolution (None: a subject's
                                           # own frame in eval, whose model proxy comes beside it)
    flow: np.ndarray | None = None         # (R, R, 2) float32: where each proxy pixel was in the previous
                                           # drive's proxy, rendered from the geometry (None: the stabiliser estimates it)
    face_crop: np.ndarray | None = None    # face: (x, y, size) in the target's frame
    head: np.ndarray | None = None         # body: (x, y, seen) in subject pixels
    points: np.ndarray | None = None       # the retargeted pose drawn: body (K, 3) keypoints in subject
                                           # pixels, face (468, 2) landmarks in the target's frame


class WarmUp:
    """The frames of the first ``seconds`` of input from the first one with the driver in view,
    and ``min_frames`` at least. Counted in the input's time, not in frames processed, so a
    machine that drops more frames gathers over the same stretch of the driver's motion; the
    minimum keeps a slow start (MediaPipe's first frames take a second) from leaving two frames."""

    def __init__(self, seconds: float, min_frames: int = 10):
        self.seconds, self.min_frames, self.first, self.elapsed = seconds, min_frames, None, 0.0
        self.frames: list[np.ndarray] = []

    def gather(self, item: np.ndarray, seconds: float) -> bool:
        """Keep ``item``, seen at ``seconds`` into the input, while the warm-up lasts; whether it did."""
        self.first = seconds if self.first is None else self.first
        self.elapsed = seconds - self.first
        if self.gathering:
            self.frames.append(item)
            return True
        return False

    @property
    def gathering(self) -> bool:
        return self.elapsed < self.seconds or len(self.frames) < self.min_frames

    def status(self, what: str) -> str:
        return f"gathering {what}: {min(self.elapsed, self.seconds):.1f}/{self.seconds:g} s, {len(self.frames)} frames"


class RecordedDriver:
    """`live --input FILE` for a file tracked before: each frame's drive comes from its motion file's
    whole-clip tracks, retargeted as `transfer` does (``motion``, a ``reenact.modes.base.Motion``),
    looked up by the frame's time. Nothing is tracked live, so there is no warm-up."""

    warming_up = ""

    def __init__(self, motion):
        self.motion, self.fps, self.last_seen = motion, None, False

    def start(self, fps: float, frame_size: tuple[int, int]) -> None:
        self.fps = fps

    def __call__(self, frame: np.ndarray, seconds: float) -> Drive | None:
        t = int(round(seconds * self.fps))
        self.last_seen = t < self.motion.frame_count and bool(self.motion.valid[t])
        return self.motion.drive(t) if self.last_seen else None

    def rest(self) -> Drive:
        """The clip's first tracked pose: what shows before the first frame is translated."""
        return self.motion.drive(int(np.argmax(self.motion.valid)))

    def close(self) -> None:
        pass


def detection_frame(frame: np.ndarray, detect_size: int) -> np.ndarray:
    """``frame`` shrunk to fit ``detect_size`` on its long side, as `track` shows the tracker a clip;
    the trackers give points relative to the frame, so they come back in the original's pixels."""
    height, width = frame.shape[:2]
    if max(height, width) <= detect_size:
        return frame
    scale = detect_size / max(height, width)
    size = (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
