"""Mouth and eye regions of each face crop, so the reconstruction loss can weight them."""

from __future__ import annotations

import cv2
import numpy as np

from reenact.face.layout import FACE_CHAINS

# The regions are grown by this fraction of the crop so lips and lids sit well inside them.
GROW = 0.02


def face_regions(tracks: dict[str, np.ndarray], resolution: int) -> np.ndarray:
    """(T, R, R) uint8, 255 inside the outer lips and the eyes, from a face subject's tracks."""
    landmarks, crops = tracks["fitted_landmarks"], tracks["crops"]
    polygons = [list(chain) for name in ("outer_lips", "eyes") for chain in FACE_CHAINS[name]]
    regions = np.zeros((len(crops), resolution, resolution), np.uint8)
    grow = max(1, int(round(GROW * resolution)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    for t, (points, crop) in enumerate(zip(landmarks, crops)):
        in_crop = np.round((points[:, :2] - crop[:2]) * resolution / crop[2]).astype(np.int32)
        cv2.fillPoly(regions[t], [in_crop[p] for p in polygons], 255)
        regions[t] = cv2.dilate(regions[t], kernel)
    return regions
