"""MediaPipe over chunks of a clip in worker processes gives the tracks of one pass, within the
tolerance docs/overview.md states."""

from __future__ import annotations

import numpy as np
import pytest

from reenact.body.stage import track_body_chunk
from reenact.chunked_tracking import Chunk, plan_chunks, track_in_chunks, worker_count
from reenact.face.tracking import track_face_chunk
from reenact.io import iter_frames, probe_video
from tests.conftest import shared_clip


def test_chunks_cover_the_clip_once_with_warmups_inside_it():
    chunks = plan_chunks(301, 3, warmup=30)
    assert chunks == [Chunk(0, 100, 0), Chunk(100, 101, 30), Chunk(201, None, 30)]
    assert plan_chunks(10, 2, warmup=30)[1] == Chunk(5, None, 5)   # a warm-up never reaches before frame 0


def test_worker_count_follows_the_cores_and_the_clip(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert worker_count(0, 2000) == 8 and worker_count(0, 500) == 2 and worker_count(0, 300) == 1
    assert worker_count(0, None) == 1 and worker_count(3, 50) == 3


@pytest.mark.e2e
def test_decoding_from_a_frame_gives_the_same_frames_as_from_the_start():
    video = probe_video(shared_clip("body/animatex_dance_3.mp4"))
    size = video.fit_within(160)
    from_start = list(iter_frames(video, size=size, max_frames=60))
    assert np.array_equal(np.stack(from_start[45:60]), np.stack(list(iter_frames(video, size=size, first_frame=45, max_frames=15))))


@pytest.mark.e2e
def test_two_workers_track_a_body_clip_as_one_does():
    video = probe_video(shared_clip("body/animatex_dance_3.mp4"))
    size = video.fit_within(640)
    one = track_in_chunks(track_body_chunk, video, size, {"scan": None}, 1, "one")["keypoints"]
    two = track_in_chunks(track_body_chunk, video, size, {"scan": None}, 2, "two")["keypoints"]
    assert one.shape == two.shape and len(one) == 153
    # The first chunk runs exactly as one pass does; the second starts warmed up.
    half = len(one) // 2
    assert np.array_equal(one[:half], two[:half])
    found_one, found_two = one[..., 2] >= 0.3, two[..., 2] >= 0.3
    assert (found_one == found_two).mean() >= 0.99
    both = found_one & found_two
    distance = np.linalg.norm(one[..., :2] - two[..., :2], axis=-1)[both] / video.height
    assert np.median(distance) <= 0.002 and np.percentile(distance, 95) <= 0.01


@pytest.mark.e2e
def test_two_workers_track_a_face_clip_as_one_does():
    video = probe_video(shared_clip("face/tpsmm_driving.mp4"))
    size = video.fit_within(640)
    one = track_in_chunks(track_face_chunk, video, size, {}, 1, "one")
    two = track_in_chunks(track_face_chunk, video, size, {}, 2, "two")
    assert np.array_equal(one["found"], two["found"]) and one["found"].mean() > 0.95
    distance = np.linalg.norm(one["landmarks"][..., :2] - two["landmarks"][..., :2], axis=-1)[one["found"]] / video.height
    assert np.median(distance) <= 0.002 and np.percentile(distance, 95) <= 0.01
    assert two["counts"] == one["counts"]
