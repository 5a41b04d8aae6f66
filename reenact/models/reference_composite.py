"""Bodies: the target's own pixels shown where they fit, not only fed to the network.

The body's proxy carries a training frame of the target warped limb by limb to the pose
(reenact/body/reference.py). Fed as input alone, the network still repaints every pixel of the
cloth through its convolutions, and after 30 CPU minutes that painting is a blur: on the fidelity
benchmark's taiji the generator scored 0.72 of the footage's sharpness while the warped reference
is a resampled photograph. So the network also paints a mask, and where the mask is high the frame
shows the warped reference's own pixels, as the face shows its neural texture's
(reenact/models/neural_texture.py): the same blocks, the same push outside training, the same
colours of the soft blend. The network keeps painting what the warp gets wrong: a fold, an elbow's
seam, a hand.

What 30 CPU minutes learn (held out): the warp is rarely right to the pixel, so where the
reference is painted the soft mask shows it at 0.21 on average on both taiji and fashion, above
one half on 1.5 % and 6.6 % of those pixels. Pushed by the gain, the frame shows the painting's
detail almost everywhere, in the colours of the soft blend. That painting, trained beside the
reference, came out sharper than one trained without it: taiji's generator frames scored 0.91
of the footage's sharpness (0.76 shown as the soft blend it was trained as), where the previous
run's, without the composite, scored 0.72 (README, fidelity benchmark).
"""

from __future__ import annotations

import torch
from torch import nn

from reenact.models.generator import WrappedGenerator
from reenact.models.neural_texture import drawn, masked_composite

REFERENCE_CHANNELS = 3      # the last channels of each body proxy: reenact/body/reference.py's WithReference


class ReferenceCompositeGenerator(WrappedGenerator):
    """A generator that paints one more channel, a mask, and shows the warped reference of frame t
    (the last ``REFERENCE_CHANNELS`` of each ``proxy_channels``-channel proxy in the window) where the
    mask says and the reference is painted. Its output keeps the painting's other channels (a plate's
    alpha) after the RGB, so a ``CompositingGenerator`` can wrap it."""

    def __init__(self, generator: nn.Module, proxy_channels: int, window: int, mask_scale: int = 1,
                 mask_gain: float = 1.0):
        super().__init__()
        self.generator, self.mask_scale, self.mask_gain = generator, mask_scale, mask_gain
        end = proxy_channels * (window // 2 + 1)
        self.reference = slice(end - REFERENCE_CHANNELS, end)
        self.size_multiple = generator.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reference = x[:, self.reference]
        painted = self.generator(x)
        frame, _ = masked_composite(painted, reference, drawn(reference), self.mask_scale,
                                    1.0 if self.training else self.mask_gain)
        return frame
