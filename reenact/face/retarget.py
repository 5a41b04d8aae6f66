"""Face retargeting for transfer, as in Deep Video Portraits: the target's identity with the
source's expressions, gaze and blinks, and the source's head motion relative to its mean pose
applied around the target's mean pose."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from reenact.errors import ReenactError
from reenact.face.arkit import resolve_edit_name
from reenact.face.crop import face_crops
from reenact.face.gaze import irises_from_offsets
from reenact.face.geometry import project
from reenact.face.model import load_face_model
from reenact.face.proxy import FaceProxyRenderer

RENDER_BATCH = 32


def mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """The rotation closest to the average of (T, 3, 3) rotations (projection onto SO(3))."""
    u, _, vt = np.linalg.svd(rotations.mean(axis=0))
    return u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt


def target_fields(subject) -> dict:
    """What transfer needs from a face subject folder: identity, mean pose, camera, framing."""
    tracks, valid = subject.tracks, subject.tracks["valid"]
    return {
        "identity": tracks["identity"].tolist(), "focal": float(tracks["focal"]),
        "mean_rotation": mean_rotation(tracks["rotation"][valid]).tolist(),
        "mean_translation": tracks["translation"][valid].mean(axis=0).tolist(),
        "image_size": [int(v) for v in tracks["image_size"]], "crop_size": int(tracks["crops"][0, 2]),
        "iris_radius": tracks["iris_offsets"][valid, :, 2].mean(axis=0).tolist(),
        "expression_names": [str(n) for n in tracks["expression_names"]],
        "source_video": subject.meta["source"]["path"], "frame_count": int(len(valid)),
    }


def parse_edits(edits: tuple[str, ...], names: list[str]) -> list[tuple[int, float]]:
    """``NAME=+0.2`` → (index, 0.2) for the model's name or ARKit's (``eyeBlinkLeft``; a shape the
    model splits in halves moves both); unknown names are errors that list the valid ones."""
    parsed = []
    for edit in edits:
        name, _, value = edit.partition("=")
        moved = resolve_edit_name(name, names, edit)
        try:
            parsed.extend((names.index(model_name), float(value)) for model_name in moved)
        except ValueError:
            raise ReenactError(f"--edit {edit}: expected NAME=+VALUE or NAME=-VALUE") from None
    return parsed


def apply_edits(expression: np.ndarray, edits: tuple[str, ...], names: list[str]) -> np.ndarray:
    """Add each edit to its weight in every frame, clamped to [0, 1]."""
    edited = expression.copy()
    for index, amount in parse_edits(edits, names):
        edited[:, index] += amount
    return edited.clip(0, 1)


def source_mean_pose(rotation: np.ndarray, translation: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The source's mean head rotation (3, 3) and translation (3,) over its valid frames."""
    return mean_rotation(rotation[valid]), translation[valid].mean(axis=0)


def retarget_pose(source_rotation: np.ndarray, source_translation: np.ndarray,
                  source_mean: tuple[np.ndarray, np.ndarray], target: dict) -> tuple[np.ndarray, np.ndarray]:
    """Source rotations and translations relative to the source's mean pose, applied around the target's mean.

    Translations are scaled by the ratio of the mean distances to the camera, so a step towards
    the camera stays a step of the same apparent size. ``transfer`` takes the source's mean over
    its whole clip, ``live`` over its first second.
    """
    source_mean_rotation, source_mean_translation = source_mean
    target_rotation, target_translation = np.array(target["mean_rotation"]), np.array(target["mean_translation"])
    rotation = source_rotation @ source_mean_rotation.T @ target_rotation
    depth_ratio = target_translation[2] / source_mean_translation[2]
    translation = target_translation + (source_translation - source_mean_translation) * depth_ratio
    return rotation, translation


def retarget_parameters(expression: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                        source_mean: tuple[np.ndarray, np.ndarray], target: dict, edits: tuple[str, ...] = (),
                        model=None) -> dict[str, np.ndarray]:
    """The source's (T, 53) expression (edited) and (T, 3, 3), (T, 3) head motion on the target:
    expression, rotation, translation and the projected landmarks (T, 468, 2), target pixels."""
    model = load_face_model() if model is None else model
    expression = apply_edits(expression, edits, list(model.expression_names))
    rotation, translation = retarget_pose(rotation, translation, source_mean, target)
    identity, focal = np.array(target["identity"], np.float32), target["focal"]
    with torch.no_grad():
        points = model.landmarks(torch.as_tensor(identity), torch.as_tensor(expression, dtype=torch.float32))
        landmarks, _ = project(points, torch.as_tensor(rotation, dtype=torch.float32),
                               torch.as_tensor(translation, dtype=torch.float32), torch.tensor(focal), image_center(target))
    return {"expression": expression, "rotation": rotation, "translation": translation, "landmarks": landmarks.numpy()}


def retarget_tracks(tracks, target: dict, edits: tuple[str, ...] = (), model=None) -> dict[str, np.ndarray]:
    """``retarget_parameters`` of a whole tracked clip, around its own mean pose."""
    source_mean = source_mean_pose(tracks.fit.rotation, tracks.fit.translation, tracks.valid)
    return retarget_parameters(tracks.expression, tracks.fit.rotation, tracks.fit.translation, source_mean, target,
                               edits, model)


def image_center(target: dict) -> tuple[float, float]:
    return target["image_size"][0] / 2, target["image_size"][1] / 2


def render_retargeted(renderer: FaceProxyRenderer, retargeted: dict[str, np.ndarray], iris_offsets: np.ndarray,
                      crops: np.ndarray, target: dict, previous: torch.Tensor | None = None
                      ) -> tuple[np.ndarray, torch.Tensor, np.ndarray | None]:
    """(B, R, R, 4) proxies of B retargeted frames, the source's raw (B, 2, 3) iris offsets placed on
    the target's irises, each frame in its crop of the target's frame; their mesh vertices; and,
    given the vertices of the frames before (``retargeted_vertices``), their rendered flows."""
    offsets = iris_offsets.copy()
    offsets[..., 2] = target["iris_radius"]          # the target's irises, moved as the source's
    irises = irises_from_offsets(retargeted["landmarks"], offsets)
    return renderer.render_moving(np.array(target["identity"], np.float32), retargeted["expression"],
                                  retargeted["rotation"], retargeted["translation"], target["focal"],
                                  image_center(target), crops, retargeted["landmarks"], irises, previous)


def retargeted_vertices(renderer: FaceProxyRenderer, retargeted: dict[str, np.ndarray], crops: np.ndarray,
                        target: dict) -> torch.Tensor:
    """(B, V, 3) the target's mesh of B retargeted frames in their crops, for the rendered flow."""
    return renderer.vertices_in_crops(np.array(target["identity"], np.float32), retargeted["expression"],
                                      retargeted["rotation"], retargeted["translation"], target["focal"],
                                      image_center(target), crops)


def proxy_source(tracks, target: dict, edits: tuple[str, ...] = ()
                 ) -> tuple[Callable[[int], tuple[np.ndarray, np.ndarray]], np.ndarray, dict[str, np.ndarray]]:
    """(t → ((R, R, 4) uint8 proxy at the subject's resolution, (R, R, 2) its backward flow to the
    proxy of t - 1), (T, 3) crops in the target's frame, the retargeted parameters)."""
    model = load_face_model()
    retargeted = retarget_tracks(tracks, target, edits, model)
    crops = face_crops(retargeted["landmarks"], tracks.valid, tracks.fps, target["image_size"], size=target["crop_size"])
    renderer = FaceProxyRenderer(model, target["subject_resolution"])
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pick = lambda frames: {key: values[frames] for key, values in retargeted.items()}

    def proxy_and_flow(t: int) -> tuple[np.ndarray, np.ndarray]:
        if t not in cache:
            cache.clear()
            frames = np.arange(t, min(t + RENDER_BATCH, len(crops)))
            before = np.maximum(frames - 1, 0)
            previous = retargeted_vertices(renderer, pick(before), crops[before], target)
            proxies, _, flows = render_retargeted(renderer, pick(frames), tracks.iris_offsets[frames], crops[frames],
                                                  target, previous)
            cache.update({int(frame): pair for frame, pair in zip(frames, zip(proxies, flows))})
        return cache[t]

    return proxy_and_flow, crops, retargeted
