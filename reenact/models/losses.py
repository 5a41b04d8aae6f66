"""GAN, feature-matching, L1 and perceptual losses.

Discriminator outputs are lists (one per scale) of lists of features whose last entry is the
patch logits, as MultiscaleDiscriminator returns them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from reenact.models.vgg import vgg19_features

Outputs = list[list[torch.Tensor]]

# ImageNet statistics the VGG weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Index of the ReLU after conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 in vgg19.features.
VGG_LAYERS = (1, 6, 11, 20, 29)
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The mean; with (B,) sample ``weights``, the weighted mean of the per-sample means (0 when all are 0).

    Weighting instead of dropping samples keeps every batch the same shape, so no rank of a
    data-parallel run skips a step the others wait in, and compiled graphs see one shape.
    """
    if weights is None:
        return values.mean()
    per_sample = values.flatten(1).mean(dim=1)
    return (per_sample * weights).sum() / weights.sum().clamp_min(1e-8)


def foreground_alpha(frames: torch.Tensor, plate: torch.Tensor, low: float = 0.1, high: float = 0.3) -> torch.Tensor:
    """(…, 1, R, R) where frames (…, 3, R, R) differ from the background plate (1, 3, R, R), both in
    [-1, 1]: 0 up to a mean absolute difference of ``low`` (noise, light), 1 from ``high`` on."""
    difference = (frames - plate).abs().mean(dim=-3, keepdim=True)
    return ((difference - low) / (high - low)).clamp(0, 1)


def lsgan_discriminator_loss(real: Outputs, fake: Outputs, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Least-squares GAN: real logits towards 1, fake towards 0; averaged over scales."""
    losses = [weighted_mean((r[-1].float() - 1) ** 2, weights) + weighted_mean(f[-1].float() ** 2, weights)
              for r, f in zip(real, fake)]
    return 0.5 * torch.stack(losses).mean()


def lsgan_generator_loss(fake: Outputs, weights: torch.Tensor | None = None) -> torch.Tensor:
    return torch.stack([weighted_mean((f[-1].float() - 1) ** 2, weights) for f in fake]).mean()


def feature_matching_loss(real: Outputs, fake: Outputs, weights: torch.Tensor | None = None) -> torch.Tensor:
    """pix2pixHD feature matching: L1 between the discriminator's features on real and fake.

    Every feature but the logits counts, each scale weighted 1/n_scales; real features are detached.
    pix2pixHD's per-layer weight 4/(n_layers+1) is left out: it is exactly 1 for the default
    n_layers=3, and otherwise only rescales what ``feature_matching_weight`` already scales.
    """
    total = fake[0][0].new_zeros((), dtype=torch.float32)
    for real_scale, fake_scale in zip(real, fake):
        for real_feature, fake_feature in zip(real_scale[:-1], fake_scale[:-1]):
            difference = (fake_feature.float() - real_feature.detach().float()).abs()
            total = total + weighted_mean(difference, weights) / len(fake)
    return total


def split_outputs(outputs: Outputs, count: int) -> tuple[Outputs, Outputs]:
    """Discriminator outputs of a batch stacked from two: those of its first ``count`` samples, and the rest."""
    return [[f[:count] for f in scale] for scale in outputs], [[f[count:] for f in scale] for scale in outputs]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error; with ``weight`` (B, 1, H, W) ≥ 0, the weighted mean, so regions can count more."""
    difference = (pred - target).abs()
    if weight is None:
        return difference.mean()
    return (difference * weight).sum() / (weight.sum() * pred.shape[1]).clamp_min(1e-8)


def shift_tolerant_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                      shift: int = 1, block: int = 8) -> torch.Tensor:
    """``masked_l1`` with each ``block``-pixel square of ``pred`` compared with ``target`` moved by
    whichever offset of up to ``shift`` pixels (each axis) fits it best. Tracking puts the proxy a
    pixel or so off the frame's edges, and plain L1 answers that uncertainty with the average of
    the places an edge might be: a blur. Here an edge drawn sharp a pixel off costs nothing, a
    blurred one still costs. Squares, not pixels: a pixel free to match any neighbour need not
    form an image."""
    if shift == 0:
        return masked_l1(pred, target, weight)
    weight = torch.ones_like(pred[:, :1]) if weight is None else weight
    height, width = pred.shape[-2:]
    padded = F.pad(target, (shift,) * 4, mode="replicate")
    block_errors = []
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            moved = padded[..., dy:dy + height, dx:dx + width]
            error = (pred - moved).abs().sum(dim=1, keepdim=True) * weight
            block_errors.append(F.avg_pool2d(error, block, ceil_mode=True, divisor_override=1))
    return torch.stack(block_errors).amin(dim=0).sum() / (weight.sum() * pred.shape[1]).clamp_min(1e-8)


class VGGPerceptualLoss(nn.Module):
    """pix2pixHD's VGG loss: L1 between VGG19 activations of fake and real images in [-1, 1].

    Activations at relu1_1 … relu5_1, weighted 1/32, 1/16, 1/8, 1/4, 1; inputs are mapped to ImageNet
    normalisation inside. The network is frozen and stays in eval mode; only ``fake`` gets gradients.
    """

    def __init__(self, vgg19_features_state_dict: dict[str, torch.Tensor]):
        super().__init__()
        features = vgg19_features()
        features.load_state_dict(vgg19_features_state_dict)
        self.features = features[: VGG_LAYERS[-1] + 1].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        super().train(mode)
        self.features.eval()
        return self

    def _activations(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = ((images + 1) / 2 - self.mean) / self.std
        activations = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG_LAYERS:
                activations.append(x)
        return activations

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return activation_l1(self._activations, fake, real, VGG_WEIGHTS)


def activation_l1(activations: Callable[[torch.Tensor], list[torch.Tensor]], fake: torch.Tensor, real: torch.Tensor,
                  weights: tuple[float, ...]) -> torch.Tensor:
    """The weighted sum of L1 distances between the activations of ``fake`` and ``real``; only ``fake`` gets gradients."""
    with torch.no_grad():
        real_activations = activations(real)
    return sum(w * F.l1_loss(f, r) for w, f, r in zip(weights, activations(fake), real_activations))


# The random perceptual network: channels of its stages, two 3×3 convolutions each, halving the size between them.
RANDOM_PERCEPTUAL_CHANNELS = (16, 32, 64)
RANDOM_PERCEPTUAL_SCALES = 2     # the image, then at half size


class RandomPerceptualLoss(nn.Module):
    """Generic Perceptual Loss (Liu et al., CVPR 2021): L1 between the activations of a fixed CNN with
    random weights, on the image and on it at half size. It needs no download and, those authors
    report, does about as well as pretrained VGG. ``seed`` fixes the network, independently of
    torch's global random state; inputs are images in [-1, 1] and only ``fake`` gets gradients.
    """

    def __init__(self, seed: int = 0, channels: tuple[int, ...] = RANDOM_PERCEPTUAL_CHANNELS):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        stages, inputs = [], 3
        for width in channels:
            stages.append(nn.Sequential(random_conv(inputs, width, generator), nn.ReLU(),
                                        random_conv(width, width, generator), nn.ReLU()))
            inputs = width
        self.stages = nn.ModuleList(stages).requires_grad_(False)

    def _activations(self, images: torch.Tensor) -> list[torch.Tensor]:
        activations = []
        for scale in range(RANDOM_PERCEPTUAL_SCALES):
            x = F.avg_pool2d(images, 2 ** scale) if scale else images
            for index, stage in enumerate(self.stages):
                x = stage(F.avg_pool2d(x, 2) if index else x)
                activations.append(x)
        return activations

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        count = RANDOM_PERCEPTUAL_SCALES * len(self.stages)
        return activation_l1(self._activations, fake, real, (1 / count,) * count)


def random_conv(inputs: int, outputs: int, generator: torch.Generator) -> nn.Conv2d:
    """A 3×3 convolution with He-normal weights drawn from ``generator`` and zero bias."""
    conv = nn.Conv2d(inputs, outputs, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / (inputs * 9)) ** 0.5)
        conv.bias.zero_()
    return conv


def perceptual_kind(setting: str, vgg19_cached: bool) -> str:
    """The kind the `perceptual_loss` setting names; ``auto`` is VGG19 where its weights are cached,
    else none (the random network did not help on the fidelity benchmark)."""
    if setting != "auto":
        return setting
    return "vgg19" if vgg19_cached else "none"


# The `perceptual_loss` setting: each kind built from VGG19's feature weights (None where they are
# absent) and the seed.
PERCEPTUAL_LOSSES: dict[str, Callable[[dict | None, int], nn.Module | None]] = {
    "vgg19": lambda vgg19_state, seed: VGGPerceptualLoss(vgg19_state),
    "random": lambda vgg19_state, seed: RandomPerceptualLoss(seed),
    "none": lambda vgg19_state, seed: None,
}
