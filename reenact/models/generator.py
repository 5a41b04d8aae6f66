"""The pix2pixHD global generator."""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn

from reenact.models.blend import gained, with_colours_of

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


def check_size(network: str, x: torch.Tensor, multiple: int) -> None:
    """Other sizes would silently come back larger than they went in."""
    height, width = x.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(f"{network} input is {height}x{width}; height and width must be multiples of {multiple}")


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, checkpointing: bool) -> torch.Tensor:
    """The residual blocks, recomputed in the backward pass instead of kept when ``checkpointing``."""
    if checkpointing and torch.is_grad_enabled():
        for block in blocks:
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
        return x
    return blocks(x)


class GlobalGenerator(nn.Module):
    """c7s1-ngf, ``n_downsample`` stride-2 convolutions, ``n_blocks`` residual blocks, mirrored upsampling, c7s1-out, tanh.

    Upsampling is nearest-neighbour then a 3×3 convolution rather than a transposed convolution,
    which avoids checkerboard artefacts. Normalisation is affine InstanceNorm (``affine=True``).
    Input height and width must be divisible by ``2 ** n_downsample``.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 64, n_downsample: int = 4, n_blocks: int = 9):
        super().__init__()
        self.size_multiple = 2 ** n_downsample
        encoder: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7),
                                    nn.InstanceNorm2d(ngf, affine=True), nn.ReLU(True)]
        for level in range(n_downsample):
            c_in, c_out = _channels(ngf, level), _channels(ngf, level + 1)
            encoder += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(True)]
        decoder: list[nn.Module] = []
        for level in reversed(range(n_downsample)):
            c_in, c_out = _channels(ngf, level + 1), _channels(ngf, level)
            decoder += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3),
                        nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(True)]
        decoder += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.encoder = nn.Sequential(*encoder)
        self.blocks = nn.Sequential(*(ResidualBlock(_channels(ngf, n_downsample)) for _ in range(n_blocks)))
        self.decoder = nn.Sequential(*decoder)
        # Recompute the residual blocks in the backward pass instead of keeping their
        # activations: less memory at 512 px and above, for about a third more compute.
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_size("GlobalGenerator", x, self.size_multiple)
        return self.decoder(run_blocks(self.blocks, self.encoder(x), self.gradient_checkpointing))


class WrappedGenerator(nn.Module):
    """A module around a generator (``self.generator``) that passes its gradient checkpointing switch on."""

    generator: nn.Module

    @property
    def gradient_checkpointing(self) -> bool:
        return self.generator.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.generator.gradient_checkpointing = value


class CompositingGenerator(WrappedGenerator):
    """vid2vid's foreground/background split: the generator paints colour and an alpha, and the
    frame is that paint over a fixed background plate, the plate showing where alpha is low. The
    plate, in [-1, 1], is a buffer: the caller sets it, and it travels in the state dict. Outside
    training the alpha is pushed from one half by ``alpha_gain``, in the soft blend's colours
    (reenact/models/blend.py): a person half painted over the plate is a ghost."""

    def __init__(self, generator: nn.Module, resolution: int, alpha_gain: float = 1.0):
        super().__init__()
        self.generator, self.alpha_gain = generator, alpha_gain
        self.register_buffer("plate", torch.zeros(1, 3, resolution, resolution))

    def forward(self, x: torch.Tensor, with_alpha: bool = False) -> torch.Tensor:
        """The frame (B, 3, R, R); ``with_alpha`` appends the alpha as a fourth channel, for its loss."""
        painted = self.generator(x)
        alpha = (painted[:, 3:4] + 1) / 2
        frame = self.over_plate(painted, alpha)
        if not self.training and self.alpha_gain != 1:
            alpha = gained(alpha, self.alpha_gain)
            frame = with_colours_of(self.over_plate(painted, alpha), frame)
        return torch.cat([frame, alpha], dim=1) if with_alpha else frame

    def over_plate(self, painted: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return alpha * painted[:, :3] + (1 - alpha) * self.plate
