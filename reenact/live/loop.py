"""The loop of `reenact live`: the newest frame → the driver → the proxy window → the engine's frame
stream → every output, and what to do when there is no frame or nobody in view.

The translator and the outputs run on a thread of their own (reenact/live/worker.py), so on two
cores tracking the next frame overlaps translating this one.
"""

from __future__ import annotations

import numpy as np

from reenact.config import LiveConfig
from reenact.files import atomic_path
from reenact.live.sources import FrameSource, InputEnded
from reenact.live.stats import LiveStats
from reenact.live.worker import BackgroundWorker
from reenact.progress import info, warn
from reenact.proxy_window import ProxyWindow
from reenact.reenactment import FrameStream, Reenactor


class LiveLoop:
    """The newest frame → proxy → window → translator → outputs, and what to do when there is none."""

    def __init__(self, config: LiveConfig, source: FrameSource, driver, reenactor: Reenactor, stream: FrameStream,
                 sinks: list, rest: np.ndarray):
        self.config, self.source, self.driver, self.reenactor = config, source, driver, reenactor
        self.stream, self.sinks, self.who = stream, sinks, reenactor.mode.who
        self.window = ProxyWindow(reenactor.window, config.lookahead)
        self.stats, self.last_output = LiveStats(), rest
        self.record: list[tuple[int, np.ndarray | None]] = []     # per output frame: input frame, pose drawn
        self.absent_since: float | None = None
        self.said_absent = self.said_stalled = False
        self.warming = ""
        self.last_index = -1                                        # the last input frame processed
        self.timeline_frames = 0                                    # what a recording holds at the end
        # The translator and the outputs on a thread of their own (reenact/live/worker.py).
        self.worker = BackgroundWorker(self.translate_and_emit, "reenact-live-translator")

    def run(self) -> None:
        try:
            try:
                while not self.input_done():
                    frame = self.source.next(timeout=0.25)
                    if frame is None:
                        if self.stalled():
                            break
                        continue
                    if self.config.max_frames is not None and frame.index >= self.config.max_frames:
                        break
                    self.said_stalled, self.last_index = False, frame.index
                    self.process(frame.image, frame.captured, frame.index)
                    self.report()
            except InputEnded as ended:
                info(str(ended))
            except KeyboardInterrupt:
                info("live: stopping (Ctrl-C); finishing the outputs")
            self.emit_ready(self.window.flush())
        finally:
            self.worker.close()        # what was submitted is written before the outputs close
        self.timeline_frames = self.input_frames()
        for sink in self.sinks:
            sink.end_timeline(self.timeline_frames)

    def input_done(self) -> bool:
        """--max-frames counts input frames, taken or dropped."""
        return self.config.max_frames is not None and self.last_index >= self.config.max_frames - 1

    def input_frames(self) -> int:
        """The input frames the run covered: all it delivered, or --max-frames of them."""
        received = self.source.received
        return received if self.config.max_frames is None else min(received, self.config.max_frames)

    def process(self, image: np.ndarray, captured: float, index: int) -> None:
        with self.stats.timed("track_and_proxy"):
            drive = self.driver(image, index / self.source.fps)
        self.announce_warm_up()
        if drive is None:
            self.hold(captured, index)
            return
        if self.said_absent:
            info(f"live: the {self.who} is back in view")
        self.absent_since, self.said_absent = None, False
        with self.stats.timed("model_proxy"):
            proxy = self.reenactor.model_proxy(drive)
        self.emit_ready(self.window.push(proxy, (captured, index, drive)))

    def emit_ready(self, ready) -> None:
        for item in ready:
            self.worker.submit(item)

    def translate_and_emit(self, item) -> None:
        """On the worker's thread: one window through the translator and the finisher, out."""
        proxy_window, (captured, index, drive) = item
        with self.stats.timed("translate"):
            frame = self.stream(proxy_window, drive).frame
        self.emit(frame, captured, index, drive.points)

    def hold(self, captured: float, index: int) -> None:
        """Nobody in view (or the warm-up still going): the last good output again."""
        self.emit_ready(self.window.flush())
        self.worker.drain()                 # the outputs are written from one thread at a time
        if not self.driver.last_seen:
            self.absent_since = captured if self.absent_since is None else self.absent_since
            if not self.said_absent and captured - self.absent_since >= self.config.absent_seconds:
                warn(f"live: no {self.who} in view for {self.config.absent_seconds:g} s; holding the last output")
                self.said_absent = True
        self.emit(self.last_output, captured, index, None)

    def emit(self, image: np.ndarray, captured: float, index: int, points: np.ndarray | None) -> None:
        """Send a frame to every output; ``points`` is the pose it was generated from (None: held)."""
        with self.stats.timed("outputs"):
            for sink in self.sinks:
                sink.write_at(image, index)
        self.last_output = image
        self.stats.record(captured, generated=points is not None)
        self.record.append((index, points))

    def stalled(self) -> bool:
        """Whether to stop: no frame for stop_after_seconds; says so once after stall_seconds."""
        waited = self.source.seconds_since_last_frame()
        if waited >= self.config.stop_after_seconds:
            warn(f"live: no frame from {self.config.input} for {waited:.0f} s; stopping")
            return True
        if waited >= self.config.stall_seconds and not self.said_stalled:
            warn(f"live: {self.config.input} stalled (no frame for {waited:.1f} s); holding the last output, "
                 f"stopping after {self.config.stop_after_seconds:g} s")
            self.said_stalled = True
        return False

    def announce_warm_up(self) -> None:
        warming = self.driver.warming_up
        if bool(warming) != bool(self.warming):
            info(f"live: warm-up: {warming}" if warming else "live: warm-up done")
        self.warming = warming

    def report(self) -> None:
        if self.stats.due():
            info("live: " + self.stats.status_line(self.source.received, self.source.dropped, self.warming))


def write_record(path: str, record: list[tuple[int, np.ndarray | None]]) -> None:
    """npz: ``input_index`` (N,), ``generated`` (N,) and ``points`` (N, ...) NaN where the output was held."""
    shapes = [points.shape for _, points in record if points is not None]
    points = np.full((len(record), *(shapes[0] if shapes else (0,))), np.nan, np.float32)
    for row, (_, drawn) in enumerate(record):
        if drawn is not None:
            points[row] = drawn
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, input_index=np.array([i for i, _ in record], np.int64),
                 generated=np.array([p is not None for _, p in record]), points=points)
