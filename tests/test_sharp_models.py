"""What keeps the target's own appearance: the U-Net, the face's neural texture (gradients,
texture coordinates against the mesh's projection, its start from the frames), the body's reference
frame warped limb by limb, the stabiliser's resampling, and checkpoints from before them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reenact.body import layout
from reenact.body.reference import ReferenceWarp, WithReference, affine, choose_reference, perspective, similarity
from reenact.checkpoint import Checkpoint, save_checkpoint
from reenact.errors import ReenactError
from reenact.face.geometry import project
from reenact.face.model import load_face_model
from reenact.face.proxy import FaceProxyRenderer
from reenact.models import GlobalGenerator
from reenact.models.blend import gaussian_blur
from reenact.models.neural_texture import (NeuralTexture, TexturedGenerator, detail_where_masked, mask_commitment,
                                           pull_push, show_where_masked, texture_from_frames,
                                           texture_mask, unscattered)
from reenact.models.reference_composite import ReferenceCompositeGenerator
from reenact.models.unet import UNetGenerator
from reenact.stabilise import StabiliserSettings, TemporalStabiliser
from reenact.translator import build_generator, model_arguments
from reenact.presets import PRESETS
from tests.test_body_math import standing_person

P = layout.POSE


def test_the_unet_keeps_size_and_range_and_passes_gradients_to_its_input():
    torch.manual_seed(0)
    generator = UNetGenerator(6, 3, ngf=8, n_downsample=3, n_blocks=1)
    x = torch.randn(2, 6, 64, 96, requires_grad=True)
    y = generator(x)
    assert y.shape == (2, 3, 64, 96) and y.abs().max() <= 1
    y[0, 0, 20, 30].backward()
    assert x.grad[0].abs().sum(dim=0)[20, 30] > 0 and generator.stem[1].weight.grad.abs().sum() > 0
    assert x.grad[1].abs().sum() == 0                       # instance norm: samples stay apart
    with pytest.raises(ValueError, match="multiples of 8"):
        generator(torch.randn(1, 6, 64, 60))


def face_proxy_window(window: int = 3, size: int = 32) -> torch.Tensor:
    """(1, 4·window, size, size) proxies in model range: a ramp of texture coordinates on the left
    half (the face), background (-1) on the right."""
    proxy = torch.full((4, size, size), -1.0)
    ramp = torch.linspace(-0.9, 0.9, size)
    proxy[0, :, :size // 2] = ramp[None, :size // 2]
    proxy[1, :, :size // 2] = ramp[:, None]
    proxy[2, :, :size // 2] = 0.0
    return proxy.repeat(window, 1, 1)[None]


def test_gradients_reach_the_neural_texture_only_where_the_face_samples_it():
    torch.manual_seed(0)
    texture = NeuralTexture(channels=4, size=64, levels=3)
    generator = TexturedGenerator(UNetGenerator(4 * 3 + 3 + 4, ngf=8, n_downsample=2, n_blocks=1), texture, 4, 3)
    proxies = face_proxy_window()
    x = torch.cat([proxies, torch.zeros(1, 3, 32, 32)], dim=1)
    sampled, covered, _ = generator.sample(x)
    assert sampled.shape == (1, 4, 32, 32) and (sampled[..., 16:] == 0).all()     # off the face: nothing
    assert covered[..., :16].all() and not covered[..., 16:].any()
    generator(x).square().mean().backward()
    finest = texture.levels[0].grad[0].abs().sum(dim=0)
    assert all(level.grad.abs().sum() > 0 for level in texture.levels)
    # The face's u spans [-0.9, 0) of the texture's width: texels right of its centre get nothing.
    assert finest[:, :30].sum() > 0 and finest[:, 34:].sum() == 0


def test_the_composite_shows_the_textures_colours_where_its_mask_says_and_the_painting_elsewhere():
    torch.manual_seed(0)
    texture = NeuralTexture(channels=4, size=64, levels=3)
    texture.initialise(torch.linspace(-0.8, 0.8, 3 * 64 * 64).view(3, 64, 64))
    unet = UNetGenerator(4 * 3 + 3 + 4, out_channels=4, ngf=8, n_downsample=2, n_blocks=1)
    generator = TexturedGenerator(unet, texture, 4, 3, composite=True)
    x = torch.cat([face_proxy_window(), torch.zeros(1, 3, 32, 32)], dim=1)
    sampled, covered, _ = generator.sample(x)
    with torch.no_grad():
        unet.head[1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 50.0]))   # tanh → mask 1 everywhere
        shown = generator(x)
        painted = unet(torch.cat([x, sampled], dim=1))
    assert shown.shape == (1, 3, 32, 32)
    assert torch.allclose(shown[..., :16], sampled[:, :3, :, :16], atol=1e-5)        # the face: the texture
    assert torch.allclose(shown[..., 16:], painted[:, :3, :, 16:], atol=1e-6)        # off it: the painting
    with torch.no_grad():
        unet.head[1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, -50.0]))  # mask 0: the painting everywhere
        assert torch.allclose(generator(x), unet(torch.cat([x, sampled], dim=1))[:, :3], atol=1e-6)
        unet.head[1].bias.zero_()
    generator(x).square().mean().backward()
    assert texture.levels[0].grad.abs().sum() > 0 and unet.head[1].weight.grad[3].abs().sum() > 0


def test_the_texture_mask_is_blocks_not_pixels_and_only_on_the_face():
    covered = torch.ones(1, 1, 16, 16)
    covered[..., 8:] = 0
    checkerboard = torch.ones(1, 1, 16, 16)
    checkerboard[..., ::2, ::2] = checkerboard[..., 1::2, 1::2] = -1          # pixels flipping between 0 and 1
    torch.testing.assert_close(texture_mask(checkerboard, covered, 1), ((checkerboard + 1) / 2) * covered)
    torch.testing.assert_close(texture_mask(checkerboard, covered, 4), 0.5 * covered)   # each block: half of each
    halves = torch.where(torch.arange(16) < 8, 1.0, -1.0).view(1, 1, 16, 1).expand(1, 1, 16, 16)
    smooth = texture_mask(halves, torch.ones(1, 1, 16, 16), 4)[0, 0, :, 0]
    assert smooth[:5].eq(1).all() and smooth[-5:].eq(0).all()                # whole blocks stay whole
    assert (smooth[1:] <= smooth[:-1]).all() and 0 < smooth[7] < 1           # one soft edge between them


def test_the_mask_gain_pushes_each_block_to_one_source_and_leaves_one_half_alone():
    covered = torch.ones(1, 1, 8, 8)
    levels = torch.tensor([0.3, 0.45, 0.5, 0.8]).repeat_interleave(2).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    painted = levels * 2 - 1                                                   # the mask channel, in model range
    torch.testing.assert_close(texture_mask(painted, covered, 1, gain=1.0), levels)
    pushed = texture_mask(painted, covered, 1, gain=4.0)[0, 0, 0, ::2]
    torch.testing.assert_close(pushed, torch.tensor([0.0, 0.3, 0.5, 1.0]))   # 0.5 ± 4·distance, clamped
    assert texture_mask(painted, torch.zeros_like(covered), 1, gain=4.0).eq(0).all()   # still none off the face
    blocks = texture_mask(torch.full((1, 1, 16, 16), 0.4), covered.new_ones(1, 1, 16, 16), 4, gain=100.0)
    assert blocks.eq(1).all()                                                  # a block at 0.7 shows the texture only


def test_the_gaussian_blur_is_opencvs_with_repeated_edges():
    images = torch.rand(2, 3, 20, 24)
    for sigma in (0.5, 2.0):
        radius = max(1, round(3 * sigma))
        expected = [cv2.GaussianBlur(image.permute(1, 2, 0).numpy(), (2 * radius + 1, 2 * radius + 1), sigma,
                                     borderType=cv2.BORDER_REPLICATE) for image in images]
        torch.testing.assert_close(gaussian_blur(images, sigma), torch.from_numpy(np.stack(expected)).permute(0, 3, 1, 2),
                                   atol=1e-5, rtol=0)


def test_the_gained_mask_shows_the_textures_detail_in_the_soft_blends_colours():
    fine = torch.where((torch.arange(16)[:, None] + torch.arange(16)) % 2 == 0, 0.3, -0.3)   # one-pixel checks
    texture = (0.2 + fine).expand(1, 3, 16, 16)
    painted = torch.full((1, 4, 16, 16), -0.4)                                  # flat, darker; a mask channel
    soft, gained_mask = torch.full((1, 1, 16, 16), 0.5), torch.ones(1, 1, 16, 16)
    torch.testing.assert_close(detail_where_masked(painted, texture, soft, soft), show_where_masked(painted, texture, soft))
    frame = detail_where_masked(painted, texture, soft, gained_mask)[:, :3]
    inside = frame[..., 6:10, 6:10]
    assert inside.mean().item() == pytest.approx(-0.1, abs=1e-4)                # the blend's colour: (0.2 − 0.4) / 2
    assert (inside - inside.mean()).abs().mean().item() == pytest.approx(0.3, abs=0.01)   # the texture's whole detail
    blended = show_where_masked(painted, texture, soft)[..., 6:10, 6:10]
    assert (blended - blended.mean()).abs().mean().item() == pytest.approx(0.15, abs=0.01)  # the blend keeps half


def test_the_generator_trains_on_the_soft_mask_and_shows_the_gained_one():
    torch.manual_seed(0)
    unet = UNetGenerator(4 * 3 + 3 + 4, out_channels=4, ngf=8, n_downsample=2, n_blocks=1)
    generator = TexturedGenerator(unet, NeuralTexture(channels=4, size=64, levels=3), 4, 3, composite=True,
                                  mask_scale=4, mask_gain=100.0)
    x = torch.cat([face_proxy_window(), torch.zeros(1, 3, 32, 32)], dim=1)
    with torch.no_grad():
        sampled, _, showable = generator.sample(x)
        painted = unet(torch.cat([x, sampled], dim=1))
        trained = generator.train()(x, with_mask=True)[:, 3:4]
        frame_and_mask = generator.eval()(x, with_mask=True)
    soft, shown = texture_mask(painted, showable, 4), frame_and_mask[:, 3:4]
    torch.testing.assert_close(trained, soft)
    torch.testing.assert_close(shown, texture_mask(painted, showable, 4, gain=100.0))
    torch.testing.assert_close(frame_and_mask[:, :3], detail_where_masked(painted, sampled[:, :3], soft, shown))
    inside = showable.bool() & (F.max_pool2d(1 - showable, 9, 1, 4) == 0)    # away from the face's edge
    assert ((shown[inside] < 0.01) | (shown[inside] > 0.99)).float().mean() > 0.8 > \
        ((trained[inside] < 0.01) | (trained[inside] > 0.99)).float().mean()


def test_the_commitment_loss_is_zero_for_either_source_and_largest_for_half_of_each():
    covered = torch.zeros(2, 1, 8, 8)
    covered[..., :4] = 1
    assert mask_commitment(torch.randint(0, 2, (2, 1, 8, 8)).float(), covered) == 0
    assert mask_commitment(torch.full((2, 1, 8, 8), 0.5), covered) == pytest.approx(0.25)
    off_face = torch.full((2, 1, 8, 8), 0.5) * (1 - covered)                 # off the face it does not count
    assert mask_commitment(off_face, covered) == 0
    mask = torch.full((2, 1, 8, 8), 0.7, requires_grad=True)
    mask_commitment(mask, covered).backward()
    assert (mask.grad[..., :4] < 0).all() and (mask.grad[..., 4:] == 0).all()   # a mask above 1/2 is pushed to 1


def test_a_generator_asked_for_its_mask_appends_it_and_where_the_face_is():
    torch.manual_seed(0)
    unet = UNetGenerator(4 * 3 + 3 + 4, out_channels=4, ngf=8, n_downsample=2, n_blocks=1)
    generator = TexturedGenerator(unet, NeuralTexture(channels=4, size=64, levels=3), 4, 3, composite=True, mask_scale=4)
    x = torch.cat([face_proxy_window(), torch.zeros(1, 3, 32, 32)], dim=1)
    with torch.no_grad():
        output = generator(x, with_mask=True)
        torch.testing.assert_close(output[:, :3], generator(x))
        sampled, covered, _ = generator.sample(x)
        expected = texture_mask(unet(torch.cat([x, sampled], dim=1)), covered, 4)
    assert output.shape == (1, 5, 32, 32)
    torch.testing.assert_close(output[:, 3:4], expected)
    torch.testing.assert_close(output[:, 4:5], covered)


def test_training_with_the_commitment_loss_ramps_it_up_and_moves_the_mask_off_a_blend():
    from dataclasses import replace

    from tests.test_cuda_paths_on_cpu import CONFIG, SMALL, small_clip
    from reenact.training import Acceleration, build_networks, train_step, unwrap

    torch.manual_seed(0)
    config = replace(CONFIG, steps=4, learning_rate=5e-4, lr_schedule="constant", mask_commit_weight=10.0, ema=False)
    arguments = model_arguments(SMALL, config.window, 3, config.temporal_frames, config.temporal_scales,
                                neural_texture=True, texture_composite=True, mask_scale=4)
    networks = build_networks(arguments, None, config, torch.device("cpu"), lambda m: m, Acceleration())
    clip, sampler = small_clip(), torch.Generator().manual_seed(0)
    probe = clip.training_batch(torch.Generator().manual_seed(1), 2)

    def commitment() -> float:
        with torch.no_grad():
            output = unwrap(networks.generator)(torch.cat([probe["proxies"][:, 0], probe["frames"][:, 0]], 1), with_mask=True)
        return float(mask_commitment(output[:, 3:4], output[:, 4:5]))

    before = commitment()
    losses = [float(train_step(networks, clip.training_batch(sampler, 2), config)["g_mask"]) for _ in range(15)]
    assert losses[0] == 0 and 0 < losses[1] < losses[3]         # nothing at the start, then the ramp (4 steps)
    assert before > 0.15 and commitment() < 0.5 * before, (before, commitment())   # 0.25: half of each everywhere


def test_a_texture_checkpoint_from_before_the_composite_builds_without_it():
    arguments = model_arguments(PRESETS["tiny"], 3, 4, 3, 1, neural_texture=True, texture_composite=True)
    assert arguments["generator"]["out_channels"] == 4 and arguments["neural_texture"]["composite"]
    assert arguments["neural_texture"]["mask_scale"] == 1          # what checkpoints from before the blocks had
    assert "texture.steady" in build_generator(arguments).state_dict()
    del arguments["neural_texture"]["mask_scale"], arguments["neural_texture"]["steady"], arguments["neural_texture"]["mask_gain"]
    generator = build_generator(arguments)
    assert generator.mask_scale == 1 and "texture.steady" not in generator.state_dict()   # loads a state without it
    assert generator.mask_gain == 1.0                              # shows the mask it was trained with
    del arguments["neural_texture"]["composite"]
    arguments["generator"]["out_channels"] = 3
    generator = build_generator(arguments)
    assert not generator.composite and generator.generator.head[1].out_channels == 3


def test_the_rasterised_texture_coordinates_agree_with_the_meshs_projection():
    model = load_face_model()
    resolution = 256
    renderer = FaceProxyRenderer(model, resolution)
    rotation, translation, focal, center = np.eye(3)[None], np.array([[0.0, 0.0, -60.0]]), 800.0, (320.0, 240.0)
    identity, expression = np.zeros(model.mesh_identity_basis.shape[0]), np.zeros((1, len(model.expression_names)))
    neutral = model.mesh(torch.zeros(len(identity)), torch.zeros(expression.shape))
    pixels, _ = project(neutral, torch.as_tensor(rotation, dtype=torch.float32), torch.as_tensor(translation, dtype=torch.float32),
                        torch.tensor(focal), center)
    low, high = pixels[0].amin(dim=0), pixels[0].amax(dim=0)
    size = float((high - low).max()) * 1.2
    crop = np.array([[float(low[0]) - 0.1 * size, float(low[1]) - 0.1 * size, size]])
    image = renderer.correspondence(identity, expression, rotation, translation, focal, center, crop)[0].astype(np.float32)
    in_crop = ((pixels[0].numpy() - crop[0, :2]) * resolution / crop[0, 2])
    columns, rows = np.round(in_crop - 0.5).astype(int).T
    colours = renderer.colors.numpy()
    drawn = image[rows, columns]
    visible = np.abs(drawn[:, 2] - colours[:, 2]) <= 2          # the vertex is the front surface there
    assert visible.mean() > 0.5
    error = np.abs(drawn[visible, :2] - colours[visible, :2])
    assert np.median(error) <= 1.5 and np.quantile(error, 0.95) <= 4.0


def test_the_texture_starts_as_the_frames_colours_where_the_proxy_puts_them():
    size = 32
    ramp = np.linspace(0, 255, 64).round().astype(np.uint8)
    proxy = np.zeros((1, 4, 64, 64), np.uint8)
    proxy[0, 0] = ramp[None, :]
    proxy[0, 1] = ramp[:, None]
    proxy[0, 2] = 128
    proxy[0, :, :, :8] = 0                                  # a strip off the face
    # Each pixel's colour says where it belongs: red = u, green = v; the texture must put it back there.
    frames = np.stack([proxy[0, 0], proxy[0, 1], np.full((64, 64), 50, np.uint8)])[None]
    frames[0, :, :, :8] = 255                                # off the face: must not leak in
    colours, steady = texture_from_frames(torch.from_numpy(frames), torch.from_numpy(proxy), size, steady_spread=64)
    as_levels = (colours + 1) * 127.5
    texel_u = np.arange(size) * 255 / (size - 1)
    np.testing.assert_allclose(as_levels[0, 5, 5:].numpy(), texel_u[5:], atol=5)
    np.testing.assert_allclose(as_levels[1, 5:, 5].numpy(), texel_u[5:], atol=5)
    np.testing.assert_allclose(as_levels[2].numpy(), 50, atol=0.5)
    assert steady[0, :, 4:].all() and not steady[0, :, :3].any()     # one frame: steady wherever it was seen


def test_the_texture_starts_from_what_most_frames_show_not_their_average():
    proxy = np.zeros((1, 3, 16, 16), np.uint8)
    proxy[0, 0] = np.linspace(0, 255, 16).round().astype(np.uint8)[None, :]
    proxy[0, 1] = np.linspace(0, 255, 16).round().astype(np.uint8)[:, None]
    proxy[0, 2] = 128
    lips = np.full((3, 16, 16), 90, np.uint8)
    teeth = np.full((3, 16, 16), 250, np.uint8)              # one frame in three has the mouth open
    colours, _ = texture_from_frames(torch.from_numpy(np.stack([lips, teeth, lips])),
                                     torch.from_numpy(np.repeat(proxy, 3, axis=0)), 16, steady_spread=64)
    np.testing.assert_allclose((colours.numpy() + 1) * 127.5, 90, atol=0.5)


def test_texels_whose_brightness_changes_over_the_frames_are_not_steady():
    proxy = np.zeros((1, 3, 16, 16), np.uint8)
    proxy[0, 0] = np.linspace(0, 255, 16).round().astype(np.uint8)[None, :]
    proxy[0, 1] = np.linspace(0, 255, 16).round().astype(np.uint8)[:, None]
    proxy[0, 2] = 128
    frames = np.full((10, 3, 16, 16), 120, np.uint8)
    frames[:, :, :, :8] += np.arange(10, dtype=np.uint8)[:, None, None, None] * 3     # shading: spans 27 of 255
    frames[::2, :, 4:8, 8:] = 250                        # a mouth opening every other frame: spans 130
    _, steady = texture_from_frames(torch.from_numpy(frames), torch.from_numpy(np.repeat(proxy, 10, axis=0)), 16,
                                    steady_spread=64)
    assert steady[0, :, :8].all()                        # the shaded skin stays steady
    assert not steady[0, 4:8, 8:].any() and steady[0, 9:, 8:].all() and steady[0, :3, 8:].all()
    _, everything = texture_from_frames(torch.from_numpy(frames), torch.from_numpy(np.repeat(proxy, 10, axis=0)), 16,
                                        steady_spread=255)
    assert everything.all()


def test_scattered_unsteady_texels_become_steady_and_lines_stay():
    steady = torch.ones(1, 12, 12)
    steady[0, 2, 2] = 0                                  # a lone texel
    steady[0, 2, 8:10] = 0                               # a pair: each has one unsteady neighbour
    steady[0, 6, 1:11] = 0                               # a seam: a line
    steady[0, 9:12, 0:3] = 0                             # a patch in the corner
    cleared = unscattered(steady)
    assert cleared[0, 2, 2] == 1 and cleared[0, 2, 8:10].all()
    assert not cleared[0, 6, 3:9].any() and not cleared[0, 9:, :3].any()
    assert cleared[0, 6, [1, 2, 9, 10]].all()            # a line's end has one neighbour: each pass shortens it by one
    assert unscattered(torch.ones(1, 5, 5)).all() and not unscattered(torch.zeros(1, 5, 5)).any()


def test_the_texture_shows_only_on_steady_texels():
    torch.manual_seed(0)
    texture = NeuralTexture(channels=4, size=64, levels=3, steady=True)
    steady = torch.ones(1, 64, 64)
    steady[:, 40:] = 0                                   # the texture's lower rows were not steady
    texture.initialise(torch.zeros(3, 64, 64), steady)
    unet = UNetGenerator(4 * 3 + 3 + 4, out_channels=4, ngf=8, n_downsample=2, n_blocks=1)
    generator = TexturedGenerator(unet, texture, 4, 3, composite=True)
    x = torch.cat([face_proxy_window(), torch.zeros(1, 3, 32, 32)], dim=1)
    with torch.no_grad():
        unet.head[1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 50.0]))   # mask 1 wherever the texture may show
        output = generator(x, with_mask=True)
    showable, covered = output[:, 4], generator.sample(x)[1][:, 0]
    # The face's v runs down the rows from -0.9 to 0.9: rows sampling texels past 40 of 64 may not show it.
    assert showable[:, :12, :16].gt(0.999).all() and showable[:, 24:, :16].eq(0).all() and covered[:, 24:, :16].eq(1).all()
    torch.testing.assert_close(output[:, 3], showable)


def test_pull_push_keeps_seen_texels_and_fills_the_rest_from_them():
    colour_sum, count = torch.zeros(3, 8, 8), torch.zeros(1, 8, 8)
    colour_sum[:, 2, 3], count[:, 2, 3] = torch.tensor([30.0, 60.0, 90.0]), 3
    filled = pull_push(colour_sum, count)
    np.testing.assert_allclose(filled.numpy(), np.broadcast_to(np.array([10.0, 20.0, 30.0])[:, None, None], (3, 8, 8)), atol=1e-5)
    colour_sum[:, 6, 6], count[:, 6, 6] = 100.0, 1
    filled = pull_push(colour_sum, count)
    assert torch.allclose(filled[:, 2, 3], torch.tensor([10.0, 20.0, 30.0])) and torch.allclose(filled[:, 6, 6], torch.tensor(100.0))


def test_least_squares_similarity_and_affine_recover_known_maps():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (6, 2))
    angle, scale, shift = 0.7, 1.3, np.array([12.0, -5.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(similarity(points, points @ rotation.T + shift), np.hstack([rotation, shift[:, None]]), atol=1e-9)
    linear = np.array([[1.2, 0.3], [-0.1, 0.8]])
    np.testing.assert_allclose(affine(points, points @ linear.T + shift), np.hstack([linear, shift[:, None]]), atol=1e-9)


def test_the_limb_warp_moves_a_limb_where_the_skeleton_says():
    resolution = 128
    pose = standing_person(ground_y=120, height=100, center_x=64)
    shoulder = pose[P["left_shoulder"], :2]
    pose[P["left_elbow"], :2] = elbow = shoulder + np.array([22.0, 0.0])     # the left arm held out level
    pose[P["left_wrist"], :2] = wrist = elbow + np.array([26.0, 0.0])
    frame = np.zeros((resolution, resolution, 3), np.uint8)
    for s in np.linspace(0, 1, 50):                                         # a red forearm along elbow → wrist
        x, y = (elbow + s * (wrist - elbow)).round().astype(int)
        frame[y - 1:y + 2, x - 1:x + 2] = (255, 0, 0)
    red = frame[..., 0] == 255
    warp = ReferenceWarp(frame, pose, min_confidence=0.5)
    np.testing.assert_array_equal(warp(pose)[red], frame[red])             # the reference's own pose: itself
    driving = pose.copy()
    driving[P["left_wrist"], :2] = elbow + np.array([0.0, -26.0])           # the forearm raised upright
    warped = warp(driving)
    for s in (0.3, 0.5, 0.8):
        x, y = (elbow + s * np.array([0.0, -26.0])).round().astype(int)
        assert (warped[y, x] == (255, 0, 0)).all()
    x, y = ((elbow + wrist) / 2).round().astype(int)
    assert warped[y, x].max() == 0                                           # and nothing where it was
    nobody = driving.copy()
    nobody[:, 2] = 0
    assert warp(nobody).max() == 0 and warp(None).max() == 0


def test_the_perspective_fit_maps_a_quad_onto_another_and_falls_back_to_affine_when_one_folds():
    hips_and_knees = np.array([[40.0, 60.0], [80.0, 60.0], [80.0, 100.0], [40.0, 100.0]])
    flared = np.array([[45.0, 58.0], [75.0, 58.0], [95.0, 104.0], [25.0, 100.0]])
    matrix = perspective(hips_and_knees, flared)
    mapped = cv2.perspectiveTransform(hips_and_knees[None].astype(np.float32), matrix)[0]
    np.testing.assert_allclose(mapped, flared, atol=1e-3)
    crossed = flared[[0, 1, 3, 2]]                                     # the knees crossed: the outline folds
    np.testing.assert_allclose(perspective(hips_and_knees, crossed), np.vstack([affine(hips_and_knees, crossed), [0, 0, 1]]))


def test_the_skirt_spans_the_gap_between_spread_legs_with_the_references_cloth_down_to_mid_thigh(tmp_path):
    pose = standing_person(ground_y=120, height=100, center_x=64)
    frame = np.zeros((128, 128, 3), np.uint8)
    hull = pose[[P["left_hip"], P["right_hip"], P["right_knee"], P["left_knee"]], :2]
    cv2.fillConvexPoly(frame, np.round(hull).astype(np.int32), (0, 200, 0))   # a green dress, hips to knees
    warp = ReferenceWarp(frame, pose, min_confidence=0.5)
    driving = pose.copy()
    for side, sign in (("left", 1), ("right", -1)):                  # a wide stance: knees 60 px apart
        driving[P[f"{side}_knee"], 0] = 64 + sign * 30
        driving[P[f"{side}_ankle"], 0] = 64 + sign * 40
    warped = warp(driving)
    hip_y, knee_y = pose[P["left_hip"], 1], pose[P["left_knee"], 1]
    between_thighs = lambda image, fraction: image[int(round(hip_y + fraction * (knee_y - hip_y))), 64]
    assert (between_thighs(warped, 0.25) == (0, 200, 0)).all() and (between_thighs(warped, 0.45) == (0, 200, 0)).all()
    assert (between_thighs(warped, 0.85) == 0).all()   # below mid-thigh the gap between the legs stays empty
    save_checkpoint(tmp_path / "reference.pt", warp.state())
    state = torch.load(tmp_path / "reference.pt", weights_only=True)
    np.testing.assert_array_equal(ReferenceWarp.from_state(state)(driving), warped)
    del state["skirt"]                                      # a checkpoint from before it: shown no skirt
    assert (between_thighs(ReferenceWarp.from_state(state)(driving), 0.3) == 0).all()
    driving[P["left_knee"], 2] = 0                         # a knee unseen: the skirt from its other three corners
    assert (between_thighs(warp(driving), 0.3) == (0, 200, 0)).all()


def test_the_reference_is_a_frame_showing_every_part_near_the_median_pose():
    poses = np.stack([standing_person(120, 100, 64 + dx) for dx in (-20, 0, 1, 20)])
    poses[1, P["left_wrist"], 2] = 0                                   # a forearm unseen
    assert choose_reference(poses, np.ones(4, bool), 4, 0.5) == 2
    assert choose_reference(poses, np.array([True, True, False, True]), 4, 0.5) in (0, 3)


def test_the_stabiliser_resamples_without_washing_out_detail():
    rng = np.random.default_rng(0)
    scene = rng.uniform(0, 255, (96, 96, 3)).astype(np.float32)
    proxy_scene = (rng.uniform(0, 255, (96, 96, 3))).astype(np.uint8)
    energies = {}
    for name, resample in (("linear", cv2.INTER_LINEAR), ("lanczos", cv2.INTER_LANCZOS4)):
        stabilise = TemporalStabiliser(StabiliserSettings(blend=0.93, resample=resample))
        for t in range(12):                                            # half a pixel right each frame
            shift = np.float32([[1, 0, -0.5 * t], [0, 1, 0]])
            moved = lambda image: cv2.warpAffine(image, shift, (96, 96), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            shown = stabilise(np.ascontiguousarray(moved(proxy_scene)), np.clip(moved(scene), 0, 255).astype(np.uint8))
        energies[name] = float(np.square(cv2.Laplacian(shown[16:-16, 16:-16].astype(np.float32), cv2.CV_32F)).mean())
    assert energies["lanczos"] > 1.3 * energies["linear"]


def old_checkpoint_state() -> dict:
    """A checkpoint as reenact wrote it before the U-Net: no "architecture", the global generator."""
    preset = PRESETS["tiny"]
    arguments = model_arguments(preset, 3, 3, 3, 1)
    del arguments["architecture"]
    generator = GlobalGenerator(**arguments["generator"])
    return {"model": arguments, "generator": generator.state_dict(), "generator_ema": None}


def test_an_old_checkpoint_builds_its_global_generator_and_a_mismatched_one_fails_in_words(tmp_path):
    state = old_checkpoint_state()
    assert isinstance(build_generator(state["model"]), GlobalGenerator)
    checkpoint = Checkpoint(tmp_path / "old.ckpt", state)
    assert isinstance(checkpoint.generator(torch.device("cpu")), GlobalGenerator)
    state["model"]["architecture"] = {"generator": "unet"}
    with pytest.raises(ReenactError, match="old.ckpt: .*train it again"):
        Checkpoint(tmp_path / "old.ckpt", state).generator(torch.device("cpu"))
    state["model"]["architecture"] = {"generator": "transformer"}
    with pytest.raises(ReenactError, match="old.ckpt: .*generator 'transformer'.*train it again"):
        Checkpoint(tmp_path / "old.ckpt", state).generator(torch.device("cpu"))


def test_a_subjects_proxies_gain_the_warped_reference_a_slice_at_a_time():
    poses = np.stack([standing_person(120, 100, 64 + dx) for dx in (0, 5, 10)])
    frame = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    warp = ReferenceWarp(frame, poses[0], min_confidence=0.5)
    skeletons = np.random.default_rng(1).integers(0, 255, (3, 128, 128, 3), dtype=np.uint8)
    proxies = WithReference(skeletons, poses, warp)
    assert proxies.shape == (3, 128, 128, 6) and len(proxies) == 3
    chunk = proxies[1:3]
    np.testing.assert_array_equal(chunk[..., :3], skeletons[1:3])
    np.testing.assert_array_equal(chunk[1, ..., 3:], warp(poses[2]))


def body_window_with_reference(window: int = 3, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A (1, 6·window + 3, R, R) generator input in model range: per proxy a skeleton's 3 channels and a
    warped reference's 3 (painted on the left half only, the rest black), then the previous frame;
    and frame t's reference."""
    generator = torch.Generator().manual_seed(0)
    proxies = torch.rand(1, 6 * window, size, size, generator=generator) * 2 - 1
    for t in range(window):
        proxies[:, 6 * t + 3:6 * t + 6, :, size // 2:] = -1
    x = torch.cat([proxies, torch.zeros(1, 3, size, size)], dim=1)
    centre = 6 * (window // 2)
    return x, x[:, centre + 3:centre + 6]


def test_the_body_shows_the_warped_reference_where_its_mask_says_and_keeps_the_alpha():
    torch.manual_seed(0)
    unet = UNetGenerator(6 * 3 + 3, out_channels=5, ngf=8, n_downsample=2, n_blocks=1)
    generator = ReferenceCompositeGenerator(unet, proxy_channels=6, window=3)
    x, reference = body_window_with_reference()
    with torch.no_grad():
        unet.head[1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 50.0]))   # tanh → mask 1 everywhere
        shown, painted = generator(x), unet(x)
    assert shown.shape == (1, 4, 32, 32)
    torch.testing.assert_close(shown[..., :3, :, :16], reference[..., :16])      # the warped reference
    torch.testing.assert_close(shown[..., :3, :, 16:], painted[:, :3, :, 16:])   # none there: the painting
    torch.testing.assert_close(shown[:, 3:], painted[:, 3:4])                  # the plate's alpha passes through
    with torch.no_grad():
        unet.head[1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, -50.0]))  # mask 0: the painting everywhere
        torch.testing.assert_close(generator(x), unet(x)[:, :4])
        unet.head[1].bias.zero_()
    generator(x).square().mean().backward()
    assert unet.head[1].weight.grad[4].abs().sum() > 0                         # the mask learns


def test_the_body_trains_on_the_soft_reference_mask_and_shows_the_gained_one():
    torch.manual_seed(0)
    unet = UNetGenerator(6 * 3 + 3, out_channels=5, ngf=8, n_downsample=2, n_blocks=1)
    generator = ReferenceCompositeGenerator(unet, proxy_channels=6, window=3, mask_scale=4, mask_gain=4.0)
    x, reference = body_window_with_reference()
    covered = (reference > -1).any(dim=1, keepdim=True).float()
    with torch.no_grad():
        painted = unet(x)
        soft, gained_mask = texture_mask(painted, covered, 4), texture_mask(painted, covered, 4, gain=4.0)
        torch.testing.assert_close(generator.train()(x), show_where_masked(painted, reference, soft))
        torch.testing.assert_close(generator.eval()(x), detail_where_masked(painted, reference, soft, gained_mask))


def test_a_body_checkpoint_built_with_the_reference_composite_paints_over_its_plate_and_one_without_loads_as_before():
    arguments = model_arguments(PRESETS["tiny"], 3, 6, 3, 1, background=True, reference_composite=True)
    assert arguments["generator"]["out_channels"] == 5 and arguments["reference_composite"]["proxy_channels"] == 6
    generator = build_generator(arguments).eval()
    assert isinstance(generator.generator, ReferenceCompositeGenerator)
    size = PRESETS["tiny"].resolution
    x, _ = body_window_with_reference(size=size)
    with torch.no_grad():
        assert generator(x).shape == (1, 3, size, size) and generator(x, with_alpha=True).shape == (1, 4, size, size)
    del arguments["reference_composite"]                                        # a checkpoint from before it
    arguments["generator"]["out_channels"] = 4
    generator = build_generator(arguments)
    assert not isinstance(generator.generator, ReferenceCompositeGenerator)
    assert generator.generator.head[1].out_channels == 4


class PlusPattern(torch.nn.Module):
    """The input's first three channels plus a fixed pattern tied to the canvas, not the content."""
    size_multiple = 8

    def __init__(self, size: int):
        super().__init__()
        self.pattern = torch.nn.Parameter(torch.randn(1, 3, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :3] + self.pattern


def test_shift_consistency_is_zero_for_an_equivariant_generator_and_the_pattern_change_for_one_tied_to_the_canvas():
    from reenact.training import shift_consistency

    torch.manual_seed(0)
    center = torch.full((1, 3, 32, 32), -1.0)
    center[:, :, 10:22, 12:20] = 0.5                               # a drawn patch in the middle
    x = torch.randn(1, 6, 32, 32)
    equivariant = torch.nn.Conv2d(6, 3, 3, padding=1, padding_mode="circular")
    equivariant.size_multiple = 8
    with torch.no_grad():
        assert float(shift_consistency(equivariant, x, equivariant(x), center)) < 1e-6
    tied = PlusPattern(32)
    loss = shift_consistency(tied, x, tied(x), center)
    assert 0.5 < float(loss.detach()) < 2.0                                 # |p − p moved|, p ~ N(0, 1): about 1.13
    loss.backward()
    changed = tied.pattern.grad.abs().sum(dim=1)[0] > 0
    assert changed[16, 16] and not changed[2, 2]                   # only where the proxy drew (and its moved copy)


def test_training_with_shift_consistency_makes_the_generator_steadier_under_shifts():
    from dataclasses import replace

    from tests.test_cuda_paths_on_cpu import CONFIG, SMALL, small_clip
    from reenact.translator import center_proxy
    from reenact.training import Acceleration, build_networks, shift_consistency, train_step, unwrap

    def trained(weight: float) -> float:
        torch.manual_seed(0)
        config = replace(CONFIG, steps=40, learning_rate=1e-3, lr_schedule="constant", ema=False,
                         shift_consistency_weight=weight)
        arguments = model_arguments(SMALL, config.window, 3, config.temporal_frames, config.temporal_scales)
        networks = build_networks(arguments, None, config, torch.device("cpu"), lambda m: m, Acceleration())
        clip, sampler = small_clip(), torch.Generator().manual_seed(0)
        losses = [train_step(networks, clip.training_batch(sampler, 2), config) for _ in range(40)]
        assert ("g_shift" in losses[-1]) == (weight > 0)
        probe = clip.training_batch(torch.Generator().manual_seed(1), 4)
        generator = unwrap(networks.generator).eval()
        x = torch.cat([probe["proxies"][:, 0], probe["frames"][:, 0]], 1)
        torch.manual_seed(2)
        with torch.no_grad():
            return float(np.mean([float(shift_consistency(generator, x, generator(x), center_proxy(probe["proxies"][:, 0], config.window)))
                                  for _ in range(8)]))

    assert trained(50.0) < 0.7 * trained(0.0)
