"""Self-reenactment on a subject's held-out frames: the systems' frames, per-frame metrics and their summaries.

The model regenerates the last frames of its own subject (never trained on) from their proxies,
as `transfer` would; it is compared with the real frames, as are the same model without its
previous-frame input and nearest-neighbour retrieval of the training frame with the closest pose.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import cv2
import numpy as np
import torch

from reenact.config import EvalConfig, config_dict
from reenact.data import SubjectClip
from reenact.drive import Drive
from reenact.evaluation import metrics, report
from reenact.evaluation.appearance import ViewerFigures, clear_of_padding, quiet_nan, reference_picks, within_footage
from reenact.evaluation.systems import NOVELTY_QUANTILE, nearest_neighbours, novelty_threshold
from reenact.models.lpips import LearnedPerceptualDistance
from reenact.modes import Mode
from reenact.progress import with_progress
from reenact.reenactment import Output, Reenactor, StreamOptions
from reenact.subject import Subject

METRIC_KEYS = ("psnr", "ssim", "psnr_masked", "ssim_masked", "pose_distance", "flicker")
VIEWER_KEYS = ("sharpness", "appearance_distance", "identity_distance")     # reenact/evaluation/appearance.py
NOVELTY_RULE = (f"held-out frames whose nearest training pose (the distance retrieval uses) is farther than the "
                f"{NOVELTY_QUANTILE:.0%} quantile of training poses' distances to the nearest training pose at least "
                f"a second away from them")
# The model's generator runs, for held-out and cross-reenactment alike: `model` is what `transfer`
# shows. None has the body's face enhancer: the figures are the generator's.
MODEL_RUNS = {"model": StreamOptions(enhance=False),
              "model_no_temporal": StreamOptions(feedback=False, stabilise=False, enhance=False)}


def generate_held_out(reenactor: Reenactor, clip: SubjectClip, options: dict[str, StreamOptions],
                      subject: Subject | None = None) -> list[dict[str, Output]]:
    """Each held-out frame's outputs with each of ``options`` (by their names), in order, from the
    subject's own proxies. With the ``subject``, stabilisers follow its proxies' rendered flow, as
    in `transfer`."""
    frames = range(clip.train_end, len(clip.frames))
    followed = subject is not None and any(run.stabilise for run in options.values())
    drives = (Drive(None, flow) for flow in reenactor.mode.own_flows(subject, frames)) if followed else itertools.repeat(None)
    proxies = ((clip.proxies[t], drive) for t, drive in zip(frames, drives))
    return list(with_progress(reenactor.run_each(proxies, options), f"generating {', '.join(options)} frames", len(frames)))


def system_frames(outputs: list[dict[str, Output]]) -> dict[str, np.ndarray]:
    """Each model system's (N, R, R, 3) uint8 frames from the outputs of MODEL_RUNS. `model_unstabilised`
    is the `model` run before its stabiliser: the generator is fed its unstabilised output either
    way, so a run without the stabiliser would repeat the same frames."""
    return {"model": np.stack([output["model"].frame for output in outputs]),
            "model_unstabilised": np.stack([output["model"].unstabilised for output in outputs]),
            "model_no_temporal": np.stack([output["model_no_temporal"].frame for output in outputs])}


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


def viewer_figures(mode: Mode, clip: SubjectClip, conditioning: np.ndarray,
                   coverage: np.ndarray | None = None) -> ViewerFigures:
    """Sharpness and the look-alike figure, with the target's training frames as the reference;
    sharpness where the (R, R) footage ``coverage`` (``Mode.footage_coverage``) is whole."""
    picks = reference_picks(clip.train_end)
    proxies = clip.proxies[torch.as_tensor(picks, device=clip.proxies.device)].permute(0, 2, 3, 1).cpu().numpy()
    footage = clear_of_padding(coverage)
    masks = within_footage(region_masks(proxies, mode), footage)
    viewer = mode.viewer_figures(clip_frames(clip, picks), conditioning[picks], masks)
    return dataclasses.replace(viewer, footage=footage)


def frame_metrics(images: np.ndarray, detected: np.ndarray, found: np.ndarray, real_float: np.ndarray,
                  masks: np.ndarray, conditioning: np.ndarray, scales: np.ndarray,
                  flows: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per held-out frame, with the points the tracker found in it (output_tracking); ``flows[t - 1]``
    is the real frames' flow from t back to t-1."""
    generated_float = images.astype(np.float32) / 255
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


