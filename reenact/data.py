"""Training and inference tensors: windows of proxies, frames, and the two-frame scheme.

Images are uint8 (N, 3, R, R) tensors until a batch is taken; the network sees [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Frames per chunk when resizing a whole clip, to keep peak memory small.
RESIZE_CHUNK = 256


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def resize_uint8(images: np.ndarray | torch.Tensor, resolution: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, R, R) uint8 with area averaging; one function for train and transfer."""
    tensor = torch.as_tensor(np.array(images)).permute(0, 3, 1, 2)  # a copy: memmaps are read-only
    if tensor.shape[-1] == resolution:
        return tensor.contiguous()
    resized = F.interpolate(tensor.float(), size=(resolution, resolution), mode="area")
    return resized.round().clamp(0, 255).to(torch.uint8)


def load_clip(array: np.ndarray, resolution: int) -> torch.Tensor:
    """A whole (T, H, W, 3) memmap as (T, 3, R, R) uint8, resized chunk by chunk."""
    chunks = [resize_uint8(array[i:i + RESIZE_CHUNK], resolution) for i in range(0, len(array), RESIZE_CHUNK)]
    return torch.cat(chunks)


def window_offsets(window: int) -> torch.Tensor:
    return torch.arange(window) - window // 2


def proxy_windows(proxies: torch.Tensor, centers: torch.Tensor, window: int, low: int, high: int) -> torch.Tensor:
    """(B, C·window, R, R) stacks of the C-channel proxies around each centre, clamped to frames [low, high)."""
    indices = (centers[:, None] + window_offsets(window).to(centers.device)[None]).clamp(low, high - 1)
    stacked = proxies[indices.reshape(-1)]
    return stacked.reshape(len(centers), window * proxies.shape[1], *stacked.shape[-2:])


def center_proxy(proxy_window: torch.Tensor, window: int) -> torch.Tensor:
    """The proxy of frame t itself out of a (B, C·window, R, R) stack."""
    channels = proxy_window.shape[1] // window
    return proxy_window[:, channels * (window // 2):channels * (window // 2 + 1)]


def generator_input(proxy_window: torch.Tensor, previous_frame: torch.Tensor) -> torch.Tensor:
    """What the translator sees: the proxy window and its own previous output (Everybody Dance Now)."""
    return torch.cat([proxy_window, previous_frame], dim=1)


class SubjectClip:
    """A subject's frames and proxies at the model resolution, with the train/validation split."""

    def __init__(self, frames: np.ndarray, proxies: np.ndarray, valid: np.ndarray, resolution: int,
                 window: int, validation_fraction: float, regions: np.ndarray | None = None):
        self.frames = load_clip(frames, resolution)
        self.proxies = load_clip(proxies, resolution)
        # Regions that count extra in the reconstruction loss (mouth and eyes for faces).
        self.regions = load_clip(regions[..., None], resolution) if regions is not None else None
        self.valid = torch.as_tensor(np.asarray(valid, bool))
        self.window = window
        count = len(self.frames)
        self.train_end = count - max(1, int(round(count * validation_fraction)))
        pair_ok = self.valid[1:self.train_end] & self.valid[:self.train_end - 1]
        self.train_centers = torch.nonzero(pair_ok).flatten() + 1
        self.validation_centers = torch.arange(self.train_end, count)

    @property
    def proxy_channels(self) -> int:
        return self.proxies.shape[1]

    def to(self, device: torch.device) -> "SubjectClip":
        self.frames, self.proxies = self.frames.to(device), self.proxies.to(device)
        self.regions = self.regions.to(device) if self.regions is not None else None
        return self

    def pair_batch(self, generator: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        """Random consecutive training pairs (t-1, t), in model range, on the clip's device."""
        pick = torch.randint(len(self.train_centers), (batch_size,), generator=generator)
        centers = self.train_centers[pick].to(self.frames.device)
        return self._pair(centers, 0, self.train_end)

    def validation_batch(self, count: int) -> dict[str, torch.Tensor]:
        """Evenly spaced held-out pairs; a fixed set so sample grids are comparable over training."""
        pick = torch.linspace(0, len(self.validation_centers) - 1, count).round().long()
        centers = self.validation_centers[pick].to(self.frames.device)
        return self._pair(centers, self.train_end, len(self.frames))

    def _pair(self, centers: torch.Tensor, low: int, high: int) -> dict[str, torch.Tensor]:
        previous = (centers - 1).clamp(min=low)
        batch = {
            "proxies_previous": to_model_range(proxy_windows(self.proxies, previous, self.window, low, high)),
            "proxies": to_model_range(proxy_windows(self.proxies, centers, self.window, low, high)),
            "frames_previous": to_model_range(self.frames[previous]),
            "frames": to_model_range(self.frames[centers]),
        }
        if self.regions is not None:
            batch["regions"] = torch.cat([self.regions[previous], self.regions[centers]]).float() / 255
        return batch
