"""The face fit one frame at a time, for `reenact live`.

The driver's identity, focal length, resting gaze and mean head pose come from the whole-clip
fit (reenact/face/fitting.py) over the first second of the stream, and are then held. Each
later frame fits only its expression and head pose, with the same objective (``fit_terms``) as
the whole-clip fit, over the pair (previous frame, this frame): the previous frame is fixed,
so the smoothness terms pull towards it the way they pull towards both neighbours offline.
The solver is Gauss-Newton from the previous frame's answer, not the whole-clip fit's Adam:
Adam moves each parameter by about its rate per step, so 12 steps a frame could not follow a
mouth that opens within a few frames (jawOpen r 0.36 online against 0.93 offline on tpsmm_driving).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reenact.face.fitting import GAZE_EXPRESSIONS, LAYOUTS, FaceFit, FitSettings, expression_prior_scale, fit_clip
from reenact.face.fitting import fit_terms, initial_parameters
from reenact.face.gaze import eye_look_weights, raw_iris_offsets, resting_offsets
from reenact.face.geometry import axis_angle_to_matrix, matrix_to_axis_angle, rotation_left_jacobian, skew
from reenact.face.model import NUM_LANDMARKS, FaceModel
from reenact.face.retarget import mean_rotation

# Gauss-Newton iterations per frame, from the frame before.
ONLINE_ITERATIONS = 3
# The first frame after a lost face has no previous answer: from a frontal head, the pose alone, then all.
COLD_START_ITERATIONS = (8, 8)
# Levenberg-Marquardt's damping, relative to the normal matrix's diagonal: keeps a weight whose
# points barely move (a nearly shut eye's squint) from taking a huge step.
DAMPING = 1e-3
# The warm-up's whole-clip fit, with the full number of steps: with 200 instead of 400 the
# identity took up part of a synthetic face's open jaw (jawOpen 0.69 fitted for 0.86).
WARMUP_SETTINGS = FitSettings()
WARMUP_FIT_FRAMES = 10        # the fit took 2.4 s for 10 frames, 4.3 s for 30


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
        self.fitted = ~torch.tensor([n.startswith(GAZE_EXPRESSIONS) for n in model.expression_names])
        # The solver's vector holds the fitted weights only; this puts them (and zeros) in model order.
        self.expression_order = torch.argsort(torch.argsort((~self.fitted).to(torch.uint8), stable=True))
        self.weights = self.layout.weights()
        # What the Jacobian needs that stays the same from frame to frame: the held identity's
        # neutral shape, the fitted expressions' basis, each point's weight, the smoothness rows
        # of the expression and rotation differences.
        self.identity_shape = model.landmarks(self.identity, torch.zeros(len(model.expression_names)))
        self.expression_basis = model.landmark_expression_basis[self.fitted]
        self.point_scale = (self.weights / self.weights.sum()).sqrt()
        self.steady_rows = self._steady_smoothness_rows()
        self.previous = self._warm_up_end(driver.fit)             # last frame's parameters and target

    def _warm_up_end(self, fit: FaceFit) -> dict[str, torch.Tensor]:
        """The warm-up fit's last frame as the previous frame: the stream goes on from there."""
        tensor = lambda a: torch.as_tensor(np.asarray(a)[None], dtype=torch.float32)
        target = tensor(fit.fitted_landmarks[-1])
        return {"rotation": matrix_to_axis_angle(tensor(fit.rotation[-1])), "translation": tensor(fit.translation[-1]),
                "expression": tensor(fit.expression[-1]), "target": target, "interocular": self._interocular(target)}

    def lose(self) -> None:
        self.previous = None

    def fit(self, landmarks: np.ndarray) -> FrameFace:
        target = torch.as_tensor(landmarks[None, :NUM_LANDMARKS, :2], dtype=torch.float32)
        interocular = self._interocular(target)
        if self.previous is None:
            vector, projected = self._cold_start(target, interocular)
        else:
            start = torch.cat([self.previous[k][0] for k in ("rotation", "translation")]
                              + [self.previous["expression"][0, self.fitted]])
            vector, projected = self._solve(start, target, interocular, self.iterations)
        current = self._unpack(vector)
        self.previous = {**current, "target": target, "interocular": interocular}
        error = float((projected[0] - target[0]).norm(dim=-1).mean() / interocular[0])
        return self._frame_face(current, landmarks, projected[0], error)

    def _cold_start(self, target: torch.Tensor, interocular: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first frame after a lost face: from a frontal head, the pose alone, then everything."""
        start = initial_parameters(self.model, self.layout, target, interocular, self.image_size, torch.device("cpu"))
        vector = torch.cat([start["rotation"][0].detach(), start["translation"][0].detach(),
                            torch.zeros(int(self.fitted.sum()))])
        rigid, full = COLD_START_ITERATIONS
        vector, _ = self._solve(vector, target, interocular, rigid, pose_only=True)
        return self._solve(vector, target, interocular, full)

    def _solve(self, vector: torch.Tensor, target: torch.Tensor, interocular: torch.Tensor, iterations: int,
               pose_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Gauss-Newton on (rotation, translation, fitted expression weights), the weights kept in
        [0, 1]: a weight at a bound that the gradient pushes outwards stays there for the step.
        Returns the vector and its projected points (1, 468, 2)."""
        evaluate, linear, pair_interocular = self._objective(target, interocular)
        value, residuals, projected = evaluate(vector)
        for _ in range(iterations):
            jacobian = self._jacobian(vector, pair_interocular)
            gradient = jacobian.T @ residuals[self._moving_rows(len(pair_interocular))] + linear
            step = self._step(vector, jacobian, gradient, pose_only)
            accepted = self._line_search(vector, step, value, evaluate)
            if accepted is None:
                break
            vector, (value, residuals, projected) = accepted
        return vector, projected

    @staticmethod
    def _step(vector: torch.Tensor, jacobian: torch.Tensor, gradient: torch.Tensor, pose_only: bool) -> torch.Tensor:
        """Levenberg-Marquardt's step over the free parameters. A weight at a bound is held there
        when the gradient, or the step found without holding it, pushes it outwards."""
        weights = vector[6:]
        at_floor, at_ceiling = weights <= 0, weights >= 1
        held = (at_floor & (gradient[6:] > 0)) | (at_ceiling & (gradient[6:] < 0)) | pose_only
        step = torch.zeros_like(vector)
        for _ in range(3):
            free = torch.cat([torch.ones(6, dtype=torch.bool), ~held])
            normal = jacobian[:, free].T @ jacobian[:, free]
            normal += DAMPING * normal.diagonal().clamp_min(1e-12).diag_embed()
            step.zero_()
            step[free] = torch.linalg.solve(normal, -gradient[free])
            outwards = (at_floor & (step[6:] < 0)) | (at_ceiling & (step[6:] > 0))
            if not outwards.any():
                break
            held |= outwards
        return step

    @staticmethod
    def _line_search(vector: torch.Tensor, step: torch.Tensor, value: float, evaluate):
        """The full step, its weights clamped to [0, 1], if it lowers the loss; else the longest part
        of the step that keeps every weight within bounds, and halves of that (Gauss-Newton's step
        points downhill, so a short enough one lowers the loss). None when none does."""
        weights, moves = vector[6:], step[6:]
        room = torch.where(moves > 0, (1 - weights) / moves, torch.where(moves < 0, -weights / moves, torch.inf))
        longest = min(1.0, float(room.min())) if len(room) else 1.0
        for fraction in dict.fromkeys([1.0] + [longest * 0.5 ** k for k in range(4)]):
            candidate = vector + fraction * step
            candidate[6:] = candidate[6:].clamp(0.0, 1.0)
            if (evaluation := evaluate(candidate))[0] < value:
                return candidate, evaluation
        return None

    def _objective(self, target: torch.Tensor, interocular: torch.Tensor):
        """vector → (loss, fit_terms' residuals, this frame's projected points) over (previous frame,
        this frame), the previous fixed; half the loss's gradient from the L1 prior, a constant as
        the prior is linear in the weights (half, as Gauss-Newton's gradient is half the loss's);
        and the pair's inter-ocular distances."""
        with_previous = self.previous is not None
        pair_target = torch.cat([self.previous["target"], target]) if with_previous else target
        pair_interocular = torch.cat([self.previous["interocular"], interocular]) if with_previous else interocular
        mask = torch.tensor([0.0, 1.0]) if with_previous else torch.ones(1)
        prior = (self.settings.expression_prior * expression_prior_scale(self.model)[self.fitted]
                 / (len(mask) * len(self.fitted)))
        linear = torch.cat([torch.zeros(6), prior / 2])

        def evaluate(vector: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
            current = self._unpack(vector)
            residuals, _, projected = fit_terms(self.model, self.layout, self._params(current, with_previous),
                                                self._series(current, "expression", with_previous), pair_target,
                                                mask, pair_interocular, self.weights, self.center, self.settings)
            return float(residuals.pow(2).sum() + 2 * (linear * vector).sum()), residuals, projected[-1:]
        return evaluate, linear, pair_interocular

    def _jacobian(self, vector: torch.Tensor, pair_interocular: torch.Tensor) -> torch.Tensor:
        """d(fit_terms' residuals)/d(vector) for the rows that depend on it (``_moving_rows``), worked
        out by hand: torch.func.jacfwd gives the same (tests/test_live.py) at 17 ms a call, most of a
        frame's budget."""
        rotation, translation = axis_angle_to_matrix(vector[:3]), vector[3:6]
        points = self.identity_shape + torch.einsum("k,kpc->pc", vector[6:], self.expression_basis)
        turned = points @ rotation.T
        camera = turned + translation
        depth = (-camera[:, 2]).clamp_min(1e-3)
        one, zero = torch.ones_like(depth), torch.zeros_like(depth)
        projection = torch.stack([torch.stack([one, zero, camera[:, 0] / depth], -1),
                                  torch.stack([zero, -one, -camera[:, 1] / depth], -1)], 1)   # (468, 2, 3)
        scale = self.driver.focal / depth * self.point_scale / pair_interocular[-1]
        spin = -skew(turned) @ rotation_left_jacobian(vector[:3])                                # (468, 3, 3)
        moves = torch.cat([spin, torch.eye(3).expand(len(points), 3, 3),
                           (self.expression_basis @ rotation.T).permute(1, 2, 0)], dim=-1)   # (468, 3, 51)
        data = (projection * scale[:, None, None]) @ moves
        rows = [data.reshape(-1, len(vector))]
        if len(pair_interocular) == 2:
            rows += self._smoothness_rows(translation, pair_interocular)
        return torch.cat(rows)

    def _moving_rows(self, frames: int) -> slice:
        """fit_terms' residuals that depend on this frame: its points and the differences to the
        previous frame; not the previous frame's points (masked out) nor the held identity's prior."""
        return slice(NUM_LANDMARKS * 2 * (frames - 1), -len(self.identity))

    def _steady_smoothness_rows(self) -> list[torch.Tensor]:
        """The Jacobian of the expression and rotation differences to the previous frame (constant)."""
        columns = 6 + int(self.fitted.sum())
        expression = torch.zeros(len(self.fitted), columns)
        expression[self.fitted, 6:] = torch.eye(columns - 6)
        rotation = torch.zeros(3, columns)
        rotation[:, :3] = torch.eye(3)
        expression_weight = (self.settings.expression_smoothness / len(self.fitted)) ** 0.5
        return [expression * expression_weight, rotation * (self.settings.pose_smoothness / 3) ** 0.5]

    def _smoothness_rows(self, translation: torch.Tensor, pair_interocular: torch.Tensor) -> list[torch.Tensor]:
        """The Jacobian of the differences to the previous frame: expression, rotation, relative translation."""
        # relative translation = t / |t_z| × (mean inter-ocular / this frame's)
        scale = pair_interocular.mean() / pair_interocular[-1] / translation[2].abs()
        relative = torch.zeros(3, self.steady_rows[0].shape[1])
        relative[:2, 3:5] = scale * torch.eye(2)
        relative[:2, 5] = -scale * translation[:2] / translation[2]
        return [*self.steady_rows, relative * (self.settings.pose_smoothness / 3) ** 0.5]

    def _unpack(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        gaze = vector.new_zeros(len(self.fitted) - len(vector) + 6)
        expression = torch.cat([vector[6:], gaze])[self.expression_order]
        return {"rotation": vector[None, :3], "translation": vector[None, 3:6], "expression": expression[None]}

    def _series(self, current: dict[str, torch.Tensor], name: str, with_previous: bool) -> torch.Tensor:
        return torch.cat([self.previous[name], current[name]]) if with_previous else current[name]

    def _params(self, current: dict[str, torch.Tensor], with_previous: bool) -> dict[str, torch.Tensor]:
        """fit_terms' parameters: the previous frame (fixed) then this one, or this one alone."""
        return {"rotation": self._series(current, "rotation", with_previous),
                "translation": self._series(current, "translation", with_previous),
                "identity": self.identity, "log_focal": self.log_focal}

    def _interocular(self, target: torch.Tensor) -> torch.Tensor:
        right, left = self.layout.outer_eye_corners
        return (target[:, right] - target[:, left]).norm(dim=-1).clamp_min(1.0)

    def _frame_face(self, current: dict[str, torch.Tensor], landmarks: np.ndarray, projected: torch.Tensor,
                    error: float) -> FrameFace:
        expression = current["expression"][0].numpy().copy()
        for name, weight in eye_look_weights(landmarks[None], self.model.expression_names, self.driver.rest_gaze).items():
            expression[self.model.expression_index(name)] = weight[0]
        rotation = axis_angle_to_matrix(current["rotation"])[0].numpy()
        return FrameFace(expression, rotation, current["translation"][0].numpy(), raw_iris_offsets(landmarks[None])[0],
                         error, projected.numpy())
