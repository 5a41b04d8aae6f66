"""The body keypoint layout stored in ``tracks.npz`` and the limbs the proxy draws.

Keypoints are 33 MediaPipe Pose points (in Pose order), 21 left-hand and 21 right-hand
points (MediaPipe Hands order), then a subset of FaceMesh points that outline the face
contour and features. "Left" is the subject's own left, as in MediaPipe.
"""

from __future__ import annotations

import colorsys

import numpy as np

from reenact.face.layout import FACE_CHAINS

POSE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
HAND_NAMES = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip",
    "index_dip", "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp",
    "ring_pip", "ring_dip", "ring_tip", "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

FACE_MESH_INDICES: tuple[int, ...] = tuple(sorted({i for chains in FACE_CHAINS.values() for c in chains for i in c}))

NUM_POSE = len(POSE_NAMES)
LEFT_HAND_START = NUM_POSE
RIGHT_HAND_START = LEFT_HAND_START + len(HAND_NAMES)
FACE_START = RIGHT_HAND_START + len(HAND_NAMES)
NUM_KEYPOINTS = FACE_START + len(FACE_MESH_INDICES)

KEYPOINT_NAMES: tuple[str, ...] = (
    POSE_NAMES
    + tuple(f"left_hand_{n}" for n in HAND_NAMES)
    + tuple(f"right_hand_{n}" for n in HAND_NAMES)
    + tuple(f"face_{i}" for i in FACE_MESH_INDICES)
)
POSE = {name: i for i, name in enumerate(POSE_NAMES)}

# A virtual neck (mid-shoulders) is appended after the stored keypoints when drawing,
# because OpenPose-style skeletons hang the head, arms and hips from it.
NECK = NUM_KEYPOINTS

BODY_LIMBS: tuple[tuple[int, int], ...] = (
    (NECK, POSE["right_shoulder"]), (NECK, POSE["left_shoulder"]),
    (POSE["right_shoulder"], POSE["right_elbow"]), (POSE["right_elbow"], POSE["right_wrist"]),
    (POSE["left_shoulder"], POSE["left_elbow"]), (POSE["left_elbow"], POSE["left_wrist"]),
    (NECK, POSE["right_hip"]), (POSE["right_hip"], POSE["right_knee"]), (POSE["right_knee"], POSE["right_ankle"]),
    (NECK, POSE["left_hip"]), (POSE["left_hip"], POSE["left_knee"]), (POSE["left_knee"], POSE["left_ankle"]),
    (NECK, POSE["nose"]), (POSE["nose"], POSE["right_eye"]), (POSE["right_eye"], POSE["right_ear"]),
    (POSE["nose"], POSE["left_eye"]), (POSE["left_eye"], POSE["left_ear"]),
    (POSE["right_ankle"], POSE["right_heel"]), (POSE["right_heel"], POSE["right_foot_index"]),
    (POSE["right_ankle"], POSE["right_foot_index"]),
    (POSE["left_ankle"], POSE["left_heel"]), (POSE["left_heel"], POSE["left_foot_index"]),
    (POSE["left_ankle"], POSE["left_foot_index"]),
)
BODY_JOINTS: tuple[int, ...] = tuple(sorted({i for limb in BODY_LIMBS for i in limb}))

HAND_FINGERS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (0, 9, 10, 11, 12), (0, 13, 14, 15, 16), (0, 17, 18, 19, 20),
)


def rainbow(count: int, saturation: float = 1.0, value: float = 1.0, stride: int = 1) -> tuple[tuple[int, int, int], ...]:
    """``count`` evenly spaced hues as RGB tuples, visited ``stride`` steps apart.

    A stride coprime to ``count`` gives limbs listed next to each other (a left and a right leg)
    hues far apart, so the network can tell the sides apart.
    """
    return tuple(
        tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb((i * stride % count) / count, saturation, value))
        for i in range(count)
    )


BODY_LIMB_COLORS = rainbow(len(BODY_LIMBS), stride=7)
BODY_JOINT_COLORS = rainbow(len(BODY_JOINTS), saturation=0.8)
# Left and right hands get different brightness so the network can tell them apart.
HAND_FINGER_COLORS = {
    "left": rainbow(len(HAND_FINGERS)),
    "right": rainbow(len(HAND_FINGERS), saturation=0.6, value=0.8),
}
FACE_CHAIN_COLORS = {
    "contour": (255, 255, 255), "brows": (255, 200, 120), "eyes": (120, 255, 255),
    "nose": (255, 255, 120), "outer_lips": (255, 120, 200), "inner_lips": (200, 120, 255),
}


def face_chain_keypoints() -> dict[str, tuple[np.ndarray, ...]]:
    """FACE_CHAINS translated from FaceMesh indices to indices into the stored keypoints."""
    position = {mesh_index: FACE_START + k for k, mesh_index in enumerate(FACE_MESH_INDICES)}
    return {
        name: tuple(np.array([position[i] for i in chain]) for chain in chains)
        for name, chains in FACE_CHAINS.items()
    }


def with_neck(keypoints: np.ndarray) -> np.ndarray:
    """Append the virtual neck point (mid-shoulders; confidence is the weaker shoulder's)."""
    shoulders = keypoints[..., [POSE["left_shoulder"], POSE["right_shoulder"]], :]
    neck = np.concatenate([shoulders[..., :2].mean(axis=-2), shoulders[..., 2:].min(axis=-2)], axis=-1)
    return np.concatenate([keypoints, neck[..., None, :]], axis=-2)
