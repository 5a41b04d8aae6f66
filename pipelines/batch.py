"""`reenact batch jobs.toml --out DIR`: track → train → transfer for many jobs, each in DIR/<name>/.

A stage is skipped when its outputs exist and the hashes of its inputs and settings match the
ones recorded in DIR/<name>/stages.json. Training is recorded there ("started") before it runs,
so a rerun after the process was killed (preemption, SIGKILL) resumes from the last checkpoint
when the settings and subject are unchanged. A failing job does not stop the others; the summary
table lists every job's stages, and the exit code is non-zero when any failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.table import Table

from pipelines import track, train, transfer
from reenact.checkpoint import load_checkpoint
from reenact.config import BatchConfig, TrackConfig, TrainConfig, TransferConfig, read_toml
from reenact.errors import ReenactError
from reenact.files import check_writable, sha256_file, write_json
from reenact.presets import get_preset
from reenact.progress import console, info, warn

JOB_KEYS = {"name", "target", "mode", "preset", "steps", "checkpoint_every", "sources"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class Job:
    name: str
    target: Path
    mode: str = "auto"
    preset: str = "256"
    steps: int | None = None
    checkpoint_every: int = TrainConfig.checkpoint_every
    sources: list[Path] = field(default_factory=list)


def run(config: BatchConfig) -> list[dict]:
    # 1. Read and check the jobs; the output folder holds one folder per job.
    jobs = read_jobs(Path(config.jobs))
    out = Path(config.out)
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    selected = [job for job in jobs if config.job in (None, job.name)]
    if config.job and not selected:
        raise ReenactError(f"{config.jobs}: no job named {config.job!r}")
    # 2. Run them: one after the other, or one per GPU in parallel.
    if config.gpus:
        rows = run_on_gpus(selected, config)
    else:
        rows = [row for job in selected for row in run_job(job, out / job.name, config.device)]
    # 3. The summary; a failed job makes the exit code non-zero.
    print_summary(rows)
    failed = sorted({row["job"] for row in rows if row["status"] == "failed"})
    if failed:
        raise ReenactError(f"{len(failed)} of {len(selected)} jobs failed: {', '.join(failed)}")
    return rows


def read_jobs(path: Path) -> list[Job]:
    entries = read_toml(path, "jobs file").get("job")
    if not isinstance(entries, list) or not entries:
        raise ReenactError(f"{path}: no [[job]] entries")
    jobs, names = [], set()
    for number, entry in enumerate(entries, start=1):
        job = parse_job(path, number, entry)
        if job.name in names:
            raise ReenactError(f"{path}: job {number}: the name {job.name!r} is used twice")
        names.add(job.name)
        jobs.append(job)
    return jobs


def parse_job(path: Path, number: int, entry: dict) -> Job:
    unknown = sorted(set(entry) - JOB_KEYS)
    if unknown:
        raise ReenactError(f"{path}: job {number}: unknown key {', '.join(unknown)} (valid: {', '.join(sorted(JOB_KEYS))})")
    name = entry.get("name")
    # Names become folder names: nothing that could climb out of the output folder.
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise ReenactError(f"{path}: job {number}: name {name!r} must be letters, digits, '.', '_' or '-' (not starting with '.')")
    if "target" not in entry:
        raise ReenactError(f"{path}: job {name}: no target video")
    try:
        get_preset(str(entry.get("preset", "256")))
    except ReenactError as error:
        raise ReenactError(f"{path}: job {name}: {error}") from None
    for key in ("steps", "checkpoint_every"):
        value = entry.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ReenactError(f"{path}: job {name}: {key} must be a whole number of steps above 0, not {value!r}")
    base = path.resolve().parent
    return Job(name, base / entry["target"], entry.get("mode", "auto"), str(entry.get("preset", "256")),
               entry.get("steps"), entry.get("checkpoint_every", TrainConfig.checkpoint_every),
               [base / s for s in entry.get("sources", [])])


def run_job(job: Job, folder: Path, device: str) -> list[dict]:
    """The job's stages in order; the first failure ends the job (later stages are not run)."""
    folder.mkdir(parents=True, exist_ok=True)
    # A summary left by an earlier run would pass for this one's if this process is killed.
    (folder / "summary.json").unlink(missing_ok=True)
    records_path = folder / "stages.json"
    records = json.loads(records_path.read_text()) if records_path.exists() else {}
    save_records = lambda: write_json(records_path, records)
    subject, checkpoint = folder / "subject", folder / f"{job.name}.ckpt"
    # Train refuses a preset above the tracked resolution; the default keeps the keys of existing jobs.
    resolution = max(TrackConfig.resolution, get_preset(job.preset).resolution)
    track_config = TrackConfig(video=str(job.target), out=str(subject), mode=job.mode, device=device, resolution=resolution)
    stages = [("track", lambda key: track.run(track_config), subject,
               lambda: track.reuse_key(sha256_file(job.target), track_config))]
    train_config = TrainConfig(subject=str(subject), out=str(checkpoint), preset=job.preset, steps=job.steps,
                               checkpoint_every=job.checkpoint_every, device=device)
    stages.append(("train", lambda key: train_stage(job.name, train_config, key, records, save_records), checkpoint,
                   lambda: stage_key(subject / "subject.json", train_key_config(train_config))))
    for source in job.sources:
        output = folder / "transfers" / f"{source.stem}.mp4"
        transfer_config = TransferConfig(source=str(source), checkpoint=str(checkpoint), out=str(output), device=device)
        stages.append((f"transfer {source.name}", lambda key, c=transfer_config: transfer.run(c), output,
                       lambda s=source, c=transfer_config: stage_key(checkpoint, c, s)))
    rows = []
    for stage, action, output, key in stages:
        row = run_stage(job.name, stage, action, output, key, records)
        save_records()
        rows.append(row)
        if row["status"] == "failed":
            break
    write_json(folder / "summary.json", {"rows": rows})
    return rows


def run_stage(job: str, stage: str, action, output: Path, key, records: dict) -> dict:
    start = time.perf_counter()
    try:
        expected = key()
        if output.exists() and records.get(stage) == expected:
            return {"job": job, "stage": stage, "status": "skipped", "seconds": round(time.perf_counter() - start, 1)}
        action(expected)
        records[stage] = expected
        records.get("started", {}).pop(stage, None)
        return {"job": job, "stage": stage, "status": "done", "seconds": round(time.perf_counter() - start, 1)}
    except (ReenactError, OSError) as error:
        console.print(f"[red]{job}: {stage} failed:[/] {error}")
        return {"job": job, "stage": stage, "status": "failed", "error": str(error),
                "seconds": round(time.perf_counter() - start, 1)}


def train_key_config(config: TrainConfig) -> TrainConfig:
    """The settings that decide the trained model: how often it is saved, or whether it resumed, don't,
    and they keep their defaults here so that keys recorded before they were job settings still match."""
    return replace(config, resume=TrainConfig.resume, checkpoint_every=TrainConfig.checkpoint_every)


def train_stage(name: str, config: TrainConfig, key: str, records: dict, save_records) -> None:
    """Train, or continue a run of the same settings and subject that was killed before it finished."""
    started = records.setdefault("started", {}).get("train")
    step, why_not = interrupted_step(Path(config.out), started, key)
    if step is not None:
        info(f"resuming {name} from step {step}")
        train.run(replace(config, resume=True))
        return
    if started is not None:
        info(f"{name}: {why_not}; training from step 0")
    # Recorded before the first step, so a run killed without warning still leaves word of what it was
    # training; the checkpoint it is about to overwrite no longer matches the finished record.
    records.pop("train", None)
    records["started"]["train"] = {"key": key, "replaces": file_identity(Path(config.out))}
    save_records()
    train.run(config)


def interrupted_step(checkpoint: Path, started: dict | None, key: str) -> tuple[int | None, str]:
    """The step an interrupted run of these settings saved its checkpoint at, or None and why not."""
    if started is None:
        return None, "no interrupted run"
    if started.get("key") != key:
        return None, "settings or subject changed since the interrupted run"
    # The file the interrupted run found when it began is an older run's checkpoint, not its own.
    if not checkpoint.exists() or file_identity(checkpoint) == started.get("replaces"):
        return None, "the interrupted run saved no checkpoint"
    try:
        return int(load_checkpoint(checkpoint)["step"]), ""
    except ReenactError as error:
        warn(str(error))
        return None, "its checkpoint can't be resumed"


def file_identity(path: Path) -> list[int] | None:
    """Changes whenever the file is replaced: checkpoints are written to a new file and renamed."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def stage_key(input_file: Path, config, *more_inputs: Path) -> str:
    digest = hashlib.sha256(json.dumps(vars(config), sort_keys=True, default=str).encode())
    for path in (input_file, *more_inputs):
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def run_on_gpus(jobs: list[Job], config: BatchConfig) -> list[dict]:
    """One job per GPU at a time, each in its own `reenact batch --job NAME` process."""
    gpus = [g.strip() for g in config.gpus.split(",") if g.strip()]
    free = list(gpus)

    def launch(job: Job) -> list[dict]:
        gpu = free.pop()
        try:
            command = [sys.executable, "-m", "cli", "batch", str(Path(config.jobs).resolve()), "--out",
                       str(Path(config.out).resolve()), "--job", job.name, "--device", "cuda"]
            subprocess.run(command, env={**os.environ, "CUDA_VISIBLE_DEVICES": gpu})
        finally:
            free.append(gpu)
        summary = Path(config.out) / job.name / "summary.json"
        if not summary.exists():
            return [{"job": job.name, "stage": "start", "status": "failed", "error": "the job's process died", "seconds": 0}]
        return json.loads(summary.read_text())["rows"]

    with ThreadPoolExecutor(max_workers=len(gpus)) as pool:
        return [row for rows in pool.map(launch, jobs) for row in rows]


def print_summary(rows: list[dict]) -> None:
    table = Table(title="batch summary")
    for column in ("job", "stage", "status", "time (s)"):
        table.add_column(column)
    for row in rows:
        status = row["status"] + (f": {row['error']}" if row.get("error") else "")
        table.add_row(row["job"], row["stage"], status, f"{row['seconds']:.1f}")
    console.print(table)
    info(f"batch: {sum(r['status'] == 'done' for r in rows)} done, {sum(r['status'] == 'skipped' for r in rows)} skipped, "
         f"{sum(r['status'] == 'failed' for r in rows)} failed")
