"""`reenact eval --driver`: cross-reenactment figures against known answers, and on a real clip pair."""

from __future__ import annotations


import numpy as np
import pytest

from reenact.evaluation import cross
from tests.conftest import make_clip, run_reenact, shared_clip, strict_loads


def rotation_about_y(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])


def rotation_about_x(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])


def test_head_rotation_error_ignores_a_fixed_camera_rotation_and_measures_motion():
    wanted = np.stack([rotation_about_y(a) for a in (-10, 0, 10)])
    camera = rotation_about_x(25)                      # another camera: cancels against the mean
    assert cross.relative_rotation_error(camera @ wanted, wanted) == pytest.approx(0.0, abs=1e-4)
    still = np.stack([np.eye(3)] * 3)                  # a head that never turns misses 10, 0 and 10 degrees
    assert cross.relative_rotation_error(still, wanted) == pytest.approx(20 / 3, abs=1e-3)


def test_correlation_is_undefined_for_a_constant_series():
    assert np.isnan(cross.correlation(np.zeros(5), np.arange(5.0)))
    assert cross.correlation(np.arange(5.0), 2 * np.arange(5.0) + 1) == pytest.approx(1.0)


def test_retrieval_picks_the_training_frame_closest_to_each_retargeted_pose():
    train = np.array([[[0.0, 0.0]], [[5.0, 5.0]], [[9.0, 9.0]]])
    wanted = cross.Retargeted(np.ones(2, bool), np.zeros((2, 1, 3)), np.ones(2), np.array([[[8.0, 9.0]], [[1.0, 0.0]]]),
                              np.ones((2, 1), bool))
    np.testing.assert_array_equal(cross.retrieve(wanted, train, np.ones((3, 1), bool)), [2, 0])


def test_output_flicker_is_zero_for_a_still_output():
    frame = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    assert cross.output_flicker(np.stack([frame] * 3)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.e2e
def test_eval_with_a_driver_reports_cross_reenactment_for_the_model_and_retrieval(body_subject, example_target, tmp_path):
    checkpoint = tmp_path / "X.ckpt"
    assert run_reenact("train", body_subject, "--preset", "tiny", "--steps", 4, "--out", checkpoint).returncode == 0
    driver = make_clip(tmp_path / "driver.mp4", "-i", str(example_target), "-t", "1")
    result = run_reenact("eval", checkpoint, "--driver", driver, "--json", tmp_path / "E.json", "--report", tmp_path / "report",
                         env={"TORCH_HOME": str(tmp_path / "empty cache")})
    assert result.returncode == 0, result.stderr
    report = strict_loads((tmp_path / "E.json").read_text())
    cross_results = report["cross"]
    assert cross_results["driver"] == str(driver) and cross_results["frames"] == 24 and cross_results["driver_tracked"] > 0
    assert set(cross_results["systems"]) == {"model", "model_unstabilised", "model_no_temporal", "nearest_neighbour"}
    for figures in cross_results["systems"].values():
        for key in ("pose_distance", "flicker", "detection_share"):
            assert np.isfinite(figures[key]), (figures, key)
        assert 0.0 <= figures["detection_share"] <= 1.0
        assert figures["missed_detections"] == round((1 - figures["detection_share"]) * cross_results["driver_tracked"])
    assert "flicker" in cross_results["notes"] and "systems" in report       # self-reenactment is still there
    assert report["lpips"].startswith("unavailable: needs") and "lpips" not in report["systems"]["model"]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Cross-reenactment" in text and "detection_share" in text and "higher is better" in text
    assert (tmp_path / "report" / "cross_side_by_side.mp4").stat().st_size > 0


@pytest.mark.e2e
def test_eval_with_a_face_driver_refits_the_output_for_expression_and_head_motion(tmp_path):
    target = make_clip(tmp_path / "target.mp4", "-i", str(shared_clip("face/liveportrait_d3.mp4")), "-t", "3")
    driver = make_clip(tmp_path / "driver.mp4", "-i", str(shared_clip("face/tpsmm_driving.mp4")), "-t", "1")
    subject, checkpoint = tmp_path / "subject", tmp_path / "F.ckpt"
    assert run_reenact("track", target, "--mode", "face", "--resolution", 96, "--out", subject).returncode == 0
    assert run_reenact("train", subject, "--preset", "tiny", "--steps", 2, "--out", checkpoint).returncode == 0
    result = run_reenact("eval", checkpoint, "--driver", driver, "--json", tmp_path / "E.json", "--report", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    systems = strict_loads((tmp_path / "E.json").read_text())["cross"]["systems"]
    for figures in systems.values():
        assert {"eyeBlink_L_correlation", "eyeBlink_R_correlation", "jawOpen_correlation"} <= set(figures)
        assert 0.0 <= figures["detection_share"] <= 1.0 and np.isfinite(figures["flicker"])
    # Retrieval returns real frames of the subject, so the face is always found and refitted.
    nearest = systems["nearest_neighbour"]
    assert nearest["detection_share"] == 1.0
    assert np.isfinite(nearest["pose_distance"]) and 0.0 <= nearest["head_rotation_error_deg"] < 45.0
