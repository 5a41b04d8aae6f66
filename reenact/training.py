"""The translator's training step: sequence generation, discriminators, losses, EMA, schedule.

Used by `reenact train` and `reenact bench train`. Nothing here reads or writes files.

The step never waits for the host: losses come back as tensors on the device, heads are cropped
with gathers, and frames without a head are weighted out rather than dropped, so every batch has
the same shape (one compiled graph, and no data-parallel rank skipping a step the others wait in).
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from reenact.enhancer import crop_patches, enhance_faces
from reenact.config import TrainConfig
from reenact.data import center_proxy, generator_input
from reenact.models import (MultiscaleDiscriminator, feature_matching_loss, foreground_alpha, lsgan_discriminator_loss,
                            lsgan_generator_loss, masked_l1, shift_tolerant_l1, split_outputs)
from reenact.models.neural_texture import drawn, mask_commitment
from reenact.translator import build_discriminators, build_face_enhancer, build_generator

# Learning-rate factors by the share of training done, 0 to 1 (of the steps, or of --minutes).
LR_SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda done: 1.0,
    # pix2pixHD: the full rate for the first half, then linearly down to zero.
    "linear_decay": lambda done: min(1.0, 2.0 * (1.0 - done)),
}
# Graphs each compiled forward may hold: the generator and face enhancer share GlobalGenerator.forward,
# and up to six discriminators share MultiscaleDiscriminator.forward, each trained and frozen.
COMPILED_GRAPHS_LIMIT = 64


@dataclass
class Budget:
    """When training stops: after ``steps``, or once ``seconds`` of wall-clock time are spent (counted
    from ``start``, a perf_counter reading, plus ``spent`` before a resume), whichever comes first.
    Under torchrun the ranks agree on the time every ``agree_every`` steps, so they stop together
    and share one learning rate."""
    steps: int | None
    seconds: float | None = None
    start: float = 0.0
    spent: float = 0.0
    agree_every: int = 10
    elapsed: float = 0.0

    def update(self, step: int, agree: Callable[[float], float]) -> None:
        """Read the clock (at agreement steps only where ``agree`` is a collective)."""
        if self.seconds is not None and step % self.agree_every == 0:
            self.elapsed = agree(self.seconds_spent())

    def seconds_spent(self) -> float:
        """This rank's own clock: the time before a resume plus this run's."""
        return self.spent + time.perf_counter() - self.start

    def done(self, step: int) -> float:
        """The share of training done at ``step``, 0 to 1: of the time when there is a time budget."""
        if self.seconds is not None:
            return min(1.0, self.elapsed / self.seconds)
        return min(1.0, step / max(self.steps or 1, 1))

    def finished(self, step: int) -> bool:
        return (self.steps is not None and step >= self.steps) or (self.seconds is not None and self.done(step) >= 1.0)


@dataclass(frozen=True)
class Acceleration:
    """How the step runs on its device. `train` turns all of it on for CUDA and none of it for CPU;
    tests turn each part on for CPU, so the CUDA paths run somewhere before a GPU sees them."""

    autocast_dtype: torch.dtype | None = None     # mixed precision (bf16); weights stay fp32
    channels_last: bool = False
    fused_adam: bool = False
    compile_backend: str | None = None           # a torch.compile backend, or None for eager


def acceleration_for(config: TrainConfig, device: torch.device) -> Acceleration:
    cuda = device.type == "cuda"
    return Acceleration(autocast_dtype=torch.bfloat16 if cuda and config.mixed_precision else None,
                        channels_last=cuda and config.channels_last, fused_adam=cuda,
                        compile_backend="inductor" if config.compile else None)


def configure_backends(device: torch.device) -> None:
    """cuDNN picks the fastest convolution per shape once (every step has the same shapes), and
    whatever runs in fp32 (mixed precision off, the losses) uses TF32 tensor cores, said here
    rather than left to torch's defaults, which differ between convolutions and matmuls."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True


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
    proxy_channels: int        # the drawn skeleton's: inference hands the enhancer only those


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
    acceleration: Acceleration
    face: FaceEnhancer | None = None
    done: Callable[[int], float] = lambda step: 1.0    # the share of training done after a step
    padding: torch.Tensor | None = None                # (R, R) bool: past the target's video (Mode.padding)

    @property
    def share_done(self) -> float:
        return self.done(self.schedulers[0].last_epoch)

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


def local(module: nn.Module) -> nn.Module:
    """The module without DistributedDataParallel (compiled still): judging the generator's frames
    with it computes and all-reduces no discriminator gradients."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def build_networks(arguments: dict, perceptual: nn.Module | None, config: TrainConfig, device: torch.device,
                   wrap: Callable[[nn.Module], nn.Module] = lambda m: m,
                   acceleration: Acceleration | None = None, done: Callable[[int], float] | None = None) -> Networks:
    """The networks, each compiled and then wrapped (DistributedDataParallel under torchrun). ``done``
    maps the step to the share of training done, which sets the learning rate (default: of the steps)."""
    acceleration = acceleration or acceleration_for(config, device)
    prepare = lambda module: wrap(compile_module(place(module, device, acceleration), acceleration))
    generator = place(build_generator(arguments), device, acceleration)
    generator.gradient_checkpointing = bool(config.gradient_checkpointing)
    ema = copy.deepcopy(generator).requires_grad_(False).eval() if config.ema else None
    generator = wrap(compile_module(generator, acceleration))
    image_discriminator, temporal = build_discriminators(arguments)
    image_discriminator = prepare(image_discriminator)
    temporal = nn.ModuleList(prepare(d) for d in temporal)
    perceptual = compile_module(place(perceptual, device, acceleration), acceleration) if perceptual is not None else None
    adam = lambda parameters: torch.optim.Adam(parameters, lr=config.learning_rate, betas=(0.5, 0.999),
                                               fused=acceleration.fused_adam or None)
    generator_optimizer = adam(generator.parameters())
    discriminator_optimizer = adam([*image_discriminator.parameters(), *temporal.parameters()])
    schedule, done = LR_SCHEDULES[config.lr_schedule], done or Budget(config.steps).done
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda step: schedule(done(step)))
                  for o in (generator_optimizer, discriminator_optimizer)]
    networks = Networks(generator, ema, image_discriminator, temporal, perceptual, generator_optimizer,
                        discriminator_optimizer, schedulers, acceleration, done=done)
    enhancer = build_face_enhancer(arguments)
    if enhancer is not None:
        enhancer = prepare(enhancer)
        discriminator = prepare(MultiscaleDiscriminator(**arguments["face_discriminator"]))
        networks.face = FaceEnhancer(enhancer, discriminator, adam(enhancer.parameters()), adam(discriminator.parameters()),
                                     arguments["face_crop"]["size"], arguments["face_enhancer"]["in_channels"] - 3)
    return networks


def place(module: nn.Module, device: torch.device, acceleration: Acceleration) -> nn.Module:
    memory_format = torch.channels_last if acceleration.channels_last else torch.preserve_format
    return module.to(device, memory_format=memory_format)


def compile_module(module: nn.Module, acceleration: Acceleration) -> nn.Module:
    """Each module compiled on its own with static shapes: every training batch has the same shape."""
    if acceleration.compile_backend is None:
        return module
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, COMPILED_GRAPHS_LIMIT)
    return torch.compile(module, backend=acceleration.compile_backend, dynamic=False)


def compiled_graphs() -> int:
    """Graphs torch.compile has made in this process so far; a rise after the first step is a recompile."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def graph_breaks() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


def autocast(acceleration: Acceleration, device: torch.device):
    if acceleration.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=acceleration.autocast_dtype)


@contextlib.contextmanager
def frozen(modules: Iterable[nn.Module]):
    """Parameters that take no gradient while the generator learns to fool them."""
    modules = list(modules)
    for module in modules:
        module.requires_grad_(False)
    try:
        yield
    finally:
        for module in modules:
            module.requires_grad_(True)


def generate_sequence(generator: nn.Module, proxies: torch.Tensor, first_real: torch.Tensor | None = None,
                      real_share: float = 0.0, inputs: list | None = None, **extra_channels: bool) -> list[torch.Tensor]:
    """Frames 0..L-1 of (B, L, C·w, R, R) proxy windows, each fed the previous output (zeros first).
    With ``first_real`` (B, 3, R, R), that share of the sequences feed frame 1 the real frame 0
    instead of the generated one. ``extra_channels`` (see ``losses_on_extra_channels``) asks the
    generator to append, after each frame's RGB, what a loss supervises. Each frame's generator
    input is appended to ``inputs`` when it is given."""
    outputs, previous = [], None
    for index in range(proxies.shape[1]):
        window = proxies[:, index]
        if previous is None:
            previous = window.new_zeros(window.shape[0], 3, *window.shape[-2:])
        model_input = generator_input(window, previous)
        output = generator(model_input, **extra_channels)
        if inputs is not None:
            inputs.append(model_input)
        previous = output[:, :3]
        if index == 0 and first_real is not None and real_share > 0:
            previous = share_of_real(previous, first_real, real_share)
        outputs.append(output)
    return outputs


def share_of_real(generated: torch.Tensor, real: torch.Tensor, share: float) -> torch.Tensor:
    """Per sample, ``real`` with probability ``share``, else ``generated``.

    Frame 0 is painted from no previous frame, so without real ones, most previous frames the
    generator sees in training are poor, and it learns to paint each frame afresh; outside
    training its previous frame is a good one, and its detail could carry on."""
    chosen = torch.rand(real.shape[0], device=real.device) < share
    return torch.where(chosen[:, None, None, None], real.to(generated.dtype), generated)


def temporal_clips(centers: torch.Tensor, frames: torch.Tensor, clip_frames: int, scales: int) -> list[torch.Tensor]:
    """Per time scale k = 1, 2, 4…: the last ``clip_frames`` frames k apart, proxies then frames on channels."""
    length = frames.shape[1]
    clips = []
    for scale in range(scales):
        stride = 2 ** scale
        picks = [length - 1 - stride * i for i in reversed(range(clip_frames))]
        clips.append(torch.cat([centers[:, picks].flatten(1, 2), frames[:, picks].flatten(1, 2)], dim=1))
    return clips


def train_step(networks: Networks, batch: dict[str, torch.Tensor], config: TrainConfig) -> dict[str, torch.Tensor]:
    """One update of the discriminators, the generator, the EMA and the face GAN; the losses stay on the device."""
    device = batch["frames"].device
    extra_channels = losses_on_extra_channels(networks, config)
    inputs = []
    with autocast(networks.acceleration, device):
        sequence = torch.stack(generate_sequence(networks.generator, batch["proxies"], batch["frames"][:, 0],
                                                 config.real_previous_share, inputs, **extra_channels), dim=1)
        generated = sequence[:, :, :3]                                                       # (B, L, 3, R, R)
        if networks.padding is not None:
            # The losses see black there, as the footage is and as inference shows it: nothing asks the
            # generator to paint black, which it learnt to do elsewhere in unseen poses (fashion's walls).
            generated = generated.masked_fill(networks.padding, -1.0)
        centers = torch.stack([center_proxy(batch["proxies"][:, i], config.window) for i in range(generated.shape[1])], 1)
        real_pairs = torch.cat([centers, batch["frames"]], dim=2).flatten(0, 1)
        fake_pairs = torch.cat([centers, generated], dim=2).flatten(0, 1)
        real_clips = temporal_clips(centers, batch["frames"], config.temporal_frames, config.temporal_scales)
        fake_clips = temporal_clips(centers, generated, config.temporal_frames, config.temporal_scales)
        losses_d = discriminator_losses(networks, real_pairs, fake_pairs, real_clips, fake_clips, config)
    networks.discriminator_optimizer.zero_grad(set_to_none=True)
    sum(losses_d.values()).backward()
    networks.discriminator_optimizer.step()
    with frozen([networks.image_discriminator, *networks.temporal_discriminators]), autocast(networks.acceleration, device):
        losses_g = generator_losses(networks, batch, generated, real_pairs, fake_pairs, real_clips, fake_clips, config)
        if "with_alpha" in extra_channels:
            target = foreground_alpha(batch["frames"].float(), unwrap(networks.generator).plate)
            losses_g["g_alpha"] = config.alpha_weight * (sequence[:, :, 3:].float() - target).abs().mean()
        if "with_mask" in extra_channels:
            mask, showable = sequence[:, :, 3:4].float(), sequence[:, :, 4:5].float()
            # Ramped up with training: committed early, a mask sticks (its tanh saturates) before the
            # painting has learnt the open mouth and the gaze, and the face shows the texture's median.
            losses_g["g_mask"] = config.mask_commit_weight * networks.share_done * mask_commitment(mask, showable)
        if config.shift_consistency_weight:
            losses_g["g_shift"] = config.shift_consistency_weight * shift_consistency(
                networks.generator, inputs[-1].detach(), generated[:, -1].detach(), centers[:, -1])
    networks.generator_optimizer.zero_grad(set_to_none=True)
    sum(losses_g.values()).backward()
    networks.generator_optimizer.step()
    for scheduler in networks.schedulers:
        scheduler.step()
    if networks.ema is not None:
        update_ema(networks.ema, unwrap(networks.generator), ema_decay(config.ema_decay, networks.schedulers[0].last_epoch))
    losses_face = face_step(networks.face, batch, generated[:, -1].detach(), centers[:, -1], config, networks.acceleration) \
        if networks.face is not None else {}
    return {name: value.detach() for name, value in {**losses_d, **losses_g, **losses_face}.items()}


def shift_consistency(generator: nn.Module, generator_input: torch.Tensor, output: torch.Tensor,
                      center: torch.Tensor) -> torch.Tensor:
    """L1 between ``output`` (B, 3, R, R) and the generator's output for its input moved by a few
    pixels and moved back, where the proxy ``center`` (B, C, R, R) drew something (grown) away from
    the borders.

    A network that subsamples by strides is equivariant only to shifts by its size multiple: a
    person who moves by a pixel gets newly painted cloth, frame after frame (README, the thirteenth
    stop: the 128 U-Net's painting differed by 0.08-0.10 of full scale under 1-4 pixel shifts).
    Shifts up to one short of the size multiple cover every phase; the plate behind a body does not
    move, so only the drawn region counts."""
    multiple = getattr(unwrap(generator), "size_multiple", 8)
    shift = [int(v) * (1 if torch.rand(()) < 0.5 else -1) for v in torch.randint(1, multiple, (2,))]
    moved = generator(torch.roll(generator_input, shift, dims=(-2, -1)))[:, :3]
    moved_back = torch.roll(moved, [-v for v in shift], dims=(-2, -1))
    grow = max(1, center.shape[-1] // 16)
    region = nn.functional.max_pool2d(drawn(center), 2 * grow + 1, stride=1, padding=grow)
    region = nn.functional.pad(region[..., multiple:-multiple, multiple:-multiple], (multiple,) * 4)
    return masked_l1(moved_back.float(), output.float(), region.float())


def losses_on_extra_channels(networks: Networks, config: TrainConfig) -> dict[str, bool]:
    """What the generator appends to each frame for a loss: the alpha over a background plate, or
    the neural texture's mask (with where the texture may show). Faces have no plate, bodies no texture."""
    generator = unwrap(networks.generator)
    if getattr(generator, "plate", None) is not None and config.alpha_weight > 0:
        return {"with_alpha": True}
    if getattr(generator, "composite", False) and config.mask_commit_weight > 0:
        return {"with_mask": True}
    return {}


def face_step(face: FaceEnhancer, batch: dict[str, torch.Tensor], generated: torch.Tensor, proxies: torch.Tensor,
              config: TrainConfig, acceleration: Acceleration) -> dict[str, torch.Tensor]:
    """One update of the face GAN on the last generated frame's head; frames without a head weigh 0."""
    heads = batch["head_centers"][:, -1]
    centers, seen = heads[:, :2], heads[:, 2]
    real, proxies = batch["frames"][:, -1], proxies[:, :face.proxy_channels]
    with autocast(acceleration, generated.device):
        enhanced, _ = enhance_faces(face.generator, generated, proxies, centers, face.crop_size)
        proxy_crops = crop_patches(proxies, centers, face.crop_size)
        real_crops = crop_patches(real, centers, face.crop_size)
        real_pairs, fake_pairs = torch.cat([proxy_crops, real_crops], 1), torch.cat([proxy_crops, enhanced], 1)
        d_loss = lsgan_discriminator_loss(*judge(face.discriminator, real_pairs, fake_pairs.detach()), seen)
    face.discriminator_optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    face.discriminator_optimizer.step()
    discriminator = local(face.discriminator)
    with frozen([discriminator]), autocast(acceleration, generated.device):
        real_features, fake_features = discriminator(real_pairs), discriminator(fake_pairs)
        g_loss = (lsgan_generator_loss(fake_features, seen)
                  + config.feature_matching_weight * feature_matching_loss(real_features, fake_features, seen)
                  + config.l1_weight * masked_l1(enhanced.float(), real_crops.float(), seen[:, None, None, None].expand_as(enhanced[:, :1])))
    face.generator_optimizer.zero_grad(set_to_none=True)
    g_loss.backward()
    face.generator_optimizer.step()
    return {"face_d": d_loss, "face_g": g_loss}


def judge(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor):
    """(outputs on real, outputs on fake) from one pass over both stacked: half the kernel launches,
    and the same result, since every normalisation in the discriminators is per sample."""
    return split_outputs(discriminator(torch.cat([real, fake])), len(real))


def discriminator_losses(networks: Networks, real_pairs, fake_pairs, real_clips, fake_clips, config: TrainConfig) -> dict:
    losses = {"d_image": lsgan_discriminator_loss(*judge(networks.image_discriminator, real_pairs, fake_pairs.detach()))}
    temporal = [lsgan_discriminator_loss(*judge(d, real, fake.detach()))
                for d, real, fake in zip(networks.temporal_discriminators, real_clips, fake_clips)]
    losses["d_temporal"] = config.temporal_weight * torch.stack(temporal).mean()
    return losses


def generator_losses(networks: Networks, batch, generated, real_pairs, fake_pairs, real_clips, fake_clips,
                     config: TrainConfig) -> dict:
    """Fool both discriminators, match their features, and stay close to the frames."""
    image_discriminator = local(networks.image_discriminator)
    temporal_discriminators = [local(d) for d in networks.temporal_discriminators]
    # Frozen discriminators on real inputs build no graph: no torch.no_grad needed (nor a graph compiled for it).
    real_image = image_discriminator(real_pairs)
    real_temporal = [d(real) for d, real in zip(temporal_discriminators, real_clips)]
    fake_image = image_discriminator(fake_pairs)
    fake_temporal = [d(fake) for d, fake in zip(temporal_discriminators, fake_clips)]
    temporal_gan = torch.stack([lsgan_generator_loss(f) for f in fake_temporal]).mean()
    temporal_fm = torch.stack([feature_matching_loss(r, f) for r, f in zip(real_temporal, fake_temporal)]).mean()
    flat_generated, flat_real = generated.flatten(0, 1), batch["frames"].flatten(0, 1)
    weights = 1 + config.region_weight * batch["regions"].flatten(0, 1) if "regions" in batch else None
    losses = {
        "g_gan": lsgan_generator_loss(fake_image) + config.temporal_weight * temporal_gan,
        "g_fm": config.feature_matching_weight * (feature_matching_loss(real_image, fake_image)
                                                  + config.temporal_weight * temporal_fm),
        "g_l1": config.l1_weight * shift_tolerant_l1(flat_generated.float(), flat_real.float(), weights, config.l1_shift or 0),
    }
    if networks.perceptual is not None:
        losses["g_perceptual"] = config.perceptual_weight * networks.perceptual(flat_generated, flat_real).float()
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
