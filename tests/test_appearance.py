"""What a viewer sees first: sharpness, a body's colours part by part, and a face's identity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reenact.evaluation.appearance import (BODY_PARTS, appearance_distance, high_frequency_energy, part_colours,
                                           reference_part_colours)
from reenact.io import iter_frames, probe_video
from tests.conftest import EXAMPLES, shared_clip


def example_frame(size: int = 128) -> np.ndarray:
    return next(iter_frames(probe_video(EXAMPLES / "taiji_target.mp4"), size=(size, size)))


def test_a_blurred_frame_scores_lower_sharpness_than_the_sharp_one():
    sharp = example_frame()
    everywhere = np.ones((1, 128, 128), bool)
    energies = [high_frequency_energy(cv2.GaussianBlur(sharp, (0, 0), sigma)[None], everywhere)[0]
                for sigma in (0.01, 1.0, 2.0)]
    assert energies[0] > 1.5 * energies[1] > 1.5 * energies[2] > 0


def test_sharpness_looks_only_inside_the_mask():
    frame = example_frame()
    left = np.zeros((1, 128, 128), bool)
    left[:, :, :64] = True
    blurred_right = frame.copy()
    blurred_right[:, 64:] = cv2.GaussianBlur(frame, (0, 0), 3)[:, 64:]
    assert high_frequency_energy(blurred_right[None], left)[0] == pytest.approx(high_frequency_energy(frame[None], left)[0], rel=0.05)


def person(shirt: tuple[int, int, int], trousers: tuple[int, int, int], shift: int = 0,
           thickness: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A 128 px stick person (thick limbs) in the given colours, and its pose points (33, 3)."""
    points = np.zeros((33, 3), np.float32)
    joints = {11: (50, 40), 12: (78, 40), 13: (40, 62), 14: (88, 62), 15: (34, 84), 16: (94, 84),
              23: (54, 80), 24: (74, 80), 25: (52, 102), 26: (76, 102), 27: (50, 124), 28: (78, 124)}
    for index, (x, y) in joints.items():
        points[index] = (x + shift, y, 1.0)
    image = np.full((128, 128, 3), 30, np.uint8)
    cv2.fillPoly(image, [points[[11, 12, 24, 23], :2].astype(np.int32)], shirt)
    for (a, b), colour in (((11, 13), shirt), ((13, 15), shirt), ((12, 14), shirt), ((14, 16), shirt),
                           ((23, 25), trousers), ((25, 27), trousers), ((24, 26), trousers), ((26, 28), trousers)):
        cv2.line(image, tuple(points[a, :2].astype(int)), tuple(points[b, :2].astype(int)), colour, thickness)
    return image, points


def test_the_body_appearance_compares_each_part_with_itself_in_any_pose():
    red_shirt, points = person((200, 40, 40), (40, 40, 160))
    reference = reference_part_colours(red_shirt[None], points[None])
    moved, moved_points = person((200, 40, 40), (40, 40, 160), shift=-20)
    green_shirt, green_points = person((40, 200, 40), (40, 40, 160), shift=-20)
    same = appearance_distance(part_colours(moved[None], moved_points[None]), reference)[0]
    other = appearance_distance(part_colours(green_shirt[None], green_points[None]), reference)[0]
    assert same < 1.0 and other > 30
    hidden = moved_points.copy()
    hidden[:, 2] = 0
    assert np.isnan(part_colours(moved[None], hidden[None])).all() and len(BODY_PARTS) == 9


def test_two_frames_of_one_person_are_closer_in_identity_than_frames_of_two_people():
    from reenact.evaluation.identity import SAME_PERSON, load_face_embedder

    embedder, unavailable = load_face_embedder()
    if embedder is None:
        pytest.skip(unavailable)

    def frames(name: str, picks: list[int]) -> np.ndarray:
        decoded = list(iter_frames(probe_video(shared_clip(f"face/{name}.mp4")), size=(160, 160), max_frames=max(picks) + 1))
        return embedder(np.stack([decoded[i] for i in picks]))

    d3, d10 = frames("liveportrait_d3", [0, 200]), frames("liveportrait_d10", [0, 300])
    distance = lambda a, b: float(np.linalg.norm(a - b))
    same = [distance(d3[0], d3[1]), distance(d10[0], d10[1])]
    different = [distance(d3[0], d10[0]), distance(d3[1], d10[1])]
    assert max(same) < SAME_PERSON < min(different), (same, different)


def textured_person() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stick person with a finely patterned shirt and plain limbs, its pose, and its region."""
    image, points = person((40, 40, 40), (40, 40, 50), thickness=15)
    shirt = np.zeros((128, 128), np.uint8)
    cv2.fillPoly(shirt, [points[[11, 12, 24, 23], :2].astype(np.int32)], 1)
    checks = (np.indices((128, 128)).sum(axis=0) % 2) * 200 - 100
    image[shirt > 0] = np.clip(image[shirt > 0].astype(int) + checks[shirt > 0, None], 0, 255).astype(np.uint8)
    return image, points, (image != 30).any(axis=-1)


def test_cross_sharpness_of_a_body_weighs_the_footage_part_by_part():
    from reenact.evaluation.appearance import SHARPNESS_PARTS, PartEnergyReference, part_labels

    image, points, region = textured_person()
    reference = PartEnergyReference.from_footage(image[None], region[None], points[None])
    labels = part_labels(region, points)
    forearm_parts = [list(SHARPNESS_PARTS).index(name) for name in ("left_forearm", "right_forearm")]
    forearms = np.isin(labels, forearm_parts)
    assert forearms.sum() > 200 and not np.isin(labels[region & ~forearms], forearm_parts).any()
    # The same pixels of the same parts are exactly as sharp as the footage, though the whole-region
    # reference (the patterned shirt) is several times their energy.
    expected = reference(forearms[None], points[None])[0]
    assert high_frequency_energy(image[None], forearms[None])[0] / expected == pytest.approx(1.0)
    assert expected < reference.whole / 3
    blurred = cv2.GaussianBlur(image, (0, 0), 1.5)
    assert high_frequency_energy(blurred[None], forearms[None])[0] / expected < 0.8
    # A region with no part in view falls back to the whole-region energy.
    hidden = points.copy()
    hidden[:, 2] = 0
    assert reference(region[None], hidden[None])[0] == pytest.approx(reference.whole)


def test_sharpness_leaves_out_the_crops_padding_and_its_edge():
    from reenact.evaluation.appearance import ViewerFigures, clear_of_padding, whole_region_energy

    coverage = np.ones((128, 128), np.float32)
    coverage[-3:] = 0            # three rows past the bottom of the video
    coverage[-4] = 0.25          # and one partly past it
    footage = clear_of_padding(coverage)
    # Every row whose 3×3 Laplacian reaches a pixel not wholly inside the video is left out.
    assert footage[:-5].all() and not footage[-5:].any()
    assert clear_of_padding(np.ones((8, 8), np.float32)) is None and clear_of_padding(None) is None
    # Feet on a bright floor at the padding's edge: black below it in the real frame, the floor going
    # on in the output. That edge is the strongest detail in the region, so without the footage mask
    # the output scores far below 1; with it, exactly 1, the same person's pixels.
    real = example_frame().copy()
    real[112:] = 230
    output = real.copy()
    real[-4:] = 0
    region = np.zeros((1, 128, 128), bool)
    region[:, 96:, 40:90] = True
    plain = ViewerFigures(whole_region_energy(real[None], region), "identity_distance", None)
    clear = ViewerFigures(whole_region_energy(real[None], region & footage), "identity_distance", None, footage=footage)
    unmasked = plain(output[None], region, np.zeros((1, 1, 3)), plain.energy(real[None], region))["sharpness"][0]
    masked = clear(output[None], region, np.zeros((1, 1, 3)), clear.energy(real[None], region))["sharpness"][0]
    assert masked == pytest.approx(1.0) and unmasked < 0.8
    assert clear(output[None], region, np.zeros((1, 1, 3)))["sharpness"][0] == pytest.approx(1.0)
