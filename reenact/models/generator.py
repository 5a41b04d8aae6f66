"""The pix2pixHD global generator."""

from __future__ import annotations

import torch
from torch import nn

MAX_CHANNELS = 512


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _channels(ngf: int, level: int) -> int:
    return min(ngf * 2 ** level, MAX_CHANNELS)


class GlobalGenerator(nn.Module):
    """c7s1-ngf, ``n_downsample`` stride-2 convolutions, ``n_blocks`` residual blocks, mirrored upsampling, c7s1-out, tanh.

    Upsampling is nearest-neighbour then a 3×3 convolution rather than a transposed convolution,
    which avoids checkerboard artefacts. Normalisation is affine InstanceNorm.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 64, n_downsample: int = 4, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7),
                                   nn.InstanceNorm2d(ngf, affine=True), nn.ReLU(True)]
        for level in range(n_downsample):
            c_in, c_out = _channels(ngf, level), _channels(ngf, level + 1)
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(True)]
        layers += [ResidualBlock(_channels(ngf, n_downsample)) for _ in range(n_blocks)]
        for level in reversed(range(n_downsample)):
            c_in, c_out = _channels(ngf, level + 1), _channels(ngf, level)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3),
                       nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
