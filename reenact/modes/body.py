"""The body mode: Everybody Dance Now. Holistic keypoints, a coloured skeleton proxy, pose
normalisation onto the target, and Everybody Dance Now's face enhancer."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from reenact.errors import ReenactError
from reenact.modes.base import Mode, Motion, enlarged
from reenact.stabilise import StabiliserSettings


class BodyMode(Mode):
    name = "body"
    who = "person"
    target_keys = ("crop", "ground")
    # A skeleton's flow can be trusted only on its thin lines: limbs moving unexplained take the
    # new frame all around them (chosen on the fidelity benchmark, README).
    stabiliser = StabiliserSettings(blend=0.95, sparse_proxy=True)
    # With the shift-consistency loss, taiji's flicker 1.33x -> 1.20x real; half the previous frames
    # real then made the generator lean on them and leave a fast driver's arms behind (README).
    real_previous_share = 0.0
    shift_consistency_weight = 10.0
    l1_shift = 0                   # not yet measured on bodies
    has_expressions = False
    has_texture_coordinates = False
    pose_scale = "body height"
    region_grow = 16

    @property
    def cross_note(self) -> str:
        from reenact.evaluation.metrics import MISSED_POSE_DISTANCE

        return ("pose_distance: keypoints the body tracker finds on the output against the driver's keypoints "
                "normalised onto the subject, mean distance over the retargeted body height; a missed detection "
                f"counts {MISSED_POSE_DISTANCE}")

    def track(self, video, config):
        from reenact.body import stage

        return stage.track(video, config)

    def write(self, folder: Path, video, tracks, config) -> dict:
        from reenact.body import stage

        return stage.write(folder, video, tracks, config)

    def target_fields(self, subject) -> dict:
        return {"crop": subject.meta["crop"], "ground": subject.meta["ground"]}

    def footage_coverage(self, target: dict, resolution: int) -> np.ndarray | None:
        from reenact.body.crop import Crop, footage_coverage

        if "source_size" not in target:
            return None
        return footage_coverage(Crop.from_dict(target["crop"]), tuple(target["source_size"]), resolution)

    def loss_regions(self, subject) -> np.ndarray:
        from reenact.body.regions import person_regions

        return person_regions(subject.proxies())

    def enhancer_heads(self, subject, resolution: int) -> np.ndarray:
        from reenact.body.head import head_centers

        centers, seen = head_centers(self._keypoints_in_model(subject, resolution), subject.meta["config"]["min_confidence"])
        return np.concatenate([centers, seen[:, None]], axis=1)

    def choose_reference(self, subject, training_frames: int):
        from reenact.body.reference import ReferenceWarp, choose_reference

        points, valid = self._keypoints_in_model(subject, subject.resolution), subject.tracks["valid"]
        min_confidence = subject.meta["config"]["min_confidence"]
        picked = choose_reference(points, valid, training_frames, min_confidence)
        return ReferenceWarp(np.array(subject.frames()[picked]), points[picked], min_confidence)

    def reference_warp(self, state: dict | None):
        from reenact.body.reference import ReferenceWarp

        return ReferenceWarp.from_state(state) if state is not None else None

    def model_proxies(self, subject, reference) -> np.ndarray:
        if reference is None:
            return subject.proxies()
        from reenact.body.reference import WithReference

        return WithReference(subject.proxies(), self._keypoints_in_model(subject, subject.resolution), reference)

    def own_flows(self, subject, frames: range) -> Iterator[np.ndarray]:
        from reenact.body.skeleton import SkeletonRenderer

        points, renderer = self._keypoints_in_model(subject, subject.resolution), SkeletonRenderer(subject.resolution)
        return (renderer.backward_flow(points[t], points[max(t - 1, 0)]) for t in frames)

    def check_options(self, edits: tuple[str, ...], paste_back: bool, target: dict, checkpoint: str) -> None:
        if edits or paste_back:
            raise ReenactError(f"{checkpoint}: --edit and --paste-back need a face checkpoint, this one is {self.name}")

    def tracks_to_arrays(self, tracks) -> dict[str, np.ndarray]:
        return {"valid": tracks.valid, "keypoints": tracks.keypoints.astype(np.float32)}

    def tracks_from_arrays(self, arrays: dict[str, np.ndarray]):
        from reenact.body.stage import BodyTracks

        return BodyTracks(arrays["valid"], arrays["keypoints"])

    def retarget(self, tracks, target: dict, edits: tuple[str, ...] = ()) -> Motion:
        from reenact.body.head import head_centers
        from reenact.body.retarget import retarget_keypoints
        from reenact.body.skeleton import SkeletonRenderer
        from reenact.drive import Drive
        from reenact.evaluation.cross import retargeted_body

        in_crop = retarget_keypoints(tracks, target)
        renderer = SkeletonRenderer(target["subject_resolution"])
        centers, seen = head_centers(in_crop, target["track_config"]["min_confidence"])
        heads = np.concatenate([centers, seen[:, None]], axis=1)
        flow = lambda t: renderer.backward_flow(in_crop[t], in_crop[t - 1]) if t > 0 else None
        return Motion(len(tracks.valid), tracks.valid,
                      drive=lambda t: Drive(renderer.render(in_crop[t]), flow(t), head=heads[t], points=in_crop[t]),
                      wanted=lambda resolution: retargeted_body(in_crop, tracks.valid, target["subject_resolution"],
                                                                resolution))

    def live_driver(self, target: dict, edits: tuple[str, ...], device):
        from reenact.body.driver import BodyDriver

        return BodyDriver(target)

    def conditioning_points(self, subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        from reenact.evaluation.metrics import body_heights

        points = self._keypoints_in_model(subject, resolution)[:, :33]
        return points, body_heights(points, resolution)

    def pose_features(self, subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        from reenact.evaluation.systems import body_pose_features

        return body_pose_features(self._keypoints_in_model(subject, resolution), 0.5)

    @staticmethod
    def _keypoints_in_model(subject, resolution: int) -> np.ndarray:
        from reenact.body.crop import Crop

        return Crop.from_dict(subject.meta["crop"]).to_crop_pixels(subject.tracks["keypoints"], resolution)

    def viewer_figures(self, frames: np.ndarray, points: np.ndarray, masks: np.ndarray):
        from reenact.evaluation import appearance

        reference = appearance.reference_part_colours(frames, points)
        return appearance.ViewerFigures(
            appearance.PartEnergyReference.from_footage(frames, masks, points), "appearance_distance",
            lambda images, pose: appearance.appearance_distance(appearance.part_colours(images, pose), reference))

    def track_generated(self, images: np.ndarray, upscale: int, progress, what: str) -> tuple[np.ndarray, np.ndarray]:
        from reenact.body.tracker import pose_model, track_body

        size = images.shape[1] * upscale
        keypoints = track_body(progress(enlarged(images, size)), (size, size), pose_model)
        found = (keypoints[:, [11, 12, 23, 24], 2] >= 0.5).sum(axis=1) >= 3
        return keypoints[:, :33, :2] / upscale, found


BODY = BodyMode()
