"""Networks and losses: shapes, gradients, and loss values against hand-computed answers."""

from __future__ import annotations

import pytest
import torch

from reenact.models import (GlobalGenerator, MultiscaleDiscriminator, RandomPerceptualLoss, VGGPerceptualLoss, feature_matching_loss,
                            load_vgg19_features_state, lsgan_discriminator_loss, lsgan_generator_loss, masked_l1,
                            shift_tolerant_l1, vgg19_features)
from reenact.models.unet import UNetGenerator

torch.manual_seed(0)


def constant_outputs(value: float, scales: int = 2) -> list[list[torch.Tensor]]:
    return [[torch.full((2, 8, 4, 4), 0.3), torch.full((2, 1, 3, 3), value)] for _ in range(scales)]


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
@pytest.mark.parametrize("in_channels, out_channels", [(12, 3), (18, 4)])
def test_generator_keeps_size_range_and_passes_gradients(size, in_channels, out_channels):
    generator = GlobalGenerator(in_channels, out_channels, ngf=8, n_downsample=3, n_blocks=2)
    x = torch.randn(2, in_channels, *size, requires_grad=True)
    y = generator(x)
    assert y.shape == (2, out_channels, *size) and y.abs().max() <= 1
    y.mean().backward()
    assert generator.encoder[1].weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_generator_rejects_sizes_it_cannot_reproduce():
    with pytest.raises(ValueError, match="multiples of 8"):
        GlobalGenerator(in_channels=3, ngf=8, n_downsample=3, n_blocks=1)(torch.randn(1, 3, 64, 60))


@pytest.mark.parametrize("network", [GlobalGenerator, UNetGenerator])
def test_gradient_checkpointing_gives_the_same_gradients(network):
    generator = network(in_channels=6, ngf=8, n_downsample=2, n_blocks=2)
    first = next(generator.parameters())
    x = torch.randn(1, 6, 32, 32)
    generator(x).square().mean().backward()
    plain = first.grad.clone()
    generator.zero_grad()
    generator.gradient_checkpointing = True
    generator(x).square().mean().backward()
    assert torch.allclose(first.grad, plain, atol=1e-6)


@pytest.mark.parametrize("n_layers", [2, 3])
def test_multiscale_discriminator_features_and_scales(n_layers):
    discriminator = MultiscaleDiscriminator(in_channels=6, ndf=8, n_layers=n_layers, n_scales=2)
    outputs = discriminator(torch.randn(1, 6, 64, 64))
    assert len(outputs) == 2 and all(len(scale) == n_layers + 2 for scale in outputs)
    first, second = outputs[0][-1], outputs[1][-1]
    assert first.shape[1] == second.shape[1] == 1
    assert abs(second.shape[-1] - first.shape[-1] / 2) <= 2


def test_lsgan_losses_known_answers():
    assert lsgan_discriminator_loss(constant_outputs(1.0), constant_outputs(0.0)) == pytest.approx(0.0)
    assert lsgan_generator_loss(constant_outputs(0.0)) == pytest.approx(1.0)
    assert lsgan_generator_loss(constant_outputs(1.0)) == pytest.approx(0.0)
    # 0.5 * ((0.5-1)^2 + (0.5-0)^2) = 0.25; generator (0.5-1)^2 = 0.25
    assert lsgan_discriminator_loss(constant_outputs(0.5), constant_outputs(0.5)) == pytest.approx(0.25)
    assert lsgan_generator_loss(constant_outputs(0.5)) == pytest.approx(0.25)


def test_feature_matching_known_answers():
    real = constant_outputs(1.0)
    assert feature_matching_loss(real, constant_outputs(0.0)) == pytest.approx(0.0)   # logits are not matched
    shifted = [[feature + 0.2 for feature in scale] for scale in real]
    # one feature per scale, offset 0.2 everywhere, two scales weighted 1/2 each
    assert feature_matching_loss(real, shifted) == pytest.approx(0.2)


def test_masked_l1_counts_only_the_weighted_region():
    pred, target = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    target[..., :2, :] = 1.0
    assert masked_l1(pred, target) == pytest.approx(0.5)
    top = torch.zeros(1, 1, 4, 4)
    top[..., :2, :] = 1
    assert masked_l1(pred, target, top) == pytest.approx(1.0)
    assert masked_l1(pred, target, 1 - top) == pytest.approx(0.0)


def step_edge(position: int, blur: bool = False) -> torch.Tensor:
    """(1, 3, 16, 16): dark left of column ``position``, light from it on; with ``blur``, a
    two-pixel ramp there instead."""
    image = torch.full((1, 3, 16, 16), -1.0)
    image[..., position:] = 1.0
    if blur:
        image[..., position - 1] = -1 / 3
        image[..., position] = 1 / 3
    return image


def test_shift_tolerant_l1_forgives_an_edge_a_pixel_off_but_not_a_blurred_one():
    target = step_edge(8)
    off_by_one, blurred = step_edge(9), step_edge(8, blur=True)
    # Plain L1 prefers the blur: 2·(2/3)·16 rows against 2·16 over 16·16 pixels.
    assert masked_l1(blurred, target) == pytest.approx(1 / 12)
    assert masked_l1(off_by_one, target) == pytest.approx(1 / 8)
    assert shift_tolerant_l1(off_by_one, target, shift=1) == pytest.approx(0.0)
    # No shift of the step fits the ramp better than none: the blur still costs what L1 says.
    assert shift_tolerant_l1(blurred, target, shift=1) == pytest.approx(1 / 12)
    weight = torch.rand(1, 1, 16, 16)
    assert shift_tolerant_l1(blurred, target, weight, shift=0) == pytest.approx(float(masked_l1(blurred, target, weight)))


def test_shift_tolerant_l1_moves_each_block_on_its_own():
    # An edge in each 8-pixel block, the prediction's a pixel right of the target's in one, left in the other.
    target = torch.cat([step_edge(3)[..., :8], step_edge(5)[..., :8]], dim=-1)
    pred = torch.cat([step_edge(4)[..., :8], step_edge(4)[..., :8]], dim=-1)
    assert shift_tolerant_l1(pred, target, shift=1) == pytest.approx(0.0)
    assert shift_tolerant_l1(pred, target, shift=1, block=16) > 0


def test_vgg19_layout_matches_torchvision():
    convs = [(k, v.shape) for k, v in vgg19_features().state_dict().items() if k.endswith("weight")]
    assert len(convs) == 16 and convs[0] == ("0.weight", (64, 3, 3, 3)) and convs[-1] == ("34.weight", (512, 512, 3, 3))
    # torchvision's features.N indices of the 16 convolutions, between ReLUs and the 5 max-pools
    conv_indices = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert list(vgg19_features().state_dict()) == [f"{i}.{p}" for i in conv_indices for p in ("weight", "bias")]
    assert sum(p.numel() for p in vgg19_features().parameters()) == 20_024_384


def torchvision_style_checkpoint() -> dict[str, torch.Tensor]:
    state = {f"features.{k}": v for k, v in vgg19_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    return state


def test_vgg_weights_are_found_only_in_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state, reason = load_vgg19_features_state()
    expected = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert state is None and str(expected) in reason
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"garbage")
    state, reason = load_vgg19_features_state()
    assert state is None and "not a valid VGG19 checkpoint" in reason and "\n" not in reason
    torch.save(torchvision_style_checkpoint(), expected)
    state, reason = load_vgg19_features_state()
    assert reason == "" and "0.weight" in state and not any(k.startswith("classifier") for k in state)
    VGGPerceptualLoss(state)


def test_vgg_checkpoint_with_wrong_shapes_is_refused_with_a_reason(tmp_path):
    checkpoint = torchvision_style_checkpoint()
    checkpoint["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(checkpoint, tmp_path / "vgg.pth")
    state, reason = load_vgg19_features_state(tmp_path / "vgg.pth")
    assert state is None and str(tmp_path / "vgg.pth") in reason and "features.0.weight" in reason
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    state, reason = load_vgg19_features_state(tmp_path / "tensor.pth")
    assert state is None and "not a state dict" in reason


def test_random_perceptual_loss_is_fixed_by_its_seed_alone():
    torch.manual_seed(1)
    first = RandomPerceptualLoss(seed=3)
    torch.manual_seed(2)                      # the global random state does not matter
    second, other = RandomPerceptualLoss(seed=3), RandomPerceptualLoss(seed=4)
    for a, b, c in zip(first.state_dict().values(), second.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b) and (a.abs().sum() == 0 or not torch.equal(a, c))
    conv = first.stages[1][0]                 # He initialisation: std sqrt(2 / fan-in)
    assert conv.weight.std().item() == pytest.approx((2 / (16 * 9)) ** 0.5, rel=0.1) and conv.bias.abs().max() == 0


def test_random_perceptual_loss_is_zero_for_identical_images_and_grows_with_the_difference():
    loss = RandomPerceptualLoss(seed=0)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(real, real) == 0
    noise = torch.randn(2, 3, 32, 32)
    near, far = (real + 0.05 * noise).requires_grad_(True), real + 0.5 * noise
    value = loss(near, real)
    value.backward()
    assert 0 < value < loss(far, real) and near.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())


def test_perceptual_loss_is_zero_for_identical_images_and_trains_only_the_input():
    loss = VGGPerceptualLoss({k.removeprefix("features."): v for k, v in torchvision_style_checkpoint().items()
                              if k.startswith("features.")})
    real = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(real, real) == pytest.approx(0.0)
    fake = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    value = loss(fake, real)
    value.backward()
    assert value > 0 and fake.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())


def test_the_undertrained_note_counts_steps_against_the_preset_and_gives_the_time_left():
    from reenact.checkpoint import undertrained_note

    state = {"preset": {"resolution": 128, "useful_steps": 900}, "step": 100, "training_seconds": 200.0}
    note = undertrained_note(state, "t.ckpt")
    assert note.startswith("t.ckpt: undertrained: 100 steps of the 900") and "0.50 steps/s" in note and "about 27 more minutes" in note
    assert undertrained_note({**state, "step": 900}, "t.ckpt") is None
    assert undertrained_note({"step": 3, "preset": {"resolution": 128}}, "old.ckpt") is None   # before the field
