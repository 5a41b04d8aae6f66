"""The face mode's part of `track`: FaceMesh, the model fit, gaze and crops, then the subject files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from reenact import subject as subject_files
from reenact.config import TrackConfig
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.face.crop import crop_square
from reenact.face.gaze import irises_from_offsets
from reenact.face.model import load_face_model
from reenact.face.tracking import FaceTracks, track_face_clip
from reenact.io import VideoInfo, VideoWriter, iter_frames
from reenact.progress import progress_task, with_progress
from reenact.face.proxy import FaceProxyRenderer

RENDER_BATCH = 32
PREVIEW_MESH_SIDE = 224


def track(video: VideoInfo, config: TrackConfig) -> FaceTracks:
    tracks = track_face_clip(video, video.fit_within(config.detect_size), resolve_device(config.device),
                             backend=config.face_landmarks, workers=config.workers)
    if len(tracks.valid) < config.min_frames:
        raise ReenactError(f"{config.video}: too few frames ({len(tracks.valid)}; at least {config.min_frames} needed)")
    return tracks


def write(folder: Path, video: VideoInfo, tracks: FaceTracks, config: TrackConfig) -> dict:
    """tracks.npz, frames.npz, proxies.npz and preview.mp4; returns the mode's subject.json fields."""
    model = load_face_model()
    subject_files.save_tracks(folder / subject_files.TRACKS, fps=np.float64(video.fps), **tracks.to_arrays(model.expression_names))
    count = len(tracks.valid)
    cropped = (crop_square(frame, crop, config.resolution) for frame, crop in zip(iter_frames(video, max_frames=count), tracks.crops))
    subject_files.write_images(folder / subject_files.FRAMES, with_progress(cropped, "cropping frames", count), count, video.path)
    renderer = FaceProxyRenderer(model, config.resolution, resolve_device(config.device))
    subject_files.write_images(folder / subject_files.PROXIES, render_proxies(renderer, tracks, tracks.crops), count, video.path)
    write_preview(folder / subject_files.PREVIEW, video, tracks, config)
    fit = tracks.fit
    return {"crop": {"size": int(tracks.crops[0, 2]), "per_frame": "tracks.npz:crops"},
            "face": {"fit_error_median": float(np.median(fit.error[tracks.valid])), "focal": fit.focal,
                     "landmarks": config.face_landmarks}}


def render_proxies(renderer: FaceProxyRenderer, tracks: FaceTracks, crops: np.ndarray):
    """Proxies of every frame, rendered in batches; the irises sit where the detections put them."""
    landmarks = tracks.fitted_landmarks()
    irises = irises_from_offsets(landmarks, tracks.iris_offsets)
    center = (tracks.image_size[0] / 2, tracks.image_size[1] / 2)
    fit = tracks.fit
    with progress_task("rendering proxies", len(crops)) as task:
        for start in range(0, len(crops), RENDER_BATCH):
            batch = slice(start, start + RENDER_BATCH)
            rendered = renderer.render(fit.identity, tracks.expression[batch], fit.rotation[batch], fit.translation[batch],
                                       fit.focal, center, crops[batch], landmarks[batch], irises[batch])
            yield from rendered
            task.advance(len(rendered))


def draw_dots(image: np.ndarray, points: np.ndarray, color: tuple[int, int, int]) -> None:
    """2×2-pixel dots at each point, set in one indexing operation (hundreds per frame)."""
    x, y = np.round(points[:, 0]).astype(int), np.round(points[:, 1]).astype(int)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        inside = (x + dx >= 0) & (x + dx < image.shape[1]) & (y + dy >= 0) & (y + dy < image.shape[0])
        image[y[inside] + dy, x[inside] + dx] = color


def write_preview(path: Path, video: VideoInfo, tracks: FaceTracks, config: TrackConfig) -> None:
    """The footage with the fitted mesh blended over it, detected (green) and fitted (red) landmarks, and the error."""
    width, height = video.fit_within(config.preview_size)
    scale = width / video.width
    # The mesh is drawn at a lower resolution and scaled up: it is only there to be looked at.
    mesh_side = min(PREVIEW_MESH_SIDE, max(width, height))
    full_frame = np.array([[0, 0, max(video.width, video.height)]] * len(tracks.valid))
    renderer = FaceProxyRenderer(load_face_model(), mesh_side)
    fitted, detected = tracks.fitted_landmarks()[:, :468] * scale, tracks.landmarks[:, :468, :2] * scale
    with VideoWriter(path, video.fps_fraction, (width, height)) as writer, progress_task("writing preview", len(full_frame)) as task:
        frames = iter_frames(video, size=(width, height), max_frames=len(full_frame))
        for t, (frame, proxy) in enumerate(zip(frames, render_proxies(renderer, tracks, full_frame))):
            mesh = cv2.resize(proxy[..., :3], (max(width, height),) * 2, interpolation=cv2.INTER_LINEAR)[:height, :width]
            covered = mesh.any(axis=2, keepdims=True)
            overlay = np.where(covered, (frame * 0.5 + mesh * 0.5).astype(np.uint8), frame)
            for points, color in ((detected[t], (0, 255, 0)), (fitted[t], (255, 0, 0))):
                draw_dots(overlay, points, color)
            cv2.putText(overlay, f"fit error {tracks.fit.error[t]:.3f} IOD", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
            writer.write(overlay)
            task.advance()
