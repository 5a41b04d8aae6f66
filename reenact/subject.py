"""The subject folder: the versioned files through which track, train and transfer talk.

    subject.json   metadata, the crop, pose-normalisation statistics, tool versions, config
    tracks.npz     valid (T,) and the mode's tracks: body keypoints, or face landmarks and the fit
    frames.npz     (T, R, R, 3) uint8 cropped frames at the training resolution R, a PNG stack
    proxies.npz    (T, R, R, C) uint8 conditioning images, a PNG stack: the skeleton (C = 3) or the
                   face's correspondence image and eye-gaze map (C = 4)
                   (version 1 folders hold both as raw .npy arrays; they still load)
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
SCHEMA_VERSION = 2           # 2: frames and proxies as PNG stacks; 1: raw .npy arrays (still read)
READABLE_VERSIONS = (1, 2)
SUBJECT_JSON = "subject.json"
TRACKS = "tracks.npz"
FRAMES = "frames.npz"
PROXIES = "proxies.npz"
IMAGE_FILES = {1: ("frames.npy", "proxies.npy"), 2: (FRAMES, PROXIES)}
PNG_LEVEL = 3                # zlib level: 3 wrote 300 frames of 128² in 0.36 s, 1 was no smaller
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
        if meta.get("schema") != SCHEMA or meta.get("schema_version") not in READABLE_VERSIONS:
            raise ReenactError(f"{meta_path}: unsupported subject format {meta.get('schema')}/{meta.get('schema_version')} "
                               f"(this reenact reads {SCHEMA} versions {', '.join(map(str, READABLE_VERSIONS))})")
        from reenact.modes import MODES

        if meta.get("mode") not in MODES:
            raise ReenactError(f"{meta_path}: unknown mode {meta.get('mode')!r} (this reenact knows {', '.join(MODES)})")
        for name in (TRACKS, *IMAGE_FILES[meta["schema_version"]]):
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
        """(T, R, R, 3) uint8, decoded once per Subject."""
        return self._images[0]

    def proxies(self) -> np.ndarray:
        """(T, R, R, C) uint8, decoded once per Subject."""
        return self._images[1]

    @cached_property
    def _images(self) -> tuple[np.ndarray, np.ndarray]:
        frames, proxies = (self.root / name for name in IMAGE_FILES[self.meta["schema_version"]])
        if self.meta["schema_version"] == 1:
            return np.load(frames, mmap_mode="r"), np.load(proxies, mmap_mode="r")
        return read_images(frames), read_images(proxies)

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


def write_images(path: Path, frames, count: int, video_path: str) -> None:
    """``count`` uint8 images as a PNG stack: one .npz holding ``png`` (the PNG files end to end, uint8),
    ``ends`` (T,) where each ends and ``shape`` (T, R, R, C). Lossless, and a fraction of the raw
    arrays (PNG's filters suit the flat proxies best). ``frames`` must give exactly ``count``."""
    blobs, shape = [], None
    for frame in frames:
        if len(blobs) == count:
            raise ReenactError(f"{video_path}: decoding gave more than {count} frames on a later pass, {count} on the first")
        ok, blob = cv2.imencode(".png", np.ascontiguousarray(frame), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
        blobs.append(blob.ravel())
        shape = frame.shape
    if len(blobs) != count:
        raise ReenactError(f"{video_path}: decoding gave {len(blobs)} frames on a later pass, {count} on the first")
    with open(path, "wb") as file:
        np.savez(file, png=np.concatenate(blobs) if blobs else np.zeros(0, np.uint8),
                 ends=np.cumsum([blob.size for blob in blobs], dtype=np.int64), shape=np.array([count, *(shape or ())]))


def read_images(path: Path) -> np.ndarray:
    """A PNG stack (write_images) as one (T, R, R, C) uint8 array."""
    with np.load(path, allow_pickle=False) as stack:
        png, ends, shape = stack["png"], stack["ends"], tuple(int(v) for v in stack["shape"])
    images = np.empty(shape, np.uint8)
    for t, (start, end) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends)):
        images[t] = cv2.imdecode(png[start:end], cv2.IMREAD_UNCHANGED).reshape(shape[1:])
    return images


def open_images_v1(path: Path, count: int, resolution: int, channels: int) -> np.ndarray:
    """A version 1 folder's (count, R, R, channels) uint8 .npy memmap (benchmarks/gpu_validate.py
    writes its 9,000-frame synthetic subject this way: encoding that much noise as PNG is slow)."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, resolution, resolution, channels))


def tool_versions() -> dict[str, str]:
    import cv2
    import mediapipe
    import torch

    import reenact

    return {"reenact": reenact.__version__, "python": platform.python_version(), "numpy": np.__version__,
            "opencv": cv2.__version__, "mediapipe": mediapipe.__version__, "torch": torch.__version__}
