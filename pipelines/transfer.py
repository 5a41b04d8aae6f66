"""`reenact transfer`: source video + target checkpoint → the target performing the source's motion."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from pipelines.track import MODES, check_found
from reenact.body import retarget as body_retarget
from reenact.checkpoint import load_checkpoint
from reenact.config import TrackConfig, TransferConfig, config_dict
from reenact.data import center_proxy, resize_uint8, to_model_range, to_uint8, window_offsets
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.face import retarget as face_retarget
from reenact.files import check_writable, write_json
from reenact.io import VideoInfo, VideoWriter, iter_frames, probe_video
from reenact.progress import info, progress_task
from reenact.body.head import paste_patches
from reenact.stabilise import TemporalStabiliser
from reenact.training import enhance_faces
from reenact.translator import StreamingTranslator, build_face_enhancer, build_generator

FEATHER = 0.08   # of the crop side: the soft edge when pasting back


def run(config: TransferConfig) -> Path:
    # 1. The target's checkpoint (weights only) and the source video.
    checkpoint = load_checkpoint(config.checkpoint)
    mode, target = checkpoint["mode"], checkpoint["target"]
    check_options(config, mode, target)
    video = probe_video(config.source)
    out = Path(config.out) if config.out else Path.cwd() / f"{Path(config.source).stem}_as_{Path(config.checkpoint).stem}.mp4"
    check_writable(out)
    device = resolve_device(config.device)
    # 2. Track the source with the settings the target was tracked with.
    tracks = track_like_target(video, config.source, checkpoint, config.device)
    # 3. Retarget the motion onto the target; proxies are drawn at the subject's resolution.
    render_proxy, crops, heads = retarget(tracks, checkpoint, config.edit)
    # 4. Translate frame by frame, feeding back the previous output, straight into the encoder.
    generator = build_generator(checkpoint["model"]).to(device).eval()
    generator.load_state_dict(checkpoint.get("generator_ema") or checkpoint["generator"])
    enhancer = load_face_enhancer(checkpoint, device)
    start = time.perf_counter()
    results = generate(generator, render_proxy, len(tracks.valid), checkpoint["window"], device,
                       stabiliser=TemporalStabiliser.for_mode(mode) if config.stabilise else None)
    if enhancer is not None:
        results = enhance(results, enhancer, heads, checkpoint["model"]["face_crop"]["size"], device)
    if config.paste_back:
        results = paste_back(results, crops, target)
    frame_count = write_video(out, video, results, len(tracks.valid), config)
    seconds = time.perf_counter() - start
    # 5. The resolved settings beside the video.
    write_json(out.with_suffix(".json"), {"transfer": config_dict(config), "frames": frame_count,
                                          "fps": video.fps_fraction, "checkpoint_step": checkpoint["step"]})
    info(f"wrote {out} ({frame_count} frames at {video.fps:.3f} fps; generated at {frame_count / seconds:.1f} frames/s)")
    return out


def track_like_target(video: VideoInfo, path: str, checkpoint: dict, device: str):
    """The source's tracks, found with the settings the checkpoint's target was tracked with."""
    mode, target = checkpoint["mode"], checkpoint["target"]
    track_config = TrackConfig(**{**target["track_config"], "video": path, "out": None, "device": device})
    tracks = MODES[mode].track(video, track_config)
    check_found(path, tracks.valid, track_config, mode)
    return tracks


def retarget(tracks, checkpoint: dict, edits: tuple[str, ...] = ()
             ) -> tuple[Callable[[int], torch.Tensor], np.ndarray | None, np.ndarray | None]:
    """(t → the retargeted proxy at the model's resolution, face crops in the target's frame or
    None, body head x, y and seen in model pixels or None)."""
    target, resolution = checkpoint["target"], checkpoint["resolution"]
    crops = heads = None
    if checkpoint["mode"] == "face":
        proxy_at_subject_size, crops = face_retarget.proxy_source(tracks, target, edits)
    else:
        proxy_at_subject_size, heads = body_retarget.proxy_source(tracks, target)
        heads[:, :2] *= resolution / target["subject_resolution"]
    return (lambda t: resize_uint8(proxy_at_subject_size(t)[None], resolution)[0]), crops, heads


def check_options(config: TransferConfig, mode: str, target: dict) -> None:
    """Fail before the slow tracking when the options can't apply."""
    if mode != "face" and (config.edit or config.paste_back):
        raise ReenactError(f"{config.checkpoint}: --edit and --paste-back need a face checkpoint, this one is {mode}")
    if mode == "face":
        face_retarget.parse_edits(config.edit, target["expression_names"])
        if config.paste_back and not Path(target["source_video"]).is_file():
            raise ReenactError(f"--paste-back: the target's video {target['source_video']} is not there any more")


def proxy_windows(render_proxy: Callable[[int], torch.Tensor], frame_count: int, window: int) -> Iterator[torch.Tensor]:
    """(C·window, R, R) uint8 windows for t = 0..T-1, rendering each proxy once."""
    offsets = window_offsets(window).tolist()
    cache: dict[int, torch.Tensor] = {}
    for t in range(frame_count):
        indices = [min(max(t + o, 0), frame_count - 1) for o in offsets]
        for index in indices:
            if index not in cache:
                cache[index] = render_proxy(index)
        yield torch.cat([cache[i] for i in indices])
        cache.pop(t + offsets[0], None)


def generate(generator: torch.nn.Module, render_proxy: Callable[[int], torch.Tensor], frame_count: int, window: int,
             device: torch.device, feedback: bool = True,
             stabiliser: TemporalStabiliser | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(proxy as RGB, generated frame) pairs, each (R, R, 3) uint8; ``feedback`` feeds back the previous output."""
    translate = StreamingTranslator(generator, window, feedback, stabiliser)
    for proxy_window in proxy_windows(render_proxy, frame_count, window):
        middle = center_proxy(proxy_window[None], window)[0, :3]
        yield middle.permute(1, 2, 0).numpy(), translate(proxy_window)


def load_face_enhancer(checkpoint: dict, device: torch.device) -> torch.nn.Module | None:
    enhancer = build_face_enhancer(checkpoint["model"])
    if enhancer is None or "face_enhancer" not in checkpoint:
        return None
    enhancer.load_state_dict(checkpoint["face_enhancer"])
    return enhancer.to(device).eval()


def enhance(results: Iterator[tuple[np.ndarray, np.ndarray]], enhancer: torch.nn.Module, heads: np.ndarray, size: int,
            device: torch.device) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Everybody Dance Now's face GAN on each generated frame, where the source showed a head."""
    for (proxy, frame), head in zip(results, heads):
        yield proxy, enhance_frame(enhancer, proxy, frame, head, size, device)


@torch.no_grad()
def enhance_frame(enhancer: torch.nn.Module, proxy: np.ndarray, frame: np.ndarray, head: np.ndarray, size: int,
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


def paste_back(results: Iterator[tuple[np.ndarray, np.ndarray]], crops: np.ndarray, target: dict) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Composite each generated crop into the target's own footage (looped) with a feathered edge."""
    for (proxy, generated), crop, frame in zip(results, crops, looped_footage(target)):
        yield proxy, composite(frame, generated, crop)


def looped_footage(target: dict) -> Iterator[np.ndarray]:
    """The target's own video, frame by frame, over and over."""
    target_video = probe_video(target["source_video"])
    return itertools.chain.from_iterable(iter_frames(target_video) for _ in itertools.count())


def composite(frame: np.ndarray, generated: np.ndarray, crop: np.ndarray) -> np.ndarray:
    x, y, size = (int(v) for v in crop)
    patch = cv2.resize(generated, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / max(1.0, FEATHER * size), 0, 1)
    alpha = np.minimum(ramp[:, None], ramp[None, :])[..., None]
    out = frame.astype(np.float32)
    top, left = max(0, y), max(0, x)
    bottom, right = min(frame.shape[0], y + size), min(frame.shape[1], x + size)
    if bottom > top and right > left:
        region = (slice(top - y, bottom - y), slice(left - x, right - x))
        out[top:bottom, left:right] = alpha[region] * patch[region] + (1 - alpha[region]) * out[top:bottom, left:right]
    return out.round().astype(np.uint8)


def write_video(out: Path, video: VideoInfo, results: Iterator[tuple[np.ndarray, np.ndarray]], frame_count: int,
                config: TransferConfig) -> int:
    first_proxy, first_result = next(results)
    height, width = first_result.shape[:2]
    source_width = max(2, int(round(video.width * height / video.height / 2)) * 2)
    sources = iter_frames(video, size=(source_width, height), max_frames=frame_count) if config.side_by_side else None
    total_width = width + (source_width + first_proxy.shape[1] if config.side_by_side else 0)
    with VideoWriter(out, video.fps_fraction, (total_width, height), audio_from=config.source, crf=config.crf) as writer, \
            progress_task("transferring", frame_count) as task:
        # Without a terminal there is no bar: this line tells a log (and the Ctrl-C test) that
        # tracking is over and the slow part, with the output under a temporary name, has begun.
        info(f"transferring {frame_count} frames")
        for proxy, result in itertools.chain([(first_proxy, first_result)], results):
            if sources is not None:
                proxy = cv2.resize(proxy, (height, height), interpolation=cv2.INTER_NEAREST) if proxy.shape[0] != height else proxy
                result = np.concatenate([next(sources), proxy, result], axis=1)
            writer.write(result)
            task.advance()
    return writer.frames_written
