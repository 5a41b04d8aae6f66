"""LPIPS: the network against a plain re-statement of the published definition, and finding its two files."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch
import torch.nn.functional as F

from reenact.models.lpips import (INPUT_SCALE, INPUT_SHIFT, TAPPED_CHANNELS, LearnedPerceptualDistance,
                                  load_lpips)
from tests.conftest import install_lpips_weights


def seeded_network(seed: int = 0) -> LearnedPerceptualDistance:
    torch.manual_seed(seed)
    network = LearnedPerceptualDistance()
    for linear in network.linear:
        linear.weight.data.uniform_(0, 1)       # LPIPS's learned weights are non-negative
    return network.eval()


def reference_lpips(network: LearnedPerceptualDistance, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """torchvision's AlexNet convolutions (11/4/2, 5/1/2, then three 3/1/1; 3×2 max-pools after the first
    two) tapped after each ReLU; features unit-normalised over channels, squared differences weighted
    per channel, averaged over space, summed over the five layers (Zhang et al. 2018, eq. 1)."""
    convolutions = [m for m in network.features if isinstance(m, torch.nn.Conv2d)]
    shapes = [(4, 2), (1, 2), (1, 1), (1, 1), (1, 1)]
    def taps(image):
        x = (image * 2 - 1 - torch.tensor(INPUT_SHIFT).view(1, 3, 1, 1)) / torch.tensor(INPUT_SCALE).view(1, 3, 1, 1)
        found = []
        for k, (conv, (stride, padding)) in enumerate(zip(convolutions, shapes)):
            if k in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, conv.weight, conv.bias, stride, padding))
            found.append(x)
        return found
    total = 0
    for a, b, linear in zip(taps(first), taps(second), network.linear):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        total = total + ((a - b) ** 2 * linear.weight.view(1, -1, 1, 1)).sum(1).mean((1, 2))
    return total


def test_lpips_matches_the_published_definition_and_is_a_distance():
    network = seeded_network()
    generator = torch.Generator().manual_seed(1)
    first, second = torch.rand(3, 3, 96, 96, generator=generator), torch.rand(3, 3, 96, 96, generator=generator)
    with torch.no_grad():
        distance = network(first, second)
        torch.testing.assert_close(distance, reference_lpips(network, first, second), rtol=1e-4, atol=1e-6)
        assert distance.shape == (3,) and (distance > 0).all()
        torch.testing.assert_close(network(second, first), distance)                        # symmetric
        torch.testing.assert_close(network(first, first), torch.zeros(3))                   # zero for equal images
        torch.testing.assert_close(network(first[1:2], second[1:2]), distance[1:2])         # per image, not per batch
        blurred = F.avg_pool2d(first, 3, 1, 1)
        assert (network(first, blurred) < network(first, second)).all()   # a blur is nearer than another image


def test_lpips_needs_both_files_and_names_what_is_missing(tmp_path, monkeypatch):
    env = install_lpips_weights(tmp_path)
    monkeypatch.setenv("TORCH_HOME", env["TORCH_HOME"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lpips" else find_spec(name, *a))
    network, reason = load_lpips()
    assert network is None and "lpips package" in reason and "--no-deps" in reason

    monkeypatch.undo()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    network, reason = load_lpips()
    assert network is None and str(tmp_path / "elsewhere") in reason and "reenact weights fetch lpips" in reason

    monkeypatch.setenv("TORCH_HOME", env["TORCH_HOME"])
    network, reason = load_lpips()
    assert reason == "" and isinstance(network, LearnedPerceptualDistance)
    saved = torch.load(tmp_path / "site" / "lpips" / "weights" / "v0.1" / "alex.pth", weights_only=True)
    torch.testing.assert_close(network.linear[4].weight, saved["lin4.model.1.weight"])
    assert "lpips" not in sys.modules                     # its files were read; its code never ran
    assert len(network.linear) == len(TAPPED_CHANNELS)

    alexnet = next((tmp_path / "torch" / "hub" / "checkpoints").iterdir())
    torch.save({"features.0.weight": torch.zeros(1)}, alexnet)
    network, reason = load_lpips()
    assert network is None and "not a valid AlexNet checkpoint" in reason


find_spec = importlib.util.find_spec
