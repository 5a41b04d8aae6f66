"""`reenact weights`: which optional weights are in torch's cache and what each unlocks; `fetch` downloads them."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from reenact.config import WeightsConfig
from reenact.progress import console
from reenact.weights import WeightsFile, fetch, hub_checkpoints, package_installed, registry, select, state

STATE_STYLES = {"present": "green", "checksum differs": "yellow", "missing": "red"}


def run(config: WeightsConfig) -> None:
    entries, folder = registry(), hub_checkpoints()
    if not config.fetch:
        console.print(table(entries, folder))
        return
    for name in select(config.fetch, entries):
        fetch(name, entries[name], folder, config.timeout)


def table(entries: dict[str, WeightsFile], folder: Path) -> Table:
    view = Table(title=escape(f"optional weights in {folder} (`reenact weights fetch NAME|all` downloads them)"))
    for column in ("name", "file", "state", "unlocks", "also needs"):
        # A file name must stay whole to be found; the prose columns wrap, breaking long words rather than cutting them.
        view.add_column(column, no_wrap=column in ("name", "file", "state"), overflow="fold")
    for name, entry in entries.items():
        found = state(entry, folder)
        view.add_row(name, escape(entry.file), f"[{STATE_STYLES[found]}]{found}[/]", escape(entry.unlocks),
                     _package(entry))
    return view


def _package(entry: WeightsFile) -> str:
    if not entry.package:
        return ""
    if package_installed(entry):
        return f"{entry.package} (installed)"
    return escape(f"{entry.package}: {entry.install}")
