"""Real footage through the real stages at tiny sizes: track → train → resume → transfer."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from reenact.errors import ReenactError
from reenact.io import iter_frames, probe_video
from reenact.subject import Subject, read_images, write_images
from tests.conftest import assert_clean_failure, make_clip, run_reenact, shared_clip, strict_loads

from tests.conftest import BODY_RESOLUTION as RESOLUTION


pytestmark = pytest.mark.e2e   # every test here runs the real commands on real clips


@pytest.fixture(scope="module")
def subject(body_subject):
    return body_subject


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, subject):
    out = tmp_path_factory.mktemp("body_train") / "target.ckpt"
    result = run_reenact("train", subject, "--preset", "tiny", "--steps", 4, "--out", out, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"{out}: undertrained: 4 steps of the 300" in " ".join(result.stderr.split()), result.stderr
    return out


def test_track_writes_a_complete_subject_folder(subject, example_source):
    meta = strict_loads((subject / "subject.json").read_text())
    video = probe_video(example_source)
    assert meta["mode"] == "body" and meta["schema_version"] == 2
    assert meta["source"]["width"] == video.width and meta["fps_fraction"] == video.fps_fraction
    with np.load(subject / "tracks.npz") as tracks:
        valid, keypoints = tracks["valid"], tracks["keypoints"]
    frame_count = meta["frame_count"]
    assert valid.shape == (frame_count,) and valid.mean() >= 0.95
    assert keypoints.shape[0] == frame_count and keypoints.shape[1:] == (214, 3)
    confident = keypoints[valid][..., 2] > 0.5
    xs, ys = keypoints[valid][..., 0][confident], keypoints[valid][..., 1][confident]
    # In source pixels (MediaPipe places feet at the bottom edge a little outside the frame).
    margin = 0.1 * video.height
    assert -margin <= xs.min() and xs.max() <= video.width + margin
    assert -margin <= ys.min() and ys.max() <= video.height + margin
    assert ys.max() - ys.min() > 0.4 * video.height
    loaded = Subject.load(subject)
    frames, proxies = loaded.frames(), loaded.proxies()
    assert frames.shape == proxies.shape == (frame_count, RESOLUTION, RESOLUTION, 3)
    # Stored compactly: PNG stacks, lossless, well under the raw arrays.
    stored = sum((subject / name).stat().st_size for name in ("frames.npz", "proxies.npz"))
    assert stored < 0.6 * (frames.nbytes + proxies.nbytes)
    assert (proxies.reshape(frame_count, -1).max(axis=1) > 0).mean() >= 0.95
    preview = probe_video(subject / "preview.mp4")
    assert sum(1 for _ in iter_frames(preview)) == frame_count


def test_proxies_line_up_with_the_person_in_the_frames(subject):
    """Skeleton pixels fall on the moving person: where frames differ from the static background."""
    loaded = Subject.load(subject)
    frames, proxies = loaded.frames(), loaded.proxies()
    background = np.median(frames, axis=0)
    foreground = np.abs(frames.astype(np.int16) - background).sum(axis=3) > 60
    drawn = proxies.max(axis=3) > 0
    assert foreground[drawn].mean() > 3 * foreground[~drawn].mean()


def test_the_loss_weights_the_person_region_on_a_real_clip(subject):
    from pipelines.train import loss_regions
    from reenact.config import TrainConfig

    loaded = Subject.load(subject)
    regions = loss_regions(loaded, TrainConfig(subject=str(subject))) > 0
    frames = loaded.frames()
    foreground = np.abs(frames.astype(np.int16) - np.median(frames, axis=0)).sum(axis=3) > 60
    assert regions.shape == frames.shape[:3] and regions.mean() < 0.3
    assert foreground[regions].mean() > 5 * foreground[~regions].mean()
    assert loss_regions(loaded, TrainConfig(subject=str(subject), region_weight=0)) is None


def test_track_again_reuses_the_folder(subject, example_source):
    before = (subject / "frames.npz").stat().st_mtime_ns
    result = run_reenact("track", example_source, "--mode", "body", "--resolution", RESOLUTION, "--out", subject)
    assert result.returncode == 0 and "reusing" in result.stderr
    assert (subject / "frames.npz").stat().st_mtime_ns == before


def test_train_writes_a_safe_self_describing_checkpoint(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    assert state["step"] == 4 and state["mode"] == "body" and state["world_size"] == 1
    assert state["resolution"] == 96 and state["config"]["preset"] == "tiny"
    assert set(state["target"]["ground"]) == {"ankles", "hips"} and state["target"]["crop"]["size"] > 0
    assert isinstance(state["perceptual_loss"]["enabled"], bool)
    assert np.isfinite(state["validation"]["psnr"])
    run_folder = checkpoint.with_suffix(".train")
    assert (run_folder / "config.json").exists() and list((run_folder / "samples").glob("step_*.png"))
    assert list((run_folder / "tensorboard").iterdir())


def test_resume_continues_to_the_total_steps(checkpoint, subject, tmp_path):
    resumed = tmp_path / "resumed.ckpt"
    resumed.write_bytes(checkpoint.read_bytes())
    result = run_reenact("train", subject, "--preset", "tiny", "--steps", 6, "--resume", "--out", resumed)
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stderr and "step 4" in result.stderr
    assert torch.load(resumed, weights_only=True)["step"] == 6


def test_resuming_from_a_checkpoint_of_another_mode_is_refused(checkpoint, subject, tmp_path):
    face = tmp_path / "face.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, "mode": "face"}, face)
    result = run_reenact("train", subject, "--preset", "tiny", "--steps", 6, "--resume", "--out", face)
    assert_clean_failure(result, "face.ckpt", "a face checkpoint, but body is needed")


def test_face_options_are_refused_for_a_body_checkpoint(checkpoint, example_source, tmp_path):
    result = run_reenact("transfer", example_source, checkpoint, "--edit", "jawOpen=+0.2", "--out", tmp_path / "o.mp4")
    assert_clean_failure(result, "need a face checkpoint")


def test_transfer_follows_the_source_frames_fps_and_audio(checkpoint, example_target, tmp_path):
    source = make_clip(tmp_path / "source clip.mp4", "-i", str(example_target), "-t", "2", "-c:v", "libx264", "-c:a", "aac")
    source_frames = sum(1 for _ in iter_frames(probe_video(source)))
    out = tmp_path / "out" / "result.mp4"
    result = run_reenact("transfer", source, checkpoint, "--out", out, "--side-by-side")
    assert result.returncode == 0, result.stderr
    # A 4-step model paints a blur: the one line says so, and how long the rest would take.
    undertrained = [line for line in result.stderr.split("warning:") if "undertrained" in line]
    assert len(undertrained) == 1 and "more minutes" in undertrained[0] and "--resume --steps 300" in undertrained[0]
    video = probe_video(out)
    assert abs(sum(1 for _ in iter_frames(video)) - source_frames) <= 1
    assert video.fps_fraction == probe_video(source).fps_fraction and video.has_audio
    assert video.height == 96 and video.width > 3 * 96     # source | proxy | result
    assert strict_loads(out.with_suffix(".json").read_text())["transfer"]["side_by_side"] is True


def test_transfer_stabilises_by_default_and_no_stabilise_shows_the_raw_frames(checkpoint, example_target, tmp_path):
    from reenact.evaluation.cross import output_flicker

    source = make_clip(tmp_path / "source.mp4", "-i", str(example_target), "-t", "2")
    flicker = {}
    for name, options in (("stabilised", ()), ("raw", ("--no-stabilise",))):
        out = tmp_path / f"{name}.mp4"
        result = run_reenact("transfer", source, checkpoint, "--out", out, *options)
        assert result.returncode == 0, result.stderr
        assert strict_loads(out.with_suffix(".json").read_text())["transfer"]["stabilise"] is (name == "stabilised")
        flicker[name] = output_flicker(np.stack(list(iter_frames(probe_video(out)))))
    assert flicker["stabilised"] < 0.8 * flicker["raw"], flicker


def test_where_the_targets_crop_reaches_past_its_video_the_result_is_black_as_the_footage(checkpoint, subject,
                                                                                         example_target, tmp_path):
    """The example's crop runs 46 source pixels below its 360-pixel video: its last rows are black
    padding in every training frame. A 4-step model paints grey there unless told."""
    meta = json.loads((subject / "subject.json").read_text())
    first_padded_row = int(np.ceil((meta["source"]["height"] - meta["crop"]["y"]) * RESOLUTION / meta["crop"]["size"]))
    assert first_padded_row <= RESOLUTION - 6
    source = make_clip(tmp_path / "source.mp4", "-i", str(example_target), "-t", "1")
    out = tmp_path / "out.mp4"
    result = run_reenact("transfer", source, checkpoint, "--out", out)
    assert result.returncode == 0, result.stderr
    frames = np.stack(list(iter_frames(probe_video(out)))).astype(np.float32)
    padding, picture = frames[:, first_padded_row + 2:], frames[:, RESOLUTION // 4:first_padded_row - 2]
    assert padding.max() < 24 and padding.mean() < 4, (padding.mean(), padding.max())   # black, less the codec's ringing
    assert picture.mean() > 40                                                           # the rest is painted


def test_shared_full_body_clip_is_tracked_in_almost_every_frame(tmp_path):
    clip = shared_clip("body/hybrik_taiji.mp4")
    result = run_reenact("track", clip, "--mode", "body", "--resolution", 64, "--out", tmp_path / "taiji")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "taiji" / "tracks.npz") as tracks:
        assert tracks["valid"].mean() >= 0.95
        ankles = tracks["keypoints"][:, 27:29]
        assert (ankles[..., 2] > 0.5).mean() > 0.8 and ankles[..., 1].max() <= 720


def test_a_driver_is_tracked_once_and_its_motion_file_reused(checkpoint, example_target, tmp_path):
    driver = make_clip(tmp_path / "driver.mp4", "-i", str(example_target), "-t", "2")
    fresh, cache = {"REENACT_CACHE": str(tmp_path / "fresh")}, {"REENACT_CACHE": str(tmp_path / "cache")}
    tracked = run_reenact("transfer", driver, checkpoint, "--out", tmp_path / "tracked.mp4", env=fresh)
    assert tracked.returncode == 0 and "saved its motion file" in tracked.stderr, tracked.stderr
    made = run_reenact("track", driver, "--mode", "body", "--motion-only", env=cache, cwd=tmp_path)
    assert made.returncode == 0 and "transfer and eval reuse it" in made.stderr, made.stderr
    assert len(list((tmp_path / "cache" / "motion").glob("driver-*.npz"))) == 1 and not (tmp_path / "driver").exists()
    for run in ("first", "second"):
        reused = run_reenact("transfer", driver, checkpoint, "--out", tmp_path / f"{run}.mp4", env=cache)
        assert reused.returncode == 0 and "reusing its motion file" in reused.stderr, reused.stderr
        assert "tracking body" not in reused.stderr and not re.search(r"tracked \d+ frames", reused.stderr)
        frames = [np.stack(list(iter_frames(probe_video(tmp_path / f"{name}.mp4")))) for name in ("tracked", run)]
        assert np.array_equal(*frames)             # the same as a fresh track, frame for frame
    evaluation = run_reenact("eval", checkpoint, "--driver", driver, "--report", tmp_path / "e", env=cache)
    assert evaluation.returncode == 0 and "reusing its motion file" in evaluation.stderr, evaluation.stderr


def test_image_stacks_are_lossless_and_version_1_folders_still_load(subject, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 16, 16, 4), dtype=np.uint8)
    write_images(tmp_path / "s.npz", iter(images), 5, "clip.mp4")
    assert np.array_equal(read_images(tmp_path / "s.npz"), images)
    with pytest.raises(ReenactError, match="gave 4 frames on a later pass, 5 on the first"):
        write_images(tmp_path / "short.npz", iter(images[:4]), 5, "clip.mp4")
    # A folder written before the PNG stacks: the same arrays as .npy, schema version 1.
    old = tmp_path / "old"
    shutil.copytree(subject, old)
    loaded = Subject.load(subject)
    np.save(old / "frames.npy", loaded.frames())
    np.save(old / "proxies.npy", loaded.proxies())
    (old / "frames.npz").unlink()
    (old / "proxies.npz").unlink()
    meta = strict_loads((old / "subject.json").read_text())
    (old / "subject.json").write_text(json.dumps({**meta, "schema_version": 1}))
    assert np.array_equal(Subject.load(old).frames(), loaded.frames())
