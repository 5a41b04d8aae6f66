"""The translator's networks and losses. Modules do no I/O and parse no options."""

from reenact.models.discriminator import MultiscaleDiscriminator, PatchDiscriminator
from reenact.models.generator import CompositingGenerator, GlobalGenerator
from reenact.models.losses import (PERCEPTUAL_LOSSES, RandomPerceptualLoss, VGGPerceptualLoss, feature_matching_loss,
                                   foreground_alpha, lsgan_discriminator_loss, lsgan_generator_loss, masked_l1, perceptual_kind,
                                   shift_tolerant_l1, split_outputs, weighted_mean)
from reenact.models.vgg import TORCHVISION_VGG19_FILENAME, find_vgg19_weights, load_vgg19_features_state, vgg19_features

__all__ = ["PERCEPTUAL_LOSSES", "CompositingGenerator", "TORCHVISION_VGG19_FILENAME", "GlobalGenerator", "RandomPerceptualLoss", "MultiscaleDiscriminator", "PatchDiscriminator",
           "VGGPerceptualLoss", "feature_matching_loss", "find_vgg19_weights", "foreground_alpha", "load_vgg19_features_state", "lsgan_discriminator_loss",
           "lsgan_generator_loss", "masked_l1", "perceptual_kind", "shift_tolerant_l1", "split_outputs", "vgg19_features", "weighted_mean"]
