"""PatchGAN discriminators that also return their features, for feature matching."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """pix2pixHD's N-layer PatchGAN: 4×4 convolutions, LeakyReLU 0.2, InstanceNorm (``affine=False``)
    in every block but the first and the last.

    ``forward`` returns the activations of its ``n_layers + 2`` blocks; the last one is the patch logits (B, 1, h, w).
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True))]
        channels = ndf
        for layer in range(1, n_layers + 1):
            previous, channels = channels, min(channels * 2, 512)
            stride = 2 if layer < n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(previous, channels, 4, stride=stride, padding=2),
                                        nn.InstanceNorm2d(channels), nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Sequential(nn.Conv2d(channels, 1, 4, stride=1, padding=2)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """The same PatchGAN at ``n_scales`` image scales, full resolution first."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, n_scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, ndf, n_layers) for _ in range(n_scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for index, discriminator in enumerate(self.scales):
            if index:
                x = self.downsample(x)
            outputs.append(discriminator(x))
        return outputs
