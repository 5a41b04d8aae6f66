"""Where the head is: the centre of the confident head keypoints, for Everybody Dance Now's face enhancer."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reenact.body.layout import POSE

HEAD_POINTS = [POSE[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]


def head_centers(keypoints: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) mean of the confident head points and (T,) whether there were at least two."""
    head = keypoints[:, HEAD_POINTS]
    confident = head[..., 2] >= min_confidence
    count = confident.sum(axis=1)
    centers = (head[..., :2] * confident[..., None]).sum(axis=1) / np.maximum(count, 1)[:, None]
    return centers.astype(np.float32), count >= 2


def face_crop_size(resolution: int) -> int:
    """The enhancer's square: about a sixth of the frame, a multiple of 8 so its generator can halve it twice."""
    return max(16, 8 * round(resolution / 6 / 8))


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
