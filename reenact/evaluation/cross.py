"""Cross-reenactment figures: the subject driven by another person's motion.

No real frame shows the subject in the driver's motion, so every figure compares the output with
what it was asked to show, the driver's motion retargeted onto the subject: body keypoints
normalised into the subject's crop, or the driver's expressions and head motion on the
subject's face. The trackers are run on the output (by the caller) and, for faces, the face
model is refitted to what they found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reenact.evaluation import metrics
from reenact.evaluation.appearance import quiet_nan
from reenact.evaluation.systems import body_pose_features, face_pose_features, nearest_neighbours
from reenact.progress import with_progress

MIN_CONFIDENCE = 0.5
# The expression weights whose following is measured: the ones a viewer notices first.
FOLLOWED_EXPRESSIONS = ("eyeBlink_L", "eyeBlink_R", "jawOpen")
NOTES = {
    "frames": "figures are over the driver frames where the driver was tracked, except flicker (every pair of "
              "consecutive output frames)",
    "flicker": "temporal warping error between consecutive output frames under DIS optical flow computed on the output "
               "itself: the change that smooth motion does not explain. No real frames exist, so it is not the "
               "self-reenactment flicker (which uses the real frames' flow) and the two are not comparable. An output that "
               "stands still scores 0: read it beside pose_distance",
    "sharpness": "sharpness: the output's high-frequency energy over the retargeted proxy's region, divided by the "
                 "target's training frames' over theirs (a body's part by part, weighted by each part's share of the region; "
                 "away from the black padding where the target's crop reaches past its video)",
    "face_enhancer": "the output is the generator's, without the body face enhancer, as in self-reenactment",
}


@dataclass
class Retargeted:
    """What the output should show, per driver frame, at the model's resolution."""
    valid: np.ndarray                    # (T,) the driver was tracked
    points: np.ndarray                   # (T, K, 3) keypoints or FaceMesh points, model pixels, confidence
    scales: np.ndarray                   # (T,) body height or inter-ocular distance
    features: np.ndarray                 # retrieval features, as systems.*_pose_features
    present: np.ndarray
    expression: np.ndarray | None = None  # face only: (T, E) weights
    rotation: np.ndarray | None = None    # face only: (T, 3, 3)


def retargeted_body(keypoints: np.ndarray, valid: np.ndarray, subject_resolution: int, resolution: int) -> Retargeted:
    """From retargeted keypoints in subject pixels (reenact.body.retarget.retarget_keypoints)."""
    points = keypoints[:, :33].copy()
    points[..., :2] *= resolution / subject_resolution
    features, present = body_pose_features(points, MIN_CONFIDENCE)
    return Retargeted(valid, points, metrics.body_heights(points, resolution, MIN_CONFIDENCE), features, present)


def retargeted_face(parameters: dict[str, np.ndarray], crops: np.ndarray, valid: np.ndarray, resolution: int) -> Retargeted:
    """From reenact.face.retarget.retarget_tracks and the crops transfer renders them in."""
    points, interocular = metrics.face_points_in_crop(parameters["landmarks"], crops, resolution)
    features, present = face_pose_features(parameters)
    return Retargeted(valid, points, interocular, features, present, parameters["expression"], parameters["rotation"])


def retrieve(wanted: Retargeted, train_features: np.ndarray, train_present: np.ndarray) -> np.ndarray:
    """(T,) the training frame whose pose is closest to each retargeted pose (retrieval's distance)."""
    features = np.concatenate([train_features, wanted.features])
    present = np.concatenate([train_present, wanted.present])
    picks, _ = nearest_neighbours(features, present, len(train_features))
    return picks


def output_flicker(frames: np.ndarray) -> float:
    """Mean warping error of each output frame from the previous one under the output's own DIS flow."""
    images = frames.astype(np.float32) / 255
    errors = [metrics.warping_error(images[t - 1], images[t], metrics.real_frame_flow(images[t - 1], images[t]))
              for t in range(1, len(images))]
    return float(np.mean(errors)) if errors else float("nan")


def following_figures(detected: np.ndarray, found: np.ndarray, wanted: Retargeted) -> dict:
    """Pose distance, missed detections and detection share over the frames the driver was tracked in."""
    distances = []
    for t in np.flatnonzero(wanted.valid):
        confident = wanted.points[t, :, 2] >= MIN_CONFIDENCE
        distances.append(metrics.pose_distance(detected[t][confident], bool(found[t]), wanted.points[t, confident, :2],
                                               wanted.scales[t]))
    tracked = found[wanted.valid]
    return {"pose_distance": float(np.mean(distances)) if distances else float("nan"),
            "missed_detections": int((~tracked).sum()),
            "detection_share": float(tracked.mean()) if len(tracked) else float("nan")}


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r; NaN when either series is constant (a correlation is undefined there)."""
    if len(a) < 2 or np.std(a) < 1e-6 or np.std(b) < 1e-6:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def relative_rotation_error(rotation: np.ndarray, wanted: np.ndarray) -> float:
    """Mean angle in degrees between each frame's rotation relative to its sequence's mean, output vs wanted.

    Relative in the head's frame (mean⁻¹ · R), so a fixed camera rotation between the two cancels:
    the output's crop is not the subject's full frame."""
    from reenact.face.retarget import mean_rotation

    relative = mean_rotation(rotation).T @ rotation
    relative_wanted = mean_rotation(wanted).T @ wanted
    difference = relative @ np.transpose(relative_wanted, (0, 2, 1))
    cosine = np.clip((np.trace(difference, axis1=1, axis2=2) - 1) / 2, -1, 1)
    return float(np.degrees(np.arccos(cosine)).mean())


def expression_figures(detected: np.ndarray, found: np.ndarray, wanted: Retargeted, resolution: int) -> dict:
    """Refit the face model to the output's landmarks; correlate the followed weights and compare head motion."""
    from reenact.face.fitting import fit_clip
    from reenact.face.model import load_face_model

    used = wanted.valid & found
    figures = {f"{name}_correlation": float("nan") for name in FOLLOWED_EXPRESSIONS}
    figures["head_rotation_error_deg"] = float("nan")
    if used.sum() < 2:
        return figures
    model = load_face_model()
    fit = fit_clip(model, detected[used], np.ones(int(used.sum()), bool), (resolution, resolution))
    names = list(model.expression_names)
    for name in FOLLOWED_EXPRESSIONS:
        index = names.index(name)
        figures[f"{name}_correlation"] = correlation(fit.expression[:, index], wanted.expression[used, index])
    figures["head_rotation_error_deg"] = relative_rotation_error(fit.rotation, wanted.rotation[used])
    return figures


def system_figures(frames: np.ndarray, detected: np.ndarray, found: np.ndarray, wanted: Retargeted, mode) -> dict:
    """Every cross-reenactment figure for one system's (T, R, R, 3) uint8 output; ``mode`` adds its own."""
    figures = following_figures(detected, found, wanted)
    figures.update(mode.cross_figures(detected, found, wanted, frames.shape[1]))
    figures["flicker"] = output_flicker(frames)
    return figures


def viewer_summary(figures: dict[str, np.ndarray], valid: np.ndarray) -> dict[str, float]:
    """Means over the driver frames where the driver was tracked (NaN where none has a value)."""
    with quiet_nan():
        return {key: float(np.nanmean(values[valid])) for key, values in figures.items()}


@dataclass
class DrivenSystems:
    """Each system's frames driven by a driver's retargeted motion, before they are measured."""
    driver: str                          # the driver video's path
    motion: object                       # reenact.modes.base.Motion
    wanted: Retargeted
    frames: dict[str, np.ndarray]        # (T, R, R, 3) uint8 by system
    proxies: np.ndarray                  # (T, R, R, 3) uint8: the model's proxies' RGB channels


def drive_systems(reenactor, motion, driver_path: str, clip, features: np.ndarray, present: np.ndarray) -> DrivenSystems:
    """The model's systems and retrieval driven by ``motion``, the driver's retargeted motion."""
    from reenact.evaluation.held_out import MODEL_RUNS, clip_frames, system_frames

    wanted = motion.wanted(reenactor.resolution)
    outputs = list(with_progress(reenactor.run_each(reenactor.driven(motion), MODEL_RUNS),
                                 f"driving {', '.join(MODEL_RUNS)} by {driver_path}", motion.frame_count))
    picks = retrieve(wanted, features[:clip.train_end], present[:clip.train_end])
    frames = {**system_frames(outputs), "nearest_neighbour": clip_frames(clip, picks)}
    return DrivenSystems(driver_path, motion, wanted, frames, np.stack([output["model"].proxy for output in outputs]))


def cross_reenactment(driven: DrivenSystems, tracked: dict[str, tuple[np.ndarray, np.ndarray]], mode, viewer) -> dict:
    """The cross-reenactment figures of each driven system, from the points the tracker found in its
    frames (output_tracking)."""
    from reenact.evaluation.held_out import region_masks

    masks, wanted = region_masks(driven.proxies, mode), driven.wanted
    reference = viewer.reference(masks, wanted.points)      # the same regions for every system
    systems = {name: {**system_figures(images, *tracked[name], wanted, mode),
                      **viewer_summary(viewer(images, masks, wanted.points, reference), wanted.valid)}
               for name, images in driven.frames.items()}
    notes = {**{key: NOTES[key] for key in ("frames", "flicker")}, mode.name: mode.cross_note,
             **{key: NOTES[key] for key in ("face_enhancer", "sharpness")}, **({viewer.key: viewer.note} if viewer.note else {})}
    return {"driver": driven.driver, "frames": int(driven.motion.frame_count), "driver_tracked": int(driven.motion.valid.sum()),
            "systems": systems, "notes": notes}
