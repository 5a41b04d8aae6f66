"""Temporal stabilisation of generated frames, guided by the proxies that conditioned them.

A per-subject translator trained for minutes on a CPU paints each frame's fine detail a little
differently: its frames flicker at 2 to 3 times the real footage's rate even where nothing moves.
The proxies are the clean motion signal (tracked, smoothed, rendered), so their motion says where
the previous output's pixels went: rendered from the geometry that drew them when the drive
carries it (``Drive.flow``), else DIS optical flow of the proxy images. Each new frame is blended with the previous output
warped along that flow, except where the proxy changed in a way the flow does not explain
(a mouth opening, a limb appearing) and where the content is new (it came in over the border),
where the new frame is taken as it is. Away from the drawn proxy the flow is taken as still. While
the proxy moves less than half a pixel anywhere, the previous output is held exactly: a subject
standing still does not shimmer. The blend is a recursive filter along the motion, like a video
denoiser's; the generator is still fed its own unblended previous output, as in training.

Averaging detail that the generator paints a little differently each frame keeps little of it: on
the fidelity benchmark's d6 the face fell from the generator's 0.90 sharpness to 0.68. So near the
drawn proxy the frame shown has its finest band of luminance scaled back up, by one gain per
frame, until its fine-detail (3×3 Laplacian) energy there is the generated frame's (never down,
and at most twice). The detail shown is then the averaged frame's, which moves with the proxy, at
the contrast the generator paints. The recursive filter's own state stays unscaled, so the
scaling does not compound from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def optical_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """(H, W, 2) DIS optical flow from ``current`` back to ``previous`` (uint8 RGB), for backward warping."""
    to_grey = lambda image: cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(to_grey(current), to_grey(previous), None)


def resized_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """A square flow field at another resolution, its vectors scaled with it."""
    if flow.shape[0] == size:
        return flow
    scale = size / flow.shape[0]
    return cv2.resize(flow, (size, size), interpolation=cv2.INTER_LINEAR) * np.float32(scale)


def spread_flow(flow: np.ndarray, known: np.ndarray) -> np.ndarray:
    """A rendered flow as it is where the proxy is drawn (``known`` 1) and, off it, the nearby drawn
    pixels' flow averaged with a Gaussian's weights (normalised convolution), whole to a
    thirty-second of the image away and fading to 0 at a sixteenth: the person around a skeleton's
    thin lines moves with them (DIS spreads its estimate likewise)."""
    near = reach(flow.shape[0])
    weight = cv2.GaussianBlur(known, (0, 0), near / 2)
    spread = cv2.GaussianBlur(flow * known[..., None], (0, 0), near / 2) / np.maximum(weight, 1e-6)[..., None]
    distance = cv2.distanceTransform((known == 0).astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.clip(2 - 2 * distance / near, 0, 1)[..., None]
    return np.where(known[..., None] > 0, flow, spread * fade).astype(np.float32)


def sample_points(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel's backward flow lands: (x, y) maps for cv2.remap."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return grid_x + flow[..., 0], grid_y + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at each pixel plus ``flow`` (float32; borders repeat)."""
    return sample(image, sample_points(flow))


def sample(image: np.ndarray, points: tuple[np.ndarray, np.ndarray], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.remap(image.astype(np.float32), *points, interpolation, borderMode=cv2.BORDER_REPLICATE)


def inside(points: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(H, W, 1) True where the backward flow lands inside the image: elsewhere the content is new."""
    x, y = points
    height, width = x.shape
    return ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1))[..., None]


def drawn_near(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """(H, W, 1) from 1 where either proxy is drawn to 0 a sixteenth of the image away: the flow has
    nothing to follow on a blank proxy, where DIS only spreads the drawn parts' motion, and a
    static camera's background is still."""
    drawn = ((previous.max(axis=-1) > 0) | (current.max(axis=-1) > 0)).astype(np.float32)
    near = cv2.dilate(drawn, neighbourhood(drawn.shape[0]))
    return cv2.GaussianBlur(near, (0, 0), reach(drawn.shape[0]) / 2)[..., None]


def reach(size: int) -> int:
    """A sixteenth of the image, at least a pixel: how far the stabiliser looks around the drawn proxy."""
    return max(1, size // 16)


def neighbourhood(size: int) -> np.ndarray:
    radius = reach(size)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def spread(unexplained: np.ndarray) -> np.ndarray:
    """(H, W, 1): the largest change the flow leaves unexplained within a sixteenth of the image: a
    thin drawn part (a limb) the flow fails on says the flow fails around it too."""
    return cv2.dilate(unexplained, neighbourhood(unexplained.shape[0]))[..., None]


@dataclass(frozen=True)
class StabiliserSettings:
    """Each mode's are in reenact/modes/, chosen on the fidelity benchmark's held-out frames (README)."""
    blend: float = 0.93              # weight of the warped previous output where the flow explains the proxy
    tolerance: float = 96.0          # proxy levels (of 255) the flow fails to explain where the weight falls to blend/e
    hold_pixels: float = 0.5         # the proxy moved less than this everywhere: hold the previous output
    hold_levels: float = 128.0       # … and changed by less than this anywhere after warping
    sparse_proxy: bool = False       # a skeleton's thin lines: spread what the flow leaves unexplained
    # How the previous output is resampled along the flow, frame after frame. Bilinear loses a little
    # detail at every sub-pixel step, and the recursive filter compounds it: on the fidelity benchmark's
    # d3 (the 30-minute global generator) it halved the sharpness (0.54 → 0.30), where Lanczos keeps
    # 0.48 for flicker ×1.10 real against ×1.03 (benchmarks/stabiliser_sweep.py).
    resample: int = cv2.INTER_LANCZOS4
    # On d6's held-out frames (30 minutes, 897 steps), sharpness / flicker ×real: off 0.68 / 1.25,
    # on 0.86 / 1.33; all three colour channels scaled 0.87 / 1.35, with coloured speckle at the
    # hairline; everywhere, not only near the proxy, 0.88 / 1.40; scaled to 70 % of the energy
    # 0.74 / 1.28; carried into the filter's state 1.07 / 1.46 (past the generator's own 0.90: it
    # compounds). Those were with the band's energy matched pixel by pixel (with_detail_of says why
    # no longer).
    restore_detail: bool = True
    max_detail_gain: float = 2.0
    detail_within_drawn: bool = False    # … and not past the generated frame's energy where the proxy drew (faces: README)


class TemporalStabiliser:
    """Call with each frame's proxy and generated frame, in order; ``reset`` at a cut."""

    def __init__(self, settings: StabiliserSettings):
        self.settings = settings
        self.reset()

    def reset(self) -> None:
        self.reference_proxy: np.ndarray | None = None    # the proxy of the frame last shown
        self.state: np.ndarray | None = None               # the last frame shown, unrounded
        self.shown: np.ndarray | None = None

    def __call__(self, proxy: np.ndarray, generated: np.ndarray, rendered_flow: np.ndarray | None = None) -> np.ndarray:
        """(R, R, C) uint8 proxy (RGB first) and (R, R, 3) uint8 generated frame → the frame to show.
        ``rendered_flow``: the proxy's backward flow to the previous one, rendered from the geometry
        at any resolution; without it, DIS estimates it from the two proxies."""
        if self.reference_proxy is None or self.reference_proxy.shape != proxy.shape:
            return self.show(proxy, generated.astype(np.float32))
        near = drawn_near(self.reference_proxy, proxy)
        if rendered_flow is None:
            flow = optical_flow(self.reference_proxy[..., :3], proxy[..., :3]) * near
        else:
            flow = resized_flow(rendered_flow, proxy.shape[0])
        points = sample_points(flow)
        unexplained = np.abs(sample(self.reference_proxy, points) - proxy).max(axis=-1)
        unexplained = spread(unexplained) if self.settings.sparse_proxy else unexplained[..., None]
        if np.linalg.norm(flow, axis=-1).max() < self.settings.hold_pixels and unexplained.max() < self.settings.hold_levels:
            return self.shown
        weight = self.settings.blend * np.exp(-(unexplained / self.settings.tolerance) ** 2) * inside(points)
        previous = sample(self.state, points, self.settings.resample)
        blended = weight * previous + (1 - weight) * generated
        if not self.settings.restore_detail:
            return self.show(proxy, blended)
        within = ()
        if self.settings.detail_within_drawn:
            within = ((proxy[..., :3].max(axis=-1) > 0).astype(np.float32)[..., None],)
        detailed = with_detail_of(blended, generated.astype(np.float32), near, self.settings.max_detail_gain, *within)
        return self.show(proxy, blended, detailed)

    def show(self, proxy: np.ndarray, state: np.ndarray, shown: np.ndarray | None = None) -> np.ndarray:
        """Remember ``state`` (float) as the filter's, and show ``shown`` (``state`` unless given), rounded."""
        self.reference_proxy, self.state = proxy, state
        self.shown = np.clip(state if shown is None else shown, 0, 255).round().astype(np.uint8)
        return self.shown


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) Rec. 601 luma of a float (H, W, 3) RGB image, as ``optical_flow``'s grey."""
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def finest_band(image: np.ndarray) -> np.ndarray:
    """(H, W) ``image`` less its Gaussian blur of σ a 128th of its size: one pixel at 128 px, the band
    that a 3×3 Laplacian (the sharpness figure) sees."""
    return image - cv2.GaussianBlur(image, (0, 0), image.shape[0] / 128)


def laplacian(image: np.ndarray) -> np.ndarray:
    """The 3×3 Laplacian of a float (H, W) image: the fine detail the sharpness figure measures
    (reenact/evaluation/appearance.py) and the detail restore matches."""
    return cv2.Laplacian(image, cv2.CV_32F, ksize=3)


def with_detail_of(frame: np.ndarray, generated: np.ndarray, where: np.ndarray, max_gain: float,
                   *also_within: np.ndarray) -> np.ndarray:
    """Float (H, W, 3) ``frame`` with its finest luminance band scaled up by one gain, as far as the
    (H, W, 1) weight ``where`` says, so that its Laplacian energy weighted by ``where`` is
    ``generated``'s: at least 1, at most ``max_gain``, and no more than makes it so weighted by
    each of ``also_within``. The same change is added to each colour channel, so the colours stay
    the frame's.

    Matching the band's own energy, pixel by pixel, left the Laplacian energy short of the
    generator's (taiji held out: averaged 0.020, restored 0.025, generated 0.030): the band holds
    coarser detail that averaging keeps, the Laplacian sees the finest, which averaging loses. On
    the fidelity benchmark's held-out frames (flicker ×real / sharpness,
    benchmarks/stabiliser_sweep.py): taiji 1.31 / 0.86 → 1.35 / 0.99, d6 1.33 / 0.80 → 1.34 / 0.91.
    A gain per pixel matched to the Laplacian's energy follows the detail the generator paints
    afresh in each frame, and its changes flicker: taiji 1.37 / 0.99."""
    frame_luminance = luminance(frame)
    band = finest_band(frame_luminance)
    frame_detail, band_detail = laplacian(frame_luminance), laplacian(band)
    # The weighted energy of frame_detail + x · band_detail, less the generated frame's, is
    # a·x² + b·x + c in x = gain − 1; each weight sums the same three maps.
    maps = band_detail ** 2, 2 * frame_detail * band_detail, frame_detail ** 2 - laplacian(luminance(generated)) ** 2
    weighted_sums = lambda weight: [float((term * weight[..., 0]).sum()) for term in maps]
    gain = min(matching_gain(*weighted_sums(weight)) for weight in (where, *also_within))
    gain = float(np.clip(gain, 1, max_gain))
    return frame + ((gain - 1) * band)[..., None] * where


def matching_gain(a: float, b: float, c: float) -> float:
    """1 + the larger root of a·x² + b·x + c (0 where there is none): the gain that brings the
    weighted detail energy to the generated frame's."""
    return 1 + ((-b + np.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a) if a > 0 else 0.0)
