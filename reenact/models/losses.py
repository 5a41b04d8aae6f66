"""GAN, feature-matching, L1 and perceptual losses.

Discriminator outputs are lists (one per scale) of lists of features whose last entry is the
patch logits, as MultiscaleDiscriminator returns them.
"""

from __future__ import annotations

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
        with torch.no_grad():
            real_activations = self._activations(real)
        fake_activations = self._activations(fake)
        return sum(w * F.l1_loss(f, r) for w, f, r in zip(VGG_WEIGHTS, fake_activations, real_activations))
