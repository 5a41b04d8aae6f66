"""The face's live driver: from one camera frame to the target's face proxy, causally.

It holds what a stream needs (FaceMesh in video mode, the online fit, the causal crop) and
returns a ``Drive`` per frame, or None when no face is in view. The pieces are the ones
`track` and `transfer` run over whole clips.
"""

from __future__ import annotations

import numpy as np
import torch

from reenact.drive import Drive, WarmUp, detection_frame
from reenact.face.crop import CausalCrop, crops_around, face_centers
from reenact.face.model import load_face_model
from reenact.face.online import WARMUP_FIT_FRAMES, DriverFace, OnlineFaceFit, warm_up, warm_up_frames
from reenact.face.proxy import FaceProxyRenderer
from reenact.face.retarget import parse_edits, render_retargeted, retarget_parameters
from reenact.face.tracker import FaceMeshDetector
from reenact.progress import info, native_stderr_silenced

FACE_WARMUP_SECONDS = 1.0     # of input with a face: what the driver's identity is fitted to


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
        self.last_vertices: torch.Tensor | None = None    # the last drive's mesh, for the rendered flow

    def start(self, fps: float, frame_size: tuple[int, int]) -> None:
        self.frame_size = frame_size
        self.detector.width, self.detector.height = frame_size
        self.crop = CausalCrop(fps, self.target["crop_size"], self.target["image_size"])

    @property
    def warming_up(self) -> str:
        """What the warm-up is doing, or "" once it is over."""
        if self.driver is not None:
            return ""
        return self.warm.status("the driver's face")

    def __call__(self, frame: np.ndarray, seconds: float) -> Drive | None:
        """``seconds``: when ``frame`` came, in the input's time."""
        with native_stderr_silenced():
            landmarks = self.detector(detection_frame(frame, self.target["track_config"]["detect_size"]))
        self.last_seen = landmarks is not None
        if landmarks is None:
            self.last_vertices = None
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
        proxies, self.last_vertices, flows = render_retargeted(self.renderer, retargeted, face.iris_offsets[None],
                                                               crop[None], self.target, self.last_vertices)
        return Drive(proxies[0], flows[0] if flows is not None else None, face_crop=crop, points=retargeted["landmarks"][0])

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
        crop = crops_around(face_centers(retargeted["landmarks"]), self.target["crop_size"], self.target["image_size"])[0]
        proxies = render_retargeted(self.renderer, retargeted, np.zeros((1, 2, 3)), crop[None], self.target)[0]
        return Drive(proxies[0], face_crop=crop)

    def close(self) -> None:
        self.detector.close()
