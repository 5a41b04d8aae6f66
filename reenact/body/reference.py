"""The target's own pixels, warped to the driving pose (Balakrishnan et al., CVPR 2018).

One training frame of the target, the reference, is cut into body parts along its skeleton; each
part is moved by the transform that takes its keypoints in the reference to the same keypoints in
the driving pose (a similarity for a limb or the head, an affine map for the torso, which turns
and foreshortens, a perspective map for the skirt, hips to mid-thighs, which flares with the
stance), and painted inside the part's region of the driving pose. The translator sees
this image beside the skeleton, so the clothing's pattern and the skin reach the frame from the
footage, and the network corrects the seams and the folds instead of inventing the cloth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from reenact.body.layout import NUM_KEYPOINTS, POSE

HEAD_POINTS = tuple(range(POSE["nose"], POSE["mouth_right"] + 1))

# Points no tracker gives, a fraction of the way between two it does; numbered after the layout's
# keypoints, so a part's anchors index the points `with_between` returns.
BETWEEN = {"left_mid_thigh": ("left_hip", "left_knee", 0.5), "right_mid_thigh": ("right_hip", "right_knee", 0.5)}
ANCHOR = {**POSE, **{name: NUM_KEYPOINTS + i for i, name in enumerate(BETWEEN)}}


@dataclass(frozen=True)
class Part:
    anchors: tuple[int, ...]   # the keypoints that carry the part: a bone's two ends, or a hull's corners
    reach: float               # how far the region reaches beyond them, in torso lengths
    fit: str = "similarity"    # a key of FITS


def _limb(a: str, b: str, reach: float) -> Part:
    return Part((POSE[a], POSE[b]), reach)


# Painted in this order, later over earlier: arms usually pass in front of the torso, and the head
# over the collar.
PARTS: tuple[Part, ...] = (
    Part((POSE["left_shoulder"], POSE["right_shoulder"], POSE["right_hip"], POSE["left_hip"]), 0.12, fit="affine"),
    *(_limb(f"{side}_hip", f"{side}_knee", 0.16) for side in ("left", "right")),
    *(_limb(f"{side}_knee", f"{side}_ankle", 0.12) for side in ("left", "right")),
    *(_limb(f"{side}_ankle", f"{side}_foot_index", 0.08) for side in ("left", "right")),
    *(_limb(f"{side}_shoulder", f"{side}_elbow", 0.11) for side in ("left", "right")),
    *(_limb(f"{side}_elbow", f"{side}_wrist", 0.09) for side in ("left", "right")),
    *(_limb(f"{side}_wrist", f"{side}_index", 0.08) for side in ("left", "right")),
    Part(HEAD_POINTS, 0.22),
)

# Painted first, under the thighs: a dress or a coat spans the gap between the legs, which two thigh
# capsules alone leave empty (a dress became shorts in wide stances). It stops at mid-thigh because
# below a short dress's hem the reference shows the legs side by side, which spread legs would turn
# into a web of skin; over trousers the thighs repaint all of it but the crotch.
SKIRT = Part(tuple(ANCHOR[name] for name in ("left_hip", "right_hip", "right_mid_thigh", "left_mid_thigh")), 0.12,
             fit="perspective")


def similarity(source: np.ndarray, destination: np.ndarray) -> np.ndarray:
    """The 2×3 rotation, uniform scale and translation taking (N, 2) ``source`` points nearest to
    ``destination`` in least squares (Umeyama's solution, no reflection)."""
    source_mean, destination_mean = source.mean(axis=0), destination.mean(axis=0)
    s, d = source - source_mean, destination - destination_mean
    # As complex numbers, a similarity is one multiplication: the least-squares factor is <d, s> / |s|².
    factor = np.vdot(s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]) / max(float((s ** 2).sum()), 1e-9)
    linear = np.array([[factor.real, -factor.imag], [factor.imag, factor.real]])
    return np.hstack([linear, (destination_mean - linear @ source_mean)[:, None]])


def affine(source: np.ndarray, destination: np.ndarray) -> np.ndarray:
    """The least-squares 2×3 affine map taking (N ≥ 3, 2) ``source`` points to ``destination``."""
    homogeneous = np.hstack([source, np.ones((len(source), 1))])
    solution, *_ = np.linalg.lstsq(homogeneous, destination, rcond=None)
    return solution.T


def with_between(points: np.ndarray) -> np.ndarray:
    """(..., K + len(BETWEEN), 3): the (..., K, 3) ``points`` followed by the BETWEEN points, each as
    confident as the less confident of its two ends."""
    extra = []
    for start, end, fraction in BETWEEN.values():
        a, b = points[..., POSE[start], :], points[..., POSE[end], :]
        extra.append(np.concatenate([a[..., :2] + fraction * (b[..., :2] - a[..., :2]),
                                     np.minimum(a[..., 2:], b[..., 2:])], axis=-1))
    return np.concatenate([points, np.stack(extra, axis=-2).astype(points.dtype)], axis=-2)


def perspective(source: np.ndarray, destination: np.ndarray) -> np.ndarray:
    """The 3×3 homography taking a (4, 2) quad ``source`` exactly onto ``destination``, both listed
    around their outline; the affine map (as 3×3) when either is not convex, where a homography
    folds the picture or sends part of it to infinity."""
    if len(source) == 4 and all(cv2.isContourConvex(quad.astype(np.float32)) for quad in (source, destination)):
        return cv2.getPerspectiveTransform(source.astype(np.float32), destination.astype(np.float32))
    return np.vstack([affine(source, destination), [0.0, 0.0, 1.0]])


FITS = {"similarity": similarity, "affine": affine, "perspective": perspective}


def move(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``frame`` mapped by a 2×3 affine or a 3×3 perspective ``matrix``, black outside it."""
    size = (frame.shape[1], frame.shape[0])
    if matrix.shape[0] == 2:
        return cv2.warpAffine(frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return cv2.warpPerspective(frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def torso_length(points: np.ndarray, confident: np.ndarray) -> float | None:
    shoulders, hips = [POSE["left_shoulder"], POSE["right_shoulder"]], [POSE["left_hip"], POSE["right_hip"]]
    if not confident[shoulders + hips].all():
        return None
    return float(np.linalg.norm(points[shoulders, :2].mean(axis=0) - points[hips, :2].mean(axis=0)))


def part_region(anchors: list[int], points: np.ndarray, reach: float, resolution: int) -> np.ndarray:
    """(R, R) uint8 mask of a part in the pose ``points``: a capsule along a bone (two ``anchors``),
    or the anchors' hull, grown by ``reach`` pixels."""
    mask = np.zeros((resolution, resolution), np.uint8)
    corners = np.round(points[anchors, :2] * 16).astype(np.int32)
    thickness = max(1, int(round(2 * reach)))
    if len(corners) == 2:
        cv2.line(mask, tuple(corners[0]), tuple(corners[1]), 255, thickness, cv2.LINE_8, 4)
    else:
        hull = cv2.convexHull(corners)
        cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_8, 4)
        cv2.polylines(mask, [hull], True, 255, thickness, cv2.LINE_8, 4)
    return mask


class ReferenceWarp:
    """The reference frame (R, R, 3) uint8 and its (K, 3) keypoints, both in the subject's crop at
    its resolution; called with a driving pose's keypoints in the same crop."""

    channels = 3

    def __init__(self, frame: np.ndarray, points: np.ndarray, min_confidence: float, skirt: bool = True):
        self.frame, self.points, self.min_confidence, self.skirt = frame, points, min_confidence, skirt
        self.resolution = frame.shape[0]
        self.anchor_points = with_between(points)
        self.parts = (SKIRT, *PARTS) if skirt else PARTS

    def __call__(self, points: np.ndarray | None) -> np.ndarray:
        """(R, R, 3) uint8: each part of the reference moved to ``points``; black where no part is."""
        warped = np.zeros_like(self.frame)
        if points is None:
            return warped
        points = with_between(points)
        confident = (points[:, 2] >= self.min_confidence) & (self.anchor_points[:, 2] >= self.min_confidence)
        scale = torso_length(points, confident)
        if scale is None:
            return warped
        for part in self.parts:
            anchors = [a for a in part.anchors if confident[a]]
            # A bone needs both ends; a hull (the torso, the skirt, the head) three of its points.
            if len(anchors) < min(len(part.anchors), 3):
                continue
            matrix = FITS[part.fit](self.anchor_points[anchors, :2].astype(np.float64),
                                    points[anchors, :2].astype(np.float64))
            moved = move(self.frame, matrix)
            region = part_region(anchors, points, part.reach * scale, self.resolution) > 0
            warped[region] = moved[region]
        return warped

    def state(self) -> dict:
        """For the checkpoint: tensors and primitives."""
        return {"frame": torch.from_numpy(np.ascontiguousarray(self.frame)),
                "points": torch.from_numpy(self.points.astype(np.float32)), "min_confidence": float(self.min_confidence),
                "skirt": self.skirt}

    @classmethod
    def from_state(cls, state: dict) -> "ReferenceWarp":
        # A checkpoint from before the skirt was trained without it, and is shown what it learned from.
        return cls(state["frame"].numpy().astype(np.uint8), state["points"].numpy().astype(np.float32),
                   float(state["min_confidence"]), bool(state.get("skirt", False)))


def choose_reference(points: np.ndarray, valid: np.ndarray, count: int, min_confidence: float) -> int:
    """The frame among the first ``count`` whose pose shows the most parts, and among those the one
    nearest the median pose: typical clothing and lighting, not an extreme of the motion."""
    confident = points[:count, :, 2] >= min_confidence
    shown = np.array([sum(confident[t, list(p.anchors)].all() for p in PARTS) for t in range(count)])
    shown[~np.asarray(valid[:count], bool)] = -1
    candidates = np.flatnonzero(shown == shown.max())
    body = points[candidates][:, :len(POSE), :2]
    median = np.median(body, axis=0)
    return int(candidates[np.argmin(np.nanmean(np.linalg.norm(body - median, axis=-1), axis=1))])


class WithReference:
    """A subject's (T, R, R, C) proxies with the reference warped to each frame's pose as 3 more
    channels, made when a range of frames is sliced: a whole clip at once would hold every frame's
    six channels in memory."""

    def __init__(self, proxies: np.ndarray, points: np.ndarray, reference: ReferenceWarp):
        self.proxies, self.points, self.reference = proxies, points, reference
        self.shape = (*proxies.shape[:-1], proxies.shape[-1] + reference.channels)

    def __len__(self) -> int:
        return len(self.proxies)

    def __getitem__(self, frames: slice) -> np.ndarray:
        indices = range(len(self))[frames]
        return np.stack([np.concatenate([self.proxies[t], self.reference(self.points[t])], axis=-1) for t in indices])
