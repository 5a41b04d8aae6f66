"""Everybody Dance Now's face enhancer: square head crops cut out of a batch of frames around
per-image centres, a predicted residual added, and the crops pasted back (training and inference)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reenact.data import to_model_range, to_uint8


def padded_patch_grid(images: torch.Tensor, centers: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple]:
    """(B, C, H, W) images padded by size // 2 on every side, and the advanced index of the squares
    centred on (B, 2) pixel centres in them: indexing gives (B, size, size, C). Built on the device,
    so cropping needs no host round trip."""
    half = size // 2
    height, width = images.shape[-2:]
    # Top-left in the padded image is centre - half + half; clamped so a far-off centre still indexes in bounds.
    corners = centers.round().long()
    left = corners[:, 0].clamp(0, width + 2 * half - size)
    top = corners[:, 1].clamp(0, height + 2 * half - size)
    offsets = torch.arange(size, device=images.device)
    batch = torch.arange(len(images), device=images.device)[:, None, None]
    index = (batch, slice(None), (top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :])
    return F.pad(images, (half, half, half, half)), index


def crop_patches(images: torch.Tensor, centers: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, size, size) squares of (B, C, H, W) images centred on (B, 2) pixel centres; zeros outside."""
    padded, index = padded_patch_grid(images, centers, size)
    return padded[index].permute(0, 3, 1, 2)


def paste_patches(images: torch.Tensor, patches: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``images`` with each patch written back where ``crop_patches`` took it from."""
    half = patches.shape[-1] // 2
    padded, index = padded_patch_grid(images, centers, patches.shape[-1])
    padded[index] = patches.permute(0, 2, 3, 1).to(padded.dtype)
    return padded[..., half:half + images.shape[-2], half:half + images.shape[-1]]


def enhance_faces(enhancer: nn.Module, frames: torch.Tensor, proxies: torch.Tensor, centers: torch.Tensor,
                  size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(enhanced head crops, the crops they started from): the crop plus a predicted residual."""
    crops = crop_patches(frames, centers, size)
    residual = enhancer(torch.cat([crop_patches(proxies, centers, size), crops], dim=1))
    return (crops + residual).clamp(-1, 1), crops


@torch.no_grad()
def enhance_frame(enhancer: nn.Module, proxy: np.ndarray, frame: np.ndarray, head: np.ndarray, size: int,
                  device: torch.device) -> np.ndarray:
    """One (R, R, 3) uint8 frame with its face enhanced around ``head`` (x, y, seen), if seen."""
    x, y, seen = head
    if seen <= 0.5:
        return frame
    image = to_model_range(torch.as_tensor(frame).permute(2, 0, 1)[None].to(device))
    proxies = to_model_range(torch.as_tensor(proxy).permute(2, 0, 1)[None].to(device))
    center = torch.tensor([[x, y]], device=device)
    enhanced, _ = enhance_faces(enhancer, image, proxies, center, size)
    return to_uint8(paste_patches(image, enhanced, center)[0]).permute(1, 2, 0).cpu().numpy()
