"""The translator's proxy window over a stream.

The window of a frame t holds the proxies of t - w//2 … t + w//2. A stream has no future, so
``live`` does one of two things (``LOOKAHEADS``):
- ``wait``: hold each frame back until the w//2 frames after it have arrived, then translate
  it with the window the model was trained on; the wait counts in the latency.
- ``hold``: translate each frame as it arrives, its future filled with copies of itself, as
  ``transfer`` does at a clip's last frame.
Frames are pushed with an item (the capture record) that comes back with their window.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterator

import torch


class ProxyWindow:
    def __init__(self, window: int, lookahead: str):
        if lookahead not in LOOKAHEADS:
            raise ValueError(f"lookahead {lookahead!r}: not one of {', '.join(LOOKAHEADS)}")
        self.half, self.lookahead = window // 2, lookahead
        self.past: deque[torch.Tensor] = deque(maxlen=self.half)            # proxies before the pending ones
        self.pending: deque[tuple[torch.Tensor, Any]] = deque()             # pushed, not yet translated

    def push(self, proxy: torch.Tensor, item: Any) -> Iterator[tuple[torch.Tensor, Any]]:
        """(window, item) pairs now ready: none, or one."""
        self.pending.append((proxy, item))
        wait = self.half if self.lookahead == "wait" else 0
        if len(self.pending) > wait:
            yield self._pop()

    def flush(self) -> Iterator[tuple[torch.Tensor, Any]]:
        """Every pending frame, its missing future filled with the last proxy (the stream paused or ended)."""
        while self.pending:
            yield self._pop()

    def reset(self) -> None:
        self.past.clear()
        self.pending.clear()

    def _pop(self) -> tuple[torch.Tensor, Any]:
        proxy, item = self.pending.popleft()
        future = [p for p, _ in list(self.pending)[:self.half]]
        future += [future[-1] if future else proxy] * (self.half - len(future))
        past = list(self.past)
        past = [past[0] if past else proxy] * (self.half - len(past)) + past
        self.past.append(proxy)
        return torch.cat([*past, proxy, *future]), item


LOOKAHEADS = ("hold", "wait")
