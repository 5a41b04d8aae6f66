"""Real face clips through the real stages: track → train → transfer (with edits, paste-back) → export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from reenact.io import iter_frames, probe_video
from tests.conftest import assert_clean_failure, make_clip, run_reenact, shared_clip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("face")


@pytest.fixture(scope="module")
def face_subject(workspace):
    """liveportrait_d3: frowns, blinks and head turns, 354 frames, tracked at 64 px."""
    out = workspace / "d3"
    result = run_reenact("track", shared_clip("face/liveportrait_d3.mp4"), "--mode", "face", "--resolution", 64, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def face_checkpoint(workspace, face_subject):
    out = workspace / "d3.ckpt"
    result = run_reenact("train", face_subject, "--preset", "tiny", "--steps", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_face_tracks_fit_the_landmarks_and_follow_the_blinks(face_subject):
    meta = json.loads((face_subject / "subject.json").read_text())
    assert meta["mode"] == "face" and meta["frame_count"] == 354
    with np.load(face_subject / "tracks.npz") as tracks:
        valid, landmarks, fitted = tracks["valid"], tracks["landmarks"], tracks["fitted_landmarks"]
        expression, names = tracks["expression"], list(tracks["expression_names"])
        assert tracks["identity"].shape == (100,) and tracks["rotation"].shape == (354, 3, 3) and tracks["gaze"].shape == (354, 2, 2)
    assert valid.mean() >= 0.98 and landmarks.shape == (354, 478, 3) and fitted.shape == (354, 478, 2)
    interocular = np.linalg.norm(landmarks[:, 33, :2] - landmarks[:, 263, :2], axis=1)
    error = np.linalg.norm(fitted[:, :468] - landmarks[:, :468, :2], axis=2).mean(axis=1) / interocular
    assert np.median(error[valid]) <= 0.04
    assert expression.shape == (354, 53) and expression.min() >= 0 and expression.max() <= 1
    left_open = np.linalg.norm(landmarks[:, 386, :2] - landmarks[:, 374, :2], axis=1)
    right_open = np.linalg.norm(landmarks[:, 159, :2] - landmarks[:, 145, :2], axis=1)
    assert correlation(expression[:, names.index("eyeBlink_L")], left_open) <= -0.6
    assert correlation(expression[:, names.index("eyeBlink_R")], right_open) <= -0.6
    proxies = np.load(face_subject / "proxies.npy", mmap_mode="r")
    assert proxies.shape == (354, 64, 64, 4) and proxies[:, :, :, 3].max() > 128   # eye outlines over irises


def test_jaw_open_follows_the_lips_on_a_talking_clip(tmp_path):
    out = tmp_path / "talk"
    result = run_reenact("track", shared_clip("face/liveportrait_d10.mp4"), "--mode", "face", "--resolution", 32, "--out", out)
    assert result.returncode == 0, result.stderr
    with np.load(out / "tracks.npz") as tracks:
        gap = np.linalg.norm(tracks["landmarks"][:, 13, :2] - tracks["landmarks"][:, 14, :2], axis=1)
        jaw = tracks["expression"][:, list(tracks["expression_names"]).index("jawOpen")]
    assert correlation(jaw, gap) >= 0.8


def test_face_checkpoint_carries_the_target(face_checkpoint):
    state = torch.load(face_checkpoint, weights_only=True)
    assert state["mode"] == "face" and len(state["target"]["identity"]) == 100
    assert state["model"]["generator"]["in_channels"] == 4 * state["window"] + 3


def test_face_transfer_with_edits_and_paste_back(face_checkpoint, tmp_path):
    source = make_clip(tmp_path / "driver.mp4", "-i", str(shared_clip("face/tpsmm_driving.mp4")), "-t", "2",
                       "-c:v", "libx264", "-c:a", "aac")
    expected = sum(1 for _ in iter_frames(probe_video(source)))
    out = tmp_path / "result.mp4"
    result = run_reenact("transfer", source, face_checkpoint, "--out", out, "--edit", "jawOpen=+0.2",
                         "--edit", "eyeBlink_L=-0.3", "--paste-back")
    assert result.returncode == 0, result.stderr
    video = probe_video(out)
    assert abs(sum(1 for _ in iter_frames(video)) - expected) <= 1
    assert video.fps_fraction == "25/1" and video.has_audio and (video.width, video.height) == (512, 512)
    bad = run_reenact("transfer", source, face_checkpoint, "--edit", "jawOpn=+1", "--out", tmp_path / "bad.mp4")
    assert_clean_failure(bad, "unknown expression 'jawOpn'", "jawOpen")
    assert not (tmp_path / "bad.mp4").exists()


def test_export_expressions_csv_and_json(face_subject, tmp_path):
    result = run_reenact("export-expressions", face_subject, "--csv", tmp_path / "e.csv", "--json", tmp_path / "e.json")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "e.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 354 and float(rows[30]["time_s"]) == pytest.approx(1.0)
    assert {"jawOpen", "eyeBlink_L", "head_yaw_deg", "head_z_cm", "gaze_left_yaw_in_deg"} <= set(rows[0])
    assert 0 <= float(rows[10]["jawOpen"]) <= 1
    assert len(json.loads((tmp_path / "e.json").read_text())) == 354
    body = run_reenact("export-expressions", tmp_path, "--csv", tmp_path / "x.csv")
    assert_clean_failure(body, "not a subject folder")
