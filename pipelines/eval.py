"""`reenact eval`: self-reenactment on the held-out frames, against baselines, with a report.

The model regenerates the last frames of its own subject (never trained on) from their proxies.
It is compared with the real frames, as are the same model without its previous-frame input
and nearest-neighbour retrieval of the training frame with the closest pose. With ``--driver``,
another person's motion drives the subject too (cross-reenactment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reenact.config import EvalConfig
from reenact.data import SubjectClip
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.evaluation import held_out, metrics, report
from reenact.evaluation.cross import cross_reenactment, drive_systems
from reenact.evaluation.output_tracking import track_systems
from reenact.files import check_writable, write_json
from reenact.io import probe_video
from reenact.models.lpips import load_lpips
from reenact.progress import info
from reenact.reenactment import Reenactor
from reenact.subject import Subject


def run(config: EvalConfig) -> dict:
    # 1. The target and the subject it was trained on.
    reenactor = Reenactor.load(config.checkpoint, resolve_device(config.device))
    checkpoint, mode, device = reenactor.checkpoint, reenactor.mode, reenactor.device
    subject = Subject.load(config.subject or checkpoint.target["subject"])
    if subject.mode is not mode:
        raise ReenactError(f"{config.checkpoint}: a {mode.name} checkpoint, but {subject.root} is a {subject.mode.name} subject")
    out = Path(config.report) if config.report else Path.cwd() / f"{Path(config.checkpoint).stem}.eval"
    check_writable(out)
    driver = probe_video(config.driver) if config.driver else None     # a bad driver fails before the slow part
    # 2. The held-out frames at the model's resolution, and what conditioned them.
    resolution = reenactor.resolution
    clip = SubjectClip(subject.frames(), reenactor.model_proxies(subject), subject.tracks["valid"], resolution, reenactor.window,
                       checkpoint.config["validation_fraction"]).to(device)
    real = clip.frames[clip.train_end:].permute(0, 2, 3, 1).cpu().numpy()
    conditioning, scales = mode.conditioning_points(subject, resolution)
    # 3. The systems' frames: the held-out part, and with a driver, its retargeted motion.
    features, present = mode.pose_features(subject, resolution)
    nearest, novel = held_out.nearest_frames(clip, features, present, gap=round(subject.meta["fps"]))
    frames = {**held_out.system_frames(held_out.generate_held_out(reenactor, clip, held_out.MODEL_RUNS, subject)),
              "nearest_neighbour": nearest}
    held_part, driven_part = f"of {subject.root}'s held-out part", f"driven by {config.driver}"
    parts = {held_part: frames}
    if driver is not None:
        motion = reenactor.retarget(reenactor.track(config.driver, driver, config.device))
        driven = drive_systems(reenactor, motion, str(config.driver), clip, features, present)
        parts[driven_part] = driven.frames
    # 4. What the tracker finds in every system's frames, all at once.
    tracked = track_systems(parts, mode)
    # 5. Held-out metrics, per frame and overall.
    masks = held_out.region_masks(clip.proxies[clip.train_end:].permute(0, 2, 3, 1).cpu().numpy(), mode)
    real_float = real.astype(np.float32) / 255
    flows = [metrics.real_frame_flow(real_float[t - 1], real_float[t]) for t in range(1, len(real_float))]
    per_frame = {name: held_out.frame_metrics(images, *tracked[held_part][name], real_float, masks, conditioning[clip.train_end:],
                                              scales[clip.train_end:], flows)
                 for name, images in frames.items()}
    lpips, lpips_unavailable = load_lpips()
    if lpips is not None:
        for name, images in frames.items():
            per_frame[name]["lpips"] = held_out.lpips_per_frame(lpips.to(device), images, real, device)
    viewer = held_out.viewer_figures(mode, clip, conditioning, mode.footage_coverage(reenactor.target, resolution))
    held_out_points, real_energy = conditioning[clip.train_end:], viewer.energy(real, masks)
    for name, images in frames.items():
        per_frame[name].update(viewer(images, masks, held_out_points, real_energy))
    results = held_out.summarize(per_frame, real_float, flows, subject, config, checkpoint.state, novel, lpips_unavailable,
                                 viewer(real, masks, held_out_points, real_energy), viewer.note)
    # 6. Cross-reenactment, measured against the driver's motion retargeted onto the subject.
    if driver is not None:
        results["cross"] = cross_reenactment(driven, tracked[driven_part], mode, viewer)
    # 7. The report: JSON, a markdown table, per-frame plots, and real | model | nearest video.
    report.write_report(out, results, per_frame, real, frames, subject.meta["fps_fraction"])
    if driver is not None:
        report.write_cross_video(out / "cross_side_by_side.mp4", {"proxy": driven.proxies, **driven.frames}, driver.fps_fraction)
    if config.json:
        write_json(config.json, results)
    info(f"wrote {out}/ ({len(real)} held-out frames)" + (f" and {config.json}" if config.json else ""))
    return results
