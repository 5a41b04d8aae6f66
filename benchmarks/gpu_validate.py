"""Validate reenact on a CUDA GPU with one command, in stages of under 10 minutes each.

    python benchmarks/gpu_validate.py [--budget quick|full] [--stage NAME]... [--videos DIR]
                                      [--out benchmarks/results_gpu.json] [--workdir DIR]

Stages (`--stage` runs only those named, in the order given; `--list` prints them):
  paths[_compiled] every CUDA path of the training step alone and all combined, one step at 256:
                   finite losses, and step-0 losses within 5 % of true fp32; compiled ones apart
  bench_256/512    `reenact bench train`: images/s, FLOPs, TFLOP/s, MFU, peak memory per precision
                   and layout, and a batch-size sweep
  bench_*_compiled the compiled variant beside the eager one: compile seconds, recompiles, speedup
  torchrun[_compile]  `torchrun --nproc_per_node=1 reenact train` (NCCL) for half the steps with a
                   checkpoint, then `--resume` to 40; the second also with `--compile`
  memory_256/512   host and GPU peak memory of `reenact train` on a 9,000-frame synthetic subject
  track_/train_/eval_body|face  `reenact track` a clip at 256, `reenact train --preset 256` for a
                   fixed time (10 minutes in full, in two stages that `--resume`), `reenact eval`
  transfer         `reenact transfer` end to end, and the generator alone at batch 1 per precision

`--budget quick` (the default) runs paths, bench_256, a 2-minute train and eval on the body clip,
and transfer: under 8 minutes on an H100. `--budget full` runs everything: about 45 minutes. The
budget also sets each stage's size, so name it with `--stage` too (`--budget full --stage
train_body` twice trains the full 10 minutes). Each finished stage is merged into the JSON at
once, so a run cut short keeps what it finished; subjects and checkpoints stay in --workdir for
later stages. The markdown table of everything recorded is printed at the end and written beside
the JSON. Without a CUDA device it prints one line and exits 0. The exit code is 1 when a stage
failed or one of its checks did not hold.

`--allow-cpu` (not in --help) runs the stages on the CPU at the tiny preset on a few frames, to
test this script where there is no GPU; its results go to --workdir unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reenact.files import strict_json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

NO_GPU = "no CUDA device: nothing to validate (run this on a GPU machine)"
BF16 = torch.bfloat16
LOSS_TOLERANCE = 0.05            # step-0 losses of each path against true fp32
COMPARED_LOSSES = ("d_image", "d_temporal", "g_l1", "g_perceptual", "face_d")   # computed before any update
# Runs one reenact command in a child process, then prints its peak host and GPU memory.
RUNNER = """
import json, resource, sys
sys.path.insert(0, {repo!r})
from cli import app
code = 1
try:
    code = app(sys.argv[1:], standalone_mode=False) or 0
finally:
    peaks = {{"host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
    import torch
    if torch.cuda.is_initialized():
        peaks["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        peaks["gpu_peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    print("PEAKS " + json.dumps(peaks), flush=True)
sys.exit(code if isinstance(code, int) else 0)
""".format(repo=str(REPO))
FIGURES = {  # name: the command that writes it, and how to read it from the JSON that command writes (figures_file)
    "it_per_s": ("train", lambda summary: summary.get("it_per_s")),
    "generated_fps": ("transfer", lambda written: written.get("generation_fps")),
    "frames": ("transfer", lambda written: written.get("frames")),
    "interrupted_at": ("train", lambda summary: summary.get("step") if summary.get("stopped") == "interrupted" else None),
}


@dataclass(frozen=True)
class Profile:
    device: str
    presets: dict[str, str]              # the stage's name for a preset → the preset it runs
    stages: tuple[str, ...]
    bench_steps: int = 10
    bench_warmup: int = 3
    batch_sizes: dict[str, str] = field(default_factory=lambda: {"256": "8,16,32", "512": "4,8,16"})
    compile: bool = False                # the CLI's compiled runs: `bench train --compile`, `train --compile`
    compile_backend: str | None = None   # compiled paths and generator in this process (None: none)
    perceptual_loss: str = "vgg19"       # in `bench train` (random weights where VGG19's are not cached)
    paths_batch: int = 2
    torchrun_steps: int = 40
    synthetic_frames: int = 64           # the small synthetic subject of torchrun and transfer
    memory_frames: int = 9000
    memory_steps: int = 3
    generator_frames: int = 200
    quality_seconds: float = 120.0       # training time per clip
    slice_seconds: float = 540.0         # at most this much of it per train_ stage; the next one resumes
    quality_steps: int | None = None     # a fixed step count instead of a time


# transfer comes after the body clip's training, whose checkpoint it then uses.
QUICK = ("paths", "bench_256", "track_body", "train_body", "eval_body", "transfer")
FULL = ("paths", "paths_compiled", "bench_256", "bench_512", "bench_256_compiled", "bench_512_compiled",
        "torchrun", "torchrun_compile", "memory_256", "memory_512", "track_body", "train_body", "train_body", "eval_body",
        "transfer", "track_face", "train_face", "train_face", "eval_face")
GPU_PRESETS = {"256": "256", "512": "512"}
PROFILES = {
    "quick": Profile("cuda", GPU_PRESETS, QUICK),
    "full": Profile("cuda", GPU_PRESETS, FULL, bench_steps=20, compile=True, compile_backend="inductor",
                    quality_seconds=600.0, slice_seconds=360.0),
    # --allow-cpu: every stage but the face clip's at the tiny preset on a few frames, to prove the
    # script, not to measure. Inductor takes many minutes on a small CPU, so in-process compiling uses
    # aot_eager (tracing, no code generation) and the CLI's compiled runs are skipped.
    "cpu": Profile("cpu", {"256": "tiny", "512": "tiny"}, tuple(s for s in FULL if not s.endswith("_face")),
                   bench_steps=1, bench_warmup=1, batch_sizes={"256": "2", "512": "2"}, compile_backend="aot_eager",
                   perceptual_loss="none", torchrun_steps=4, synthetic_frames=30, memory_frames=30, memory_steps=1,
                   generator_frames=3, quality_steps=2),
}
# Clips for the quality stages, (in --videos, else): the first that is there. The shipped example stands
# in for the body; the CPU smoke run takes the shortest clips.
CLIPS = {"body": ("body/hybrik_taiji.mp4", REPO / "examples" / "taiji_target.mp4"),
         "face": ("face/liveportrait_d6.mp4", None)}
SMOKE_CLIPS = {"body": (None, REPO / "examples" / "taiji_source.mp4"), "face": ("face/tpsmm_driving.mp4", None)}
TRANSFER_SOURCE = REPO / "examples" / "taiji_source.mp4"


@dataclass
class Context:
    profile: Profile
    device: str
    workdir: Path
    videos: Path
    out: Path
    results: dict

    def preset(self, name: str) -> str:
        return self.profile.presets[name]


class Skipped(Exception):
    """A stage that cannot run here (a clip that is absent); not a failure."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(STAGES))
        return 0
    # 1. A GPU, or a CPU smoke run that was asked for.
    if not torch.cuda.is_available() and not args.allow_cpu:
        print(NO_GPU)
        return 0
    # 2. The profile, the stages, and where things go.
    profile = PROFILES[args.budget if torch.cuda.is_available() else "cpu"]
    stages = args.stage or list(profile.stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"unknown stage {unknown[0]} (valid: {', '.join(STAGES)})", file=sys.stderr)
        return 2
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # A CPU smoke run's figures must not pass for a GPU's.
    out = Path(args.out or (REPO / "benchmarks" / "results_gpu.json" if profile.device == "cuda" else workdir / "results_cpu.json"))
    context = Context(profile, profile.device, workdir, Path(args.videos).resolve(), out, load_results(out))
    context.results["environment"] = environment()
    # 3. Each stage in turn, its result merged into the JSON as soon as it ends.
    failed = [name for name in stages if not run_stage(name, context)]
    # 4. The table of everything recorded so far.
    table = markdown(context.results)
    print(table)
    context.out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {context.out} and {context.out.with_suffix('.md')}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("`--allow-cpu`")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=("quick", "full"), default="quick")
    parser.add_argument("--stage", action="append", help="run only this stage (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the stage names")
    parser.add_argument("--videos", default=str(REPO.parent / "shared" / "videos"), help="folder with body/ and face/ clips")
    parser.add_argument("--out", help="the results JSON [default: benchmarks/results_gpu.json]")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "reenact-gpu-validate"),
                        help="subjects, checkpoints and logs; kept between runs, so stages can resume")
    parser.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_stage(name: str, context: Context) -> bool:
    """Run one stage and merge its result; False when it failed or a check did not hold."""
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
        result = STAGES[name](context)
    except Skipped as reason:
        result = {"skipped": str(reason)}
        print(f"   skipped: {reason}")
    except Exception as error:   # one stage's failure must not lose the others' results
        result = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
        print(f"   failed: {result['error']}")
    result |= {"seconds": round(time.perf_counter() - start, 1), "device": context.results["environment"]["device"],
               "finished_at": datetime.datetime.now().isoformat(timespec="seconds")}
    context.results.setdefault("stages", {})[name] = result
    save_results(context.out, context.results)
    ok = "error" not in result and result.get("ok", True)
    print(f"   {'ok' if ok else 'NOT OK'} in {result['seconds']} s")
    return ok


def environment() -> dict:
    cuda = torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name() if cuda else f"cpu ({os.cpu_count()} cores)", "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None, "python": sys.version.split()[0]}


def load_results(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"schema": "reenact.gpu_validate", "stages": {}}


def save_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(strict_json(results, indent=2, default=str) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- running the CLI

@dataclass
class Finished:
    returncode: int
    output: str              # stdout and stderr, whitespace collapsed
    seconds: float
    peaks: dict
    figures: dict


def run_cli(context: Context, *args, stop_after: float = 570.0, runner: bool = True, log: str = "command",
            torchrun: bool = False) -> Finished:
    """Run `reenact ARGS` (under torchrun, or in RUNNER to read its peak memory). After ``stop_after``
    seconds it gets SIGTERM, which `train` answers by saving a checkpoint; SIGKILL follows 120 s later."""
    bin_dir = Path(sys.executable).parent
    # A GPU machine handed a copy of the repo rather than a pip install has no `reenact` script.
    reenact = [str(bin_dir / "reenact")] if (bin_dir / "reenact").is_file() else [sys.executable, str(REPO / "cli.py")]
    if torchrun:
        command = [str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node=1", "--no-python", *reenact]
    else:
        command = [sys.executable, "-c", RUNNER] if runner else reenact
    command += [str(a) for a in args]
    print(f"   $ {'torchrun --nproc_per_node=1 … ' * torchrun}reenact {' '.join(str(a) for a in args)}", flush=True)
    start, started_at = time.perf_counter(), time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=context.workdir,
                               env={**os.environ, "COLUMNS": "200"}, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=stop_after)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    seconds = time.perf_counter() - start
    logs = context.workdir / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{log}.log").write_text(output)
    peaks = next((json.loads(line[6:]) for line in output.splitlines() if line.startswith("PEAKS ")), {})
    flat = " ".join(output.split())
    figures = read_figures([str(a) for a in args], context.workdir, started_at)
    print(f"     exit {process.returncode} after {seconds:.1f} s", flush=True)
    return Finished(process.returncode, flat, seconds, {k: round(v, 1) for k, v in peaks.items()}, figures)


def read_figures(args: list[str], cwd: Path, since: float) -> dict:
    """The FIGURES of `reenact ARGS` run in ``cwd``, from the JSON file it wrote (where run_all's
    figures_file says); left out when that file is absent, was not written since ``since`` (a
    time.time(): an earlier run's), or lacks the figure."""
    from benchmarks.run_all import figures_file, written_json

    written = written_json(figures_file(args, cwd), since)
    if written is None:
        return {}
    values = {key: read(written) for key, (command, read) in FIGURES.items() if command == args[0]}
    return {key: float(value) for key, value in values.items() if value is not None}


def require(finished: Finished, what: str) -> None:
    if finished.returncode != 0:
        raise RuntimeError(f"{what} exited {finished.returncode}: …{finished.output[-600:]}")


# ---------------------------------------------------------------- stage: paths

@dataclass(frozen=True)
class CudaPath:
    acceleration: "Acceleration"
    tf32: bool = False
    checkpointing: bool = False


def cuda_paths(backend: str) -> dict[str, CudaPath]:
    from reenact.training import Acceleration

    paths = {
        "fp32": CudaPath(Acceleration()),
        "tf32": CudaPath(Acceleration(), tf32=True),
        "bf16": CudaPath(Acceleration(autocast_dtype=BF16)),
        "channels_last": CudaPath(Acceleration(channels_last=True)),
        "fused_adam": CudaPath(Acceleration(fused_adam=True)),
        "gradient_checkpointing": CudaPath(Acceleration(), checkpointing=True),
        "compile": CudaPath(Acceleration(compile_backend=backend)),
        "combined": CudaPath(Acceleration(BF16, channels_last=True, fused_adam=True), tf32=True, checkpointing=True),
        "combined_compiled": CudaPath(Acceleration(BF16, channels_last=True, fused_adam=True, compile_backend=backend),
                                      tf32=True, checkpointing=True),
    }
    # Without a backend the compiled paths would run eager under a compiled path's name.
    return {name: path for name, path in paths.items() if backend or "compile" not in name}


def stage_paths(context: Context, compiled: bool = False) -> dict:
    """One training step per path from the same weights and batch, against true fp32; the compiled
    paths are a stage of their own, since compiling takes minutes."""
    from pipelines.bench_train import make_setup
    from reenact.config import BenchTrainConfig
    from reenact.presets import get_preset

    backend = context.profile.compile_backend
    if compiled and not backend:
        raise Skipped("compiling is not part of this budget (--budget full)")
    preset = context.preset("256")
    setup = make_setup(get_preset(preset), torch.device(context.device), BenchTrainConfig(preset=preset))
    paths = {name: path for name, path in cuda_paths(backend).items()
             if name == "fp32" or (path.acceleration.compile_backend is not None) == compiled}
    results = {name: one_step(path, setup, context.profile.paths_batch) for name, path in paths.items()}
    reference = results["fp32"]["losses"]
    for result in results.values():
        differences = {k: abs(result["losses"][k] - reference[k]) / max(abs(reference[k]), 1e-8)
                       for k in COMPARED_LOSSES if k in reference}
        result["max_relative_difference"] = round(max(differences.values()), 5)
        result["ok"] = result["finite"] and result["max_relative_difference"] <= LOSS_TOLERANCE
    print("   " + ", ".join(f"{n}: {'ok' if r['ok'] else 'NOT OK'} ({r['max_relative_difference']:.2%})"
                            for n, r in results.items()))
    return {"preset": preset, "batch_size": context.profile.paths_batch, "tolerance": LOSS_TOLERANCE, "paths": results,
            "ok": all(r["ok"] for r in results.values())}


def one_step(path: CudaPath, setup, batch_size: int) -> dict:
    from pipelines.bench_train import free_memory, synchronize, tf32
    from reenact.presets import scaled_learning_rate
    from reenact.training import build_networks, train_step

    device = setup.device
    config = replace(setup.config, batch_size=batch_size, learning_rate=scaled_learning_rate(batch_size),
                     gradient_checkpointing=path.checkpointing)
    with tf32(path.tf32 and device.type == "cuda"):
        if path.acceleration.compile_backend:
            torch._dynamo.reset()
        torch.manual_seed(0)
        networks = build_networks(setup.arguments, setup.perceptual(), config, device, acceleration=path.acceleration)
        batch = setup.clip.training_batch(torch.Generator(device=device).manual_seed(0), batch_size)
        start = time.perf_counter()
        losses = {k: float(v) for k, v in train_step(networks, batch, config).items()}
        synchronize(device)
        seconds = time.perf_counter() - start
    del networks
    free_memory(device)
    return {"losses": losses, "finite": all(math.isfinite(v) for v in losses.values()), "step_s": round(seconds, 2)}


# ---------------------------------------------------------------- stage: bench

def stage_bench(context: Context, size: str, compiled: bool = False) -> dict:
    """`bench train`'s eager variants and a batch sweep; or, on its own for time, the compiled variant
    beside the eager one it compiles."""
    preset, profile = context.preset(size), context.profile
    if compiled and not profile.compile:
        raise Skipped("compiling with inductor is not part of this budget (--budget full)")
    json_path = context.workdir / f"bench_{size}{'_compiled' * compiled}.json"
    args = ["bench", "train", "--preset", preset, "--steps", profile.bench_steps, "--warmup", profile.bench_warmup,
            "--json", json_path, "--device", context.device, "--perceptual-loss", profile.perceptual_loss]
    args += ["--variants", "bf16,compiled"] if compiled else ["--batch-sizes", profile.batch_sizes[size]]
    require(run_cli(context, *args, runner=False, log=json_path.stem), "bench train")
    rows = json.loads(json_path.read_text())
    return {"preset": preset, "rows": rows, "compile": compile_summary(rows)}


def compile_summary(rows: list[dict]) -> dict | None:
    """The compiled variant against the eager one it compiles, at the same batch size."""
    compiled = next((r for r in rows if r["variant"] == "compiled" and "error" not in r), None)
    eager = next((r for r in rows if compiled and r["variant"] == "bf16"
                  and r["batch_size"] == compiled["batch_size"] and "error" not in r), None)
    if not compiled or not eager:
        return None
    return {"first_step_s": compiled["first_step_s"], "compile_s": compiled["compile_s"],
            "recompiles": compiled["recompiles"], "eager_first_step_s": eager["first_step_s"],
            "steady_speedup": round(compiled["images_per_s"] / eager["images_per_s"], 3)}


# ---------------------------------------------------------------- synthetic subjects

def write_synthetic_subject(folder: Path, frame_count: int, resolution: int) -> Path:
    """A body subject folder laid out as `reenact track` writes it (docs/overview.md), with random
    frames and proxies and a person and a head in every frame: what `train` and `transfer` read."""
    import reenact
    from reenact import subject as files
    from reenact.body.layout import KEYPOINT_NAMES
    from reenact.config import TrackConfig, config_dict

    if synthetic_subject_size(folder) == (frame_count, resolution):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng, side = np.random.default_rng(0), 640           # source pixels; the crop is the whole frame
    keypoints = np.concatenate([rng.uniform(0.3 * side, 0.7 * side, (frame_count, len(KEYPOINT_NAMES), 2)),
                                np.ones((frame_count, len(KEYPOINT_NAMES), 1))], axis=2).astype(np.float32)
    files.save_tracks(folder / files.TRACKS, valid=np.ones(frame_count, bool), keypoints=keypoints,
                      keypoint_names=np.array(KEYPOINT_NAMES), fps=np.float64(30))
    # A few distinct random images, repeated: writing 9,000 fresh ones would cost minutes and change nothing.
    for name in files.IMAGE_FILES[1]:
        images = files.open_images_v1(folder / name, frame_count, resolution, 3)
        block = rng.integers(0, 256, (64, resolution, resolution, 3), np.uint8)
        for start in range(0, frame_count, len(block)):
            images[start:start + len(block)] = block[:frame_count - start]
        images.flush()
        del images
    ground = {"far_y": 0.8 * side, "near_y": 0.9 * side, "far_height": 0.5 * side, "near_height": 0.55 * side,
              "center_x": 0.5 * side}
    track = TrackConfig(video=str(folder / "synthetic.mp4"), mode="body", resolution=resolution)
    meta = {"schema": files.SCHEMA, "schema_version": 1, "mode": "body", "fps": 30.0,
            "fps_fraction": "30/1", "frame_count": frame_count, "valid_fraction": 1.0,
            "source": {"path": track.video, "sha256": "synthetic", "width": side, "height": side, "rotation": 0,
                       "has_audio": False, "duration": frame_count / 30},
            "crop": {"x": 0, "y": 0, "size": side}, "resolution": resolution,
            "tools": {"reenact": reenact.__version__, "synthetic": "benchmarks/gpu_validate.py"},
            "config": config_dict(track), "reuse_key": "synthetic", "ground": {"ankles": ground, "hips": ground}}
    (folder / files.SUBJECT_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def synthetic_subject_size(folder: Path) -> tuple[int, int] | None:
    """(frames, resolution) of a synthetic subject already written, so a rerun reuses it."""
    try:
        meta = json.loads((folder / "subject.json").read_text())
        return int(meta["frame_count"]), int(meta["resolution"])
    except (OSError, ValueError, KeyError):
        return None


def small_subject(context: Context) -> Path:
    from reenact.presets import get_preset

    resolution = get_preset(context.preset("256")).resolution
    return write_synthetic_subject(context.workdir / f"synthetic_{resolution}", context.profile.synthetic_frames, resolution)


# ---------------------------------------------------------------- stage: torchrun

def stage_torchrun(context: Context, compile: bool) -> dict:
    """Half the steps with a checkpoint on the way, then --resume to the total, under torchrun."""
    if compile and not context.profile.compile:
        raise Skipped("`train --compile` is not part of this budget (--budget full)")
    subject, preset, total = small_subject(context), context.preset("256"), context.profile.torchrun_steps
    out = context.workdir / f"torchrun{'_compile' * compile}.ckpt"
    out.unlink(missing_ok=True)
    settings = context.workdir / "torchrun.toml"
    settings.write_text(f"checkpoint_every = {max(1, total // 4)}\nsample_every = {total // 2}\n")
    args = ["train", subject, "--preset", preset, "--out", out, "--config", settings, "--device", context.device]
    args += ["--compile"] * compile
    runs = {}
    for name, steps, extra in (("first", total // 2, []), ("resumed", total, ["--resume"])):
        finished = run_cli(context, *args, "--steps", steps, *extra, torchrun=True, log=f"torchrun_{name}{'_compile' * compile}")
        require(finished, f"torchrun reenact train ({name})")
        state = torch.load(out, map_location="cpu", weights_only=True)
        runs[name] = {"steps": int(state["step"]), "world_size": int(state["world_size"]), "seconds": round(finished.seconds, 1),
                      "it_per_s": finished.figures.get("it_per_s"), "validation": state["validation"],
                      "recompiled": "compiled after the first step" in finished.output if compile else None}
    ok = (runs["first"]["steps"] == total // 2 and runs["resumed"]["steps"] == total and runs["resumed"]["world_size"] == 1
          and all(math.isfinite(r["validation"]["l1"]) for r in runs.values()))
    return {"preset": preset, "backend": "nccl" if context.device == "cuda" else "gloo", "compile": compile, "runs": runs, "ok": ok}


# ---------------------------------------------------------------- stage: memory

def stage_memory(context: Context, size: str) -> dict:
    """Peaks of `train` holding a long clip: frames and proxies live on the device as uint8."""
    from reenact.presets import get_preset

    preset = context.preset(size)
    resolution, frames = get_preset(preset).resolution, context.profile.memory_frames
    free_gb = shutil.disk_usage(context.workdir).free / 2**30
    needed_gb = 2 * frames * resolution**2 * 3 / 2**30
    if needed_gb > 0.8 * free_gb:
        raise Skipped(f"a {frames}-frame subject at {resolution} px needs {needed_gb:.1f} GB; {free_gb:.1f} GB free")
    folder = context.workdir / f"memory_{resolution}"
    start = time.perf_counter()
    write_synthetic_subject(folder, frames, resolution)
    written = time.perf_counter() - start
    try:
        finished = run_cli(context, "train", folder, "--preset", preset, "--steps", context.profile.memory_steps,
                           "--out", context.workdir / f"memory_{resolution}.ckpt", "--device", context.device, log=f"memory_{size}")
        require(finished, "reenact train")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"preset": preset, "frames": frames, "resolution": resolution, "clip_gb": round(needed_gb, 2),
            "subject_written_s": round(written, 1), "train_s": round(finished.seconds, 1), **finished.peaks}


# ---------------------------------------------------------------- stage: transfer

def stage_transfer(context: Context) -> dict:
    """The CLI end to end on the shipped source clip, then the generator alone at batch 1: with the body
    clip's checkpoint when there is one (the shipped clips are that scene), else two steps' worth."""
    checkpoint = quality_paths(context, "body")[1]
    if not checkpoint.is_file():
        checkpoint = context.workdir / f"transfer_{context.preset('256')}.ckpt"
    if not checkpoint.is_file():
        require(run_cli(context, "train", small_subject(context), "--preset", context.preset("256"), "--steps", 2,
                        "--out", checkpoint, "--device", context.device, log="transfer_train"), "reenact train")
    finished = run_cli(context, "transfer", TRANSFER_SOURCE, checkpoint, "--out", context.workdir / "transfer.mp4",
                       "--device", context.device, log="transfer")
    require(finished, "reenact transfer")
    frames = int(finished.figures["frames"])
    return {"source": TRANSFER_SOURCE.name, "checkpoint": checkpoint.name, "frames": frames,
            "end_to_end_fps": round(frames / finished.seconds, 2),
            "generated_fps": finished.figures.get("generated_fps"), "wall_s": round(finished.seconds, 1), **finished.peaks,
            "generator_only_fps": generator_speed(context, checkpoint)}


def generator_speed(context: Context, checkpoint: Path) -> dict:
    """Frames/s of the generator alone, each frame fed the previous output as transfer does."""
    from pipelines.bench_train import VARIANTS, free_memory, synchronize, tf32
    from reenact.training import autocast
    from reenact.translator import build_generator

    device = torch.device(context.device)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    speeds = {}
    for name in ("fp32", "tf32", "bf16", "compiled"):
        variant, backend = VARIANTS[name], context.profile.compile_backend
        if (variant.cuda_only and device.type != "cuda") or (variant.acceleration.compile_backend and not backend):
            continue
        acceleration = replace(variant.acceleration, compile_backend=backend) if variant.acceleration.compile_backend \
            else variant.acceleration
        generator = build_generator(state["model"]).to(device).eval()
        if acceleration.channels_last:
            generator = generator.to(memory_format=torch.channels_last)
        if acceleration.compile_backend:
            torch._dynamo.reset()
            generator = torch.compile(generator, backend=acceleration.compile_backend)
        channels = state["model"]["generator"]["in_channels"] - 3
        proxies = torch.rand(1, channels, state["resolution"], state["resolution"], device=device) * 2 - 1
        with torch.no_grad(), tf32(variant.tf32 and device.type == "cuda"), autocast(acceleration, device):
            frame = lambda previous: generator(torch.cat([proxies, previous], 1))
            previous = frame(torch.zeros(1, 3, *proxies.shape[-2:], device=device))   # compiles, autotunes
            synchronize(device)
            start = time.perf_counter()
            for _ in range(context.profile.generator_frames):
                previous = frame(previous)
            synchronize(device)
        speeds[name] = round(context.profile.generator_frames / (time.perf_counter() - start), 1)
        del generator
        free_memory(device)
    return speeds


# ---------------------------------------------------------------- stages: track, train, eval

def clip_path(context: Context, clip: str) -> Path:
    relative, fallback = (SMOKE_CLIPS if context.device == "cpu" else CLIPS)[clip]
    for candidate in (relative and context.videos / relative, fallback):
        if candidate and candidate.is_file():
            return candidate
    raise Skipped(f"{context.videos / relative} is not here (pass --videos DIR)")


def quality_paths(context: Context, clip: str) -> tuple[Path, Path]:
    preset = context.preset("256")
    return context.workdir / f"quality_{clip}_{preset}", context.workdir / f"quality_{clip}_{preset}.ckpt"


def stage_track(context: Context, clip: str) -> dict:
    from reenact.presets import get_preset

    video, (subject, _) = clip_path(context, clip), quality_paths(context, clip)
    resolution = get_preset(context.preset("256")).resolution
    finished = run_cli(context, "track", video, "--mode", clip, "--resolution", resolution, "--out", subject,
                       "--device", context.device, log=f"track_{clip}")
    require(finished, "reenact track")
    return {"video": str(video), "resolution": resolution, "wall_s": round(finished.seconds, 1), **finished.peaks}


def stage_train(context: Context, clip: str) -> dict:
    """Train for the profile's time: the step count comes from the measured step rate, so the
    learning-rate schedule runs its whole course; a stage trains at most slice_seconds, the next resumes."""
    from reenact.models import load_vgg19_features_state, perceptual_kind

    subject, checkpoint = quality_paths(context, clip)
    if not (subject / "subject.json").is_file():
        raise Skipped(f"{subject} is not there: run track_{clip} first")
    previous = context.results.get("stages", {}).get(f"train_{clip}", {})
    same = checkpoint.is_file() and previous.get("target_s") == context.profile.quality_seconds
    if same and previous.get("finished"):
        return previous          # done in an earlier stage
    resume = same and previous.get("finished") is False
    perceptual = perceptual_kind("auto", load_vgg19_features_state()[0] is not None)
    steps = previous.get("steps_total") if resume else context.profile.quality_steps or calibrated_steps(context)
    finished = run_cli(context, "train", subject, "--preset", context.preset("256"), "--steps", steps, "--out", checkpoint,
                       "--device", context.device, *["--resume"] * resume, stop_after=context.profile.slice_seconds,
                       log=f"train_{clip}")
    done = finished.returncode == 0
    if not done and "interrupted_at" not in finished.figures:
        require(finished, "reenact train")
    trained = (previous.get("trained_s", 0.0) if resume else 0.0) + finished.seconds
    return {"preset": context.preset("256"), "target_s": context.profile.quality_seconds, "steps_total": steps, "finished": done,
            "steps_done": steps if done else int(finished.figures["interrupted_at"]), "trained_s": round(trained, 1),
            "perceptual_loss": perceptual, **finished.peaks}


def calibrated_steps(context: Context) -> int:
    """Steps that fill quality_seconds at the rate `bench train` measures for what `train` will run."""
    from pipelines.bench_train import RECOMMENDED

    json_path = context.workdir / "calibration.json"
    require(run_cli(context, "bench", "train", "--preset", context.preset("256"), "--variants",
                    RECOMMENDED[context.device], "--steps", 5, "--warmup", 2, "--json", json_path,
                    "--device", context.device, "--perceptual-loss", "auto",
                    runner=False, log="calibration"), "bench train")
    rate = json.loads(json_path.read_text())[0]["it_per_s"]
    return max(10, int(rate * context.profile.quality_seconds))


def stage_eval(context: Context, clip: str) -> dict:
    subject, checkpoint = quality_paths(context, clip)
    if not checkpoint.is_file():
        raise Skipped(f"{checkpoint} is not there: run train_{clip} first")
    json_path = context.workdir / f"eval_{clip}.json"
    finished = run_cli(context, "eval", checkpoint, "--subject", subject, "--json", json_path,
                       "--report", context.workdir / f"eval_{clip}", "--device", context.device, log=f"eval_{clip}")
    require(finished, "reenact eval")
    metrics = json.loads(json_path.read_text())
    trained = context.results.get("stages", {}).get(f"train_{clip}", {})
    return {"checkpoint_step": metrics["checkpoint_step"], "trained_s": trained.get("trained_s"),
            "held_out_frames": metrics["held_out_frames"], "systems": metrics["systems"], "real": metrics["real"]}


STAGES: dict[str, Callable[[Context], dict]] = {
    "paths": stage_paths,
    "paths_compiled": partial(stage_paths, compiled=True),
    "bench_256": partial(stage_bench, size="256"),
    "bench_512": partial(stage_bench, size="512"),
    "bench_256_compiled": partial(stage_bench, size="256", compiled=True),
    "bench_512_compiled": partial(stage_bench, size="512", compiled=True),
    "torchrun": partial(stage_torchrun, compile=False),
    "torchrun_compile": partial(stage_torchrun, compile=True),
    "memory_256": partial(stage_memory, size="256"),
    "memory_512": partial(stage_memory, size="512"),
    "transfer": stage_transfer,
    **{f"{step}_{clip}": partial(function, clip=clip) for clip in CLIPS
       for step, function in (("track", stage_track), ("train", stage_train), ("eval", stage_eval))},
}


# ---------------------------------------------------------------- the table

def markdown(results: dict) -> str:
    stages = results.get("stages", {})
    environment = results.get("environment", {})
    lines = [f"GPU validation on {environment.get('device')} (torch {environment.get('torch')}, CUDA {environment.get('cuda')})", ""]
    for prefix, table in TABLES.items():
        found = {name: stage for name, stage in stages.items() if name.startswith(prefix) and "error" not in stage
                 and "skipped" not in stage}
        if found:
            lines += table(found) + [""]
    problems = [f"- {name}: {stage.get('error') or stage.get('skipped')}" for name, stage in stages.items()
                if "error" in stage or "skipped" in stage]
    return "\n".join(lines + (["Not measured:"] + problems if problems else []))


def cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def rows(header: tuple[str, ...], body: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(cell, r)) + " |" for r in body]


def paths_table(found: dict) -> list[str]:
    body = [[n, r["finite"], f"{r['max_relative_difference']:.2%}", r["ok"], r["step_s"]]
            for name, stage in found.items() for n, r in stage["paths"].items()
            if n != "fp32" or name == "paths"]      # each stage's reference; one row is enough
    return rows(("path (one step)", "finite", "step-0 losses vs fp32, max rel. diff", f"within {LOSS_TOLERANCE:.0%}",
                 "step s"), body)


def bench_table(found: dict) -> list[str]:
    header = ("preset", "variant", "batch", "images/s", "step ms", "TFLOP/step", "TFLOP/s", "MFU", "peak alloc MB",
              "reserved MB", "first step s", "compile s", "recompiles")
    body = [[stage["preset"], r["variant"], r["batch_size"], r.get("images_per_s", r.get("error")), r.get("step_ms"),
             r["flops_per_step"] / 1e12 if r.get("flops_per_step") else None, r.get("tflops_per_s"),
             f"{r['mfu']:.1%}" if r.get("mfu") is not None else None, r.get("peak_allocated_mb"), r.get("peak_reserved_mb"),
             r.get("first_step_s"), r.get("compile_s"), r.get("recompiles")]
            for stage in found.values() for r in stage["rows"]]
    compiled = [[s["preset"], c["compile_s"], c["recompiles"], c["steady_speedup"]]
                for s in found.values() if (c := s.get("compile"))]
    return rows(header, body) + ([""] + rows(("preset", "compile s", "recompiles after step 1", "steady speedup vs eager"),
                                              compiled) if compiled else [])


def torchrun_table(found: dict) -> list[str]:
    return rows(("torchrun, 1 process", "backend", "steps", "resumed to", "world size", "it/s after resume", "ok"),
                [[name, s["backend"], s["runs"]["first"]["steps"], s["runs"]["resumed"]["steps"],
                  s["runs"]["resumed"]["world_size"], s["runs"]["resumed"]["it_per_s"], s["ok"]] for name, s in found.items()])


def memory_table(found: dict) -> list[str]:
    return rows(("train on a synthetic subject", "frames", "clip GB (frames + proxies)", "host peak RSS MB",
                 "GPU peak allocated MB", "GPU peak reserved MB"),
                [[f"{s['resolution']} px", s["frames"], s["clip_gb"], s.get("host_peak_rss_mb"), s.get("gpu_peak_allocated_mb"),
                  s.get("gpu_peak_reserved_mb")] for s in found.values()])


def transfer_table(found: dict) -> list[str]:
    stage = found["transfer"]
    speeds = stage["generator_only_fps"]
    return rows(("transfer", "end to end frames/s", "generated frames/s (after tracking)",
                 *[f"generator only, {n}, frames/s" for n in speeds]),
                [[stage["source"], stage["end_to_end_fps"], stage["generated_fps"], *speeds.values()]])


def quality_table(found: dict) -> list[str]:
    body = []
    for name, stage in found.items():
        for system in ("model", "nearest_neighbour"):
            m = stage["systems"][system]
            body.append([name.removeprefix("eval_"), system, stage["checkpoint_step"], stage["trained_s"], m["psnr"],
                         m["ssim"], m["psnr_masked"], m["pose_distance"], m["flicker"]])
    return rows(("clip", "system", "steps", "train s", "PSNR", "SSIM", "PSNR masked", "pose distance", "flicker"), body)


TABLES: dict[str, Callable[[dict], list[str]]] = {
    "paths": paths_table, "bench_": bench_table, "torchrun": torchrun_table, "memory_": memory_table,
    "transfer": transfer_table, "eval_": quality_table,
}


if __name__ == "__main__":
    sys.exit(main())
