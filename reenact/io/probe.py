"""Probing a video: displayed size, constant frame rate, frame count, rotation, audio.

ffprobe's JSON is used when ffprobe exists; otherwise the stream summary that `ffmpeg -i`
prints is parsed, since the imageio-ffmpeg wheel ships ffmpeg alone.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from reenact.errors import ReenactError
from reenact.io.ffmpeg_bin import ffmpeg_exe, ffprobe_exe

# `ffmpeg -i` prints rates rounded to 2 decimals; these are the exact rates they stand for.
NTSC_RATES = {"23.98": "24000/1001", "29.97": "30000/1001", "47.95": "48000/1001",
              "59.94": "60000/1001", "119.88": "120000/1001"}
IMAGE_FORMATS = ("image2", "_pipe", "gif", "webp")


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int            # displayed, after rotation
    height: int
    fps: float            # the constant rate decoding produces
    fps_fraction: str     # exact, e.g. "24000/1001"
    frame_count: int      # expected frames from decoding (duration × fps); for progress bars
    duration: float       # seconds of the video stream
    rotation: int         # clockwise degrees the metadata asks for: 0, 90, 180 or 270
    has_audio: bool
    variable_frame_rate: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def fit_within(self, long_side: int) -> tuple[int, int]:
        """This video's aspect with its long side at most ``long_side``, in even pixels."""
        scale = min(1.0, long_side / max(self.width, self.height))
        return (max(2, int(round(self.width * scale / 2)) * 2), max(2, int(round(self.height * scale / 2)) * 2))


def probe_video(path: str | Path, use_ffprobe: bool = True) -> VideoInfo:
    path = Path(path)
    check_readable_file(path)
    fields = _probe_with_ffprobe(path) if use_ffprobe and ffprobe_exe() else _probe_with_ffmpeg(path)
    return _video_info(path, **fields)


def check_readable_file(path: Path) -> None:
    if not path.exists():
        raise ReenactError(f"{path}: no such file")
    if path.is_dir():
        raise ReenactError(f"{path}: is a directory, not a video")
    try:
        with open(path, "rb") as f:
            if not f.read(1):
                raise ReenactError(f"{path}: file is empty")
    except PermissionError:
        raise ReenactError(f"{path}: permission denied") from None


def _video_info(path: Path, width: int, height: int, rate: str, average_rate: str, duration: float,
                rotation: int, has_audio: bool, container: str) -> VideoInfo:
    if any(marker in container for marker in IMAGE_FORMATS):
        raise ReenactError(f"{path}: is a still image, not a video")
    fps = Fraction(average_rate) if _positive(average_rate) else Fraction(rate) if _positive(rate) else None
    if fps is None or width <= 0 or height <= 0:
        raise ReenactError(f"{path}: not a readable video (no frame rate or size in its video stream)")
    fps = fps.limit_denominator(1001 * 1000)
    variable = _positive(rate) and abs(float(Fraction(rate)) / float(fps) - 1) > 0.01
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(str(path), width, height, float(fps), f"{fps.numerator}/{fps.denominator}",
                     max(1, round(duration * float(fps))), duration, rotation, has_audio, bool(variable))


def _positive(rate: str) -> bool:
    try:
        return Fraction(rate) > 0
    except (ValueError, ZeroDivisionError):
        return False


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)


def _unreadable(path: Path, stderr: str) -> ReenactError:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    reason = lines[-1].replace(str(path) + ": ", "") if lines else "unknown format"
    return ReenactError(f"{path}: not a readable video (ffmpeg: {reason})")


def _probe_with_ffprobe(path: Path) -> dict:
    result = _run([ffprobe_exe(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)])
    if result.returncode != 0:
        raise _unreadable(path, result.stderr)
    data = json.loads(result.stdout or "{}")
    streams = data.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not videos:
        raise ReenactError(f"{path}: has no video stream")
    video, container = videos[0], data.get("format", {})
    duration = float(video.get("duration") or container.get("duration") or 0.0)
    rotation = next((float(s["rotation"]) for s in video.get("side_data_list", []) if "rotation" in s), None)
    if rotation is None:
        rotation = -float(video.get("tags", {}).get("rotate", 0))
    return {"width": int(video.get("width") or 0), "height": int(video.get("height") or 0),
            "rate": video.get("r_frame_rate", "0/0"), "average_rate": video.get("avg_frame_rate", "0/0"),
            "duration": duration, "rotation": int(round(-rotation)) % 360,
            "has_audio": any(s.get("codec_type") == "audio" for s in streams),
            "container": container.get("format_name", "")}


def _probe_with_ffmpeg(path: Path) -> dict:
    """Parse `ffmpeg -i` output; it exits non-zero (no output named) even when the input is fine."""
    text = _run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]).stderr
    container = re.search(r"Input #0, ([^,]+(?:,[^,]+)*?), from", text)
    video = re.search(r"Stream #0:\d+.*?: Video: (.*)", text)
    if container is None:
        raise _unreadable(path, text)
    if video is None:
        raise ReenactError(f"{path}: has no video stream")
    details = video.group(1)
    size = re.search(r"(\d{2,5})x(\d{2,5})", details)
    return {"width": int(size.group(1)) if size else 0, "height": int(size.group(2)) if size else 0,
            "rate": _ffmpeg_rate(details, "tbr"), "average_rate": _ffmpeg_rate(details, "fps"),
            "duration": _ffmpeg_duration(text, details), "rotation": _ffmpeg_rotation(text),
            "has_audio": re.search(r"Stream #0:\d+.*?: Audio:", text) is not None, "container": container.group(1)}


def _ffmpeg_rate(details: str, unit: str) -> str:
    match = re.search(rf"([\d.]+k?) {unit}\b", details)
    if not match:
        return "0/0"
    value = match.group(1)
    if value.endswith("k"):
        return str(int(float(value[:-1]) * 1000))
    return NTSC_RATES.get(value, str(Fraction(value).limit_denominator(1000)))


def _ffmpeg_duration(text: str, details: str) -> float:
    """The container's duration less the video stream's start, when the stream starts late."""
    match = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    if not match:
        return 0.0
    hours, minutes, seconds = match.groups()
    total = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    container_start = re.search(r"Duration: [^,]+, start: (-?[\d.]+)", text)
    stream_start = re.search(r"start (-?[\d.]+)", details)
    if stream_start and container_start:
        total -= max(0.0, float(stream_start.group(1)) - float(container_start.group(1)))
    return total


def _ffmpeg_rotation(text: str) -> int:
    matrix = re.search(r"rotation of (-?[\d.]+) degrees", text)
    if matrix:
        return int(round(-float(matrix.group(1)))) % 360
    tag = re.search(r"^\s*rotate\s*:\s*(-?\d+)", text, re.MULTILINE)
    return int(tag.group(1)) % 360 if tag else 0
