"""Atomic writes and hashing, so a failed or interrupted run never leaves half a file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from reenact.errors import ReenactError


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, naming ``path``, if it can't be created: before the work, not after it. Tried, not
    judged from permission bits (root may write anywhere except where the file system says no:
    /proc, a read-only mount); folders made for the trial are removed again."""
    path = Path(path)
    folder = path.absolute().parent
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        raise ReenactError(f"{path}: can't be written: {folder} is a file, not a folder")
    try:
        for made in reversed(missing):
            made.mkdir()
        tempfile.TemporaryFile(dir=path.absolute().parent).close()
    except PermissionError:
        raise ReenactError(f"{path}: can't be written: no permission to write in {path.absolute().parent}") from None
    except OSError as error:
        where = error.filename if error.filename in map(str, missing) else path.absolute().parent
        raise ReenactError(f"{path}: can't be written: {error.strerror or error} ({where})") from None
    finally:
        for made in missing:
            with contextlib.suppress(OSError):
                made.rmdir()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success."""
    final = Path(final)
    check_writable(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial" + final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; it replaces ``final`` only on success."""
    final = Path(final)
    check_writable(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    """The process's umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def strict_json(data, **dumps_options) -> str:
    """``data`` as strict JSON: an undefined figure (NaN, ±inf) is ``null``, which every parser reads,
    where Python's default ``NaN`` token makes JavaScript's ``JSON.parse`` reject the whole file."""
    return json.dumps(_finite_or_none(data), allow_nan=False, **dumps_options)


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def write_json(path: str | os.PathLike, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(strict_json(data, indent=2) + "\n")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
