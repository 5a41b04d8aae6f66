"""The skeleton proxy: colours where limbs are, nothing where they aren't, width scaling, determinism."""

import numpy as np

from reenact.body import layout
from reenact.body.skeleton import SkeletonRenderer
from tests.test_body_math import standing_person

P = layout.POSE


def person_in(resolution: int) -> np.ndarray:
    keypoints = standing_person(ground_y=0.9 * resolution, height=0.75 * resolution, center_x=resolution / 2)
    return keypoints


def test_limb_is_drawn_in_its_colour_between_its_joints():
    renderer = SkeletonRenderer(256)
    keypoints = person_in(256)
    image = renderer.render(keypoints)
    limb = layout.BODY_LIMBS.index((P["left_knee"], P["left_ankle"]))
    mid = (keypoints[P["left_knee"], :2] + keypoints[P["left_ankle"], :2]) / 2
    pixel = image[int(round(mid[1])), int(round(mid[0]))]
    np.testing.assert_array_equal(pixel, layout.BODY_LIMB_COLORS[limb])
    assert image[5, 5].sum() == 0


def test_low_confidence_points_and_invalid_frames_draw_nothing():
    renderer = SkeletonRenderer(128)
    keypoints = person_in(128)
    keypoints[:, 2] = 0.1
    assert renderer.render(keypoints).max() == 0


def test_hands_and_face_are_drawn_when_detected():
    renderer = SkeletonRenderer(128)
    keypoints = np.zeros((layout.NUM_KEYPOINTS, 3), np.float32)
    keypoints[layout.LEFT_HAND_START:layout.LEFT_HAND_START + 21] = (40, 40, 1)
    keypoints[layout.LEFT_HAND_START + 4] = (60, 40, 1)   # thumb tip away from the wrist
    image = renderer.render(keypoints)
    assert image[40, 50].max() > 0
    keypoints[:] = 0
    keypoints[layout.FACE_START:, :2] = np.random.default_rng(0).uniform(20, 100, (layout.NUM_KEYPOINTS - layout.FACE_START, 2))
    keypoints[layout.FACE_START:, 2] = 1
    assert (renderer.render(keypoints).sum(axis=2) > 0).sum() > 100


def test_line_width_scales_with_resolution():
    def thickness(resolution: int) -> int:
        keypoints = person_in(resolution)
        image = SkeletonRenderer(resolution).render(keypoints)
        row = int(round((keypoints[P["left_knee"], 1] + keypoints[P["left_ankle"], 1]) / 2))
        x = int(round(keypoints[P["left_ankle"], 0]))
        half = resolution // 16
        return int((image[row, x - half:x + half].max(axis=1) > 128).sum())

    assert thickness(512) >= 2 * thickness(128) - 1 and thickness(128) >= 1


def test_rendering_is_deterministic():
    renderer = SkeletonRenderer(96)
    keypoints = person_in(96)
    keypoints[:, :2] += np.random.default_rng(3).normal(0, 1.3, (layout.NUM_KEYPOINTS, 2))
    assert renderer.render(keypoints).tobytes() == SkeletonRenderer(96).render(keypoints.copy()).tobytes()


def test_the_skeletons_rendered_flow_is_a_moved_persons_move_on_the_lines_and_around_them():
    renderer = SkeletonRenderer(128)
    before = person_in(128)
    now = before.copy()
    now[:, :2] += [3.0, -2.0]
    flow = renderer.backward_flow(now, before)
    drawn = renderer.render(now).max(axis=-1) > 0
    np.testing.assert_allclose(flow[drawn], np.broadcast_to([-3.0, 2.0], flow[drawn].shape), atol=1e-4)
    beside_the_shin = flow[int(now[P["left_knee"], 1] + 10), int(now[P["left_knee"], 0]) + 5]
    np.testing.assert_allclose(beside_the_shin, [-3.0, 2.0], atol=0.05)                  # spread to the leg around it
    assert (flow[:4] == 0).all() and (flow[:, :4] == 0).all()                              # far away: still


def test_a_limbs_rendered_flow_follows_the_limb_and_agrees_with_dis():
    from reenact.stabilise import optical_flow, warp

    renderer = SkeletonRenderer(128)
    before = person_in(128)
    now = before.copy()
    knee, ankle = P["left_knee"], P["left_ankle"]
    now[ankle, :2] += [6.0, -3.0]                             # the shin swings from the knee
    flow = renderer.backward_flow(now, before)
    shin = now[knee, :2] + 0.8 * (now[ankle, :2] - now[knee, :2])
    np.testing.assert_allclose(flow[int(round(shin[1])), int(round(shin[0]))], [-4.8, 2.4], atol=0.3)
    previous, current = renderer.render(before), renderer.render(now)
    estimated = optical_flow(previous, current)
    lines = current.max(axis=-1) > 0
    moving = lines & (np.linalg.norm(flow, axis=-1) > 1)
    assert np.median(np.linalg.norm(flow[moving] - estimated[moving], axis=-1)) < 2.0
    residual = lambda field: np.abs(warp(previous, field) - current.astype(np.float32))[moving].mean()
    assert residual(flow) < residual(estimated)
