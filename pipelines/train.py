"""`reenact train`: subject folder → checkpoint of a windowed pix2pixHD/vid2vid translator.

One readable loop: each step generates the pair (t-1, t) with the Everybody Dance Now
two-frame scheme, updates an image and a temporal discriminator, then the generator.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from reenact import checkpoint as ckpt
from reenact.config import TrainConfig, config_dict
from reenact.data import SubjectClip, center_proxy, generator_input, to_uint8
from reenact.face.regions import face_regions
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.files import atomic_path, write_json
from reenact.models import (VGGPerceptualLoss, feature_matching_loss, load_vgg19_features_state,
                            lsgan_discriminator_loss, lsgan_generator_loss, masked_l1)
from reenact.presets import ModelPreset, get_preset
from reenact.progress import info, progress_task, warn
from reenact.subject import Subject
from reenact.body import retarget as body_retarget
from reenact.face import retarget as face_retarget
from reenact.translator import build_discriminators, build_generator, model_arguments

SAMPLE_ROWS = 4


@dataclass
class Networks:
    generator: torch.nn.Module
    image_discriminator: torch.nn.Module
    temporal_discriminator: torch.nn.Module
    perceptual: torch.nn.Module | None
    generator_optimizer: torch.optim.Optimizer
    discriminator_optimizer: torch.optim.Optimizer


def run(config: TrainConfig) -> Path:
    # 1. Settings: the subject, the preset with its defaults filled in, the device, output paths.
    subject = Subject.load(config.subject)
    preset = get_preset(config.preset)
    config = fill_preset_defaults(config, preset)
    device = resolve_device(config.device)
    out = Path(config.out) if config.out else Path.cwd() / f"{subject.root.resolve().name}.ckpt"
    run_folder = out.with_suffix(".train")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    # 2. Data: frames and proxies at the model resolution; the last frames are held out.
    clip = load_subject_clip(subject, preset, config).to(device)
    # 3. Networks, losses and optimizers; continue from `out` when resuming.
    arguments = model_arguments(preset, config.window, clip.proxy_channels)
    perceptual_state, perceptual_reason = load_vgg19_features_state()
    if perceptual_state is None:
        warn(f"training without the VGG perceptual loss: {perceptual_reason}")
    networks = build_networks(arguments, perceptual_state, config, device)
    rng = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    start_step = resume(out, networks, arguments, rng, subject) if config.resume else 0
    # 4. The loop, with progress, TensorBoard scalars, sample grids and periodic checkpoints.
    from torch.utils.tensorboard import SummaryWriter

    run_folder.mkdir(parents=True, exist_ok=True)
    write_json(run_folder / "config.json", {"train": config_dict(config), "preset": preset.to_dict()})
    save = lambda step: save_checkpoint(out, step, networks, arguments, subject, config, preset, perceptual_reason, rng, clip)
    with SummaryWriter(str(run_folder / "tensorboard")) as board:
        train_loop(clip, networks, config, rng, start_step, board, run_folder, save)
    # 5. The final checkpoint, with validation figures on the held-out frames.
    info(f"wrote {out} (step {config.steps}); samples and TensorBoard logs in {run_folder}/")
    return out


def fill_preset_defaults(config: TrainConfig, preset: ModelPreset) -> TrainConfig:
    return replace(config, steps=config.steps or preset.steps, batch_size=config.batch_size or preset.batch_size,
                   window=config.window or preset.window, sample_every=config.sample_every or preset.sample_every)


def load_subject_clip(subject: Subject, preset: ModelPreset, config: TrainConfig) -> SubjectClip:
    frame_count = len(subject.tracks["valid"])
    if frame_count < 8:
        raise ReenactError(f"{subject.root}: too few frames to train on ({frame_count}; at least 8 needed)")
    regions = face_regions(subject.tracks, subject.resolution) if subject.mode == "face" else None
    clip = SubjectClip(subject.frames(), subject.proxies(), subject.tracks["valid"], preset.resolution,
                       config.window, config.validation_fraction, regions)
    if len(clip.train_centers) < 2:
        raise ReenactError(f"{subject.root}: too few frames with a person to train on ({len(clip.train_centers)} pairs)")
    info(f"training on {clip.train_end} frames, holding out {len(clip.validation_centers)} "
         f"at {preset.resolution}px (preset {config.preset})")
    return clip


def build_networks(arguments: dict, perceptual_state: dict | None, config: TrainConfig, device: torch.device) -> Networks:
    generator = build_generator(arguments).to(device)
    image_discriminator, temporal_discriminator = (d.to(device) for d in build_discriminators(arguments))
    perceptual = VGGPerceptualLoss(perceptual_state).to(device) if perceptual_state is not None else None
    betas = (0.5, 0.999)
    discriminator_parameters = [*image_discriminator.parameters(), *temporal_discriminator.parameters()]
    return Networks(generator, image_discriminator, temporal_discriminator, perceptual,
                    torch.optim.Adam(generator.parameters(), lr=config.learning_rate, betas=betas),
                    torch.optim.Adam(discriminator_parameters, lr=config.learning_rate, betas=betas))


def train_loop(clip: SubjectClip, networks: Networks, config: TrainConfig, rng: torch.Generator,
               start_step: int, board, run_folder: Path, save) -> None:
    step = start_step
    with progress_task("training", config.steps) as task:
        task.progress.update(task.task_id, completed=start_step)
        try:
            while step < config.steps:
                losses = train_step(networks, clip.pair_batch(rng, config.batch_size), config)
                step += 1
                task.advance(status=" ".join(f"{k} {v:.3f}" for k, v in losses.items()))
                for name, value in losses.items():
                    board.add_scalar(f"loss/{name}", value, step)
                if step % config.sample_every == 0 or step == config.steps:
                    write_sample_grid(networks.generator, clip, run_folder / "samples" / f"step_{step:07d}.png")
                if step % config.checkpoint_every == 0 and step != config.steps:
                    save(step)
        except KeyboardInterrupt:
            save(step)
            raise ReenactError(f"interrupted at step {step}; saved it, continue with --resume") from None
    info(f"{config.steps - start_step} steps in {task.elapsed:.1f} s ({(config.steps - start_step) / task.elapsed:.2f} it/s)")
    save(step)


def generate_pair(generator: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-frame scheme: t-1 from a blank previous frame, then t from the generated t-1."""
    blank = torch.zeros_like(batch["frames_previous"])
    generated_previous = generator(generator_input(batch["proxies_previous"], blank))
    generated = generator(generator_input(batch["proxies"], generated_previous))
    return generated_previous, generated


def discriminator_inputs(batch: dict[str, torch.Tensor], previous: torch.Tensor, current: torch.Tensor,
                         window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image pairs (proxy, frame) for both frames, and the temporal clip (proxies t-1, t, frames t-1, t)."""
    proxy_previous, proxy = center_proxy(batch["proxies_previous"], window), center_proxy(batch["proxies"], window)
    image_pairs = torch.cat([torch.cat([proxy_previous, previous], 1), torch.cat([proxy, current], 1)], 0)
    temporal = torch.cat([proxy_previous, proxy, previous, current], 1)
    return image_pairs, temporal


def train_step(networks: Networks, batch: dict[str, torch.Tensor], config: TrainConfig) -> dict[str, float]:
    generated_previous, generated = generate_pair(networks.generator, batch)
    real_image, real_temporal = discriminator_inputs(batch, batch["frames_previous"], batch["frames"], config.window)
    fake_image, fake_temporal = discriminator_inputs(batch, generated_previous, generated, config.window)
    # Discriminators see detached fakes.
    d_image = lsgan_discriminator_loss(networks.image_discriminator(real_image), networks.image_discriminator(fake_image.detach()))
    d_temporal = lsgan_discriminator_loss(networks.temporal_discriminator(real_temporal),
                                          networks.temporal_discriminator(fake_temporal.detach()))
    networks.discriminator_optimizer.zero_grad(set_to_none=True)
    (d_image + config.temporal_weight * d_temporal).backward()
    networks.discriminator_optimizer.step()
    # Generator: fool both discriminators, match their features, and stay close to the frames.
    with torch.no_grad():
        real_image_features = networks.image_discriminator(real_image)
        real_temporal_features = networks.temporal_discriminator(real_temporal)
    fake_image_features = networks.image_discriminator(fake_image)
    fake_temporal_features = networks.temporal_discriminator(fake_temporal)
    generated_both = torch.cat([generated_previous, generated])
    real_both = torch.cat([batch["frames_previous"], batch["frames"]])
    losses = {
        "g_gan": lsgan_generator_loss(fake_image_features) + config.temporal_weight * lsgan_generator_loss(fake_temporal_features),
        "g_fm": config.feature_matching_weight * (feature_matching_loss(real_image_features, fake_image_features)
                                                  + config.temporal_weight * feature_matching_loss(real_temporal_features, fake_temporal_features)),
        "g_l1": config.l1_weight * masked_l1(generated_both, real_both, loss_weights(batch, config)),
    }
    if networks.perceptual is not None:
        losses["g_vgg"] = config.perceptual_weight * networks.perceptual(generated_both, real_both)
    networks.generator_optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    networks.generator_optimizer.step()
    return {"d": (d_image + d_temporal).item(), **{k: v.item() for k, v in losses.items()}}


def loss_weights(batch: dict[str, torch.Tensor], config: TrainConfig) -> torch.Tensor | None:
    """1 everywhere, plus ``region_weight`` on the mouth and eyes when the subject has regions."""
    return 1 + config.region_weight * batch["regions"] if "regions" in batch else None


@torch.no_grad()
def write_sample_grid(generator: torch.nn.Module, clip: SubjectClip, path: Path) -> None:
    """Rows of held-out frames: proxy | generated | real."""
    generator.eval()
    batch = clip.validation_batch(SAMPLE_ROWS)
    _, generated = generate_pair(generator, batch)
    generator.train()
    columns = [center_proxy(batch["proxies"], clip.window)[:, :3], generated, batch["frames"]]
    grid = torch.cat([torch.cat(list(to_uint8(c)), dim=1) for c in columns], dim=2)  # (3, rows*R, 3*R)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), grid.permute(1, 2, 0).cpu().numpy()[..., ::-1])


@torch.no_grad()
def validation_metrics(generator: torch.nn.Module, clip: SubjectClip) -> dict[str, float]:
    """L1 and PSNR of held-out frames generated with the two-frame scheme."""
    generator.eval()
    batch = clip.validation_batch(min(16, len(clip.validation_centers)))
    _, generated = generate_pair(generator, batch)
    generator.train()
    error = (generated - batch["frames"]) / 2  # in [0, 1] units
    mse = error.pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return {"l1": float(error.abs().mean()), "psnr": float((10 * torch.log10(1 / mse)).mean())}


def save_checkpoint(out: Path, step: int, networks: Networks, arguments: dict, subject: Subject, config: TrainConfig,
                    preset: ModelPreset, perceptual_reason: str, rng: torch.Generator, clip: SubjectClip) -> None:
    metrics = validation_metrics(networks.generator, clip)
    ckpt.save_checkpoint(out, {
        "format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "mode": subject.mode,
        "step": step, "world_size": 1, "config": config_dict(config), "preset": preset.to_dict(),
        "resolution": preset.resolution, "window": config.window, "model": arguments,
        "generator": networks.generator.state_dict(),
        "image_discriminator": networks.image_discriminator.state_dict(),
        "temporal_discriminator": networks.temporal_discriminator.state_dict(),
        "optimizers": {"generator": networks.generator_optimizer.state_dict(),
                       "discriminator": networks.discriminator_optimizer.state_dict()},
        "target": target_description(subject),
        "perceptual_loss": {"enabled": networks.perceptual is not None, "reason": perceptual_reason},
        "validation": metrics, "rng": {"sampler": rng.get_state(), "torch": torch.get_rng_state()},
    })


TARGET_FIELDS = {"body": body_retarget.target_fields, "face": face_retarget.target_fields}


def target_description(subject: Subject) -> dict:
    """What transfer needs from the target subject, so the checkpoint works without its folder."""
    meta = subject.meta
    return {"subject": str(subject.root.resolve()), "subject_resolution": subject.resolution, "fps": meta["fps"],
            "source_size": [meta["source"]["width"], meta["source"]["height"]], "track_config": meta["config"],
            **TARGET_FIELDS[subject.mode](subject)}


def resume(out: Path, networks: Networks, networks_arguments: dict, rng: torch.Generator, subject: Subject) -> int:
    if not out.exists():
        warn(f"--resume: {out} does not exist yet, starting from step 0")
        return 0
    state = ckpt.load_checkpoint(out, mode=subject.mode)
    if state["model"] != networks_arguments:
        raise ReenactError(f"{out}: trained with other network settings (preset {state['config']['preset']}, "
                           f"window {state['window']}); resume with the same --preset and --window")
    networks.generator.load_state_dict(state["generator"])
    networks.image_discriminator.load_state_dict(state["image_discriminator"])
    networks.temporal_discriminator.load_state_dict(state["temporal_discriminator"])
    networks.generator_optimizer.load_state_dict(state["optimizers"]["generator"])
    networks.discriminator_optimizer.load_state_dict(state["optimizers"]["discriminator"])
    rng.set_state(state["rng"]["sampler"])
    torch.set_rng_state(state["rng"]["torch"])
    info(f"resumed from {out} at step {state['step']}")
    return int(state["step"])
