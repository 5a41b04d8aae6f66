"""A learned neural texture on the face mesh (Thies et al., Deferred Neural Rendering, 2019).

The face proxy's correspondence image gives every face pixel the position of its point on the
neutral mesh; its x and y, a frontal projection of the neutral face, serve as texture
coordinates. The texture is a Laplacian pyramid of multi-channel images, summed after sampling, so
coarse levels fill texels few frames saw while fine levels hold pores and lashes. The generator
sees the sampled texture beside its usual input, so the target's own skin and eyes reach the
frame through the U-Net's full-resolution skips instead of being relearnt for every pose.

With ``composite``, the network does not have to carry that detail through at all: it also paints
a mask, and where the mask is high the frame shows the texture's own colours (channels 0-2, which
start as the footage's colours). After 900 CPU steps the U-Net's own rendering of the skin was
still about half as sharp as the footage, while the texture, sampled, is as sharp; the network
keeps painting what the texture cannot hold: an open mouth, the eyes' gaze, the hair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reenact.models.blend import gained, with_colours_of
from reenact.models.generator import WrappedGenerator

LUMA = torch.tensor([0.299, 0.587, 0.114])     # ITU-R BT.601
# A proxy pixel at the background level (0 of 255, -1 in model range) in all of x, y and z is off the face.
COVERED_ABOVE = -1 + 0.5 / 127.5


def drawn(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, R, R) 1 where any channel of the (B, C, R, R) model-range ``images`` is above the
    background level: where a proxy drew something."""
    return (images > COVERED_ABOVE).any(dim=1, keepdim=True).to(images.dtype)


class NeuralTexture(nn.Module):
    """With ``steady``, it also holds which texels the footage showed alike from frame to frame
    (``steady``, 1 or 0 a texel), set by ``initialise``."""

    def __init__(self, channels: int, size: int, levels: int, steady: bool = False):
        super().__init__()
        self.levels = nn.ParameterList(nn.Parameter(torch.zeros(1, channels, size >> level, size >> level))
                                       for level in range(levels))
        self.register_buffer("steady", torch.ones(1, 1, size, size) if steady else None)

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 2) coordinates in [-1, 1] → (B, channels, H, W)."""
        sampled = [F.grid_sample(level.expand(len(uv), -1, -1, -1), uv, mode="bilinear", padding_mode="border",
                                 align_corners=True) for level in self.levels]
        return torch.stack(sampled).sum(dim=0)

    def steadiness(self, uv: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W): how steady the texels at (B, H, W, 2) coordinates are (1 without ``steady``)."""
        if self.steady is None:
            return uv.new_ones(uv.shape[0], 1, *uv.shape[1:3])
        return F.grid_sample(self.steady.expand(len(uv), -1, -1, -1), uv, mode="bilinear", padding_mode="border",
                             align_corners=True)

    @torch.no_grad()
    def initialise(self, colours: torch.Tensor, steady: torch.Tensor | None = None) -> None:
        """Start from (3, S, S) colours in [-1, 1] at the finest level (step 0 shows the target's face)
        and, with ``steady``, its (1, S, S) steady texels."""
        for level in self.levels:
            level.zero_()
        self.levels[0][0, :3].copy_(colours)
        if self.steady is not None and steady is not None:
            self.steady.copy_(steady[None])


def texture_mask(painted: torch.Tensor, covered: torch.Tensor, scale: int, gain: float = 1.0) -> torch.Tensor:
    """(B, 1, R, R) in [0, 1]: ``painted``'s last channel read as a mask, averaged over ``scale``-pixel
    blocks, its distance from one half times ``gain`` (clamped), smoothed back up, and 0 off the face
    (``covered``). Blocks, not pixels: a mask pushed to commit pixel by pixel speckles, neighbours
    flipping between the texture and the painting."""
    mask = (painted[:, -1:] + 1) / 2
    if scale > 1:
        mask = F.avg_pool2d(mask, scale)
    mask = gained(mask, gain)
    if scale > 1:
        mask = F.interpolate(mask, size=painted.shape[-2:], mode="bilinear", align_corners=False)
    return mask * covered


def show_where_masked(painted: torch.Tensor, shown: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``painted``'s RGB with ``shown`` (B, 3, R, R) blended in by ``mask`` (B, 1, R, R); channels
    between RGB and the mask channel (a plate's alpha) pass through."""
    frame = mask * shown.clamp(-1, 1) + (1 - mask) * painted[:, :3]
    return torch.cat([frame, painted[:, 3:-1]], dim=1)


def detail_where_masked(painted: torch.Tensor, shown: torch.Tensor, soft: torch.Tensor, gained_mask: torch.Tensor) -> torch.Tensor:
    """As ``show_where_masked`` by the ``gained_mask``, in the colours of the blend by the ``soft``
    one. The texture holds the training frames' median colours. On d3's held-out frames, which are
    brighter than that, a mask pushed to the texture showed the face 8 levels too dark (2 dB of
    PSNR), where the soft blend's painting had lit it."""
    frame, soft_frame = show_where_masked(painted, shown, gained_mask), show_where_masked(painted, shown, soft)
    return torch.cat([with_colours_of(frame[:, :3], soft_frame[:, :3]), frame[:, 3:]], dim=1)


def masked_composite(painted: torch.Tensor, shown: torch.Tensor, showable: torch.Tensor, scale: int,
                     gain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame and the mask it used: ``shown`` where ``painted``'s mask (its last channel, in
    ``scale``-pixel blocks, only where ``showable``) says, over ``painted``; with a ``gain`` other than
    1 (outside training), the mask pushed from one half in the soft blend's colours."""
    mask = texture_mask(painted, showable, scale)
    if gain == 1:
        return show_where_masked(painted, shown, mask), mask
    gained_mask = texture_mask(painted, showable, scale, gain)
    return detail_where_masked(painted, shown, mask, gained_mask), gained_mask


def mask_commitment(mask: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """The mean of mask·(1 − mask) over the face: 0 where the frame shows the texture or the
    painting, 0.25 where it shows half of each. A blend of two sources whose detail does not line up
    up to the pixel keeps neither's: at a mean mask of 0.71 the texture alone scored 0.88 of the
    footage's sharpness and the painting 0.76, their blend 0.50."""
    return (mask * (1 - mask) * covered).sum() / covered.sum().clamp(min=1)


class TexturedGenerator(WrappedGenerator):
    """A generator that also sees the neural texture sampled where frame t's correspondence image
    puts each pixel. Input as any generator's: the (B, C·window, R, R) proxy window and the previous
    frame, in model range; channels 0 and 1 of each C-channel proxy are the texture coordinates.
    Out of training mode the mask's blocks are pushed towards 0 or 1 by ``mask_gain``, the soft
    blend's colours kept (``detail_where_masked``): training keeps the soft mask, whose gradient
    tells each block which source is better, and after 30 CPU minutes shows a blend where that is
    undecided; a blend of two sources whose detail differs keeps neither's."""

    def __init__(self, generator: nn.Module, texture: NeuralTexture, proxy_channels: int, window: int,
                 composite: bool = False, mask_scale: int = 1, mask_gain: float = 1.0):
        super().__init__()
        self.generator, self.texture, self.composite, self.mask_scale = generator, texture, composite, mask_scale
        self.mask_gain = mask_gain
        self.center = slice(proxy_channels * (window // 2), proxy_channels * (window // 2) + 3)
        self.size_multiple = generator.size_multiple

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The texture at frame t's pixels, zero off the face; (B, 1, R, R) where the face is; and
        where the texture may show in the frame: the face's steady texels."""
        correspondence = x[:, self.center]
        covered = drawn(correspondence)
        uv = correspondence[:, :2].permute(0, 2, 3, 1).float()
        return self.texture(uv).to(x.dtype) * covered, covered, self.texture.steadiness(uv).to(x.dtype) * covered

    def forward(self, x: torch.Tensor, with_mask: bool = False) -> torch.Tensor:
        """The frame; with ``composite`` and ``with_mask``, the texture's mask appended as one more
        channel and, after it, where the texture may show (for the commitment loss)."""
        sampled, covered, showable = self.sample(x)
        painted = self.generator(torch.cat([x, sampled], dim=1))
        if not self.composite:
            return painted
        frame, mask = masked_composite(painted, sampled[:, :3], showable, self.mask_scale,
                                       1.0 if self.training else self.mask_gain)
        return torch.cat([frame, mask, showable], dim=1) if with_mask else frame


def texture_from_frames(frames: torch.Tensor, proxies: torch.Tensor, size: int,
                        steady_spread: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, size, size) colours in [-1, 1]: the median colour of every texel over the (N, 3, R, R) uint8
    frames, each pixel put where its (N, C, R, R) uint8 proxy's x and y say; texels no frame saw take
    the colour of the nearest coarser level that has one (push-pull). The median, not the mean: a
    mean of open and closed mouths shows ghostly teeth on closed lips, which the network must then
    paint over. And (1, size, size) steady texels: seen, and with a luminance spread (10th to 90th
    percentile, of 255) of at most ``steady_spread`` over the frames, scattered exceptions cleared."""
    texels, colours = [], []
    for frame, proxy in zip(frames, proxies):
        covered = proxy[:3].amax(dim=0) > 0
        u, v = (proxy[:2, covered].float() * ((size - 1) / 255)).round().long()
        texels.append(v * size + u)
        colours.append(frame[:, covered])
    texel, colour = torch.cat(texels), torch.cat(colours, dim=1).long()
    count = torch.bincount(texel, minlength=size * size)
    median = torch.cat([texel_quantiles(texel, colour[channel], count, (0.5,)) for channel in range(3)])
    luminance = (colour.float() * LUMA[:, None]).sum(dim=0).round().long()
    low, high = texel_quantiles(texel, luminance, count, (0.1, 0.9))
    spread = high - low
    steady = ((count > 0) & (spread <= steady_spread)).float().view(1, size, size)
    count = count.float()[None]
    return pull_push((median * count).view(3, size, size), count.view(1, size, size)) / 127.5 - 1, unscattered(steady)


def unscattered(steady: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """(1, S, S) steady texels with scattered unsteady ones made steady: each pass, an unsteady texel
    with fewer than two unsteady texels among its eight neighbours. The network's painting showed
    through each such texel as a light dot in the skin (under d3's left eye); the lips' seam, the
    eyelids and the outline are lines and patches, and stay."""
    unsteady = 1 - steady[None]
    neighbourhood = torch.ones(1, 1, 3, 3)
    for _ in range(passes):
        neighbours = F.conv2d(unsteady, neighbourhood, padding=1) - unsteady
        unsteady = unsteady * (neighbours >= 2)
    return 1 - unsteady[0]


def texel_quantiles(texel: torch.Tensor, values: torch.Tensor, count: torch.Tensor,
                    fractions: tuple[float, ...]) -> torch.Tensor:
    """(len(fractions), S·S): each texel's quantiles at ``fractions`` of its samples' integer ``values``
    (0 to 255), one sample a (texel, value) pair; 0 where ``count``, the samples per texel, is 0.
    One sort serves every fraction."""
    quantiles = torch.zeros(len(fractions), len(count))
    seen = torch.nonzero(count).flatten()
    if len(seen):
        # Sorting by texel, then value, puts each texel's samples together in order.
        ordered = torch.sort(texel * 256 + values).values % 256
        first = torch.cumsum(count, 0)[seen] - count[seen]
        for row, fraction in enumerate(fractions):
            quantiles[row, seen] = ordered[first + (count[seen] * fraction).long().clamp(max=count[seen] - 1)].float()
    return quantiles


def pull_push(colour_sum: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Means where ``count`` > 0, holes filled from ever coarser averages (Gortler et al.'s pull-push)."""
    pyramid = [(colour_sum, count)]
    while pyramid[-1][1].shape[-1] > 1:
        level_sum, level_count = pyramid[-1]
        pyramid.append((F.avg_pool2d(level_sum[None], 2, ceil_mode=True)[0] * 4,
                        F.avg_pool2d(level_count[None], 2, ceil_mode=True)[0] * 4))
    mean = pyramid[-1][0] / pyramid[-1][1].clamp(min=1e-6)
    for level_sum, level_count in reversed(pyramid[:-1]):
        coarser = F.interpolate(mean[None], size=level_sum.shape[-2:], mode="bilinear", align_corners=False)[0]
        mean = torch.where(level_count > 0, level_sum / level_count.clamp(min=1e-6), coarser)
    return mean
