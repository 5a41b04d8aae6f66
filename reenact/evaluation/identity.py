"""Face identity: dlib's 128-d face-recognition embedding, an optional extra (`pip install
'reenact[identity]'`: the dlib-bin wheel and the face-recognition-models package's files).

``identity_distance`` is the distance from an output frame's embedding to the mean embedding of
the target's real frames; dlib calls two faces the same person below 0.6. A frame where dlib finds
no face counts 1.0. The models ship in the
face-recognition-models package; its files are read without importing it (its import needs
pkg_resources, which current setuptools no longer has).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

SAME_PERSON = 0.6
# A frame with no face found counts this far: well past the same-person threshold, as a missed
# detection counts one inter-ocular distance in pose_distance.
MISSED_FACE_DISTANCE = 1.0
# dlib's frontal detector wants faces of 80 px and more; a 128 px crop's face is about half that.
UPSCALE = 3
EMBEDDING = 128
INSTALL = "pip install 'reenact[identity]' (dlib-bin and face-recognition-models)"


class FaceEmbedder:
    """(N, R, R, 3) uint8 frames → (N, 128) embeddings of the largest face, NaN where none is found."""

    def __init__(self, dlib, models: Path):
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.network = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        embeddings = np.full((len(images), EMBEDDING), np.nan, np.float32)
        for n, image in enumerate(images):
            size = image.shape[0] * UPSCALE
            enlarged = np.ascontiguousarray(cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC))
            faces = self.detector(enlarged, 1)
            if len(faces):
                face = max(faces, key=lambda box: box.width() * box.height())
                embeddings[n] = np.array(self.network.compute_face_descriptor(enlarged, self.shapes(enlarged, face)))
        return embeddings


def load_face_embedder() -> tuple[FaceEmbedder | None, str]:
    """The embedder, or None and why (the report names it, as it does for LPIPS)."""
    try:
        import dlib
    except ImportError:
        return None, f"dlib is not installed; {INSTALL}"
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None, f"face-recognition-models is not installed; {INSTALL}"
    return FaceEmbedder(dlib, Path(list(spec.submodule_search_locations)[0]) / "models"), ""


def reference_embedding(embedder: FaceEmbedder, frames: np.ndarray, count: int = 24) -> np.ndarray:
    """(128,) the mean embedding of ``count`` evenly spread real frames with a face found (NaN if none)."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    embeddings = embedder(frames[picks])
    found = ~np.isnan(embeddings).any(axis=1)
    return embeddings[found].mean(axis=0) if found.any() else np.full(EMBEDDING, np.nan, np.float32)


def identity_distances(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distance of each embedding to the reference; MISSED_FACE_DISTANCE where no face
    was found (NaN throughout where the reference has none)."""
    distances = np.linalg.norm(embeddings - reference[None], axis=1)
    return np.where(np.isnan(embeddings).any(axis=1) & ~np.isnan(reference).any(), MISSED_FACE_DISTANCE, distances)
