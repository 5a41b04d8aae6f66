"""The background plate: its estimate against a known scene, the moving-camera fallback, and on real clips."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reenact.body.background import MAX_INPAINTED_SHARE, MOVING_CAMERA_RESIDUAL, estimate_plate
from reenact.models import CompositingGenerator, GlobalGenerator, foreground_alpha
from tests.conftest import make_clip, run_reenact, strict_loads

SIZE, FRAMES = 64, 40


def scene(seed: int = 0) -> np.ndarray:
    """A smooth random background, three times as wide as the frame so that it can pan."""
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (8, 24, 3), dtype=np.uint8), (3 * SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


def walking_person(background_at) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a grey bar (the person) crossing the scene, and proxies with a line down its middle."""
    frames = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    proxies = np.zeros_like(frames)
    for t in range(FRAMES):
        x = 8 + t * (SIZE - 16) // FRAMES
        frames[t] = background_at(t)
        frames[t, 10:54, x - 3:x + 4] = 128                 # inside the skeleton grown by 6 px
        proxies[t, 12:52, x] = 255
    return frames, proxies


def test_plate_is_the_scene_behind_a_moving_person_from_a_still_camera():
    background = scene()[:, :SIZE]
    frames, proxies = walking_person(lambda t: background)
    plate = estimate_plate(frames, proxies, np.ones(FRAMES, bool))
    assert plate.image is not None and plate.residual < 0.005 and plate.inpainted == 0.0
    assert np.abs(plate.image.astype(int) - background).max() <= 1


def test_a_person_who_hides_most_of_the_background_gets_no_plate():
    background = scene()[:, :SIZE]
    frames, proxies = walking_person(lambda t: background)
    standing = np.repeat(proxies[FRAMES // 2:FRAMES // 2 + 1], FRAMES, axis=0)     # never moves from the middle
    plate = estimate_plate(frames, standing, np.ones(FRAMES, bool))
    assert plate.static_camera and plate.inpainted > MAX_INPAINTED_SHARE
    assert plate.image is None and "covers" in plate.why_none()


def test_a_panning_camera_gets_no_plate():
    wide = scene()
    frames, proxies = walking_person(lambda t: wide[:, 2 * t:2 * t + SIZE])     # 2 px a frame
    plate = estimate_plate(frames, proxies, np.ones(FRAMES, bool))
    assert plate.image is None and plate.residual > MOVING_CAMERA_RESIDUAL and "moves" in plate.why_none()


def test_compositing_shows_the_plate_where_alpha_is_low_and_the_paint_where_it_is_high():
    torch.manual_seed(0)
    composite = CompositingGenerator(GlobalGenerator(6, out_channels=4, ngf=8, n_downsample=2, n_blocks=1), SIZE)
    composite.plate.uniform_(-1, 1)
    with torch.no_grad():
        last = composite.generator.decoder[-2]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.5, 0.5, 0.5, -20.0]))     # alpha ≈ 0: the plate
        torch.testing.assert_close(composite(torch.rand(1, 6, SIZE, SIZE)), composite.plate)
        last.bias[3] = 20.0                                          # alpha ≈ 1: the paint, tanh(0.5)
        torch.testing.assert_close(composite(torch.rand(1, 6, SIZE, SIZE)), torch.full((1, 3, SIZE, SIZE), np.tanh(0.5)))
        with_alpha = composite(torch.rand(1, 6, SIZE, SIZE), with_alpha=True)
        assert with_alpha.shape == (1, 4, SIZE, SIZE)
        torch.testing.assert_close(with_alpha[:, 3], torch.ones(1, SIZE, SIZE))
    assert "plate" in composite.state_dict()


def test_outside_training_the_alpha_is_pushed_to_the_paint_or_the_plate_in_the_soft_blends_colours():
    torch.manual_seed(0)
    composite = CompositingGenerator(GlobalGenerator(6, out_channels=4, ngf=8, n_downsample=2, n_blocks=1), SIZE, alpha_gain=4.0)
    composite.plate.fill_(-1.0)
    x = torch.rand(1, 6, SIZE, SIZE)
    with torch.no_grad():
        last = composite.generator.decoder[-2]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.5, 0.5, 0.5, np.arctanh(0.4)]))   # alpha 0.7 everywhere: a ghost in training
        trained = composite.train()(x, with_alpha=True)
        shown = composite.eval()(x, with_alpha=True)
    torch.testing.assert_close(trained[:, 3], torch.full((1, SIZE, SIZE), 0.7))
    torch.testing.assert_close(shown[:, 3], torch.ones(1, SIZE, SIZE))          # 0.5 + 4 · 0.2, clamped
    torch.testing.assert_close(shown[:, :3], trained[:, :3])   # flat paint: the soft blend's colours are all there is
    old = CompositingGenerator(composite.generator, SIZE)                       # a checkpoint from before the gain
    old.plate.copy_(composite.plate)
    with torch.no_grad():
        torch.testing.assert_close(old.eval()(x, with_alpha=True), trained)


def test_the_alpha_target_is_where_the_frame_differs_from_the_plate():
    plate = torch.zeros(1, 3, 2, 2)
    frames = torch.zeros(2, 3, 2, 2)                      # [-1, 1]: 0.1 and 0.3 are the edges of the ramp
    frames[0, :, 0, 0], frames[0, :, 0, 1], frames[0, :, 1, 0], frames[0, :, 1, 1] = 0.05, 0.2, -0.2, 0.9
    frames[1, 0] = 0.6                                    # one channel of three: a mean difference of 0.2
    target = foreground_alpha(frames, plate)
    torch.testing.assert_close(target[0, 0], torch.tensor([[0.0, 0.5], [0.5, 1.0]]))
    torch.testing.assert_close(target[1, 0], torch.full((2, 2), 0.5))


@pytest.mark.e2e
def test_training_over_a_plate_teaches_the_alpha_where_the_person_is():
    """Frames that are the plate but for a bright square: the alpha's loss falls as the alpha learns it."""
    from dataclasses import replace

    from tests.test_cuda_paths_on_cpu import CONFIG, FRAMES, SMALL, small_networks
    from reenact.data import SubjectClip
    from reenact.training import Acceleration, sequence_length, train_step, unwrap

    torch.manual_seed(0)
    config = replace(CONFIG, learning_rate=5e-4, steps=20, lr_schedule="constant")
    networks = small_networks(config, Acceleration(), background=True, perceptual=False)
    frames = np.full((FRAMES, SMALL.resolution, SMALL.resolution, 3), 64, np.uint8)
    proxies = np.zeros_like(frames)
    frames[:, 8:20, 10:22], proxies[:, 8:20, 10:22] = 230, 255
    unwrap(networks.generator).plate.fill_(64 / 127.5 - 1)
    heads = np.tile(np.float32([16, 14, 1]), (FRAMES, 1))
    clip = SubjectClip(frames, proxies, np.ones(FRAMES, bool), SMALL.resolution, config.window, 0.1, sequence_length(config),
                       None, heads)
    sampler = torch.Generator().manual_seed(0)
    losses = [float(train_step(networks, clip.training_batch(sampler, 2), config)["g_alpha"]) for _ in range(20)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    batch = clip.training_batch(sampler, 2)
    with torch.no_grad():
        alpha = unwrap(networks.generator)(torch.cat([batch["proxies"][:, 0], batch["frames"][:, 0]], 1).float(),
                                           with_alpha=True)[:, 3]
    square = torch.zeros_like(alpha, dtype=torch.bool)
    square[:, 8:20, 10:22] = True
    assert alpha[square].mean() > alpha[~square].mean() + 0.3


@pytest.fixture(scope="module")
def walking_subject(tmp_path_factory, example_target) -> Path:
    """The example target (a tai-chi walk across a still room) tracked at 96 px."""
    out = tmp_path_factory.mktemp("plate") / "target"
    result = run_reenact("track", example_target, "--resolution", 96, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.e2e
def test_a_person_standing_in_place_gets_no_plate_on_a_real_clip(body_subject):
    # The example source stands in one spot: its plate would be a quarter inpainted.
    meta = strict_loads((body_subject / "subject.json").read_text())
    assert meta["background"]["static_camera"] and meta["background"]["file"] is None
    assert meta["background"]["inpainted"] > MAX_INPAINTED_SHARE
    assert not (body_subject / "background.png").exists()


@pytest.mark.e2e
def test_track_writes_a_plate_for_a_still_camera_and_train_paints_over_it(walking_subject, tmp_path):
    body_subject = walking_subject
    meta = strict_loads((body_subject / "subject.json").read_text())
    assert meta["background"]["static_camera"] and meta["background"]["file"] == "background.png"
    assert meta["background"]["residual"] < MOVING_CAMERA_RESIDUAL
    plate = cv2.imread(str(body_subject / "background.png"))
    assert plate.shape == (meta["resolution"], meta["resolution"], 3)
    checkpoint = tmp_path / "plate.ckpt"
    result = run_reenact("train", body_subject, "--preset", "tiny", "--steps", 2, "--out", checkpoint)
    assert result.returncode == 0, result.stderr
    assert "background plate" in result.stderr
    state = torch.load(checkpoint, weights_only=True)
    assert state["model"]["background"] == {"resolution": 96, "alpha_gain": 2.0}
    # Colour, the plate's alpha, and the mask that shows the warped reference frame.
    assert state["model"]["generator"]["out_channels"] == 5 and state["model"]["reference_composite"]["mask_gain"] == 4.0
    stored = ((state["generator"]["plate"][0].permute(1, 2, 0) + 1) * 127.5).round().numpy()
    assert np.abs(stored - plate[..., ::-1]).mean() < 1.0      # the plate travels in the checkpoint


@pytest.mark.e2e
def test_a_panning_clip_is_tracked_without_a_plate_and_says_why(example_source, tmp_path):
    # The example panned 3 px a frame: a 480-wide window sliding across the 640-wide frame.
    panning = make_clip(tmp_path / "pan.mp4", "-i", str(example_source), "-t", "2",
                        "-vf", "crop=480:360:'min(n*3,160)':0")
    result = run_reenact("track", panning, "--mode", "body", "--resolution", 96, "--out", tmp_path / "subject")
    assert result.returncode == 0, result.stderr
    meta = strict_loads((tmp_path / "subject" / "subject.json").read_text())
    assert not meta["background"]["static_camera"] and meta["background"]["file"] is None
    assert "the background moves" in " ".join(result.stderr.split())
    assert not (tmp_path / "subject" / "background.png").exists()
