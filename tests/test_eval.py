"""`reenact eval` against known answers for its metrics, and on a real subject."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reenact.evaluation import metrics
from reenact.evaluation.systems import nearest_neighbours
from tests.conftest import assert_clean_failure, run_reenact


def test_psnr_and_ssim_known_answers():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (32, 32, 3)).astype(np.float32)
    assert metrics.ssim(image, image) == pytest.approx(1.0, abs=1e-5)
    assert metrics.psnr(image + 0.1, image) == pytest.approx(20.0, abs=1e-3)         # MSE 0.01
    mask = np.zeros((32, 32), bool)
    mask[:8] = True
    shifted = image.copy()
    shifted[16:] += 0.5                                   # beyond the 11×11 window of the masked rows
    assert metrics.psnr(shifted, image, mask) > 90 and metrics.ssim(shifted, image, mask) > 0.99
    assert metrics.ssim(rng.uniform(0, 1, (32, 32, 3)).astype(np.float32), image) < 0.2


def test_flicker_is_zero_for_a_pure_translation_that_the_flow_explains():
    rng = np.random.default_rng(1)
    texture = cv2_blur(rng.uniform(0, 1, (64, 80, 3)).astype(np.float32))
    previous, current = texture[:, :64], texture[:, 2:66]          # the scene moves 2 pixels left
    flow = metrics.real_frame_flow(previous, current)
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(2.0, abs=0.3)
    assert metrics.warping_error(previous, current, flow) < 0.25 * np.abs(previous - current).mean()


def cv2_blur(image):
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 2)


def test_pose_distance_and_missed_detections():
    reference = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert metrics.pose_distance(reference + [3.0, 4.0], True, reference, 10.0) == pytest.approx(0.5)
    assert metrics.pose_distance(reference, False, reference, 10.0) == metrics.MISSED_POSE_DISTANCE


def test_nearest_neighbour_picks_the_closest_training_pose():
    features = np.array([[[0.0, 0.0]], [[5.0, 5.0]], [[9.0, 9.0]], [[4.5, 5.0]], [[8.0, 9.0]]])
    present = np.ones((5, 1), bool)
    np.testing.assert_array_equal(nearest_neighbours(features, present, train_end=3), [1, 2])


def test_eval_reports_finite_metrics_for_the_model_and_nearest_neighbour(body_subject, tmp_path):
    checkpoint = tmp_path / "X.ckpt"
    assert run_reenact("train", body_subject, "--preset", "tiny", "--steps", 40, "--out", checkpoint).returncode == 0
    result = run_reenact("eval", checkpoint, "--json", tmp_path / "E.json", "--report", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "E.json").read_text())
    nearest = next(name for name in report["systems"] if "nearest" in name)
    for system in ("model", nearest):
        for key in ("psnr", "ssim", "pose_distance", "flicker"):
            assert np.isfinite(report["systems"][system][key]), (system, key)
    assert report["held_out_frames"] == 11 and np.isfinite(report["real"]["flicker"])
    for name in ("metrics.json", "report.md", "per_frame.png", "side_by_side.mp4"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert "| nearest_neighbour |" in (tmp_path / "report" / "report.md").read_text()


def test_eval_refuses_a_missing_checkpoint(tmp_path):
    assert_clean_failure(run_reenact("eval", tmp_path / "none.ckpt"), "none.ckpt", "no such checkpoint")
