"""The temporal stabiliser: held while the proxy is still, follows the proxy's motion, gives way
where the proxy changes in a way no motion explains; and on a real clip's proxies."""

from __future__ import annotations

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
    stabilise = TemporalStabiliser(FACE.stabiliser)
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
