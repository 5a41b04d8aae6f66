"""The `reenact` command line: thin Typer commands over the stage pipelines."""

from __future__ import annotations

import importlib
import signal
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from reenact.config import BatchConfig, BenchTrainConfig, EvalConfig, ExportConfig, LiveConfig, TrackConfig, TrainConfig
from reenact.config import TransferConfig
from reenact.config import WeightsConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Per-subject video reenactment: make a target person perform a source video's motion.")

Out = Annotated[Optional[str], typer.Option("--out", help="Where to write the result (see the command's help for the default).")]
Device = Annotated[Optional[str], typer.Option("--device", help=f"auto | cpu | cuda [default: {TrackConfig.device}]")]
ConfigFile = Annotated[Optional[str], typer.Option("--config", help="TOML file of settings; command-line options win.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
def show_version(value: bool) -> None:
    if value:
        from reenact import __version__

        typer.echo(f"reenact {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[Optional[bool], typer.Option(
        "--version", callback=show_version, is_eager=True, help="Print reenact's version and exit.")] = None) -> None:
    """Per-subject video reenactment: make a target person perform a source video's motion."""


Stabilise = Annotated[Optional[bool], typer.Option(
    "--stabilise/--no-stabilise", help="Blend each frame with the previous one along the proxies' motion: less "
                                       f"flicker, the previous frame held while the pose is still [default: {TransferConfig.stabilise}]")]


def stop_on_ctrl_c() -> None:
    """Make SIGINT raise KeyboardInterrupt even when this process started with it ignored.

    A non-interactive shell starts background jobs with SIGINT ignored, and Python then leaves it
    ignored: Ctrl-C or `kill -INT` would let a transfer run to the end and a training run neither
    stop nor save its checkpoint. The test suite failed this way when started as such a job."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_stage(module: str, config_class: type, toml: str | None, debug: bool, **options: Any) -> None:
    """Resolve the command's config and run its stage; errors become one line and exit code 1."""
    from reenact.errors import ReenactError
    from reenact.progress import console

    stop_on_ctrl_c()
    try:
        from reenact.config import resolve_config

        config = resolve_config(config_class, toml, options)
        importlib.import_module(f"pipelines.{module}").run(config)
    except ReenactError as error:
        if debug:
            raise
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    except OSError as error:
        if debug:
            raise
        where = error.filename or "a file"
        console.print(f"[red]error:[/] {escape(f'{where}: {error.strerror or error}')}", soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as error:
        if debug:
            raise
        console.print(f"[red]error:[/] unexpected {type(error).__name__}: {escape(str(error))} (run with --debug for the traceback)", soft_wrap=True)
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
    motion_only: Annotated[Optional[bool], typer.Option(
        "--motion-only", help="A driver: write only its motion file (tracks, no subject folder), which "
                              "transfer and eval then reuse instead of tracking it again.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        help="MediaPipe processes, each tracking a chunk of the clip; 0: one per core, as the clip's length allows "
             f"[default: {TrackConfig.workers}]")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Track a video into a subject folder (default ./VIDEO_STEM/): keypoints, crops, proxies, preview."""
    run_stage("track", TrackConfig, config, debug, video=video, out=out, mode=mode, resolution=resolution,
              face_landmarks=face_landmarks, motion_only=motion_only, workers=workers, device=device)


@app.command()
def train(
    subject: Annotated[str, typer.Argument(help="A subject folder written by `reenact track`.")],
    out: Out = None,
    preset: Annotated[Optional[str], typer.Option(
        help=f"auto | tiny | 128 | 256 | 512; auto is 128 on a CPU, 256 on a GPU [default: {TrainConfig.preset}]")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Total training steps [default: the preset's; none with --minutes].")] = None,
    minutes: Annotated[Optional[float], typer.Option(
        help="Stop after this much wall-clock time, setup included; the learning rate decays over it.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="[default: the preset's, larger on a GPU]")] = None,
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
    run_stage("train", TrainConfig, config, debug, subject=subject, out=out, preset=preset, steps=steps, minutes=minutes,
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
    stabilise: Stabilise = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Make the target perform the source's motion (default ./SOURCE_as_TARGET.mp4, with the source's audio)."""
    run_stage("transfer", TransferConfig, config, debug, source=source, checkpoint=checkpoint, out=out,
              side_by_side=side_by_side, edit=tuple(edit) if edit else None, paste_back=paste_back, stabilise=stabilise,
              device=device)


@app.command()
def live(
    checkpoint: Annotated[str, typer.Argument(help="The target's checkpoint from `reenact train`.")],
    input: Annotated[Optional[str], typer.Option(
        "--input", help="A camera (0, /dev/video0), a file (played in real time), a URL ffmpeg opens (rtsp://, udp://, "
                        f"http://…) or - for standard input [default: {LiveConfig.input}]")] = None,
    output: Annotated[Optional[list[str]], typer.Option(
        "--output", help="FILE.mp4, a stream URL (udp://127.0.0.1:PORT, rtmp://…) or virtualcam (pip install pyvirtualcam); "
                         "repeatable.")] = None,
    show: Annotated[Optional[bool], typer.Option("--show", help="Show the output in a window (q or Esc stops).")] = None,
    paste_back: Annotated[Optional[bool], typer.Option(
        "--paste-back", help="Face: composite the generated head into the target's own footage.")] = None,
    edit: Annotated[Optional[list[str]], typer.Option(
        "--edit", help="Face: NAME=+0.2 or NAME=-0.3 adds to an ARKit expression weight (repeatable).")] = None,
    lookahead: Annotated[Optional[str], typer.Option(
        help=f"hold (no delay: the window's future repeats the newest frame) | wait (hold each frame back for the "
             f"frames after it) [default: {LiveConfig.lookahead}]")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="Stop after this many input frames.")] = None,
    stats: Annotated[Optional[str], typer.Option(help="Also write the run's figures (fps, drops, latency) to this JSON file.")] = None,
    record: Annotated[Optional[str], typer.Option(
        help="Also write, per output frame, the input frame's number and the retargeted pose drawn (npz).")] = None,
    stabilise: Stabilise = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Drive the target live from a camera or a stream; Ctrl-C stops and finishes the outputs."""
    run_stage("live", LiveConfig, config, debug, checkpoint=checkpoint, input=input,
              output=tuple(output) if output else None, show=show, paste_back=paste_back,
              edit=tuple(edit) if edit else None, lookahead=lookahead, max_frames=max_frames, stats=stats, record=record,
              stabilise=stabilise, device=device)


@app.command("export-expressions")
def export_expressions(
    subject: Annotated[str, typer.Argument(help="A face subject folder written by `reenact track`.")],
    csv: Annotated[Optional[str], typer.Option("--csv", help="Write a CSV file, one row per frame.")] = None,
    json: Annotated[Optional[str], typer.Option("--json", help="Write a JSON file, one object per frame.")] = None,
    names: Annotated[Optional[str], typer.Option(
        help="model: the face model's 53 (eyeBlink_L); arkit: ARKit's 52 in ARKit's order (eyeBlinkLeft); "
             f"live_link: Live Link Face's CSV columns [default: {ExportConfig.names}]")] = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Per-frame expression weights (the model's 53, or ARKit's 52), head rotation (degrees), translation (cm) and gaze (degrees)."""
    run_stage("export_expressions", ExportConfig, config, debug, subject=subject, csv=csv, json=json, names=names)


@app.command("eval")
def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint from `reenact train`.")],
    subject: Annotated[Optional[str], typer.Option(help="The subject folder [default: the one it was trained on].")] = None,
    json: Annotated[Optional[str], typer.Option("--json", help="Also write the metrics to this file.")] = None,
    report: Annotated[Optional[str], typer.Option(help="Report folder [default: ./CHECKPOINT_STEM.eval/].")] = None,
    driver: Annotated[Optional[str], typer.Option(
        help="Also cross-reenact: another person's video drives the subject; how well the output follows it.")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Self-reenactment on the held-out frames: PSNR, SSIM, pose distance, flicker, against baselines."""
    run_stage("eval", EvalConfig, config, debug, checkpoint=checkpoint, subject=subject, json=json, report=report,
              driver=driver, device=device)


@app.command()
def batch(
    jobs: Annotated[str, typer.Argument(help="A TOML file of [[job]] entries: name, target, mode, preset, steps, checkpoint_every, sources.")],
    out: Annotated[str, typer.Option("--out", help="The folder that gets one folder per job.")],
    gpus: Annotated[Optional[str], typer.Option(help="Comma-separated GPU ids: one job per GPU in parallel.")] = None,
    job: Annotated[Optional[str], typer.Option(help="Run only the job of this name.")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Track, train and transfer many jobs; finished stages with unchanged inputs are skipped."""
    run_stage("batch", BatchConfig, config, debug, jobs=jobs, out=out, gpus=gpus, job=job, device=device)


weights = typer.Typer(help="Optional pretrained weights in torch's cache ($TORCH_HOME/hub/checkpoints/): "
                             "list them (the default) or fetch them.")
app.add_typer(weights, name="weights")


@weights.callback(invoke_without_command=True)
def weights_default(ctx: typer.Context) -> None:
    """Optional pretrained weights: `reenact weights` lists them, `reenact weights fetch NAME` downloads one."""
    if ctx.invoked_subcommand is None:
        run_stage("weights", WeightsConfig, None, False)


@weights.command("list")
def weights_list(debug: Debug = False) -> None:
    """Which weights are in torch's cache, whether their checksums match, and what each unlocks."""
    run_stage("weights", WeightsConfig, None, debug)


@weights.command("fetch")
def weights_fetch(
    names: Annotated[list[str], typer.Argument(help="vgg19 | lpips | 2dfan | all (several may be named).")],
    timeout: Annotated[Optional[float], typer.Option(
        help=f"Seconds to wait for the server before failing [default: {WeightsConfig.timeout:g}]")] = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Download weights into torch's cache, checked against their published sha256 (the only command that downloads)."""
    run_stage("weights", WeightsConfig, config, debug, fetch=tuple(names), timeout=timeout)


bench = typer.Typer(no_args_is_help=True, help="Benchmarks that print what this machine does.")
app.add_typer(bench, name="bench")


@bench.command("train")
def bench_train(
    preset: Annotated[Optional[str], typer.Option(help=f"tiny | 256 | 512 [default: {BenchTrainConfig.preset}]")] = None,
    steps: Annotated[Optional[int], typer.Option(help=f"Timed steps per variant [default: {BenchTrainConfig.steps}]")] = None,
    warmup: Annotated[Optional[int], typer.Option(help=f"Untimed steps before them [default: {BenchTrainConfig.warmup}]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="[default: the preset's; its GPU batch size on CUDA]")] = None,
    batch_sizes: Annotated[Optional[str], typer.Option(
        help="Also time the recommended variant (what `train` runs) at these batch sizes, e.g. 8,16,32.")] = None,
    variants: Annotated[Optional[str], typer.Option(
        help="Comma-separated: fp32, tf32, bf16, bf16_channels_last, compiled [default: all but compiled on CUDA, fp32 on CPU]")] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile", help="Also time the compiled variant.")] = None,
    perceptual_loss: Annotated[Optional[str], typer.Option(
        help="auto | vgg19 | random | none, as in train; vgg19 is timed with random weights where they are "
             f"not cached [default: {BenchTrainConfig.perceptual_loss}].")] = None,
    json: Annotated[Optional[str], typer.Option("--json", help="Also write the figures to this file.")] = None,
    device: Device = None,
    config: ConfigFile = None,
    debug: Debug = False,
) -> None:
    """Training step time, images/s, FLOPs, TFLOP/s, MFU, compile time and peak memory per precision and layout."""
    run_stage("bench_train", BenchTrainConfig, config, debug, preset=preset, steps=steps, warmup=warmup,
              batch_size=batch_size, batch_sizes=batch_sizes, variants=variants, compile=compile,
              perceptual_loss=perceptual_loss, json=json, device=device)


def whole_summaries(typer_app: typer.Typer) -> None:
    """Click cuts a command's summary in the command list to 45 characters and "..."; give it the
    whole first paragraph of the command's help instead, wrapped to the terminal."""
    for command in typer_app.registered_commands:
        command.short_help = command.short_help or (command.callback.__doc__ or "").strip().split("\n\n")[0]
    for group in typer_app.registered_groups:
        group.typer_instance.info.short_help = group.typer_instance.info.help
        whole_summaries(group.typer_instance)


whole_summaries(app)

if __name__ == "__main__":
    app()
