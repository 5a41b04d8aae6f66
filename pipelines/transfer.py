"""`reenact transfer`: source video + target checkpoint → the target performing the source's motion."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from pipelines.track import TRACKERS, check_person_found
from reenact.body.crop import Crop
from reenact.body.normalize import ground_stats, normalize_poses
from reenact.checkpoint import load_checkpoint
from reenact.config import TrackConfig, TransferConfig, config_dict
from reenact.data import generator_input, resize_uint8, to_model_range, to_uint8, window_offsets
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.files import write_json
from reenact.io import VideoInfo, VideoWriter, iter_frames, probe_video
from reenact.progress import info, progress_task
from reenact.render.skeleton import SkeletonRenderer
from reenact.translator import build_generator


def run(config: TransferConfig) -> Path:
    # 1. The target's checkpoint (weights only) and the source video.
    checkpoint = load_checkpoint(config.checkpoint)
    if checkpoint["mode"] not in RETARGETERS:
        raise ReenactError(f"{config.checkpoint}: {checkpoint['mode']} checkpoints are not supported by this version")
    video = probe_video(config.source)
    out = Path(config.out) if config.out else Path.cwd() / f"{Path(config.source).stem}_as_{Path(config.checkpoint).stem}.mp4"
    device = resolve_device(config.device)
    # 2. Track the source with the settings the target was tracked with.
    target = checkpoint["target"]
    track_config = TrackConfig(**{**target["track_config"], "video": config.source, "out": None})
    keypoints, valid = TRACKERS[checkpoint["mode"]](video, track_config)
    check_person_found(config.source, valid, track_config)
    # 3. Retarget the motion onto the target and render proxies in the target's crop.
    render_proxy = RETARGETERS[checkpoint["mode"]](keypoints, valid, target, checkpoint["resolution"])
    # 4. Translate frame by frame, feeding back the previous output, straight into the encoder.
    generator = build_generator(checkpoint["model"]).to(device).eval()
    generator.load_state_dict(checkpoint["generator"])
    start = time.perf_counter()
    frame_count = write_result(out, video, generator, render_proxy, len(keypoints), checkpoint, config, device)
    seconds = time.perf_counter() - start
    # 5. The resolved settings beside the video.
    write_json(out.with_suffix(".json"), {"transfer": config_dict(config), "frames": frame_count,
                                          "fps": video.fps_fraction, "checkpoint_step": checkpoint["step"]})
    info(f"wrote {out} ({frame_count} frames at {video.fps:.3f} fps; generated at {frame_count / seconds:.1f} frames/s)")
    return out


def body_proxy_renderer(keypoints: np.ndarray, valid: np.ndarray, target: dict, resolution: int) -> Callable[[int], torch.Tensor]:
    """Everybody Dance Now global normalisation into the target's frame, then the target's crop.

    Proxies are drawn at the subject's resolution and resized exactly as training resized them.
    """
    min_confidence = target["track_config"]["min_confidence"]
    source_ground = ground_stats(keypoints, valid, min_confidence)
    normalized = normalize_poses(keypoints, source_ground, target["ground"], min_confidence)
    normalized[~valid, :, 2] = 0.0
    subject_resolution = target["subject_resolution"]
    in_crop = Crop.from_dict(target["crop"]).to_crop_pixels(normalized, subject_resolution)
    renderer = SkeletonRenderer(subject_resolution)
    return lambda t: resize_uint8(renderer.render(in_crop[t])[None], resolution)[0]


RETARGETERS = {"body": body_proxy_renderer}


def proxy_windows(render_proxy: Callable[[int], torch.Tensor], frame_count: int, window: int) -> Iterator[torch.Tensor]:
    """(3·window, R, R) uint8 windows for t = 0..T-1, rendering each proxy once."""
    offsets = window_offsets(window).tolist()
    cache: dict[int, torch.Tensor] = {}
    for t in range(frame_count):
        indices = [min(max(t + o, 0), frame_count - 1) for o in offsets]
        for index in indices:
            if index not in cache:
                cache[index] = render_proxy(index)
        yield torch.cat([cache[i] for i in indices])
        cache.pop(t + offsets[0], None)


@torch.no_grad()
def write_result(out: Path, video: VideoInfo, generator: torch.nn.Module, render_proxy: Callable[[int], torch.Tensor],
                 frame_count: int, checkpoint: dict, config: TransferConfig, device: torch.device) -> int:
    resolution, window = checkpoint["resolution"], checkpoint["window"]
    previous = torch.zeros(1, 3, resolution, resolution, device=device)
    source_width = max(2, int(round(video.width * resolution / video.height / 2)) * 2)
    width = source_width + 2 * resolution if config.side_by_side else resolution
    sources = iter_frames(video, size=(source_width, resolution), max_frames=frame_count) if config.side_by_side else None
    with VideoWriter(out, video.fps_fraction, (width, resolution), audio_from=config.source, crf=config.crf) as writer, \
            progress_task("transferring", frame_count) as task:
        for proxy_window in proxy_windows(render_proxy, frame_count, window):
            proxies = to_model_range(proxy_window[None].to(device))
            previous = generator(generator_input(proxies, previous))
            result = to_uint8(previous[0]).permute(1, 2, 0).cpu().numpy()
            if sources is not None:
                proxy = proxy_window[3 * (window // 2):3 * (window // 2) + 3].permute(1, 2, 0).numpy()
                result = np.concatenate([next(sources), proxy, result], axis=1)
            writer.write(result)
            task.advance()
    return frame_count
