"""Video I/O against real ffmpeg: probing (ffprobe and the ffmpeg-only fallback), decoding, encoding."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reenact.errors import ReenactError
from reenact.io import VideoWriter, iter_frames, probe_video
from reenact.io.ffmpeg_bin import ffmpeg_has_option, ffprobe_exe
from tests.conftest import make_clip, shared_clip

PROBERS = {"ffprobe": True, "ffmpeg": False}


def count_frames(path: Path) -> int:
    return sum(1 for _ in iter_frames(probe_video(path)))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    pattern = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-t", "2"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050", "-t", "2"]
    plain = make_clip(folder / "plain.mp4", *pattern, "-pix_fmt", "yuv420p")
    return {
        "plain": plain,
        "with_audio": make_clip(folder / "with audio ü.mp4", *pattern, *tone, "-pix_fmt", "yuv420p", "-shortest"),
        "rotated": make_clip(folder / "rotated.mp4", "-display_rotation", "90", "-i", str(plain), "-c", "copy")
        if ffmpeg_has_option("display_rotation") else make_clip(folder / "rotated.mp4", "-i", str(plain), "-c", "copy", "-metadata:s:v", "rotate=270"),
        "variable_rate": make_clip(folder / "vfr.mkv", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-t", "2",
                                   "-vf", "setpts='if(lt(N,10),PTS,PTS+(N-10)/TB/20)'", "-fps_mode", "vfr"),
        "audio_only": make_clip(folder / "audio.m4a", *tone),
        "image": make_clip(folder / "image.mp4", "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", "-f", "image2", "-c:v", "png"),
    }


def test_ffmpeg_options_are_looked_up_in_the_binary_in_use():
    assert ffmpeg_has_option("re") and ffmpeg_has_option("r")   # -r is listed as -r[:<stream_spec>]
    assert not ffmpeg_has_option("rep") and not ffmpeg_has_option("no_such_option")   # a prefix of -report is not an option


@pytest.mark.parametrize("prober", PROBERS)
def test_probe_synthetic_clip(clips, prober):
    if prober == "ffprobe" and not ffprobe_exe():
        pytest.skip("no ffprobe here")
    info = probe_video(clips["with_audio"], use_ffprobe=PROBERS[prober])
    assert (info.width, info.height, info.fps_fraction, info.frame_count, info.has_audio) == (64, 48, "10/1", 20, True)
    assert probe_video(clips["plain"], use_ffprobe=PROBERS[prober]).has_audio is False


@pytest.mark.parametrize("prober", PROBERS)
def test_rotation_metadata_swaps_the_displayed_size_and_decoding_follows(clips, prober):
    if prober == "ffprobe" and not ffprobe_exe():
        pytest.skip("no ffprobe here")
    info = probe_video(clips["rotated"], use_ffprobe=PROBERS[prober])
    assert info.rotation in (90, 270) and (info.width, info.height) == (48, 64)
    assert next(iter_frames(info)).shape == (64, 48, 3)


def test_variable_frame_rate_decodes_to_constant_rate(clips):
    info = probe_video(clips["variable_rate"])
    frames = list(iter_frames(info))
    assert abs(len(frames) - round(info.duration * info.fps)) <= 1


@pytest.mark.parametrize("name, fraction, frames, size, audio", [
    ("body/hybrik_taiji.mp4", "24000/1001", 412, (1280, 720), True),
    ("face/liveportrait_d13.mp4", "30/1", 352, (720, 1280), False),
    ("face/tpsmm_driving.mp4", "25/1", 169, (410, 412), True),
    ("body/mmaction2_ntu_S001C001P001R001A001_rgb.avi", "30/1", 103, (1920, 1080), False),
    ("face/mooreanimateanyone_talkinghead_2.mp4", "30/1", 352, (300, 350), True),
])
def test_probe_and_decode_real_clips(name, fraction, frames, size, audio):
    path = shared_clip(name)
    for use_ffprobe in (True, False):
        info = probe_video(path, use_ffprobe=use_ffprobe)
        assert (info.width, info.height, info.fps_fraction, info.has_audio) == (*size, fraction, audio)
    # The decoded count is what matters; the late-starting stream is not padded to the container's 20 s.
    assert abs(sum(1 for _ in iter_frames(probe_video(path), size=(64, 48))) - frames) <= 1


def test_crop_outside_the_frame_is_black_and_scaled(clips):
    info = probe_video(clips["plain"])
    frame = next(iter_frames(info, crop=(-32, 0, 64, 48)))
    assert frame.shape == (48, 64, 3)
    assert frame[:, :30].max() <= 16 and frame[:, 34:].mean() > 30
    small = next(iter_frames(info, crop=(-32, 0, 64, 48), size=(32, 24), max_frames=1))
    assert small.shape == (24, 32, 3)


def test_max_frames_and_early_close(clips):
    info = probe_video(clips["plain"])
    assert len(list(iter_frames(info, max_frames=5))) == 5
    frames = iter_frames(info)
    next(frames)
    frames.close()  # kills ffmpeg without waiting for the rest


@pytest.mark.parametrize("fps", ["25/1", "24000/1001"])
def test_encode_round_trip_keeps_count_rate_and_audio(clips, tmp_path, fps):
    out = tmp_path / "out.mp4"
    frames = list(iter_frames(probe_video(clips["plain"])))
    with VideoWriter(out, fps, (63, 47), audio_from=clips["with_audio"]) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[:47, :63]))
    info = probe_video(out)
    assert info.fps_fraction == fps and (info.width, info.height) == (64, 48) and info.has_audio
    assert count_frames(out) == len(frames)
    audio_seconds = float(subprocess.run([_ffprobe_or_skip(), "-v", "error", "-select_streams", "a", "-show_entries",
                                          "stream=duration", "-of", "csv=p=0", str(out)],
                                         capture_output=True, text=True).stdout.strip())
    assert abs(audio_seconds - len(frames) / info.fps) < 0.1
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]


def _ffprobe_or_skip() -> str:
    return ffprobe_exe() or pytest.skip("no ffprobe to measure the audio stream")


def test_exception_or_zero_frames_leave_no_file(clips, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(out, "10/1", (64, 48)) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            raise KeyboardInterrupt
    with pytest.raises(ReenactError, match="no frames"):
        with VideoWriter(out, "10/1", (64, 48)):
            pass
    assert os.listdir(tmp_path) == []


def test_bad_inputs_raise_one_clear_error(clips, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(20_000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clips["with_audio"].read_bytes()[:2_000])
    cases = {tmp_path / "missing.mp4": "no such file", tmp_path: "is a directory", empty: "empty",
             noise: "not a readable video", clips["audio_only"]: "no video stream", clips["image"]: "still image"}
    for use_ffprobe in (True, False):
        for path, message in cases.items():
            with pytest.raises(ReenactError, match=message) as error:
                probe_video(path, use_ffprobe=use_ffprobe)
            assert path.name in str(error.value)
    with pytest.raises(ReenactError, match="truncated.mp4"):
        list(iter_frames(probe_video(truncated)))
