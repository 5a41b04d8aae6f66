"""LPIPS (Zhang et al., CVPR 2018), version 0.1 on AlexNet: a learned distance between images' deep features.

Two files make it, both read with ``torch.load(weights_only=True)`` and neither downloaded here:
AlexNet's weights from torchvision's cache (`reenact weights fetch lpips`), and the linear layers
that ship inside the lpips package (weights/v0.1/alex.pth). The lpips package's own code imports
torchvision, which need not import beside this project's torch, so it is never imported: the
network is laid out here so that both files' keys load as they are.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from reenact.models.vgg import features_from_layout, read_feature_state
from reenact.weights import PUBLISHED, hub_checkpoints

# torchvision's alexnet().features: (out channels, kernel, stride, padding) per convolution, "M" for max-pooling.
ALEXNET_LAYOUT = ((64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M")
# LPIPS compares the output of each convolution's ReLU: their indices in alexnet().features.
TAPPED_RELUS = (1, 4, 7, 9, 11)
TAPPED_CHANNELS = (64, 192, 384, 256, 256)
# LPIPS's input scaling of [-1, 1] images, per RGB channel (its ScalingLayer).
INPUT_SHIFT = (-0.030, -0.088, -0.188)
INPUT_SCALE = (0.458, 0.448, 0.450)
NORM_EPSILON = 1e-10
LINEAR_WEIGHTS = Path("weights") / "v0.1" / "alex.pth"


def alexnet_features() -> nn.Sequential:
    """Layers laid out as torchvision's ``alexnet().features``, so its state-dict keys load as they are."""
    return features_from_layout(ALEXNET_LAYOUT, lambda: nn.MaxPool2d(3, 2))


class LearnedPerceptualDistance(nn.Module):
    """LPIPS between two batches of RGB images in [0, 1], (N, 3, H, W) each: (N,) distances, 0 for equal images."""

    def __init__(self) -> None:
        super().__init__()
        self.features = alexnet_features()
        self.linear = nn.ModuleList(nn.Conv2d(channels, 1, 1, bias=False) for channels in TAPPED_CHANNELS)
        self.register_buffer("shift", torch.tensor(INPUT_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(INPUT_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([first, second]) * 2 - 1 - self.shift) / self.scale
        total = torch.zeros(len(first), device=first.device)
        taps = iter(self.linear)
        for index, layer in enumerate(self.features[:TAPPED_RELUS[-1] + 1]):
            x = layer(x)
            if index in TAPPED_RELUS:
                unit = x / (x.square().sum(dim=1, keepdim=True).sqrt() + NORM_EPSILON)
                a, b = unit.chunk(2)
                total = total + next(taps)((a - b).square()).mean(dim=(1, 2, 3))
        return total


def linear_weights_path() -> Path | None:
    """alex.pth inside the installed lpips package (found without importing it), or None without the package."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / LINEAR_WEIGHTS


def load_lpips() -> tuple[LearnedPerceptualDistance | None, str]:
    """(the network with both files' weights, "") or (None, a one-line reason). Never raises, never downloads."""
    alexnet = hub_checkpoints() / PUBLISHED["lpips"].file
    linear = linear_weights_path()
    if linear is None:
        return None, f"needs the lpips package for its linear layers ({PUBLISHED['lpips'].install})"
    if not alexnet.is_file():
        return None, f"needs AlexNet's weights at {alexnet} (reenact weights fetch lpips)"
    features, problem = read_feature_state(alexnet, alexnet_features)
    if features is None or problem:
        return None, f"{alexnet} is not a valid AlexNet checkpoint: {problem}"
    try:
        saved = torch.load(linear, map_location="cpu", weights_only=True)
        network = LearnedPerceptualDistance()
        network.features.load_state_dict(features)
        network.linear.load_state_dict({f"{k}.weight": saved[f"lin{k}.model.1.weight"] for k in range(len(TAPPED_CHANNELS))})
    except Exception as error:  # a missing, corrupt or foreign file: whatever torch raises for it
        return None, f"{linear} is not LPIPS's linear layers: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return network.eval().requires_grad_(False), ""
