"""A driver's motion, tracked once: the whole-clip tracks of a video, saved as a motion file that
`transfer` and `eval` reuse instead of tracking the same driver again.

A motion file is ``<cache>/motion/<video stem>-<key>.npz`` (the cache is ``$REENACT_CACHE``, else
``~/.cache/reenact``). The key is the SHA-256 of the video's bytes, the mode and the settings that
change what tracking finds (MOTION_SETTINGS), so another target tracked with the same settings
reuses it, and a changed video or setting never does. The file holds the mode's tracks as arrays
(Mode.tracks_to_arrays) and ``motion_schema``; docs/overview.md describes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from reenact.config import TrackConfig, config_dict
from reenact.errors import ReenactError
from reenact.files import atomic_path, sha256_file

MOTION_SCHEMA = 1
# What changes the tracks a video gives (not where they are written, at what size frames are stored,
# nor how many processes track).
MOTION_SETTINGS = ("detect_size", "min_confidence", "max_gap_seconds", "largest_person", "smoothing", "face_landmarks",
                   "one_euro_min_cutoff", "one_euro_beta", "one_euro_d_cutoff")


def cache_folder() -> Path:
    return Path(os.environ.get("REENACT_CACHE") or Path.home() / ".cache" / "reenact")


def motion_path(video: str | os.PathLike, mode_name: str, config: TrackConfig) -> Path:
    """Where the motion file of ``video`` tracked in ``mode_name`` with ``config``'s settings lives."""
    settings = {name: value for name, value in config_dict(config).items() if name in MOTION_SETTINGS}
    payload = json.dumps({"video": sha256_file(video), "mode": mode_name, "settings": settings, "schema": MOTION_SCHEMA},
                         sort_keys=True)
    key = hashlib.sha256(payload.encode()).hexdigest()[:20]
    return cache_folder() / "motion" / f"{Path(video).stem}-{key}.npz"


def load_motion(path: Path, mode) -> object | None:
    """The tracks in ``path``, or None when there is none (or it is from another schema, or unreadable:
    then it is tracked again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = dict(stored)
    except (OSError, ValueError, EOFError):
        return None
    if int(arrays.pop("motion_schema", -1)) != MOTION_SCHEMA:
        return None
    return mode.tracks_from_arrays(arrays)


def load_or_track(video_path: str, video, mode, config: TrackConfig) -> tuple[object, Path, str]:
    """A driver's tracks: from its motion file when there is a readable one, else tracked and saved
    there (replacing an unreadable or outdated file); checked for enough frames either way. Returns
    the tracks, the motion file's path, and "reused", "saved" or "not saved"."""
    path = motion_path(video_path, mode.name, config)
    tracks = load_motion(path, mode)
    if tracks is not None:
        mode.check_found(video_path, tracks.valid, config.min_valid_fraction)
        return tracks, path, "reused"
    tracks = mode.track(video, config)
    mode.check_found(video_path, tracks.valid, config.min_valid_fraction)
    return tracks, path, "saved" if save_motion(path, mode, tracks) else "not saved"


def save_motion(path: Path, mode, tracks) -> bool:
    """Write the motion file atomically; whether it was. A cache that can't be written is no reason
    to stop."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.savez_compressed(file, motion_schema=np.int32(MOTION_SCHEMA), **mode.tracks_to_arrays(tracks))
        return True
    except (OSError, ReenactError) as error:
        from reenact.progress import warn

        warn(f"{path}: the motion file could not be written ({error}); the driver will be tracked again next time")
        return False
