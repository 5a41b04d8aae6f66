"""The optional face-alignment backend: 2D-FAN's 68 iBUG landmarks inside FaceMesh's face boxes.

face-alignment downloads its weights on first use; reenact downloads only when the user runs
`reenact weights fetch 2dfan`, so the weights must already be in torch's hub cache, and without
them this backend stops with a message naming the file and that command. FaceMesh still runs
first: its face boxes stand in for face-alignment's own detector (whose weights would be
another download), and its irises still give the gaze.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

import numpy as np
import torch

from reenact.errors import ReenactError
from reenact.face.model import NUM_LANDMARKS

NUM_IBUG = 68
FAN_NETWORK = "2DFAN-4"


def fan_weights() -> Path:
    """The cached 2D-FAN weights file, or a ReenactError saying what to install or where to put it."""
    try:
        from face_alignment import api
    except ImportError as error:
        raise ReenactError("the face-alignment landmark backend needs its package: "
                           "pip install 'reenact[face-alignment]'") from error
    url = api.models_urls[FAN_NETWORK]
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not path.is_file():
        raise ReenactError(f"{path}: face-alignment's weights are missing and track does not download; run "
                           f"`reenact weights fetch 2dfan` or copy {url} there (the folder follows $TORCH_HOME), "
                           f"or use --face-landmarks mediapipe")
    return path


def face_boxes(landmarks: np.ndarray) -> np.ndarray:
    """(T, 4) x1, y1, x2, y2 around FaceMesh's 468 points, the kind of box 2D-FAN was trained on."""
    points = landmarks[:, :NUM_LANDMARKS, :2]
    return np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1)


def track_ibug68(frames: Iterable[np.ndarray], boxes: np.ndarray, valid: np.ndarray, scale: float,
                 device: torch.device) -> np.ndarray:
    """(T, 68, 2) 2D-FAN landmarks in source pixels for frames where ``valid``; zeros elsewhere.

    ``boxes`` are in source pixels and ``frames`` are the source scaled by ``scale``.
    """
    fan_weights()
    import face_alignment

    network = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=str(device), flip_input=False,
                                           face_detector="folder", compile=False)
    landmarks = np.zeros((len(valid), NUM_IBUG, 2), np.float32)
    for t, frame in enumerate(frames):
        if t < len(valid) and valid[t]:
            # float64: under numpy 2 a float32 box keeps face-alignment's crop scale a numpy.float32,
            # which its transform can't write into a torch tensor.
            found = network.get_landmarks_from_image(frame, detected_faces=[boxes[t].astype(np.float64) * scale])
            landmarks[t] = found[0][:, :2] / scale
    return landmarks
