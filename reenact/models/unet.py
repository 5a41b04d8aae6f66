"""A U-Net translator (pix2pix's skip connections) with a residual bottleneck.

The global generator pushes every pixel through its bottleneck, so detail the input carries (a
neural texture's skin, a warped reference frame's cloth) must be relearnt for every pose. Here
each encoder level's features go straight across to the decoder level of the same size, and the
bottleneck only has to say what moves.
"""

from __future__ import annotations

import torch
from torch import nn

from reenact.models.generator import ResidualBlock, _channels, check_size, run_blocks


def conv_norm_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3, stride=stride), nn.InstanceNorm2d(c_out, affine=True),
            nn.ReLU(True)]


class UNetGenerator(nn.Module):
    """c7s1-ngf; ``n_downsample`` levels of a stride-2 convolution; ``n_blocks`` residual blocks;
    then per level a nearest upsampling and 3×3 convolution whose output is concatenated with the
    encoder's features of that size and fused by another 3×3 convolution; c7s1-out, tanh. The same
    constructor arguments and input rules as :class:`GlobalGenerator`."""

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 64, n_downsample: int = 4, n_blocks: int = 9):
        super().__init__()
        self.size_multiple = 2 ** n_downsample
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7),
                                  nn.InstanceNorm2d(ngf, affine=True), nn.ReLU(True))
        self.down = nn.ModuleList(nn.Sequential(*conv_norm_relu(_channels(ngf, level), _channels(ngf, level + 1), stride=2))
                                  for level in range(n_downsample))
        self.blocks = nn.Sequential(*(ResidualBlock(_channels(ngf, n_downsample)) for _ in range(n_blocks)))
        self.up = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                              *conv_norm_relu(_channels(ngf, level + 1), _channels(ngf, level)))
                                for level in reversed(range(n_downsample)))
        self.fuse = nn.ModuleList(nn.Sequential(*conv_norm_relu(2 * _channels(ngf, level), _channels(ngf, level)))
                                  for level in reversed(range(n_downsample)))
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh())
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_size("UNetGenerator", x, self.size_multiple)
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = run_blocks(self.blocks, skips.pop(), self.gradient_checkpointing)
        for up, fuse in zip(self.up, self.fuse):
            x = fuse(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
