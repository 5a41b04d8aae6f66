"""`reenact transfer`: source video + target checkpoint → the target performing the source's motion."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from reenact.config import TransferConfig, config_dict
from reenact.device import resolve_device
from reenact.files import check_writable, write_json
from reenact.io import VideoInfo, VideoWriter, iter_frames, probe_video
from reenact.progress import info, progress_task
from reenact.reenactment import Output, Reenactor, StreamOptions


def run(config: TransferConfig) -> Path:
    # 1. The target (checkpoint and networks) and the source video.
    reenactor = Reenactor.load(config.checkpoint, resolve_device(config.device))
    reenactor.check_options(config.edit, config.paste_back)
    video = probe_video(config.source)
    out = Path(config.out) if config.out else Path.cwd() / f"{Path(config.source).stem}_as_{Path(config.checkpoint).stem}.mp4"
    check_writable(out)
    # 2. Track the source with the settings the target was tracked with.
    tracks = reenactor.track(config.source, video, config.device)
    # 3. Retarget the motion onto the target.
    motion = reenactor.retarget(tracks, config.edit)
    # 4. Translate frame by frame, feeding back the previous output, straight into the encoder.
    start = time.perf_counter()
    outputs = reenactor.drive(motion, StreamOptions(stabilise=config.stabilise, paste_back=config.paste_back))
    frame_count = write_video(out, video, outputs, motion.frame_count, config)
    seconds = time.perf_counter() - start
    # 5. The resolved settings and the figures beside the video.
    generation_fps = frame_count / seconds
    write_json(out.with_suffix(".json"), {"transfer": config_dict(config), "frames": frame_count,
                                          "fps": video.fps_fraction, "checkpoint_step": reenactor.checkpoint.step,
                                          "generation_fps": round(generation_fps, 2)})
    info(f"wrote {out} ({frame_count} frames at {video.fps:.3f} fps; generated at {generation_fps:.1f} frames/s)")
    return out


def write_video(out: Path, video: VideoInfo, outputs: Iterator[Output], frame_count: int, config: TransferConfig) -> int:
    first = next(outputs)
    height, width = first.frame.shape[:2]
    source_width = max(2, int(round(video.width * height / video.height / 2)) * 2)
    sources = iter_frames(video, size=(source_width, height), max_frames=frame_count) if config.side_by_side else None
    total_width = width + (source_width + first.proxy.shape[1] if config.side_by_side else 0)
    with VideoWriter(out, video.fps_fraction, (total_width, height), audio_from=config.source, crf=config.crf) as writer, \
            progress_task("transferring", frame_count) as task:
        # Without a terminal there is no bar: this line tells a log (and the Ctrl-C test) that
        # tracking is over and the slow part, with the output under a temporary name, has begun.
        info(f"transferring {frame_count} frames")
        for output in itertools.chain([first], outputs):
            frame = output.frame
            if sources is not None:
                proxy = output.proxy
                proxy = cv2.resize(proxy, (height, height), interpolation=cv2.INTER_NEAREST) if proxy.shape[0] != height else proxy
                frame = np.concatenate([next(sources), proxy, frame], axis=1)
            writer.write(frame)
            task.advance()
    return writer.frames_written
