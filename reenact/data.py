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
    """A subject's frames and proxies at the model resolution, with the train/validation split.

    Batches are sequences of consecutive frames (the translator generates them one after the
    other, each from the previous output), laid out as (B, L, ...) tensors in model range.
    """

    def __init__(self, frames: np.ndarray, proxies: np.ndarray, valid: np.ndarray, resolution: int,
                 window: int, validation_fraction: float, sequence_length: int = 2,
                 regions: np.ndarray | None = None, head_centers: np.ndarray | None = None):
        self.frames = load_clip(frames, resolution)
        self.proxies = load_clip(proxies, resolution)
        # Regions that count extra in the reconstruction loss (mouth and eyes for faces).
        self.regions = load_clip(regions[..., None], resolution) if regions is not None else None
        # Head centres in model pixels (x, y) and whether there is a head, for the face enhancer.
        self.head_centers = torch.as_tensor(head_centers, dtype=torch.float32) if head_centers is not None else None
        self.valid = torch.as_tensor(np.asarray(valid, bool))
        self.window, self.sequence_length = window, sequence_length
        count = len(self.frames)
        self.train_end = count - max(1, int(round(count * validation_fraction)))
        self.train_ends = self._sequence_ends(0, self.train_end)
        self.validation_ends = self._sequence_ends(self.train_end, count)

    def _sequence_ends(self, low: int, high: int) -> torch.Tensor:
        """Last frames t of the sequences t-L+1 .. t that lie in [low, high) with a person in every frame."""
        length = self.sequence_length
        valid = self.valid[low:high].float()
        if len(valid) < length:
            return torch.zeros(0, dtype=torch.long)
        all_valid = torch.nn.functional.avg_pool1d(valid[None, None], length, stride=1)[0, 0] > 1 - 1e-6
        return torch.nonzero(all_valid).flatten() + low + length - 1

    @property
    def proxy_channels(self) -> int:
        return self.proxies.shape[1]

    def to(self, device: torch.device) -> "SubjectClip":
        self.frames, self.proxies = self.frames.to(device), self.proxies.to(device)
        self.regions = self.regions.to(device) if self.regions is not None else None
        self.head_centers = self.head_centers.to(device) if self.head_centers is not None else None
        return self

    def training_batch(self, generator: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        """Random training sequences, on the clip's device."""
        pick = torch.randint(len(self.train_ends), (batch_size,), generator=generator)
        return self._sequences(self.train_ends[pick], 0, self.train_end)

    def validation_batch(self, count: int) -> dict[str, torch.Tensor]:
        """Evenly spaced held-out sequences; a fixed set so sample grids are comparable over training."""
        ends = self.validation_ends if len(self.validation_ends) else torch.tensor([len(self.frames) - 1])
        pick = torch.linspace(0, len(ends) - 1, count).round().long()
        return self._sequences(ends[pick], self.train_end, len(self.frames))

    def _sequences(self, ends: torch.Tensor, low: int, high: int) -> dict[str, torch.Tensor]:
        steps = torch.arange(-self.sequence_length + 1, 1)
        indices = (ends[:, None] + steps[None]).clamp(min=low).to(self.frames.device)   # (B, L)
        flat = indices.reshape(-1)
        shape = (*indices.shape, -1, *self.frames.shape[-2:])
        batch = {
            "proxies": to_model_range(proxy_windows(self.proxies, flat, self.window, low, high)).reshape(shape),
            "frames": to_model_range(self.frames[flat]).reshape(shape),
        }
        if self.regions is not None:
            batch["regions"] = (self.regions[flat].float() / 255).reshape(shape)
        if self.head_centers is not None:
            batch["head_centers"] = self.head_centers[flat].reshape(*indices.shape, 3)
        return batch
