"""Building the translator's networks from the plain arguments a checkpoint stores."""

from __future__ import annotations

from torch import nn

from reenact.models import GlobalGenerator, MultiscaleDiscriminator
from reenact.presets import ModelPreset


def model_arguments(preset: ModelPreset, window: int, proxy_channels: int, temporal_frames: int,
                    temporal_scales: int) -> dict[str, dict[str, int]]:
    """Constructor arguments of each network; saved in the checkpoint so transfer can rebuild them."""
    discriminator = {"ndf": preset.ndf, "n_layers": preset.discriminator_layers, "n_scales": preset.discriminator_scales}
    return {
        "generator": {"in_channels": proxy_channels * window + 3, "out_channels": 3, "ngf": preset.ngf,
                      "n_downsample": preset.n_downsample, "n_blocks": preset.n_blocks},
        # (proxy of t, frame t)
        "image_discriminator": {"in_channels": proxy_channels + 3, **discriminator},
        # (proxies of the clip's frames, then the frames), one per time scale
        "temporal_discriminator": {"in_channels": temporal_frames * (proxy_channels + 3), **discriminator},
        "temporal_scales": {"count": temporal_scales},
    }


def build_generator(arguments: dict) -> nn.Module:
    return GlobalGenerator(**arguments["generator"])


def build_discriminators(arguments: dict) -> tuple[nn.Module, nn.ModuleList]:
    """The image discriminator and one temporal discriminator per time scale."""
    temporal = nn.ModuleList(MultiscaleDiscriminator(**arguments["temporal_discriminator"])
                             for _ in range(arguments["temporal_scales"]["count"]))
    return MultiscaleDiscriminator(**arguments["image_discriminator"]), temporal
