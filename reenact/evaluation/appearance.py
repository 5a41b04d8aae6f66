"""What a viewer sees first: whether the output is as sharp as the footage, and whether it looks like
the target (a face's identity, a body's clothing and skin).

PSNR and SSIM reward blur, and pose distance only says where the person is; these figures say
what the person looks like.
- ``sharpness``: the high-frequency (Laplacian) energy of the output over the person or face,
  divided by the footage's own over the same region: 1.0 is as sharp as the footage. With no real
  frame (cross-reenactment) a body's reference is the training footage's energy part by part,
  weighted by how much of the region each part covers in the frame measured: a patterned shirt and
  bare forearms differ in energy several times over, so a pose that shows more of one than the
  training poses did would otherwise read as blur, or as sharpness. Where a body's crop reaches
  past the video, the black padding and its edge are left out (``clear_of_padding``): it is the
  sharpest line in the frame and not the person's. Fashion's heels stand on its crop's bottom edge:
  that edge held 88 % of the feet's energy in the training frames, which made the feet 68 % of the
  cross figure, so any system whose feet stood elsewhere, retrieval's real frames included,
  scored about 0.5 there.
- ``appearance_distance`` (bodies): for each body part (torso, upper and lower arms and legs), the
  colour (CIELAB) of the output where the pose puts that part, against the median colour of the
  same part in the target's training footage; ΔE, averaged over the parts in view. Each part is
  compared with itself, so it holds in any pose, and it needs no real frame, so it serves cross-
  reenactment too. A smeared or wrongly coloured shirt, or the background showing where an arm
  should be, scores high. Mean colour does not see texture; sharpness does.
- ``identity_distance`` (faces): reenact/evaluation/identity.py.
"""

from __future__ import annotations

import contextlib
import warnings

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from reenact.stabilise import laplacian

# Body parts as MediaPipe Pose segments; the torso by its two diagonals.
BODY_PARTS: dict[str, tuple[tuple[int, int], ...]] = {
    "torso": ((11, 24), (12, 23)),
    "left_upper_arm": ((11, 13),), "right_upper_arm": ((12, 14),),
    "left_forearm": ((13, 15),), "right_forearm": ((14, 16),),
    "left_thigh": ((23, 25),), "right_thigh": ((24, 26),),
    "left_shin": ((25, 27),), "right_shin": ((26, 28),),
}
# Sharpness weighs the region by every part, head, hands and feet included, so that each pixel of
# the region belongs to the part nearest it.
SHARPNESS_PARTS: dict[str, tuple[tuple[int, int], ...]] = {
    **BODY_PARTS, "head": ((0, 7), (0, 8)), "left_hand": ((15, 17), (15, 19)), "right_hand": ((16, 18), (16, 20)),
    "left_foot": ((27, 29), (27, 31)), "right_foot": ((28, 30), (28, 32)),
}
SEGMENT_FRACTIONS = np.array([0.2, 0.35, 0.5, 0.65, 0.8])
MIN_CONFIDENCE = 0.5
REFERENCE_FRAMES = 200


def high_frequency_energy(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N,) mean squared Laplacian of each (R, R, 3) uint8 image's grey levels (0 to 1) over its mask
    (the whole image where the mask is empty)."""
    energies = []
    for image, mask in zip(images, masks):
        squared = squared_detail(image)
        energies.append(float(squared[mask].mean() if mask.any() else squared.mean()))
    return np.array(energies)


def squared_detail(image: np.ndarray) -> np.ndarray:
    """(R, R) the squared 3×3 Laplacian of an (R, R, 3) uint8 image's grey levels (0 to 1)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    return laplacian(grey) ** 2


def part_labels(mask: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(R, R) int: each ``mask`` pixel's nearest part of SHARPNESS_PARTS whose segment's two points
    are confident in the (K, 3) ``pose``; -1 off the mask, or everywhere when no part is in view."""
    labels = np.full(mask.shape, -1, np.int64)
    segments = [(p, pose[a, :2], pose[b, :2]) for p, part in enumerate(SHARPNESS_PARTS.values()) for a, b in part
                if min(pose[a, 2], pose[b, 2]) >= MIN_CONFIDENCE]
    rows, columns = np.nonzero(mask)
    if not segments or not len(rows):
        return labels
    xy = np.stack([columns, rows], axis=1).astype(np.float32)
    distances = np.stack([segment_distance(xy, a, b) for _, a, b in segments], axis=1)
    labels[rows, columns] = np.array([p for p, _, _ in segments])[distances.argmin(axis=1)]
    return labels


def segment_distance(xy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) distance of each (M, 2) point from the segment a–b."""
    direction = b - a
    along = np.clip((xy - a) @ direction / max(float(direction @ direction), 1e-9), 0, 1)
    return np.linalg.norm(xy - (a + along[:, None] * direction), axis=1)


def part_energy_sums(images: np.ndarray, masks: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) squared-Laplacian sums and (N, P) pixel counts of each part over each image's mask."""
    sums = np.zeros((len(images), len(SHARPNESS_PARTS)))
    counts = np.zeros_like(sums)
    for n, (image, mask, pose) in enumerate(zip(images, masks, points)):
        labels = part_labels(mask, pose)
        labelled = labels >= 0
        sums[n] = np.bincount(labels[labelled], squared_detail(image)[labelled], len(SHARPNESS_PARTS))
        counts[n] = np.bincount(labels[labelled], minlength=len(SHARPNESS_PARTS))
    return sums, counts


@dataclass(frozen=True)
class PartEnergyReference:
    """The footage's high-frequency energy expected over a region, from the parts the region covers."""
    part_energy: np.ndarray                     # (P,) each part's mean squared Laplacian in the footage; NaN: never seen
    whole: float                                # the footage's energy over whole regions: for frames with no part in view

    @classmethod
    def from_footage(cls, frames: np.ndarray, masks: np.ndarray, points: np.ndarray) -> PartEnergyReference:
        sums, counts = part_energy_sums(frames, masks, points)
        seen = counts.sum(axis=0)
        part_energy = np.where(seen > 0, sums.sum(axis=0) / np.maximum(seen, 1), np.nan)
        return cls(part_energy, float(high_frequency_energy(frames, masks).mean()))

    def __call__(self, masks: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(N,) the footage's energy over each region's mix of parts (parts it never showed count as
        its whole-region energy)."""
        counts = np.stack([np.bincount(labels[labels >= 0], minlength=len(SHARPNESS_PARTS))
                           for labels in (part_labels(mask, pose) for mask, pose in zip(masks, points))])
        energy = np.where(np.isnan(self.part_energy), self.whole, self.part_energy)
        covered = counts.sum(axis=1)
        return np.where(covered > 0, counts @ energy / np.maximum(covered, 1), self.whole)


def part_colours(images: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, P, 3) the median CIELAB colour along each body part of (N, R, R, 3) uint8 images, where
    (N, K, 3) pose points (pixels, confidence) put it; NaN where the part is not in view."""
    colours = np.full((len(images), len(BODY_PARTS), 3), np.nan, np.float32)
    size = images.shape[1]
    for n, (image, pose) in enumerate(zip(images, points)):
        lab = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
        for p, segments in enumerate(BODY_PARTS.values()):
            samples = [pose[a, :2] + SEGMENT_FRACTIONS[:, None] * (pose[b, :2] - pose[a, :2])
                       for a, b in segments if min(pose[a, 2], pose[b, 2]) >= MIN_CONFIDENCE]
            if not samples:
                continue
            xy = np.concatenate(samples).round().astype(int)
            inside = ((xy >= 0) & (xy < size)).all(axis=1)
            if inside.any():
                colours[n, p] = np.median(lab[xy[inside, 1], xy[inside, 0]], axis=0)
    return colours


def reference_part_colours(frames: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P, 3) each part's median colour over training frames (the caller's sample: ``reference_picks``)."""
    with quiet_nan():
        return np.nanmedian(part_colours(frames, points), axis=0)


def appearance_distance(colours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N,) mean ΔE (CIE76) over the parts in view in both; NaN where none is."""
    distance = np.linalg.norm(colours - reference[None], axis=-1)
    with quiet_nan():
        return np.nanmean(distance, axis=1)


@contextlib.contextmanager
def quiet_nan():
    """All-NaN slices give NaN, as reported, without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def clear_of_padding(coverage: np.ndarray | None) -> np.ndarray | None:
    """(R, R) bool: the pixels whose 3×3 Laplacian sees only the video, by the (R, R) share of each
    pixel inside it (``Mode.footage_coverage``; the rest is the black padding where a crop reaches
    past the video's edge); None where every pixel is wholly inside."""
    if coverage is None or coverage.min() >= 1:
        return None
    return cv2.erode((coverage >= 1).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def within_footage(masks: np.ndarray, footage: np.ndarray | None) -> np.ndarray:
    """(N, R, R) region masks cut to ``footage`` (``clear_of_padding``; None: left whole)."""
    return masks if footage is None else masks & footage


@dataclass(frozen=True)
class ViewerFigures:
    """``sharpness`` and the mode's look-alike figure (``key``), against the target's training footage.
    Sharpness looks only where ``footage`` is true (``clear_of_padding``), in every frame it measures."""
    reference_energy: Callable[[np.ndarray, np.ndarray], np.ndarray]   # (masks, points) → (N,) the footage's energy there
    key: str                                    # "appearance_distance" or "identity_distance"
    judge: Callable[[np.ndarray, np.ndarray], np.ndarray] | None   # (images, pose points) → (N,); None: unavailable
    unavailable: str = ""                       # why ``judge`` is None
    footage: np.ndarray | None = None           # (R, R) bool: clear of the crop's padding; None: everywhere

    def measured(self, masks: np.ndarray) -> np.ndarray:
        """The part of (N, R, R) region masks that sharpness looks at."""
        return within_footage(masks, self.footage)

    def energy(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(N,) ``high_frequency_energy`` where sharpness looks: a self-reenactment reference."""
        return high_frequency_energy(images, self.measured(masks))

    def reference(self, masks: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(N,) the training footage's energy expected where sharpness looks: a cross-reenactment reference."""
        return self.reference_energy(self.measured(masks), points)

    def __call__(self, images: np.ndarray, masks: np.ndarray, points: np.ndarray,
                 reference: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per frame; ``reference`` is the sharpness reference where given (self-reenactment: each
        real frame's ``energy`` over the same masks; or ``reference(masks, points)`` made once for
        several systems), else ``reference(masks, points)``."""
        if reference is None:
            reference = self.reference(masks, points)
        figures = {"sharpness": self.energy(images, masks) / np.maximum(reference, 1e-12)}
        if self.judge is not None:
            figures[self.key] = self.judge(images, points)
        return figures

    @property
    def note(self) -> str:
        return f"{self.key}: unavailable: {self.unavailable}" if self.judge is None else ""


def whole_region_energy(frames: np.ndarray, masks: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The footage's energy over whole regions, the same for any region (a face's mix does not change)."""
    energy = float(high_frequency_energy(frames, masks).mean())
    return lambda masks, _: np.full(len(masks), energy)


def reference_picks(count: int) -> np.ndarray:
    """Up to REFERENCE_FRAMES frame indices spread evenly over ``count`` frames: the training frames
    a ``ViewerFigures`` is built from."""
    return np.unique(np.linspace(0, count - 1, min(REFERENCE_FRAMES, count)).round().astype(int))
