"""Model presets: sizes of the translator and its training defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from reenact.errors import ReenactError


@dataclass(frozen=True)
class ModelPreset:
    resolution: int
    ngf: int                 # generator channels at full resolution
    n_downsample: int
    n_blocks: int            # residual blocks at the bottleneck
    ndf: int                 # discriminator channels
    discriminator_layers: int
    discriminator_scales: int
    window: int              # proxies of this many frames centred on t
    temporal_scales: int     # time scales of the temporal discriminators
    batch_size: int          # on a CPU
    gpu_batch_size: int      # on a GPU
    steps: int
    sample_every: int
    texture_channels: int = 8  # faces: channels of the neural texture
    # Fewer steps than this and train, transfer and eval say the model is undertrained. The fidelity
    # benchmark's 128 models had 920-1260 steps (30 CPU minutes); the demo's tiny one has 300.
    useful_steps: int = 900

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(resolution=96, ngf=16, n_downsample=3, n_blocks=3, ndf=16, discriminator_layers=2,
                        discriminator_scales=2, window=3, temporal_scales=1, batch_size=4, gpu_batch_size=16, steps=300, sample_every=50,
                        useful_steps=300),
    # The CPU preset: sized for a usable model in 20 to 30 minutes on 2 cores (`train --minutes`).
    "128": ModelPreset(resolution=128, ngf=24, n_downsample=3, n_blocks=4, ndf=24, discriminator_layers=3,
                       discriminator_scales=2, window=3, temporal_scales=1, batch_size=4, gpu_batch_size=16, steps=3000, sample_every=100),
    "256": ModelPreset(resolution=256, ngf=64, n_downsample=4, n_blocks=9, ndf=64, discriminator_layers=3,
                       discriminator_scales=2, window=5, temporal_scales=2, batch_size=4, gpu_batch_size=16, steps=40000, sample_every=500),
    "512": ModelPreset(resolution=512, ngf=64, n_downsample=4, n_blocks=9, ndf=64, discriminator_layers=3,
                       discriminator_scales=3, window=5, temporal_scales=2, batch_size=2, gpu_batch_size=8, steps=80000, sample_every=1000),
}


AUTO = "auto"
# `--preset auto`: what each kind of device trains at.
AUTO_PRESETS = {"cpu": "128", "cuda": "256"}


def choose_preset(name: str, device_type: str, subject_resolution: int) -> tuple[str, str]:
    """(the preset's name, why) for ``auto``; (``name``, "") otherwise. Auto never goes above the
    subject's stored resolution: it takes the largest preset below that instead."""
    if name != AUTO:
        return name, ""
    wanted = PRESETS[AUTO_PRESETS.get(device_type, AUTO_PRESETS["cpu"])]
    fitting = [n for n, p in PRESETS.items() if p.resolution <= min(wanted.resolution, subject_resolution)]
    if not fitting:
        raise ReenactError(f"no preset fits frames of {subject_resolution}px (the smallest is {min(p.resolution for p in PRESETS.values())}px)")
    chosen = max(fitting, key=lambda n: PRESETS[n].resolution)
    why = "a GPU" if device_type == "cuda" else "no GPU"
    if PRESETS[chosen].resolution < wanted.resolution:
        why += f"; the subject was tracked at {subject_resolution}px"
    return chosen, why


# Adam's rate at the reference batch; other batches scale it by the square root of their ratio.
BASE_LEARNING_RATE = 2e-4
BASE_BATCH_SIZE = 4


def scaled_learning_rate(batch_size: int) -> float:
    """Square-root scaling keeps the update's noise scale about constant as the batch grows,
    without the instability that linear scaling brings to GAN training with Adam."""
    return BASE_LEARNING_RATE * (batch_size / BASE_BATCH_SIZE) ** 0.5


def get_preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise ReenactError(f"unknown preset {name!r} (valid: {AUTO}, {', '.join(PRESETS)})")
    return PRESETS[name]
