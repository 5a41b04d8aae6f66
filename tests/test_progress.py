"""Progress that works anywhere: a bar that fits 80 columns on a terminal, plain lines in a log."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from reenact import progress
from tests.conftest import run_reenact, shared_clip


def rendered_bar(monkeypatch, seconds: float | None) -> str:
    screen = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    monkeypatch.setattr(progress, "console", screen)
    with progress.progress_task("training", 300, seconds=seconds, unit=" steps") as task:
        task.start_at(20)
        task.advance(10, status="g_l1 0.512 g_gan 0.731 g_feature 1.204 d_image 0.249 d_temporal 0.301")
        task.progress.refresh()
    return screen.file.getvalue()


@pytest.mark.parametrize("seconds", [None, 1800.0])
def test_the_bar_fits_80_columns_with_steps_and_time_left(monkeypatch, seconds):
    lines = [line for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", rendered_bar(monkeypatch, seconds)).splitlines() if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines), lines
    last = lines[-1]
    assert "training" in last and "30/300 steps" in last and "eta" in last, last


def test_without_a_terminal_a_line_comes_every_few_seconds_and_at_the_end(monkeypatch):
    log = Console(file=io.StringIO(), width=80, force_terminal=False, soft_wrap=True)
    monkeypatch.setattr(progress, "console", log)
    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)
    with progress.progress_task("tracking body", 4) as task:
        for _ in range(4):
            task.advance()
    lines = log.file.getvalue().splitlines()
    assert lines[0].startswith("tracking body: 1/4 (25%)") and "eta" in lines[0]
    assert lines[-1].startswith("tracking body: 4/4 (100%)") and len(lines) == 4      # no repeat at the end


@pytest.mark.e2e
def test_commands_piped_into_a_log_print_progress_while_they_work(body_subject, tmp_path):
    """train, track and eval with stdout and stderr a pipe (Docker, Slurm): progress lines during the work."""
    often = {"REENACT_PROGRESS_EVERY": "0.5"}
    train = run_reenact("train", body_subject, "--preset", "tiny", "--steps", 30, "--out", tmp_path / "t.ckpt", env=often)
    assert train.returncode == 0, train.stderr
    steps = [int(m) for m in re.findall(r"^training: (\d+)/30 steps", train.stderr, re.M)]
    assert len(steps) >= 3 and steps == sorted(steps) and steps[0] < 30, train.stderr
    track = run_reenact("track", shared_clip("body/animatex_dance_3.mp4"), "--mode", "body", "--resolution", 64,
                        "--out", tmp_path / "dance", env=often)
    assert track.returncode == 0, track.stderr
    assert len(re.findall(r"^tracking body: \d+/\d+ \(\d+%\)", track.stderr, re.M)) >= 2, track.stderr
    evaluation = run_reenact("eval", tmp_path / "t.ckpt", "--report", tmp_path / "e", env=often)
    assert evaluation.returncode == 0, evaluation.stderr
    for stage in ("generating model, model_no_temporal frames", "tracking model frames"):
        assert re.search(rf"^{stage}.*: \d+/\d+ \(\d+%\)", evaluation.stderr, re.M), evaluation.stderr
