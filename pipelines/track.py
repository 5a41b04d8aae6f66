"""`reenact track`: video → subject folder (tracks, cropped frames, proxies, preview)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from reenact import subject as subject_files
from reenact.body import layout
from reenact.body import stage as body_stage
from reenact.config import TrackConfig, config_dict
from reenact.errors import ReenactError
from reenact.face import stage as face_stage
from reenact.files import atomic_dir, check_writable, sha256_file
from reenact.io import VideoInfo, iter_frames, probe_video
from reenact.progress import info, native_stderr_silenced
from reenact.subject import Subject

# Each mode tracks a clip (`track`) and writes its subject files (`write`).
MODES = {"body": body_stage, "face": face_stage}
# Settings that do not change what track writes, so they don't invalidate a finished folder.
# The mode is compared separately: "auto" accepts whichever mode the folder has.
NOT_IN_REUSE_KEY = ("video", "out", "device", "mode")
WHAT_IS_MISSING = {"body": "person", "face": "face"}


def run(config: TrackConfig) -> Path:
    # 1. Probe the video and decide where the subject folder goes.
    video = probe_video(config.video)
    out = Path(config.out) if config.out else Path.cwd() / Path(config.video).stem
    check_writable(out)
    # 2. Reuse a finished folder made from the same bytes with the same settings.
    source_sha256 = sha256_file(config.video)
    key = reuse_key(source_sha256, config)
    if finished_folder_matches(out, key, config.mode):
        info(f"{out}: up to date for {config.video}, reusing it")
        return out
    # 3. Pick the mode, then track the whole clip.
    mode = config.mode if config.mode != "auto" else detect_mode(video, config)
    tracks = MODES[mode].track(video, config)
    check_found(config.video, tracks.valid, config, mode)
    # 4. Write everything into a temporary folder that replaces `out` only when complete.
    with atomic_dir(out) as folder:
        mode_fields = MODES[mode].write(folder, video, tracks, config)
        meta = subject_meta(mode, video, source_sha256, tracks.valid, config, key) | mode_fields
        (folder / subject_files.SUBJECT_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    info(f"wrote {out}/ ({len(tracks.valid)} frames, {WHAT_IS_MISSING[mode]} found in {tracks.valid.mean():.1%})")
    return out


def reuse_key(source_sha256: str, config: TrackConfig) -> str:
    settings = {k: v for k, v in config_dict(config).items() if k not in NOT_IN_REUSE_KEY}
    payload = json.dumps({"source": source_sha256, "settings": settings, "schema": subject_files.SCHEMA_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def finished_folder_matches(out: Path, key: str, mode: str) -> bool:
    try:
        meta = Subject.load(out).meta
    except ReenactError:
        return False
    return meta.get("reuse_key") == key and mode in ("auto", meta["mode"])


def detect_mode(video: VideoInfo, config: TrackConfig) -> str:
    """Body when legs are visible in most of the first seconds, else face when a face is there."""
    from reenact.body.tracker import holistic_model

    frames = list(iter_frames(video, size=video.fit_within(config.detect_size), max_frames=int(3 * video.fps)))
    sampled = frames[:: max(1, len(frames) // 10)]
    knees = [layout.POSE["left_knee"], layout.POSE["right_knee"]]
    legs = faces = 0
    with native_stderr_silenced(), holistic_model() as model:
        for frame in sampled:
            result = model.process(frame)
            if result.pose_landmarks is not None:
                legs += max(result.pose_landmarks.landmark[k].visibility for k in knees) > 0.5
            faces += result.face_landmarks is not None
    mode = "body" if legs >= len(sampled) / 2 or faces < len(sampled) / 2 else "face"
    info(f"mode auto: chose {mode} (legs visible in {legs}/{len(sampled)} sampled frames, face in {faces})")
    return mode


def check_found(video_path: str, valid: np.ndarray, config: TrackConfig, mode: str) -> None:
    found = valid.mean() if len(valid) else 0.0
    if found < config.min_valid_fraction:
        what = WHAT_IS_MISSING[mode]
        raise ReenactError(f"{video_path}: no {what} found (a {what} was found in {found:.0%} of frames, "
                           f"{int(valid.sum())}/{len(valid)}; at least {config.min_valid_fraction:.0%} needed)")


def subject_meta(mode: str, video: VideoInfo, source_sha256: str, valid: np.ndarray, config: TrackConfig, key: str) -> dict:
    return {
        "schema": subject_files.SCHEMA, "schema_version": subject_files.SCHEMA_VERSION, "mode": mode,
        "fps": video.fps, "fps_fraction": video.fps_fraction, "frame_count": int(len(valid)),
        "valid_fraction": float(valid.mean()),
        "source": {"path": str(Path(config.video).resolve()), "sha256": source_sha256, "width": video.width,
                   "height": video.height, "rotation": video.rotation, "has_audio": video.has_audio,
                   "duration": video.duration},
        "resolution": config.resolution, "tools": subject_files.tool_versions(), "config": config_dict(config),
        "reuse_key": key,
    }
