"""`reenact live`: a camera or stream drives the target in real time.

Per frame: the newest frame from the input (older ones it did not get to are dropped and
counted), the mode's live driver (tracking, the online fit or smoothing, retargeting, the
proxy), the proxy window, then the engine's frame stream (the translator with its previous
output, the face enhancer or paste-back) and every output (reenact/live/loop.py). When nobody is
in view, or the input stalls, the last good output holds.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from reenact.config import LiveConfig, config_dict
from reenact.device import resolve_device
from reenact.errors import ReenactError
from reenact.files import check_writable, write_json
from reenact.live.loop import LiveLoop, write_record
from reenact.live.sinks import Mp4Sink, WindowSink, open_sink, sink_kind
from reenact.drive import RecordedDriver
from reenact.live.sources import FrameSource, parse_input_spec
from reenact.progress import info, native_stderr_silenced, warn
from reenact.reenactment import Reenactor, StreamOptions


def run(config: LiveConfig) -> dict:
    # 1. The target: its checkpoint and networks.
    reenactor = Reenactor.load(config.checkpoint, resolve_device(config.device))
    reenactor.check_options(config.edit, config.paste_back)
    check_outputs(config)
    warn_about_tracking(reenactor)
    # The per-frame work on the CPU is many small ops beside MediaPipe's, OpenCV's and ffmpeg's
    # threads: one torch thread ran the face pipeline at 12.7 frames/s on 2 cores where torch's
    # default two ran 8.3. On a GPU the fit still runs on the CPU, so it gets one thread there too
    # (not yet measured on a GPU).
    torch.set_num_threads(1)
    stream = reenactor.stream(StreamOptions(stabilise=config.stabilise, paste_back=config.paste_back))
    with native_stderr_silenced(), contextlib.ExitStack() as stack:
        # 2. The driver that turns frames into the target's proxies, and the target's rest frame.
        driver = make_driver(reenactor, config)
        stack.callback(driver.close)
        rest = reenactor.rest_frame(driver.rest(), stream)
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
        loop = LiveLoop(config, source, driver, reenactor, stream, sinks, rest)
        loop.run()
        figures = {**loop.stats.summary(source.received, source.dropped), "timeline_frames": loop.timeline_frames,
                   "mode": reenactor.mode.name, "lookahead": config.lookahead}
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


def check_outputs(config: LiveConfig) -> None:
    if not config.output and not config.show:
        raise ReenactError("nothing to output: give --output FILE.mp4, --output URL, --output virtualcam or --show")
    for spec in config.output:
        sink_kind(spec)
    for spec in [*filter(is_file_output, config.output), *[p for p in (config.stats, config.record) if p]]:
        check_writable(spec)


def make_driver(reenactor: Reenactor, config: LiveConfig):
    """A file tracked before (its motion file, from `transfer`, `eval` or `track --motion-only`)
    plays its whole-clip tracks without tracking a frame; anything else is tracked live."""
    if parse_input_spec(config.input).kind == "file" and Path(config.input).is_file():
        tracks = reenactor.saved_tracks(config.input, config.device)
        if tracks is not None:
            info(f"live: {config.input}: reusing its motion file (the whole-clip tracks, as transfer uses them); "
                 "its frames are not tracked again")
            return RecordedDriver(reenactor.retarget(tracks, config.edit))
    return reenactor.live_driver(config.edit)


def is_file_output(spec: str) -> bool:
    return sink_kind(spec) is Mp4Sink


def warn_about_tracking(reenactor: Reenactor) -> None:
    """Say where a stream cannot track as `track` did: what needs the whole clip or another landmark model."""
    settings = reenactor.target["track_config"]
    differences = reenactor.mode.live_tracking_differences(settings)
    if differences:
        warn(f"live: {reenactor.checkpoint.path} was tracked with {'; '.join(differences)}")
