"""Shared test helpers: where the clips are, and running the real `reenact` command."""

from __future__ import annotations

import json
import os
import tempfile
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SHARED_VIDEOS = REPO.parent / "shared" / "videos"


# Motion files go to a cache of the test session's own, not the user's ~/.cache/reenact.
os.environ.setdefault("REENACT_CACHE", tempfile.mkdtemp(prefix="reenact-test-cache-"))


def shared_clip(relative: str) -> Path:
    """A clip from ../shared/videos; the test is skipped where that folder is absent."""
    path = SHARED_VIDEOS / relative
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared/videos is only beside the developers' checkouts)")
    return path


def reenact_command() -> list[str]:
    script = Path(sys.executable).parent / "reenact"
    return [str(script)] if script.exists() else [sys.executable, str(REPO / "cli.py")]


def run_reenact(*args: str | os.PathLike, cwd: Path | None = None, timeout: float = 900,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `reenact ARGS` as a user would, with ``env`` added to the environment; returns the
    finished process with text output."""
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([*reenact_command(), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def ffmpeg() -> str:
    from reenact.io import ffmpeg_exe

    return ffmpeg_exe()


def make_clip(path: Path, *ffmpeg_args: str) -> Path:
    """Write a clip with the ffmpeg binary reenact uses, e.g. a trimmed copy of an example."""
    subprocess.run([ffmpeg(), "-v", "error", "-y", *ffmpeg_args, str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def example_target() -> Path:
    return EXAMPLES / "taiji_target.mp4"


@pytest.fixture(scope="session")
def example_source() -> Path:
    return EXAMPLES / "taiji_source.mp4"


def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity, as JavaScript's JSON.parse does: what reenact writes
    must be strict JSON."""
    def refuse(token: str):
        raise ValueError(f"not strict JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Non-zero exit, one error line that names the problem, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    error_lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, output
    for fragment in fragments:
        assert fragment in error_lines[0], output


BODY_RESOLUTION = 96


@pytest.fixture(scope="session")
def body_subject(tmp_path_factory, example_source) -> Path:
    """The 112-frame example clip tracked at 96 px with the default --mode auto."""
    out = tmp_path_factory.mktemp("body") / "target"
    result = run_reenact("track", example_source, "--resolution", BODY_RESOLUTION, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "mode auto: chose body" in result.stderr
    return out


# `pytest -m "not e2e"` runs the unit tests alone, in a few minutes; `e2e` marks the tests that run the
# real commands and stages (they say so with @pytest.mark.e2e or a module's pytestmark). Also marked
# here: every test that uses the tracked example subject, however it reaches it.
E2E_FIXTURES = {"body_subject"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


def install_lpips_weights(root: Path, seed: int = 0) -> dict[str, str]:
    """Stand-ins for LPIPS's two files under ``root``, with seeded random weights: AlexNet's in a
    torch hub cache and the linear layers in an `lpips` package folder. Returns the environment
    (TORCH_HOME, PYTHONPATH) under which reenact finds them."""
    import torch

    from reenact.models.lpips import LINEAR_WEIGHTS, TAPPED_CHANNELS, alexnet_features
    from reenact.weights import PUBLISHED

    torch.manual_seed(seed)
    cache = root / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    features = {f"features.{key}": value for key, value in alexnet_features().state_dict().items()}
    torch.save({**features, "classifier.1.weight": torch.zeros(4, 9216)}, cache / PUBLISHED["lpips"].file)
    package = root / "site" / "lpips"
    (package / LINEAR_WEIGHTS).parent.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('reenact must read this package's files, not import it')\n")
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(TAPPED_CHANNELS)},
               package / LINEAR_WEIGHTS)
    return {"TORCH_HOME": str(root / "torch"), "PYTHONPATH": os.pathsep.join([str(root / "site"), str(REPO)])}
