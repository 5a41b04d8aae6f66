"""Streaming decode: RGB frames at a constant frame rate, optionally cropped and scaled.

Frames come one at a time from an ffmpeg pipe, so memory stays bounded whatever the video's
length. ffmpeg applies rotation metadata itself.
"""

from __future__ import annotations

import subprocess
import tempfile
from typing import Iterator

import ffmpeg
import numpy as np

from reenact.errors import ReenactError
from reenact.io.ffmpeg_bin import ffmpeg_exe
from reenact.io.probe import VideoInfo


def iter_frames(info: VideoInfo, size: tuple[int, int] | None = None,
                crop: tuple[int, int, int, int] | None = None, max_frames: int | None = None,
                first_frame: int = 0) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 RGB frames, from frame ``first_frame`` of the constant-rate sequence.

    ``crop`` = (x, y, w, h) in displayed pixels; parts outside the frame are black.
    ``size`` = (W, H) output size, scaled with area averaging.
    """
    # Timestamps restart at 0 so a video stream that starts late in its container is not
    # padded with copies of its first frame.
    stream = ffmpeg.input(info.path).video.filter("setpts", "PTS-STARTPTS").filter("fps", fps=info.fps_fraction)
    if first_frame:
        # Counted after the fps filter, so frame n here is frame n of a decode from the start.
        stream = stream.filter("trim", start_frame=first_frame).filter("setpts", "PTS-STARTPTS")
    width, height = info.width, info.height
    if crop is not None:
        stream = _padded_crop(stream, info, crop)
        width, height = crop[2], crop[3]
    if size is not None:
        stream = stream.filter("scale", size[0], size[1], flags="area")
        width, height = size
    output_options = {"format": "rawvideo", "pix_fmt": "rgb24"}
    if max_frames is not None:
        output_options["frames:v"] = max_frames
    command = stream.output("pipe:", **output_options).global_args("-v", "error", "-nostdin").compile(cmd=ffmpeg_exe())
    yield from _read_frames(command, info.path, width, height)


def _padded_crop(stream, info: VideoInfo, crop: tuple[int, int, int, int]):
    x, y, w, h = crop
    left, top = max(0, -x), max(0, -y)
    right, bottom = max(0, x + w - info.width), max(0, y + h - info.height)
    if left or top or right or bottom:
        stream = stream.filter("pad", info.width + left + right, info.height + top + bottom, left, top, color="black")
    return stream.filter("crop", w, h, x + left, y + top)


def _read_frames(command: list[str], path: str, width: int, height: int) -> Iterator[np.ndarray]:
    frame_bytes = width * height * 3
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        try:
            while True:
                buffer = process.stdout.read(frame_bytes)
                if len(buffer) < frame_bytes:
                    break
                yield np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
            if process.wait() != 0:
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                raise ReenactError(f"{path}: decoding failed (ffmpeg: {lines[-1] if lines else 'exit code %d' % process.returncode})")
        finally:
            if process.poll() is None:
                process.kill()
            process.stdout.close()
            process.wait()
