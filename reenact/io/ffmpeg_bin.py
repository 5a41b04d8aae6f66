"""Finding the ffmpeg binaries: the system's when present, else the one in the imageio-ffmpeg wheel."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from reenact.errors import ReenactError


@functools.cache
def ffmpeg_exe() -> str:
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        raise ReenactError("no ffmpeg found: install ffmpeg (e.g. `apt install ffmpeg`) or `pip install imageio-ffmpeg`") from None


@functools.cache
def ffprobe_exe() -> str | None:
    """The system ffprobe, or None (the imageio-ffmpeg wheel has none)."""
    return shutil.which("ffprobe")


@functools.cache
def ffmpeg_has_option(name: str) -> bool:
    """Whether this ffmpeg knows ``-name``: options come and go between releases."""
    listing = subprocess.run([ffmpeg_exe(), "-hide_banner", "-h", "full"], capture_output=True, text=True).stdout
    return re.search(rf"^-{re.escape(name)}\b", listing, re.MULTILINE) is not None
