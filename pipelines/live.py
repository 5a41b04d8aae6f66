"""`reenact live`: a camera or stream drives the target in real time.

Per frame: the newest frame from the input (older ones it did not get to are dropped and
counted), the driver (reenact/live/drivers.py: tracking, the online fit or smoothing,
retargeting, the proxy), the proxy window (reenact/live/window.py), the translator with its
previous output, the face enhancer or paste-back, then every output. When nobody is in view,
or the input stalls, the last good output holds.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch

from pipelines.transfer import check_options, composite, enhance_frame, load_face_enhancer, looped_footage
from reenact.checkpoint import load_checkpoint
from reenact.config import LiveConfig, config_dict
from reenact.data import center_proxy, resize_uint8
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.files import atomic_path, check_writable, write_json
from reenact.live.drivers import DRIVERS, Drive
from reenact.live.sinks import Mp4Sink, WindowSink, open_sink, sink_kind
from reenact.live.sources import FrameSource, InputEnded
from reenact.live.stats import LiveStats
from reenact.live.window import ProxyWindow
from reenact.live.worker import BackgroundWorker
from reenact.progress import info, native_stderr_silenced, warn
from reenact.stabilise import TemporalStabiliser
from reenact.translator import StreamingTranslator, build_generator

WHO = {"face": "face", "body": "person"}


def run(config: LiveConfig) -> dict:
    # 1. The target's checkpoint and its networks.
    checkpoint = load_checkpoint(config.checkpoint)
    mode, target = checkpoint["mode"], checkpoint["target"]
    check_options(config, mode, target)
    check_outputs(config)
    device = resolve_device(config.device)
    # The per-frame work on the CPU is many small ops beside MediaPipe's, OpenCV's and ffmpeg's
    # threads: one torch thread ran the face pipeline at 12.7 frames/s on 2 cores where torch's
    # default two ran 8.3. On a GPU the fit still runs on the CPU, so it gets one thread there too
    # (not yet measured on a GPU).
    torch.set_num_threads(1)
    translator = load_translator(checkpoint, device, config.stabilise)
    finish = Finisher(checkpoint, load_face_enhancer(checkpoint, device), device, config.paste_back)
    with native_stderr_silenced(), contextlib.ExitStack() as stack:
        # 2. The driver that turns frames into the target's proxies, and the target's rest frame.
        driver = DRIVERS[mode](target, config.edit, device)
        stack.callback(driver.close)
        rest = finish.rest(driver.rest(), translator, checkpoint["resolution"])
        # 3. The input, then the outputs (at the rest frame's size).
        info(f"live: opening {config.input}")
        source = stack.enter_context(FrameSource(config.input, config.max_side, config.realtime))
        driver.start(source.fps, source.size)
        sinks = [stack.enter_context(open_sink(spec, source.fps, rest.shape[1::-1])) for spec in config.output]
        if config.show:
            sinks.append(stack.enter_context(WindowSink(f"reenact live: {Path(config.checkpoint).name}")))
        info(f"live: {config.input} ({source.size[0]}x{source.size[1]}, {source.fps:.2f} fps) → "
             f"{', '.join([*config.output, *(['window'] if config.show else [])])}; Ctrl-C stops")
        # 4. Frame after frame until the input ends, it stalls too long, or Ctrl-C.
        loop = LiveLoop(config, source, driver, translator, finish, sinks, rest, WHO[mode], checkpoint["resolution"])
        loop.run()
        figures = {**loop.stats.summary(source.received, source.dropped), "mode": mode, "lookahead": config.lookahead}
    # 5. The figures, and the resolved settings beside every file written.
    info(f"live: {figures['frames_out']} frames out ({figures['held']} held), {figures['dropped']} dropped; "
         f"{figures['output_fps'] or 0:.1f} fps; latency p50 {figures['latency_ms_p50']:.0f} ms, p95 {figures['latency_ms_p95']:.0f} ms")
    for spec in config.output:
        if is_file_output(spec) and Path(spec).is_file():
            write_json(Path(spec).with_suffix(".json"), {"live": config_dict(config), **figures})
    if config.stats:
        write_json(config.stats, {"live": config_dict(config), **figures})
    if config.record:
        write_record(config.record, loop.record)
    return figures


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


def check_outputs(config: LiveConfig) -> None:
    if not config.output and not config.show:
        raise ReenactError("nothing to output: give --output FILE.mp4, --output URL, --output virtualcam or --show")
    for spec in config.output:
        sink_kind(spec)
    for spec in [*filter(is_file_output, config.output), *[p for p in (config.stats, config.record) if p]]:
        check_writable(spec)


def is_file_output(spec: str) -> bool:
    return sink_kind(spec) is Mp4Sink


def load_translator(checkpoint: dict, device: torch.device, stabilise: bool = True) -> StreamingTranslator:
    generator = build_generator(checkpoint["model"]).to(device).eval()
    generator.load_state_dict(checkpoint.get("generator_ema") or checkpoint["generator"])
    stabiliser = TemporalStabiliser.for_mode(checkpoint["mode"]) if stabilise else None
    return StreamingTranslator(generator, checkpoint["window"], stabiliser=stabiliser)


class Finisher:
    """After the translator: the body's face enhancer, or the face pasted into the target's footage."""

    def __init__(self, checkpoint: dict, enhancer: torch.nn.Module | None, device: torch.device, paste_back: bool):
        self.enhancer, self.device = enhancer, device
        self.face_size = checkpoint["model"].get("face_crop", {}).get("size")
        self.head_scale = checkpoint["resolution"] / checkpoint["target"]["subject_resolution"]
        self.footage = looped_footage(checkpoint["target"]) if paste_back else None

    def __call__(self, generated: np.ndarray, proxy: np.ndarray, drive: Drive) -> np.ndarray:
        if self.enhancer is not None and drive.head is not None:
            head = drive.head * np.array([self.head_scale, self.head_scale, 1], np.float32)
            generated = enhance_frame(self.enhancer, proxy, generated, head, self.face_size, self.device)
        if self.footage is not None:
            generated = composite(next(self.footage), generated, drive.face_crop)
        return generated

    def rest(self, drive: Drive, translator: StreamingTranslator, resolution: int) -> np.ndarray:
        """The target's rest frame: its rest proxy translated on its own."""
        proxy = resize_uint8(drive.proxy[None], resolution)[0]
        window = torch.cat([proxy] * translator.window)
        generated = StreamingTranslator(translator.generator, translator.window)(window)
        return self(generated, proxy[:3].permute(1, 2, 0).numpy(), drive)


class LiveLoop:
    """The newest frame → proxy → window → translator → outputs, and what to do when there is none."""

    def __init__(self, config: LiveConfig, source: FrameSource, driver, translator: StreamingTranslator,
                 finish: Finisher, sinks: list, rest: np.ndarray, who: str, resolution: int):
        self.config, self.source, self.driver, self.translator = config, source, driver, translator
        self.finish, self.sinks, self.who, self.resolution = finish, sinks, who, resolution
        self.window = ProxyWindow(translator.window, config.lookahead)
        self.stats, self.last_output = LiveStats(), rest
        self.record: list[tuple[int, np.ndarray | None]] = []     # per output frame: input frame, pose drawn
        self.absent_since: float | None = None
        self.said_absent = self.said_stalled = False
        self.warming = ""
        self.taken = 0                                              # input frames processed
        # The translator and the outputs on a thread of their own (reenact/live/worker.py).
        self.worker = BackgroundWorker(self.translate_and_emit, "reenact-live-translator")

    def run(self) -> None:
        try:
            try:
                while self.config.max_frames is None or self.taken < self.config.max_frames:
                    frame = self.source.next(timeout=0.25)
                    if frame is None:
                        if self.stalled():
                            break
                        continue
                    self.said_stalled, self.taken = False, self.taken + 1
                    self.process(frame.image, frame.captured, frame.index)
                    self.report()
            except InputEnded as ended:
                info(str(ended))
            except KeyboardInterrupt:
                info("live: stopping (Ctrl-C); finishing the outputs")
            self.emit_ready(self.window.flush())
        finally:
            self.worker.close()        # what was submitted is written before the outputs close

    def process(self, image: np.ndarray, captured: float, index: int) -> None:
        drive = self.driver(image, index / self.source.fps)
        self.announce_warm_up()
        if drive is None:
            self.hold(captured, index)
            return
        if self.said_absent:
            info(f"live: the {self.who} is back in view")
        self.absent_since, self.said_absent = None, False
        proxy = resize_uint8(drive.proxy[None], self.resolution)[0]
        self.emit_ready(self.window.push(proxy, (captured, index, drive)))

    def emit_ready(self, ready) -> None:
        for item in ready:
            self.worker.submit(item)

    def translate_and_emit(self, item) -> None:
        """On the worker's thread: one window through the translator and the finisher, out."""
        proxy_window, (captured, index, drive) = item
        middle = center_proxy(proxy_window[None], self.translator.window)[0, :3].permute(1, 2, 0).numpy()
        self.emit(self.finish(self.translator(proxy_window), middle, drive), captured, index, drive.points)

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
        for sink in self.sinks:
            sink.write(image)
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
