"""`reenact bench train`: what this machine does per training step, on synthetic data.

Times full training steps (sequence generation, both discriminators, all losses, EMA) of a
preset on random frames held on the device, and prints images/s (generated frames per
second), step time and peak memory. On CUDA it times bf16 + channels_last against an fp32
baseline in the same run, and optionally torch.compile.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import replace

import numpy as np
import torch

from reenact.config import BenchTrainConfig, TrainConfig
from reenact.data import SubjectClip
from reenact.device import resolve_device
from reenact.files import atomic_path
from reenact.presets import get_preset
from reenact.progress import console, info
from reenact.training import build_networks, sequence_length, train_step
from reenact.translator import model_arguments

SYNTHETIC_FRAMES = 48


def run(config: BenchTrainConfig) -> list[dict]:
    # 1. The preset, the device, and the variants to time.
    preset = get_preset(config.preset)
    device = resolve_device(config.device)
    base = TrainConfig(subject="synthetic", preset=config.preset, steps=config.warmup + config.steps,
                       batch_size=config.batch_size or preset.batch_size, window=preset.window,
                       temporal_scales=preset.temporal_scales, gradient_checkpointing=preset.resolution >= 512)
    variants = {"fp32": replace(base, mixed_precision=False, channels_last=False)}
    if device.type == "cuda":
        variants["bf16+channels_last"] = base
        if config.compile:
            variants["bf16+channels_last+compile"] = replace(base, compile=True)
    # 2. Synthetic frames and proxies on the device (what `train` keeps there too).
    clip = synthetic_clip(preset.resolution, base).to(device)
    # 3. Time each variant.
    results = [time_variant(name, variant, clip, device, config) for name, variant in variants.items()]
    # 4. Report.
    report(results, config)
    return results


def synthetic_clip(resolution: int, config: TrainConfig) -> SubjectClip:
    rng = np.random.default_rng(0)
    images = lambda: rng.integers(0, 256, (SYNTHETIC_FRAMES, resolution, resolution, 3), dtype=np.uint8)
    return SubjectClip(images(), images(), np.ones(SYNTHETIC_FRAMES, bool), resolution, config.window, 0.1,
                       sequence_length(config))


def time_variant(name: str, config: TrainConfig, clip: SubjectClip, device: torch.device, bench: BenchTrainConfig) -> dict:
    arguments = model_arguments(get_preset(config.preset), config.window, clip.proxy_channels, config.temporal_frames,
                                config.temporal_scales)
    networks = build_networks(arguments, None, config, device)
    rng = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(bench.warmup):
        train_step(networks, clip.training_batch(rng, config.batch_size), config, device)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(bench.steps):
        train_step(networks, clip.training_batch(rng, config.batch_size), config, device)
    synchronize(device)
    step_seconds = (time.perf_counter() - start) / bench.steps
    images = config.batch_size * clip.sequence_length
    return {"variant": name, "device": device_name(device), "preset": config.preset, "resolution": clip.frames.shape[-1],
            "batch_size": config.batch_size, "frames_per_sample": clip.sequence_length,
            "step_ms": round(1000 * step_seconds, 1), "images_per_s": round(images / step_seconds, 2),
            "it_per_s": round(1 / step_seconds, 3), "peak_memory_mb": round(peak_memory_mb(device), 1)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(results: list[dict], config: BenchTrainConfig) -> None:
    baseline = results[0]["images_per_s"]
    for result in results:
        result["speedup_vs_fp32"] = round(result["images_per_s"] / baseline, 2)
    columns = ("variant", "device", "resolution", "batch_size", "step_ms", "images_per_s", "it_per_s", "peak_memory_mb", "speedup_vs_fp32")
    console.print(" | ".join(columns))
    for result in results:
        console.print(" | ".join(str(result[c]) for c in columns))
    print(json.dumps(results))
    if config.json:
        with atomic_path(config.json) as tmp:
            tmp.write_text(json.dumps(results, indent=2) + "\n")
        info(f"wrote {config.json}")
