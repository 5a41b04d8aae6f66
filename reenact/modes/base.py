"""What a mode is: the interface that the body and face modes fill in.

A mode covers a subject's whole life: `track` (``track``, ``write``), the target fields a
checkpoint carries (``target_fields``), training (``loss_regions``, ``enhancer_heads``), the
offline and live drivers (``retarget``, ``live_driver``), the stabiliser's settings, and eval's
mode-specific figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from reenact.drive import Drive
from reenact.errors import ReenactError
from reenact.stabilise import StabiliserSettings


@dataclass(frozen=True)
class Motion:
    """A driver's whole clip retargeted onto a target: one ``Drive`` per frame, and what eval
    measures the output against (``wanted``: model resolution → reenact.evaluation.cross.Retargeted)."""
    frame_count: int
    valid: np.ndarray                          # (T,) the driver was tracked
    drive: Callable[[int], Drive]              # frame t → its Drive, proxy at the subject's resolution
    wanted: Callable[[int], object]

    def drives(self):
        return (self.drive(t) for t in range(self.frame_count))


# What every checkpoint's ``target`` holds (reenact/resume.py writes it); each mode adds its ``target_keys``.
COMMON_TARGET_KEYS = ("subject", "subject_resolution", "fps", "source_size", "track_config")
# TrainConfig keys whose None means "the mode's": each mode sets them as class attributes.
TRAINING_DEFAULT_KEYS = ("real_previous_share", "shift_consistency_weight", "l1_shift")


class Mode:
    name: str
    target_keys: tuple[str, ...]               # what its ``target_fields`` adds to a checkpoint's target
    who: str                                   # what a frame must show: "person" or "face"
    stabiliser: StabiliserSettings
    real_previous_share: float                 # training's default (TrainConfig.real_previous_share)
    shift_consistency_weight: float            # training's default (TrainConfig.shift_consistency_weight)
    l1_shift: int                              # training's default (TrainConfig.l1_shift)
    has_expressions: bool                      # per-frame ARKit weights to export and --edit
    has_texture_coordinates: bool              # the proxy's channels 0 and 1 place each pixel on a surface
    pose_scale: str                            # what eval's pose distances are divided by
    region_grow: int                           # eval's masks: the proxy grown by resolution / this
    cross_note: str                            # eval's note on how cross-reenactment is measured

    def training_defaults(self) -> dict[str, float | int]:
        """The TrainConfig settings this mode chooses where a config leaves them None."""
        return {key: getattr(self, key) for key in TRAINING_DEFAULT_KEYS}

    # track
    def track(self, video, config):
        raise NotImplementedError

    def write(self, folder: Path, video, tracks, config) -> dict:
        raise NotImplementedError

    def check_found(self, video_path: str, valid: np.ndarray, min_valid_fraction: float) -> None:
        """Too few frames with a person or face is an error that names the video."""
        found = valid.mean() if len(valid) else 0.0
        if found < min_valid_fraction:
            raise ReenactError(f"{video_path}: no {self.who} found (a {self.who} was found in {found:.0%} of frames, "
                               f"{int(valid.sum())}/{len(valid)}; at least {min_valid_fraction:.0%} needed)")

    def check_target(self, target: dict, where: str) -> None:
        """A checkpoint's target must hold what the drivers read; an incomplete one is an error."""
        missing = [key for key in (*COMMON_TARGET_KEYS, *self.target_keys) if key not in target]
        if missing:
            raise ReenactError(f"{where}: the checkpoint's {self.name} target lacks {', '.join(missing)}; "
                               "train it again with this reenact")

    # train
    def target_fields(self, subject) -> dict:
        raise NotImplementedError

    def loss_regions(self, subject) -> np.ndarray:
        raise NotImplementedError

    def enhancer_heads(self, subject, resolution: int) -> np.ndarray | None:
        """(T, 3) head centres in model pixels and whether seen, for the face enhancer; None: no enhancer."""
        return None

    def footage_coverage(self, target: dict, resolution: int) -> np.ndarray | None:
        """(R, R) float: the share of each output pixel inside the target's video, where its crop
        reaches beyond it (the rest is black in every training frame); None: all of every pixel."""
        return None

    def padding(self, target: dict, resolution: int) -> np.ndarray | None:
        """(R, R) bool: the output pixels wholly past the target's video; None: there are none."""
        coverage = self.footage_coverage(target, resolution)
        return None if coverage is None or coverage.min() > 0 else coverage == 0

    def choose_reference(self, subject, training_frames: int):
        """A reference frame of the target that the translator sees warped to each pose; None: none."""
        return None

    def reference_warp(self, state: dict | None):
        """The reference a checkpoint stores (``choose_reference``'s ``state()``), ready to warp."""
        return None

    def model_proxies(self, subject, reference) -> np.ndarray:
        """(T, R, R, C) what the translator is conditioned on for each of the subject's frames (an array,
        or anything sliced like one along frames, as `reenact.data.load_clip` reads it)."""
        return subject.proxies()

    def own_flows(self, subject, frames: range) -> Iterator[np.ndarray]:
        """For each of the consecutive ``frames`` t, (R, R, 2) the rendered backward flow of the
        subject's own proxy of t to that of t - 1 (frame 0: of itself), at the subject's resolution:
        what the stabiliser follows on held-out frames. The geometry of each frame is made once."""
        raise NotImplementedError

    # transfer and live
    def check_options(self, edits: tuple[str, ...], paste_back: bool, target: dict, checkpoint: str) -> None:
        raise NotImplementedError

    def retarget(self, tracks, target: dict, edits: tuple[str, ...] = ()) -> Motion:
        raise NotImplementedError

    def live_driver(self, target: dict, edits: tuple[str, ...], device):
        raise NotImplementedError

    def live_tracking_differences(self, settings: dict) -> list[str]:
        """The target's tracking settings a live driver cannot follow, each with what it does instead."""
        return []

    # eval
    def conditioning_points(self, subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, K, 3) points that conditioned each frame, in model pixels, and (T,) the normalising length."""
        raise NotImplementedError

    def pose_features(self, subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """What retrieval compares, and which features are present."""
        raise NotImplementedError

    def tracks_to_arrays(self, tracks) -> dict[str, np.ndarray]:
        """A clip's tracks (what ``track`` returns) as arrays for a motion file (reenact/motion_file.py)."""
        raise NotImplementedError

    def tracks_from_arrays(self, arrays: dict[str, np.ndarray]):
        """The tracks a motion file's arrays hold."""
        raise NotImplementedError

    def track_generated(self, images: np.ndarray, upscale: int, progress, what: str) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, 2) points the tracker finds on (N, R, R, 3) frames enlarged ``upscale`` times (back in
        model pixels), and (N,) whether it found any; ``progress`` wraps the frame iterator, ``what``
        names the frames in warnings."""
        raise NotImplementedError

    def viewer_figures(self, frames: np.ndarray, points: np.ndarray, masks: np.ndarray):
        """reenact.evaluation.appearance.ViewerFigures against (N, R, R, 3) training frames, their
        (N, K, 3) conditioning points and (N, R, R) region masks."""
        raise NotImplementedError

    def cross_figures(self, detected: np.ndarray, found: np.ndarray, wanted, resolution: int) -> dict:
        """The mode's own cross-reenactment figures beyond pose-following."""
        return {}


def enlarged(images: np.ndarray, size: int):
    """Frames resized to ``size`` one at a time: the trackers want faces and bodies bigger than a
    small model's output."""
    import cv2

    return (cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC) for image in images)
