"""eval's systems made in one pass and tracked in worker processes, with MediaPipe Pose alone: the
frames and points each system gets on its own, in one process, with Holistic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from reenact.body.tracker import pose_model, track_body
from reenact.data import SubjectClip
from reenact.evaluation import held_out
from reenact.evaluation.output_tracking import track_systems
from reenact.modes import BODY
from reenact.reenactment import Reenactor, StreamOptions
from reenact.subject import Subject
from tests.conftest import run_reenact

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def body_checkpoint(body_subject, tmp_path_factory):
    checkpoint = tmp_path_factory.mktemp("systems") / "body.ckpt"
    result = run_reenact("train", body_subject, "--preset", "tiny", "--steps", 2, "--out", checkpoint)
    assert result.returncode == 0, result.stderr
    return checkpoint


def test_one_pass_makes_each_systems_frames_as_its_own_run_would(body_checkpoint, body_subject):
    reenactor, subject = Reenactor.load(body_checkpoint, torch.device("cpu")), Subject.load(body_subject)
    clip = SubjectClip(subject.frames(), reenactor.model_proxies(subject), subject.tracks["valid"], reenactor.resolution,
                       reenactor.window, reenactor.checkpoint.config["validation_fraction"])
    together = held_out.system_frames(held_out.generate_held_out(reenactor, clip, held_out.MODEL_RUNS, subject))
    alone_options = {"model": StreamOptions(enhance=False),
                     "model_unstabilised": StreamOptions(stabilise=False, enhance=False),
                     "model_no_temporal": StreamOptions(feedback=False, stabilise=False, enhance=False)}
    for name, options in alone_options.items():
        alone = held_out.generate_held_out(reenactor, clip, {name: options}, subject)
        np.testing.assert_array_equal(together[name], np.stack([output[name].frame for output in alone]), err_msg=name)
    assert len(together["model"]) == len(clip.frames) - clip.train_end
    assert (together["model"] != together["model_unstabilised"]).any()      # the stabiliser did something


def test_systems_tracked_in_worker_processes_match_one_process(body_subject):
    frames = np.asarray(Subject.load(body_subject).frames())          # 96 pixels, as a tiny model's output
    first, second = frames[:24], frames[40:70]
    parts = {"held out": {"a": first, "b": second}, "driven": {"a": second[::-1].copy()}}
    one = track_systems(parts, BODY, workers=1)
    many = track_systems(parts, BODY, workers=2)
    assert list(many) == list(parts) and all(list(many[part]) == list(parts[part]) for part in parts)
    for part, systems in parts.items():
        for name, images in systems.items():
            points, found = many[part][name]
            assert points.shape == (len(images), 33, 2) and found.mean() > 0.5
            np.testing.assert_array_equal(points, one[part][name][0])
            np.testing.assert_array_equal(found, one[part][name][1])


def test_pose_alone_finds_holistics_pose_keypoints(body_subject):
    frames = [cv2.resize(frame, (256, 256), interpolation=cv2.INTER_CUBIC) for frame in Subject.load(body_subject).frames()[:30]]
    holistic = track_body(frames, (256, 256))
    alone = track_body(frames, (256, 256), pose_model)
    confident = holistic[:, :33, 2] >= 0.5
    assert confident.mean() > 0.5
    np.testing.assert_allclose(alone[:, :33][confident], holistic[:, :33][confident], atol=0.5)
    assert (alone[:, 33:, 2] == 0).all()                                      # no hands or face from Pose
