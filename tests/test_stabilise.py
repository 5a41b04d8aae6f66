"""The temporal stabiliser: held while the proxy is still, follows the proxy's motion, gives way
where the proxy changes in a way no motion explains; and on a real clip's proxies."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from reenact.evaluation.held_out import region_masks
from reenact.evaluation import metrics
from reenact.modes import BODY, FACE
from reenact.stabilise import TemporalStabiliser
from reenact.subject import Subject
from reenact.translator import StreamingTranslator


def texture(size: int, seed: int) -> np.ndarray:
    """A smooth random RGB image with detail for optical flow to lock onto."""
    noise = np.random.default_rng(seed).uniform(0, 255, (size, size, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2) * 3 - 255, 0, 255).astype(np.uint8)


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float = 12.0) -> np.ndarray:
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def test_a_still_proxy_holds_the_first_frame_exactly_however_the_generator_wavers():
    rng = np.random.default_rng(0)
    proxy, scene = texture(64, 1), texture(64, 2)
    stabilise = TemporalStabiliser(FACE.stabiliser)
    shown = [stabilise(proxy, noisy(scene, rng)) for _ in range(6)]
    for frame in shown[1:]:
        np.testing.assert_array_equal(frame, shown[0])


def test_a_moving_proxy_carries_the_previous_output_along_and_averages_out_the_noise():
    rng = np.random.default_rng(0)
    wide_proxy, wide_scene = texture(96, 1), texture(96, 2)
    # The blend alone: restoring the detail puts the generator's contrast back, its noise's too, by
    # design (the next tests).
    stabilise = TemporalStabiliser(replace(FACE.stabiliser, restore_detail=False))
    raw_errors, shown_errors = [], []
    for t in range(16):                                   # both move 2 pixels right a frame
        window = np.s_[16:80, 32 - 2 * t:96 - 2 * t]
        clean = wide_scene[window]
        generated = noisy(clean, rng)
        shown = stabilise(np.ascontiguousarray(wide_proxy[window]), generated)
        if t >= 8:
            inner = np.s_[8:-8, 8:-8]
            raw_errors.append(np.abs(generated[inner].astype(float) - clean[inner]).mean())
            shown_errors.append(np.abs(shown[inner].astype(float) - clean[inner]).mean())
    # Blending along the right motion keeps the picture (a wrong one would smear it) and cuts the noise.
    assert np.mean(shown_errors) < 0.6 * np.mean(raw_errors)


def test_a_rendered_flow_is_followed_where_the_proxy_images_show_no_motion():
    """A flat proxy gives DIS nothing to track; the geometry's flow still says where things went."""
    rng = np.random.default_rng(0)
    wide_scene = texture(96, 2)
    flat_proxy = np.full((64, 64, 3), 128, np.uint8)
    moved_by_two = np.broadcast_to(np.float32([-2.0, 0.0]), (64, 64, 2)).copy()    # from each pixel back to the last frame
    errors = {}
    for rendered in (True, False):
        stabilise, shown_errors = TemporalStabiliser(FACE.stabiliser), []
        for t in range(12):
            clean = wide_scene[16:80, 32 - 2 * t:96 - 2 * t]
            shown = stabilise(flat_proxy, noisy(clean, rng), moved_by_two if rendered and t else None)
            if t >= 6:
                shown_errors.append(np.abs(shown[8:-8, 8:-8].astype(float) - clean[8:-8, 8:-8]).mean())
        errors[rendered] = np.mean(shown_errors)
    assert errors[True] < 0.5 * errors[False]          # without it the still proxy holds a stale picture


def test_a_rendered_flow_at_the_subjects_resolution_is_scaled_to_the_models():
    from reenact.stabilise import resized_flow

    flow = np.broadcast_to(np.float32([4.0, -2.0]), (128, 128, 2))
    np.testing.assert_allclose(resized_flow(flow, 64), np.broadcast_to([2.0, -1.0], (64, 64, 2)))


def test_where_the_proxy_changes_without_moving_the_new_frame_shows_through():
    proxy, scene = texture(64, 1), texture(64, 2)
    stabilise = TemporalStabiliser(FACE.stabiliser)
    stabilise(proxy, scene)
    changed_proxy = proxy.copy()
    changed_proxy[20:40, 20:40] += 128                                    # every level moved by half the range
    changed_scene = scene.copy()
    changed_scene[20:40, 20:40] = 0
    shown = stabilise(changed_proxy, changed_scene)
    inside, outside = shown[24:36, 24:36].astype(float), shown[:10, :10].astype(float)
    assert inside.mean() < 0.35 * scene[24:36, 24:36].mean()            # mostly the new, dark patch
    assert np.abs(outside - scene[:10, :10]).mean() < 3


def stripes(size: int, amplitude: float) -> np.ndarray:
    """(size, size) ±amplitude, alternating every column: all of it in the finest band, and seen by
    a 3×3 Laplacian (which a one-pixel checkerboard is not: its kernel's corners match the centre)."""
    return amplitude * (1 - 2 * (np.arange(size) % 2))[None, :].repeat(size, axis=0).astype(np.float32)


def test_the_finest_band_is_scaled_up_to_the_generated_frames_fine_detail_energy_in_the_frames_colours():
    from reenact.stabilise import with_detail_of

    ramp = np.broadcast_to(np.linspace(60, 180, 128, dtype=np.float32)[None, :, None], (128, 128, 3))
    colour = ramp * np.float32([1.0, 0.8, 0.6])
    frame = colour + stripes(128, 5)[..., None]
    generated = colour + stripes(128, 10)[..., None]                # the same pattern, twice the contrast
    everywhere = np.ones((128, 128, 1), np.float32)      # 128 px: the band is one pixel wide
    restored = with_detail_of(frame, generated, everywhere, max_gain=4)
    inner = np.s_[8:-8, 8:-8]
    np.testing.assert_allclose(restored[inner], generated[inner], atol=0.5)
    # At most max_gain; never down; only as far as ``where`` says.
    np.testing.assert_allclose(with_detail_of(frame, generated, everywhere, 1.5)[inner],
                               (colour + stripes(128, 7.5)[..., None])[inner], atol=0.5)
    np.testing.assert_allclose(with_detail_of(generated, frame, everywhere, 4), generated, atol=1e-4)
    np.testing.assert_allclose(with_detail_of(frame, generated, 0 * everywhere, 4), frame)


def test_an_averaged_frame_gets_back_the_fine_detail_energy_the_sharpness_figure_sees():
    """A blur of a pixel about halves the fine detail's (3×3 Laplacian's, the sharpness figure's)
    energy; the restore gives back exactly the generated frame's."""
    from reenact.stabilise import laplacian, luminance, with_detail_of

    generated = texture(128, 3).astype(np.float32)
    averaged = cv2.GaussianBlur(generated, (0, 0), 1.0)
    energy = lambda image: float((laplacian(luminance(image)) ** 2).mean())
    assert energy(averaged) < 0.6 * energy(generated)
    restored = with_detail_of(averaged, generated, np.ones((128, 128, 1), np.float32), max_gain=4)
    assert energy(restored) == pytest.approx(energy(generated), rel=1e-3)


def test_within_the_drawn_region_the_restore_does_not_pass_the_generated_frames_detail():
    """Where the weight is broad, one gain that makes up for detail lost off the face (a moving
    hairline) overshoots on a face that kept its own: capped by the drawn region, it does not."""
    from reenact.stabilise import laplacian, luminance, with_detail_of

    generated = texture(128, 3).astype(np.float32)
    averaged = generated.copy()
    averaged[:, 64:] = cv2.GaussianBlur(generated, (0, 0), 1.5)[:, 64:]    # the right half lost its detail
    everywhere, face = np.ones((128, 128, 1), np.float32), np.zeros((128, 128, 1), np.float32)
    face[:, 8:56] = 1                                                      # the face: the left, kept sharp
    energy = lambda image, where: float((laplacian(luminance(image)) ** 2 * where[..., 0]).sum() / where.sum())
    broad = with_detail_of(averaged, generated, everywhere, 4)
    assert energy(broad, face) > 1.5 * energy(generated, face)             # the face sharpened past what was painted
    capped = with_detail_of(averaged, generated, everywhere, 4, face)
    assert energy(capped, face) == pytest.approx(energy(generated, face), rel=0.05)
    assert energy(capped, everywhere) < energy(broad, everywhere)


def test_moving_detail_painted_differently_each_frame_keeps_its_contrast_and_most_of_the_steadiness():
    """The scene's fine detail moves with it, and the generator paints fresh fine noise over it each
    frame. Plain averaging along the motion steadies the frame and loses the contrast; restoring
    the detail keeps most of the steadiness and the generator's contrast."""
    rng = np.random.default_rng(0)
    wide_proxy = texture(160, 1)                          # 128 px frames, the benchmark's: the band is a pixel wide
    wide_scene = texture(160, 2).astype(np.float32)[..., :1] + rng.uniform(-10, 10, (160, 160, 1))
    figures = {}
    for restore in (False, True):
        stabilise = TemporalStabiliser(replace(FACE.stabiliser, restore_detail=restore))
        generated, shown = [], []
        for t in range(16):                               # both move 2 pixels right a frame
            window = np.s_[16:144, 32 - 2 * t:160 - 2 * t]
            painted = wide_scene[window] + rng.normal(0, 10, (128, 128, 1))
            generated.append(np.clip(np.repeat(painted, 3, axis=-1), 0, 255).astype(np.uint8).astype(np.float32))
            shown.append(stabilise(np.ascontiguousarray(wide_proxy[window]), generated[-1].astype(np.uint8)).astype(np.float32))
        energy = lambda images: np.mean([cv2.Laplacian(image[..., 0], cv2.CV_32F)[8:-8, 8:-8].var() for image in images[8:]])
        change = lambda images: np.mean([np.abs(images[t][8:-8, 10:-8] - images[t - 1][8:-8, 8:-10]).mean()
                                         for t in range(8, 16)])      # each frame moved two pixels on
        figures[restore] = energy(shown) / energy(generated), change(shown) / change(generated)
    (plain_sharpness, plain_change), (restored_sharpness, restored_change) = figures[False], figures[True]
    assert plain_sharpness < 0.6 and restored_sharpness > 0.75
    assert plain_change < restored_change < 0.2


class ShiftingGenerator(nn.Module):
    """A stand-in generator whose output brightens a little every call: shows what the stabiliser changes."""

    def __init__(self):
        super().__init__()
        self.level = nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.level += 10 / 255                   # five levels of uint8 a call
        return torch.full((inputs.shape[0], 3, *inputs.shape[-2:]), -0.5) + self.level


def test_the_streaming_translator_shows_stabilised_frames_and_reset_starts_afresh():
    proxy = torch.from_numpy(texture(32, 1)).permute(2, 0, 1)
    window = torch.cat([proxy] * 3)
    translate = StreamingTranslator(ShiftingGenerator(), 3, stabiliser=TemporalStabiliser(FACE.stabiliser))
    first, second = translate(window), translate(window)
    np.testing.assert_array_equal(first, second)                          # the same proxy: held
    translate.reset()
    assert translate(window).mean() == pytest.approx(first.mean() + 10, abs=1)   # afresh: the third call's output


@pytest.mark.e2e
def test_on_a_real_clip_the_stabiliser_removes_most_of_the_added_flicker(body_subject):
    """The example clip's own proxies; the 'generator' is the real frames plus noise."""
    subject = Subject.load(body_subject)
    frames, proxies = np.asarray(subject.frames()[:40]), np.asarray(subject.proxies()[:40])
    rng = np.random.default_rng(0)
    generated = [noisy(frame, rng, 8.0) for frame in frames]
    stabilise = TemporalStabiliser(BODY.stabiliser)
    shown = [stabilise(proxy, image) for proxy, image in zip(proxies, generated)]
    as_float = lambda images: [image.astype(np.float32) / 255 for image in images]
    real, generated, shown = as_float(frames), as_float(generated), as_float(shown)
    flows = [metrics.real_frame_flow(real[t - 1], real[t]) for t in range(1, len(real))]
    flicker = lambda images: np.mean([metrics.warping_error(images[t - 1], images[t], flows[t - 1]) for t in range(1, len(images))])
    error = lambda images: np.mean([np.abs(image - truth).mean() for image, truth in zip(images, real)])
    assert flicker(shown) < 0.5 * flicker(generated)
    assert error(shown) < error(generated)                                # the picture is kept, not smeared
    # Where the person moves, a skeleton's flow explains the real frames' sharp texture only roughly:
    # the stabilised person is allowed a little more error than the noise (7.3 levels against 5.9).
    person = region_masks(proxies, BODY)
    masked_error = lambda images: np.mean([np.abs(image - truth).mean(-1)[mask].mean()
                                           for image, truth, mask in zip(images, real, person)])
    assert masked_error(shown) < 1.4 * masked_error(generated)


FACE_CROP_SIZE = 240.0     # source pixels: the face below is about 200 px tall


def face_in_crop(model, yaw: float = 0.0, jaw_open: float = 0.0, shift=(0.0, 0.0)):
    """A neutral-identity face's parameters in a crop that frames it, the head turned by ``yaw``
    radians and the crop moved by ``shift`` source pixels."""
    from reenact.face.geometry import axis_angle_to_matrix

    rotation = axis_angle_to_matrix(torch.tensor([[0.0, yaw, 0.0]])).numpy()
    expression = np.zeros((1, len(model.expression_names)), np.float32)
    expression[0, model.expression_index("jawOpen")] = jaw_open
    crop = np.array([[320.0 - FACE_CROP_SIZE / 2 + shift[0], 240.0 - FACE_CROP_SIZE / 2 + shift[1], FACE_CROP_SIZE]])
    return (np.zeros(model.mesh_identity_basis.shape[0], np.float32), expression, rotation,
            np.array([[0.0, 0.0, -60.0]]), 800.0, (320.0, 240.0), crop)


def rendered_pair(renderer, before: tuple, after: tuple):
    """The correspondence images of two frames and the rendered backward flow from the second to the first."""
    images = [renderer.correspondence(*parameters)[0] for parameters in (before, after)]
    flow = renderer.backward_flow(renderer.vertices_in_crops(*after), renderer.vertices_in_crops(*before))[0]
    return images, flow


def test_the_rendered_flow_of_a_moved_crop_is_the_move_exactly():
    from reenact.face.model import load_face_model
    from reenact.face.proxy import FaceProxyRenderer

    model = load_face_model()
    renderer = FaceProxyRenderer(model, 144)
    (_, current), flow = rendered_pair(renderer, face_in_crop(model, shift=(3, 2)), face_in_crop(model))
    covered = current.max(axis=-1) > 0
    assert covered.mean() > 0.2
    scale = 144 / FACE_CROP_SIZE
    error = np.abs(flow[covered] - [-3.0 * scale, -2.0 * scale])
    assert np.median(error) < 1e-3 and error.max() < 0.05      # float32 planes of the smallest triangles
    assert (flow[~covered] == 0).all()


def test_the_rendered_flow_agrees_with_dis_on_a_turning_head_and_carries_the_proxy_better():
    from reenact.face.model import load_face_model
    from reenact.face.proxy import FaceProxyRenderer
    from reenact.stabilise import optical_flow, warp

    model = load_face_model()
    renderer = FaceProxyRenderer(model, 144)
    (previous, current), rendered = rendered_pair(renderer, face_in_crop(model, yaw=0.0),
                                                  face_in_crop(model, yaw=0.06, shift=(-2, 1)))
    estimated = optical_flow(previous, current)
    inside = cv2.erode((current.max(axis=-1) > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    moved = np.linalg.norm(rendered[inside], axis=-1)
    assert np.median(moved) > 2.0                                        # the test has motion to find
    disagreement = np.linalg.norm(rendered[inside] - estimated[inside], axis=-1)
    # DIS finds the same motion, short of it on the smooth colour ramps (here 5.2 of 6.8 px)...
    assert np.median(disagreement) < 0.3 * np.median(moved)
    # ... so the rendered flow carries the previous proxy onto the current one better (0.55 levels against 1.93).
    residual = lambda flow: np.abs(warp(previous, flow) - current.astype(np.float32))[inside].mean()
    assert residual(rendered) < 0.5 * residual(estimated)


def test_the_rendered_flow_follows_each_lip_where_the_mouth_opens():
    from reenact.face.model import load_face_model
    from reenact.face.proxy import FaceProxyRenderer

    model = load_face_model()
    renderer = FaceProxyRenderer(model, 144)
    (_, current), flow = rendered_pair(renderer, face_in_crop(model), face_in_crop(model, jaw_open=0.6))
    rows = np.nonzero(current[:, 72].max(axis=-1) > 0)[0]
    vertical = flow[rows, 72, 1]
    # The chin came down: its pixels were higher before (negative backward flow); the brow stayed.
    assert vertical[-5:].mean() < -2.0 and abs(vertical[:5].mean()) < 0.3


def test_a_batch_of_rendered_flows_gives_each_frame_its_own():
    from reenact.face.model import load_face_model
    from reenact.face.proxy import FaceProxyRenderer

    model = load_face_model()
    renderer = FaceProxyRenderer(model, 96)
    stack = lambda frames: tuple(np.concatenate([f[k] for f in frames]) if k not in (0, 4, 5) else frames[0][k]
                                 for k in range(7))
    befores = [face_in_crop(model, shift=(3, 0)), face_in_crop(model, yaw=0.05)]
    afters = [face_in_crop(model), face_in_crop(model, jaw_open=0.5)]
    batched = renderer.backward_flow(renderer.vertices_in_crops(*stack(afters)), renderer.vertices_in_crops(*stack(befores)))
    for k in range(2):
        alone = renderer.backward_flow(renderer.vertices_in_crops(*afters[k]), renderer.vertices_in_crops(*befores[k]))[0]
        np.testing.assert_allclose(batched[k], alone, atol=1e-4)
    assert not np.allclose(batched[0], batched[1], atol=0.5)
    # The flow rides along in the same rasterisation: the proxy drawn with it is the proxy drawn without.
    current, previous = renderer.vertices_in_crops(*stack(afters)), renderer.vertices_in_crops(*stack(befores))
    np.testing.assert_array_equal(renderer.draw(current, previous)[0], renderer.draw(current)[0])
