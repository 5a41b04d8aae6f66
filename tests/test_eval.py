"""`reenact eval` against known answers for its metrics, and on a real subject."""

from __future__ import annotations


import numpy as np
import pytest

from reenact.evaluation import metrics
from reenact.evaluation.systems import nearest_neighbours, novelty_threshold
from tests.conftest import assert_clean_failure, install_lpips_weights, run_reenact, strict_loads


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
    picks, distances = nearest_neighbours(features, present, train_end=3)
    np.testing.assert_array_equal(picks, [1, 2])
    np.testing.assert_allclose(distances, [0.5, 1.0])


def test_novel_poses_are_those_farther_than_the_training_clip_is_from_itself():
    """Training: a pose swinging between 0 and 1 every 10 frames, so a pose a second (30 frames)
    away is at most 0.1 from any other; held out: repeats of it, then poses at 3 and 5."""
    swing = np.abs((np.arange(300) % 20) - 10) / 10.0
    held_out = np.array([0.5, 0.3, 3.0, 5.0])
    features = np.concatenate([swing, held_out])[:, None, None]
    present = np.ones((304, 1), bool)
    threshold = novelty_threshold(features, present, train_end=300, gap=30)
    assert threshold == pytest.approx(0.0, abs=1e-9)        # every training pose recurs exactly a second later
    _, distances = nearest_neighbours(features, present, train_end=300)
    np.testing.assert_array_equal(distances > threshold + 0.05, [False, False, True, True])
    wobbly = features + np.random.default_rng(0).normal(0, 0.02, features.shape)
    assert 0.0 < novelty_threshold(wobbly, present, 300, 30) < 0.1


@pytest.mark.e2e
def test_eval_reports_finite_metrics_for_the_model_and_nearest_neighbour(body_subject, tmp_path):
    checkpoint = tmp_path / "X.ckpt"
    assert run_reenact("train", body_subject, "--preset", "tiny", "--steps", 40, "--out", checkpoint).returncode == 0
    lpips_files = install_lpips_weights(tmp_path / "lpips")       # LPIPS is computed where its two files are
    result = run_reenact("eval", checkpoint, "--json", tmp_path / "E.json", "--report", tmp_path / "report", env=lpips_files)
    assert result.returncode == 0, result.stderr
    report = strict_loads((tmp_path / "E.json").read_text())
    nearest = next(name for name in report["systems"] if "nearest" in name)
    for system in ("model", nearest):
        for key in ("psnr", "ssim", "lpips", "pose_distance", "flicker"):
            assert np.isfinite(report["systems"][system][key]), (system, key)
    assert report["held_out_frames"] == 11 and np.isfinite(report["real"]["flicker"])
    novel = report["novel_pose"]
    assert 0 <= novel["frames"] <= 11 and len(novel["nearest_distance"]) == 11 and "quantile" in novel["rule"]
    assert novel["frames"] == sum(d > novel["threshold"] for d in novel["nearest_distance"])
    assert set(report["systems_novel"]) == set(report["systems"])
    for name in ("metrics.json", "report.md", "per_frame.png", "side_by_side.mp4"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| nearest_neighbour |" in text and "## Novel poses" in text and "higher is better" in text
    assert "| lpips |" in text and report["lpips"].startswith("LPIPS v0.1")


@pytest.mark.e2e
def test_eval_refuses_a_missing_checkpoint(tmp_path):
    assert_clean_failure(run_reenact("eval", tmp_path / "none.ckpt"), "none.ckpt", "no such checkpoint")
