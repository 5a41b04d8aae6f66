"""`reenact live`'s inputs and outputs against real ffmpeg: files in real time, a udp stream over
loopback, standard input, a slow consumer, bad inputs, and the recording, stream and other sinks."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from reenact.errors import ReenactError
from reenact.io import iter_frames, probe_video
from reenact.live.sinks import Mp4Sink, StreamSink, VirtualCameraSink, WindowSink, open_sink
from reenact.drive import WarmUp
from reenact.live.sources import Frame, FrameSource, InputEnded
from reenact.live.worker import BackgroundWorker
from tests.conftest import ffmpeg, make_clip

SMALL = ["-vf", "scale=96:-2", "-an", "-c:v", "libx264", "-preset", "ultrafast", "-g", "5"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory, example_source) -> dict[str, Path]:
    """Short 96×54 cuts of the example clip (640×360, 23.976 fps) at chosen rates."""
    folder = tmp_path_factory.mktemp("live_clips")
    cut = ["-i", str(example_source), *SMALL]
    return {
        "25fps_2s": make_clip(folder / "25fps_2s.mp4", *cut, "-t", "2", "-r", "25"),
        "25fps_3s": make_clip(folder / "25fps_3s.mp4", *cut, "-t", "3", "-r", "25"),
        "30fps_1s": make_clip(folder / "30fps_1s.mp4", *cut, "-t", "1", "-r", "30"),
        "portrait": make_clip(folder / "portrait.mp4", "-i", str(example_source), "-t", "0.5", "-r", "25",
                              "-vf", "scale=96:-2,transpose=1", "-an"),
    }


def read_all(source: FrameSource, stall_limit: float = 10.0) -> list[Frame]:
    """Every frame the source hands out until it ends; a stall this long fails the test."""
    frames = []
    while True:
        try:
            frame = source.next(timeout=stall_limit)
        except InputEnded:
            return frames
        assert frame is not None, f"no frame for {stall_limit} s"
        frames.append(frame)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def count_frames(path: Path) -> int:
    return sum(1 for _ in iter_frames(probe_video(path)))


# Sources


def test_a_file_in_realtime_arrives_at_its_own_rate(clips):
    with FrameSource(str(clips["25fps_2s"]), max_side=64, realtime=True) as source:
        frames = read_all(source)
        assert source.fps == pytest.approx(25)
        assert source.size == (64, 36)
    assert source.received == 50 and len(frames) + source.dropped == 50
    assert frames[0].image.shape == (36, 64, 3) and frames[0].image.dtype == np.uint8
    # 50 frames at 25 fps are 1.96 s from first to last.
    assert frames[-1].captured - frames[0].captured >= 1.5


def test_a_file_not_in_realtime_arrives_as_fast_as_it_decodes(clips):
    with FrameSource(str(clips["25fps_2s"]), max_side=64, realtime=False) as source:
        frames = read_all(source)
    assert source.received == 50
    assert frames[-1].captured - frames[0].captured < 1.0


def test_frame_rate_and_size_come_from_the_input(clips, example_source):
    with FrameSource(str(clips["30fps_1s"]), max_side=640) as source:
        assert source.fps == pytest.approx(30)
        assert source.size == (96, 54)   # never scaled up
    with FrameSource(str(example_source), max_side=320) as source:
        assert source.fps == pytest.approx(24000 / 1001)
        assert source.size == (320, 180)
        assert source.next(timeout=5).image.shape == (180, 320, 3)
    with FrameSource(str(clips["portrait"]), max_side=64) as source:
        assert source.size == (36, 64)   # 54×96 with its long side at 64, aspect kept, even sides


def test_a_udp_stream_stalls_when_its_sender_stops(clips):
    url = f"udp://127.0.0.1:{free_udp_port()}"
    sender = subprocess.Popen([ffmpeg(), "-v", "error", "-re", "-i", str(clips["25fps_3s"]), "-c:v", "libx264",
                               "-preset", "ultrafast", "-tune", "zerolatency", "-g", "5", "-f", "mpegts",
                               url + "?pkt_size=1316"])
    try:
        with FrameSource(url, max_side=64, open_timeout=10) as source:
            assert source.size == (64, 36) and source.fps == pytest.approx(25)
            frames = []
            while sender.poll() is None:
                frame = source.next(timeout=1.0)
                frames += [frame] if frame else []
            while (frame := source.next(timeout=0.5)) is not None:   # what was still in flight
                frames.append(frame)
            assert len(frames) >= 10
            # udp has no end: the sender being gone is a stall for the caller to judge, not InputEnded.
            assert source.next(timeout=1.0) is None
            assert source.seconds_since_last_frame() >= 1.0
            closing = time.monotonic()
        assert time.monotonic() - closing < 3
    finally:
        sender.kill()
        sender.wait()


def test_standard_input_is_read_to_its_end(clips):
    producer = subprocess.Popen([ffmpeg(), "-v", "error", "-i", str(clips["25fps_2s"]), "-t", "1", "-c:v", "libx264",
                                 "-preset", "ultrafast", "-f", "matroska", "pipe:1"], stdout=subprocess.PIPE)
    try:
        with FrameSource("-", max_side=64, realtime=False, stdin=producer.stdout) as source:
            frames = read_all(source)
            assert source.size == (64, 36)
            with pytest.raises(InputEnded, match="standard input: the input ended"):
                source.next(timeout=1.0)   # and again: the end stays the end
    finally:
        producer.stdout.close()
        producer.wait(10)
    assert source.received == 25 and len(frames) + source.dropped == 25


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_are_counted_as_dropped(clips):
    with FrameSource(str(clips["25fps_2s"]), max_side=64, realtime=True) as source:
        frames = []
        while True:
            try:
                frame = source.next(timeout=10)
            except InputEnded:
                break
            frames.append(frame)
            time.sleep(0.1)   # 2.5 frame intervals
    indices = [frame.index for frame in frames]
    assert source.dropped > 0
    assert source.received == 50 == len(frames) + source.dropped
    assert indices == sorted(set(indices)) and indices[-1] == 49
    assert max(np.diff(indices)) >= 2   # the gaps are the dropped frames


def bad_inputs(tmp_path: Path) -> dict[str, tuple[str, str, float]]:
    """spec → (what the message must say, open_timeout)."""
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    return {
        "missing file": (str(tmp_path / "missing.mp4"), "missing.mp4: no such file", 10),
        "text file": (str(text), "notes.txt: could not open (", 10),
        "no camera": ("/dev/video9", "camera /dev/video9: not found", 10),
        "unreachable rtsp": ("rtsp://127.0.0.1:1/x", "rtsp://127.0.0.1:1/x: could not open (Connection refused)", 10),
        "silent udp": (f"udp://127.0.0.1:{free_udp_port()}", ": no video within 2 s", 2),
    }


@pytest.mark.parametrize("case", ["missing file", "text file", "no camera", "unreachable rtsp", "silent udp"])
def test_bad_inputs_fail_fast_with_the_input_named(tmp_path, case):
    spec, message, open_timeout = bad_inputs(tmp_path)[case]
    if case == "no camera" and (Path(spec).exists() or not sys.platform.startswith("linux")):
        pytest.skip("needs Linux without /dev/video9")
    start = time.monotonic()
    with pytest.raises(ReenactError) as error:
        FrameSource(spec, open_timeout=open_timeout)
    assert message in str(error.value) and spec in str(error.value)
    assert "\n" not in str(error.value)
    assert time.monotonic() - start < open_timeout + 3


# Sinks


def frames_of(count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    width, height = size
    return [np.full((height, width, 3), 10 * (k + 1), np.uint8) for k in range(count)]


def test_mp4_sink_records_every_frame(tmp_path):
    path = tmp_path / "out.mp4"
    with Mp4Sink(path, 25, (64, 48)) as sink:
        for frame in frames_of(10):
            sink.write(frame)
        assert not path.exists()   # only a complete file goes into place
    assert sink.frames_written == 10
    assert count_frames(path) == 10 and probe_video(path).fps == pytest.approx(25)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_mp4_sink_keeps_the_frames_written_before_ctrl_c(tmp_path):
    """Ctrl-C (or q in the window) ends a live run normally: the recording so far is finalised."""
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with Mp4Sink(path, 25, (64, 48)) as sink:
            for frame in frames_of(7):
                sink.write(frame)
            raise KeyboardInterrupt
    assert count_frames(path) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_mp4_sink_leaves_nothing_without_frames_or_after_an_error(tmp_path):
    with Mp4Sink(tmp_path / "empty.mp4", 25, (64, 48)):
        pass
    with pytest.raises(RuntimeError):
        with Mp4Sink(tmp_path / "failed.mp4", 25, (64, 48)) as sink:
            sink.write(frames_of(1)[0])
            raise RuntimeError("the loop failed")
    assert list(tmp_path.iterdir()) == []


def test_stream_sink_reaches_a_receiver_over_udp():
    url = f"udp://127.0.0.1:{free_udp_port()}"
    stop = threading.Event()
    gray = np.full((48, 64, 3), 160, np.uint8)

    def send(sink: StreamSink) -> None:
        while not stop.is_set() and sink.frames_written < 250:
            sink.write(gray)
            time.sleep(0.04)

    with StreamSink(url, 25, (64, 48)) as sink:
        sender = threading.Thread(target=send, args=(sink,))
        sender.start()
        try:
            with FrameSource(url, open_timeout=10) as source:
                received = [source.next(timeout=5) for _ in range(5)]
        finally:
            stop.set()
            sender.join()
    assert source.size == (64, 48) and source.fps == pytest.approx(25)
    assert all(frame is not None for frame in received)
    assert abs(float(received[-1].image.mean()) - 160) < 12


def test_stream_sink_names_the_url_when_the_receiver_is_gone():
    url = "tcp://127.0.0.1:1"   # nothing listens there: ffmpeg can't connect and exits
    with StreamSink(url, 25, (64, 48)) as sink:
        with pytest.raises(ReenactError, match=r"tcp://127\.0\.0\.1:1: streaming failed \(ffmpeg: .*refused"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                sink.write(frames_of(1)[0])
                time.sleep(0.01)


@pytest.mark.parametrize("spec, kind", [("out.mp4", Mp4Sink), ("clips/out.MOV", Mp4Sink),
                                        ("udp://127.0.0.1:5000", StreamSink), ("rtmp://host/live/key", StreamSink),
                                        ("srt://host:9000", StreamSink), ("rtsp://host/path", StreamSink)])
def test_open_sink_picks_the_output_the_spec_names(spec, kind):
    sink = open_sink(spec, 25, (64, 48))
    assert type(sink) is kind
    if kind is StreamSink:
        assert sink.format == {"udp": "mpegts", "rtmp": "flv", "srt": "mpegts", "rtsp": "rtsp"}[spec.split(":")[0]]


@pytest.mark.parametrize("spec", ["out.avi", "out.mkv", "ftp://host/out.mp4", "camera"])
def test_open_sink_lists_the_accepted_forms_for_anything_else(spec):
    with pytest.raises(ReenactError) as error:
        open_sink(spec, 25, (64, 48))
    message = str(error.value)
    assert spec in message and ".mp4" in message and "udp://" in message and "virtualcam" in message


def test_virtual_camera_names_the_package_it_needs():
    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyvirtualcam is installed here")
    with pytest.raises(ReenactError, match=r"--output virtualcam: needs the optional pyvirtualcam package "
                                           r"\(pip install pyvirtualcam\)"):
        open_sink("virtualcam", 25, (64, 48))
    with pytest.raises(ReenactError, match="pyvirtualcam"):
        VirtualCameraSink(25, (64, 48))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is Linux's")
def test_the_window_needs_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ReenactError, match="--show: no display"):
        WindowSink("reenact live")


def test_the_background_worker_handles_items_in_order_one_waiting_and_raises_its_errors():
    handled, release = [], threading.Event()

    def handle(item):
        release.wait(5)
        handled.append(item)
        if item == "bad":
            raise ValueError("the sink broke")

    worker = BackgroundWorker(handle, "test-worker")
    worker.submit(1)                          # taken at once, held in handle
    time.sleep(0.1)
    worker.submit(2)                          # waits in the queue
    third = threading.Thread(target=worker.submit, args=(3,))
    third.start()
    time.sleep(0.2)
    assert third.is_alive()                   # a second waiting item blocks its caller
    release.set()
    third.join(5)
    worker.drain()
    assert handled == [1, 2, 3]
    worker.submit("bad")
    with pytest.raises(ValueError, match="the sink broke"):
        worker.drain()
    worker.submit(4)                          # the error was raised once; the worker goes on
    worker.close()
    assert handled == [1, 2, 3, "bad", 4] and not worker.thread.is_alive()


def test_the_warm_up_spans_input_time_not_frames_processed():
    dense, sparse = WarmUp(1.0, min_frames=2), WarmUp(1.0, min_frames=2)
    assert sum(dense.gather(np.zeros(1), t / 30) for t in range(10, 60)) == 30        # 30 fps, from 1/3 s in
    assert sum(sparse.gather(np.zeros(1), t / 30) for t in range(10, 60, 5)) == 6     # every fifth frame processed
    assert dense.status("faces") == "gathering faces: 1.0/1 s, 30 frames" and not dense.gathering
    # A slow start: the first frame, then the next 2 s later; the minimum still gathers 10.
    slow = WarmUp(1.0, min_frames=10)
    assert sum(slow.gather(np.zeros(1), t) for t in [0.0] + [2 + k / 30 for k in range(20)]) == 10
