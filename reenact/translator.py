"""Building the translator's networks from the plain arguments a checkpoint stores."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reenact.data import center_proxy, generator_input, to_model_range, to_uint8
from reenact.models import CompositingGenerator, GlobalGenerator, MultiscaleDiscriminator
from reenact.models.neural_texture import NeuralTexture, TexturedGenerator
from reenact.models.reference_composite import ReferenceCompositeGenerator
from reenact.models.unet import UNetGenerator
from reenact.presets import ModelPreset
from reenact.stabilise import TemporalStabiliser


# A checkpoint without "architecture" was written before the U-Net: its generator is the global one.
GENERATORS = {"global": GlobalGenerator, "unet": UNetGenerator}
OLD_GENERATOR = "global"


def model_arguments(preset: ModelPreset, window: int, proxy_channels: int, temporal_frames: int,
                    temporal_scales: int, background: bool = False, generator: str = "unet",
                    neural_texture: bool = False, texture_composite: bool = False, mask_scale: int = 1,
                    mask_gain: float = 1.0, alpha_gain: float = 1.0, reference_composite: bool = False) -> dict[str, dict]:
    """Constructor arguments of each network; saved in the checkpoint so transfer can rebuild them.
    With ``background`` the generator also paints an alpha over a background plate (pushed towards
    0 or 1 by ``alpha_gain`` outside training); with
    ``neural_texture`` it also sees a learned texture sampled at the proxy's texture coordinates,
    and with ``texture_composite`` paints a mask (of ``mask_scale``-pixel blocks, pushed towards 0
    or 1 by ``mask_gain`` outside training) that shows the texture's colours in the frame, on its
    steady texels only; with ``reference_composite`` (bodies, whose proxies end with the reference
    frame warped to the pose) a mask of the same kind that shows the warped reference's pixels."""
    discriminator = {"ndf": preset.ndf, "n_layers": preset.discriminator_layers, "n_scales": preset.discriminator_scales}
    texture = ({"channels": preset.texture_channels, "size": 2 * preset.resolution, "levels": 4,
                "proxy_channels": proxy_channels, "window": window, "composite": texture_composite,
                "mask_scale": mask_scale, "mask_gain": mask_gain, "steady": texture_composite}
               if neural_texture else None)
    reference = ({"proxy_channels": proxy_channels, "window": window, "mask_scale": mask_scale, "mask_gain": mask_gain}
                 if reference_composite else None)
    out_channels = 3 + background + bool(texture and texture_composite) + bool(reference)
    return {
        "architecture": {"generator": generator},
        "generator": {"in_channels": proxy_channels * window + 3 + (texture["channels"] if texture else 0),
                      "out_channels": out_channels, "ngf": preset.ngf,
                      "n_downsample": preset.n_downsample, "n_blocks": preset.n_blocks},
        **({"neural_texture": texture} if texture else {}),
        **({"reference_composite": reference} if reference else {}),
        **({"background": {"resolution": preset.resolution, "alpha_gain": alpha_gain}} if background else {}),
        # (proxy of t, frame t)
        "image_discriminator": {"in_channels": proxy_channels + 3, **discriminator},
        # (proxies of the clip's frames, then the frames), one per time scale
        "temporal_discriminator": {"in_channels": temporal_frames * (proxy_channels + 3), **discriminator},
        "temporal_scales": {"count": temporal_scales},
    }


def face_enhancer_arguments(preset: ModelPreset, proxy_channels: int, crop_size: int) -> dict[str, dict[str, int]]:
    """Everybody Dance Now's face GAN: a small residual generator and a discriminator on head crops."""
    return {
        "face_enhancer": {"in_channels": proxy_channels + 3, "out_channels": 3, "ngf": max(16, preset.ngf // 2),
                          "n_downsample": 2, "n_blocks": 3},
        "face_discriminator": {"in_channels": proxy_channels + 3, "ndf": preset.ndf, "n_layers": 2, "n_scales": 1},
        "face_crop": {"size": crop_size},
    }


def build_face_enhancer(arguments: dict) -> nn.Module | None:
    return GlobalGenerator(**arguments["face_enhancer"]) if "face_enhancer" in arguments else None


def build_generator(arguments: dict) -> nn.Module:
    generator = GENERATORS[arguments.get("architecture", {}).get("generator", OLD_GENERATOR)](**arguments["generator"])
    if "neural_texture" in arguments:
        texture = arguments["neural_texture"]
        generator = TexturedGenerator(generator, NeuralTexture(texture["channels"], texture["size"], texture["levels"],
                                                               texture.get("steady", False)),
                                      texture["proxy_channels"], texture["window"], texture.get("composite", False),
                                      texture.get("mask_scale", 1), texture.get("mask_gain", 1.0))
    if "reference_composite" in arguments:
        generator = ReferenceCompositeGenerator(generator, **arguments["reference_composite"])
    if "background" in arguments:
        background = arguments["background"]
        return CompositingGenerator(generator, background["resolution"], background.get("alpha_gain", 1.0))
    return generator


def build_discriminators(arguments: dict) -> tuple[nn.Module, nn.ModuleList]:
    """The image discriminator and one temporal discriminator per time scale."""
    temporal = nn.ModuleList(MultiscaleDiscriminator(**arguments["temporal_discriminator"])
                             for _ in range(arguments["temporal_scales"]["count"]))
    return MultiscaleDiscriminator(**arguments["image_discriminator"]), temporal


class StreamingTranslator:
    """The generator run one frame at a time, each frame from its proxy window and the previous
    output (Everybody Dance Now's feedback); what `transfer`, `eval` and `live` all call. With a
    ``stabiliser`` the frames shown are stabilised along the proxies' motion; the generator is still
    fed its own previous output, as in training, so ``unstabilised`` (the last frame before the
    stabiliser) is what the same run shows without one."""

    def __init__(self, generator: nn.Module, window: int, feedback: bool = True,
                 stabiliser: TemporalStabiliser | None = None, drawn: slice = slice(None)):
        self.generator, self.window, self.feedback, self.stabiliser = generator, window, feedback, stabiliser
        self.drawn = drawn    # the proxy channels the stabiliser follows
        self.previous: torch.Tensor | None = None
        self.unstabilised: np.ndarray | None = None

    def reset(self) -> None:
        self.previous = None
        if self.stabiliser is not None:
            self.stabiliser.reset()

    @torch.no_grad()
    def __call__(self, proxy_window: torch.Tensor, flow: np.ndarray | None = None) -> np.ndarray:
        """(C·window, R, R) uint8 proxies around t → (R, R, 3) uint8 frame t; ``flow``: the proxy's
        rendered backward flow to the previous frame's, when the drive has one (the stabiliser's)."""
        device = next(self.generator.parameters()).device
        proxies = to_model_range(proxy_window[None].to(device))
        if self.previous is None or not self.feedback:
            self.previous = torch.zeros(1, 3, *proxies.shape[-2:], device=device)
        self.previous = self.generator(generator_input(proxies, self.previous))
        self.unstabilised = to_uint8(self.previous[0]).permute(1, 2, 0).cpu().numpy()
        if self.stabiliser is None:
            return self.unstabilised
        proxy = center_proxy(proxy_window[None], self.window)[0, self.drawn]
        return self.stabiliser(proxy.permute(1, 2, 0).cpu().numpy(), self.unstabilised, flow)
