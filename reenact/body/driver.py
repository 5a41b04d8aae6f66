"""The body's live driver: from one camera frame to the target's skeleton proxy, causally.

Holistic, the causal smoothing the target was tracked with, Everybody Dance Now normalisation
with the source's ground statistics gathered over its first seconds in view, the skeleton.
Returns a ``Drive`` per frame, or None when nobody is in view.
"""

from __future__ import annotations

import contextlib

import numpy as np

from reenact.body.head import head_centers
from reenact.body.normalize import ground_stats
from reenact.body.retarget import normalize_into_crop
from reenact.body.skeleton import SkeletonRenderer
from reenact.body.smoothing import causal_smoother
from reenact.body.tracker import holistic_model, keypoints_from_result, person_found
from reenact.drive import Drive, WarmUp, detection_frame
from reenact.progress import native_stderr_silenced

BODY_WARMUP_SECONDS = 3.0     # of input with a person: what the ground statistics are gathered over


class BodyDriver:
    """Holistic, the target's smoothing run causally, Everybody Dance Now normalisation with the
    source's ground statistics gathered over its first seconds in view, the skeleton proxy (drawn
    by OpenCV, so on the CPU wherever `live` runs)."""

    def __init__(self, target: dict):
        self.target, self.min_confidence = target, target["track_config"]["min_confidence"]
        self.renderer = SkeletonRenderer(target["subject_resolution"])
        self.warm = WarmUp(BODY_WARMUP_SECONDS)
        self.ground: dict | None = None
        self.last_seen = False                 # a person in the last frame
        self.last_points: np.ndarray | None = None    # the last drive's skeleton, for the rendered flow
        self._stack = contextlib.ExitStack()
        with native_stderr_silenced():
            self.model = self._stack.enter_context(holistic_model())

    def start(self, fps: float, frame_size: tuple[int, int]) -> None:
        settings = self.target["track_config"]
        self.frame_size, self.scale = frame_size, max(frame_size)
        self.smooth = causal_smoother(settings, fps)

    @property
    def warming_up(self) -> str:
        if self.ground is not None and not self.warm.gathering:
            return ""
        return self.warm.status("the driver's pose statistics")

    def __call__(self, frame: np.ndarray, seconds: float) -> Drive | None:
        """``seconds``: when ``frame`` came, in the input's time."""
        with native_stderr_silenced():
            result = self.model.process(detection_frame(frame, self.target["track_config"]["detect_size"]))
        keypoints = keypoints_from_result(result, *self.frame_size)
        present = keypoints[:, 2] >= self.min_confidence
        keypoints[:, :2] = self.smooth(keypoints[:, :2] / self.scale, present) * self.scale
        self.last_seen = bool(person_found(keypoints, self.min_confidence))
        if not self.last_seen:
            self.last_points = None
            return None
        if self.warm.gather(keypoints, seconds):
            # Until the warm-up is over, the statistics of the frames so far: a rough start beats none.
            frames = np.stack(self.warm.frames)
            self.ground = ground_stats(frames, np.ones(len(frames), bool), self.min_confidence)
        if not (self.ground.get("hips") or self.ground.get("ankles")):
            return None
        in_crop = normalize_into_crop(keypoints[None], np.ones(1, bool), self.ground, self.target)
        centers, seen = head_centers(in_crop, self.min_confidence)
        flow = self.renderer.backward_flow(in_crop[0], self.last_points) if self.last_points is not None else None
        self.last_points = in_crop[0]
        return Drive(self.renderer.render(in_crop[0]), flow, head=np.array([*centers[0], seen[0]], np.float32),
                     points=in_crop[0])

    def rest(self) -> Drive:
        """An empty proxy: the target's background, or what the model paints for nobody."""
        resolution = self.target["subject_resolution"]
        return Drive(np.zeros((resolution, resolution, 3), np.uint8), head=np.zeros(3, np.float32))

    def close(self) -> None:
        self._stack.close()
