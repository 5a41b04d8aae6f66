"""The body conditioning proxy: an OpenPose-like coloured skeleton on black.

Limbs are antialiased lines drawn with sub-pixel precision; widths scale with the image size.
Points below the confidence threshold are not drawn, so an invalid frame renders black.
Drawing is deterministic: the same keypoints give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from reenact.body import layout
from reenact.stabilise import spread_flow

SUBPIXEL_BITS = 4
SUBPIXEL_SCALE = 1 << SUBPIXEL_BITS


@dataclass(frozen=True)
class SkeletonStyle:
    """Line widths in pixels at a 256-pixel image; they scale linearly with resolution."""

    body_width: float = 4.0
    joint_radius: float = 3.0
    hand_width: float = 2.0
    face_width: float = 1.0
    min_confidence: float = 0.3

    def scaled(self, value: float, resolution: int) -> int:
        return max(1, int(round(value * resolution / 256)))


class SkeletonRenderer:
    """Draws (K, 3) keypoints, in the image's pixels, as the skeleton of a person in a resolution² crop."""

    def __init__(self, resolution: int, style: SkeletonStyle = SkeletonStyle()):
        self.resolution = resolution
        self.style = style
        self.body_width = style.scaled(style.body_width, resolution)
        self.joint_radius = style.scaled(style.joint_radius, resolution)
        self.hand_width = style.scaled(style.hand_width, resolution)
        self.face_width = style.scaled(style.face_width, resolution)

    @cached_property
    def _face_chains(self) -> dict[str, tuple[np.ndarray, ...]]:
        return layout.face_chain_keypoints()

    def render(self, keypoints: np.ndarray) -> np.ndarray:
        image = np.zeros((self.resolution, self.resolution, 3), np.uint8)
        self.draw(image, keypoints)
        return image

    def draw(self, image: np.ndarray, keypoints: np.ndarray) -> None:
        """Draw onto ``image`` in place; widths follow ``resolution``, not the image size."""
        points = layout.with_neck(keypoints)
        fixed = np.round(points[:, :2] * SUBPIXEL_SCALE).clip(-(1 << 20), 1 << 20).astype(np.int32)
        confident = points[:, 2] >= self.style.min_confidence
        self._draw_face(image, fixed, confident)
        self._draw_hands(image, fixed, confident)
        self._draw_body(image, fixed, confident)

    def _draw_body(self, image: np.ndarray, fixed: np.ndarray, confident: np.ndarray) -> None:
        for (a, b), color in zip(layout.BODY_LIMBS, layout.BODY_LIMB_COLORS):
            if confident[a] and confident[b]:
                cv2.line(image, fixed[a], fixed[b], color, self.body_width, cv2.LINE_AA, SUBPIXEL_BITS)
        for joint, color in zip(layout.BODY_JOINTS, layout.BODY_JOINT_COLORS):
            if confident[joint]:
                cv2.circle(image, fixed[joint], self.joint_radius * SUBPIXEL_SCALE, color, -1, cv2.LINE_AA, SUBPIXEL_BITS)

    def _draw_hands(self, image: np.ndarray, fixed: np.ndarray, confident: np.ndarray) -> None:
        for side, start in (("left", layout.LEFT_HAND_START), ("right", layout.RIGHT_HAND_START)):
            if not confident[start]:
                continue
            for finger, color in zip(layout.HAND_FINGERS, layout.HAND_FINGER_COLORS[side]):
                chain = fixed[start + np.asarray(finger)]
                cv2.polylines(image, [chain], False, color, self.hand_width, cv2.LINE_AA, SUBPIXEL_BITS)

    def _draw_face(self, image: np.ndarray, fixed: np.ndarray, confident: np.ndarray) -> None:
        if not confident[layout.FACE_START]:
            return
        for name, chains in self._face_chains.items():
            cv2.polylines(image, [fixed[c] for c in chains], False, layout.FACE_CHAIN_COLORS[name],
                          self.face_width, cv2.LINE_AA, SUBPIXEL_BITS)

    def backward_flow(self, keypoints: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """(R, R, 2) float32: for each pixel of the skeleton drawn from ``keypoints``, where that point
        of its limb was in the skeleton of ``previous`` minus where it is, each limb's motion
        interpolated along it; spread from the lines to the person around them (a sixteenth of the
        image), since the lines are thin and the person is not. The stabiliser's flow, rendered
        from the keypoints rather than estimated from the images."""
        now, before = layout.with_neck(keypoints), layout.with_neck(previous)
        both = (now[:, 2] >= self.style.min_confidence) & (before[:, 2] >= self.style.min_confidence)
        segments = np.array(list(self._segments(both)), np.int64).reshape(-1, 3)
        owner = self._segment_owners(now, segments)
        rows, columns = np.nonzero(owner >= 0)
        first, last = segments[owner[rows, columns], 0], segments[owner[rows, columns], 1]
        start, along = now[first, :2], now[last, :2] - now[first, :2]
        pixels = np.stack([columns, rows], axis=1).astype(np.float64)
        length2 = (along ** 2).sum(axis=1)
        share = np.clip(((pixels - start) * along).sum(axis=1) / np.maximum(length2, 1e-9), 0, 1)[:, None]
        motion = before[:, :2] - now[:, :2]
        flow = np.zeros((self.resolution, self.resolution, 2), np.float32)
        flow[rows, columns] = (1 - share) * motion[first] + share * motion[last]
        return spread_flow(flow, (owner >= 0).astype(np.float32))

    def _segment_owners(self, points: np.ndarray, segments: np.ndarray) -> np.ndarray:
        """(R, R) int32: the index of the segment drawn last at each pixel (-1: none), each line a
        pixel wider on both sides than the skeleton's, to cover its antialiased edge."""
        owner = np.full((self.resolution, self.resolution), -1, np.int32)
        fixed = np.round(points[:, :2] * SUBPIXEL_SCALE).clip(-(1 << 20), 1 << 20).astype(np.int32)
        for index, (a, b, width) in enumerate(segments):
            if a == b:
                cv2.circle(owner, fixed[a], (width // 2 + 1) * SUBPIXEL_SCALE, index, -1, cv2.LINE_8, SUBPIXEL_BITS)
            else:
                cv2.line(owner, fixed[a], fixed[b], index, int(width) + 2, cv2.LINE_8, SUBPIXEL_BITS)
        return owner

    def _segments(self, both: np.ndarray):
        """(a, b, width) of every line the skeleton draws, face first and body last, as ``draw`` does;
        a joint's disc is a segment from the joint to itself."""
        if both[layout.FACE_START]:
            for chains in self._face_chains.values():
                yield from ((a, b, self.face_width) for chain in chains for a, b in zip(chain[:-1], chain[1:])
                            if both[a] and both[b])
        for start in (layout.LEFT_HAND_START, layout.RIGHT_HAND_START):
            if both[start]:
                yield from ((start + a, start + b, self.hand_width) for finger in layout.HAND_FINGERS
                            for a, b in zip(finger[:-1], finger[1:]) if both[start + a] and both[start + b])
        yield from ((a, b, self.body_width) for a, b in layout.BODY_LIMBS if both[a] and both[b])
        yield from ((joint, joint, 2 * self.joint_radius) for joint in layout.BODY_JOINTS if both[joint])
