"""The subject folder: the versioned files through which track, train and transfer talk.

    subject.json   metadata, the crop, pose-normalisation statistics, tool versions, config
    tracks.npz     valid (T,) and the mode's tracks: body keypoints, or face landmarks and the fit
    frames.npy     (T, R, R, 3) uint8 cropped frames at the training resolution R
    proxies.npy    (T, R, R, C) uint8 conditioning images: the skeleton (C = 3) or the face's
                   correspondence image and eye-gaze map (C = 4)
    preview.mp4    the tracked skeleton over the footage, for people to look at
    background.png bodies from a still camera: the scene without the person (R, R) RGB

See docs/overview.md for the field-by-field description.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from reenact.errors import ReenactError

SCHEMA = "reenact.subject"
SCHEMA_VERSION = 1
SUBJECT_JSON = "subject.json"
TRACKS = "tracks.npz"
FRAMES = "frames.npy"
PROXIES = "proxies.npy"
PREVIEW = "preview.mp4"
BACKGROUND = "background.png"


@dataclass(frozen=True)
class Subject:
    root: Path
    meta: dict

    @classmethod
    def load(cls, folder: str | Path) -> "Subject":
        root = Path(folder)
        meta_path = root / SUBJECT_JSON
        if not root.is_dir():
            raise ReenactError(f"{root}: no such subject folder (make one with `reenact track VIDEO`)")
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise ReenactError(f"{root}: not a subject folder (no {SUBJECT_JSON})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ReenactError(f"{meta_path}: corrupt ({error})") from None
        if meta.get("schema") != SCHEMA or meta.get("schema_version") != SCHEMA_VERSION:
            raise ReenactError(f"{meta_path}: unsupported subject format "
                               f"{meta.get('schema')}/{meta.get('schema_version')} (expected {SCHEMA}/{SCHEMA_VERSION})")
        from reenact.modes import MODES

        if meta.get("mode") not in MODES:
            raise ReenactError(f"{meta_path}: unknown mode {meta.get('mode')!r} (this reenact knows {', '.join(MODES)})")
        for name in (TRACKS, FRAMES, PROXIES):
            if not (root / name).is_file():
                raise ReenactError(f"{root}: incomplete subject folder, {name} is missing")
        return cls(root, meta)

    @property
    def mode(self):
        """The subject's ``reenact.modes.Mode``."""
        from reenact.modes import MODES

        return MODES[self.meta["mode"]]

    @property
    def resolution(self) -> int:
        return int(self.meta["resolution"])

    @cached_property
    def tracks(self) -> dict[str, np.ndarray]:
        with np.load(self.root / TRACKS, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def frames(self) -> np.ndarray:
        return np.load(self.root / FRAMES, mmap_mode="r")

    def proxies(self) -> np.ndarray:
        return np.load(self.root / PROXIES, mmap_mode="r")

    def background(self) -> np.ndarray | None:
        """(R, R, 3) uint8 RGB background plate, or None (faces, a moving camera, an older subject)."""
        name = self.meta.get("background", {}).get("file")
        if not name:
            return None
        image = cv2.imread(str(self.root / name), cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != (self.resolution, self.resolution):
            raise ReenactError(f"{self.root / name}: unreadable or not {self.resolution}×{self.resolution}")
        return image[..., ::-1].copy()


def save_tracks(path: Path, **arrays: np.ndarray) -> None:
    np.savez_compressed(path, schema_version=np.int32(SCHEMA_VERSION), **arrays)


def open_images(path: Path, count: int, resolution: int, channels: int) -> np.ndarray:
    """A (count, R, R, channels) uint8 .npy memmap to fill frame by frame."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, resolution, resolution, channels))


def fill_images(images: np.ndarray, frames, video_path: str) -> None:
    """Write an iterable of frames into a memmap; the iterable must give exactly as many."""
    written = 0
    for written, frame in enumerate(frames, start=1):
        if written > len(images):
            break
        images[written - 1] = frame
    if written != len(images):
        raise ReenactError(f"{video_path}: decoding gave {written} frames on a later pass, {len(images)} on the first")
    images.flush()


def tool_versions() -> dict[str, str]:
    import cv2
    import mediapipe
    import torch

    import reenact

    return {"reenact": reenact.__version__, "python": platform.python_version(), "numpy": np.__version__,
            "opencv": cv2.__version__, "mediapipe": mediapipe.__version__, "torch": torch.__version__}
