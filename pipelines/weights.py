"""`reenact weights`: which optional weights are in torch's cache and what each unlocks; `fetch` downloads them."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.padding import Padding
from rich.text import Text

from reenact.config import WeightsConfig
from reenact.progress import console
from reenact.weights import WeightsFile, fetch, hub_checkpoints, package_installed, registry, select, state

STATE_STYLES = {"present": "green", "checksum differs": "yellow", "missing": "red"}


def run(config: WeightsConfig) -> None:
    entries, folder = registry(), hub_checkpoints()
    if not config.fetch:
        console.print(listing(entries, folder))
        return
    for name in select(config.fetch, entries):
        fetch(name, entries[name], folder, config.timeout)


def listing(entries: dict[str, WeightsFile], folder: Path) -> Group:
    """One block per file: its name, file and state on a line, then what it unlocks and needs, which
    wrap at spaces to any terminal width (a table's narrow columns broke words at 80)."""
    blocks = [Text(f"optional weights in {folder} (`reenact weights fetch NAME|all` downloads them)", style="bold")]
    for name, entry in entries.items():
        found = state(entry, folder)
        blocks.append(Text.assemble("\n", (name, "bold"), f"  {entry.file}  ", (found, STATE_STYLES[found])))
        blocks.append(Padding(Text(f"unlocks: {entry.unlocks}"), (0, 0, 0, 2), expand=False))
        if entry.package:
            blocks.append(Padding(Text(f"also needs: {_package(entry)}"), (0, 0, 0, 2), expand=False))
    return Group(*blocks)


def _package(entry: WeightsFile) -> str:
    if not entry.package:
        return ""
    if package_installed(entry):
        return f"{entry.package} (installed)"
    return f"{entry.package}: {entry.install}"
