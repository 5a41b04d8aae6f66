"""Real face clips through the real stages: track → train → transfer (with edits, paste-back) → export."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch

from reenact.face.arkit import ARKIT_NAMES
from reenact.io import iter_frames, probe_video
from reenact.subject import Subject
from tests.conftest import assert_clean_failure, make_clip, run_reenact, shared_clip, strict_loads


pytestmark = pytest.mark.e2e   # every test here runs the real commands on real clips


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("face")


@pytest.fixture(scope="module")
def face_subject(workspace):
    """liveportrait_d3: frowns, blinks and head turns, 354 frames, tracked at 96 px (the tiny preset's size)."""
    out = workspace / "d3"
    result = run_reenact("track", shared_clip("face/liveportrait_d3.mp4"), "--mode", "face", "--resolution", 96, "--out", out)
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
    meta = strict_loads((face_subject / "subject.json").read_text())
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
    proxies = Subject.load(face_subject).proxies()
    assert proxies.shape == (354, 96, 96, 4) and proxies[:, :, :, 3].max() > 128   # eye outlines over irises


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
    # The proxy window, the previous frame, and the neural texture sampled at the correspondence image.
    texture = state["model"]["neural_texture"]
    assert state["model"]["generator"]["in_channels"] == 4 * state["window"] + 3 + texture["channels"]
    assert state["model"]["architecture"] == {"generator": "unet"} and texture["proxy_channels"] == 4
    assert "texture.levels.0" in state["generator"]


def test_face_transfer_with_edits_and_paste_back(face_checkpoint, tmp_path):
    source = make_clip(tmp_path / "driver.mp4", "-i", str(shared_clip("face/tpsmm_driving.mp4")), "-t", "2",
                       "-c:v", "libx264", "-c:a", "aac")
    expected = sum(1 for _ in iter_frames(probe_video(source)))
    out = tmp_path / "result.mp4"
    result = run_reenact("transfer", source, face_checkpoint, "--out", out, "--edit", "jawOpen=+0.2",
                         "--edit", "eyeBlinkLeft=-0.3", "--paste-back")    # the model's name and ARKit's
    assert result.returncode == 0, result.stderr
    video = probe_video(out)
    assert abs(sum(1 for _ in iter_frames(video)) - expected) <= 1
    assert video.fps_fraction == "25/1" and video.has_audio and (video.width, video.height) == (512, 512)
    # The same driver again: its fitted motion comes from the motion file, and so do the same frames.
    again = run_reenact("transfer", source, face_checkpoint, "--out", tmp_path / "again.mp4", "--edit", "jawOpen=+0.2",
                        "--edit", "eyeBlinkLeft=-0.3", "--paste-back")
    assert again.returncode == 0 and "reusing its motion file" in again.stderr and "fitted the face model" not in again.stderr
    assert np.array_equal(*(np.stack(list(iter_frames(probe_video(path)))) for path in (out, tmp_path / "again.mp4")))
    bad = run_reenact("transfer", source, face_checkpoint, "--edit", "jawOpn=+1", "--out", tmp_path / "bad.mp4")
    assert_clean_failure(bad, "unknown expression 'jawOpn'", "jawOpen")
    assert not (tmp_path / "bad.mp4").exists()
    tongue = run_reenact("transfer", source, face_checkpoint, "--edit", "tongueOut=+1", "--out", tmp_path / "bad.mp4")
    assert_clean_failure(tongue, "no tongueOut")


def test_export_expressions_csv_and_json(face_subject, tmp_path):
    result = run_reenact("export-expressions", face_subject, "--csv", tmp_path / "e.csv", "--json", tmp_path / "e.json")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "e.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 354 and float(rows[30]["time_s"]) == pytest.approx(1.0)
    assert {"jawOpen", "eyeBlink_L", "head_yaw_deg", "head_z_cm", "gaze_left_yaw_in_deg"} <= set(rows[0])
    assert 0 <= float(rows[10]["jawOpen"]) <= 1
    assert len(strict_loads((tmp_path / "e.json").read_text())) == 354
    assert all(len(value.partition(".")[2]) <= 4 for value in rows[10].values())    # rounded, not float32's digits
    result = run_reenact("export-expressions", face_subject, "--csv", tmp_path / "a.csv", "--names", "arkit")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "a.csv") as f:
        arkit_rows = list(csv.DictReader(f))
    assert list(arkit_rows[0])[3:3 + 52] == list(ARKIT_NAMES) and len(set(ARKIT_NAMES)) == 52
    assert arkit_rows[10]["eyeBlinkLeft"] == rows[10]["eyeBlink_L"] and float(arkit_rows[10]["tongueOut"]) == 0
    halves = (float(rows[10]["browInnerUp_L"]) + float(rows[10]["browInnerUp_R"])) / 2
    assert float(arkit_rows[10]["browInnerUp"]) == pytest.approx(halves, abs=1e-4)
    result = run_reenact("export-expressions", face_subject, "--csv", tmp_path / "l.csv", "--names", "live_link")
    header = (tmp_path / "l.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"] and "TongueOut" in header
    body = run_reenact("export-expressions", tmp_path, "--csv", tmp_path / "x.csv")
    assert_clean_failure(body, "not a subject folder")


def test_face_alignment_backend_without_its_weights_is_a_clean_error(tmp_path):
    """track never downloads: with an empty torch cache the error names the weights file and
    `reenact weights fetch 2dfan` (or, without the package, how to install it), before any tracking."""
    out = tmp_path / "out"
    result = run_reenact("track", shared_clip("face/liveportrait_d3.mp4"), "--mode", "face", "--face-landmarks",
                         "face_alignment", "--out", out, env={"TORCH_HOME": str(tmp_path / "torch")})
    installed = importlib.util.find_spec("face_alignment") is not None
    assert_clean_failure(result, *([str(tmp_path / "torch"), "2DFAN4", "does not download", "reenact weights fetch 2dfan"]
                                   if installed else ["pip install"]))
    assert not out.exists()


def test_face_alignment_backend_fits_its_68_points(tmp_path):
    """The backend's plumbing end to end on a real clip. Its real weights can't be fetched here,
    so a randomly initialised 2D-FAN stands in: the points it finds are meaningless, but they
    must come back in source pixels near the face, be stored, and be what the model is fitted to."""
    face_alignment = pytest.importorskip("face_alignment")
    from face_alignment.models import FAN

    from reenact.face.fan import FAN_NETWORK

    torch_home = tmp_path / "torch"
    weights = torch_home / "hub" / "checkpoints" / Path(urlparse(face_alignment.api.models_urls[FAN_NETWORK]).path).name
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), weights)
    clip = make_clip(tmp_path / "clip.mp4", "-i", str(shared_clip("face/liveportrait_d3.mp4")), "-t", "1")
    out = tmp_path / "subject"
    result = run_reenact("track", clip, "--mode", "face", "--face-landmarks", "face_alignment", "--resolution", 32,
                         "--out", out, env={"TORCH_HOME": str(torch_home)})
    assert result.returncode == 0, result.stderr
    assert strict_loads((out / "subject.json").read_text())["face"]["landmarks"] == "face_alignment"
    with np.load(out / "tracks.npz") as tracks:
        landmarks, points68, fitted = tracks["landmarks"], tracks["landmarks68"], tracks["fitted_landmarks"]
        valid, error = tracks["valid"], tracks["fit_error"]
    assert points68.shape == (len(valid), 68, 2) and valid.all() and fitted.shape == (len(valid), 478, 2)
    # 2D-FAN reads a crop around FaceMesh's box, so even random points fall within about a box of it.
    low, high = landmarks[:, :468, :2].min(axis=1), landmarks[:, :468, :2].max(axis=1)
    margin = (high - low)[:, None]
    assert ((points68 > low[:, None] - margin) & (points68 < high[:, None] + margin)).all()
    # The stored fit error is measured against the 68 points, not FaceMesh's 468.
    interocular = np.linalg.norm(points68[:, 36] - points68[:, 45], axis=1)
    assert np.isfinite(error).all() and error.shape == interocular.shape
