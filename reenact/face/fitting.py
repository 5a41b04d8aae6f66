"""Fitting the face model to a whole clip's landmarks at once, batched in torch.

Unknowns: one identity (100,), per-frame expression weights (T, 53) in [0, 1], per-frame
rotation and translation, and one focal length. The eyeLook* weights are not fitted to
landmarks (eyelids alone can't tell gaze); they come from the irises (reenact/face/gaze.py).
The targets are FaceMesh's 468 points or, with the face-alignment backend, the 68 iBUG points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from reenact.face.layout import FACE_CHAINS
from reenact.face.geometry import axis_angle_to_matrix, project
from reenact.face.model import LEFT_EYE_OUTER, NUM_LANDMARKS, RIGHT_EYE_OUTER, FaceModel
from reenact.progress import progress_task

GAZE_EXPRESSIONS = ("eyeLook",)


@dataclass(frozen=True)
class FitSettings:
    iterations: int = 400
    rigid_iterations: int = 150
    learning_rate: float = 0.03
    eye_weight: float = 4.0            # eye outlines count this much more than other points
    mouth_weight: float = 3.0
    identity_prior: float = 2e-3       # on |identity|², identity ~ N(0, 1)
    expression_prior: float = 1e-3     # L1 on the weights: prefer few active blendshapes
    expression_smoothness: float = 0.02
    pose_smoothness: float = 1.0


@dataclass
class FaceFit:
    identity: np.ndarray               # (100,)
    expression: np.ndarray             # (T, 53) in [0, 1]
    rotation: np.ndarray               # (T, 3, 3)
    translation: np.ndarray            # (T, 3) centimetres, camera space
    focal: float                       # pixels
    fitted_landmarks: np.ndarray       # (T, 468, 2) source pixels
    error: np.ndarray                  # (T,) mean distance to the fit's targets / inter-ocular distance


@dataclass(frozen=True)
class LandmarkLayout:
    """A detector's landmark layout as the fit sees it."""
    count: int
    points: Callable[[FaceModel, torch.Tensor, torch.Tensor], torch.Tensor]   # the model's points
    outer_eye_corners: tuple[int, int]          # the subject's right, then left
    weights: Callable[[], torch.Tensor]         # (count,) relative weight of each point


def mediapipe_weights() -> torch.Tensor:
    weights = torch.ones(NUM_LANDMARKS)
    for name, factor in (("eyes", FitSettings.eye_weight), ("inner_lips", FitSettings.mouth_weight),
                         ("outer_lips", FitSettings.mouth_weight)):
        for chain in FACE_CHAINS[name]:
            weights[list(chain)] = factor
    return weights


# iBUG's jaw line (points 0-16) follows the face's silhouette, which slides over the skin as the
# head turns, while the model's points are fixed vertices: they count for less.
IBUG_JAW_WEIGHT = 0.3


def ibug68_weights() -> torch.Tensor:
    weights = torch.ones(68)
    weights[:17] = IBUG_JAW_WEIGHT
    weights[36:48] = FitSettings.eye_weight
    weights[48:68] = FitSettings.mouth_weight
    return weights


LAYOUTS = {
    "mediapipe": LandmarkLayout(NUM_LANDMARKS, FaceModel.landmarks, (RIGHT_EYE_OUTER, LEFT_EYE_OUTER), mediapipe_weights),
    "ibug68": LandmarkLayout(68, FaceModel.ibug68, (36, 45), ibug68_weights),
}


def fit_clip(model: FaceModel, landmarks: np.ndarray, valid: np.ndarray, image_size: tuple[int, int],
             settings: FitSettings = FitSettings(), device: torch.device = torch.device("cpu"),
             layout_name: str = "mediapipe") -> FaceFit:
    """Fit (T, N, ≥2) pixel landmarks in one of LAYOUTS; frames where ``valid`` is False are
    interpolated by smoothness. The result's fitted landmarks are always FaceMesh's 468."""
    layout = LAYOUTS[layout_name]
    target = torch.as_tensor(landmarks[:, :layout.count, :2], dtype=torch.float32, device=device)
    mask = torch.as_tensor(valid, dtype=torch.float32, device=device)
    model = model.to(device)
    center = (image_size[0] / 2, image_size[1] / 2)
    interocular = (target[:, layout.outer_eye_corners[0]] - target[:, layout.outer_eye_corners[1]]).norm(dim=-1).clamp_min(1.0)
    params = initial_parameters(model, layout, target, interocular, image_size, device)
    gaze = torch.tensor([name.startswith(GAZE_EXPRESSIONS) for name in model.expression_names], device=device)
    weights = layout.weights().to(device)
    iterations = settings.rigid_iterations + settings.iterations
    with progress_task("fitting the face model", iterations, unit=" iterations") as task:
        for stage, steps in (("rigid", settings.rigid_iterations), ("full", settings.iterations)):
            trainable = ["rotation", "translation", "log_focal"] + (["identity", "expression_logits"] if stage == "full" else [])
            optimizer = torch.optim.Adam([params[name] for name in trainable], lr=settings.learning_rate)
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                loss, _ = fit_loss(model, layout, params, target, mask, interocular, weights, gaze, center, settings)
                loss.backward()
                optimizer.step()
                task.advance()
    with torch.no_grad():
        _, projected = fit_loss(model, layout, params, target, mask, interocular, weights, gaze, center, settings)
        error = (projected - target).norm(dim=-1).mean(dim=-1) / interocular
        expression, rotation = expression_weights(params, gaze), axis_angle_to_matrix(params["rotation"])
        facemesh, _ = project(model.landmarks(params["identity"], expression), rotation, params["translation"],
                              params["log_focal"].exp(), center)
        return FaceFit(params["identity"].cpu().numpy(), expression.cpu().numpy(), rotation.cpu().numpy(),
                       params["translation"].cpu().numpy(), float(params["log_focal"].exp()), facemesh.cpu().numpy(),
                       error.cpu().numpy())


def initial_parameters(model: FaceModel, layout: LandmarkLayout, target: torch.Tensor, interocular: torch.Tensor,
                       image_size: tuple[int, int], device: torch.device) -> dict[str, torch.Tensor]:
    """Frontal head at the distance that matches the inter-ocular distance in pixels."""
    frames = len(target)
    focal = float(max(image_size))
    mean = layout.points(model, torch.zeros(model.landmark_identity_basis.shape[0], device=device),
                         torch.zeros(len(model.expression_names), device=device))
    model_interocular = float((mean[layout.outer_eye_corners[0]] - mean[layout.outer_eye_corners[1]]).norm())
    depth = focal * model_interocular / interocular
    centroid = target.mean(dim=1)
    translation = torch.stack([(centroid[:, 0] - image_size[0] / 2) * depth / focal,
                               -(centroid[:, 1] - image_size[1] / 2) * depth / focal, -depth], dim=-1)
    translation = translation - torch.cat([mean.mean(0)[:2], torch.zeros(1, device=device)])
    return {
        "rotation": torch.zeros(frames, 3, device=device, requires_grad=True),
        "translation": translation.detach().clone().requires_grad_(True),
        "log_focal": torch.tensor(np.log(focal), dtype=torch.float32, device=device, requires_grad=True),
        "identity": torch.zeros(model.landmark_identity_basis.shape[0], device=device, requires_grad=True),
        "expression_logits": torch.full((frames, len(model.expression_names)), -4.0, device=device, requires_grad=True),
    }


# Mouth shapes that also open the lips are penalised more than jawOpen, and lid shapes more
# than eyeBlink, so an open mouth reads as jawOpen and closing lids as a blink. mouthClose
# (lips shut over an open jaw) is penalised hardest: otherwise the fit pairs it with jawOpen.
# The shrugs are penalised too: left free, they took the small openings of ordinary speech and
# jawOpen followed the lip gap at r = 0.75-0.81 on talking clips instead of 0.83-0.91.
PRIOR_SCALES = {
    "jawOpen": 0.0, "eyeBlink_L": 0.0, "eyeBlink_R": 0.0, "mouthClose": 30.0,
    "mouthLowerDown_L": 20.0, "mouthLowerDown_R": 20.0, "mouthUpperUp_L": 20.0, "mouthUpperUp_R": 20.0,
    "mouthFunnel": 20.0, "mouthRollUpper": 10.0, "mouthRollLower": 10.0, "mouthShrugUpper": 20.0, "mouthShrugLower": 10.0,
    "mouthStretch_L": 2.0, "mouthStretch_R": 2.0, "eyeSquint_L": 2.0, "eyeSquint_R": 2.0,
}


_PRIOR_SCALES: dict[tuple[tuple[str, ...], torch.device], torch.Tensor] = {}


def expression_prior_scale(model: FaceModel) -> torch.Tensor:
    """Per expression, its prior's scale; built once per device (live calls the loss hundreds of times a second)."""
    key = (model.expression_names, model.landmark_mean.device)
    if key not in _PRIOR_SCALES:
        _PRIOR_SCALES[key] = torch.tensor([PRIOR_SCALES.get(n, 1.0) for n in model.expression_names], device=key[1])
    return _PRIOR_SCALES[key]


def expression_weights(params: dict[str, torch.Tensor], gaze: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(params["expression_logits"]) * (~gaze)


def fit_loss(model: FaceModel, layout: LandmarkLayout, params: dict[str, torch.Tensor], target: torch.Tensor,
             mask: torch.Tensor, interocular: torch.Tensor, weights: torch.Tensor, gaze: torch.Tensor,
             center: tuple[float, float], settings: FitSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """The fit's objective and the projected points, for the parameters as Adam sees them (logits)."""
    residuals, linear, projected = fit_terms(model, layout, params, expression_weights(params, gaze), target, mask,
                                             interocular, weights, center, settings)
    return residuals.pow(2).sum() + linear, projected


def fit_terms(model: FaceModel, layout: LandmarkLayout, params: dict[str, torch.Tensor], expression: torch.Tensor,
              target: torch.Tensor, mask: torch.Tensor, interocular: torch.Tensor, weights: torch.Tensor,
              center: tuple[float, float], settings: FitSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The objective as least squares plus a linear term: loss = |residuals|² + linear, so that the
    online fit can take Gauss-Newton steps on the same objective the whole-clip fit descends.
    The linear term is the L1 prior on the expression weights (they are ≥ 0)."""
    points = layout.points(model, params["identity"], expression)
    projected, _ = project(points, axis_angle_to_matrix(params["rotation"]), params["translation"],
                           params["log_focal"].exp(), center)
    # Each valid frame's weighted mean squared distance in inter-ocular units, averaged over frames.
    share = (mask / mask.sum().clamp_min(1))[:, None, None] * (weights / weights.sum())[None, :, None]
    data = (projected - target) / interocular[:, None, None] * share.sqrt()
    scale = interocular.mean() / interocular  # keep pose smoothness in comparable units across frames
    relative_translation = params["translation"] / params["translation"][:, 2:].abs() * scale[:, None]
    identity = params["identity"] * (settings.identity_prior / params["identity"].numel()) ** 0.5
    residuals = torch.cat([data.reshape(-1), _differences(expression, settings.expression_smoothness),
                           _differences(params["rotation"], settings.pose_smoothness),
                           _differences(relative_translation, settings.pose_smoothness), identity])
    linear = settings.expression_prior * (expression * expression_prior_scale(model)).mean()
    return residuals, linear, projected


def _differences(series: torch.Tensor, weight: float) -> torch.Tensor:
    """First differences over time, scaled so that their squares sum to ``weight`` × their mean square."""
    if len(series) < 2:
        return series.new_zeros(0)
    steps = series[1:] - series[:-1]
    return (steps * (weight / steps.numel()) ** 0.5).reshape(-1)
