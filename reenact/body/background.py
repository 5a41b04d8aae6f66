"""The background plate of a static-camera body clip, for the generator to paint the person over.

Everybody Dance Now's targets are filmed from a fixed camera, so behind the person the frames hold
one still image. Its estimate: the per-pixel median of frames sampled through the clip, each with
the person masked out (the skeleton grown by a tenth of the frame); pixels the person covers in
nearly every sample are inpainted. A moving camera leaves no still image: the sampled frames then
differ from their median even away from the person, and the clip gets no plate; nor does a clip
whose person hides too much of the background for the plate to be more than a guess.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np

PLATE_SAMPLES = 120          # frames the median is taken over, spread through the clip
MASK_GROWTH = 0.1            # of the resolution: how far around the skeleton counts as the person
MIN_SEEN_SHARE = 0.1         # a pixel's median needs it unmasked in this share of samples; else inpainted
# Median over samples of the mean absolute difference (0 to 1) between a frame's background and the
# plate. Measured at 96 px: the still-camera clips here 0.000 to 0.017 (hybrik_taiji, whose camera
# barely moves), the shipped example panned 3 source pixels a frame 0.048.
MOVING_CAMERA_RESIDUAL = 0.03
# A plate that is mostly guess is worse than none. On the fidelity benchmark (tiny, 10 minutes) the
# plate raised hybrik_taiji's masked PSNR by 0.4 dB (the person walks about: 10 % inpainted) and cut
# musepose_ubcfashion's by 3.7 dB, tripling its flicker (the model stands in place: 21 % inpainted).
MAX_INPAINTED_SHARE = 0.15


@dataclass(frozen=True)
class Plate:
    image: np.ndarray | None     # (R, R, 3) uint8, or None when the camera moves
    residual: float              # see MOVING_CAMERA_RESIDUAL
    inpainted: float             # share of the plate's pixels the person always covered

    @property
    def static_camera(self) -> bool:
        return self.residual <= MOVING_CAMERA_RESIDUAL

    def why_none(self) -> str:
        """Why there is no plate, for the user; empty when there is one."""
        if self.image is not None:
            return ""
        if not self.static_camera:
            return (f"the background moves (camera motion; residual {self.residual:.3f} > {MOVING_CAMERA_RESIDUAL})")
        return (f"the person covers {self.inpainted:.0%} of the background in nearly every frame "
                f"(more than {MAX_INPAINTED_SHARE:.0%})")

    def to_dict(self) -> dict:
        return {"residual": round(self.residual, 4), "inpainted": round(self.inpainted, 4),
                "static_camera": self.static_camera, "moving_camera_residual": MOVING_CAMERA_RESIDUAL,
                "max_inpainted": MAX_INPAINTED_SHARE}


def person_masks(proxies: np.ndarray, resolution: int, growth: float = MASK_GROWTH) -> np.ndarray:
    """(N, R, R) bool: the drawn skeleton grown by ``growth`` of the resolution."""
    radius = max(1, round(growth * resolution))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.stack([cv2.dilate((proxy.max(axis=-1) > 0).astype(np.uint8), kernel) > 0 for proxy in proxies])


def estimate_plate(frames: np.ndarray, proxies: np.ndarray, valid: np.ndarray) -> Plate:
    """The plate from (T, R, R, 3) frames and their skeleton proxies; frames without a person count whole."""
    picks = np.linspace(0, len(frames) - 1, min(PLATE_SAMPLES, len(frames))).round().astype(int)
    samples = np.asarray(frames[picks], np.float32) / 255
    masks = person_masks(np.asarray(proxies[picks]), frames.shape[1]) & valid[picks, None, None]
    background = np.where(masks[..., None], np.nan, samples)
    seen = (~masks).mean(axis=0) >= MIN_SEEN_SHARE
    if not seen.any():
        return Plate(None, float("nan"), 1.0)
    median = np.nanmedian(background[:, seen], axis=0)                     # (pixels seen, 3)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # a sample whose every seen pixel is masked: NaN, skipped
        residual = float(np.nanmedian(np.nanmean(np.abs(background[:, seen] - median).reshape(len(picks), -1), axis=1)))
    inpainted = float((~seen).mean())
    if not residual <= MOVING_CAMERA_RESIDUAL or inpainted > MAX_INPAINTED_SHARE:
        return Plate(None, residual, inpainted)
    image = np.zeros(frames.shape[1:], np.uint8)
    image[seen] = (median * 255).round().astype(np.uint8)
    if not seen.all():
        image = cv2.inpaint(image, (~seen).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return Plate(image, residual, inpainted)
