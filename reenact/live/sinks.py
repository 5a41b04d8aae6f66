"""Live outputs for `reenact live`: a recorded file, a network stream, a virtual camera, a window.

Every sink is a context manager with ``write(frame)`` ((H, W, 3) uint8 RGB), ``close()`` and a
``frames_written`` count. ``open_sink`` turns an ``--output`` spec into the right one; the window
(``--show``) is asked for separately. A recording survives the loop being stopped with Ctrl-C: the
frames written so far are finalised into a playable file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from reenact.errors import ReenactError
from reenact.io.encode import VideoWriter
from reenact.io.ffmpeg_bin import ffmpeg_exe

# The container each streaming protocol carries.
STREAM_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "http": "mpegts", "https": "mpegts",
                  "rtmp": "flv", "rtmps": "flv", "rtsp": "rtsp"}
RECORDING_SUFFIXES = (".mp4", ".mov")     # what VideoWriter's MP4 muxer writes
OUTPUT_FORMS = ("a video file (.mp4, .mov)",
                "a stream URL (" + ", ".join(f"{scheme}://" for scheme in STREAM_FORMATS) + ")",
                "virtualcam")
STREAM_CLOSE_SECONDS = 5.0
QUIT_KEYS = (ord("q"), 27)   # q and Esc


class Sink:
    """The shape every output shares; ``with sink: sink.write(frame)``."""

    frames_written = 0

    def open(self) -> None:
        pass

    def write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def write_at(self, frame: np.ndarray, index: int) -> None:
        """``frame``, the output for input frame ``index``. A live output shows frames as they come;
        a recording keeps the input's timeline (Mp4Sink)."""
        self.write(frame)

    def end_timeline(self, input_frames: int) -> None:
        """The input delivered ``input_frames`` frames in all (a recording pads its end to match)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Sink:
        self.open()
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        self.close()
        return False


def sink_kind(spec: str) -> type[Sink]:
    """The kind of sink an ``--output`` spec names; an error listing the accepted forms for anything else."""
    if spec == "virtualcam":
        return VirtualCameraSink
    scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://", spec)
    if scheme and scheme.group(1).lower() in STREAM_FORMATS:
        return StreamSink
    if not scheme and Path(spec).suffix.lower() in RECORDING_SUFFIXES:
        return Mp4Sink
    raise ReenactError(f"--output {spec}: not an output reenact can write; use {'; '.join(OUTPUT_FORMS)}")


def open_sink(spec: str, fps: float, size: tuple[int, int]) -> Sink:
    """The sink an ``--output`` spec names (not yet opened: use it in a ``with``)."""
    kind = sink_kind(spec)
    return kind(fps, size) if kind is VirtualCameraSink else kind(spec, fps, size)


def rate_text(fps: float) -> str:
    """``fps`` as the exact fraction ffmpeg should use, e.g. 29.97… → "30000/1001"."""
    rate = Fraction(fps).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


class Mp4Sink(Sink):
    """An H.264 recording, renamed into place only when complete (reenact.io.encode.VideoWriter).

    Ended normally or by KeyboardInterrupt (Ctrl-C, or q in the window), the frames written so far
    are finalised and KeyboardInterrupt goes on. Any other exception, or no frame at all, leaves no
    file: a failed run leaves nothing half-made.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path, self.fps, self.size = Path(path), fps, size
        self._writer: VideoWriter | None = None
        self._ended = False
        self._last: np.ndarray | None = None
        self._next_index = 0          # the input frame the next frame written stands for

    def open(self) -> None:
        self._writer = VideoWriter(self.path, rate_text(self.fps), self.size)
        self._writer.__enter__()

    @property
    def frames_written(self) -> int:
        return self._writer.frames_written if self._writer else 0

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)
        self._last, self._next_index = frame, self._next_index + 1

    def write_at(self, frame: np.ndarray, index: int) -> None:
        """Input frames that got no output of their own (dropped while the model was busy, or before
        the first output) repeat the output before them (the first output, at the start), so that
        the recording plays in the input's time."""
        for _ in range(index - self._next_index):
            self._writer.write(frame if self._last is None else self._last)
        self.write(frame)
        self._next_index = index + 1

    def end_timeline(self, input_frames: int) -> None:
        if self._last is not None:
            for _ in range(input_frames - self._next_index):
                self.write(self._last)

    def close(self) -> None:
        """Finalise the file (nothing to finalise without frames)."""
        self._end(None)

    def __exit__(self, exc_type, exc, traceback) -> bool:
        keep = exc_type is None or issubclass(exc_type, KeyboardInterrupt)
        self._end(None if keep else exc)
        return False

    def _end(self, error: BaseException | None) -> None:
        if self._writer is None or self._ended:
            return
        self._ended = True
        if error is None and self._writer.frames_written == 0:
            error = _Discarded()
        # VideoWriter finalises on a clean exit and deletes its temporary file on an exception.
        self._writer.__exit__(type(error) if error else None, error, None)


class _Discarded(Exception):
    """Handed to VideoWriter to make it drop a recording that has no frames."""


class StreamSink(Sink):
    """H.264 sent live to a URL by ffmpeg: mpegts over udp/tcp/srt/http, flv over rtmp, or rtsp."""

    def __init__(self, url: str, fps: float, size: tuple[int, int]):
        scheme = url.split("://", 1)[0].lower()
        if scheme not in STREAM_FORMATS:
            raise ReenactError(f"{url}: can't stream there (streams: {', '.join(s + '://' for s in STREAM_FORMATS)})")
        self.url, self.fps, self.size, self.format = url, fps, size, STREAM_FORMATS[scheme]
        self.frames_written = 0
        self._process: subprocess.Popen | None = None

    def open(self) -> None:
        self._errors = tempfile.TemporaryFile()
        self._process = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self._errors, start_new_session=True)  # Ctrl-C is the loop's to handle

    def _command(self) -> list[str]:
        width, height = self.size
        stream = ffmpeg.input("pipe:0", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",
                              r=rate_text(self.fps))
        if width % 2 or height % 2:  # yuv420p needs even sides
            stream = stream.filter("pad", width + width % 2, height + height % 2, 0, 0, color="black")
        # A keyframe every second, so a receiver that joins late starts within a second.
        options = {"vcodec": "libx264", "preset": "ultrafast", "tune": "zerolatency", "pix_fmt": "yuv420p",
                   "g": max(1, round(self.fps)), "format": self.format}
        return stream.output(self.url, **options).global_args("-v", "error", "-nostdin").compile(cmd=ffmpeg_exe())

    def write(self, frame: np.ndarray) -> None:
        try:
            self._process.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())
        except BrokenPipeError:
            raise ReenactError(f"{self.url}: streaming failed (ffmpeg: {self._last_error()})") from None
        self.frames_written += 1

    def close(self) -> None:
        """Send what is buffered and stop; a receiver that is gone is not an error here."""
        if self._process is None:
            return
        process, self._process = self._process, None
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            process.wait(STREAM_CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._errors.close()

    def _last_error(self) -> str:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        line = lines[-1] if lines else f"exited with code {self._process.returncode}"
        return re.sub(r"^\[[^\]]+\] ", "", line).removeprefix(f"{self.url}: ")


class WindowSink(Sink):
    """An OpenCV window; q or Esc in it (or closing it) makes ``write`` raise KeyboardInterrupt."""

    def __init__(self, title: str):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ReenactError("--show: no display (DISPLAY and WAYLAND_DISPLAY are unset); "
                               "drop --show or write to an --output")
        self.title = title
        self.frames_written = 0

    def open(self) -> None:
        import cv2

        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as error:   # opencv-python-headless has no windows at all
            raise ReenactError(f"--show: OpenCV can't open a window ({str(error).strip().splitlines()[-1]})") from None

    def write(self, frame: np.ndarray) -> None:
        import cv2

        cv2.imshow(self.title, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames_written += 1
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise KeyboardInterrupt

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)   # lets the GUI actually take the window down
        except cv2.error:
            pass   # the user closed it already


class VirtualCameraSink(Sink):
    """A virtual webcam other programs (video calls) can pick, through the optional pyvirtualcam."""

    def __init__(self, fps: float, size: tuple[int, int]):
        try:
            import pyvirtualcam
        except ImportError:
            raise ReenactError("--output virtualcam: needs the optional pyvirtualcam package "
                               "(pip install pyvirtualcam)") from None
        self._module, self.fps, self.size = pyvirtualcam, fps, size
        self.frames_written = 0
        self._camera = None

    def open(self) -> None:
        width, height = self.size
        try:
            self._camera = self._module.Camera(width, height, self.fps, fmt=self._module.PixelFormat.RGB)
        except RuntimeError as error:   # no backend: v4l2loopback, OBS or Unity Capture missing
            raise ReenactError(f"--output virtualcam: {str(error).strip().splitlines()[0]}") from None

    def write(self, frame: np.ndarray) -> None:
        # No sleep_until_next_frame: the loop already runs at the input's pace.
        self._camera.send(np.ascontiguousarray(frame, np.uint8))
        self.frames_written += 1

    def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            camera.close()
