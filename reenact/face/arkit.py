"""ARKit's 52 blendshape names, and how the face model's 53 expressions map onto them.

The ICT face model names its expressions after ARKit's with ``_L``/``_R`` for ``Left``/``Right``,
and splits two of ARKit's shapes in halves (``browInnerUp``, ``cheekPuff``); it has no tongue.
So ARKit's weight of a split shape is the mean of its halves, ``tongueOut`` is always 0, and an
``--edit`` of a split shape moves both halves.
"""

from __future__ import annotations

import numpy as np

from reenact.errors import ReenactError

# ARKit's order (ARFaceAnchor.BlendShapeLocation, grouped as Apple's documentation lists them):
# left eye, right eye, mouth and jaw, eyebrows, cheeks, nose, tongue.
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
NO_COUNTERPART = ("tongueOut",)        # ARKit shapes the face model cannot make


def model_names_for(arkit_name: str, model_names: list[str] | tuple[str, ...]) -> list[str]:
    """The model's expressions behind one ARKit shape: one, both halves of a split shape, or none."""
    for suffix, side in (("Left", "_L"), ("Right", "_R")):
        if arkit_name.endswith(suffix) and arkit_name[: -len(suffix)] + side in model_names:
            return [arkit_name[: -len(suffix)] + side]
    if arkit_name in model_names:
        return [arkit_name]
    return [name for name in (arkit_name + "_L", arkit_name + "_R") if name in model_names]


def to_arkit(expression: np.ndarray, model_names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(..., 53) model weights → (..., 52) ARKit weights in ARKIT_NAMES' order."""
    columns = []
    for arkit_name in ARKIT_NAMES:
        indices = [list(model_names).index(name) for name in model_names_for(arkit_name, model_names)]
        columns.append(expression[..., indices].mean(axis=-1) if indices else np.zeros(expression.shape[:-1], expression.dtype))
    return np.stack(columns, axis=-1)


def resolve_edit_name(name: str, model_names: list[str] | tuple[str, ...], edit: str) -> list[str]:
    """The model's expressions an ``--edit`` NAME moves: a model name, or an ARKit name (a split
    shape moves both halves); anything else is an error listing both vocabularies."""
    if name in model_names:
        return [name]
    if name in NO_COUNTERPART:
        raise ReenactError(f"--edit {edit}: the face model has no {name} (ARKit's tongue has no counterpart in it)")
    found = model_names_for(name, model_names) if name in ARKIT_NAMES else []
    if not found:
        raise ReenactError(f"--edit {edit}: unknown expression {name!r} (valid: the model's {', '.join(model_names)}; "
                           f"or ARKit's {', '.join(n for n in ARKIT_NAMES if n not in NO_COUNTERPART)})")
    return found
