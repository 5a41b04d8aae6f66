"""Known answers for the face path: geometry, fitting on synthetic landmarks, rasterizer, gaze, retargeting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reenact.errors import ReenactError
from reenact.face.crop import crop_square, crops_around, face_crops, smooth_over_time
from reenact.face.fitting import LAYOUTS, FitSettings, expression_prior_scale, fit_clip, fit_terms
from reenact.face.gaze import eye_look_weights, irises_from_offsets, raw_iris_offsets
from reenact.face.geometry import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_euler_degrees, project
from reenact.face.geometry import rotation_left_jacobian, skew
from reenact.face.model import load_face_model
from reenact.face.retarget import apply_edits, mean_rotation, retarget_pose, source_mean_pose
from reenact.render.rasterizer import rasterize

MODEL = load_face_model()
NAMES = list(MODEL.expression_names)


def test_rotation_conversions_round_trip_and_euler_angles():
    axis_angle = torch.tensor([[0.1, -0.4, 0.25], [0.0, 0.0, 0.0]])
    matrix = axis_angle_to_matrix(axis_angle)
    assert torch.allclose(matrix @ matrix.transpose(-1, -2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(matrix_to_axis_angle(matrix)[0], axis_angle[0], atol=1e-5)
    yaw_30 = axis_angle_to_matrix(torch.tensor([0.0, math.radians(30), 0.0]))
    assert torch.allclose(matrix_to_euler_degrees(yaw_30), torch.tensor([0.0, 30.0, 0.0]), atol=1e-4)


@pytest.mark.parametrize("axis_angle", [[0.0, 0.0, 0.0], [2e-5, -1e-5, 0.0], [0.3, -0.8, 0.5]])
def test_the_left_jacobian_maps_a_change_of_axis_angle_to_a_rotation_applied_on_the_left(axis_angle):
    omega = torch.tensor(axis_angle, dtype=torch.float64)
    delta = torch.tensor([1e-6, -2e-6, 1.5e-6], dtype=torch.float64)
    moved = axis_angle_to_matrix(omega + delta) @ axis_angle_to_matrix(omega).T     # ≈ exp([J δ]×)
    applied = torch.eye(3, dtype=torch.float64) + skew(rotation_left_jacobian(omega) @ delta)
    assert torch.allclose(moved, applied, atol=1e-11)
    assert torch.allclose(skew(torch.tensor([1.0, 2.0, 3.0])) @ torch.tensor([4.0, 5.0, 6.0]),
                          torch.linalg.cross(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])))


def test_the_fit_objective_is_its_weighted_distances_smoothness_and_priors():
    """fit_terms' least squares plus linear term against the objective written out by hand."""
    rng, layout, settings = np.random.default_rng(1), LAYOUTS["mediapipe"], FitSettings()
    expression = torch.as_tensor(rng.random((2, len(NAMES))), dtype=torch.float32)
    params = {"identity": torch.as_tensor(rng.normal(size=100), dtype=torch.float32),
              "rotation": torch.tensor([[0.1, 0.2, 0.0], [0.15, 0.1, -0.05]]),
              "translation": torch.tensor([[1.0, -2.0, -50.0], [2.0, -1.0, -55.0]]), "log_focal": torch.tensor(6.5)}
    target, mask = torch.as_tensor(rng.random((2, 468, 2)) * 300, dtype=torch.float32), torch.tensor([1.0, 0.0])
    interocular, weights = torch.tensor([60.0, 50.0]), layout.weights()
    residuals, linear, projected = fit_terms(MODEL, layout, params, expression, target, mask, interocular, weights,
                                             (320.0, 240.0), settings)
    distance = ((projected[0] - target[0]).pow(2).sum(-1) * weights).sum() / weights.sum() / 60.0 ** 2
    relative = params["translation"] / params["translation"][:, 2:].abs() * (55.0 / interocular)[:, None]
    by_hand = (distance + settings.expression_smoothness * (expression[1] - expression[0]).pow(2).mean()
               + settings.pose_smoothness * ((params["rotation"][1] - params["rotation"][0]).pow(2).mean()
                                             + (relative[1] - relative[0]).pow(2).mean())
               + settings.identity_prior * params["identity"].pow(2).mean()
               + settings.expression_prior * (expression * expression_prior_scale(MODEL)).mean())
    assert torch.isclose(residuals.pow(2).sum() + linear, by_hand, rtol=1e-5)


def test_projection_of_known_points():
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    pixels, depth = project(points, torch.eye(3), torch.tensor([0.0, 0.0, -50.0]), torch.tensor(500.0), (100.0, 80.0))
    assert torch.allclose(pixels, torch.tensor([[100.0, 80.0], [110.0, 60.0]]))   # +x right, +y up the image
    assert torch.allclose(depth, torch.tensor([50.0, 50.0]))


def synthetic_clip(frames: int = 24, layout: str = "mediapipe"):
    """Landmarks projected from known parameters: a blink, an opening jaw, a turning head.
    Returns (T, 478, 3) FaceMesh-style or (T, 68, 2) iBUG landmarks, the expressions, and the
    true FaceMesh points (T, 468, 2)."""
    rng = np.random.default_rng(0)
    identity = torch.as_tensor(rng.normal(0, 0.7, 100), dtype=torch.float32)
    expression = torch.zeros(frames, 53)
    expression[:, NAMES.index("jawOpen")] = torch.linspace(0, 0.6, frames)
    expression[frames // 3: frames // 2, NAMES.index("eyeBlink_L")] = 0.9
    rotation = axis_angle_to_matrix(torch.stack([torch.zeros(frames), torch.linspace(-0.3, 0.3, frames), torch.zeros(frames)], 1))
    translation = torch.tensor([1.0, -2.0, -45.0]).expand(frames, 3)
    camera = (rotation, translation, torch.tensor(700.0), (320.0, 240.0))
    facemesh, _ = project(MODEL.landmarks(identity, expression), *camera)
    if layout == "ibug68":
        return project(MODEL.ibug68(identity, expression), *camera)[0].numpy(), expression.numpy(), facemesh.numpy()
    landmarks = np.zeros((frames, 478, 3), np.float32)
    landmarks[:, :468, :2] = facemesh.numpy()
    return landmarks, expression.numpy(), facemesh.numpy()


@pytest.mark.parametrize("layout", ["mediapipe", "ibug68"])
def test_fitting_recovers_expressions_and_reprojects_exactly_on_synthetic_landmarks(layout):
    landmarks, expression, facemesh = synthetic_clip(layout=layout)
    fit = fit_clip(MODEL, landmarks, np.ones(len(landmarks), bool), (640, 480), FitSettings(iterations=300),
                   layout_name=layout)
    assert np.median(fit.error) < 0.01
    # Fitted to either layout, the fit's FaceMesh points land on the true ones (≈ 60 px inter-ocular).
    assert fit.fitted_landmarks.shape == facemesh.shape
    assert np.median(np.linalg.norm(fit.fitted_landmarks - facemesh, axis=-1)) < 1.5
    jaw = fit.expression[:, NAMES.index("jawOpen")]
    blink = fit.expression[:, NAMES.index("eyeBlink_L")]
    assert np.corrcoef(jaw, expression[:, NAMES.index("jawOpen")])[0, 1] > 0.95
    assert blink[8:12].mean() > 0.5 and blink[:4].mean() < 0.2
    assert (fit.expression >= 0).all() and (fit.expression <= 1).all()
    yaw = np.degrees(np.arctan2(-fit.rotation[:, 2, 0], fit.rotation[:, 2, 2]))
    # The ±0.3 rad head turn. The fit trades some of the turn for identity and focal length and
    # lands 4-5° short with 468 points, about 6° with 68.
    np.testing.assert_allclose(yaw[[0, -1]], [-17.2, 17.2], atol={"mediapipe": 6, "ibug68": 8}[layout])
    assert (np.diff(yaw) > 0).all()


def test_rasterizer_interpolates_and_keeps_the_nearest_triangle():
    # Two triangles covering the same square; the second is nearer and carries another colour.
    vertices = torch.tensor([[[2.0, 2.0, 5.0], [2.0, 14.0, 5.0], [14.0, 2.0, 5.0],
                              [2.0, 2.0, 1.0], [2.0, 14.0, 1.0], [14.0, 2.0, 1.0]]])
    triangles = torch.tensor([[0, 1, 2], [3, 4, 5]])
    colors = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0], [0, 0, 0.0]])
    image, mask = rasterize(vertices, triangles, colors, (16, 16), cull_backfaces=False)
    assert mask[0, 3, 3] and not mask[0, 13, 13] and not mask[0, 0, 0]
    assert image[0, 3, 3, 0] == 0                                   # the far red triangle is hidden
    # Green grows towards vertex 4 at (x=2, y=14): pixel centre (2.5, 10.5) → weight 8.5/12.
    assert image[0, 10, 2, 1].item() == pytest.approx(8.5 / 12, abs=1e-5)
    # Counter-clockwise on screen (y down) faces the camera; the reversed winding is culled.
    _, kept = rasterize(vertices, triangles, colors, (16, 16), cull_backfaces=True)
    _, culled = rasterize(vertices, triangles[:, [0, 2, 1]], colors, (16, 16), cull_backfaces=True)
    assert torch.equal(kept, mask) and not culled.any()


def test_rasterizer_batch_equals_single_frames():
    vertices = MODEL.mesh_vertices
    rotation = axis_angle_to_matrix(torch.tensor([[0.0, 0.2, 0.0], [0.1, -0.3, 0.05]]))
    pixels, depth = project(vertices, rotation, torch.tensor([[0.0, 0.0, -80.0]] * 2), torch.tensor(400.0), (64.0, 64.0))
    batch = torch.cat([pixels, depth[..., None]], -1)
    colors = vertices - vertices.min(0).values
    together, _ = rasterize(batch, MODEL.mesh_triangles, colors, (128, 128))
    for index in range(2):
        alone, _ = rasterize(batch[index:index + 1], MODEL.mesh_triangles, colors, (128, 128))
        assert torch.equal(alone[0], together[index])


def eye_landmarks(iris_shift: tuple[float, float]) -> np.ndarray:
    """Two eyes 30 px wide, level, with both irises shifted by iris_shift eye widths (image x, up)."""
    landmarks = np.zeros((3, 478, 3), np.float32)
    for outer, inner, iris, x0 in ((33, 133, 468, 100), (263, 362, 473, 200)):
        direction = 1 if x0 == 100 else -1
        landmarks[:, outer, :2] = (x0 - 15 * direction, 100)
        landmarks[:, inner, :2] = (x0 + 15 * direction, 100)
        landmarks[:, iris, :2] = (x0, 100)
        landmarks[:, iris + 1:iris + 5, :2] = (x0 + 6, 100)
    landmarks[0, [468, 473], 0] += iris_shift[0] * 30
    landmarks[0, [468, 473], 1] -= iris_shift[1] * 30
    return landmarks


def test_gaze_offsets_and_eye_look_weights():
    looking_to_image_right = eye_landmarks((0.1, 0.0))
    offsets = raw_iris_offsets(looking_to_image_right)
    assert offsets[0, 0, 0] == pytest.approx(0.1, abs=1e-6)          # right eye: towards the nose
    assert offsets[0, 1, 0] == pytest.approx(-0.1, abs=1e-6)         # left eye: outwards
    assert offsets[1, 0, 2] == pytest.approx(0.2, abs=1e-6)          # radius 6 px of a 30 px eye
    weights = eye_look_weights(looking_to_image_right, tuple(NAMES))
    assert weights["eyeLookIn_R"][0] > 0.3 and weights["eyeLookOut_R"][0] == 0
    assert weights["eyeLookOut_L"][0] > 0.3 and weights["eyeLookIn_L"][0] == 0
    up = raw_iris_offsets(eye_landmarks((0.0, 0.05)))
    assert up[0, :, 1] == pytest.approx([0.05, 0.05], abs=1e-6)
    np.testing.assert_allclose(irises_from_offsets(looking_to_image_right, offsets)[..., :2],
                               looking_to_image_right[:, [468, 473], :2], atol=1e-4)


def test_retargeting_applies_relative_motion_around_the_target_mean():
    rotations = axis_angle_to_matrix(torch.tensor([[0.0, 0.2, 0.0], [0.0, -0.2, 0.0], [0.0, 0.4, 0.0]])).numpy()
    translations = np.array([[0.0, 0, -50], [0, 0, -50], [2, 0, -50]])
    target = {"mean_rotation": np.eye(3).tolist(), "mean_translation": [1.0, 1.0, -100.0]}
    rotation, translation = retarget_pose(rotations, translations, source_mean_pose(rotations, translations, np.ones(3, bool)), target)
    source_mean = mean_rotation(rotations)
    np.testing.assert_allclose(rotation, rotations @ source_mean.T, atol=1e-6)
    np.testing.assert_allclose(translation[2], [1.0 + (2 - 2 / 3) * 2, 1.0, -100.0], atol=1e-5)


def test_edits_add_clamp_and_reject_unknown_names():
    expression = np.full((2, 53), 0.5, np.float32)
    edited = apply_edits(expression, ("jawOpen=+0.2", "eyeBlink_L=-0.7"), NAMES)
    assert edited[0, NAMES.index("jawOpen")] == pytest.approx(0.7) and edited[0, NAMES.index("eyeBlink_L")] == 0
    with pytest.raises(ReenactError, match="unknown expression 'jawOpn'.*jawOpen"):
        apply_edits(expression, ("jawOpn=+1",), NAMES)


def test_face_crops_are_fixed_size_and_smooth():
    landmarks = np.zeros((50, 478, 3), np.float32)
    landmarks[:, :468, :2] = np.random.default_rng(0).uniform(0, 40, (468, 2)) + 100
    landmarks[:, 10, :2], landmarks[:, 152, :2] = (120, 100), (120, 140)
    landmarks[25:, :, 0] += 30                                      # the head jumps sideways
    crops = face_crops(landmarks, np.ones(50, bool), 25.0, (640, 480))
    assert (crops[:, 2] == crops[0, 2]).all() and crops[0, 2] == round(2.6 * 40)
    steps = np.abs(np.diff(crops[:, 0]))
    assert steps.max() < 30 and crops[-1, 0] - crops[0, 0] == 30    # eased, and arrives
    np.testing.assert_allclose(smooth_over_time(np.ones((10, 2)), 2.0), 1.0)


def test_a_close_up_is_cropped_to_the_picture_not_to_black_borders():
    landmarks = np.zeros((10, 478, 3), np.float32)
    landmarks[:, :468, :2] = np.random.default_rng(0).uniform(-100, 100, (468, 2)) + [240, 250]
    landmarks[:, 10, :2], landmarks[:, 152, :2] = (240, 100), (240, 400)      # a 300 px face in a 480 px picture
    crops = face_crops(landmarks, np.ones(10, bool), 25.0, (480, 480))
    np.testing.assert_array_equal(crops, [[0, 0, 480]] * 10)                # 2.6 faces would be 780 px
    wide = face_crops(landmarks, np.ones(10, bool), 25.0, (900, 480))
    assert wide[0, 2] == 480 and wide[0, 1] == 0 and 0 <= wide[0, 0] <= 420   # inside, along both sides
    small_face = face_crops(landmarks * [0.2, 0.2, 1], np.ones(10, bool), 25.0, (480, 480))
    assert small_face[0, 2] == round(2.6 * 60) and small_face[0, 0] == 0     # by the picture's left edge, not past it
    older = crops_around(np.array([[240.0, 250.0]]), 780, (480, 480))       # an older target's crop wider than the picture
    np.testing.assert_array_equal(older, [[240 - 390, 250 - 390 + round(0.12 * 780), 780]])


def test_crop_square_pads_outside_the_frame():
    frame = np.full((20, 30, 3), 200, np.uint8)
    out = crop_square(frame, np.array([-10, 0, 20]), 20)
    assert out[:, :9].max() == 0 and out[:, 11:].min() == 200


def test_arkit_names_map_each_side_and_average_the_split_shapes():
    from reenact.face.arkit import ARKIT_NAMES, resolve_edit_name, to_arkit

    model = load_face_model()
    names = list(model.expression_names)
    assert len(ARKIT_NAMES) == len(set(ARKIT_NAMES)) == 52
    weights = np.zeros((2, len(names)), np.float32)
    weights[:, names.index("eyeBlink_L")] = 0.8
    weights[:, names.index("cheekPuff_L")], weights[:, names.index("cheekPuff_R")] = 0.2, 0.6
    arkit = dict(zip(ARKIT_NAMES, to_arkit(weights, names)[1]))
    assert arkit["eyeBlinkLeft"] == pytest.approx(0.8) and arkit["eyeBlinkRight"] == 0
    assert arkit["cheekPuff"] == pytest.approx(0.4) and arkit["tongueOut"] == 0
    # Every model expression reaches ARKit once: nothing is lost in the mapping.
    assert sorted(n for a in ARKIT_NAMES if a != "tongueOut" for n in resolve_edit_name(a, names, a)) == sorted(names)
    assert resolve_edit_name("browInnerUp", names, "browInnerUp=+1") == ["browInnerUp_L", "browInnerUp_R"]
