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


def load_clip(array: np.ndarray, resolution: int, pin_memory: bool = False) -> torch.Tensor:
    """A whole (T, H, W, C) memmap as (T, C, R, R) uint8, resized chunk by chunk into one tensor
    allocated up front: host memory peaks at the clip plus one chunk, not twice the clip.
    Pinned memory lets the copy to a GPU run without staging."""
    clip = torch.empty((len(array), array.shape[-1], resolution, resolution), dtype=torch.uint8, pin_memory=pin_memory)
    for start in range(0, len(array), RESIZE_CHUNK):
        chunk = array[start:start + RESIZE_CHUNK]
        clip[start:start + len(chunk)] = resize_uint8(chunk, resolution)
    return clip


def window_offsets(window: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.arange(window, device=device) - window // 2


def proxy_windows(proxies: torch.Tensor, centers: torch.Tensor, window: int, low: int, high: int) -> torch.Tensor:
    """(B, C·window, R, R) stacks of the C-channel proxies around each centre, clamped to frames [low, high)."""
    indices = (centers[:, None] + window_offsets(window, centers.device)[None]).clamp(low, high - 1)
    stacked = proxies[indices.reshape(-1)]
    return stacked.reshape(len(centers), window * proxies.shape[1], *stacked.shape[-2:])


def center_proxy(proxy_window: torch.Tensor, window: int) -> torch.Tensor:
    """The proxy of frame t itself out of a (B, C·window, R, R) stack."""
    channels = proxy_window.shape[1] // window
    return proxy_window[:, channels * (window // 2):channels * (window // 2 + 1)]


def generator_input(proxy_window: torch.Tensor, previous_frame: torch.Tensor) -> torch.Tensor:
    """What the translator sees: the proxy window and its own previous output (Everybody Dance Now)."""
    return torch.cat([proxy_window, previous_frame], dim=1)


def training_frames(count: int, validation_fraction: float) -> int:
    """How many of a clip's first frames are trained on; the rest (at least one) are held out."""
    return count - max(1, int(round(count * validation_fraction)))


class SubjectClip:
    """A subject's frames and proxies at the model resolution, with the train/validation split.

    Batches are sequences of consecutive frames (the translator generates them one after the
    other, each from the previous output), laid out as (B, L, ...) tensors in model range.
    """

    def __init__(self, frames: np.ndarray, proxies: np.ndarray, valid: np.ndarray, resolution: int,
                 window: int, validation_fraction: float, sequence_length: int = 2,
                 regions: np.ndarray | None = None, head_centers: np.ndarray | None = None, pin_memory: bool = False):
        self.frames = load_clip(frames, resolution, pin_memory)
        self.proxies = load_clip(proxies, resolution, pin_memory)
        # Regions that count extra in the reconstruction loss (mouth and eyes for faces).
        self.regions = load_clip(regions[..., None], resolution, pin_memory) if regions is not None else None
        # Head centres in model pixels (x, y) and whether there is a head, for the face enhancer.
        self.head_centers = torch.as_tensor(head_centers, dtype=torch.float32) if head_centers is not None else None
        self.valid = torch.as_tensor(np.asarray(valid, bool))
        self.window, self.sequence_length = window, sequence_length
        count = len(self.frames)
        self.train_end = training_frames(count, validation_fraction)
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
        """Everything on ``device``, where batches are then drawn without the host."""
        move = lambda tensor: tensor.to(device, non_blocking=True) if tensor is not None else None
        self.frames, self.proxies, self.regions = move(self.frames), move(self.proxies), move(self.regions)
        self.head_centers = move(self.head_centers)
        self.train_ends, self.validation_ends = move(self.train_ends), move(self.validation_ends)
        return self

    def training_batch(self, generator: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        """Random training sequences, drawn with a ``generator`` on the clip's device."""
        pick = torch.randint(len(self.train_ends), (batch_size,), generator=generator, device=self.frames.device)
        return self._sequences(self.train_ends[pick], 0, self.train_end)

    def validation_batch(self, count: int) -> dict[str, torch.Tensor]:
        """Evenly spaced held-out sequences; a fixed set so sample grids are comparable over training."""
        ends = self.validation_ends if len(self.validation_ends) else torch.tensor([len(self.frames) - 1], device=self.frames.device)
        pick = torch.linspace(0, len(ends) - 1, count, device=ends.device).round().long()
        return self._sequences(ends[pick], self.train_end, len(self.frames))

    def _sequences(self, ends: torch.Tensor, low: int, high: int) -> dict[str, torch.Tensor]:
        steps = torch.arange(-self.sequence_length + 1, 1, device=ends.device)
        indices = (ends[:, None] + steps[None]).clamp(min=low)   # (B, L)
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
