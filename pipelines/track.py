"""`reenact track`: video → subject folder (tracks, cropped frames, proxies, preview)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from reenact import subject as subject_files
from reenact.config import TrackConfig, config_dict
from reenact.errors import ReenactError
from reenact.files import atomic_dir, check_writable, sha256_file, strict_json
from reenact.io import VideoInfo, probe_video
from reenact.modes import MODES, Mode, detect_mode
from reenact.motion_file import load_or_track
from reenact.progress import info
from reenact.subject import Subject

# Settings that do not change what track writes, so they don't invalidate a finished folder.
NOT_IN_REUSE_KEY = ("video", "out", "device", "mode", "workers", "motion_only")


def run(config: TrackConfig) -> Path:
    # 1. Probe the video and decide where the subject folder goes (or, for a driver, its motion file).
    video = probe_video(config.video)
    if config.motion_only:
        return write_motion_only(video, config)
    out = Path(config.out) if config.out else Path.cwd() / Path(config.video).stem
    check_writable(out)
    # 2. Reuse a finished folder made from the same bytes with the same settings.
    source_sha256 = sha256_file(config.video)
    key = reuse_key(source_sha256, config)
    if finished_folder_matches(out, key, config.mode):
        info(f"{out}: up to date for {config.video}, reusing it")
        return out
    # 3. Pick the mode, then track the whole clip.
    mode = MODES[config.mode] if config.mode in MODES else detect_mode(video, config)
    started = time.perf_counter()
    tracks = mode.track(video, config)
    timings = tracking_timings(len(tracks.valid), time.perf_counter() - started, tracks)
    mode.check_found(config.video, tracks.valid, config.min_valid_fraction)
    # 4. Write everything into a temporary folder that replaces `out` only when complete.
    with atomic_dir(out) as folder:
        mode_fields = mode.write(folder, video, tracks, config)
        meta = subject_meta(mode, video, source_sha256, tracks.valid, config, key) | mode_fields | {"timings": timings}
        (folder / subject_files.SUBJECT_JSON).write_text(strict_json(meta, indent=2) + "\n")
    info(f"wrote {out}/ ({len(tracks.valid)} frames, {mode.who} found in {tracks.valid.mean():.1%})")
    return out


def write_motion_only(video: VideoInfo, config: TrackConfig) -> Path:
    """A driver's motion file, made on purpose: `transfer` and `eval` find it when the target was
    tracked with the same tracking settings (reenact/motion_file.py)."""
    mode = MODES[config.mode] if config.mode in MODES else detect_mode(video, config)
    tracks, path, how = load_or_track(config.video, video, mode, config)
    if how == "reused":
        info(f"{path}: up to date for {config.video}, reusing it")
    elif how == "saved":
        info(f"wrote {path} ({len(tracks.valid)} frames, {mode.who} found in {tracks.valid.mean():.1%}); "
             "transfer and eval reuse it for this driver")
    return path


def reuse_key(source_sha256: str, config: TrackConfig) -> str:
    settings = {k: v for k, v in config_dict(config).items() if k not in NOT_IN_REUSE_KEY}
    payload = json.dumps({"source": source_sha256, "settings": settings, "schema": subject_files.SCHEMA_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def finished_folder_matches(out: Path, key: str, mode: str) -> bool:
    """``mode`` is the config's: "auto" accepts whichever mode the folder has."""
    try:
        meta = Subject.load(out).meta
    except ReenactError:
        return False
    return meta.get("reuse_key") == key and (mode not in MODES or MODES[mode] is MODES.get(meta["mode"]))


def tracking_timings(frames: int, seconds: float, tracks) -> dict:
    """How fast tracking went, for benchmarks: the whole of it, and the face fit where there was one."""
    timings = {"frames": frames, "tracking_seconds": round(seconds, 3), "tracking_fps": round(frames / seconds, 2)}
    fitting = getattr(tracks, "fitting_seconds", None)
    if fitting:
        timings |= {"fitting_seconds": round(fitting, 3), "fitting_fps": round(frames / fitting, 2)}
    return timings


def subject_meta(mode: Mode, video: VideoInfo, source_sha256: str, valid: np.ndarray, config: TrackConfig, key: str) -> dict:
    return {
        "schema": subject_files.SCHEMA, "schema_version": subject_files.SCHEMA_VERSION, "mode": mode.name,
        "fps": video.fps, "fps_fraction": video.fps_fraction, "frame_count": int(len(valid)),
        "valid_fraction": float(valid.mean()),
        "source": {"path": str(Path(config.video).resolve()), "sha256": source_sha256, "width": video.width,
                   "height": video.height, "rotation": video.rotation, "has_audio": video.has_audio,
                   "duration": video.duration},
        "resolution": config.resolution, "tools": subject_files.tool_versions(), "config": config_dict(config),
        "reuse_key": key,
    }
