"""`reenact train`: subject folder → checkpoint of a windowed pix2pixHD/vid2vid translator.

One readable loop: each step generates a short sequence of frames, each from the previous
output (Everybody Dance Now's scheme, extended to vid2vid's clips), updates the image and
temporal discriminators, then the generator. Under torchrun every worker trains on its own
batches and rank 0 alone writes.
"""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from reenact.body.head import face_crop_size
from reenact.config import TrainConfig, config_dict
from reenact.data import SubjectClip, center_proxy, to_model_range, to_uint8, training_frames
from reenact.distributed import World, join_world, leave_world, max_across, wrapper
from reenact.errors import ReenactError
from reenact.files import atomic_path, check_writable, write_json
from reenact.models import PERCEPTUAL_LOSSES, load_vgg19_features_state, perceptual_kind
from reenact.models.neural_texture import NeuralTexture, texture_from_frames
from reenact.modes.base import Mode
from reenact.presets import ModelPreset, choose_preset, get_preset, scaled_learning_rate
from reenact.checkpoint import undertrained_note
from reenact.progress import info, progress_task, warn
from reenact.resume import resume, save_checkpoint, target_description
from reenact.subject import BACKGROUND, Subject
from reenact.training import (Budget, Networks, build_networks, compiled_graphs, configure_backends,
                              generate_sequence, sequence_length, train_step, unwrap)
from reenact.translator import GENERATORS, face_enhancer_arguments, model_arguments

SAMPLE_ROWS = 4


def run(config: TrainConfig) -> Path:
    # 1. Settings: the subject, this worker's device, the preset's defaults for it, output paths.
    started = time.perf_counter()
    subject = Subject.load(config.subject)
    world, device = join_world(config.device)
    config = pick_preset(config, device, subject, world)
    preset = get_preset(config.preset)
    config = fill_preset_defaults(config, preset, device, subject.mode)
    check_resolution(subject, preset, config)
    check_generator(config)
    out = Path(config.out) if config.out else Path.cwd() / f"{subject.root.resolve().name}.ckpt"
    run_folder = out.with_suffix(".train")
    check_writable(out)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        # 2. Data: frames and proxies at the model resolution, on the device; the last frames are held out.
        reference = pick_reference(subject, config)
        clip = load_subject_clip(subject, reference, preset, config, world, pin_memory=device.type == "cuda").to(device)
        # 3. Networks, losses and optimizers; continue from `out` when resuming.
        plate = subject.background() if config.background else None
        arguments = model_arguments(preset, config.window, clip.proxy_channels, config.temporal_frames, config.temporal_scales,
                                    background=plate is not None, generator=config.generator,
                                    neural_texture=config.neural_texture and subject.mode.has_texture_coordinates,
                                    texture_composite=config.texture_composite, mask_scale=config.mask_scale,
                                    mask_gain=config.mask_gain, alpha_gain=config.alpha_gain,
                                    reference_composite=config.reference_composite and reference is not None)
        if clip.head_centers is not None:
            arguments |= face_enhancer_arguments(preset, subject.proxies().shape[-1], face_crop_size(preset.resolution))
        perceptual, perceptual_record = perceptual_loss(config, world)
        # The seed comes first, so it fixes the initial weights too.
        torch.manual_seed(config.seed)
        configure_backends(device)
        budget = Budget(config.steps, config.minutes and config.minutes * 60, started,
                        agree_every=1 if world.size == 1 else config.log_every)
        networks = build_networks(arguments, perceptual, config, device, wrapper(world, device), done=budget.done)
        if "neural_texture" in arguments:
            start_texture(networks, clip, arguments["neural_texture"]["size"], config.steady_spread)
        padding = subject.mode.padding(target_description(subject), preset.resolution)
        networks.padding = torch.from_numpy(padding).to(device) if padding is not None else None
        if plate is not None:
            paint_over(networks, plate, preset.resolution, device)
            if world.is_main:
                info(f"painting the person over the background plate ({subject.root / BACKGROUND})")
        rng = torch.Generator(device=device).manual_seed(config.seed + world.rank)
        start_step = resume(out, networks, arguments, rng, subject, world, config.seed, budget) if config.resume else 0
        # 4. The loop, with progress, TensorBoard scalars, sample grids and periodic checkpoints.
        save = lambda step, stopped: save_checkpoint(out, step, networks, arguments, subject, config, preset,
                                                     perceptual_record, rng, lambda: validation_metrics(networks.sampler, clip),
                                                     world, budget, stopped, reference)
        step = train_loop(clip, networks, config, rng, start_step, budget, run_folder, save, world)
        if world.is_main:
            info(f"wrote {out} (step {step}); samples and logs in {run_folder}/")
            note = undertrained_note({"preset": preset.to_dict(), "step": step, "training_seconds": budget.seconds_spent()}, out)
            if note:
                warn(note)
    finally:
        leave_world(world)
    return out


def paint_over(networks: Networks, plate: np.ndarray, resolution: int, device: torch.device) -> None:
    """Give the generator and its EMA the subject's background plate, at the model's resolution."""
    image = cv2.resize(plate, (resolution, resolution), interpolation=cv2.INTER_AREA)
    tensor = to_model_range(torch.from_numpy(image).permute(2, 0, 1)[None].to(device))
    for generator in (unwrap(networks.generator), networks.ema):
        if generator is not None:
            generator.plate.copy_(tensor)


def pick_reference(subject: Subject, config: TrainConfig):
    """The mode's reference frame of the target, from the frames trained on; None without one."""
    if not config.reference_frame:
        return None
    return subject.mode.choose_reference(subject, training_frames(len(subject.tracks["valid"]), config.validation_fraction))


def start_texture(networks: Networks, clip: SubjectClip, size: int, steady_spread: float) -> None:
    """The neural texture of the generator and its EMA starts as the training frames' colours on the
    mesh, and knows which texels stayed steady over them."""
    train = slice(0, clip.train_end)
    colours, steady = texture_from_frames(clip.frames[train].cpu(), clip.proxies[train].cpu(), size, steady_spread)
    generators = [g for g in (unwrap(networks.generator), networks.ema) if g is not None]
    for texture in (m for generator in generators for m in generator.modules() if isinstance(m, NeuralTexture)):
        texture.initialise(colours.to(texture.levels[0].device), steady.to(texture.levels[0].device))


def perceptual_loss(config: TrainConfig, world: World) -> tuple[torch.nn.Module | None, dict]:
    """The perceptual loss network and its record for the checkpoint: VGG19 where its weights are
    cached, else (for auto) none, with a warning that says how to get VGG19. The random-weight
    network is not auto's fallback: on the fidelity benchmark it did not help (docs/overview.md)."""
    vgg19_state, missing = load_vgg19_features_state()
    kind = perceptual_kind(config.perceptual_loss, vgg19_state is not None)
    if config.perceptual_loss == "auto":
        if missing and world.is_main:
            warn(f"training without a perceptual loss: {missing}; `reenact weights fetch vgg19` downloads it "
                 f"(perceptual_loss = \"random\" in a --config file uses a fixed random-weight network)")
    elif kind == "vgg19" and vgg19_state is None:
        raise ReenactError(f"perceptual_loss = vgg19: {missing}; `reenact weights fetch vgg19` downloads it")
    record = {"enabled": kind != "none", "kind": kind, "seed": config.seed if kind == "random" else None,
              "reason": missing if kind != "vgg19" else ""}
    return PERCEPTUAL_LOSSES[kind](vgg19_state, config.seed), record


def pick_preset(config: TrainConfig, device: torch.device, subject: Subject, world: World) -> TrainConfig:
    """`--preset auto`: the device's preset, or the largest below it that the subject's frames allow."""
    name, why = choose_preset(config.preset, device.type, subject.resolution)
    if why and world.is_main:
        info(f"preset auto: {name} ({why})")
    return replace(config, preset=name)


def fill_preset_defaults(config: TrainConfig, preset: ModelPreset, device: torch.device, mode: Mode) -> TrainConfig:
    if config.minutes is not None and config.minutes <= 0:
        raise ReenactError(f"--minutes must be more than 0, got {config.minutes:g}")
    batch_size = config.batch_size or (preset.gpu_batch_size if device.type == "cuda" else preset.batch_size)
    # With a time budget and no step count, the clock alone ends training.
    steps = config.steps or (None if config.minutes else preset.steps)
    chosen_by_mode = {key: value for key, value in mode.training_defaults().items() if getattr(config, key) is None}
    return replace(config, steps=steps, batch_size=batch_size,
                   learning_rate=config.learning_rate or scaled_learning_rate(batch_size),
                   window=config.window or preset.window, sample_every=config.sample_every or preset.sample_every,
                   temporal_scales=config.temporal_scales or preset.temporal_scales, **chosen_by_mode)


def check_resolution(subject: Subject, preset: ModelPreset, config: TrainConfig) -> None:
    """Training above the stored frames' size would learn upsampled, blurred frames without saying so."""
    if preset.resolution > subject.resolution:
        raise ReenactError(f"{subject.root}: tracked at {subject.resolution}px, but preset {config.preset} trains at "
                           f"{preset.resolution}px; track again with --resolution {preset.resolution} (or use a smaller preset)")


def check_generator(config: TrainConfig) -> None:
    if config.generator not in GENERATORS:
        raise ReenactError(f"unknown generator {config.generator!r} (valid: {', '.join(GENERATORS)})")


def load_subject_clip(subject: Subject, reference, preset: ModelPreset, config: TrainConfig, world: World,
                      pin_memory: bool = False) -> SubjectClip:
    """The frames and what conditions them (the proxies, and the ``reference`` warped to each pose)."""
    frame_count = len(subject.tracks["valid"])
    if frame_count < 8:
        raise ReenactError(f"{subject.root}: too few frames to train on ({frame_count}; at least 8 needed)")
    regions = loss_regions(subject, config)
    heads = subject.mode.enhancer_heads(subject, preset.resolution) if config.face_enhancer else None
    clip = SubjectClip(subject.frames(), subject.mode.model_proxies(subject, reference), subject.tracks["valid"],
                       preset.resolution, config.window,
                       config.validation_fraction, sequence_length(config), regions, heads, pin_memory)
    if len(clip.train_ends) < 2:
        raise ReenactError(f"{subject.root}: too few consecutive frames with a {subject.mode.who} "
                           f"to train on ({len(clip.train_ends)} sequences of {clip.sequence_length})")
    if world.is_main:
        info(f"training on {clip.train_end} frames, holding out {len(clip.frames) - clip.train_end} at "
             f"{preset.resolution}px (preset {config.preset}, {world.size} worker(s), batch {config.batch_size} each)")
    return clip


def loss_regions(subject: Subject, config: TrainConfig) -> np.ndarray | None:
    """What counts 1 + region_weight in the L1 loss: a face's mouth and eyes, a body's person."""
    return subject.mode.loss_regions(subject) if config.region_weight > 0 else None


def train_loop(clip: SubjectClip, networks: Networks, config: TrainConfig, rng: torch.Generator, start_step: int,
               budget: Budget, run_folder: Path, save, world: World) -> int:
    """Train from ``start_step`` until the budget is spent; returns the last step."""
    step = start_step
    if world.is_main:
        run_folder.mkdir(parents=True, exist_ok=True)
        write_json(run_folder / "config.json", {"train": config_dict(config), "world_size": world.size})
    board = open_tensorboard(run_folder / "tensorboard") if world.is_main else None
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    graphs_after_first_step, agree = 0, lambda seconds: max_across(world, seconds)
    loop_started = time.perf_counter()
    budget.update(step, agree)
    try:
        with progress_task("training", budget.steps, seconds=budget.seconds, unit=" steps", visible=world.is_main,
                           spent=budget.seconds_spent) as task:
            task.start_at(start_step)
            while not budget.finished(step):
                losses = train_step(networks, clip.training_batch(rng, config.batch_size), config)
                step += 1
                if config.compile and step == start_step + 1:
                    graphs_after_first_step = compiled_graphs()   # the first step compiles; later ones should not
                budget.update(step, agree)
                last = budget.finished(step)
                # Reading losses waits for the device, so it happens every log_every steps only.
                readings = read_losses(losses) if step % config.log_every == 0 or last else None
                task.advance(status=progress_status(readings))
                if world.is_main:
                    log_and_sample(board, readings, step, networks, clip, config, run_folder, last)
                if step % config.checkpoint_every == 0 and not last:
                    save(step, "in progress")
        if world.is_main:
            info(f"{step - start_step} steps in {task.elapsed:.1f} s "
                 f"({(step - start_step) / max(task.elapsed, 1e-9):.2f} it/s)")
            if config.compile:
                report_recompiles(compiled_graphs() - graphs_after_first_step)
        stopped = "steps" if budget.steps is not None and step >= budget.steps else "minutes"
        save(step, stopped)
        if world.is_main:
            write_summary(run_folder, step, start_step, time.perf_counter() - loop_started, stopped, config)
    except KeyboardInterrupt:
        save(step, "interrupted")
        if world.is_main:
            write_summary(run_folder, step, start_step, time.perf_counter() - loop_started, "interrupted", config)
        raise ReenactError(f"interrupted at step {step}; saved {config.out or 'the checkpoint'}, continue with "
                           f"`reenact train {config.subject} --resume` and the same options") from None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if board is not None:
            board.close()
    return step


def open_tensorboard(folder: Path):
    """TensorBoard's writer when it imports, else None: it is an optional extra, and on some CUDA
    images its import fails against the protobuf that mediapipe needs. Training goes on and says why."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(str(folder))
    except Exception as error:  # noqa: BLE001 - whatever breaks an optional logger must not stop training
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        info(f"TensorBoard logging off ({reason}); the losses still go to the progress line and "
             f"{folder.parent / 'summary.json'}. `pip install 'reenact[tensorboard]'` turns it on")
        return None


def write_summary(run_folder: Path, step: int, start_step: int, seconds: float, stopped: str, config: TrainConfig) -> None:
    """summary.json in the run folder: how far this run got and how fast, for people and benchmarks."""
    steps = step - start_step
    write_json(run_folder / "summary.json", {"step": step, "steps_this_run": steps, "loop_seconds": round(seconds, 3),
                                             "it_per_s": round(steps / max(seconds, 1e-9), 4), "stopped": stopped,
                                             "checkpoint": str(config.out) if config.out else None})


def progress_status(readings: dict[str, float] | None) -> str | None:
    """The losses when read (under --minutes the bar itself is the time budget)."""
    if readings is None:
        return None
    return " ".join(f"{k} {v:.3f}" for k, v in readings.items())


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def read_losses(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """The losses as numbers, with one wait for the device rather than one per loss."""
    return dict(zip(losses, torch.stack(list(losses.values())).float().tolist()))


def report_recompiles(recompiled: int) -> None:
    if recompiled:
        warn(f"--compile: {recompiled} graph(s) compiled after the first step; each recompile costs time")
    else:
        info("--compile: no recompiles after the first step")


def log_and_sample(board, losses: dict[str, float] | None, step: int, networks: Networks, clip: SubjectClip,
                   config: TrainConfig, run_folder: Path, last: bool) -> None:
    if losses is not None and board is not None:
        for name, value in losses.items():
            board.add_scalar(f"loss/{name}", value, step)
        board.add_scalar("learning_rate", networks.schedulers[0].get_last_lr()[0], step)
    if step % config.sample_every == 0 or last:
        write_sample_grid(networks.sampler, clip, run_folder / "samples" / f"step_{step:07d}.png")
        if board is not None:
            for name, value in validation_metrics(networks.sampler, clip).items():
                board.add_scalar(f"validation/{name}", value, step)


@torch.no_grad()
def held_out_frames(generator: torch.nn.Module, clip: SubjectClip, count: int) -> tuple[dict, torch.Tensor]:
    """Held-out sequences and the last generated frame of each, in full precision."""
    batch = clip.validation_batch(count)
    was_training = generator.training
    generator.eval()
    generated = generate_sequence(generator, batch["proxies"])[-1]
    generator.train(was_training)
    return batch, generated


def write_sample_grid(generator: torch.nn.Module, clip: SubjectClip, path: Path) -> None:
    """Rows of held-out frames: proxy | (a body's reference frame warped to the pose) | generated | real."""
    batch, generated = held_out_frames(generator, clip, SAMPLE_ROWS)
    proxy = center_proxy(batch["proxies"][:, -1], clip.window)
    # Each whole three channels of the proxy as an image: the drawn proxy, then the warped reference.
    drawn = [proxy[:, first:first + 3] for first in range(0, proxy.shape[1] - 2, 3)]
    columns = [*drawn, generated, batch["frames"][:, -1]]
    grid = torch.cat([torch.cat(list(to_uint8(c)), dim=1) for c in columns], dim=2)  # (3, rows·R, columns·R)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), grid.permute(1, 2, 0).cpu().numpy()[..., ::-1])


def validation_metrics(generator: torch.nn.Module, clip: SubjectClip) -> dict[str, float]:
    """L1 and PSNR of held-out frames, each generated at the end of its sequence."""
    batch, generated = held_out_frames(generator, clip, min(16, max(1, len(clip.validation_ends))))
    error = (generated - batch["frames"][:, -1]) / 2  # in [0, 1] units
    mse = error.pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return {"l1": float(error.abs().mean()), "psnr": float((10 * torch.log10(1 / mse)).mean())}
