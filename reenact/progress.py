"""Rich progress bars and console output shared by the stages."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn, TransferSpeedColumn)

def _own_stderr():
    """A private copy of the stderr descriptor, so our messages survive `native_stderr_silenced`."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):  # stderr replaced by something without a descriptor
        return sys.stderr


console = Console(file=_own_stderr(), highlight=False)
Item = TypeVar("Item")


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console, disable=not console.is_terminal,
    )


@contextlib.contextmanager
def progress_task(description: str, total: int | None) -> Iterator["TaskHandle"]:
    with make_progress() as progress:
        task_id = progress.add_task(description, total=total, rate="", status="")
        yield TaskHandle(progress, task_id)


@contextlib.contextmanager
def bytes_task(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A bar in bytes (size, speed, eta) for downloads; yields the function that advances it."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task_id = progress.add_task(description, total=total)
        yield lambda amount: progress.update(task_id, advance=amount)


class TaskHandle:
    """Advances one bar and shows a rate and a free-form status (losses, for training)."""

    def __init__(self, progress: Progress, task_id: int):
        self.progress, self.task_id = progress, task_id
        self.start, self.count = time.perf_counter(), 0

    def advance(self, amount: int = 1, status: str | None = None) -> None:
        self.count += amount
        rate = self.count / max(time.perf_counter() - self.start, 1e-9)
        fields = {"rate": f"{rate:6.1f}/s"}
        if status is not None:
            fields["status"] = status
        self.progress.update(self.task_id, advance=amount, **fields)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


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
