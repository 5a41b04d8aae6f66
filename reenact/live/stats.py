"""What a live run reports: frames in, out and dropped, and the end-to-end latency."""

from __future__ import annotations

import time

import numpy as np

STATUS_EVERY = 2.0   # seconds between status lines


class LiveStats:
    def __init__(self):
        self.started = time.monotonic()
        self.latencies: list[float] = []       # seconds from capture to the output written
        self.generated = self.held = 0         # frames out: translated, or the last good output again
        self.last_status = self.started
        self.first_output = self.last_output = None      # monotonic times: the rates are over this span

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
        }

    def status_line(self, received: int, dropped: int, note: str = "") -> str:
        figures = self.summary(received, dropped)
        line = (f"in {figures['input_fps'] or 0:.1f} fps · out {figures['output_fps'] or 0:.1f} fps · dropped {dropped} · "
                f"latency p50 {figures['latency_ms_p50']:.0f} ms, p95 {figures['latency_ms_p95']:.0f} ms")
        return f"{line} · {note}" if note else line
