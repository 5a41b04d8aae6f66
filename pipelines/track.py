"""`reenact track`: video → subject folder (tracks, cropped frames, proxies, preview)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from reenact.body import layout
from reenact.body.crop import Crop, subject_crop
from reenact.body.normalize import ground_stats
from reenact.body.smoothing import SMOOTHERS, fill_short_gaps
from reenact.body.tracker import track_body
from reenact.config import TrackConfig, config_dict
from reenact.errors import ReenactError
from reenact.files import atomic_dir, sha256_file
from reenact.io import VideoInfo, VideoWriter, iter_frames, probe_video
from reenact.progress import info, native_stderr_silenced, progress_task, with_progress
from reenact.render.skeleton import SkeletonRenderer
from reenact import subject as subject_files
from reenact.subject import Subject

# Settings that do not change what track writes, so they don't invalidate a finished folder.
# The mode is compared separately: "auto" accepts whichever mode the folder has.
NOT_IN_REUSE_KEY = ("video", "out", "device", "mode")


def run(config: TrackConfig) -> Path:
    # 1. Probe the video and decide where the subject folder goes.
    video = probe_video(config.video)
    out = Path(config.out) if config.out else Path.cwd() / Path(config.video).stem
    # 2. Reuse a finished folder made from the same bytes with the same settings.
    source_sha256 = sha256_file(config.video)
    key = reuse_key(source_sha256, config)
    if finished_folder_matches(out, key, config.mode):
        info(f"{out}: up to date for {config.video}, reusing it")
        return out
    # 3. Pick the mode: body or face.
    mode = config.mode if config.mode != "auto" else detect_mode(video, config)
    if mode not in TRACKERS:
        raise ReenactError(f"{config.video}: {mode} mode is not available in this version of reenact (body only); "
                           "use --mode body for full-body footage")
    # 4. Track keypoints over the whole clip, then fill short gaps and smooth.
    keypoints, valid = TRACKERS[mode](video, config)
    check_person_found(config.video, valid, config)
    # 5. One fixed square crop over the clip, and the pose-normalisation statistics.
    crop = subject_crop(keypoints, valid, (video.width, video.height), config.min_confidence, config.crop_margin)
    ground = ground_stats(keypoints, valid, config.min_confidence)
    # 6. Write everything into a temporary folder that replaces `out` only when complete.
    with atomic_dir(out) as folder:
        subject_files.save_tracks(folder / subject_files.TRACKS, valid, keypoints, layout.KEYPOINT_NAMES,
                                  fps=np.float64(video.fps))
        write_frames(folder / subject_files.FRAMES, video, crop, config.resolution, len(keypoints))
        write_proxies(folder / subject_files.PROXIES, keypoints, crop, config.resolution)
        write_preview(folder / subject_files.PREVIEW, video, keypoints, crop, config)
        meta = subject_meta(mode, video, source_sha256, crop, ground, valid, config, key)
        (folder / subject_files.SUBJECT_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    info(f"wrote {out}/ ({len(keypoints)} frames, person found in {valid.mean():.1%})")
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


def detection_size(video: VideoInfo, long_side: int) -> tuple[int, int]:
    """The video's aspect with its long side at most ``long_side``, in even pixels."""
    scale = min(1.0, long_side / max(video.width, video.height))
    return (max(2, int(round(video.width * scale / 2)) * 2), max(2, int(round(video.height * scale / 2)) * 2))


def detect_mode(video: VideoInfo, config: TrackConfig) -> str:
    """Body when legs are visible in most of the first seconds, else face when a face is there."""
    from reenact.body.tracker import holistic_model

    frames = list(iter_frames(video, size=detection_size(video, config.detect_size), max_frames=int(3 * video.fps)))
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


def track_body_clip(video: VideoInfo, config: TrackConfig) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed (T, K, 3) keypoints in source pixels and the (T,) frames with a person."""
    frames = iter_frames(video, size=detection_size(video, config.detect_size))
    start = time.perf_counter()
    raw = track_body(with_progress(frames, "tracking body", video.frame_count), (video.width, video.height))
    seconds = time.perf_counter() - start
    if len(raw) < config.min_frames:
        raise ReenactError(f"{config.video}: too few frames ({len(raw)}; at least {config.min_frames} needed)")
    info(f"tracked {len(raw)} frames in {seconds:.1f} s ({len(raw) / seconds:.1f} frames/s)")
    max_gap = max(1, int(round(config.max_gap_seconds * video.fps)))
    filled = fill_short_gaps(raw, config.min_confidence, max_gap)
    smoothed = SMOOTHERS[config.smoothing](
        filled, min_confidence=config.min_confidence, fps=video.fps, scale=max(video.width, video.height),
        min_cutoff=config.one_euro_min_cutoff, beta=config.one_euro_beta, d_cutoff=config.one_euro_d_cutoff)
    torso = [layout.POSE[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    valid = (smoothed[:, torso, 2] >= config.min_confidence).sum(axis=1) >= 3
    return smoothed, valid


TRACKERS = {"body": track_body_clip}


def check_person_found(video_path: str, valid: np.ndarray, config: TrackConfig) -> None:
    if valid.mean() < config.min_valid_fraction:
        raise ReenactError(f"{video_path}: no person found (a person was found in {valid.mean():.0%} of frames, "
                           f"{int(valid.sum())}/{len(valid)}; at least {config.min_valid_fraction:.0%} needed)")


def write_frames(path: Path, video: VideoInfo, crop: Crop, resolution: int, frame_count: int) -> None:
    frames = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(frame_count, resolution, resolution, 3))
    decoded = iter_frames(video, size=(resolution, resolution), crop=crop.box(), max_frames=frame_count)
    written = 0
    for written, frame in enumerate(with_progress(decoded, "cropping frames", frame_count), start=1):
        frames[written - 1] = frame
    if written != frame_count:
        raise ReenactError(f"{video.path}: decoding gave {written} frames on the second pass, {frame_count} on the first")
    frames.flush()


def write_proxies(path: Path, keypoints: np.ndarray, crop: Crop, resolution: int) -> None:
    renderer = SkeletonRenderer(resolution)
    proxies = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(keypoints), resolution, resolution, 3))
    in_crop = crop.to_crop_pixels(keypoints, resolution)
    for t in range(len(keypoints)):
        proxies[t] = renderer.render(in_crop[t])
    proxies.flush()


def write_preview(path: Path, video: VideoInfo, keypoints: np.ndarray, crop: Crop, config: TrackConfig) -> None:
    """The footage with the skeleton drawn over it and the crop box outlined."""
    width, height = detection_size(video, config.preview_size)
    scale = width / video.width
    renderer = SkeletonRenderer(max(16, int(crop.size * scale)))
    box = (int(crop.x * scale), int(crop.y * scale)), (int((crop.x + crop.size) * scale), int((crop.y + crop.size) * scale))
    with VideoWriter(path, video.fps_fraction, (width, height)) as writer, progress_task("writing preview", len(keypoints)) as task:
        for t, frame in enumerate(iter_frames(video, size=(width, height), max_frames=len(keypoints))):
            points = keypoints[t].copy()
            points[:, :2] *= scale
            overlay = frame.copy()
            renderer.draw(overlay, points)
            cv2.rectangle(overlay, box[0], box[1], (255, 255, 255), 1, cv2.LINE_AA)
            writer.write(overlay)
            task.advance()


def subject_meta(mode: str, video: VideoInfo, source_sha256: str, crop: Crop, ground: dict,
                 valid: np.ndarray, config: TrackConfig, key: str) -> dict:
    return {
        "schema": subject_files.SCHEMA, "schema_version": subject_files.SCHEMA_VERSION, "mode": mode,
        "fps": video.fps, "fps_fraction": video.fps_fraction, "frame_count": int(len(valid)),
        "valid_fraction": float(valid.mean()),
        "source": {"path": str(Path(config.video).resolve()), "sha256": source_sha256, "width": video.width,
                   "height": video.height, "rotation": video.rotation, "has_audio": video.has_audio,
                   "duration": video.duration},
        "crop": crop.to_dict(), "resolution": config.resolution, "ground": ground,
        "tools": subject_files.tool_versions(), "config": config_dict(config), "reuse_key": key,
    }
