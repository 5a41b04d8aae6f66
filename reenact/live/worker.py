"""A second thread for `reenact live`: the translator and the outputs run on it while the main
thread tracks the next frame. On 2 cores the two halves of a face frame (FaceMesh, the fit and
the proxy: ~37 ms; the generator and the writes: ~26 ms) then overlap instead of adding up;
torch's convolutions and MediaPipe's graph release the GIL."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable

_STOP = object()


class BackgroundWorker:
    """``handle(item)`` for each submitted item in order, on its own thread, with at most one item
    waiting: ``submit`` blocks while one does, so the source's newest-frame rule drops input
    rather than letting work pile up. An error on the thread is raised by the next call."""

    def __init__(self, handle: Callable[[Any], None], name: str):
        self.handle, self.error = handle, None
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def submit(self, item: Any) -> None:
        self._raise()
        self.queue.put(item)

    def drain(self) -> None:
        """Wait until every submitted item is handled."""
        self.queue.join()
        self._raise()

    def close(self) -> None:
        """Handle what is left, then stop the thread."""
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join()
        self._raise()

    def _serve(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is _STOP:
                    return
                if self.error is None:      # after an error, the rest is dropped until it is raised
                    self.handle(item)
            except BaseException as error:  # noqa: BLE001 - raised again on the caller's thread
                self.error = error
            finally:
                self.queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
