"""`reenact live`: the causal pieces against their whole-clip counterparts and known answers, and
real clips streamed in real time over loopback into the real command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reenact.body.smoothing import OneEuroFilter, one_euro
from reenact.face.crop import SMOOTHING_SECONDS, CausalCrop
from reenact.face.geometry import axis_angle_to_matrix, project
from reenact.face.model import load_face_model
from reenact.face.online import OnlineFaceFit, warm_up
from reenact.io import probe_video
from reenact.body.driver import BODY_WARMUP_SECONDS
from reenact.proxy_window import ProxyWindow
from tests.conftest import assert_clean_failure, ffmpeg, make_clip, reenact_command, run_reenact, shared_clip, strict_loads

# --- the causal pieces ---------------------------------------------------------------------------


def test_proxy_window_hold_fills_the_future_with_the_newest_frame_and_wait_holds_frames_back():
    proxies = [torch.full((1, 2, 2), value, dtype=torch.uint8) for value in range(5)]
    values = lambda window: window[:, 0, 0].tolist()
    hold = ProxyWindow(window=3, lookahead="hold")
    ready = [next(iter(hold.push(p, i))) for i, p in enumerate(proxies)]
    assert [values(w) for w, _ in ready] == [[0, 0, 0], [0, 1, 1], [1, 2, 2], [2, 3, 3], [3, 4, 4]]
    wait = ProxyWindow(window=5, lookahead="wait")
    ready = [pair for i, p in enumerate(proxies) for pair in wait.push(p, i)]
    assert [item for _, item in ready] == [0, 1, 2]                   # frame t waits for t + 2
    assert [values(w) for w, _ in ready] == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4]]
    flushed = list(wait.flush())                                       # the stream ends: the last frame repeats
    assert [item for _, item in flushed] == [3, 4] and values(flushed[-1][0]) == [2, 3, 4, 4, 4]


def test_the_one_euro_filter_is_causal():
    rng = np.random.default_rng(0)
    signal_ = rng.normal(size=(40, 4, 2)).cumsum(axis=0)
    present = rng.random((40, 4)) > 0.2
    whole = one_euro(signal_, present, 30.0, 1.5, 2.0, 1.0)
    step = OneEuroFilter(30.0, 1.5, 2.0, 1.0)
    streamed = np.stack([step(signal_[t], present[t]) for t in range(25)])
    np.testing.assert_allclose(streamed, whole[:25])                  # the future changes nothing before it


def test_causal_crop_follows_a_step_with_the_smoothing_time_constant():
    fps, size = 30.0, 100
    crop = CausalCrop(fps, size, (1000, 1000))
    face = np.zeros((468, 2))
    face[:, 0], face[:, 1] = np.linspace(0, 40, 468), np.linspace(0, 40, 468)
    face += 300                                                       # far from the picture's edges
    assert tuple(crop(face)[:2]) == (320 - 50, 320 - 50 + 12)         # starts on the face, moved down for shoulders
    moved = face + [100, 0]
    x_after = [crop(moved)[0] for _ in range(round(fps * SMOOTHING_SECONDS))]
    assert 60 <= x_after[-1] + 50 - 320 <= 66                         # 1 - 1/e of the 100 px step after one time constant
    assert all(np.diff(x_after) >= 0)


def synthetic_face(model, frames: int, seed: int = 0, translation=(0.0, 0.0, -60.0)):
    """Landmarks of a known identity, expressions and head motion, projected by a known camera."""
    rng = np.random.default_rng(seed)
    identity = torch.as_tensor(rng.normal(size=model.landmark_identity_basis.shape[0]) * 0.5, dtype=torch.float32)
    expression = torch.zeros(frames, len(model.expression_names))
    jaw = model.expression_index("jawOpen")
    expression[:, jaw] = torch.as_tensor(0.5 + 0.4 * np.sin(np.linspace(0, 6, frames)), dtype=torch.float32)
    rotation = torch.zeros(frames, 3)
    rotation[:, 1] = torch.as_tensor(0.2 * np.sin(np.linspace(0, 4, frames)), dtype=torch.float32)
    translation = torch.tensor(translation).repeat(frames, 1)
    points = model.landmarks(identity, expression)
    pixels, _ = project(points, axis_angle_to_matrix(rotation), translation, torch.tensor(800.0), (320.0, 240.0))
    landmarks = np.concatenate([pixels.numpy(), np.zeros((frames, 468, 1))], axis=2).astype(np.float32)
    irises = np.repeat(landmarks[:, [33], :], 10, axis=1)             # FaceMesh's 10 iris points, unused by the fit
    return np.concatenate([landmarks, irises], axis=1), expression[:, jaw].numpy(), rotation[:, 1].numpy()


@pytest.mark.e2e
def test_the_online_fit_recovers_a_known_face_frame_by_frame():
    model = load_face_model()
    landmarks, jaw_open, yaw = synthetic_face(model, 90)
    driver = warm_up(model, landmarks[:30], (640, 480))
    fit = OnlineFaceFit(model, driver, (640, 480))
    faces = [fit.fit(landmarks[t]) for t in range(30, 90)]
    assert np.median([f.error for f in faces]) < 0.015                # of the inter-ocular distance
    fitted_jaw = np.array([f.expression[model.expression_index("jawOpen")] for f in faces])
    assert np.corrcoef(fitted_jaw, jaw_open[30:])[0, 1] > 0.98 and np.abs(fitted_jaw - jaw_open[30:]).mean() < 0.05
    relative_yaw = [np.arctan2(f.rotation[0, 2], f.rotation[2, 2]) for f in faces]
    assert np.corrcoef(relative_yaw, yaw[30:])[0, 1] > 0.98


def test_the_online_fit_jacobian_is_the_derivative_of_the_fit_objective():
    model = load_face_model()
    landmarks, _, _ = synthetic_face(model, 12)
    fit = OnlineFaceFit(model, warm_up(model, landmarks[:10], (640, 480)), (640, 480))
    fit.fit(landmarks[10])
    target = torch.as_tensor(landmarks[None, 11, :468, :2])
    start = torch.cat([fit.previous["rotation"][0], fit.previous["translation"][0], fit.previous["expression"][0, fit.fitted]])
    vector = start + torch.as_tensor(np.random.default_rng(0).normal(size=len(start)) * 0.05, dtype=torch.float32)
    vector[6:] = vector[6:].clamp(0, 1)
    for previous in (fit.previous, None):        # this frame after the one before, and a cold start
        fit.previous = previous
        evaluate, _, pair_interocular = fit._objective(target, fit._interocular(target))
        exact = torch.func.jacfwd(lambda v: evaluate(v)[1])(vector)[fit._moving_rows(len(pair_interocular))]
        assert torch.allclose(fit._jacobian(vector, pair_interocular), exact, atol=1e-6)


@pytest.mark.e2e
def test_the_online_fit_starts_cold_after_a_lost_face():
    model = load_face_model()
    landmarks, _, _ = synthetic_face(model, 11)
    fit = OnlineFaceFit(model, warm_up(model, landmarks[:10], (640, 480)), (640, 480))
    fit.fit(landmarks[10])
    fit.lose()
    # Back across the image and further away: the previous answer would be no start for it.
    elsewhere, jaw_open, _ = synthetic_face(model, 40, translation=(12.0, 5.0, -80.0))
    wide_open = int(np.argmax(jaw_open))
    face = fit.fit(elsewhere[wide_open])
    assert face.error < 0.015 and abs(face.expression[model.expression_index("jawOpen")] - jaw_open[wide_open]) < 0.1


# --- real clips streamed into the real command -----------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_live(checkpoint: Path, url: str, out: Path, *extra) -> subprocess.Popen:
    """`reenact live` in the background, its output in OUT.log; returns once it is opening the input."""
    command = [*reenact_command(), "live", str(checkpoint), "--input", url, "--output", str(out.with_suffix(".mp4")),
               "--stats", str(out.with_suffix(".stats.json")), "--record", str(out.with_suffix(".npz")), *map(str, extra)]
    log = out.with_suffix(".log")
    with open(log, "w") as file:
        live = subprocess.Popen(command, stdout=file, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 300
    while "live: opening" not in log.read_text() and live.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)                    # ffmpeg listening before the first packet
    return live


def finish(live: subprocess.Popen, out: Path) -> str:
    live.wait(timeout=300)
    return out.with_suffix(".log").read_text()


def send(clip: Path, url: str) -> None:
    """Play ``clip`` in real time to ``url`` as MPEG-TS, a keyframe each second."""
    subprocess.run([ffmpeg(), "-v", "error", "-re", "-i", str(clip), "-an", "-c:v", "libx264", "-preset", "ultrafast",
                    "-tune", "zerolatency", "-g", "25", "-f", "mpegts", f"{url}?pkt_size=1316"], check=True)


def stream_into_live(checkpoint: Path, clip: Path, out: Path, *extra) -> tuple[str, dict, dict]:
    """Send ``clip`` over loopback UDP into `reenact live`; its log, stats and record."""
    url = f"udp://127.0.0.1:{free_udp_port()}"
    live = start_live(checkpoint, url, out, *extra)
    send(clip, url)
    log = finish(live, out)
    assert live.returncode == 0, log
    assert "Traceback" not in log, log
    with np.load(out.with_suffix(".npz")) as record:
        return log, strict_loads(out.with_suffix(".stats.json").read_text()), dict(record)


def mp4_frames(path: Path) -> int:
    return probe_video(path).frame_count


LIVE_SETTINGS = 'stop_after_seconds = 3.0\nstall_seconds = 1.0\n'


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    (folder / "live.toml").write_text(LIVE_SETTINGS)
    return folder


@pytest.fixture(scope="module")
def face_checkpoint(workspace):
    clip = make_clip(workspace / "d3.mp4", "-i", str(shared_clip("face/liveportrait_d3.mp4")), "-t", "4")
    result = run_reenact("track", clip, "--mode", "face", "--resolution", 96, "--out", workspace / "d3")
    assert result.returncode == 0, result.stderr
    result = run_reenact("train", workspace / "d3", "--preset", "tiny", "--steps", 2, "--out", workspace / "d3.ckpt")
    assert result.returncode == 0, result.stderr
    return workspace / "d3.ckpt"


@pytest.fixture(scope="module")
def body_checkpoint(workspace, body_subject):
    result = run_reenact("train", body_subject, "--preset", "tiny", "--steps", 2, "--out", workspace / "body.ckpt")
    assert result.returncode == 0, result.stderr
    return workspace / "body.ckpt"


def offline_points(checkpoint: Path, clip: Path, ground_frames: int | None = None) -> np.ndarray:
    """What `transfer` draws per frame of ``clip``: face landmarks in the target's frame, or body
    keypoints in subject pixels, normalised with the ground statistics of the whole clip or of its
    first ``ground_frames``."""
    from reenact.body.normalize import ground_stats
    from reenact.body.retarget import normalize_into_crop
    from reenact.face.retarget import retarget_tracks
    from reenact.modes import FACE
    from reenact.reenactment import Reenactor

    reenactor = Reenactor.load(checkpoint, torch.device("cpu"))
    tracks, target = reenactor.track(str(clip), probe_video(clip), "cpu"), reenactor.target
    if reenactor.mode is FACE:
        return retarget_tracks(tracks, target)["landmarks"]
    span = slice(0, ground_frames)
    ground = ground_stats(tracks.keypoints[span], tracks.valid[span], target["track_config"]["min_confidence"])
    return normalize_into_crop(tracks.keypoints, tracks.valid, ground, target)


def check_counts(out: Path, stats: dict, record: dict) -> None:
    """Every frame delivered was taken or dropped; the mp4 has a frame for every input frame (the
    dropped ones repeat the output before them), and each stage timed every frame it saw."""
    assert stats["frames_out"] == len(record["input_index"]) and np.all(np.diff(record["input_index"]) > 0)
    assert stats["frames_out"] + stats["dropped"] == stats["frames_in"]
    assert mp4_frames(out.with_suffix(".mp4")) == stats["timeline_frames"] == stats["frames_in"]
    stages = stats["stage_ms"]
    assert stages["outputs"]["frames"] == stats["frames_out"] and stages["translate"]["frames"] == stats["generated"]
    assert stages["track_and_proxy"]["frames"] >= stats["generated"] and stages["track_and_proxy"]["p50"] > 0


@pytest.mark.e2e
def test_a_face_clip_streamed_live_matches_offline_transfer(face_checkpoint, workspace):
    clip = make_clip(workspace / "d10.mp4", "-i", str(shared_clip("face/liveportrait_d10.mp4")), "-t", "8",
                     "-vf", "scale=640:480")
    out = workspace / "face_live"
    log, stats, record = stream_into_live(face_checkpoint, clip, out, "--config", workspace / "live.toml")
    check_counts(out, stats, record)
    assert "warm-up done" in log and stats["generated"] > 0.5 * stats["frames_out"]
    offline = offline_points(face_checkpoint, clip)
    generated = record["generated"]
    live, frames = record["points"][generated], record["input_index"][generated]
    crop_size = strict_loads((workspace / "d3" / "subject.json").read_text())["crop"]["size"]
    distance = np.linalg.norm(live - offline[frames], axis=-1).mean(axis=-1) / crop_size
    # The live fit holds the mean pose of its first second where transfer takes the whole clip's.
    assert np.median(distance) < 0.03, np.percentile(distance, [50, 90, 100])


@pytest.mark.e2e
def test_a_body_clip_streamed_live_matches_offline_transfer(body_checkpoint, example_target, workspace):
    out = workspace / "body_live"
    log, stats, record = stream_into_live(body_checkpoint, example_target, out, "--config", workspace / "live.toml",
                                          "--lookahead", "wait")
    check_counts(out, stats, record)
    assert stats["generated"] > 0.8 * stats["frames_out"], log
    # Live normalises with the ground statistics of its first 3 s of input, so the offline poses do too.
    warm_up_frames = round(probe_video(example_target).fps * BODY_WARMUP_SECONDS)
    offline = offline_points(body_checkpoint, example_target, ground_frames=warm_up_frames)
    generated = record["generated"]
    live, frames = record["points"][generated], record["input_index"][generated]
    after_warm_up = frames >= warm_up_frames
    live, frames = live[after_warm_up], frames[after_warm_up]
    both = (live[..., 2] >= 0.3) & (offline[frames, :, 2] >= 0.3)
    distance = np.linalg.norm(live[..., :2] - offline[frames, :, :2], axis=-1)[both] / 96
    assert np.median(distance) < 0.06, np.percentile(distance, [50, 90, 100])


@pytest.mark.e2e
def test_a_recording_plays_in_the_input_time_and_max_frames_counts_input_frames(face_checkpoint, workspace):
    clip = make_clip(workspace / "d6_15s.mp4", "-i", str(shared_clip("face/liveportrait_d6.mp4")), "-t", "15", "-an")
    out = workspace / "timeline"
    log = finish(start_live(face_checkpoint, str(clip), out), out)
    stats = strict_loads(out.with_suffix(".stats.json").read_text())
    # Frames the 2-core CPU had no time for repeat the output before them instead of vanishing.
    assert abs(probe_video(out.with_suffix(".mp4")).duration - 15.0) <= 0.5, (log, stats)
    assert stats["timeline_frames"] == stats["frames_in"] == 450, stats
    first = workspace / "first_150"
    log = finish(start_live(face_checkpoint, str(clip), first, "--max-frames", 150), first)
    assert mp4_frames(first.with_suffix(".mp4")) == 150, log


@pytest.mark.e2e
def test_ctrl_c_finishes_the_mp4(body_checkpoint, example_target, workspace):
    out = workspace / "interrupted"
    live = start_live(body_checkpoint, str(example_target), out)
    time.sleep(3)
    live.send_signal(signal.SIGINT)
    log = finish(live, out)
    assert live.returncode == 0 and "Traceback" not in log, log
    stats = strict_loads(out.with_suffix(".stats.json").read_text())
    assert 0 < stats["frames_out"] <= mp4_frames(out.with_suffix(".mp4")) == stats["timeline_frames"] <= stats["frames_in"]
    assert not list(workspace.glob(".interrupted*"))


@pytest.mark.e2e
def test_nobody_in_view_holds_the_last_output_until_the_face_comes_back(face_checkpoint, workspace):
    face = shared_clip("face/liveportrait_d10.mp4")
    clip = make_clip(workspace / "gap.mp4", "-i", str(face), "-f", "lavfi", "-i", "color=black:s=512x512:r=30:d=3",
                     "-filter_complex", "[0:v]trim=0:7,setpts=PTS-STARTPTS,fps=30[a];[0:v]trim=3:6,setpts=PTS-STARTPTS,"
                     "fps=30[b];[a][1:v][b]concat=n=3:v=1[v]", "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p")
    out = workspace / "gap_live"
    log, stats, record = stream_into_live(face_checkpoint, clip, out, "--config", workspace / "live.toml")
    check_counts(out, stats, record)
    assert "no face in view for 2 s" in log and "back in view" in log, log
    held = ~record["generated"]
    assert held.sum() >= 30 and record["generated"][-10:].all()


@pytest.mark.e2e
def test_bad_inputs_end_with_one_clear_line(face_checkpoint, workspace, tmp_path):
    out = ("--output", tmp_path / "x.mp4")
    assert_clean_failure(run_reenact("live", face_checkpoint, "--input", "/dev/video9", *out), "/dev/video9")
    assert_clean_failure(run_reenact("live", face_checkpoint, "--input", "rtsp://127.0.0.1:1/x", *out, timeout=60),
                         "rtsp://127.0.0.1:1/x")
    assert_clean_failure(run_reenact("live", face_checkpoint, "--input", tmp_path / "none.mp4", *out), "none.mp4")
    assert_clean_failure(run_reenact("live", face_checkpoint), "nothing to output")
    assert_clean_failure(run_reenact("live", face_checkpoint, "--input", "-", "--output", "out.avi"), "out.avi")
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.e2e
def test_a_stream_that_stops_midway_ends_the_run_with_a_finished_file(body_checkpoint, example_target, workspace):
    clip = make_clip(workspace / "short.mp4", "-i", str(example_target), "-t", "4")
    out = workspace / "stopped"
    log, stats, record = stream_into_live(body_checkpoint, clip, out, "--config", workspace / "live.toml")
    assert "stalled" in log and "stopping" in log, log
    check_counts(out, stats, record)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(1e-10, np.mean((a.astype(np.float64) - b) ** 2))))


def test_live_generates_the_frames_offline_transfer_does(body_checkpoint, example_target):
    """Every frame through the live driver (none dropped, lookahead wait) and the engine, against the
    engine's frames from the whole clip's tracks, as `transfer` makes them. Live normalises the pose
    with its first 3 s (it has no future), so the offline poses do too here; the rest is the same
    chain. The tolerance, median PSNR after the warm-up: above 22 dB and 4 dB above frames half the
    clip away. Measured: this 2-step checkpoint 25.0 against 18.5 dB; a 12-step one on its own clip
    42.7 (p10 35.6) against 22.3, and 23.0 with the whole clip's statistics, as transfer has them."""
    from reenact.body.head import head_centers
    from reenact.body.skeleton import SkeletonRenderer
    from reenact.drive import Drive
    from reenact.io import iter_frames
    from reenact.reenactment import Reenactor

    reenactor = Reenactor.load(body_checkpoint, torch.device("cpu"))
    video, target = probe_video(example_target), reenactor.target
    warm_up_frames = round(video.fps * BODY_WARMUP_SECONDS)
    keypoints = offline_points(body_checkpoint, example_target, ground_frames=warm_up_frames)
    renderer = SkeletonRenderer(target["subject_resolution"])
    centers, seen = head_centers(keypoints, target["track_config"]["min_confidence"])
    flows = [None] + [renderer.backward_flow(now, before) for now, before in zip(keypoints[1:], keypoints[:-1])]
    offline_drives = [Drive(renderer.render(points), flow, head=np.array([*center, head], np.float32), points=points)
                      for points, flow, center, head in zip(keypoints, flows, centers, seen)]
    assert all(drive.flow.shape == (*drive.proxy.shape[:2], 2) for drive in offline_drives[1:])
    offline = np.stack([output.frame for output in reenactor.run((reenactor.model_proxy(d), d) for d in offline_drives)])
    driver = reenactor.live_driver()
    driver.start(video.fps, (video.width, video.height))
    drives = [driver(frame, t / video.fps) for t, frame in enumerate(iter_frames(video))]
    driver.close()
    driven = [t for t, drive in enumerate(drives) if drive is not None]
    live = np.stack([output.frame for output in reenactor.run((reenactor.model_proxy(drives[t]), drives[t])
                                                              for t in driven)])
    assert len(driven) > 0.9 * len(drives)
    after = [(frame, t) for frame, t in zip(live, driven) if t >= warm_up_frames]
    same = np.median([psnr(frame, offline[t]) for frame, t in after])
    shifted = np.median([psnr(frame, offline[(t + len(offline) // 2) % len(offline)]) for frame, t in after])
    assert same > 22 and same > shifted + 4, (same, shifted)


@pytest.mark.e2e
def test_an_output_that_cannot_be_written_is_refused_before_the_input_opens(body_checkpoint, workspace):
    if not Path("/proc/self").exists():
        pytest.skip("needs /proc, where even root can't write")
    result = run_reenact("live", body_checkpoint, "--input", f"udp://127.0.0.1:{free_udp_port()}", "--output", "/proc/nope/x.mp4")
    assert_clean_failure(result, "/proc/nope/x.mp4", "can't be written")
    assert "live: opening" not in result.stdout + result.stderr


@pytest.mark.e2e
def test_a_file_tracked_before_plays_its_motion_file_in_live(face_checkpoint, workspace):
    clip = make_clip(workspace / "d10_3s.mp4", "-i", str(shared_clip("face/liveportrait_d10.mp4")), "-t", "3", "-an")
    cache = {"REENACT_CACHE": str(workspace / "motion_cache")}
    made = run_reenact("track", clip, "--mode", "face", "--motion-only", env=cache)
    assert made.returncode == 0, made.stderr
    out = workspace / "recorded"
    command = [*reenact_command(), "live", str(face_checkpoint), "--input", str(clip), "--output", str(out.with_suffix(".mp4")),
               "--stats", str(out.with_suffix(".stats.json"))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200", **cache})
    assert result.returncode == 0 and "reusing its motion file" in result.stderr, result.stderr
    stats = strict_loads(out.with_suffix(".stats.json").read_text())
    # No warm-up to wait for: every frame taken is translated from the whole-clip tracks.
    assert stats["held"] == 0 and stats["generated"] == stats["frames_out"] > 0, stats
    assert mp4_frames(out.with_suffix(".mp4")) == stats["timeline_frames"] == 90
