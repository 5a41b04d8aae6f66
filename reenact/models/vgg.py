"""VGG19's feature layers and their weights from torchvision's local cache (filled by `reenact weights fetch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from reenact.weights import PUBLISHED, hub_checkpoints

TORCHVISION_VGG19_FILENAME = PUBLISHED["vgg19"].file
# torchvision's vgg19 configuration "E": channels per conv, "M" for max-pooling.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def vgg19_features() -> nn.Sequential:
    """Layers laid out as torchvision's ``vgg19().features``, so its state-dict keys load as they are."""
    layout = tuple(item if item == "M" else (item, 3, 1, 1) for item in VGG19_LAYOUT)
    return features_from_layout(layout, lambda: nn.MaxPool2d(2, 2))


def features_from_layout(layout: tuple, pool: Callable[[], nn.Module]) -> nn.Sequential:
    """A convolution and a ReLU per (out channels, kernel, stride, padding) item, ``pool()`` per "M",
    numbered as torchvision numbers its ``features`` layers."""
    layers: list[nn.Module] = []
    channels = 3
    for item in layout:
        if item == "M":
            layers.append(pool())
        else:
            out_channels, kernel, stride, padding = item
            layers += [nn.Conv2d(channels, out_channels, kernel, stride, padding), nn.ReLU(inplace=False)]
            channels = out_channels
    return nn.Sequential(*layers)


def find_vgg19_weights() -> Path:
    """Where torchvision keeps the file, existing or not: $TORCH_HOME/hub/checkpoints/."""
    return hub_checkpoints() / TORCHVISION_VGG19_FILENAME


def load_vgg19_features_state(path: Path | None = None) -> tuple[dict[str, torch.Tensor] | None, str]:
    """(state dict of the feature layers, "") or (None, a one-line reason). Never raises, never downloads."""
    path = Path(path) if path is not None else find_vgg19_weights()
    if not path.is_file():
        return None, f"VGG19 weights not found at {path}"
    state, problem = read_feature_state(path, vgg19_features)
    if state is None or problem:
        return None, f"{path} is not a valid VGG19 checkpoint: {problem}"
    return state, ""


def read_feature_state(path: Path, layers: Callable[[], nn.Module]) -> tuple[dict[str, torch.Tensor] | None, str]:
    """A torchvision checkpoint's "features.*" tensors, prefix stripped, and what keeps them from loading into
    ``layers()`` ("" when nothing does)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file, whatever torch raises for it
        return None, _load_error(error)
    if not isinstance(checkpoint, dict):
        return None, f"it holds a {type(checkpoint).__name__}, not a state dict"
    state = {key.removeprefix("features."): value for key, value in checkpoint.items()
             if isinstance(key, str) and key.startswith("features.")}
    return state, _layout_problem(state, layers)


def _layout_problem(state: dict[str, torch.Tensor], layers: Callable[[], nn.Module]) -> str:
    """What keeps ``state`` from loading into ``layers()``, or "" when nothing does."""
    with torch.device("meta"):  # shapes only; no 80 MB of random weights
        expected = {key: value.shape for key, value in layers().state_dict().items()}
    missing = [key for key in expected if key not in state]
    if missing:
        return f"{len(missing)} of {len(expected)} feature tensors missing (first: features.{missing[0]})"
    for key, shape in expected.items():
        if not isinstance(state[key], torch.Tensor) or state[key].shape != shape:
            found = tuple(state[key].shape) if isinstance(state[key], torch.Tensor) else type(state[key]).__name__
            return f"features.{key} is {found}, expected {tuple(shape)}"
    extra = sorted(set(state) - set(expected))
    return f"unexpected tensor features.{extra[0]}" if extra else ""


def _load_error(error: Exception, limit: int = 120) -> str:
    message = str(error).strip()
    # torch's weights-only refusal is a paragraph advising weights_only=False; wrong advice for a corrupt file.
    if message.startswith("Weights only load failed"):
        return f"torch.load(weights_only=True) cannot read it ({type(error).__name__}; corrupt or not tensors)"
    first_line = message.splitlines()[0][:limit] if message else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
