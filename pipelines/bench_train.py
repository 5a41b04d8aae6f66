"""`reenact bench train`: what this machine does per training step, on synthetic data.

Times the full step that `train` runs on a body subject (sequence generation, image and temporal
discriminators, the VGG perceptual loss unless --no-perceptual-loss, EMA, and the face enhancer's
GAN) on random frames held on the device, for several precision and layout variants. Per variant: the first step's seconds
(compiling, cuDNN autotuning) apart from the steady step time, FLOPs per step counted by
torch's FlopCounterMode, achieved TFLOP/s and MFU against the device's dense peak for the
variant's precision, recompiles, and peak memory (allocated and reserved on CUDA; resident on the
host). Each variant's networks are freed before the next is built, so the peaks are its own.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import time
from dataclasses import dataclass, replace
from typing import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reenact.body.head import face_crop_size
from reenact.config import BenchTrainConfig, TrainConfig
from reenact.data import SubjectClip
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.files import atomic_path, strict_json
from reenact.models import PERCEPTUAL_LOSSES, load_vgg19_features_state, perceptual_kind, vgg19_features
from reenact.modes import BODY
from reenact.presets import ModelPreset, get_preset, scaled_learning_rate
from reenact.progress import console, info
from reenact.training import (Acceleration, build_networks, compiled_graphs, configure_backends, sequence_length,
                              train_step)
from reenact.translator import face_enhancer_arguments, model_arguments

SYNTHETIC_FRAMES = 48
BF16 = torch.bfloat16


@dataclass(frozen=True)
class Variant:
    acceleration: Acceleration   # fused Adam is added on CUDA, as `train` does
    tf32: bool                   # TF32 for cuDNN convolutions and cuBLAS matmuls
    precision: str               # which of the device's peaks MFU is measured against
    cuda_only: bool = False


VARIANTS: dict[str, Variant] = {
    # TF32 off everywhere: the true fp32 baseline (torch leaves cuDNN's TF32 on by default).
    "fp32": Variant(Acceleration(), tf32=False, precision="fp32"),
    "tf32": Variant(Acceleration(), tf32=True, precision="tf32", cuda_only=True),
    "bf16": Variant(Acceleration(autocast_dtype=BF16), tf32=True, precision="bf16"),
    "bf16_channels_last": Variant(Acceleration(autocast_dtype=BF16, channels_last=True), tf32=True, precision="bf16"),
    "compiled": Variant(Acceleration(autocast_dtype=BF16, compile_backend="inductor"), tf32=True, precision="bf16"),
}
# Without --variants; compiling takes minutes, so "compiled" joins only with --compile.
DEFAULT_VARIANTS = {"cuda": ("fp32", "tf32", "bf16", "bf16_channels_last"), "cpu": ("fp32",)}
# What `train` runs by default (without --compile): the variant a --batch-sizes sweep times.
RECOMMENDED = {"cuda": "bf16", "cpu": "fp32"}

# Dense (no sparsity) peak TFLOP/s per precision from the vendors' datasheets. The first name
# fragment found in torch.cuda.get_device_name() wins, so longer names come first; None: not known.
PEAK_TFLOPS: dict[str, dict[str, float] | None] = {
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100 NVL": None,
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},   # SXM: torch names it "NVIDIA H100 80GB HBM3"
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.05, "tf32": 183.0, "fp32": 91.6},
    "L40": {"bf16": 181.05, "tf32": 90.5, "fp32": 90.5},
    "L4": {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3},
}


@dataclass
class Setup:
    """What every variant shares: the device, the synthetic clip, network arguments and base config."""

    device: torch.device
    clip: SubjectClip
    arguments: dict
    perceptual: Callable[[], nn.Module | None]   # a fresh perceptual loss network for each variant
    perceptual_kind: str
    config: TrainConfig
    bench: BenchTrainConfig
    flops: dict[int, int]        # FLOPs per step by batch size, counted once on an eager variant


def run(config: BenchTrainConfig) -> list[dict]:
    # 1. The preset, the device, the variants to time and at which batch sizes.
    preset = get_preset(config.preset)
    device = resolve_device(config.device)
    if config.steps < 1 or config.warmup < 1:
        raise ReenactError(f"--steps {config.steps} --warmup {config.warmup}: both must be 1 or more (the first "
                           "warm-up step is the one that compiles and autotunes)")
    names = variant_names(config, device)
    batch_size = config.batch_size or (preset.gpu_batch_size if device.type == "cuda" else preset.batch_size)
    runs = [(name, batch_size) for name in names]
    runs += [(RECOMMENDED[device.type], size) for size in parse_batch_sizes(config.batch_sizes)
             if (RECOMMENDED[device.type], size) not in runs]
    # 2. Synthetic frames, proxies and head centres on the device; networks as `train` builds them for a body.
    setup = make_setup(preset, device, config)
    configure_backends(device)
    info(f"bench train: preset {config.preset} on {device_name(device)}, {len(runs)} run(s) of "
         f"{config.warmup} warm-up and {config.steps} timed steps")
    # 3. Time each variant, one at a time.
    results = [time_variant(name, size, setup) for name, size in runs]
    # 4. Report.
    report(results, config)
    return results


def variant_names(config: BenchTrainConfig, device: torch.device) -> list[str]:
    names = [n.strip() for n in config.variants.split(",") if n.strip()] if config.variants \
        else list(DEFAULT_VARIANTS[device.type])
    if config.compile and "compiled" not in names:
        names.append("compiled")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ReenactError(f"--variants: unknown variant {unknown[0]!r} (valid: {', '.join(VARIANTS)})")
    cuda_only = [n for n in names if VARIANTS[n].cuda_only and device.type != "cuda"]
    if cuda_only:
        raise ReenactError(f"--variants: {cuda_only[0]} needs a CUDA device")
    return names


def parse_batch_sizes(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ReenactError(f"--batch-sizes {text}: expected comma-separated whole numbers, e.g. 8,16,32") from None
    if not sizes or min(sizes) < 1:
        raise ReenactError(f"--batch-sizes {text}: batch sizes must be 1 or more")
    return sizes


def make_setup(preset: ModelPreset, device: torch.device, bench: BenchTrainConfig) -> Setup:
    # The synthetic clip has a head in every frame, as a body subject's has: train its way.
    config = TrainConfig(subject="synthetic", preset=bench.preset, steps=bench.warmup + bench.steps + 1,
                         window=preset.window, temporal_scales=preset.temporal_scales,
                         **BODY.training_defaults())
    clip = synthetic_clip(preset.resolution, config).to(device)
    arguments = model_arguments(preset, config.window, clip.proxy_channels, config.temporal_frames, config.temporal_scales)
    arguments |= face_enhancer_arguments(preset, clip.proxy_channels, face_crop_size(preset.resolution))
    # Random VGG19 weights where torchvision's are not cached: the same FLOPs.
    vgg19_state = load_vgg19_features_state()[0]
    kind = perceptual_kind(bench.perceptual_loss, vgg19_state is not None)
    if kind == "vgg19" and vgg19_state is None:
        torch.manual_seed(0)
        vgg19_state = vgg19_features().state_dict()
    return Setup(device, clip, arguments, lambda: PERCEPTUAL_LOSSES[kind](vgg19_state, 0), kind, config, bench, {})


def synthetic_clip(resolution: int, config: TrainConfig) -> SubjectClip:
    """Random frames and proxies, with a head seen in every frame so the face enhancer trains every step."""
    rng = np.random.default_rng(0)
    images = lambda: rng.integers(0, 256, (SYNTHETIC_FRAMES, resolution, resolution, 3), dtype=np.uint8)
    margin = face_crop_size(resolution) / 2
    heads = np.concatenate([rng.uniform(margin, resolution - margin, (SYNTHETIC_FRAMES, 2)),
                            np.ones((SYNTHETIC_FRAMES, 1))], axis=1).astype(np.float32)
    return SubjectClip(images(), images(), np.ones(SYNTHETIC_FRAMES, bool), resolution, config.window, 0.1,
                       sequence_length(config), None, heads)


def time_variant(name: str, batch_size: int, setup: Setup) -> dict:
    """One variant's figures; running out of GPU memory is a result too (a batch sweep finds the limit)."""
    device, variant = setup.device, VARIANTS[name]
    dtype = variant.acceleration.autocast_dtype
    row = {"variant": name, "device": device_name(device), "preset": setup.bench.preset,
           "resolution": int(setup.clip.frames.shape[-1]), "batch_size": batch_size,
           "frames_per_sample": setup.clip.sequence_length, "tf32": variant.tf32 and device.type == "cuda",
           "autocast": str(dtype).removeprefix("torch.") if dtype else None,
           "channels_last": variant.acceleration.channels_last, "compiled": variant.acceleration.compile_backend is not None,
           "perceptual_loss": setup.perceptual_kind, "face_enhancer": True}
    free_memory(device)
    reset_peaks(device)
    try:
        with tf32(row["tf32"]):
            row |= measure(variant, batch_size, setup)
    except torch.OutOfMemoryError:
        row["error"] = "out of memory"
    row |= peak_memory(device)
    free_memory(device)
    return row


def measure(variant: Variant, batch_size: int, setup: Setup) -> dict:
    """First step (compiling, autotuning) alone, a FLOP-counted step, the rest of the warm-up, then timed steps."""
    device, bench = setup.device, setup.bench
    config = replace(setup.config, batch_size=batch_size, learning_rate=scaled_learning_rate(batch_size))
    acceleration = replace(variant.acceleration, fused_adam=device.type == "cuda")
    compiled = acceleration.compile_backend is not None
    if compiled and batch_size not in setup.flops:
        # Compiled graphs hide their operations from the counter; the math is the same as eager's.
        setup.flops[batch_size] = eager_flops(replace(acceleration, compile_backend=None), config, setup)
        reset_peaks(device)
    if compiled:
        torch._dynamo.reset()   # compile from scratch, so the first step's time is the whole compile
    networks, step = build_step(acceleration, config, setup)
    first_seconds = timed(step, 1, device)
    graphs = compiled_graphs()
    if batch_size not in setup.flops:
        setup.flops[batch_size] = count_flops(step)
    timed(step, max(0, bench.warmup - 1), device)
    seconds = timed(step, bench.steps, device) / bench.steps
    del networks, step
    return step_figures(first_seconds, seconds, setup.flops.get(batch_size), variant.precision, batch_size, setup,
                        compiled_graphs() - graphs if compiled else None)


def build_step(acceleration: Acceleration, config: TrainConfig, setup: Setup):
    """The networks, and a function that runs one training step of them on a fresh batch."""
    torch.manual_seed(0)
    networks = build_networks(setup.arguments, setup.perceptual(), config, setup.device, acceleration=acceleration)
    rng = torch.Generator(device=setup.device).manual_seed(0)
    return networks, lambda: train_step(networks, setup.clip.training_batch(rng, config.batch_size), config)


def eager_flops(acceleration: Acceleration, config: TrainConfig, setup: Setup) -> int:
    networks, step = build_step(acceleration, config, setup)
    flops = count_flops(step)
    del networks, step
    free_memory(setup.device)
    return flops


def step_figures(first_seconds: float, seconds: float, flops: int | None, precision: str, batch_size: int,
                 setup: Setup, recompiles: int | None) -> dict:
    images = batch_size * setup.clip.sequence_length
    achieved = flops / seconds / 1e12 if flops else None
    peak = peak_tflops(setup.device, precision)
    return {"first_step_s": round(first_seconds, 2),
            # The first step's extra time over a steady one: compiling (and autotuning) it.
            "compile_s": round(first_seconds - seconds, 2) if recompiles is not None else None,
            "recompiles": recompiles, "step_ms": round(1000 * seconds, 1), "images_per_s": round(images / seconds, 2),
            "it_per_s": round(1 / seconds, 3), "flops_per_step": flops,
            "tflops_per_s": round(achieved, 3) if achieved is not None else None, "peak_tflops": peak,
            "mfu": round(achieved / peak, 4) if achieved is not None and peak else None}


def timed(step, count: int, device: torch.device) -> float:
    """Seconds for ``count`` steps, waiting for the device at both ends."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(count):
        step()
    synchronize(device)
    return time.perf_counter() - start


def count_flops(step) -> int:
    """Forward and backward FLOPs of one step (convolutions and matrix products; a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


@contextlib.contextmanager
def tf32(enabled: bool):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def peak_tflops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peaks = next((peaks for fragment, peaks in PEAK_TFLOPS.items() if fragment in name), None)
    return peaks[precision] if peaks else None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peaks(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Linux resets the process's peak resident size (VmHWM) on this write; elsewhere the peak is the process's.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory(device: torch.device) -> dict:
    """Peak GPU memory allocated by tensors and reserved by the caching allocator, and the host's peak resident size."""
    cuda = device.type == "cuda"
    return {"peak_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda else None,
            "peak_reserved_mb": round(torch.cuda.max_memory_reserved(device) / 2**20, 1) if cuda else None,
            "peak_host_rss_mb": round(host_peak_rss_mb(), 1)}


def host_peak_rss_mb() -> float:
    with contextlib.suppress(OSError, StopIteration, ValueError):
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


COLUMNS = {  # table heading: (JSON field, format)
    "variant": ("variant", "{}"), "batch": ("batch_size", "{}"), "step ms": ("step_ms", "{}"),
    "first step s": ("first_step_s", "{}"), "compile s": ("compile_s", "{}"), "recompiles": ("recompiles", "{}"),
    "images/s": ("images_per_s", "{}"), "GFLOP/step": ("flops_per_step", "{:.0f}"), "TFLOP/s": ("tflops_per_s", "{}"),
    "MFU": ("mfu", "{:.1%}"), "alloc MB": ("peak_allocated_mb", "{}"), "reserved MB": ("peak_reserved_mb", "{}"),
    "host RSS MB": ("peak_host_rss_mb", "{}"), "× fp32": ("speedup_vs_fp32", "{}"),
}


def report(results: list[dict], config: BenchTrainConfig) -> None:
    baseline = next((r for r in results if r["variant"] == "fp32" and "error" not in r), None)
    for result in results:
        result["speedup_vs_fp32"] = round(result["images_per_s"] / baseline["images_per_s"], 2) \
            if baseline and "error" not in result else None
    console.print(markdown_table(results), soft_wrap=True)
    print(strict_json(results))
    if config.json:
        with atomic_path(config.json) as tmp:
            tmp.write_text(strict_json(results, indent=2) + "\n")
        info(f"wrote {config.json}")


def markdown_table(results: list[dict]) -> str:
    def cell(result: dict, field: str, form: str) -> str:
        value = result.get(field)
        if field == "flops_per_step" and value is not None:
            value = value / 1e9
        return "n/a" if value is None else form.format(value)

    lines = [f"device: {results[0]['device']}, preset {results[0]['preset']} ({results[0]['resolution']} px, "
             f"{results[0]['frames_per_sample']} frames per sample)",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result in results:
        cells = [cell(result, field, form) for field, form in COLUMNS.values()]
        if "error" in result:
            cells[2] = result["error"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
