"""The body mode's part of `track`: track a clip, then write its subject files."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from reenact import subject as subject_files
from reenact.body import layout
from reenact.body.background import estimate_plate
from reenact.body.crop import Crop, subject_crop
from reenact.body.normalize import ground_stats
from reenact.body.people import PeopleScan, largest_person_only, scan_people
from reenact.body.smoothing import SMOOTHERS, fill_short_gaps
from reenact.body.tracker import person_found, track_body
from reenact.chunked_tracking import Chunk, track_in_chunks
from reenact.config import TrackConfig
from reenact.errors import ReenactError
from reenact.files import atomic_path
from reenact.io import VideoInfo, VideoWriter, iter_frames
from reenact.progress import info, progress_task, warn, with_progress
from reenact.body.skeleton import SkeletonRenderer


@dataclass
class BodyTracks:
    valid: np.ndarray        # (T,) a person in the frame
    keypoints: np.ndarray    # (T, K, 3) smoothed, source pixels + confidence


def track(video: VideoInfo, config: TrackConfig) -> BodyTracks:
    """Track the largest person, fill short gaps and smooth; a frame is valid when three of
    shoulders and hips are confident."""
    start = time.perf_counter()
    detect_size = video.fit_within(config.detect_size)
    options = {"scan": crowd_scan(video, config) if config.largest_person else None}
    raw = track_in_chunks(track_body_chunk, video, detect_size, options, config.workers, "tracking body")["keypoints"]
    seconds = time.perf_counter() - start
    if len(raw) < config.min_frames:
        raise ReenactError(f"{config.video}: too few frames ({len(raw)}; at least {config.min_frames} needed)")
    info(f"tracked {len(raw)} frames in {seconds:.1f} s ({len(raw) / seconds:.1f} frames/s)")
    max_gap = max(1, int(round(config.max_gap_seconds * video.fps)))
    filled = fill_short_gaps(raw, config.min_confidence, max_gap)
    smoothed = SMOOTHERS[config.smoothing](
        filled, min_confidence=config.min_confidence, fps=video.fps, scale=max(video.width, video.height),
        min_cutoff=config.one_euro_min_cutoff, beta=config.one_euro_beta, d_cutoff=config.one_euro_d_cutoff)
    return BodyTracks(person_found(smoothed, config.min_confidence), smoothed)


def crowd_scan(video: VideoInfo, config: TrackConfig) -> PeopleScan | None:
    """A scan of who is in view when it finds more than one person (the tracker is then shown only
    the tallest), else None."""
    scanned = iter_frames(video, size=video.fit_within(config.detect_size))
    scan = scan_people(with_progress(scanned, "looking for people", video.frame_count), video.fps)
    if not scan.crowded:
        return None
    warn(f"{config.video}: more than one person in {scan.crowded} of {len(scan.sampled)} scanned frames; "
         "following the largest (set largest_person = false to let the tracker choose)")
    return scan


def track_body_chunk(frames: Iterable[np.ndarray], video: VideoInfo, chunk: Chunk, options: dict) -> dict:
    """chunked_tracking's tracker for bodies: Holistic's keypoints, everyone but the largest person
    blanked out where ``options["scan"]`` says so."""
    if options["scan"] is not None:
        frames = largest_person_only(frames, options["scan"], first_frame=chunk.decode_from)
    return {"keypoints": track_body(frames, (video.width, video.height))}


def write(folder: Path, video: VideoInfo, tracks: BodyTracks, config: TrackConfig) -> dict:
    """tracks.npz, frames.npz, proxies.npz and preview.mp4; returns the mode's subject.json fields."""
    crop = subject_crop(tracks.keypoints, tracks.valid, (video.width, video.height), config.min_confidence, config.crop_margin)
    subject_files.save_tracks(folder / subject_files.TRACKS, valid=tracks.valid, keypoints=tracks.keypoints.astype(np.float32),
                              keypoint_names=np.array(layout.KEYPOINT_NAMES), fps=np.float64(video.fps))
    frame_count = len(tracks.valid)
    decoded = iter_frames(video, size=(config.resolution, config.resolution), crop=crop.box(), max_frames=frame_count)
    subject_files.write_images(folder / subject_files.FRAMES, with_progress(decoded, "cropping frames", frame_count),
                               frame_count, video.path)
    write_proxies(folder / subject_files.PROXIES, tracks.keypoints, crop, config.resolution, video.path)
    background = write_background(folder, tracks.valid, config)
    write_preview(folder / subject_files.PREVIEW, video, tracks.keypoints, crop, config)
    return {"crop": crop.to_dict(), "ground": ground_stats(tracks.keypoints, tracks.valid, config.min_confidence),
            "background": background}


def write_background(folder: Path, valid: np.ndarray, config: TrackConfig) -> dict:
    """background.png when the camera holds still; the subject.json fields either way."""
    frames, proxies = (subject_files.read_images(folder / name) for name in (subject_files.FRAMES, subject_files.PROXIES))
    plate = estimate_plate(frames, proxies, valid)
    if plate.image is None:
        warn(f"{config.video}: {plate.why_none()}, so no background plate: the model will paint the whole frame")
        return {"file": None, **plate.to_dict()}
    with atomic_path(folder / subject_files.BACKGROUND) as tmp:
        cv2.imwrite(str(tmp), plate.image[..., ::-1])
    return {"file": subject_files.BACKGROUND, **plate.to_dict()}


def write_proxies(path: Path, keypoints: np.ndarray, crop: Crop, resolution: int, video_path: str) -> None:
    renderer = SkeletonRenderer(resolution)
    in_crop = crop.to_crop_pixels(keypoints, resolution)
    rendered = (renderer.render(points) for points in in_crop)
    subject_files.write_images(path, with_progress(rendered, "drawing proxies", len(keypoints)), len(keypoints), video_path)


def write_preview(path: Path, video: VideoInfo, keypoints: np.ndarray, crop: Crop, config: TrackConfig) -> None:
    """The footage with the skeleton drawn over it and the crop box outlined."""
    width, height = video.fit_within(config.preview_size)
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
