"""`reenact eval`: self-reenactment on the held-out frames, against baselines, with a report.

The model regenerates the last frames of its own subject (never trained on) from their proxies.
It is compared with the real frames, as are the same model without its previous-frame input
and nearest-neighbour retrieval of the training frame with the closest pose.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from reenact.body.crop import Crop
from reenact.body.tracker import track_body
from reenact.checkpoint import load_checkpoint
from reenact.config import EvalConfig, config_dict
from reenact.data import SubjectClip
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.evaluation import metrics
from reenact.evaluation.systems import (body_pose_features, face_pose_features, generate_held_out,
                                        nearest_neighbours)
from reenact.face.tracker import track_face
from reenact.files import atomic_path, check_writable, write_json
from reenact.io import VideoWriter
from reenact.models import find_vgg19_weights
from reenact.progress import info, with_progress
from reenact.subject import Subject
from reenact.translator import build_generator

# Generated frames are enlarged this much before tracking: the trackers want faces and bodies
# bigger than a tiny model's 96 pixels.
TRACKING_UPSCALE = 4
SYSTEMS = ("model", "model_no_temporal", "nearest_neighbour")


def run(config: EvalConfig) -> dict:
    # 1. The checkpoint and the subject it was trained on.
    checkpoint = load_checkpoint(config.checkpoint)
    subject = Subject.load(config.subject or checkpoint["target"]["subject"])
    if subject.mode != checkpoint["mode"]:
        raise ReenactError(f"{config.checkpoint}: a {checkpoint['mode']} checkpoint, but {subject.root} is a {subject.mode} subject")
    device = resolve_device(config.device)
    report = Path(config.report) if config.report else Path.cwd() / f"{Path(config.checkpoint).stem}.eval"
    check_writable(report)
    # 2. The held-out frames at the model's resolution, and what conditioned them.
    resolution = checkpoint["resolution"]
    clip = SubjectClip(subject.frames(), subject.proxies(), subject.tracks["valid"], resolution, checkpoint["window"],
                       checkpoint["config"]["validation_fraction"]).to(device)
    real = clip.frames[clip.train_end:].permute(0, 2, 3, 1).cpu().numpy()
    conditioning, scales = conditioning_points(subject, resolution)
    # 3. The systems' frames.
    generator = build_generator(checkpoint["model"]).to(device).eval()
    generator.load_state_dict(checkpoint.get("generator_ema") or checkpoint["generator"])
    nearest = nearest_frames(subject, clip, resolution)
    frames = {"model": generate_held_out(generator, clip, feedback=True),
              "model_no_temporal": generate_held_out(generator, clip, feedback=False),
              "nearest_neighbour": nearest}
    # 4. Metrics, per frame and overall.
    masks = region_masks(clip.proxies[clip.train_end:].permute(0, 2, 3, 1).cpu().numpy(), subject.mode)
    real_float = real.astype(np.float32) / 255
    flows = [metrics.real_frame_flow(real_float[t - 1], real_float[t]) for t in range(1, len(real_float))]
    per_frame = {name: frame_metrics(images, real_float, masks, conditioning[clip.train_end:], scales[clip.train_end:],
                                     flows, subject.mode)
                 for name, images in frames.items()}
    results = summarize(per_frame, real_float, flows, subject, config, checkpoint)
    # 5. The report: JSON, a markdown table, per-frame plots, and real | model | nearest video.
    write_report(report, results, per_frame, real, frames, subject.meta["fps_fraction"])
    if config.json:
        write_json(config.json, results)
    info(f"wrote {report}/ ({len(real)} held-out frames)" + (f" and {config.json}" if config.json else ""))
    return results


def conditioning_points(subject: Subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, K, 3) points that conditioned each frame, in model pixels, and (T,) the normalising length."""
    tracks = subject.tracks
    if subject.mode == "body":
        points = Crop.from_dict(subject.meta["crop"]).to_crop_pixels(tracks["keypoints"], resolution)[:, :33]
        confident = points[..., 2] >= 0.5
        ys = np.where(confident, points[..., 1], np.nan)
        with np.errstate(all="ignore"):
            height = np.nan_to_num(np.nanmax(ys, axis=1) - np.nanmin(ys, axis=1), nan=resolution)
        return points, np.maximum(height, 1.0)
    crops = tracks["crops"].astype(np.float32)
    points = (tracks["fitted_landmarks"][:, :468] - crops[:, None, :2]) * (resolution / crops[:, None, 2:3])
    points = np.concatenate([points, np.ones((*points.shape[:2], 1), np.float32)], axis=-1)
    return points, np.linalg.norm(points[:, 33, :2] - points[:, 263, :2], axis=1)


def nearest_frames(subject: Subject, clip: SubjectClip, resolution: int) -> np.ndarray:
    if subject.mode == "body":
        keypoints = Crop.from_dict(subject.meta["crop"]).to_crop_pixels(subject.tracks["keypoints"], resolution)
        features, present = body_pose_features(keypoints, 0.5)
    else:
        features, present = face_pose_features(subject.tracks)
    picks = nearest_neighbours(features, present, clip.train_end)
    return clip.frames[torch.as_tensor(picks, device=clip.frames.device)].permute(0, 2, 3, 1).cpu().numpy()


def region_masks(proxies: np.ndarray, mode: str) -> np.ndarray:
    """The person (the skeleton, grown) or the face (the rendered mesh): where the masked metrics look."""
    resolution = proxies.shape[1]
    grow = max(1, resolution // (16 if mode == "body" else 32))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    drawn = (proxies[..., :3].max(axis=-1) > 0).astype(np.uint8)
    return np.stack([cv2.dilate(d, kernel) > 0 for d in drawn])


def track_generated(images: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) points found in generated frames (model pixels) and (N,) whether found."""
    size = images.shape[1] * TRACKING_UPSCALE
    enlarged = (cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC) for image in images)
    if mode == "body":
        keypoints = track_body(with_progress(enlarged, "tracking generated frames", len(images)), (size, size))
        found = (keypoints[:, [11, 12, 23, 24], 2] >= 0.5).sum(axis=1) >= 3
        return keypoints[:, :33, :2] / TRACKING_UPSCALE, found
    landmarks, found = track_face(with_progress(enlarged, "tracking generated frames", len(images)), (size, size))
    return landmarks[:, :468, :2] / TRACKING_UPSCALE, found


def frame_metrics(images: np.ndarray, real_float: np.ndarray, masks: np.ndarray, conditioning: np.ndarray,
                  scales: np.ndarray, flows: list[np.ndarray], mode: str) -> dict[str, np.ndarray]:
    """Per held-out frame; ``flows[t - 1]`` is the real frames' flow from t back to t-1."""
    generated_float = images.astype(np.float32) / 255
    detected, found = track_generated(images, mode)
    values: dict[str, list[float]] = {k: [] for k in ("psnr", "ssim", "psnr_masked", "ssim_masked", "pose_distance", "flicker")}
    for t in range(len(images)):
        values["psnr"].append(metrics.psnr(generated_float[t], real_float[t]))
        values["ssim"].append(metrics.ssim(generated_float[t], real_float[t]))
        mask = masks[t] if masks[t].any() else None
        values["psnr_masked"].append(metrics.psnr(generated_float[t], real_float[t], mask))
        values["ssim_masked"].append(metrics.ssim(generated_float[t], real_float[t], mask))
        confident = conditioning[t, :, 2] >= 0.5
        values["pose_distance"].append(metrics.pose_distance(detected[t][confident], bool(found[t]),
                                                             conditioning[t, confident, :2], scales[t]))
        # Temporal warping error: the real frames' flow applied to generated t-1 (none for the first frame).
        values["flicker"].append(metrics.warping_error(generated_float[t - 1], generated_float[t], flows[t - 1])
                                 if t else float("nan"))
    return {**{k: np.array(v) for k, v in values.items()}, "detected": found}


def summarize(per_frame: dict, real_float: np.ndarray, flows: list[np.ndarray], subject: Subject, config: EvalConfig,
              checkpoint: dict) -> dict:
    real_flicker = [metrics.warping_error(real_float[t - 1], real_float[t], flows[t - 1]) for t in range(1, len(real_float))]
    systems = {}
    for name, values in per_frame.items():
        summary = {key: float(np.nanmean(values[key])) for key in ("psnr", "ssim", "psnr_masked", "ssim_masked", "pose_distance", "flicker")}
        summary["missed_detections"] = int((~values["detected"]).sum())
        systems[name] = summary
    lpips_weights = find_vgg19_weights().parent
    return {"checkpoint": str(config.checkpoint), "checkpoint_step": checkpoint["step"], "subject": str(subject.root),
            "mode": subject.mode, "held_out_frames": int(len(real_float)), "resolution": checkpoint["resolution"],
            "systems": systems, "real": {"flicker": float(np.mean(real_flicker)) if real_flicker else float("nan")},
            "lpips": f"unavailable: no LPIPS weights in {lpips_weights}",
            "pose_distance_note": f"mean keypoint distance / {'body height' if subject.mode == 'body' else 'inter-ocular distance'}; "
                                  f"a frame where the tracker finds nothing counts {metrics.MISSED_POSE_DISTANCE}",
            "config": config_dict(config)}


def write_report(folder: Path, results: dict, per_frame: dict, real: np.ndarray, frames: dict, fps: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "metrics.json", results)
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(markdown_table(results))
    plot_per_frame(per_frame, folder / "per_frame.png")
    with VideoWriter(folder / "side_by_side.mp4", fps, (3 * real.shape[2], real.shape[1])) as writer:
        for row in zip(real, frames["model"], frames["nearest_neighbour"]):
            writer.write(np.concatenate(row, axis=1))


def markdown_table(results: dict) -> str:
    keys = ("psnr", "ssim", "psnr_masked", "ssim_masked", "pose_distance", "missed_detections", "flicker")
    lines = [f"# Self-reenactment on {results['held_out_frames']} held-out frames of {results['subject']}", "",
             "| system | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, summary in results["systems"].items():
        lines.append(f"| {name} | " + " | ".join(f"{summary[k]:.4g}" for k in keys) + " |")
    lines.append(f"| real frames | " + " | ".join("" for _ in keys[:-1]) + f" | {results['real']['flicker']:.4g} |")
    lines += ["", f"LPIPS: {results['lpips']}.", f"pose_distance: {results['pose_distance_note']}.",
              "Masked metrics look at the person (the skeleton, grown) or the face (the rendered mesh).", ""]
    return "\n".join(lines)


def plot_per_frame(per_frame: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("psnr", "ssim", "pose_distance", "flicker")
    figure, axes = plt.subplots(len(keys), 1, figsize=(8, 2.2 * len(keys)), sharex=True)
    for axis, key in zip(axes, keys):
        for name, values in per_frame.items():
            axis.plot(values[key], label=name)
        axis.set_ylabel(key)
    axes[0].legend(fontsize=7)
    axes[-1].set_xlabel("held-out frame")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
