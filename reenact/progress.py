"""Rich progress bars and console output shared by the stages."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, highlight=False)
Item = TypeVar("Item")


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console, transient=not sys.stderr.isatty(),
    )


@contextlib.contextmanager
def progress_task(description: str, total: int | None) -> Iterator["TaskHandle"]:
    with make_progress() as progress:
        task_id = progress.add_task(description, total=total, rate="", status="")
        yield TaskHandle(progress, task_id)


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


def info(message: str) -> None:
    console.print(message)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {message}")
