"""VGG19's feature layers and their weights from torchvision's local cache (never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

TORCHVISION_VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
# torchvision's vgg19 configuration "E": channels per conv, "M" for max-pooling.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def vgg19_features() -> nn.Sequential:
    """Layers laid out as torchvision's ``vgg19().features``, so its state-dict keys load as they are."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)


def find_vgg19_weights() -> Path:
    """Where torchvision keeps the file: $TORCH_HOME/hub/checkpoints (TORCH_HOME defaults to ~/.cache/torch)."""
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    torch_home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    return Path(torch_home) / "hub" / "checkpoints" / TORCHVISION_VGG19_FILENAME


def load_vgg19_features_state(path: Path | None = None) -> tuple[dict[str, torch.Tensor] | None, str]:
    """(state dict of the feature layers, "") or (None, a one-line reason). Never raises, never downloads."""
    path = path or find_vgg19_weights()
    if not path.is_file():
        return None, f"VGG19 weights not found at {path}"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = {key.removeprefix("features."): value for key, value in checkpoint.items() if key.startswith("features.")}
        vgg19_features().load_state_dict(state)
    except Exception as error:  # a corrupt or foreign file, whatever torch raises for it
        return None, f"{path} is not a valid VGG19 checkpoint: {str(error).splitlines()[0][:120] if str(error) else type(error).__name__}"
    return state, ""
