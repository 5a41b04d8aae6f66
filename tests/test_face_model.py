"""The shipped face-model asset: landmarks embedded on the ICT surface in the right places."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from reenact.face.model import ASSET, load_face_model
from tests.conftest import REPO

SHARED_FACE_MODEL = REPO.parent / "shared" / "face_model"


def builder():
    spec = importlib.util.spec_from_file_location("build_face_model", REPO / "tools" / "build_face_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ict():
    if not SHARED_FACE_MODEL.exists():
        pytest.skip("../shared/face_model is only beside the developers' checkouts")
    return dict(np.load(SHARED_FACE_MODEL / "ict_face_model_light.npz"))


def test_asset_is_small_and_complete():
    assert ASSET.stat().st_size < 4_000_000
    model = load_face_model()
    assert model.landmark_mean.shape == (468, 3) and model.landmark_identity_basis.shape == (100, 468, 3)
    assert model.landmark_expression_basis.shape == (53, 468, 3) and len(model.expression_names) == 53
    assert model.mesh_triangles.max() < len(model.mesh_vertices)
    assert {"jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L"} <= set(model.expression_names)


def test_embedded_landmarks_lie_on_the_ict_surface(ict):
    with np.load(ASSET) as asset:
        corners, weights, mean = asset["landmark_triangles"], asset["landmark_barycentric"], asset["landmark_mean"]
    assert (weights >= -1e-6).all() and np.allclose(weights.sum(1), 1, atol=1e-5)
    on_surface = np.einsum("pkc,pk->pc", ict["neutral"][corners], weights)
    assert np.abs(on_surface - mean).max() < 1e-4
    # Every landmark's triangle is in the ICT face area, not on the back of the head.
    assert np.isin(ict["region"][corners], (0, 1)).all()


@pytest.mark.parametrize("mediapipe, ibug, tolerance_cm", [
    (33, [36], 0.3), (263, [45], 0.3), (133, [39], 0.3), (362, [42], 0.3),     # eye corners
    (159, [37, 38], 0.3), (145, [40, 41], 0.3), (386, [43, 44], 0.3), (374, [46, 47], 0.3),   # lids
    (1, [30], 0.3), (61, [48], 0.3), (291, [54], 0.3), (13, [62], 0.3), (14, [66], 0.3), (152, [8], 0.3),
    (70, [17], 0.8), (300, [26], 0.8), (234, [1], 1.5), (454, [15], 1.5), (93, [2], 1.8), (132, [3], 2.0),  # not anchors
])
def test_named_features_land_in_the_right_ict_regions(ict, mediapipe, ibug, tolerance_cm):
    mean = load_face_model().landmark_mean.numpy()
    expected = ict["neutral"][ict["landmarks68"][ibug]].mean(0)
    assert np.linalg.norm(mean[mediapipe] - expected) < tolerance_cm


def test_blendshapes_move_the_embedded_points_the_right_way():
    model = load_face_model()
    basis = model.landmark_expression_basis.numpy()
    blink_left = basis[model.expression_index("eyeBlink_L")]
    assert blink_left[386, 1] < -0.5 and abs(blink_left[159, 1]) < 0.05    # the subject's left upper lid only
    assert basis[model.expression_index("jawOpen")][14, 1] < -2.0          # the lower lip drops


def test_the_builder_reproduces_the_shipped_asset(ict):
    rebuilt = builder().build(SHARED_FACE_MODEL)
    with np.load(ASSET) as shipped:
        for key in ("mesh_triangles", "mesh_source_vertices"):
            np.testing.assert_array_equal(rebuilt[key], shipped[key])
        # A point on a shared edge or vertex can pick either triangle depending on float rounding
        # (BLAS, CPU), so the embedded positions are compared, not the triangle indices.
        for key in ("landmark_mean", "landmark_identity_basis", "landmark_expression_basis"):
            np.testing.assert_allclose(rebuilt[key], shipped[key], atol=1e-5)
