"""Checkpoints: plain dicts of tensors and primitives, written atomically, read with weights_only.

Top-level keys: format, format_version, mode, step, world_size, config (the train config),
preset, model (constructor arguments of each network), generator / generator_ema /
image_discriminator / temporal_discriminators (state dicts), optimizers, schedulers, target
(what transfer needs), perceptual_loss, validation, rng.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reenact.errors import ReenactError
from reenact.files import atomic_path

FORMAT = "reenact.checkpoint"
FORMAT_VERSION = 1
MODES = ("body", "face")
REQUIRED = ("mode", "step", "config", "resolution", "window", "model", "generator", "target")


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | Path, mode: str | None = None) -> dict:
    """Load with ``weights_only=True``, so a checkpoint that carries code is refused, never run."""
    path = Path(path)
    if not path.exists():
        raise ReenactError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise ReenactError(f"{path}: is a folder, not a checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or unsafe files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ReenactError(f"{path}: not a loadable reenact checkpoint (corrupt, or holds code that was "
                           f"refused: {reason[:160]})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ReenactError(f"{path}: not a reenact checkpoint")
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise ReenactError(f"{path}: checkpoint format {checkpoint.get('format_version')} is not supported "
                           f"(this reenact reads {FORMAT_VERSION})")
    if checkpoint.get("mode") not in MODES:
        raise ReenactError(f"{path}: a checkpoint of unknown mode {checkpoint.get('mode')!r} (this reenact knows {', '.join(MODES)})")
    if mode is not None and checkpoint["mode"] != mode:
        raise ReenactError(f"{path}: a {checkpoint['mode']} checkpoint, but {mode} is needed here")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise ReenactError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    return checkpoint
