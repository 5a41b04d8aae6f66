"""Each CUDA training path run on the CPU, so a GPU run finds numbers, not bugs: bf16 autocast with
channels_last, fused Adam and gradient checkpointing; torch.compile without recompiles; data
parallelism where one rank's batch holds no head."""

from __future__ import annotations

import socket
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch._dynamo
import torch.multiprocessing as multiprocessing

from reenact.config import TrainConfig
from reenact.data import SubjectClip
from reenact.models import VGGPerceptualLoss
from reenact.modes import BODY
from reenact.presets import ModelPreset
from reenact.training import (Acceleration, build_networks, compiled_graphs, graph_breaks, sequence_length, train_step,
                              unwrap)
from reenact.translator import face_enhancer_arguments, model_arguments
from tests.conftest import run_reenact

SMALL = ModelPreset(resolution=32, ngf=8, n_downsample=2, n_blocks=2, ndf=8, discriminator_layers=2,
                    discriminator_scales=2, window=3, temporal_scales=2, batch_size=2, gpu_batch_size=2, steps=5,
                    sample_every=5)
CONFIG = TrainConfig(subject="synthetic", steps=5, batch_size=2, window=3, temporal_scales=2, learning_rate=2e-4,
                     **BODY.training_defaults())
FRAMES = 24


def small_clip(seen_heads: np.ndarray | None = None, seed: int = 0) -> SubjectClip:
    """Random frames and proxies, with head centres marked seen or not."""
    rng = np.random.default_rng(seed)
    images = lambda: rng.integers(0, 256, (FRAMES, SMALL.resolution, SMALL.resolution, 3), dtype=np.uint8)
    seen = np.ones(FRAMES) if seen_heads is None else seen_heads
    heads = np.concatenate([rng.uniform(4, 28, (FRAMES, 2)), seen[:, None]], axis=1).astype(np.float32)
    return SubjectClip(images(), images(), np.ones(FRAMES, bool), SMALL.resolution, CONFIG.window, 0.1,
                       sequence_length(CONFIG), None, heads)


def small_networks(config: TrainConfig, acceleration: Acceleration, wrap=lambda m: m, background: bool = False,
                   perceptual: bool = True):
    arguments = model_arguments(SMALL, config.window, 3, config.temporal_frames, config.temporal_scales, background)
    arguments |= face_enhancer_arguments(SMALL, 3, 16)
    loss = VGGPerceptualLoss(vgg_state()) if perceptual else None
    return build_networks(arguments, loss, config, torch.device("cpu"), wrap, acceleration)


def vgg_state() -> dict:
    """Random VGG19 weights: the perceptual loss runs as it would with the real ones."""
    from reenact.models import vgg19_features

    torch.manual_seed(0)
    return vgg19_features().state_dict()


def test_bf16_step_with_channels_last_fused_adam_checkpointing_face_enhancer_and_plate():
    torch.manual_seed(0)
    config = replace(CONFIG, gradient_checkpointing=True)
    acceleration = Acceleration(autocast_dtype=torch.bfloat16, channels_last=True, fused_adam=True)
    networks = small_networks(config, acceleration, background=True)      # over a plate: the alpha's loss too
    before = [p.detach().clone() for p in networks.generator.parameters()]
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        losses = train_step(networks, small_clip().training_batch(generator, config.batch_size), config)
    assert {"d_image", "d_temporal", "g_gan", "g_fm", "g_l1", "g_alpha", "g_perceptual", "face_d", "face_g"} <= set(losses)
    assert all(torch.isfinite(value) for value in losses.values()), losses
    trained = [*networks.generator.parameters(), *networks.image_discriminator.parameters(),
               *networks.face.generator.parameters()]
    assert all(p.dtype == torch.float32 for p in trained)          # fp32 master weights under bf16 autocast
    assert any(not torch.equal(a, b) for a, b in zip(before, networks.generator.parameters()))
    assert networks.generator_optimizer.defaults["fused"] is True
    conv = next(m for m in unwrap(networks.generator).modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_losses_stay_close_to_fp32_at_the_first_step():
    losses = {}
    for name, acceleration in {"fp32": Acceleration(), "bf16": Acceleration(autocast_dtype=torch.bfloat16)}.items():
        torch.manual_seed(0)
        networks = small_networks(CONFIG, acceleration)
        losses[name] = train_step(networks, small_clip().training_batch(torch.Generator().manual_seed(0), 2), CONFIG)
    for key in ("g_l1", "g_perceptual", "d_image"):
        assert losses["bf16"][key] == pytest.approx(float(losses["fp32"][key]), rel=0.05), key


def test_the_losses_see_the_padding_past_the_targets_video_black():
    torch.manual_seed(0)
    networks = small_networks(CONFIG, Acceleration(), perceptual=False)
    networks.padding = torch.ones(SMALL.resolution, SMALL.resolution, dtype=torch.bool)   # a frame all padding
    batch = small_clip().training_batch(torch.Generator().manual_seed(0), 2)
    losses = train_step(networks, batch, CONFIG)
    # Whatever the generator paints, the L1 sees black (-1) against the frames.
    assert float(losses["g_l1"]) == pytest.approx(CONFIG.l1_weight * float((batch["frames"] + 1).abs().mean()), rel=1e-5)


@torch._dynamo.config.patch(fail_on_recompile_limit_hit=True)   # not a silent fall back to eager
@pytest.mark.e2e
def test_compiled_training_has_no_graph_breaks_and_no_recompiles():
    """Heads seen in about half the frames: the face batch size would vary if unseen heads were dropped."""
    torch.manual_seed(0)
    torch._dynamo.reset()
    networks = small_networks(CONFIG, Acceleration(compile_backend="aot_eager"), background=True)
    generator_input = torch.randn(2, 3 * CONFIG.window + 3, SMALL.resolution, SMALL.resolution)
    explanation = torch._dynamo.explain(unwrap(networks.generator))(generator_input, with_alpha=True)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    clip = small_clip(seen_heads=np.random.default_rng(1).integers(0, 2, FRAMES).astype(float))
    sampler = torch.Generator().manual_seed(0)
    train_step(networks, clip.training_batch(sampler, 2), CONFIG)
    graphs, breaks = compiled_graphs(), graph_breaks()
    for _ in range(4):
        losses = train_step(networks, clip.training_batch(sampler, 2), CONFIG)
    assert compiled_graphs() == graphs and graph_breaks() == breaks
    assert all(torch.isfinite(value) for value in losses.values())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def data_parallel_worker(rank: int, port: int, results) -> None:
    """Rank 1's frames have no head at all; both ranks must still finish their steps."""
    import torch.distributed as dist

    from reenact.distributed import World, wrapper

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        networks = small_networks(CONFIG, Acceleration(), wrapper(World(rank, 2), torch.device("cpu")))
        clip = small_clip(seen_heads=np.full(FRAMES, float(rank == 0)), seed=rank)
        sampler = torch.Generator().manual_seed(rank)
        for _ in range(2):
            losses = train_step(networks, clip.training_batch(sampler, 2), CONFIG)
        results[rank] = float(losses["face_g"])
    finally:
        dist.destroy_process_group()


@pytest.mark.e2e
def test_data_parallel_step_finishes_when_one_rank_has_no_head():
    context = multiprocessing.get_context("spawn")
    results = context.Manager().dict()
    port = free_port()
    workers = [context.Process(target=data_parallel_worker, args=(rank, port, results)) for rank in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    hung = [worker for worker in workers if worker.is_alive()]
    for worker in hung:
        worker.kill()
    assert not hung, "a data-parallel rank waited forever"
    assert [worker.exitcode for worker in workers] == [0, 0] and sorted(results.keys()) == [0, 1]
    assert results[1] == 0.0 and results[0] > 0       # rank 1's face losses weigh nothing


@pytest.mark.e2e
def test_training_above_the_tracked_resolution_is_refused(body_subject):
    result = run_reenact("train", body_subject, "--preset", "256", "--steps", 1)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--resolution 256" in result.stderr and "tracked at 96px" in result.stderr
