"""A training run's checkpoint: what it holds of the networks, optimizers, schedulers and samplers
(``save_checkpoint``), and taking a run up again from it (``resume``). The format itself, its
version checks and the inference side are in reenact/checkpoint.py."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from reenact import checkpoint as ckpt
from reenact.config import TrainConfig, config_dict
from reenact.distributed import World, gather_tensors
from reenact.errors import ReenactError
from reenact.presets import ModelPreset
from reenact.progress import info, warn
from reenact.subject import Subject
from reenact.training import Budget, Networks, unwrap


def save_checkpoint(out: Path, step: int, networks: Networks, arguments: dict, subject: Subject, config: TrainConfig,
                    preset: ModelPreset, perceptual_record: dict, rng: torch.Generator, validation: Callable[[], dict], world: World,
                    budget: Budget, stopped: str, reference=None) -> None:
    """``stopped``: "steps" or "minutes" (the budget that ended training), "interrupted", or "in progress";
    ``validation`` gives the held-out figures (run on rank 0 only); ``reference``: the mode's reference
    frame, when the translator sees one."""
    # Every rank's sampler state, so each resumes its own stream. An interrupted run skips the
    # gather: its ranks may stop at different points, and a collective there could wait forever.
    samplers = [rng.get_state()] if stopped == "interrupted" else gather_tensors(world, rng.get_state())
    if not world.is_main:
        return
    ckpt.save_checkpoint(out, {
        "format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "mode": subject.mode.name,
        "step": step, "world_size": world.size, "stopped": stopped,
        "training_seconds": budget.seconds_spent(), "config": config_dict(config), "preset": preset.to_dict(),
        "resolution": preset.resolution, "window": config.window, "model": arguments,
        "generator": unwrap(networks.generator).state_dict(),
        "generator_ema": networks.ema.state_dict() if networks.ema is not None else None,
        "image_discriminator": unwrap(networks.image_discriminator).state_dict(),
        "temporal_discriminators": networks.bare_temporal_discriminators.state_dict(),
        "optimizers": {"generator": networks.generator_optimizer.state_dict(),
                       "discriminator": networks.discriminator_optimizer.state_dict()},
        "schedulers": [s.state_dict() for s in networks.schedulers],
        **face_enhancer_state(networks),
        "target": target_description(subject),
        "reference": reference.state() if reference is not None else None,
        "perceptual_loss": perceptual_record,
        "validation": validation(),
        "rng": {"samplers": samplers, "torch": torch.get_rng_state()},
    })


def face_enhancer_state(networks: Networks) -> dict:
    if networks.face is None:
        return {}
    return {"face_enhancer": unwrap(networks.face.generator).state_dict(),
            "face_discriminator": unwrap(networks.face.discriminator).state_dict(),
            "face_optimizers": {"generator": networks.face.generator_optimizer.state_dict(),
                                "discriminator": networks.face.discriminator_optimizer.state_dict()}}


def target_description(subject: Subject) -> dict:
    """What transfer needs from the target subject, so the checkpoint works without its folder."""
    meta = subject.meta
    return {"subject": str(subject.root.resolve()), "subject_resolution": subject.resolution, "fps": meta["fps"],
            "source_size": [meta["source"]["width"], meta["source"]["height"]], "track_config": meta["config"],
            **subject.mode.target_fields(subject)}


def resume(out: Path, networks: Networks, arguments: dict, rng: torch.Generator, subject: Subject, world: World,
           seed: int, budget: Budget) -> int:
    if not out.exists():
        if world.is_main:
            warn(f"--resume: {out} does not exist yet, starting from step 0")
        return 0
    state = ckpt.load_checkpoint(out, mode=subject.mode.name)
    if state["model"] != arguments:
        raise ReenactError(f"{out}: trained with other network settings (preset {state['config']['preset']}, "
                           f"window {state['window']}); resume with the same options")
    unwrap(networks.generator).load_state_dict(state["generator"])
    unwrap(networks.image_discriminator).load_state_dict(state["image_discriminator"])
    networks.bare_temporal_discriminators.load_state_dict(state["temporal_discriminators"])
    if networks.ema is not None:
        networks.ema.load_state_dict(state["generator_ema"] or state["generator"])
    networks.generator_optimizer.load_state_dict(state["optimizers"]["generator"])
    networks.discriminator_optimizer.load_state_dict(state["optimizers"]["discriminator"])
    for scheduler, scheduler_state in zip(networks.schedulers, state["schedulers"]):
        scheduler.load_state_dict(scheduler_state)
    if networks.face is not None:
        unwrap(networks.face.generator).load_state_dict(state["face_enhancer"])
        unwrap(networks.face.discriminator).load_state_dict(state["face_discriminator"])
        networks.face.generator_optimizer.load_state_dict(state["face_optimizers"]["generator"])
        networks.face.discriminator_optimizer.load_state_dict(state["face_optimizers"]["discriminator"])
    torch.set_rng_state(state["rng"]["torch"])
    resume_sampler(rng, state["rng"].get("samplers", []), world, int(state["step"]), seed)
    budget.spent = float(state.get("training_seconds", 0.0))     # --minutes counts the time spent before
    if world.is_main:
        info(f"resumed from {out} at step {state['step']}")
    return int(state["step"])


def resume_sampler(rng: torch.Generator, saved: list[torch.Tensor], world: World, step: int, seed: int) -> None:
    """This rank's saved sampler state; where there is none (another world size, an interrupted
    multi-worker run), a seed of its own from the seed, rank and step, never another rank's stream."""
    if len(saved) == world.size:
        try:
            rng.set_state(saved[world.rank])
            return
        except RuntimeError:   # a state of another device's generator
            pass
    rng.manual_seed(seed + 1_000_003 * step + world.rank)
