"""Video input and output through ffmpeg: probe, streaming decode, streaming encode with audio."""

from reenact.io.decode import iter_frames
from reenact.io.encode import VideoWriter
from reenact.io.ffmpeg_bin import ffmpeg_exe, ffprobe_exe
from reenact.io.probe import VideoInfo, probe_video

__all__ = ["VideoInfo", "VideoWriter", "ffmpeg_exe", "ffprobe_exe", "iter_frames", "probe_video"]
