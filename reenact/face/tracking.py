"""Face tracking for a clip: FaceMesh landmarks (and 2D-FAN's, when chosen), the whole-clip
model fit, gaze, and crops."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from reenact.chunked_tracking import Chunk, track_in_chunks
from reenact.face.crop import face_crops
from reenact.face.fan import face_boxes, fan_weights, track_ibug68
from reenact.face.fitting import FaceFit, fit_clip
from reenact.face.gaze import eye_look_weights, gaze_angles, raw_iris_offsets
from reenact.face.model import NUM_LANDMARKS, load_face_model
from reenact.face.tracker import detect_faces, warn_crowded
from reenact.io import VideoInfo, iter_frames
from reenact.progress import info, with_progress

# The fit's targets per landmark backend: the layout reenact/face/fitting.py fits.
FIT_LAYOUTS = {"mediapipe": "mediapipe", "face_alignment": "ibug68"}


@dataclass
class FaceTracks:
    valid: np.ndarray              # (T,)
    landmarks: np.ndarray          # (T, 478, 3) detections, source pixels
    fit: FaceFit
    expression: np.ndarray         # (T, 53) fitted weights with eyeLook* from the irises
    gaze: np.ndarray               # (T, 2, 2) degrees, [R, L] × [inward yaw, upward pitch]
    iris_offsets: np.ndarray       # (T, 2, 3) iris (inward, up, radius) in eye widths, raw
    crops: np.ndarray              # (T, 3) x, y, size in source pixels
    image_size: tuple[int, int]
    fps: float
    landmarks68: np.ndarray | None = None   # (T, 68, 2) 2D-FAN detections, source pixels, when used
    fitting_seconds: float = 0.0            # how long the face model's fit took

    def fitted_landmarks(self) -> np.ndarray:
        """(T, 478, 2): the fit's projection of the 468 points, then the 10 detected iris points."""
        return np.concatenate([self.fit.fitted_landmarks, self.landmarks[:, NUM_LANDMARKS:, :2]], axis=1)

    def to_motion_arrays(self, expression_names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Everything from_motion_arrays needs to rebuild these tracks (a driver's motion file)."""
        return {**self.to_arrays(expression_names), "fit_expression": self.fit.expression.astype(np.float32),
                "fps": np.float64(self.fps), "fitting_seconds": np.float64(self.fitting_seconds)}

    @classmethod
    def from_motion_arrays(cls, arrays: dict[str, np.ndarray]) -> "FaceTracks":
        fitted = arrays["fitted_landmarks"][:, :NUM_LANDMARKS]
        fit = FaceFit(arrays["identity"], arrays["fit_expression"], arrays["rotation"], arrays["translation"],
                      float(arrays["focal"]), fitted, arrays["fit_error"])
        return cls(arrays["valid"], arrays["landmarks"], fit, arrays["expression"], arrays["gaze"], arrays["iris_offsets"],
                   arrays["crops"], tuple(int(v) for v in arrays["image_size"]), float(arrays["fps"]),
                   arrays.get("landmarks68"), float(arrays["fitting_seconds"]))

    def to_arrays(self, expression_names: tuple[str, ...]) -> dict[str, np.ndarray]:
        return {
            "valid": self.valid, "landmarks": self.landmarks.astype(np.float32),
            "fitted_landmarks": self.fitted_landmarks().astype(np.float32),
            "expression": self.expression.astype(np.float32), "expression_names": np.array(expression_names),
            "identity": self.fit.identity.astype(np.float32), "rotation": self.fit.rotation.astype(np.float32),
            "translation": self.fit.translation.astype(np.float32), "focal": np.float32(self.fit.focal),
            "gaze": self.gaze.astype(np.float32), "iris_offsets": self.iris_offsets.astype(np.float32),
            "crops": self.crops.astype(np.int64), "fit_error": self.fit.error.astype(np.float32),
            "image_size": np.array(self.image_size),
            **({"landmarks68": self.landmarks68.astype(np.float32)} if self.landmarks68 is not None else {}),
        }


def track_face_clip(video: VideoInfo, detect_size: tuple[int, int], device: torch.device,
                    crop_size: int | None = None, backend: str = "mediapipe", workers: int = 0) -> FaceTracks:
    """Detect, fit and frame a clip. ``crop_size`` fixes the crop side (transfer uses the target's);
    ``backend`` picks the landmarks the fit targets (FIT_LAYOUTS); ``workers`` run FaceMesh over
    chunks of the clip (chunked_tracking; 0: one per core)."""
    if backend == "face_alignment":
        fan_weights()          # before the long FaceMesh pass, not after it
    start = time.perf_counter()
    detected = track_in_chunks(track_face_chunk, video, detect_size, {}, workers, "tracking face")
    landmarks, valid = detected["landmarks"], detected["found"]
    seconds = time.perf_counter() - start
    warn_crowded(video.path, detected["counts"].get("crowded", 0), len(valid))
    info(f"tracked {len(landmarks)} frames in {seconds:.1f} s ({len(landmarks) / max(seconds, 1e-9):.1f} frames/s), "
         f"face found in {valid.mean() if len(valid) else 0:.1%}")
    if not valid.any():
        return FaceTracks(valid, landmarks, None, None, None, None, None, (video.width, video.height), video.fps)
    landmarks68 = None
    if backend == "face_alignment":
        frames = with_progress(iter_frames(video, size=detect_size), "2D-FAN landmarks", video.frame_count)
        landmarks68 = track_ibug68(frames, face_boxes(landmarks), valid, detect_size[0] / video.width, device)
    model = load_face_model()
    start = time.perf_counter()
    fit = fit_clip(model, landmarks if landmarks68 is None else landmarks68, valid, (video.width, video.height),
                   device=device, layout_name=FIT_LAYOUTS[backend])
    seconds = time.perf_counter() - start
    info(f"fitted the face model in {seconds:.1f} s ({len(landmarks) / seconds:.1f} frames/s), "
         f"median error {np.median(fit.error[valid]):.4f} of the inter-ocular distance")
    landmarks = fill_missing(landmarks, valid)
    expression = fit.expression.copy()
    for name, weights in eye_look_weights(landmarks, model.expression_names).items():
        expression[:, model.expression_index(name)] = weights
    crops = face_crops(landmarks, valid, video.fps, (video.width, video.height), size=crop_size)
    return FaceTracks(valid, landmarks, fit, expression, gaze_angles(landmarks), raw_iris_offsets(landmarks),
                      crops, (video.width, video.height), video.fps, landmarks68, seconds)


def track_face_chunk(frames, video: VideoInfo, chunk: Chunk, options: dict) -> dict:
    """chunked_tracking's tracker for faces: FaceMesh's landmarks and whether it found a face."""
    landmarks, found, crowded = detect_faces(frames, (video.width, video.height), count_from=chunk.warmup)
    return {"landmarks": landmarks, "found": found, "counts": {"crowded": crowded}}


def fill_missing(landmarks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Frames without a detection take the nearest detected frame's landmarks (for gaze and crops)."""
    detected = np.flatnonzero(valid)
    after = np.searchsorted(detected, np.arange(len(valid))).clip(max=len(detected) - 1)
    before = (after - 1).clip(min=0)
    closer_before = np.abs(detected[before] - np.arange(len(valid))) < np.abs(detected[after] - np.arange(len(valid)))
    return landmarks[np.where(closer_before, detected[before], detected[after])]
