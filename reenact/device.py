"""Choosing the torch device."""

from __future__ import annotations

import torch

from reenact.errors import ReenactError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ReenactError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(name)
