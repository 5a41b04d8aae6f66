"""Live inputs for `reenact live`: the newest frame of a camera, a network stream, a file or standard input.

ffmpeg decodes the input and writes scaled RGB frames to a pipe. A background thread reads them as
fast as the input delivers and keeps only the newest one, so a consumer slower than the input sees
the present instead of a growing backlog; every frame it replaces before anyone took it is counted
as dropped. A second thread reads ffmpeg's log: the input's frame rate and the delivered size come
from its stream summary (streams have no ffprobe to ask beforehand), and its last error line goes
into the messages.

A network input that goes quiet is a stall, not an end: ``next`` returns None and the caller decides
how long to wait. The input ends (``InputEnded``) when ffmpeg closes its output: end of a file or of
standard input, a server closing the stream, or ffmpeg exiting.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import ffmpeg
import numpy as np

from reenact.errors import ReenactError
from reenact.io.ffmpeg_bin import ffmpeg_exe, ffmpeg_has_option
from reenact.io.probe import NTSC_RATES

STREAM_SCHEMES = ("rtsp", "rtmp", "http", "https", "udp", "tcp", "srt")
DEFAULT_FPS = 30.0
# A network stream is probed for this long (µs) before frames flow; ffmpeg's default of 5 s means a
# 5 s wait at start, and a stream shorter than that never starts at all.
NETWORK_ANALYZE_MICROSECONDS = 1_000_000
EXIT_WAIT_SECONDS = 2.0
# ffmpeg log lines that are part of the stream summary, never an error.
SUMMARY_PREFIXES = ("Input #", "Output #", "Stream mapping:", "Press [q]", "Stream #")


class InputEnded(Exception):
    """The input has no more frames (end of file, the stream closed, or ffmpeg exited); its message
    says why in one line."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray      # (H, W, 3) uint8 RGB
    index: int             # 0-based count of frames the input delivered; gaps mean dropped frames
    captured: float        # time.monotonic() when the frame came out of the input


@dataclass(frozen=True)
class InputSpec:
    """What ``FrameSource``'s spec string stands for."""
    kind: str              # "stdin", "camera", "stream" or "file"
    target: str            # what ffmpeg opens: "pipe:0", a device path, a URL or a file path
    name: str              # how messages name it


def parse_input_spec(spec: str) -> InputSpec:
    """Classify ``spec``; a missing file or camera fails here, before any process starts."""
    if spec == "-":
        return InputSpec("stdin", "pipe:0", "standard input")
    if spec.isdigit() or re.fullmatch(r"/dev/video\d+", spec):
        return _camera_spec(spec)
    scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://", spec)
    if scheme and scheme.group(1).lower() in STREAM_SCHEMES:
        return InputSpec("stream", spec, spec)
    if scheme:
        raise ReenactError(f"{spec}: unsupported input (streams: {', '.join(s + '://' for s in STREAM_SCHEMES)})")
    path = Path(spec)
    if not path.exists():
        raise ReenactError(f"{spec}: no such file")
    if path.is_dir():
        raise ReenactError(f"{spec}: is a directory, not a video")
    return InputSpec("file", spec, spec)


def _camera_spec(spec: str) -> InputSpec:
    if sys.platform == "darwin" and spec.isdigit():
        return InputSpec("camera", spec, f"camera {spec}")
    if not sys.platform.startswith("linux"):
        raise ReenactError(f"camera {spec}: cameras are read on Linux (/dev/videoN) and macOS only; "
                           "stream the camera with ffmpeg to udp:// or standard input instead")
    device = f"/dev/video{spec}" if spec.isdigit() else spec
    if not Path(device).exists():
        raise ReenactError(f"camera {device}: not found (no such device)")
    return InputSpec("camera", device, f"camera {device}")


def ffmpeg_command(source: InputSpec, max_side: int, realtime: bool) -> list[str]:
    """ffmpeg reading ``source`` and writing rgb24 frames, long side at most ``max_side``, to stdout."""
    options: dict[str, object] = {}
    if source.kind == "camera" and sys.platform == "darwin":
        # avfoundation's default 29.97 fps is refused by most Mac cameras.
        options.update(format="avfoundation", framerate=30)
    elif source.kind == "camera":
        options["format"] = "v4l2"
    if source.kind in ("file", "stdin") and realtime:
        options["re"] = None   # deliver at the clip's own rate, as a camera would
        if ffmpeg_has_option("readrate_initial_burst"):
            # An ffmpeg with this option first delivers half a second at once under -re, which no
            # camera does; ffmpeg 9 reads 0 as that default, so the burst is a hundredth of a second.
            options["readrate_initial_burst"] = 0.01
    if source.kind == "stream":
        # Frames as soon as they arrive, rather than a smoother but later picture.
        options.update(analyzeduration=NETWORK_ANALYZE_MICROSECONDS, fflags="nobuffer", flags="low_delay")
    scale = f"min(1,{max_side}/max(iw,ih))"
    stream = ffmpeg.input(source.target, **options).video.filter(
        "scale", w=f"max(2,trunc(iw*{scale}/2)*2)", h=f"max(2,trunc(ih*{scale}/2)*2)", flags="area")
    return (stream.output("pipe:1", format="rawvideo", pix_fmt="rgb24")
            # The default log level, because the stream summary is what tells the size and rate.
            .global_args("-hide_banner", "-nostats", "-nostdin").compile(cmd=ffmpeg_exe()))


class FfmpegLog:
    """Reads ffmpeg's stderr in a thread: the stream summary, and the last lines for error messages."""

    def __init__(self, stream: BinaryIO, target: str):
        self.target = target
        self.input_video: str | None = None        # the input's video stream line, after "Video: "
        self.output_size: tuple[int, int] | None = None
        self.saw_input = False
        self.summary_done = threading.Event()      # the output size is known, or ffmpeg closed its log
        self._lines: deque[str] = deque(maxlen=20)
        self._thread = threading.Thread(target=self._read, args=(stream,), name=f"ffmpeg log: {target}", daemon=True)
        self._thread.start()

    def _read(self, stream: BinaryIO) -> None:
        section = ""
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith(("Input #", "Output #")):
                section = line.split(" ", 1)[0]
                self.saw_input = True
            video = re.search(r"Stream #\d+:\d+.*?: Video: (.*)", line)
            if video and section == "Input" and self.input_video is None:
                self.input_video = video.group(1)
            elif video and section == "Output" and self.output_size is None:
                self.output_size = _frame_size(video.group(1))
                self.summary_done.set()
            if line.strip() and not line[0].isspace() and not line.startswith(SUMMARY_PREFIXES):
                self._lines.append(line.strip())
        self.summary_done.set()

    def last_error(self) -> str | None:
        """ffmpeg's last message, without the input's name it usually starts with."""
        if not self._lines:
            return None
        line = re.sub(r"^\[[^\]]+\] ", "", self._lines[-1])
        line = re.sub(r"^Error opening (?:input|output) files?: ", "", line)   # ffmpeg 7 and later
        return line.removeprefix(f"{self.target}: ")

    def fps(self) -> float:
        """The input's frame rate: its fps, else its tbr, else 30."""
        for unit in ("fps", "tbr"):
            match = re.search(rf"([\d.]+)(k?) {unit}\b", self.input_video or "")
            if match:
                number, thousands = match.groups()
                value = float(Fraction(NTSC_RATES.get(number, number))) * (1000 if thousands else 1)
                if 0 < value <= 1000:   # a "90k tbr" is a clock, not a frame rate
                    return value
        return DEFAULT_FPS

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()


def _frame_size(details: str) -> tuple[int, int] | None:
    match = re.search(r"(?:^|[\s,])(\d{1,5})x(\d{1,5})(?=[\s,\[]|$)", details)
    return (int(match.group(1)), int(match.group(2))) if match else None


class FrameSource:
    """``with FrameSource("0") as source: frame = source.next(timeout=1.0)``.

    A background thread reads frames from ffmpeg as fast as the input delivers them and keeps only
    the newest: a frame not taken before the next arrives is dropped and counted. Opening waits up to
    ``open_timeout`` s for the input's video; a file (or standard input) is delivered at its own frame
    rate when ``realtime``, as a camera would. ``stdin`` is what the spec "-" reads (default: ours).
    """

    def __init__(self, spec: str, max_side: int = 640, realtime: bool = True, open_timeout: float = 10.0,
                 stdin: BinaryIO | int | None = None):
        self.spec = spec
        self.input = parse_input_spec(spec)
        self.received = 0     # frames read from the input
        self.dropped = 0      # frames replaced before anyone took them
        self._newest: Frame | None = None
        self._end_message: str | None = None
        self._changed = threading.Condition()
        self._last_frame_time = time.monotonic()
        self._log: FfmpegLog | None = None
        self._reader: threading.Thread | None = None
        self._process = subprocess.Popen(
            ffmpeg_command(self.input, max_side, realtime), stdin=self._stdin_for_ffmpeg(stdin),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)   # a Ctrl-C in the terminal is ours to handle, not ffmpeg's
        try:
            self._log = FfmpegLog(self._process.stderr, self.input.target)
            self.fps, self.size = self._wait_for_video(open_timeout)
        except BaseException:
            self.close()
            raise
        self._reader = threading.Thread(target=self._read_frames, name=f"frames: {spec}", daemon=True)
        self._reader.start()

    def _stdin_for_ffmpeg(self, stdin: BinaryIO | int | None) -> BinaryIO | int:
        if self.input.kind != "stdin":
            return subprocess.DEVNULL
        if stdin is not None:
            return stdin
        if sys.stdin is None:
            raise ReenactError("standard input: not available to read a video from")
        return sys.stdin.buffer

    def _wait_for_video(self, open_timeout: float) -> tuple[float, tuple[int, int]]:
        """The input's frame rate and the delivered (W, H), once ffmpeg has described its output."""
        log = self._log
        if not log.summary_done.wait(open_timeout):
            error = log.last_error()
            raise ReenactError(f"{self.input.name}: no video within {open_timeout:g} s"
                               + (f" (ffmpeg: {error})" if error else ""))
        if log.output_size is None:   # ffmpeg closed its log without a frame: it failed to open
            log.join(EXIT_WAIT_SECONDS)
            if log.saw_input and log.input_video is None:
                raise ReenactError(f"{self.input.name}: has no video stream")
            code = _wait(self._process, EXIT_WAIT_SECONDS)
            reason = log.last_error() or f"ffmpeg exited with code {code}"
            raise ReenactError(f"{self.input.name}: could not open ({reason})")
        return log.fps(), log.output_size

    def _read_frames(self) -> None:
        width, height = self.size
        stdout = self._process.stdout
        while True:
            buffer = bytearray(width * height * 3)
            if not _read_exactly(stdout, buffer):
                break
            frame = Frame(np.frombuffer(buffer, np.uint8).reshape(height, width, 3), self.received, time.monotonic())
            with self._changed:
                if self._newest is not None:
                    self.dropped += 1
                self._newest, self._last_frame_time = frame, frame.captured
                self.received += 1
                self._changed.notify_all()
        message = self._describe_end()
        with self._changed:
            self._end_message = message
            self._changed.notify_all()

    def _describe_end(self) -> str:
        code = _wait(self._process, EXIT_WAIT_SECONDS)
        self._log.join(EXIT_WAIT_SECONDS)   # its last lines say why ffmpeg stopped
        error = self._log.last_error() if code not in (0, None) else None
        return f"{self.input.name}: the input ended" + (f" (ffmpeg: {error})" if error else "")

    def next(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken; None if none arrived within ``timeout`` s (a stall).

        Raises InputEnded once the input is finished and every frame was taken."""
        with self._changed:
            self._changed.wait_for(lambda: self._newest is not None or self._end_message is not None, timeout)
            if self._newest is not None:
                frame, self._newest = self._newest, None
                return frame
            if self._end_message is not None:
                raise InputEnded(self._end_message)
            return None

    def seconds_since_last_frame(self) -> float:
        """Since the last frame arrived, or since opening when none has."""
        with self._changed:
            return time.monotonic() - self._last_frame_time

    def close(self) -> None:
        """Stop ffmpeg and its threads; bounded in time, and safe to call twice."""
        if self._process.poll() is None:
            self._process.kill()
        _wait(self._process, EXIT_WAIT_SECONDS)
        if self._reader is not None:
            self._reader.join(EXIT_WAIT_SECONDS)
        if self._log is not None:
            self._log.join(EXIT_WAIT_SECONDS)
        # A pipe is closed only once its thread is done with it: closing it under a blocked read could hang.
        if self._reader is None or not self._reader.is_alive():
            self._process.stdout.close()
        if self._log is None or not self._log.is_alive():
            self._process.stderr.close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        self.close()
        return False


def _read_exactly(stream: BinaryIO, buffer: bytearray) -> bool:
    """Fill ``buffer`` from ``stream``; False when the stream ends first."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        count = stream.readinto(view[filled:])
        if not count:
            return False
        filled += count
    return True


def _wait(process: subprocess.Popen, timeout: float) -> int | None:
    """The exit code, or None if the process is still running after ``timeout`` s."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
