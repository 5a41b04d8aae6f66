"""Bad input ends with one clear line, a non-zero exit, no traceback and no output."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from tests.conftest import assert_clean_failure, make_clip, run_reenact

pytestmark = pytest.mark.e2e      # every test runs the real command


def test_missing_video(tmp_path):
    result = run_reenact("track", tmp_path / "nope.mp4", "--out", tmp_path / "out")
    assert_clean_failure(result, "nope.mp4", "no such file")
    assert not (tmp_path / "out").exists()


def test_random_bytes_named_mp4(tmp_path):
    video = tmp_path / "noise.mp4"
    video.write_bytes(np.random.default_rng(0).bytes(50_000))
    result = run_reenact("track", video, "--out", tmp_path / "out")
    assert_clean_failure(result, "noise.mp4")
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path) == ["noise.mp4"]


def test_video_without_a_person_says_how_often_one_was_found(tmp_path):
    video = make_clip(tmp_path / "pattern.mp4", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "2")
    result = run_reenact("track", video, "--mode", "body", "--out", tmp_path / "out")
    assert_clean_failure(result, "pattern.mp4", "no person found", "0%")
    assert not (tmp_path / "out").exists()


def test_too_few_frames(tmp_path, example_source):
    video = make_clip(tmp_path / "short.mp4", "-i", str(example_source), "-frames:v", "3")
    result = run_reenact("track", video, "--mode", "body", "--out", tmp_path / "out")
    assert_clean_failure(result, "short.mp4", "too few frames")


def test_missing_checkpoint(tmp_path, example_source):
    result = run_reenact("transfer", example_source, tmp_path / "missing.ckpt", "--out", tmp_path / "o.mp4")
    assert_clean_failure(result, "missing.ckpt", "no such checkpoint")
    assert not (tmp_path / "o.mp4").exists()


def test_corrupt_checkpoint(tmp_path, example_source):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    result = run_reenact("transfer", example_source, broken, "--out", tmp_path / "o.mp4")
    assert_clean_failure(result, "broken.ckpt", "damaged or cut short")
    assert not (tmp_path / "o.mp4").exists()
    text = tmp_path / "notes.ckpt"
    text.write_text("step 300, looks fine\n")
    assert_clean_failure(run_reenact("transfer", example_source, text), "notes.ckpt", "a text file (it starts 'step 300")


class RunsACommand:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_carrying_code_is_refused_without_running_it(tmp_path, example_source):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"format": "reenact.checkpoint", "payload": RunsACommand(str(marker))}, evil, pickle_protocol=2)
    result = run_reenact("transfer", example_source, evil, "--out", tmp_path / "o.mp4")
    assert_clean_failure(result, "evil.ckpt", "holds Python objects other than tensors and plain values")
    assert not marker.exists() and not (tmp_path / "o.mp4").exists()
    plain_pickle = tmp_path / "plain.ckpt"
    plain_pickle.write_bytes(pickle.dumps(RunsACommand(str(marker))))
    assert_clean_failure(run_reenact("transfer", example_source, plain_pickle), "plain.ckpt", "some other kind of file")
    assert not marker.exists()


def test_checkpoint_of_an_unknown_mode_or_incomplete(tmp_path, example_source):
    hands = tmp_path / "hands.ckpt"
    torch.save({"format": "reenact.checkpoint", "format_version": 1, "mode": "hands"}, hands)
    assert_clean_failure(run_reenact("transfer", example_source, hands, "--out", tmp_path / "o.mp4"), "hands.ckpt", "hands")
    partial = tmp_path / "partial.ckpt"
    torch.save({"format": "reenact.checkpoint", "format_version": 1, "mode": "body", "step": 3}, partial)
    assert_clean_failure(run_reenact("transfer", example_source, partial, "--out", tmp_path / "o.mp4"), "partial.ckpt", "incomplete")
    assert not (tmp_path / "o.mp4").exists()


def test_train_on_a_folder_that_is_not_a_subject(tmp_path):
    result = run_reenact("train", tmp_path, "--preset", "tiny", "--out", tmp_path / "x.ckpt")
    assert_clean_failure(result, "not a subject folder")
    assert not (tmp_path / "x.ckpt").exists()


def test_unknown_config_key(tmp_path, example_source):
    config = tmp_path / "settings.toml"
    config.write_text("resolutoin = 64\n")
    assert_clean_failure(run_reenact("track", example_source, "--config", config), "settings.toml", "resolutoin")


def test_debug_shows_the_traceback(tmp_path):
    result = run_reenact("track", tmp_path / "nope.mp4", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr
