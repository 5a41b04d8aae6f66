"""Optional pretrained weights: where they live, what each unlocks, and fetching them.

This is the only code in reenact that downloads, and it runs only for `reenact weights fetch`.
Files go to torch's hub cache, $TORCH_HOME/hub/checkpoints/, under their published names,
because that is where torchvision, lpips and face-alignment look. Those names carry the first
hex digits of the file's SHA-256 (torch.hub's convention, checked by its check_hash), so that
prefix is the published checksum a download is held to.

$REENACT_WEIGHTS_REGISTRY may name a TOML file for mirrors and tests: a table per name, where
a published entry may only change its `url` (the cache name is what the libraries look for),
and a new name gives `file`, `url`, `sha256` (a hex prefix) and optionally `unlocks`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import importlib.util
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from reenact.config import read_toml
from reenact.errors import ReenactError
from reenact.files import atomic_path, sha256_file
from reenact.progress import bytes_task, info, warn

REGISTRY_ENV = "REENACT_WEIGHTS_REGISTRY"
TIMEOUT_SECONDS = 30.0
CHUNK_BYTES = 1 << 20
ALL = "all"


@dataclass(frozen=True)
class WeightsFile:
    file: str               # its name in the hub cache
    url: str
    sha256: str             # the published prefix of the file's SHA-256, lower-case hex
    unlocks: str
    package: str = ""       # a module that must be importable too ("" when none)
    install: str = ""       # how to install that module


PUBLISHED: dict[str, WeightsFile] = {
    "vgg19": WeightsFile("vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                         "dcbb9e9d", "the VGG perceptual loss in `reenact train`"),
    "lpips": WeightsFile("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                         "7be5be79", "LPIPS in `reenact eval` (this is its AlexNet backbone)",
                         "lpips", "pip install --no-deps lpips: reenact reads only its linear layers"),
    "2dfan": WeightsFile("2DFAN4-11f355bf06.pth.tar",
                         "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
                         "11f355bf06", "2D-FAN landmarks: `reenact track --face-landmarks face_alignment`",
                         "face_alignment", "pip install 'reenact[face-alignment]'"),
}


def hub_checkpoints() -> Path:
    """$TORCH_HOME/hub/checkpoints, resolved as torch.hub does, without importing torch.

    TORCH_HOME defaults to $XDG_CACHE_HOME/torch, and that to ~/.cache/torch.
    """
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    torch_home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    return Path(os.path.expanduser(torch_home)) / "hub" / "checkpoints"


def registry() -> dict[str, WeightsFile]:
    """The published entries, changed and extended by the $REENACT_WEIGHTS_REGISTRY file when set."""
    entries = dict(PUBLISHED)
    path = os.environ.get(REGISTRY_ENV)
    if path:
        for name, table in read_toml(path, "weights registry").items():
            if name == ALL:
                raise ReenactError(f"{path}: '{ALL}' names every entry; it can't be one")
            entries[name] = _entry(f"{path}: {name}", table, PUBLISHED.get(name))
    return entries


def _entry(where: str, table: object, published: WeightsFile | None) -> WeightsFile:
    # A published file keeps its name and hash: torchvision and face-alignment look for that name.
    allowed = {"url"} if published else {"file", "url", "sha256", "unlocks"}
    required = set() if published else {"file", "url", "sha256"}
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ReenactError(f"{where}: expected a table of strings ({', '.join(sorted(allowed))})")
    if set(table) - allowed or required - set(table):
        needs = f"needs {', '.join(sorted(required))}; " if required else ""
        raise ReenactError(f"{where}: {needs}takes only {', '.join(sorted(allowed))} (got {', '.join(table) or 'nothing'})")
    if published:
        return dataclasses.replace(published, **table)
    prefix = table["sha256"].lower()
    if not prefix or any(c not in "0123456789abcdef" for c in prefix):
        raise ReenactError(f"{where}: sha256 must be hex digits, got {table['sha256']!r}")
    if Path(table["file"]).name != table["file"] or table["file"] in ("", ".", ".."):
        raise ReenactError(f"{where}: file must be a plain file name (it goes in the cache folder), got {table['file']!r}")
    return WeightsFile(table["file"], table["url"], prefix, table.get("unlocks", "nothing reenact uses by itself"))


def select(names: tuple[str, ...], entries: dict[str, WeightsFile]) -> list[str]:
    """The entry names ``names`` asks for, in registry order; 'all' is every one."""
    unknown = [name for name in names if name != ALL and name not in entries]
    if unknown:
        raise ReenactError(f"unknown weights {', '.join(unknown)} (valid: {', '.join([*entries, ALL])})")
    return [name for name in entries if ALL in names or name in names]


def state(entry: WeightsFile, folder: Path) -> str:
    """'present', 'checksum differs' or 'missing'."""
    path = folder / entry.file
    if not path.is_file():
        return "missing"
    return "present" if sha256_file(path).startswith(entry.sha256) else "checksum differs"


def package_installed(entry: WeightsFile) -> bool:
    return not entry.package or importlib.util.find_spec(entry.package) is not None


def fetch(name: str, entry: WeightsFile, folder: Path, timeout: float = TIMEOUT_SECONDS) -> Path:
    """Download ``entry`` into ``folder`` unless a file with its checksum is there; nothing half-written stays."""
    target = folder / entry.file
    found = state(entry, folder)
    if found == "present":
        info(f"{name}: {target} is already present")
        return target
    if found == "checksum differs":
        warn(f"{name}: {target} does not match sha256 prefix {entry.sha256}; downloading it again")
    with atomic_path(target) as tmp:      # refuses a read-only cache before any download
        digest = _download(entry.url, tmp, target, timeout)
        if not digest.startswith(entry.sha256):
            raise ReenactError(f"{entry.url}: checksum mismatch (expected sha256 prefix {entry.sha256}, "
                               f"got {digest[:len(entry.sha256)]}); not saved to {target}")
    info(f"{name}: saved {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return target


def _download(weights_url: str, tmp: Path, target: Path, timeout: float) -> str:
    """Stream the weights at ``weights_url`` into ``tmp``; the hex SHA-256 of the bytes received.

    Every failure is one ReenactError naming the URL and ``target``.
    """
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(weights_url, timeout=timeout) as weights_response, open(tmp, "wb") as out:
            length = weights_response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = _copy(weights_response, out, digest, expected, target.name)
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise ReenactError(f"cannot download {weights_url} to {target}: {_reason(error, timeout)}") from None
    # http.client ends a body cut short without an error, so the length is checked here.
    if expected is not None and received != expected:
        raise ReenactError(f"cannot download {weights_url} to {target}: the connection closed after "
                           f"{received} of {expected} bytes")
    return digest.hexdigest()


def _copy(source: BinaryIO, out: BinaryIO, digest: "hashlib._Hash", total: int | None, label: str) -> int:
    received = 0
    with bytes_task(f"fetching {label}", total) as advance:
        while chunk := source.read(CHUNK_BYTES):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            advance(len(chunk))
    return received


def _reason(error: BaseException, timeout: float) -> str:
    """A short human reason: 'HTTP 404 Not Found', 'Connection refused', 'no answer in 30 s'."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason
    elif isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, TimeoutError):
        return f"no answer in {timeout:g} s"
    if isinstance(error, http.client.IncompleteRead):
        return f"the connection closed after {len(error.partial)} bytes"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
