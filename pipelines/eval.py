"""`reenact eval`: self-reenactment on the held-out frames, against baselines, with a report.

The model regenerates the last frames of its own subject (never trained on) from their proxies.
It is compared with the real frames, as are the same model without its previous-frame input
and nearest-neighbour retrieval of the training frame with the closest pose.
"""

from __future__ import annotations

import warnings
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
from reenact.evaluation import cross, metrics
from reenact.evaluation.systems import (NOVELTY_QUANTILE, body_pose_features, face_pose_features, generate_held_out,
                                        nearest_neighbours, novelty_threshold)
from reenact.face.tracker import track_face
from reenact.files import atomic_path, check_writable, write_json
from reenact.io import VideoInfo, VideoWriter, probe_video
from reenact.models.lpips import LearnedPerceptualDistance, load_lpips
from reenact.progress import info, with_progress
from reenact.stabilise import TemporalStabiliser
from reenact.subject import Subject
from reenact.translator import build_generator

# Generated frames are enlarged this much before tracking: the trackers want faces and bodies
# bigger than a tiny model's 96 pixels.
TRACKING_UPSCALE = 4
METRIC_KEYS = ("psnr", "ssim", "psnr_masked", "ssim_masked", "pose_distance", "flicker")
NOVELTY_RULE = (f"held-out frames whose nearest training pose (the distance retrieval uses) is farther than the "
                f"{NOVELTY_QUANTILE:.0%} quantile of training poses' distances to the nearest training pose at least "
                f"a second away from them")


def run(config: EvalConfig) -> dict:
    # 1. The checkpoint and the subject it was trained on.
    checkpoint = load_checkpoint(config.checkpoint)
    subject = Subject.load(config.subject or checkpoint["target"]["subject"])
    if subject.mode != checkpoint["mode"]:
        raise ReenactError(f"{config.checkpoint}: a {checkpoint['mode']} checkpoint, but {subject.root} is a {subject.mode} subject")
    device = resolve_device(config.device)
    report = Path(config.report) if config.report else Path.cwd() / f"{Path(config.checkpoint).stem}.eval"
    check_writable(report)
    driver = probe_video(config.driver) if config.driver else None     # a bad driver fails before the slow part
    # 2. The held-out frames at the model's resolution, and what conditioned them.
    resolution = checkpoint["resolution"]
    clip = SubjectClip(subject.frames(), subject.proxies(), subject.tracks["valid"], resolution, checkpoint["window"],
                       checkpoint["config"]["validation_fraction"]).to(device)
    real = clip.frames[clip.train_end:].permute(0, 2, 3, 1).cpu().numpy()
    conditioning, scales = conditioning_points(subject, resolution)
    # 3. The systems' frames.
    generator = build_generator(checkpoint["model"]).to(device).eval()
    generator.load_state_dict(checkpoint.get("generator_ema") or checkpoint["generator"])
    features, present = pose_features(subject, resolution)
    nearest, novel = nearest_frames(clip, features, present, gap=round(subject.meta["fps"]))
    frames = {**{name: generate_held_out(generator, clip, feedback, stabiliser)
                 for name, (feedback, stabiliser) in model_variants(subject.mode).items()},
              "nearest_neighbour": nearest}
    # 4. Metrics, per frame and overall.
    masks = region_masks(clip.proxies[clip.train_end:].permute(0, 2, 3, 1).cpu().numpy(), subject.mode)
    real_float = real.astype(np.float32) / 255
    flows = [metrics.real_frame_flow(real_float[t - 1], real_float[t]) for t in range(1, len(real_float))]
    per_frame = {name: frame_metrics(images, real_float, masks, conditioning[clip.train_end:], scales[clip.train_end:],
                                     flows, subject.mode)
                 for name, images in frames.items()}
    lpips, lpips_unavailable = load_lpips()
    if lpips is not None:
        for name, images in frames.items():
            per_frame[name]["lpips"] = lpips_per_frame(lpips.to(device), images, real, device)
    results = summarize(per_frame, real_float, flows, subject, config, checkpoint, novel, lpips_unavailable)
    # 5. Cross-reenactment: another person's motion, measured against its retargeted form.
    if driver is not None:
        results["cross"], cross_frames = cross_reenactment(driver, config, checkpoint, clip, features, present,
                                                           generator, device)
    # 6. The report: JSON, a markdown table, per-frame plots, and real | model | nearest video.
    write_report(report, results, per_frame, real, frames, subject.meta["fps_fraction"])
    if driver is not None:
        write_cross_video(report / "cross_side_by_side.mp4", cross_frames, driver.fps_fraction)
    if config.json:
        write_json(config.json, results)
    info(f"wrote {report}/ ({len(real)} held-out frames)" + (f" and {config.json}" if config.json else ""))
    return results


def model_variants(mode: str) -> dict[str, tuple[bool, TemporalStabiliser | None]]:
    """The model's systems: (fed its previous output, stabiliser). `model` is what `transfer` shows."""
    return {"model": (True, TemporalStabiliser.for_mode(mode)), "model_unstabilised": (True, None),
            "model_no_temporal": (False, None)}


def conditioning_points(subject: Subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, K, 3) points that conditioned each frame, in model pixels, and (T,) the normalising length."""
    tracks = subject.tracks
    if subject.mode == "body":
        points = Crop.from_dict(subject.meta["crop"]).to_crop_pixels(tracks["keypoints"], resolution)[:, :33]
        return points, metrics.body_heights(points, resolution)
    return metrics.face_points_in_crop(tracks["fitted_landmarks"], tracks["crops"], resolution)


def pose_features(subject: Subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """What retrieval compares: body keypoints about the hips (model pixels), or face expression and rotation."""
    if subject.mode == "body":
        keypoints = Crop.from_dict(subject.meta["crop"]).to_crop_pixels(subject.tracks["keypoints"], resolution)
        return body_pose_features(keypoints, 0.5)
    return face_pose_features(subject.tracks)


def nearest_frames(clip: SubjectClip, features: np.ndarray, present: np.ndarray, gap: int) -> tuple[np.ndarray, dict]:
    """The retrieved training frame for each held-out frame, and the novel-pose subset: the
    held-out frames whose nearest training pose is beyond ``novelty_threshold``."""
    picks, distances = nearest_neighbours(features, present, clip.train_end)
    threshold = novelty_threshold(features, present, clip.train_end, gap)
    return clip_frames(clip, picks), {"mask": distances > threshold, "threshold": threshold, "distances": distances}


def clip_frames(clip: SubjectClip, picks: np.ndarray) -> np.ndarray:
    """(N, R, R, 3) uint8: the clip's frames at ``picks``."""
    return clip.frames[torch.as_tensor(picks, device=clip.frames.device)].permute(0, 2, 3, 1).cpu().numpy()


def cross_reenactment(driver: VideoInfo, config: EvalConfig, checkpoint: dict, clip: SubjectClip, features: np.ndarray,
                      present: np.ndarray, generator: torch.nn.Module, device: torch.device) -> tuple[dict, dict]:
    """The cross-reenactment figures for the model and retrieval, and their frames (with the proxies)."""
    from pipelines import transfer

    tracks = transfer.track_like_target(driver, config.driver, checkpoint, config.device)
    render_proxy, crops, _ = transfer.retarget(tracks, checkpoint)
    wanted = retargeted(tracks, checkpoint, crops)
    generated = {name: list(zip(*transfer.generate(generator, render_proxy, len(tracks.valid), checkpoint["window"],
                                                    device, feedback, stabiliser)))
                 for name, (feedback, stabiliser) in model_variants(checkpoint["mode"]).items()}
    picks = cross.retrieve(wanted, features[:clip.train_end], present[:clip.train_end])
    frames = {**{name: np.stack(images) for name, (_, images) in generated.items()},
              "nearest_neighbour": clip_frames(clip, picks)}
    proxies = generated["model"][0]
    mode = checkpoint["mode"]
    systems = {name: cross.system_figures(images, *track_generated(images, mode), wanted, mode)
               for name, images in frames.items()}
    notes = {key: cross.NOTES[key] for key in ("frames", "flicker", mode, "face_enhancer")}
    return ({"driver": str(config.driver), "frames": int(len(tracks.valid)), "driver_tracked": int(tracks.valid.sum()),
             "systems": systems, "notes": notes}, {"proxy": np.stack(proxies), **frames})


def retargeted(tracks, checkpoint: dict, crops: np.ndarray | None) -> cross.Retargeted:
    """What the output should show for each driver frame, as transfer retargets it."""
    from reenact.body import retarget as body_retarget
    from reenact.face import retarget as face_retarget

    target, resolution = checkpoint["target"], checkpoint["resolution"]
    if checkpoint["mode"] == "face":
        return cross.retargeted_face(face_retarget.retarget_tracks(tracks, target), crops, tracks.valid, resolution)
    keypoints = body_retarget.retarget_keypoints(tracks, target)
    return cross.retargeted_body(keypoints, tracks.valid, target["subject_resolution"], resolution)


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
    values: dict[str, list[float]] = {k: [] for k in METRIC_KEYS}
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


@torch.no_grad()
def lpips_per_frame(lpips: LearnedPerceptualDistance, images: np.ndarray, real: np.ndarray, device: torch.device,
                    batch: int = 16) -> np.ndarray:
    """(N,) LPIPS of each generated frame against its real frame, both (N, R, R, 3) uint8."""
    as_tensor = lambda frames: torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 255
    return np.concatenate([lpips(as_tensor(images[i:i + batch]), as_tensor(real[i:i + batch])).cpu().numpy()
                           for i in range(0, len(images), batch)])


def system_summary(values: dict[str, np.ndarray], selected: np.ndarray) -> dict:
    """Means over the ``selected`` frames (NaN where none are)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the mean of no frames is NaN, as reported
        summary = {key: float(np.nanmean(values[key][selected])) for key in (*METRIC_KEYS, "lpips") if key in values}
    summary["missed_detections"] = int((~values["detected"][selected]).sum())
    return summary


def summarize(per_frame: dict, real_float: np.ndarray, flows: list[np.ndarray], subject: Subject, config: EvalConfig,
              checkpoint: dict, novel: dict, lpips_unavailable: str) -> dict:
    real_flicker = [metrics.warping_error(real_float[t - 1], real_float[t], flows[t - 1]) for t in range(1, len(real_float))]
    every = np.ones(len(real_float), bool)
    systems = {name: system_summary(values, every) for name, values in per_frame.items()}
    systems_novel = {name: system_summary(values, novel["mask"]) for name, values in per_frame.items()}
    return {"checkpoint": str(config.checkpoint), "checkpoint_step": checkpoint["step"], "subject": str(subject.root),
            "mode": subject.mode, "held_out_frames": int(len(real_float)), "resolution": checkpoint["resolution"],
            "systems": systems, "real": {"flicker": float(np.mean(real_flicker)) if real_flicker else float("nan")},
            "novel_pose": {"frames": int(novel["mask"].sum()), "threshold": novel["threshold"],
                           "nearest_distance": [round(float(d), 4) for d in novel["distances"]], "rule": NOVELTY_RULE},
            "systems_novel": systems_novel,
            "lpips": f"unavailable: {lpips_unavailable}" if lpips_unavailable else LPIPS_COMPUTED,
            "pose_distance_note": f"mean keypoint distance / {'body height' if subject.mode == 'body' else 'inter-ocular distance'}; "
                                  f"a frame where the tracker finds nothing counts {metrics.MISSED_POSE_DISTANCE}",
            "config": config_dict(config)}


def write_cross_video(path: Path, frames: dict, fps: str) -> None:
    """proxy | model | nearest neighbour for each driver frame."""
    with VideoWriter(path, fps, (3 * frames["model"].shape[2], frames["model"].shape[1])) as writer:
        for row in zip(frames["proxy"][..., :3], frames["model"], frames["nearest_neighbour"]):
            writer.write(np.concatenate(row, axis=1))


def write_report(folder: Path, results: dict, per_frame: dict, real: np.ndarray, frames: dict, fps: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "metrics.json", results)
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(markdown_table(results))
    plot_per_frame(per_frame, folder / "per_frame.png")
    with VideoWriter(folder / "side_by_side.mp4", fps, (3 * real.shape[2], real.shape[1])) as writer:
        for row in zip(real, frames["model"], frames["nearest_neighbour"]):
            writer.write(np.concatenate(row, axis=1))


REPORT_KEYS = ("psnr", "ssim", "psnr_masked", "ssim_masked", "lpips", "pose_distance", "missed_detections", "flicker")
LPIPS_COMPUTED = ("LPIPS v0.1 on AlexNet against the real frame, over the whole frame (lower is better; "
                  "the lpips column)")
MEANINGS = {
    "psnr": "peak signal-to-noise ratio against the real frame, in dB (higher is better)",
    "ssim": "structural similarity against the real frame, 0 to 1 (higher is better)",
    "psnr_masked": "PSNR over the person or face only (higher is better)",
    "ssim_masked": "SSIM over the person or face only (higher is better)",
    "pose_distance": "the tracker's points on the generated frame against the conditioning points (lower is better)",
    "missed_detections": "generated frames where the tracker found no person or face (lower is better)",
    "flicker": "temporal warping error with the real frames' optical flow (lower is better; the real frames' own is the floor)",
}


def markdown_table(results: dict) -> str:
    novel = results["novel_pose"]
    lines = [f"# Self-reenactment on {results['held_out_frames']} held-out frames of {results['subject']}", "",
             *system_rows(results["systems"]),
             "| real frames | " + " | ".join("" for _ in shown_keys(results["systems"])[:-1]) + f" | {results['real']['flicker']:.4g} |", "",
             f"## Novel poses: {novel['frames']} of {results['held_out_frames']} held-out frames", "",
             f"The {novel['rule']} (threshold {novel['threshold']:.4g}). Retrieval can only return a pose "
             "the clip already has, so this is where a model must earn its keep.", "",
             *(system_rows(results["systems_novel"]) if novel["frames"] else ["No held-out frame is that far from training."]),
             "", "## What the figures mean", "", *(f"- {key}: {meaning}." for key, meaning in MEANINGS.items()),
             f"- LPIPS: {results['lpips']}.", f"- pose_distance: {results['pose_distance_note']}.",
             "- Masked metrics look at the person (the skeleton, grown) or the face (the rendered mesh).", ""]
    if "cross" in results:
        lines += cross_section(results["cross"])
    return "\n".join(lines)


CROSS_MEANINGS = {
    "pose_distance": "the tracker's points on the output against the driver's retargeted points, over body height or "
                     "inter-ocular distance (lower is better)",
    "missed_detections": "driver frames where the tracker found no person or face on the output (lower is better)",
    "detection_share": "share of driver frames where the tracker finds the person or face on the output at all, "
                       "0 to 1 (higher is better)",
    "eyeBlink_L_correlation": "Pearson's r of the left blink weight refitted on the output with the driver's "
                              "(higher is better; 1 follows every blink, NaN where either never changes)",
    "eyeBlink_R_correlation": "the same for the right blink (higher is better)",
    "jawOpen_correlation": "the same for jawOpen, how far the mouth opens (higher is better)",
    "head_rotation_error_deg": "mean angle, in degrees, between the output's head motion and the driver's retargeted "
                               "head motion, each relative to its own mean pose (lower is better)",
    "flicker": "warping error between consecutive output frames under the output's own optical flow "
               "(lower is better; not comparable with the self-reenactment flicker)",
}


def cross_section(results: dict) -> list[str]:
    keys = [key for key in CROSS_MEANINGS if key in results["systems"]["model"]]
    rows = system_rows(results["systems"], keys)
    return ["## Cross-reenactment", "",
            f"{results['driver']} drives the subject: {results['frames']} frames, the driver tracked in "
            f"{results['driver_tracked']}. With no real frames, the output is measured against the driver's motion "
            "retargeted onto the subject (what `transfer` renders). model is stabilised, as `transfer` does by "
            "default, model_unstabilised is not; model_no_temporal is the model fed a blank previous frame, not "
            "stabilised; nearest_neighbour returns the training frame with the closest retargeted pose.", "", *rows, "",
            *(f"- {key}: {CROSS_MEANINGS[key]}." for key in keys),
            *(f"- {key}: {value}." for key, value in results["notes"].items()), ""]


def shown_keys(systems: dict, keys=REPORT_KEYS) -> list[str]:
    """The figures of ``keys`` that every system has (LPIPS only where its weights are)."""
    return [key for key in keys if all(key in summary for summary in systems.values())]


def system_rows(systems: dict, keys=REPORT_KEYS) -> list[str]:
    """A markdown table: a row per system, a column per figure that the systems have."""
    keys = shown_keys(systems, keys)
    rows = ["| system | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    return rows + [f"| {name} | " + " | ".join(f"{summary[k]:.4g}" for k in keys) + " |" for name, summary in systems.items()]


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
