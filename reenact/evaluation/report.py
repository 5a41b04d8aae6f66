"""eval's report: metrics.json, a markdown table (report.md), per-frame plots and the side-by-side videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reenact.files import atomic_path, write_json
from reenact.io import VideoWriter


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


REPORT_KEYS = ("psnr", "ssim", "psnr_masked", "ssim_masked", "lpips", "sharpness", "identity_distance",
               "appearance_distance", "pose_distance", "missed_detections", "flicker")
LPIPS_COMPUTED = ("LPIPS v0.1 on AlexNet against the real frame, over the whole frame (lower is better; "
                  "the lpips column)")
MEANINGS = {
    "psnr": "peak signal-to-noise ratio against the real frame, in dB (higher is better)",
    "ssim": "structural similarity against the real frame, 0 to 1 (higher is better)",
    "psnr_masked": "PSNR over the person or face only (higher is better)",
    "ssim_masked": "SSIM over the person or face only (higher is better)",
    "sharpness": "high-frequency (Laplacian) energy over the person or face, divided by the real frame's over the same "
                 "region, away from the black padding where the crop reaches past the video (1 is as sharp as the "
                 "footage; below it, blur)",
    "identity_distance": "dlib's face-recognition embedding of the frame against the mean of the target's training "
                         "frames' (lower is better; below 0.6 dlib calls it the same person; a frame without a face dlib finds "
                         "counts 1)",
    "appearance_distance": "CIELAB colour of each body part (torso, arms, legs) where the pose puts it, against the same "
                           "part's median colour in the target's training frames, ΔE averaged over the parts in view "
                           "(lower is better; the real frames' own is the floor)",
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
             "", "## What the figures mean", "",
             *(f"- {key}: {meaning}." for key, meaning in MEANINGS.items() if key in results["systems"]["model"]),
             f"- LPIPS: {results['lpips']}.", f"- pose_distance: {results['pose_distance_note']}.",
             *([f"- {results['viewer_note']}."] if "viewer_note" in results else []),
             "- The real frames' own: " + ", ".join(f"{key} {value:.4g}" for key, value in results["real"].items()) + ".",
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
    "sharpness": "high-frequency energy over the retargeted proxy's region, divided by the target's training frames' "
                 "(a body's part by part, weighted by each part's share of the region; away from the crop's black padding; 1 is as "
                 "sharp as the footage)",
    "identity_distance": "as in self-reenactment: dlib's face embedding against the target's (lower is better; < 0.6 "
                         "is the same person to dlib)",
    "appearance_distance": "as in self-reenactment: each body part's colour where the driver's retargeted pose puts it, "
                           "against the target's (lower is better)",
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
