"""Known-answer tests of gap filling, smoothing, the subject crop (and how much of it the video covers) and pose normalisation."""

import numpy as np
import pytest

from reenact.body import layout
from reenact.body.crop import Crop, footage_coverage, subject_crop
from reenact.body.normalize import GroundStats, ground_stats, normalize_poses, scale_and_ground
from reenact.body.regions import PERSON_GROWTH, person_regions
from reenact.body.people import PeopleScan, drop_flickers, largest_person_only, overlap_fraction, person_box
from reenact.body.smoothing import fill_short_gaps, one_euro, smooth_one_euro

P = layout.POSE


def standing_person(ground_y: float, height: float, center_x: float = 100.0) -> np.ndarray:
    """(K, 3) keypoints of an upright stick figure: eyes at ground_y - height, ankles at ground_y."""
    keypoints = np.zeros((layout.NUM_KEYPOINTS, 3), np.float32)
    rows = {"nose": 0.02, "left_eye": 0.0, "right_eye": 0.0, "left_ear": 0.01, "right_ear": 0.01,
            "left_shoulder": 0.15, "right_shoulder": 0.15, "left_elbow": 0.33, "right_elbow": 0.33,
            "left_wrist": 0.48, "right_wrist": 0.48, "left_hip": 0.5, "right_hip": 0.5,
            "left_knee": 0.75, "right_knee": 0.75, "left_ankle": 1.0, "right_ankle": 1.0}
    for name, fraction in rows.items():
        side = -1 if name.startswith("right") else (1 if name.startswith("left") else 0)
        keypoints[P[name]] = (center_x + side * 0.1 * height, ground_y - height + fraction * height, 1.0)
    return keypoints


def test_short_gap_is_interpolated_linearly_and_long_gap_stays_missing():
    tracks = np.zeros((12, 1, 3), np.float32)
    tracks[:, 0, 0] = np.arange(12) * 2.0
    tracks[:, 0, 2] = 1.0
    tracks[3:5, 0, 2] = 0.0           # 2-frame gap
    tracks[7:11, 0, 2] = 0.0          # 4-frame gap
    tracks[3:5, 0, 0] = -99           # garbage where missing
    filled = fill_short_gaps(tracks, min_confidence=0.5, max_gap=3)
    np.testing.assert_allclose(filled[3:5, 0, 0], [6.0, 8.0])
    assert (filled[3:5, 0, 2] == 1.0).all()
    assert (filled[7:11, 0, 2] == 0.0).all()


def test_gap_at_clip_edges_is_not_extrapolated():
    tracks = np.ones((6, 1, 3), np.float32)
    tracks[:2, 0, 2] = 0.0
    filled = fill_short_gaps(tracks, 0.5, max_gap=5)
    assert (filled[:2, 0, 2] == 0.0).all()


def test_one_euro_keeps_constant_signal_and_reduces_jitter():
    rng = np.random.default_rng(0)
    present = np.ones((200, 1), bool)
    constant = np.full((200, 1, 2), 3.0)
    np.testing.assert_allclose(one_euro(constant, present, 30.0, 1.0, 0.5, 1.0), constant)
    noisy = constant + rng.normal(0, 0.01, constant.shape)
    smoothed = one_euro(noisy, present, 30.0, 1.0, 0.5, 1.0)
    assert smoothed[50:].std() < 0.5 * noisy[50:].std()


def test_one_euro_restarts_after_gaps_and_leaves_missing_samples():
    signal = np.zeros((10, 1, 2))
    signal[5:] = 50.0
    present = np.ones((10, 1), bool)
    present[4] = False
    smoothed = one_euro(signal, present, 30.0, 1.0, 0.0, 1.0)
    np.testing.assert_allclose(smoothed[5], 50.0)   # restarted at the new value, no lag from before
    np.testing.assert_allclose(smoothed[4], 0.0)    # missing sample untouched


def test_one_euro_follows_fast_motion_with_high_beta():
    t = np.arange(100)
    ramp = (t * 0.02)[:, None, None].repeat(2, axis=2)
    present = np.ones((100, 1), bool)
    slow = one_euro(ramp, present, 30.0, 0.5, 0.0, 1.0)
    fast = one_euro(ramp, present, 30.0, 0.5, 50.0, 1.0)
    assert abs(fast[-1, 0, 0] - ramp[-1, 0, 0]) < abs(slow[-1, 0, 0] - ramp[-1, 0, 0])


def test_smoothing_is_scale_invariant():
    rng = np.random.default_rng(1)
    tracks = np.concatenate([rng.normal(0.5, 0.01, (50, 3, 2)), np.ones((50, 3, 1))], axis=2).astype(np.float32)
    small = smooth_one_euro(tracks, 0.5, 30.0, 1.0, 1.0, 2.0, 1.0)
    big_tracks = tracks.copy()
    big_tracks[..., :2] *= 1000
    big = smooth_one_euro(big_tracks, 0.5, 30.0, 1000.0, 1.0, 2.0, 1.0)
    np.testing.assert_allclose(big[..., :2] / 1000, small[..., :2], rtol=1e-4)


def test_the_footage_covers_the_crop_only_inside_the_video():
    # Each of the 10 pixels spans 2 source pixels from x = -5: the first two lie wholly left of
    # the video, the third half; the crop's bottom 4 source rows (y 20 to 24) lie below it.
    coverage = footage_coverage(Crop(-5, 4, 20), (40, 20), 10)
    assert coverage[0] == pytest.approx([0, 0, 0.5, 1, 1, 1, 1, 1, 1, 1])
    assert coverage[:, 5] == pytest.approx([1] * 8 + [0, 0])
    assert footage_coverage(Crop(0, 0, 20), (20, 20), 10).min() == 1


def test_subject_crop_holds_every_frame_and_is_square():
    frames = [standing_person(300 + 5 * i, 200, center_x=150 + 3 * i) for i in range(20)]
    keypoints = np.stack(frames)
    crop = subject_crop(keypoints, np.ones(20, bool), (640, 480), 0.3, margin=0.1)
    body = keypoints[:, : layout.FACE_START][keypoints[:, : layout.FACE_START, 2] > 0]
    assert crop.x <= body[:, 0].min() and crop.x + crop.size >= body[:, 0].max()
    assert crop.y <= body[:, 1].min() - 0.15 * 200    # head room above the eyes
    assert crop.y + crop.size >= body[:, 1].max()
    mapped = crop.to_crop_pixels(body, 128)
    assert mapped[:, :2].min() >= 0 and mapped[:, :2].max() <= 128


def test_person_region_is_the_skeleton_grown_by_a_limb_width_and_no_more():
    resolution = 100
    proxies = np.zeros((2, resolution, resolution, 3), np.uint8)
    proxies[0, 20:80, 50] = (255, 0, 0)                    # a limb in any colour counts
    proxies[1, 50, 10:30] = (0, 0, 90)
    regions = person_regions(proxies)
    grow = round(PERSON_GROWTH * resolution)
    assert regions.shape == (2, resolution, resolution) and regions.dtype == np.uint8
    assert regions[0, 50, 50 - grow] == 255 and regions[0, 50, 50 + grow] == 255
    assert regions[0, 50, 50 - grow - 2] == 0 and regions[0, 50, 50 + grow + 2] == 0
    assert regions[0, 20 - grow - 2, 50] == 0 and regions[0, 79 + grow, 50] == 255
    assert regions[1, 50 - grow, 20] == 255 and regions[1, 50 + grow + 2, 20] == 0 and regions[1, :, 50].max() == 0


def clip_between(far: float, near: float, far_height: float, near_height: float, frames: int = 40) -> np.ndarray:
    """A person walking from the far line to the near line, growing linearly."""
    ground = np.linspace(far, near, frames)
    height = np.linspace(far_height, near_height, frames)
    return np.stack([standing_person(g, h) for g, h in zip(ground, height)])


def test_far_line_maps_to_target_far_line_at_target_height():
    source = clip_between(far=300, near=500, far_height=100, near_height=200)
    target = clip_between(far=250, near=400, far_height=150, near_height=240)
    valid = np.ones(len(source), bool)
    source_stats = ground_stats(source, valid, 0.3)
    target_stats = ground_stats(target, valid, 0.3)
    far_source = GroundStats.from_dict(source_stats["ankles"])
    far_target = GroundStats.from_dict(target_stats["ankles"])
    on_far_line = standing_person(far_source.far_y, far_source.far_height)[None]
    mapped = normalize_poses(on_far_line, source_stats, target_stats, 0.3)[0]
    ankle_y = mapped[[P["left_ankle"], P["right_ankle"]], 1].max()
    eye_y = mapped[[P["left_eye"], P["right_eye"]], 1].min()
    assert ankle_y == pytest.approx(far_target.far_y, abs=1e-3)
    assert ankle_y - eye_y == pytest.approx(far_target.far_height, rel=1e-4)


def test_scale_and_ground_interpolate_between_lines():
    source = GroundStats(far_y=100, near_y=300, far_height=50, near_height=100, center_x=0)
    target = GroundStats(far_y=200, near_y=400, far_height=100, near_height=300, center_x=0)
    scale, ground = scale_and_ground(np.array([100.0, 200.0, 300.0]), source, target)
    np.testing.assert_allclose(ground, [200, 300, 400])
    np.testing.assert_allclose(scale, [2.0, 2.5, 3.0])


def test_static_source_maps_to_middle_of_target():
    source = GroundStats(far_y=300, near_y=300, far_height=100, near_height=100, center_x=0)
    target = GroundStats(far_y=200, near_y=400, far_height=100, near_height=300, center_x=0)
    scale, ground = scale_and_ground(np.array([300.0, 310.0]), source, target)
    np.testing.assert_allclose(scale, [2.0, 2.0])
    np.testing.assert_allclose(ground, [300.0, 320.0])


def test_hips_replace_ankles_when_a_clip_hides_its_feet():
    source = clip_between(300, 500, 100, 200)
    target = clip_between(250, 400, 150, 240)
    target[:, [P["left_ankle"], P["right_ankle"]], 2] = 0.0
    valid = np.ones(len(source), bool)
    target_stats = ground_stats(target, valid, 0.3)
    assert target_stats["ankles"] is None and target_stats["hips"] is not None
    source_stats = ground_stats(source, valid, 0.3)
    source_hips = GroundStats.from_dict(source_stats["hips"])
    target_hips = GroundStats.from_dict(target_stats["hips"])
    # standing_person puts the hips half-way down: this person's hips sit on the source's far hip line.
    person = standing_person(source_hips.far_y + source_hips.far_height, 2 * source_hips.far_height)[None]
    mapped = normalize_poses(person, source_stats, target_stats, 0.3)[0]
    assert mapped[[P["left_hip"], P["right_hip"]], 1].max() == pytest.approx(target_hips.far_y, abs=1e-3)


def test_person_box_spans_the_visible_joints_with_a_margin():
    points = np.array([[100, 50, 0.9], [120, 250, 0.9], [80, 150, 0.9], [140, 200, 0.8], [600, 10, 0.1]], float)
    box = person_box(points, (640, 480))
    np.testing.assert_allclose(box, [80 - 30, 50 - 30, 140 + 30, 250 + 30])   # 15 % of the 200 px height; the faint point ignored
    assert person_box(points[:3], (640, 480)) is None                         # too few joints to call it a person
    assert overlap_fraction(np.array([0, 0, 10, 10]), np.array([5, 0, 20, 10])) == pytest.approx(0.5)


def test_everyone_but_the_tallest_is_blanked_between_scans():
    tall, short = np.array([10, 0, 30, 40], np.float32), np.array([25, 20, 40, 40], np.float32)
    scan = PeopleScan(np.array([0, 10]), [np.stack([tall, short]), np.zeros((0, 4), np.float32)])
    assert scan.crowded == 1
    frames = [np.full((40, 48, 3), 200, np.uint8) for _ in range(12)]
    masked = list(largest_person_only(frames, scan))
    assert (masked[5][20:40, 30:40] == 0).all()           # the short person's part outside the tall one's box
    assert (masked[5][20:40, 25:30] == 200).all()         # where their boxes overlap, the tall person stays
    assert (masked[5][:, :10] == 200).all()
    assert (masked[11] == 200).all()                      # past the last crowded scan nothing is hidden


def test_a_second_person_must_show_up_in_two_scans_in_a_row():
    tall, short = [10, 0, 30, 40], [40, 20, 50, 40]
    alone, together = np.array([tall], np.float32), np.array([tall, short], np.float32)
    kept = drop_flickers([together, alone, together, together, alone])
    assert [len(boxes) for boxes in kept] == [1, 1, 2, 2, 1]
