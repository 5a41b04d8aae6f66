"""The face fit one frame at a time, for `reenact live`.

The driver's identity, focal length, resting gaze and mean head pose come from the whole-clip
fit (reenact/face/fitting.py) over the first second of the stream, and are then held. Each
later frame fits only its expression and head pose, with the same objective (``fit_loss``) as
the whole-clip fit, over the pair (previous frame, this frame): the previous frame is fixed,
so the smoothness terms pull towards it the way they pull towards both neighbours offline; the
optimiser starts from the previous frame's answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reenact.face.fitting import GAZE_EXPRESSIONS, LAYOUTS, FaceFit, FitSettings, expression_weights, fit_clip, fit_loss
from reenact.face.fitting import initial_parameters
from reenact.face.gaze import eye_look_weights, raw_iris_offsets, resting_offsets
from reenact.face.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from reenact.face.model import NUM_LANDMARKS, FaceModel
from reenact.face.retarget import mean_rotation

# Adam steps per frame, its moments carried over from the frame before. On a synthetic face
# (tests/test_live.py) 12 steps follow jawOpen at r 0.999, as 60 do; each step costs about 2 ms.
ONLINE_ITERATIONS = 12
# The first frame after a lost face has no previous answer: it gets a short rigid-then-full fit
# of its own, at a higher rate, as Adam moves each parameter by about the rate per step and the
# expression logits start 4 below zero.
COLD_START_ITERATIONS = (40, 60)
COLD_START_LEARNING_RATE = 0.1
# The warm-up's whole-clip fit, with the full number of steps: with 200 instead of 400 the
# identity took up part of a synthetic face's open jaw (jawOpen 0.69 fitted for 0.86).
WARMUP_SETTINGS = FitSettings()
WARMUP_FIT_FRAMES = 10        # the fit took 2.4 s for 10 frames, 4.3 s for 30


FRAME_PARAMETERS = ("rotation", "translation", "expression_logits")


@dataclass(frozen=True)
class DriverFace:
    """What the first second of the stream tells about the driver, held from then on."""
    identity: np.ndarray              # (100,)
    focal: float
    rest_gaze: np.ndarray             # (2, 2) resting iris offsets (gaze.resting_offsets)
    mean_rotation: np.ndarray         # (3, 3)
    mean_translation: np.ndarray      # (3,)
    fit: FaceFit                      # the warm-up frames' fit


def warm_up_frames(landmarks: np.ndarray) -> np.ndarray:
    """WARMUP_FIT_FRAMES of the first second's (T, 478, 3) landmarks, spread over it: what `live` fits."""
    picks = np.linspace(0, len(landmarks) - 1, min(WARMUP_FIT_FRAMES, len(landmarks))).round().astype(int)
    return landmarks[picks]


def warm_up(model: FaceModel, landmarks: np.ndarray, image_size: tuple[int, int]) -> DriverFace:
    """The driver's identity, camera, resting gaze and mean pose from (T, 478, 3) detected landmarks."""
    valid = np.ones(len(landmarks), bool)
    fit = fit_clip(model, landmarks, valid, image_size, settings=WARMUP_SETTINGS)
    return DriverFace(fit.identity, fit.focal, resting_offsets(landmarks), mean_rotation(fit.rotation),
                      fit.translation.mean(axis=0), fit)


@dataclass(frozen=True)
class FrameFace:
    expression: np.ndarray            # (53,) with eyeLook* from the irises
    rotation: np.ndarray              # (3, 3)
    translation: np.ndarray           # (3,)
    iris_offsets: np.ndarray          # (2, 3) raw (gaze.raw_iris_offsets)
    error: float                      # mean landmark distance over the inter-ocular distance
    fitted_landmarks: np.ndarray      # (468, 2) pixels


class OnlineFaceFit:
    """``fit(landmarks)`` per frame; ``lose()`` when the face is gone, so the next frame starts cold."""

    def __init__(self, model: FaceModel, driver: DriverFace, image_size: tuple[int, int],
                 settings: FitSettings = FitSettings(), iterations: int = ONLINE_ITERATIONS):
        self.model, self.driver, self.settings, self.iterations = model, driver, settings, iterations
        self.layout = LAYOUTS["mediapipe"]
        self.image_size, self.center = image_size, (image_size[0] / 2, image_size[1] / 2)
        self.identity = torch.as_tensor(driver.identity, dtype=torch.float32)
        self.log_focal = torch.tensor(np.log(driver.focal), dtype=torch.float32)
        self.gaze = torch.tensor([n.startswith(GAZE_EXPRESSIONS) for n in model.expression_names])
        self.weights = self.layout.weights()
        self.previous = self._warm_up_end(driver.fit)             # last frame's parameters and target
        # One set of parameters and one optimiser for the whole stream: Adam's moment estimates
        # carry over from frame to frame, which took fewer steps per frame than a fresh optimiser.
        self.current = {k: v.clone().requires_grad_(True) for k, v in self.previous.items() if k in FRAME_PARAMETERS}
        self.optimizer: torch.optim.Optimizer | None = None

    def _warm_up_end(self, fit: FaceFit) -> dict[str, torch.Tensor]:
        """The warm-up fit's last frame as the previous frame: the stream goes on from there."""
        tensor = lambda a: torch.as_tensor(np.asarray(a)[None], dtype=torch.float32)
        weights = torch.as_tensor(fit.expression[-1:], dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
        target = tensor(fit.fitted_landmarks[-1])
        return {"rotation": matrix_to_axis_angle(tensor(fit.rotation[-1])), "translation": tensor(fit.translation[-1]),
                "expression_logits": torch.logit(weights), "target": target, "interocular": self._interocular(target)}

    def lose(self) -> None:
        self.previous, self.optimizer = None, None

    def fit(self, landmarks: np.ndarray) -> FrameFace:
        target = torch.as_tensor(landmarks[None, :NUM_LANDMARKS, :2], dtype=torch.float32)
        interocular = self._interocular(target)
        if self.previous is None:
            current = self._cold_start(target, interocular)
        else:
            current = self.current
            self._optimise(current, target, interocular, FRAME_PARAMETERS, self.iterations, persistent=True)
        with torch.no_grad():
            params = {k: v.detach() for k, v in self._params(current, with_previous=False).items()}
            loss_parts = fit_loss(self.model, self.layout, params, target, torch.ones(1), interocular, self.weights,
                                  self.gaze, self.center, self.settings)
            projected = loss_parts[1][0]
        self.current = current
        self.previous = {**{k: v.detach().clone() for k, v in current.items()}, "target": target, "interocular": interocular}
        return self._frame_face(params, landmarks, projected, float((projected - target[0]).norm(dim=-1).mean() / interocular[0]))

    def _cold_start(self, target: torch.Tensor, interocular: torch.Tensor) -> dict[str, torch.Tensor]:
        start = initial_parameters(self.model, self.layout, target, interocular, self.image_size, torch.device("cpu"))
        current = {k: start[k].detach().clone().requires_grad_(True) for k in FRAME_PARAMETERS}
        rigid, full = COLD_START_ITERATIONS
        self._optimise(current, target, interocular, ("rotation", "translation"), rigid, rate=COLD_START_LEARNING_RATE)
        self._optimise(current, target, interocular, FRAME_PARAMETERS, full, rate=COLD_START_LEARNING_RATE)
        return current

    def _optimise(self, current: dict[str, torch.Tensor], target: torch.Tensor, interocular: torch.Tensor,
                  trainable: tuple[str, ...], steps: int, persistent: bool = False, rate: float | None = None) -> None:
        optimizer = self.optimizer if persistent else None
        if optimizer is None:
            # fused: one kernel for the three small tensors instead of a dozen ops each.
            optimizer = torch.optim.Adam([current[name] for name in trainable], lr=rate or self.settings.learning_rate,
                                         fused=True)
            self.optimizer = optimizer if persistent else None
        with_previous = self.previous is not None
        pair_target = torch.cat([self.previous["target"], target]) if with_previous else target
        pair_interocular = torch.cat([self.previous["interocular"], interocular]) if with_previous else interocular
        mask = torch.tensor([0.0, 1.0]) if with_previous else torch.ones(1)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            params = self._params(current, with_previous)
            loss, _ = fit_loss(self.model, self.layout, params, pair_target, mask, pair_interocular, self.weights,
                               self.gaze, self.center, self.settings)
            loss.backward()
            optimizer.step()

    def _params(self, current: dict[str, torch.Tensor], with_previous: bool) -> dict[str, torch.Tensor]:
        """fit_loss's parameters: the previous frame (fixed) then this one, or this one alone."""
        series = {k: torch.cat([self.previous[k], current[k]]) if with_previous else current[k] for k in FRAME_PARAMETERS}
        return {**series, "identity": self.identity, "log_focal": self.log_focal}

    def _interocular(self, target: torch.Tensor) -> torch.Tensor:
        right, left = self.layout.outer_eye_corners
        return (target[:, right] - target[:, left]).norm(dim=-1).clamp_min(1.0)

    def _frame_face(self, params: dict[str, torch.Tensor], landmarks: np.ndarray, projected: torch.Tensor,
                    error: float) -> FrameFace:
        expression = expression_weights(params, self.gaze)[0].numpy().copy()
        for name, weight in eye_look_weights(landmarks[None], self.model.expression_names, self.driver.rest_gaze).items():
            expression[self.model.expression_index(name)] = weight[0]
        rotation = axis_angle_to_matrix(params["rotation"])[0].numpy()
        return FrameFace(expression, rotation, params["translation"][0].numpy(), raw_iris_offsets(landmarks[None])[0],
                         error, projected.numpy())
