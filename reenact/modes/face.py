"""The face mode: Deep Video Portraits. FaceMesh and the fitted face model, a correspondence
image plus eye-gaze map as the proxy, expressions and relative head pose retargeted onto the
target's identity."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from reenact.errors import ReenactError
from reenact.modes.base import Mode, Motion, enlarged
from reenact.stabilise import StabiliserSettings


@functools.lru_cache(maxsize=2)
def proxy_renderer(resolution: int):
    from reenact.face.model import load_face_model
    from reenact.face.proxy import FaceProxyRenderer

    return FaceProxyRenderer(load_face_model(), resolution)


class FaceMode(Mode):
    name = "face"
    who = "face"
    target_keys = ("identity", "focal", "mean_rotation", "mean_translation", "image_size", "crop_size", "iris_radius",
                   "expression_names", "source_video", "frame_count")
    # The correspondence image covers every pixel of the face, so its flow is trusted pixel by pixel.
    # The detail restore's one gain, matched over the face and its surround, made up for the moving
    # hairline's lost detail on a face that kept its own: d6's real footage, stabilised, read 1.16
    # of its own sharpness, with glitter in the eyes; capped where the face is drawn, 1.03 (README).
    stabiliser = StabiliserSettings(blend=0.93, detail_within_drawn=True)
    # 0.5 cost d6 sharpness (0.86 -> 0.79 held out) for no less flicker once stabilised (README).
    real_previous_share = 0.0
    # Weight 10 on d6: flicker 1.34x -> 1.27x real, but sharpness 0.91 -> 0.79 held out (README).
    shift_consistency_weight = 0.0
    # The fitted mesh's outline lies a pixel or two off the face's edge against hair and wall, and
    # plain L1 paints that edge as a blur. Up to 2 px of slack per 8-px square, d6 held out:
    # sharpness 0.82 -> 0.90 (the generator alone 0.77 -> 0.87), flicker 1.28x -> 1.33x (README).
    l1_shift = 2
    has_expressions = True
    has_texture_coordinates = True
    pose_scale = "inter-ocular distance"
    region_grow = 32

    @property
    def cross_note(self) -> str:
        from reenact.evaluation.metrics import MISSED_POSE_DISTANCE

        return ("pose_distance: FaceMesh landmarks found on the output against the retargeted face model's landmarks, "
                f"over the inter-ocular distance (a miss counts {MISSED_POSE_DISTANCE}). The face model is refitted to "
                "the output's landmarks (identity refitted too, as `track` does) for the expression correlations and "
                "the head rotation error; the rotation error compares each frame's rotation relative to its sequence's "
                "mean, so a fixed offset between the output's crop camera and the subject's frame camera cancels")

    def track(self, video, config):
        from reenact.face import stage

        return stage.track(video, config)

    def write(self, folder: Path, video, tracks, config) -> dict:
        from reenact.face import stage

        return stage.write(folder, video, tracks, config)

    def target_fields(self, subject) -> dict:
        from reenact.face.retarget import target_fields

        return target_fields(subject)

    def loss_regions(self, subject) -> np.ndarray:
        from reenact.face.regions import face_regions

        return face_regions(subject.tracks, subject.resolution)

    def own_flows(self, subject, frames: range) -> Iterator[np.ndarray]:
        from reenact.face.retarget import image_center

        tracks, renderer = subject.tracks, proxy_renderer(subject.resolution)
        vertices = lambda f: renderer.vertices_in_crops(tracks["identity"], tracks["expression"][[f]], tracks["rotation"][[f]],
                                                        tracks["translation"][[f]], float(tracks["focal"]),
                                                        image_center(tracks), tracks["crops"][[f]])
        previous = vertices(max(frames.start - 1, 0))
        for t in frames:
            current = vertices(t)
            yield renderer.backward_flow(current, previous)[0]
            previous = current

    def check_options(self, edits: tuple[str, ...], paste_back: bool, target: dict, checkpoint: str) -> None:
        from reenact.face.retarget import parse_edits

        parse_edits(edits, target["expression_names"])
        if paste_back and not Path(target["source_video"]).is_file():
            raise ReenactError(f"--paste-back: the target's video {target['source_video']} is not there any more")

    def tracks_to_arrays(self, tracks) -> dict[str, np.ndarray]:
        from reenact.face.model import load_face_model

        return tracks.to_motion_arrays(load_face_model().expression_names)

    def tracks_from_arrays(self, arrays: dict[str, np.ndarray]):
        from reenact.face.tracking import FaceTracks

        return FaceTracks.from_motion_arrays(arrays)

    def retarget(self, tracks, target: dict, edits: tuple[str, ...] = ()) -> Motion:
        from reenact.drive import Drive
        from reenact.evaluation.cross import retargeted_face
        from reenact.face.retarget import proxy_source

        proxy_and_flow, crops, retargeted = proxy_source(tracks, target, edits)
        landmarks = retargeted["landmarks"]
        return Motion(len(tracks.valid), tracks.valid,
                      drive=lambda t: Drive(*proxy_and_flow(t), face_crop=crops[t], points=landmarks[t]),
                      wanted=lambda resolution: retargeted_face(retargeted, crops, tracks.valid, resolution))

    def live_driver(self, target: dict, edits: tuple[str, ...], device):
        from reenact.face.driver import FaceDriver

        return FaceDriver(target, edits, device)

    def live_tracking_differences(self, settings: dict) -> list[str]:
        if settings.get("face_landmarks", "mediapipe") != "mediapipe":
            return [f"face_landmarks = {settings['face_landmarks']}; live fits the face model to FaceMesh's points"]
        return []

    def conditioning_points(self, subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        from reenact.evaluation.metrics import face_points_in_crop

        return face_points_in_crop(subject.tracks["fitted_landmarks"], subject.tracks["crops"], resolution)

    def pose_features(self, subject, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        from reenact.evaluation.systems import face_pose_features

        return face_pose_features(subject.tracks)

    def track_generated(self, images: np.ndarray, upscale: int, progress, what: str) -> tuple[np.ndarray, np.ndarray]:
        from reenact.face.tracker import track_face

        size = images.shape[1] * upscale
        landmarks, found = track_face(progress(enlarged(images, size)), (size, size), what)
        return landmarks[:, :468, :2] / upscale, found

    def viewer_figures(self, frames: np.ndarray, points: np.ndarray, masks: np.ndarray):
        from reenact.evaluation.appearance import ViewerFigures, whole_region_energy
        from reenact.evaluation.identity import identity_distances, load_face_embedder, reference_embedding

        reference_energy = whole_region_energy(frames, masks)
        embedder, unavailable = load_face_embedder()
        if embedder is None:
            return ViewerFigures(reference_energy, "identity_distance", None, unavailable)
        reference = reference_embedding(embedder, frames)
        return ViewerFigures(reference_energy, "identity_distance", lambda images, _: identity_distances(embedder(images), reference))

    def cross_figures(self, detected: np.ndarray, found: np.ndarray, wanted, resolution: int) -> dict:
        from reenact.evaluation.cross import expression_figures

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return expression_figures(detected, found, wanted, resolution)


FACE = FaceMode()
