"""The person's region of each body frame, so the reconstruction loss can weight it."""

from __future__ import annotations

import numpy as np

from reenact.body.background import person_masks

# Of the resolution: the drawn skeleton grown this far covers the limbs and torso, and little of the room.
PERSON_GROWTH = 0.04


def person_regions(proxies: np.ndarray) -> np.ndarray:
    """(T, R, R) uint8, 255 on and around the drawn skeleton of each (T, R, R, 3) proxy."""
    return person_masks(proxies, proxies.shape[1], PERSON_GROWTH).astype(np.uint8) * 255
