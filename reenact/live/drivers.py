"""From one camera frame to the target's proxy, causally: what `reenact live` runs per frame.

Each driver holds the state a stream needs (the landmark detector in video mode, the online
fit or the One-Euro filter, the warm-up statistics) and returns, per frame, a ``Drive``: the
proxy at the subject's resolution plus what later steps need (the face crop in the target's
frame for paste-back, the head for the face enhancer), or None when nobody is in view. The
pieces are the ones `track` and `transfer` run over whole clips.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from reenact.body.head import head_centers
from reenact.body.normalize import ground_stats
from reenact.body.retarget import normalize_into_crop
from reenact.body.smoothing import OneEuroFilter
from reenact.body.tracker import holistic_model, keypoints_from_result, person_found
from reenact.face.crop import CausalCrop, crops_around, face_centers
from reenact.face.model import load_face_model
from reenact.face.online import WARMUP_FIT_FRAMES, DriverFace, OnlineFaceFit, warm_up, warm_up_frames
from reenact.face.retarget import parse_edits, render_retargeted, retarget_parameters
from reenact.face.tracker import FaceMeshDetector
from reenact.progress import info, native_stderr_silenced
from reenact.render.face import FaceProxyRenderer
from reenact.render.skeleton import SkeletonRenderer

FACE_WARMUP_SECONDS = 1.0     # frames with a face the driver's identity is fitted to
BODY_WARMUP_SECONDS = 3.0     # frames with a person the ground statistics are gathered over


@dataclass(frozen=True)
class Drive:
    proxy: np.ndarray                      # (R, R, C) uint8 at the subject's resolution
    face_crop: np.ndarray | None = None    # face: (x, y, size) in the target's frame
    head: np.ndarray | None = None         # body: (x, y, seen) in subject pixels
    points: np.ndarray | None = None       # the retargeted pose drawn: body (K, 3) keypoints in subject
                                           # pixels, face (468, 2) landmarks in the target's frame


class FaceDriver:
    """FaceMesh, the online fit (identity from the first second), retargeting, the face proxy.

    Built before the input opens (loading the models takes a while), then ``start``ed with the
    input's frame rate and frame size."""

    def __init__(self, target: dict, edits: tuple[str, ...] = ()):
        self.target, self.edits = target, tuple(edits)
        parse_edits(self.edits, target["expression_names"])
        self.model = load_face_model()
        self.renderer = FaceProxyRenderer(self.model, target["subject_resolution"])
        self.detector = FaceMeshDetector((1, 1))
        # The first optimiser imports torch's compiler stack (2.5 s here): pay that now, not mid-stream.
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
        self.seen: list[np.ndarray] = []
        self.driver: DriverFace | None = None
        self.fit: OnlineFaceFit | None = None
        self.last_seen = False                 # a face in the last frame (warm-up frames included)

    def start(self, fps: float, frame_size: tuple[int, int]) -> None:
        self.frame_size = frame_size
        self.detector.width, self.detector.height = frame_size
        self.warmup_frames = max(2, round(fps * FACE_WARMUP_SECONDS))
        self.crop = CausalCrop(fps, self.target["crop_size"])

    @property
    def warming_up(self) -> str:
        """What the warm-up is doing, or "" once it is over."""
        if self.driver is not None:
            return ""
        return f"gathering the driver's face: {len(self.seen)}/{self.warmup_frames} frames"

    def __call__(self, frame: np.ndarray) -> Drive | None:
        with native_stderr_silenced():
            landmarks = self.detector(frame)
        self.last_seen = landmarks is not None
        if landmarks is None:
            if self.fit is not None:
                self.fit.lose()
            return None
        if self.driver is None and not self.warmed_up(landmarks):
            return None
        face = self.fit.fit(landmarks)
        retargeted = retarget_parameters(face.expression[None], face.rotation[None], face.translation[None],
                                         (self.driver.mean_rotation, self.driver.mean_translation), self.target,
                                         self.edits, self.model)
        crop = self.crop(retargeted["landmarks"][0])
        proxy = render_retargeted(self.renderer, retargeted, face.iris_offsets[None], crop[None], self.target)[0]
        return Drive(proxy, face_crop=crop, points=retargeted["landmarks"][0])

    def warmed_up(self, landmarks: np.ndarray) -> bool:
        """Gather the first second's faces; once there are enough, fit them and start the online fit.

        The fit takes a couple of seconds, during which the input's frames are dropped: a thread
        beside the stream was starved of the GIL by MediaPipe and took longer than a 6 s clip."""
        self.seen.append(landmarks)
        if len(self.seen) < self.warmup_frames:
            return False
        info(f"live: fitting the driver's face to {WARMUP_FIT_FRAMES} of its first {len(self.seen)} frames")
        self.driver = warm_up(self.model, warm_up_frames(np.stack(self.seen)), self.frame_size)
        self.fit = OnlineFaceFit(self.model, self.driver, self.frame_size)
        return True

    def rest(self) -> Drive:
        """The target's own mean pose with a neutral face: what shows before the driver does."""
        rotation, translation = np.array(self.target["mean_rotation"]), np.array(self.target["mean_translation"])
        retargeted = retarget_parameters(np.zeros((1, len(self.model.expression_names))), rotation[None], translation[None],
                                         (rotation, translation), self.target, (), self.model)
        crop = crops_around(face_centers(retargeted["landmarks"]), self.target["crop_size"])[0]
        proxy = render_retargeted(self.renderer, retargeted, np.zeros((1, 2, 3)), crop[None], self.target)[0]
        return Drive(proxy, face_crop=crop)

    def close(self) -> None:
        self.detector.close()


class BodyDriver:
    """Holistic, One-Euro smoothing, Everybody Dance Now normalisation with the source's ground
    statistics gathered over its first seconds in view, the skeleton proxy."""

    def __init__(self, target: dict, edits: tuple[str, ...] = ()):
        self.target, self.min_confidence = target, target["track_config"]["min_confidence"]
        self.renderer = SkeletonRenderer(target["subject_resolution"])
        self.seen: list[np.ndarray] = []
        self.ground: dict | None = None
        self.last_seen = False                 # a person in the last frame
        self._stack = contextlib.ExitStack()
        with native_stderr_silenced():
            self.model = self._stack.enter_context(holistic_model())

    def start(self, fps: float, frame_size: tuple[int, int]) -> None:
        settings = self.target["track_config"]
        self.frame_size, self.scale = frame_size, max(frame_size)
        self.smooth = OneEuroFilter(fps, settings["one_euro_min_cutoff"], settings["one_euro_beta"],
                                    settings["one_euro_d_cutoff"])
        self.warmup_frames = max(2, round(fps * BODY_WARMUP_SECONDS))

    @property
    def warming_up(self) -> str:
        if len(self.seen) >= self.warmup_frames:
            return ""
        return f"gathering the driver's pose statistics: {len(self.seen)}/{self.warmup_frames} frames"

    def __call__(self, frame: np.ndarray) -> Drive | None:
        with native_stderr_silenced():
            keypoints = keypoints_from_result(self.model.process(frame), *self.frame_size)
        present = keypoints[:, 2] >= self.min_confidence
        keypoints[:, :2] = self.smooth(keypoints[:, :2] / self.scale, present) * self.scale
        self.last_seen = bool(person_found(keypoints, self.min_confidence))
        if not self.last_seen:
            return None
        if len(self.seen) < self.warmup_frames:
            self.seen.append(keypoints)
            # Until the warm-up is over, the statistics of the frames so far: a rough start beats none.
            self.ground = ground_stats(np.stack(self.seen), np.ones(len(self.seen), bool), self.min_confidence)
        if not (self.ground.get("hips") or self.ground.get("ankles")):
            return None
        in_crop = normalize_into_crop(keypoints[None], np.ones(1, bool), self.ground, self.target)
        centers, seen = head_centers(in_crop, self.min_confidence)
        return Drive(self.renderer.render(in_crop[0]), head=np.array([*centers[0], seen[0]], np.float32), points=in_crop[0])

    def rest(self) -> Drive:
        """An empty proxy: the target's background, or what the model paints for nobody."""
        resolution = self.target["subject_resolution"]
        return Drive(np.zeros((resolution, resolution, 3), np.uint8), head=np.zeros(3, np.float32))

    def close(self) -> None:
        self._stack.close()


DRIVERS = {"face": FaceDriver, "body": BodyDriver}
