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

FACE_WARMUP_SECONDS = 1.0     # of input with a face: what the driver's identity is fitted to
BODY_WARMUP_SECONDS = 3.0     # of input with a person: what the ground statistics are gathered over


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

    def __init__(self, target: dict, edits: tuple[str, ...] = (), device: torch.device = torch.device("cpu")):
        self.target, self.edits = target, tuple(edits)
        parse_edits(self.edits, target["expression_names"])
        self.model = load_face_model()
        # On a GPU the proxy is drawn there: at 256 px it cost 39 ms a frame on one CPU thread, the
        # largest share of the face's per-frame work (FaceMesh 12 ms, the fit 20 ms).
        self.renderer = FaceProxyRenderer(self.model, target["subject_resolution"], device)
        self.detector = FaceMeshDetector((1, 1))
        # The warm-up's whole-clip fit runs Adam, and the first optimiser built imports torch's
        # compiler stack (1.7 s here): pay that now, not mid-stream.
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        self.warm = WarmUp(FACE_WARMUP_SECONDS, min_frames=WARMUP_FIT_FRAMES)
        self.driver: DriverFace | None = None
        self.fit: OnlineFaceFit | None = None
        self.last_seen = False                 # a face in the last frame (warm-up frames included)

    def start(self, fps: float, frame_size: tuple[int, int]) -> None:
        self.frame_size = frame_size
        self.detector.width, self.detector.height = frame_size
        self.crop = CausalCrop(fps, self.target["crop_size"])

    @property
    def warming_up(self) -> str:
        """What the warm-up is doing, or "" once it is over."""
        if self.driver is not None:
            return ""
        return self.warm.status("the driver's face")

    def __call__(self, frame: np.ndarray, seconds: float) -> Drive | None:
        """``seconds``: when ``frame`` came, in the input's time."""
        with native_stderr_silenced():
            landmarks = self.detector(frame)
        self.last_seen = landmarks is not None
        if landmarks is None:
            if self.fit is not None:
                self.fit.lose()
            return None
        if self.driver is None and self.warm.gather(landmarks, seconds):
            return None
        if self.driver is None:
            self.start_fit()
        face = self.fit.fit(landmarks)
        retargeted = retarget_parameters(face.expression[None], face.rotation[None], face.translation[None],
                                         (self.driver.mean_rotation, self.driver.mean_translation), self.target,
                                         self.edits, self.model)
        crop = self.crop(retargeted["landmarks"][0])
        proxy = render_retargeted(self.renderer, retargeted, face.iris_offsets[None], crop[None], self.target)[0]
        return Drive(proxy, face_crop=crop, points=retargeted["landmarks"][0])

    def start_fit(self) -> None:
        """Fit the warm-up's faces, then start the online fit from them.

        The fit takes a couple of seconds, during which the input's frames are dropped: a thread
        beside the stream was starved of the GIL by MediaPipe and took longer than a 6 s clip."""
        info(f"live: fitting the driver's face to {WARMUP_FIT_FRAMES} of its first {len(self.warm.frames)} frames")
        self.driver = warm_up(self.model, warm_up_frames(np.stack(self.warm.frames)), self.frame_size)
        self.fit = OnlineFaceFit(self.model, self.driver, self.frame_size)

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

    def __init__(self, target: dict, edits: tuple[str, ...] = (), device: torch.device = torch.device("cpu")):
        # ``device`` goes unused: OpenCV draws the skeleton (the drivers share one signature).
        self.target, self.min_confidence = target, target["track_config"]["min_confidence"]
        self.renderer = SkeletonRenderer(target["subject_resolution"])
        self.warm = WarmUp(BODY_WARMUP_SECONDS)
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

    @property
    def warming_up(self) -> str:
        if self.ground is not None and not self.warm.gathering:
            return ""
        return self.warm.status("the driver's pose statistics")

    def __call__(self, frame: np.ndarray, seconds: float) -> Drive | None:
        """``seconds``: when ``frame`` came, in the input's time."""
        with native_stderr_silenced():
            keypoints = keypoints_from_result(self.model.process(frame), *self.frame_size)
        present = keypoints[:, 2] >= self.min_confidence
        keypoints[:, :2] = self.smooth(keypoints[:, :2] / self.scale, present) * self.scale
        self.last_seen = bool(person_found(keypoints, self.min_confidence))
        if not self.last_seen:
            return None
        if self.warm.gather(keypoints, seconds):
            # Until the warm-up is over, the statistics of the frames so far: a rough start beats none.
            frames = np.stack(self.warm.frames)
            self.ground = ground_stats(frames, np.ones(len(frames), bool), self.min_confidence)
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
