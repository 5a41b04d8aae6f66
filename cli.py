"""The `reenact` command line: thin Typer commands over the stage pipelines."""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Optional

import typer

from reenact.config import BatchConfig, BenchTrainConfig, EvalConfig, ExportConfig, TrackConfig, TrainConfig, TransferConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Per-subject video reenactment: make a target person perform a source video's motion.")

Out = Annotated[Optional[str], typer.Option("--out", help="Where to write the result (see the command's help for the default).")]
Device = Annotated[Optional[str], typer.Option("--device", help=f"auto | cpu | cuda [default: {TrackConfig.device}]")]
ConfigFile = Annotated[Optional[str], typer.Option("--config", help="TOML file of settings; command-line options win.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]


def run_stage(module: str, config_class: type, toml: str | None, debug: bool, **options: Any) -> None:
    """Resolve the command's config and run its stage; errors become one line and exit code 1."""
    from reenact.errors import ReenactError
    from reenact.progress import console

    try:
        from reenact.config import resolve_config

        config = resolve_config(config_class, toml, options)
        importlib.import_module(f"pipelines.{module}").run(config)
    except ReenactError as error:
        if debug:
            raise
        console.print(f"[red]error:[/] {error}", soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    except OSError as error:
        if debug:
            raise
        where = error.filename or "a file"
        console.print(f"[red]error:[/] {where}: {error.strerror or error}", soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as error:
        if debug:
            raise
        console.print(f"[red]error:[/] unexpected {type(error).__name__}: {error} (run with --debug for the traceback)", soft_wrap=True)
        raise typer.Exit(1) from None


@app.command()
def track(
    video: Annotated[str, typer.Argument(help="The target video.")],
    out: Out = None,
    mode: Annotated[Optional[str], typer.Option(help=f"auto | body | face [default: {TrackConfig.mode}]")] = None,
    resolution: Annotated[Optional[int], typer.Option(help=f"Side of the stored training frames [default: {TrackConfig.resolution}]")] = None,
    face_landmarks: Annotated[Optional[str], typer.Option(
        help=f"mediapipe | face_alignment: the landmarks the face model is fitted to; face_alignment needs "
             f"pip install 'reenact[face-alignment]' and its cached weights [default: {TrackConfig.face_landmarks}]")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Track a video into a subject folder (default ./VIDEO_STEM/): keypoints, crops, proxies, preview."""
    run_stage("track", TrackConfig, config, debug, video=video, out=out, mode=mode, resolution=resolution,
              face_landmarks=face_landmarks, device=device)


@app.command()
def train(
    subject: Annotated[str, typer.Argument(help="A subject folder written by `reenact track`.")],
    out: Out = None,
    preset: Annotated[Optional[str], typer.Option(help=f"tiny | 256 | 512 [default: {TrainConfig.preset}]")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Total training steps [default: the preset's].")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="[default: the preset's]")] = None,
    resume: Annotated[Optional[bool], typer.Option("--resume", help="Continue from the checkpoint at --out.")] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile", help="torch.compile the networks.")] = None,
    ema: Annotated[Optional[bool], typer.Option("--ema/--no-ema", help="Sample and infer with an EMA of the generator [default: on].")] = None,
    temporal_frames: Annotated[Optional[int], typer.Option(help=f"Frames per temporal-discriminator clip [default: {TrainConfig.temporal_frames}].")] = None,
    temporal_scales: Annotated[Optional[int], typer.Option(help="Time scales of the temporal discriminators [default: the preset's].")] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(help=f"constant | linear_decay [default: {TrainConfig.lr_schedule}]")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Train the subject's translator into a checkpoint (default ./SUBJECT.ckpt)."""
    run_stage("train", TrainConfig, config, debug, subject=subject, out=out, preset=preset, steps=steps,
              batch_size=batch_size, resume=resume, compile=compile, ema=ema, temporal_frames=temporal_frames,
              temporal_scales=temporal_scales, lr_schedule=lr_schedule, device=device)


@app.command()
def transfer(
    source: Annotated[str, typer.Argument(help="The video whose motion to transfer.")],
    checkpoint: Annotated[str, typer.Argument(help="The target's checkpoint from `reenact train`.")],
    out: Out = None,
    side_by_side: Annotated[Optional[bool], typer.Option("--side-by-side", help="Write source | proxy | result.")] = None,
    edit: Annotated[Optional[list[str]], typer.Option(
        "--edit", help="Face: NAME=+0.2 or NAME=-0.3 adds to an ARKit expression weight (repeatable).")] = None,
    paste_back: Annotated[Optional[bool], typer.Option(
        "--paste-back", help="Face: composite the generated head into the target's own footage.")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Make the target perform the source's motion (default ./SOURCE_as_TARGET.mp4, with the source's audio)."""
    run_stage("transfer", TransferConfig, config, debug, source=source, checkpoint=checkpoint, out=out,
              side_by_side=side_by_side, edit=tuple(edit) if edit else None, paste_back=paste_back, device=device)


@app.command("export-expressions")
def export_expressions(
    subject: Annotated[str, typer.Argument(help="A face subject folder written by `reenact track`.")],
    csv: Annotated[Optional[str], typer.Option("--csv", help="Write a CSV file, one row per frame.")] = None,
    json: Annotated[Optional[str], typer.Option("--json", help="Write a JSON file, one object per frame.")] = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Per-frame ARKit expression weights, head rotation (degrees), translation (cm) and gaze (degrees)."""
    run_stage("export_expressions", ExportConfig, config, debug, subject=subject, csv=csv, json=json)


@app.command("eval")
def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint from `reenact train`.")],
    subject: Annotated[Optional[str], typer.Option(help="The subject folder [default: the one it was trained on].")] = None,
    json: Annotated[Optional[str], typer.Option("--json", help="Also write the metrics to this file.")] = None,
    report: Annotated[Optional[str], typer.Option(help="Report folder [default: ./CHECKPOINT_STEM.eval/].")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Self-reenactment on the held-out frames: PSNR, SSIM, pose distance, flicker, against baselines."""
    run_stage("eval", EvalConfig, config, debug, checkpoint=checkpoint, subject=subject, json=json, report=report,
              device=device)


@app.command()
def batch(
    jobs: Annotated[str, typer.Argument(help="A TOML file of [[job]] entries: name, target, mode, preset, steps, sources.")],
    out: Annotated[str, typer.Option("--out", help="The folder that gets one folder per job.")],
    gpus: Annotated[Optional[str], typer.Option(help="Comma-separated GPU ids: one job per GPU in parallel.")] = None,
    job: Annotated[Optional[str], typer.Option(help="Run only the job of this name.")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Track, train and transfer many jobs; finished stages with unchanged inputs are skipped."""
    run_stage("batch", BatchConfig, config, debug, jobs=jobs, out=out, gpus=gpus, job=job, device=device)


bench = typer.Typer(no_args_is_help=True, help="Benchmarks that print what this machine does.")
app.add_typer(bench, name="bench")


@bench.command("train")
def bench_train(
    preset: Annotated[Optional[str], typer.Option(help=f"tiny | 256 | 512 [default: {BenchTrainConfig.preset}]")] = None,
    steps: Annotated[Optional[int], typer.Option(help=f"Timed steps per variant [default: {BenchTrainConfig.steps}]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="[default: the preset's]")] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile", help="Also time torch.compile (CUDA).")] = None,
    json: Annotated[Optional[str], typer.Option("--json", help="Also write the figures to this file.")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Training images/s, step time and peak memory of a preset on synthetic data (bf16 vs fp32 on CUDA)."""
    run_stage("bench_train", BenchTrainConfig, config, debug, preset=preset, steps=steps, batch_size=batch_size,
              compile=compile, json=json, device=device)


if __name__ == "__main__":
    app()
