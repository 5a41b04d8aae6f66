"""Streaming H.264 encode with the source's audio, written atomically.

Frames go into ffmpeg through a pipe and out to a temporary file; the source's audio is muxed
in afterwards, cut to the video's length; only a complete file is renamed onto the output path.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path

import ffmpeg
import numpy as np

from reenact.errors import ReenactError
from reenact.files import atomic_path
from reenact.io.ffmpeg_bin import ffmpeg_exe
from reenact.io.probe import probe_video


class VideoWriter:
    """``with VideoWriter(path, "24000/1001", (w, h), audio_from=src) as w: w.write(rgb)``."""

    def __init__(self, path: str | Path, fps: str | float, size: tuple[int, int],
                 audio_from: str | Path | None = None, crf: int = 18):
        self.path, self.fps, self.size = Path(path), str(fps), size
        self.audio_from, self.crf = audio_from, crf
        self.frames_written = 0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "VideoWriter":
        self._video_path = self._stack.enter_context(atomic_path(self.path))
        self._errors = self._stack.enter_context(tempfile.TemporaryFile())
        width, height = self.size
        stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=self.fps)
        if width % 2 or height % 2:  # yuv420p needs even sides
            stream = stream.filter("pad", width + width % 2, height + height % 2, 0, 0, color="black")
        command = (stream.output(str(self._video_path), vcodec="libx264", pix_fmt="yuv420p", crf=self.crf,
                                 preset="fast", movflags="+faststart", format="mp4")
                   .global_args("-v", "error", "-y").compile(cmd=ffmpeg_exe()))
        # Its own session: a terminal's Ctrl-C reaches only Python, which decides whether to finish the file.
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._errors,
                                         start_new_session=True)
        return self

    def write(self, frame: np.ndarray) -> None:
        width, height = self.size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a ({height}, {width}, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            raise ReenactError(f"{self.path}: encoding failed (ffmpeg: {self._last_error()})") from None
        self.frames_written += 1

    def __exit__(self, exc_type, exc, traceback) -> bool:
        try:
            if exc_type is None:
                self._finish()
        except BaseException as error:
            exc_type, exc, traceback = type(error), error, error.__traceback__
            raise
        finally:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            # With an exception, atomic_path deletes the temporary file instead of renaming it.
            self._stack.__exit__(exc_type, exc, traceback)
        return False

    def _finish(self) -> None:
        self._process.stdin.close()
        if self._process.wait() != 0:
            raise ReenactError(f"{self.path}: encoding failed (ffmpeg: {self._last_error()})")
        if self.frames_written == 0:
            raise ReenactError(f"{self.path}: no frames to write")
        if self.audio_from is not None and probe_video(self.audio_from).has_audio:
            mux_audio(self._video_path, self.audio_from, self.frames_written / _rate(self.fps))

    def _last_error(self) -> str:
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "unknown error"


def _rate(fps: str) -> float:
    numerator, _, denominator = fps.partition("/")
    return float(numerator) / float(denominator or 1)


def mux_audio(video_path: Path, audio_from: str | Path, duration: float) -> None:
    """Replace ``video_path`` by itself plus ``audio_from``'s audio, cut to ``duration`` seconds."""
    muxed = video_path.with_name(video_path.stem + ".audio.mp4")
    video, audio = ffmpeg.input(str(video_path)), ffmpeg.input(str(audio_from))
    command = (ffmpeg.output(video.video, audio.audio, str(muxed), vcodec="copy", acodec="aac", t=f"{duration:.6f}",
                             movflags="+faststart", format="mp4")
               .global_args("-v", "error", "-y", "-nostdin").compile(cmd=ffmpeg_exe()))
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace")
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            raise ReenactError(f"{audio_from}: could not copy its audio ({lines[-1] if lines else 'ffmpeg failed'})")
        muxed.replace(video_path)
    finally:
        muxed.unlink(missing_ok=True)
