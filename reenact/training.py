"""The translator's training step: sequence generation, discriminators, losses, EMA, schedule.

Used by `reenact train` and `reenact bench train`. Nothing here reads or writes files.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from reenact.body.head import crop_patches
from reenact.config import TrainConfig
from reenact.data import center_proxy, generator_input
from reenact.models import (VGGPerceptualLoss, feature_matching_loss, lsgan_discriminator_loss,
                            lsgan_generator_loss, masked_l1)
from reenact.models import MultiscaleDiscriminator
from reenact.translator import build_discriminators, build_face_enhancer, build_generator

LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda step, total: 1.0,
    # pix2pixHD: the full rate for the first half, then linearly down to zero.
    "linear_decay": lambda step, total: min(1.0, 2.0 * (1.0 - step / max(total, 1))),
}


def sequence_length(config: TrainConfig) -> int:
    """Frames generated per sample: enough for a temporal clip at the coarsest time scale."""
    return (config.temporal_frames - 1) * 2 ** (config.temporal_scales - 1) + 1


@dataclass
class FaceEnhancer:
    """Everybody Dance Now's face GAN, trained alongside the main generator on head crops."""

    generator: nn.Module
    discriminator: nn.Module
    generator_optimizer: torch.optim.Optimizer
    discriminator_optimizer: torch.optim.Optimizer
    crop_size: int


@dataclass
class Networks:
    generator: nn.Module
    ema: nn.Module | None
    image_discriminator: nn.Module
    temporal_discriminators: nn.ModuleList
    perceptual: nn.Module | None
    generator_optimizer: torch.optim.Optimizer
    discriminator_optimizer: torch.optim.Optimizer
    schedulers: list[torch.optim.lr_scheduler.LambdaLR]
    face: FaceEnhancer | None = None

    @property
    def bare_temporal_discriminators(self) -> nn.ModuleList:
        """The temporal discriminators without wrappers, for their state dicts."""
        return nn.ModuleList(unwrap(d) for d in self.temporal_discriminators)

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples, validation and inference: the EMA when there is one."""
        return self.ema if self.ema is not None else unwrap(self.generator)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel or torch.compile wrappers."""
    module = getattr(module, "module", module)
    return getattr(module, "_orig_mod", module)


def build_networks(arguments: dict, perceptual_state: dict | None, config: TrainConfig, device: torch.device,
                   wrap: Callable[[nn.Module], nn.Module] = lambda m: m) -> Networks:
    memory_format = torch.channels_last if uses_channels_last(config, device) else torch.preserve_format
    generator = build_generator(arguments).to(device, memory_format=memory_format)
    generator.gradient_checkpointing = config.gradient_checkpointing
    image_discriminator, temporal = build_discriminators(arguments)
    image_discriminator = image_discriminator.to(device, memory_format=memory_format)
    temporal = temporal.to(device, memory_format=memory_format)
    ema = copy.deepcopy(generator).requires_grad_(False).eval() if config.ema else None
    perceptual = VGGPerceptualLoss(perceptual_state).to(device) if perceptual_state is not None else None
    generator, image_discriminator = (compile_if(config, wrap(m)) for m in (generator, image_discriminator))
    temporal = nn.ModuleList(compile_if(config, wrap(d)) for d in temporal)
    fused = {"fused": True} if device.type == "cuda" else {}
    generator_optimizer = torch.optim.Adam(generator.parameters(), lr=config.learning_rate, betas=(0.5, 0.999), **fused)
    discriminator_optimizer = torch.optim.Adam([*image_discriminator.parameters(), *temporal.parameters()],
                                               lr=config.learning_rate, betas=(0.5, 0.999), **fused)
    schedule = LR_SCHEDULES[config.lr_schedule]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda step: schedule(step, config.steps))
                  for o in (generator_optimizer, discriminator_optimizer)]
    networks = Networks(generator, ema, image_discriminator, temporal, perceptual, generator_optimizer,
                        discriminator_optimizer, schedulers)
    enhancer = build_face_enhancer(arguments)
    if enhancer is not None:
        enhancer = compile_if(config, wrap(enhancer.to(device)))
        discriminator = compile_if(config, wrap(MultiscaleDiscriminator(**arguments["face_discriminator"]).to(device)))
        networks.face = FaceEnhancer(enhancer, discriminator,
                                     torch.optim.Adam(enhancer.parameters(), lr=config.learning_rate, betas=(0.5, 0.999), **fused),
                                     torch.optim.Adam(discriminator.parameters(), lr=config.learning_rate, betas=(0.5, 0.999), **fused),
                                     arguments["face_crop"]["size"])
    return networks


def compile_if(config: TrainConfig, module: nn.Module) -> nn.Module:
    return torch.compile(module) if config.compile else module


def uses_channels_last(config: TrainConfig, device: torch.device) -> bool:
    return config.channels_last and device.type == "cuda"


def autocast(config: TrainConfig, device: torch.device):
    """bf16 autocast on CUDA when mixed precision is on; full precision elsewhere."""
    if config.mixed_precision and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def generate_sequence(generator: nn.Module, proxies: torch.Tensor) -> list[torch.Tensor]:
    """Frames 0..L-1 of (B, L, C·w, R, R) proxy windows, each fed the previous output (zeros first)."""
    outputs, previous = [], None
    for index in range(proxies.shape[1]):
        window = proxies[:, index]
        if previous is None:
            previous = window.new_zeros(window.shape[0], 3, *window.shape[-2:])
        previous = generator(generator_input(window, previous))
        outputs.append(previous)
    return outputs


def temporal_clips(centers: torch.Tensor, frames: torch.Tensor, clip_frames: int, scales: int) -> list[torch.Tensor]:
    """Per time scale k = 1, 2, 4…: the last ``clip_frames`` frames k apart, proxies then frames on channels."""
    length = frames.shape[1]
    clips = []
    for scale in range(scales):
        stride = 2 ** scale
        picks = [length - 1 - stride * i for i in reversed(range(clip_frames))]
        clips.append(torch.cat([centers[:, picks].flatten(1, 2), frames[:, picks].flatten(1, 2)], dim=1))
    return clips


def train_step(networks: Networks, batch: dict[str, torch.Tensor], config: TrainConfig, device: torch.device) -> dict[str, float]:
    with autocast(config, device):
        generated = torch.stack(generate_sequence(networks.generator, batch["proxies"]), dim=1)   # (B, L, 3, R, R)
        centers = torch.stack([center_proxy(batch["proxies"][:, i], config.window) for i in range(generated.shape[1])], 1)
        real_pairs = torch.cat([centers, batch["frames"]], dim=2).flatten(0, 1)
        fake_pairs = torch.cat([centers, generated], dim=2).flatten(0, 1)
        real_clips = temporal_clips(centers, batch["frames"], config.temporal_frames, config.temporal_scales)
        fake_clips = temporal_clips(centers, generated, config.temporal_frames, config.temporal_scales)
        losses_d = discriminator_losses(networks, real_pairs, fake_pairs, real_clips, fake_clips, config)
    networks.discriminator_optimizer.zero_grad(set_to_none=True)
    sum(losses_d.values()).backward()
    networks.discriminator_optimizer.step()
    with autocast(config, device):
        losses_g = generator_losses(networks, batch, generated, real_pairs, fake_pairs, real_clips, fake_clips, config)
    networks.generator_optimizer.zero_grad(set_to_none=True)
    sum(losses_g.values()).backward()
    networks.generator_optimizer.step()
    for scheduler in networks.schedulers:
        scheduler.step()
    if networks.ema is not None:
        update_ema(networks.ema, unwrap(networks.generator), ema_decay(config.ema_decay, networks.schedulers[0].last_epoch))
    losses_face = face_step(networks.face, batch, generated[:, -1].detach(), centers[:, -1], config, device) \
        if networks.face is not None else {}
    return {name: value.item() for name, value in {**losses_d, **losses_g, **losses_face}.items()}


def enhance_faces(enhancer: nn.Module, frames: torch.Tensor, proxies: torch.Tensor, centers: torch.Tensor,
                  size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(enhanced head crops, the crops they started from): the crop plus a predicted residual."""
    crops = crop_patches(frames, centers, size)
    residual = enhancer(torch.cat([crop_patches(proxies, centers, size), crops], dim=1))
    return (crops + residual).clamp(-1, 1), crops


def face_step(face: FaceEnhancer, batch: dict[str, torch.Tensor], generated: torch.Tensor, proxies: torch.Tensor,
              config: TrainConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """One update of the face GAN on the last generated frame's head (frames without a head are skipped)."""
    heads = batch["head_centers"][:, -1]
    keep = heads[:, 2] > 0.5
    if not keep.any():
        return {}
    centers, generated, proxies, real = heads[keep, :2], generated[keep], proxies[keep], batch["frames"][keep, -1]
    with autocast(config, device):
        enhanced, _ = enhance_faces(face.generator, generated, proxies, centers, face.crop_size)
        proxy_crops = crop_patches(proxies, centers, face.crop_size)
        real_crops = crop_patches(real, centers, face.crop_size)
        real_pairs, fake_pairs = torch.cat([proxy_crops, real_crops], 1), torch.cat([proxy_crops, enhanced], 1)
        d_loss = lsgan_discriminator_loss(face.discriminator(real_pairs), face.discriminator(fake_pairs.detach()))
    face.discriminator_optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    face.discriminator_optimizer.step()
    with autocast(config, device):
        with torch.no_grad():
            real_features = face.discriminator(real_pairs)
        fake_features = face.discriminator(fake_pairs)
        g_loss = (lsgan_generator_loss(fake_features) + config.feature_matching_weight * feature_matching_loss(real_features, fake_features)
                  + config.l1_weight * masked_l1(enhanced.float(), real_crops))
    face.generator_optimizer.zero_grad(set_to_none=True)
    g_loss.backward()
    face.generator_optimizer.step()
    return {"face_d": d_loss, "face_g": g_loss}


def discriminator_losses(networks: Networks, real_pairs, fake_pairs, real_clips, fake_clips, config: TrainConfig) -> dict:
    losses = {"d_image": lsgan_discriminator_loss(networks.image_discriminator(real_pairs),
                                                  networks.image_discriminator(fake_pairs.detach()))}
    temporal = [lsgan_discriminator_loss(d(real), d(fake.detach()))
                for d, real, fake in zip(networks.temporal_discriminators, real_clips, fake_clips)]
    losses["d_temporal"] = config.temporal_weight * torch.stack(temporal).mean()
    return losses


def generator_losses(networks: Networks, batch, generated, real_pairs, fake_pairs, real_clips, fake_clips,
                     config: TrainConfig) -> dict:
    """Fool both discriminators, match their features, and stay close to the frames."""
    with torch.no_grad():
        real_image = networks.image_discriminator(real_pairs)
        real_temporal = [d(real) for d, real in zip(networks.temporal_discriminators, real_clips)]
    fake_image = networks.image_discriminator(fake_pairs)
    fake_temporal = [d(fake) for d, fake in zip(networks.temporal_discriminators, fake_clips)]
    temporal_gan = torch.stack([lsgan_generator_loss(f) for f in fake_temporal]).mean()
    temporal_fm = torch.stack([feature_matching_loss(r, f) for r, f in zip(real_temporal, fake_temporal)]).mean()
    flat_generated, flat_real = generated.flatten(0, 1), batch["frames"].flatten(0, 1)
    weights = 1 + config.region_weight * batch["regions"].flatten(0, 1) if "regions" in batch else None
    losses = {
        "g_gan": lsgan_generator_loss(fake_image) + config.temporal_weight * temporal_gan,
        "g_fm": config.feature_matching_weight * (feature_matching_loss(real_image, fake_image)
                                                  + config.temporal_weight * temporal_fm),
        "g_l1": config.l1_weight * masked_l1(flat_generated.float(), flat_real, weights),
    }
    if networks.perceptual is not None:
        losses["g_vgg"] = config.perceptual_weight * networks.perceptual(flat_generated.float(), flat_real)
    return losses


def ema_decay(decay: float, step: int) -> float:
    """The decay, warmed up over the first steps so the average isn't mostly the random initialisation."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, decay: float) -> None:
    ema_parameters, parameters = list(ema.parameters()), list(generator.parameters())
    torch._foreach_lerp_(ema_parameters, parameters, 1 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), generator.buffers()):
        ema_buffer.copy_(buffer)
