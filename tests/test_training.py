"""Training at scale: the sequence scheme, EMA and schedule, torchrun, interruption, the benchmark."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from reenact.config import TrainConfig
from reenact.errors import ReenactError
from reenact.presets import choose_preset
from reenact.training import LR_SCHEDULES, Budget, generate_sequence, sequence_length, temporal_clips, update_ema
from tests.conftest import reenact_command, run_reenact


def test_sequence_length_covers_the_coarsest_time_scale():
    config = lambda frames, scales: TrainConfig(subject="s", temporal_frames=frames, temporal_scales=scales)
    assert sequence_length(config(2, 1)) == 2      # Everybody Dance Now's pairs
    assert sequence_length(config(3, 1)) == 3
    assert sequence_length(config(3, 2)) == 5      # frames t-4, t-2, t at the second scale


def test_temporal_clips_pick_frames_at_each_stride():
    frames = torch.arange(5.0).view(1, 5, 1, 1, 1).expand(1, 5, 3, 2, 2)      # frame index as its value
    centers = torch.zeros(1, 5, 4, 2, 2)
    fine, coarse = temporal_clips(centers, frames, clip_frames=3, scales=2)
    assert fine.shape == (1, 3 * 4 + 3 * 3, 2, 2)
    assert fine[0, 12::3, 0, 0].tolist() == [2.0, 3.0, 4.0] and coarse[0, 12::3, 0, 0].tolist() == [0.0, 2.0, 4.0]


class PreviousPlusOne(nn.Module):
    """Paints its previous frame brightened by one: what each frame was fed shows in its output."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, -3:] + 1


def test_a_share_of_sequences_feed_frame_one_the_real_frame_zero():
    proxies, real_first = torch.zeros(64, 3, 2, 4, 4), torch.full((64, 3, 4, 4), 10.0)
    never = generate_sequence(PreviousPlusOne(), proxies, real_first, real_share=0.0)
    assert [frame.unique().tolist() for frame in never] == [[1.0], [2.0], [3.0]]     # zeros, then its own frames
    always = generate_sequence(PreviousPlusOne(), proxies, real_first, real_share=1.0)
    assert [frame.unique().tolist() for frame in always] == [[1.0], [11.0], [12.0]]  # frame 1 carries the real frame 0
    torch.manual_seed(0)
    half = generate_sequence(PreviousPlusOne(), proxies, real_first, real_share=0.5)[1][:, 0, 0, 0]
    assert set(half.tolist()) == {2.0, 11.0} and 16 < int((half == 11).sum()) < 48


def test_the_share_of_real_previous_frames_the_shift_weight_and_the_l1_slack_default_to_the_modes_and_explicit_ones_stay():
    from pipelines.train import fill_preset_defaults
    from reenact.modes import MODES
    from reenact.presets import get_preset

    resolved = lambda mode, **keys: fill_preset_defaults(TrainConfig(subject="s", **keys), get_preset("tiny"),
                                                         torch.device("cpu"), MODES[mode])
    body, face = resolved("body"), resolved("face")
    assert (body.real_previous_share, face.real_previous_share) == (0.0, 0.0)
    assert (body.shift_consistency_weight, face.shift_consistency_weight) == (10.0, 0.0)
    assert (body.l1_shift, face.l1_shift) == (0, 2)
    explicit = resolved("body", real_previous_share=0.5, shift_consistency_weight=0.0, l1_shift=1)
    assert (explicit.real_previous_share, explicit.shift_consistency_weight, explicit.l1_shift) == (0.5, 0.0, 1)
    assert resolved("face", real_previous_share=1.0).real_previous_share == 1.0


def test_ema_moves_towards_the_weights_by_one_minus_decay():
    ema, model = nn.Linear(2, 1), nn.Linear(2, 1)
    nn.init.zeros_(ema.weight), nn.init.ones_(model.weight)
    update_ema(ema, model, decay=0.9)
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.1))


def test_ema_decay_warms_up():
    from reenact.training import ema_decay

    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 100000) == 0.999


def test_linear_decay_holds_then_falls_to_zero():
    schedule = LR_SCHEDULES["linear_decay"]
    assert [schedule(done) for done in (0, 0.5, 0.75, 1.0)] == [1.0, 1.0, 0.5, 0.0]
    assert LR_SCHEDULES["constant"](0.99) == 1.0


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
@pytest.mark.e2e
def test_torchrun_two_workers_resume_each_with_its_own_batches(body_subject, tmp_path):
    """Two gloo workers train, then resume: each rank keeps drawing its own batches (a rank's sampler
    state is saved per rank and restored on that rank), so the two streams still differ at the end."""
    torchrun = str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "X.ckpt"

    def train(steps: int, *more: str) -> dict:
        result = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "--no-python", *reenact_command(), "train",
                                 str(body_subject), "--preset", "tiny", "--steps", str(steps), "--out", str(out), *more],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "2 worker(s)" in result.stderr
        return torch.load(out, weights_only=True)

    first = train(6)
    assert first["step"] == 6 and first["world_size"] == 2
    rank0, rank1 = first["rng"]["samplers"]
    assert not torch.equal(rank0, rank1)
    resumed = train(12, "--resume")
    assert resumed["step"] == 12
    after0, after1 = resumed["rng"]["samplers"]
    # Had both ranks resumed from rank 0's state, they would have drawn the same batches and ended equal.
    assert not torch.equal(after0, after1) and not torch.equal(after0, rank0) and not torch.equal(after1, rank1)


def test_a_rank_without_its_own_sampler_state_gets_a_stream_of_its_own():
    from reenact.resume import resume_sampler
    from reenact.distributed import World

    saved = [torch.Generator().manual_seed(5).get_state()]          # only rank 0's, as an interrupted run saves
    draws = []
    for rank in (0, 1):
        generator = torch.Generator()
        resume_sampler(generator, saved, World(rank, 2), step=40, seed=0)
        draws.append(torch.randint(1000, (8,), generator=generator))
    assert not torch.equal(draws[0], draws[1])


@pytest.mark.e2e
def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(body_subject, tmp_path):
    out = tmp_path / "long.ckpt"
    config = tmp_path / "often.toml"
    config.write_text("checkpoint_every = 2\n")
    process = subprocess.Popen([*reenact_command(), "train", str(body_subject), "--preset", "tiny", "--steps", "100000",
                                "--out", str(out), "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not out.exists() and time.time() < deadline and process.poll() is None:   # training is under way
        time.sleep(0.5)
    assert out.exists(), "no checkpoint within 300 s"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0 and "Traceback" not in stderr
    assert "interrupted at step" in stderr and "--resume" in stderr
    state = torch.load(out, weights_only=True)
    assert 0 < state["step"] < 100000 and state["stopped"] == "interrupted"


@pytest.mark.e2e
def test_minutes_stop_training_on_time_with_the_learning_rate_run_down(body_subject, tmp_path):
    out, budget_s = tmp_path / "timed.ckpt", 12.0
    result = run_reenact("train", body_subject, "--minutes", budget_s / 60, "--out", out,
                         env={"TORCH_HOME": str(tmp_path / "no weights")})
    assert result.returncode == 0, result.stderr
    # No preset given: auto picks the CPU preset, here the largest the 96 px subject allows.
    assert "preset auto: tiny (no GPU; the subject was tracked at 96px)" in " ".join(result.stderr.split())
    state = torch.load(out, weights_only=True)
    assert state["stopped"] == "minutes" and state["config"]["preset"] == "tiny" and state["config"]["steps"] is None
    # The clock counts setup too, and the last step may run over by one step (well under a second here).
    assert budget_s <= state["training_seconds"] < budget_s + 10 and state["step"] > 1
    # Decayed with the clock: the last rate was set one step before time ran out, 2 × (that step's
    # share of the budget) of the full rate; a step takes under 1.8 s even on a loaded CI machine.
    assert state["schedulers"][0]["_last_lr"][0] < 0.3 * state["config"]["learning_rate"]
    # Without VGG19's weights: no perceptual loss, and the checkpoint says why.
    assert state["perceptual_loss"]["kind"] == "none" and not state["perceptual_loss"]["enabled"]
    assert "vgg19-dcbb9e9d.pth" in state["perceptual_loss"]["reason"] and "weights fetch vgg19" in " ".join(result.stderr.split())


@pytest.mark.e2e
def test_the_random_perceptual_loss_is_recorded_with_its_seed(body_subject, tmp_path):
    settings, out = tmp_path / "random.toml", tmp_path / "random.ckpt"
    settings.write_text('perceptual_loss = "random"\nseed = 7\n')
    result = run_reenact("train", body_subject, "--steps", 2, "--config", settings, "--out", out)
    assert result.returncode == 0, result.stderr
    record = torch.load(out, weights_only=True)["perceptual_loss"]
    assert (record["enabled"], record["kind"], record["seed"]) == (True, "random", 7)


@pytest.mark.e2e
def test_steps_bound_a_timed_run_and_the_checkpoint_says_which_budget_ended_it(body_subject, tmp_path):
    out = tmp_path / "bounded.ckpt"
    assert run_reenact("train", body_subject, "--minutes", 30, "--steps", 3, "--out", out).returncode == 0
    state = torch.load(out, weights_only=True)
    assert state["stopped"] == "steps" and state["step"] == 3 and state["training_seconds"] < 30 * 60


def test_budget_share_done_follows_the_clock_or_the_steps():
    steps_only = Budget(steps=200)
    assert steps_only.done(50) == 0.25 and not steps_only.finished(199) and steps_only.finished(200)
    timed = Budget(steps=None, seconds=100.0, start=time.perf_counter(), spent=40.0, agree_every=1)
    timed.update(step=0, agree=lambda seconds: seconds)
    assert 0.4 <= timed.done(0) < 0.45 and not timed.finished(10 ** 9)
    timed.spent = 100.0
    timed.update(step=1, agree=lambda seconds: seconds)
    assert timed.done(1) == 1.0 and timed.finished(1)
    # Under torchrun the clock is read only at agreement steps, so every rank sees the same time.
    timed = Budget(steps=None, seconds=100.0, start=time.perf_counter(), spent=99.9, agree_every=10)
    timed.update(step=5, agree=lambda seconds: seconds)
    assert timed.done(5) == 0.0


def test_auto_preset_fits_the_device_and_the_subject():
    assert choose_preset("auto", "cpu", 256) == ("128", "no GPU")
    assert choose_preset("auto", "cuda", 256) == ("256", "a GPU")
    assert choose_preset("auto", "cuda", 128) == ("128", "a GPU; the subject was tracked at 128px")
    assert choose_preset("tiny", "cuda", 512) == ("tiny", "")
    with pytest.raises(ReenactError, match="no preset fits frames of 64px"):
        choose_preset("auto", "cpu", 64)


def test_head_patches_crop_and_paste_back_in_place():
    from reenact.body.head import face_crop_size
    from reenact.enhancer import crop_patches, paste_patches

    images = torch.arange(2 * 3 * 20 * 20, dtype=torch.float32).view(2, 3, 20, 20)
    centers = torch.tensor([[10.0, 10.0], [1.0, 18.0]])            # the second hangs over the corner
    patches = crop_patches(images, centers, 8)
    assert patches.shape == (2, 3, 8, 8)
    assert torch.equal(patches[0], images[0, :, 6:14, 6:14]) and patches[1, :, :, :3].abs().sum() == 0
    assert torch.equal(paste_patches(images, patches, centers), images)
    assert torch.equal(paste_patches(images, torch.zeros_like(patches), centers)[0, :, 6:14, 6:14], torch.zeros(3, 8, 8))
    assert face_crop_size(96) == 16 and face_crop_size(256) % 8 == 0 and face_crop_size(512) % 8 == 0


@pytest.mark.e2e
def test_face_enhancer_is_trained_saved_and_can_be_turned_off(body_subject, tmp_path):
    with_face = tmp_path / "face.ckpt"
    assert run_reenact("train", body_subject, "--preset", "tiny", "--steps", 2, "--out", with_face).returncode == 0
    state = torch.load(with_face, weights_only=True)
    assert "face_enhancer" in state and state["model"]["face_crop"]["size"] == 16
    config = tmp_path / "ablation.toml"
    config.write_text("face_enhancer = false\nema = false\ntemporal_frames = 2\nlr_schedule = \"constant\"\n")
    plain = tmp_path / "plain.ckpt"
    result = run_reenact("train", body_subject, "--preset", "tiny", "--steps", 2, "--out", plain, "--config", config)
    assert result.returncode == 0, result.stderr
    state = torch.load(plain, weights_only=True)
    assert "face_enhancer" not in state and state["generator_ema"] is None
    # Two frames of (skeleton, the reference warped to the pose, frame).
    assert state["model"]["temporal_discriminator"]["in_channels"] == 2 * (3 + 3 + 3)


@pytest.mark.e2e
def test_training_goes_on_when_tensorboard_fails_to_import(body_subject, tmp_path):
    # As on a CUDA image whose protobuf is older than its TensorBoard wants.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(
        "import sys\n"
        "class BrokenTensorBoard:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith(('tensorboard', 'torch.utils.tensorboard')):\n"
        "            raise ImportError(\"cannot import name 'runtime_version' from 'google.protobuf'\")\n"
        "sys.meta_path.insert(0, BrokenTensorBoard())\n")
    out = tmp_path / "no_board.ckpt"
    result = run_reenact("train", body_subject, "--steps", 2, "--out", out, env={"PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 0, result.stdout + result.stderr
    notices = [line for line in (result.stdout + result.stderr).splitlines() if "TensorBoard logging off" in line]
    assert len(notices) == 1 and "runtime_version" in notices[0], result.stdout + result.stderr
    assert torch.load(out, weights_only=True)["step"] == 2
    assert not (tmp_path / "no_board.train" / "tensorboard").exists()
