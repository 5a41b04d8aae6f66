"""Self-reenactment on a subject's held-out frames: the systems' frames, per-frame metrics and their summaries.

The model regenerates the last frames of its own subject (never trained on) from their proxies,
as `transfer` would; it is compared with the real frames, as are the same model without its
previous-frame input and nearest-neighbour retrieval of the training frame with the closest pose.
"""

from __future__ import annotations

import itertools
import warnings

import cv2
import numpy as np
import torch

from reenact.config import EvalConfig, config_dict
from reenact.data import SubjectClip
from reenact.drive import Drive
from reenact.evaluation import metrics, report
from reenact.evaluation.appearance import ViewerFigures, quiet_nan, reference_picks
from reenact.evaluation.systems import NOVELTY_QUANTILE, nearest_neighbours, novelty_threshold
from reenact.models.lpips import LearnedPerceptualDistance
from reenact.modes import Mode
from reenact.progress import with_progress
from reenact.reenactment import Reenactor, StreamOptions
from reenact.subject import Subject

# Generated frames are enlarged this much before tracking: the trackers want faces and bodies
# bigger than a tiny model's 96 pixels.
TRACKING_UPSCALE = 4
METRIC_KEYS = ("psnr", "ssim", "psnr_masked", "ssim_masked", "pose_distance", "flicker")
VIEWER_KEYS = ("sharpness", "appearance_distance", "identity_distance")     # reenact/evaluation/appearance.py
NOVELTY_RULE = (f"held-out frames whose nearest training pose (the distance retrieval uses) is farther than the "
                f"{NOVELTY_QUANTILE:.0%} quantile of training poses' distances to the nearest training pose at least "
                f"a second away from them")
# The model's systems, for held-out and cross-reenactment alike: `model` is what `transfer` shows.
# None of them has the body's face enhancer: the figures are the generator's.
MODEL_SYSTEMS = {"model": StreamOptions(enhance=False),
                 "model_unstabilised": StreamOptions(stabilise=False, enhance=False),
                 "model_no_temporal": StreamOptions(feedback=False, stabilise=False, enhance=False)}


def generate_held_out(reenactor: Reenactor, clip: SubjectClip, options: StreamOptions, name: str,
                      subject: Subject | None = None) -> np.ndarray:
    """(N, R, R, 3) uint8 frames for the held-out range, in order, from the subject's own proxies;
    ``name`` is the system's, for the progress line. With the ``subject``, the stabiliser follows
    its proxies' rendered flow, as in `transfer`."""
    frames = range(clip.train_end, len(clip.frames))
    followed = subject is not None and options.stabilise
    drives = (Drive(None, flow) for flow in reenactor.mode.own_flows(subject, frames)) if followed else itertools.repeat(None)
    proxies = ((clip.proxies[t], drive) for t, drive in zip(frames, drives))
    outputs = with_progress(reenactor.run(proxies, options), f"generating {name} frames", len(frames))
    return np.stack([output.frame for output in outputs])


def nearest_frames(clip: SubjectClip, features: np.ndarray, present: np.ndarray, gap: int) -> tuple[np.ndarray, dict]:
    """The retrieved training frame for each held-out frame, and the novel-pose subset: the
    held-out frames whose nearest training pose is beyond ``novelty_threshold``."""
    picks, distances = nearest_neighbours(features, present, clip.train_end)
    threshold = novelty_threshold(features, present, clip.train_end, gap)
    return clip_frames(clip, picks), {"mask": distances > threshold, "threshold": threshold, "distances": distances}


def clip_frames(clip: SubjectClip, picks: np.ndarray) -> np.ndarray:
    """(N, R, R, 3) uint8: the clip's frames at ``picks``."""
    return clip.frames[torch.as_tensor(picks, device=clip.frames.device)].permute(0, 2, 3, 1).cpu().numpy()


def region_masks(proxies: np.ndarray, mode: Mode) -> np.ndarray:
    """The person (the skeleton, grown) or the face (the rendered mesh): where the masked metrics look."""
    resolution = proxies.shape[1]
    grow = max(1, resolution // mode.region_grow)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    drawn = (proxies[..., :3].max(axis=-1) > 0).astype(np.uint8)
    return np.stack([cv2.dilate(d, kernel) > 0 for d in drawn])


def track_generated(images: np.ndarray, mode: Mode, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) points found in generated frames (model pixels) and (N,) whether found; ``what``
    names the frames in the progress line and in warnings."""
    return mode.track_generated(images, TRACKING_UPSCALE,
                                lambda frames: with_progress(frames, f"tracking {what}", len(images)), what)


def viewer_figures(mode: Mode, clip: SubjectClip, conditioning: np.ndarray) -> ViewerFigures:
    """Sharpness and the look-alike figure, with the target's training frames as the reference."""
    picks = reference_picks(clip.train_end)
    proxies = clip.proxies[torch.as_tensor(picks, device=clip.proxies.device)].permute(0, 2, 3, 1).cpu().numpy()
    return mode.viewer_figures(clip_frames(clip, picks), conditioning[picks], region_masks(proxies, mode))


def frame_metrics(images: np.ndarray, real_float: np.ndarray, masks: np.ndarray, conditioning: np.ndarray,
                  scales: np.ndarray, flows: list[np.ndarray], mode: Mode, what: str) -> dict[str, np.ndarray]:
    """Per held-out frame; ``flows[t - 1]`` is the real frames' flow from t back to t-1; ``what``
    names the frames."""
    generated_float = images.astype(np.float32) / 255
    detected, found = track_generated(images, mode, what)
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
        summary = {key: float(np.nanmean(values[key][selected])) for key in (*METRIC_KEYS, "lpips", *VIEWER_KEYS)
                   if key in values}
    summary["missed_detections"] = int((~values["detected"][selected]).sum())
    return summary


def real_means(figures: dict[str, np.ndarray]) -> dict[str, float]:
    """The real frames' own viewer figures, their floor (NaN where none has a value)."""
    with quiet_nan():
        return {key: float(np.nanmean(values)) for key, values in figures.items()}


def summarize(per_frame: dict, real_float: np.ndarray, flows: list[np.ndarray], subject: Subject, config: EvalConfig,
              checkpoint: dict, novel: dict, lpips_unavailable: str, real_viewer: dict, viewer_note: str) -> dict:
    real_flicker = [metrics.warping_error(real_float[t - 1], real_float[t], flows[t - 1]) for t in range(1, len(real_float))]
    every = np.ones(len(real_float), bool)
    systems = {name: system_summary(values, every) for name, values in per_frame.items()}
    systems_novel = {name: system_summary(values, novel["mask"]) for name, values in per_frame.items()}
    return {"checkpoint": str(config.checkpoint), "checkpoint_step": checkpoint["step"], "subject": str(subject.root),
            "mode": subject.mode.name, "held_out_frames": int(len(real_float)), "resolution": checkpoint["resolution"],
            "systems": systems, "real": {"flicker": float(np.mean(real_flicker)) if real_flicker else float("nan"),
                                         **real_means(real_viewer)},
            "novel_pose": {"frames": int(novel["mask"].sum()), "threshold": novel["threshold"],
                           "nearest_distance": [round(float(d), 4) for d in novel["distances"]], "rule": NOVELTY_RULE},
            "systems_novel": systems_novel,
            "lpips": f"unavailable: {lpips_unavailable}" if lpips_unavailable else report.LPIPS_COMPUTED,
            "pose_distance_note": f"mean keypoint distance / {subject.mode.pose_scale}; "
                                  f"a frame where the tracker finds nothing counts {metrics.MISSED_POSE_DISTANCE}",
            **({"viewer_note": viewer_note} if viewer_note else {}), "config": config_dict(config)}


