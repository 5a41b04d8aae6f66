"""What a live run reports: frames in, out and dropped, the end-to-end latency, and each stage's
time per frame (where the time goes)."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterator

import numpy as np

STATUS_EVERY = 2.0   # seconds between status lines


class LiveStats:
    def __init__(self):
        self.started = time.monotonic()
        self.latencies: list[float] = []       # seconds from capture to the output written
        self.generated = self.held = 0         # frames out: translated, or the last good output again
        self.last_status = self.started
        self.first_output = self.last_output = None      # monotonic times: the rates are over this span
        self.stage_seconds: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time one frame's pass through ``stage`` (stages run on two threads; each appends to its own list)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage].append(time.perf_counter() - started)

    def record(self, captured: float, generated: bool) -> None:
        now = time.monotonic()
        self.first_output = self.first_output or now
        self.last_output = now
        self.latencies.append(now - captured)
        self.generated += generated
        self.held += not generated

    def due(self) -> bool:
        """Whether a status line is due now (then the next one is STATUS_EVERY seconds away)."""
        now = time.monotonic()
        if now - self.last_status < STATUS_EVERY:
            return False
        self.last_status = now
        return True

    def summary(self, received: int, dropped: int) -> dict:
        """Rates are over the span from the first output to the last (not the start-up, not a final stall)."""
        frames_out = self.generated + self.held
        span = (self.last_output - self.first_output) if frames_out > 1 else float("nan")
        latencies = np.array(self.latencies or [np.nan]) * 1000
        return {
            "seconds": round(time.monotonic() - self.started, 2), "frames_in": received, "frames_out": frames_out,
            "generated": self.generated, "held": self.held, "dropped": dropped,
            "input_fps": round((frames_out + dropped - 1) / span, 2) if span > 0 else None,
            "output_fps": round((frames_out - 1) / span, 2) if span > 0 else None,
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
            "latency_ms_max": round(float(np.max(latencies)), 1),
            "stage_ms": self.stage_figures(),
        }

    def stage_figures(self) -> dict[str, dict[str, float]]:
        """Per stage, milliseconds per frame (median and p95) and how many frames went through it."""
        return {stage: {"p50": round(float(np.percentile(seconds, 50)) * 1000, 2),
                        "p95": round(float(np.percentile(seconds, 95)) * 1000, 2), "frames": len(seconds)}
                for stage, seconds in list(self.stage_seconds.items()) if seconds}

    def status_line(self, received: int, dropped: int, note: str = "") -> str:
        figures = self.summary(received, dropped)
        line = (f"in {figures['input_fps'] or 0:.1f} fps · out {figures['output_fps'] or 0:.1f} fps · dropped {dropped} · "
                f"latency p50 {figures['latency_ms_p50']:.0f} ms, p95 {figures['latency_ms_p95']:.0f} ms")
        return f"{line} · {note}" if note else line
