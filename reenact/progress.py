"""Rich progress bars and console output shared by the stages."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

from rich.console import Console
from rich.table import Column
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn, TransferSpeedColumn)

def _own_stderr():
    """A private copy of the stderr descriptor, so our messages survive `native_stderr_silenced`."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):  # stderr replaced by something without a descriptor
        return sys.stderr


def _make_console() -> Console:
    stream = _own_stderr()
    probe = Console(file=stream)
    # In a log (a pipe, Docker, Slurm) a line is never broken at 80 columns: it is one record.
    return Console(file=stream, highlight=False, soft_wrap=not probe.is_terminal)


console = _make_console()
Item = TypeVar("Item")
# Without a terminal there is no bar: a plain line this often (seconds), so logs show life.
LINE_EVERY = float(os.environ.get("REENACT_PROGRESS_EVERY", "10"))


# The bar's fixed part (name, bar, done/total, elapsed, eta) takes about this many columns; the
# free-form status (losses) gets what the terminal has left, so nothing else is squeezed.
BAR_COLUMNS = 58
NAME_COLUMNS = 22


def make_progress() -> Progress:
    """Fits an 80-column terminal: a short bar, and the status is cut to what is left."""
    fixed = Column(no_wrap=True)
    return Progress(
        TextColumn("[bold]{task.fields[name]}", table_column=fixed), BarColumn(bar_width=10),
        TextColumn("{task.fields[done]}", table_column=Column(no_wrap=True)), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True)),
        console=console, disable=not console.is_terminal,
    )


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


@contextlib.contextmanager
def progress_task(description: str, total: int | None, seconds: float | None = None, unit: str = "",
                  visible: bool = True, spent: Callable[[], float] | None = None) -> Iterator["TaskHandle"]:
    """A bar over ``total`` items, or over a time budget of ``seconds`` of which ``spent()`` are gone
    (default: since the bar began; the items are then counted beside it); without a terminal, a plain
    line every LINE_EVERY seconds and one at the end. ``visible=False`` shows nothing (the other
    ranks of a distributed run)."""
    with make_progress() as progress:
        task_id = progress.add_task(description, total=seconds or total, status="", done="", visible=visible,
                                    name=_fit(description, NAME_COLUMNS))
        handle = TaskHandle(progress, task_id, description, total, seconds, unit, visible, spent)
        yield handle
        handle.finish()


@contextlib.contextmanager
def bytes_task(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A bar in bytes (size, speed, eta) for downloads; yields the function that advances it."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task_id = progress.add_task(description, total=total)
        yield lambda amount: progress.update(task_id, advance=amount)


class TaskHandle:
    """Advances one bar and shows a rate and a free-form status (losses, for training); without a
    terminal it prints the same as a line now and then."""

    def __init__(self, progress: Progress, task_id: int, description: str, total: int | None,
                 seconds: float | None = None, unit: str = "", visible: bool = True,
                 spent: Callable[[], float] | None = None):
        self.progress, self.task_id, self.description = progress, task_id, description
        self.total, self.seconds, self.unit = total, seconds, unit
        self.lines = visible and not console.is_terminal
        self.spent = spent or (lambda: self.elapsed)
        self.start, self.count, self.offset, self.status = time.perf_counter(), 0, 0, ""
        self.last_line, self.printed = self.start, 0

    def start_at(self, done: int) -> None:
        """Items already done before this run (a resumed training)."""
        self.offset = done
        if not self.seconds:
            self.progress.update(self.task_id, completed=done)

    def advance(self, amount: int = 1, status: str | None = None) -> None:
        self.count += amount
        self.status = self.status if status is None else status
        fields = {"status": _fit(self.status, console.width - BAR_COLUMNS), "done": self.done_text()}
        if self.seconds:
            self.progress.update(self.task_id, completed=min(self.spent(), self.seconds), **fields)
        else:
            self.progress.update(self.task_id, advance=amount, **fields)
        if self.lines and time.perf_counter() - self.last_line >= LINE_EVERY:
            self.print_line()

    def finish(self) -> None:
        if self.lines and self.count != self.printed:
            self.print_line()

    def done_text(self) -> str:
        done = self.offset + self.count
        return f"{done}/{self.total}{self.unit}" if self.total else f"{done}{self.unit}"

    def print_line(self) -> None:
        """stage: done/total (percent), rate, elapsed, eta[, status]"""
        self.last_line, self.printed = time.perf_counter(), self.count
        share = self.share_done()
        if self.seconds:
            eta = max(0.0, self.seconds - self.spent())
        else:       # from this run's rate: a resumed run's earlier items took none of this run's time
            left = self.total - self.offset - self.count if self.total else None
            eta = left / self.rate if left and left > 0 and self.count else None
        parts = [f"{self.description}: {self.done_text()}" + (f" ({share:.0%})" if share is not None else ""),
                 f"{self.rate:.2f}/s", f"{_clock(self.elapsed)} elapsed"]
        parts += [f"eta {_clock(eta)}"] if eta is not None else []
        parts += [self.status] if self.status else []
        console.print(", ".join(parts), markup=False)

    def share_done(self) -> float | None:
        if self.seconds:
            return min(1.0, self.spent() / self.seconds)
        if self.total:
            return min(1.0, (self.offset + self.count) / self.total)
        return None

    @property
    def rate(self) -> float:
        return self.count / max(self.elapsed, 1e-9)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def with_progress(items: Iterable[Item], description: str, total: int | None) -> Iterator[Item]:
    with progress_task(description, total) as task:
        for item in items:
            yield item
            task.advance()


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what native libraries write to descriptor 2 (MediaPipe's C++ log lines) to /dev/null."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def info(message: str) -> None:
    console.print(message)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {message}")
