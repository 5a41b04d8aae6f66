"""One frozen dataclass per command holds its defaults, declared once.

A command's settings come from the dataclass defaults, then an optional TOML file, then the
command line. Unknown keys are errors. The resolved config is saved beside every artifact.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from reenact.errors import ReenactError

MODE_CHOICES = ("auto", "body", "face")      # reenact/modes MODES, and auto
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULE_NAMES = ("constant", "linear_decay")   # reenact/training.py LR_SCHEDULES
PERCEPTUAL_LOSS_NAMES = ("auto", "vgg19", "random", "none")   # auto, then reenact/models/losses.py PERCEPTUAL_LOSSES
SMOOTHER_NAMES = ("one_euro", "none")               # reenact/body/smoothing.py SMOOTHERS
FACE_LANDMARK_BACKENDS = ("mediapipe", "face_alignment")   # reenact/face/tracking.py FIT_LAYOUTS
LOOKAHEAD_NAMES = ("hold", "wait")                  # reenact/live/window.py LOOKAHEADS


@dataclass(frozen=True)
class TrackConfig:
    video: str
    out: str | None = None               # default: ./<video stem>/
    mode: str = "auto"                   # auto | body | face
    device: str = "auto"
    resolution: int = 256                # side of the square frames and proxies stored for training
    detect_size: int = 640               # long side of the frames the tracker sees
    min_confidence: float = 0.3          # keypoints below this count as missing
    max_gap_seconds: float = 0.25        # shorter gaps are interpolated, longer ones stay missing
    largest_person: bool = True          # body: look for several people and hide all but the tallest from the tracker
    smoothing: str = "one_euro"          # one_euro | none
    face_landmarks: str = "mediapipe"    # mediapipe | face_alignment: what the face fit targets (2D-FAN needs its weights)
    one_euro_min_cutoff: float = 1.5     # Hz; lower smooths slow motion more
    one_euro_beta: float = 2.0           # speed coefficient on coordinates in units of the frame's long side
    one_euro_d_cutoff: float = 1.0       # Hz, for the speed estimate
    crop_margin: float = 0.08            # fraction of the person's height added around the crop
    min_valid_fraction: float = 0.5      # fewer frames with a person than this is an error
    min_frames: int = 8
    preview_size: int = 720              # long side of preview.mp4
    workers: int = 0                     # MediaPipe processes, a chunk of the clip each; 0: one per core
    motion_only: bool = False            # write only the driver's motion file (reused by transfer and eval), no subject folder


@dataclass(frozen=True)
class TrainConfig:
    subject: str
    out: str | None = None               # default: ./<subject folder name>.ckpt
    preset: str = "auto"                 # auto | tiny | 128 | 256 | 512 (auto: 128 on a CPU, 256 on a GPU)
    steps: int | None = None             # total steps; default from the preset (none with minutes)
    minutes: float | None = None         # wall-clock budget, setup included; the learning rate follows it
    batch_size: int | None = None        # default from the preset (larger on a GPU)
    window: int | None = None            # proxies of frames t-w//2 .. t+w//2; default from the preset
    learning_rate: float | None = None   # default 2e-4 × sqrt(batch size / 4)
    device: str = "auto"
    resume: bool = False
    seed: int = 0
    validation_fraction: float = 0.1     # the last frames, never trained on
    sample_every: int | None = None      # steps between sample grids; default from the preset
    checkpoint_every: int = 500
    log_every: int = 10                  # steps between loss readings (each one waits for the device)
    l1_weight: float = 10.0
    feature_matching_weight: float = 10.0
    perceptual_weight: float = 10.0
    background: bool = True              # bodies from a still camera: paint the person over the subject's background plate
    alpha_weight: float = 5.0            # over a plate: L1 of the alpha against where the frame differs from the plate
    perceptual_loss: str = "auto"        # auto (vgg19 where its weights are cached, else none) | vgg19 | random | none
    temporal_weight: float = 1.0
    real_previous_share: float | None = None  # of training sequences, this share feed frame 1 the real frame 0 as its previous output; default the mode's
    shift_consistency_weight: float | None = None  # L1 of the output against that for the input moved by less than the network's size multiple and back (steadier frames as the person moves); default the mode's
    l1_shift: int | None = None          # pixels: the L1 compares each 8-pixel square with the frame moved by up to this, whichever fits (edges drawn sharp where tracking is a pixel off); default the mode's
    region_weight: float = 4.0           # in the L1 loss, 1 + this: a face's mouth and eyes, a body's person (skeleton grown)
    temporal_frames: int = 3             # frames per clip the temporal discriminators judge (2 = Everybody Dance Now's pairs)
    temporal_scales: int | None = None   # time scales (frame strides 1, 2, 4…), one discriminator each (vid2vid); default from the preset
    face_enhancer: bool = True           # bodies: Everybody Dance Now's face GAN on a crop around the head
    ema: bool = True                     # sample and infer with an exponential moving average of the generator
    ema_decay: float = 0.999
    lr_schedule: str = "linear_decay"    # constant | linear_decay (full rate for half the steps, then down to 0)
    mixed_precision: bool = True         # bf16 autocast on CUDA (always fp32 on CPU)
    # On CUDA. Off: on an H200 at 256, bf16 NCHW ran 253 images/s, channels_last 226.
    channels_last: bool = False
    compile: bool = False                # torch.compile the networks
    gradient_checkpointing: bool = False  # recompute the residual blocks in backward: less memory, more compute
    generator: str = "unet"              # unet (skip connections at every level) | global (pix2pixHD's, no skips)
    neural_texture: bool = True          # faces: a learned texture on the mesh, started from the training frames
    texture_composite: bool = True       # faces: where the generator's mask says, the frame shows the texture's colours
    mask_scale: int = 4                  # … a mask of blocks this many pixels wide, smoothed: no speckle
    mask_gain: float = 4.0               # … outside training, each block's mask pushed from one half by this: one source, not a blend
    mask_commit_weight: float = 1.0      # … a loss on mask·(1 − mask), ramped up with training: show the texture or the painting, not a blur of both
    steady_spread: int = 64              # … shown only on texels whose brightness spans at most this (of 255, 10th–90th percentile) over the training frames: not lips that part or eyelids
    reference_frame: bool = True         # bodies: a training frame warped limb by limb to each pose, beside the skeleton
    reference_composite: bool = True     # … and where the generator's mask says, the frame shows that warped frame's pixels (mask_scale, mask_gain)
    alpha_gain: float = 2.0              # bodies over a plate: outside training, the alpha pushed from one half by this: a person, not a ghost
    num_threads: int = 0                 # CPU threads for torch; 0 keeps torch's default


@dataclass(frozen=True)
class TransferConfig:
    source: str
    checkpoint: str
    out: str | None = None               # default: ./<source stem>_as_<checkpoint stem>.mp4
    device: str = "auto"
    side_by_side: bool = False           # write source | proxy | result
    paste_back: bool = False             # face: composite the generated crop into the target's footage
    edit: tuple[str, ...] = ()           # face: NAME=+0.2 adds to an expression weight, clamped to [0, 1]
    stabilise: bool = True               # blend each frame with the last along the proxies' motion (less flicker)
    crf: int = 18


@dataclass(frozen=True)
class LiveConfig:
    checkpoint: str
    input: str = "0"                     # camera number or /dev/videoN, a file, a URL ffmpeg opens, or - (stdin)
    output: tuple[str, ...] = ()         # FILE.mp4, a stream URL (udp://, rtmp://, …) or virtualcam; several allowed
    show: bool = False                   # a window on the screen
    device: str = "auto"
    paste_back: bool = False             # face: composite the generated crop into the target's footage
    edit: tuple[str, ...] = ()           # face: NAME=+0.2 adds to an expression weight, clamped to [0, 1]
    lookahead: str = "hold"              # hold: the window's future is the current frame; wait: hold frames back for it
    stabilise: bool = True               # blend each frame with the last along the proxies' motion (less flicker)
    max_side: int = 640                  # long side of the frames the trackers see
    realtime: bool = True                # a file input is played at its own frame rate, as a camera delivers
    max_frames: int | None = None        # stop after this many input frames
    stall_seconds: float = 2.0           # no frame this long: say the input stalled (the last output holds)
    stop_after_seconds: float = 10.0     # no frame this long: stop, finishing the outputs
    absent_seconds: float = 2.0          # nobody in view this long: say so (the last output holds)
    stats: str | None = None             # also write the run's figures here (JSON)
    record: str | None = None            # also write, per output frame, its input frame and the pose drawn (npz)


@dataclass(frozen=True)
class BatchConfig:
    jobs: str                            # TOML file of [[job]] entries
    out: str                             # one folder per job inside
    gpus: str | None = None              # "0,1": one job per GPU in parallel
    job: str | None = None               # run only this job
    device: str = "auto"


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str
    subject: str | None = None           # default: the subject folder the checkpoint was trained on
    json: str | None = None              # also write the metrics here
    report: str | None = None            # default: ./<checkpoint stem>.eval/
    device: str = "auto"
    driver: str | None = None            # also cross-reenact: this video's person drives the subject


@dataclass(frozen=True)
class BenchTrainConfig:
    preset: str = "256"
    steps: int = 20                      # timed steps per variant, after warmup
    warmup: int = 3                      # untimed steps first; the first of them is reported on its own
    batch_size: int | None = None        # default from the preset (its GPU batch size on CUDA)
    batch_sizes: str | None = None       # "8,16,32": also time the recommended variant at these batch sizes
    variants: str | None = None          # "fp32,bf16": these variants (pipelines/bench_train.py VARIANTS); default per device
    device: str = "auto"
    compile: bool = False                # also time the compiled variant (compiling takes minutes on a GPU)
    perceptual_loss: str = "auto"        # as train's; vgg19 is timed with random weights where they are not cached
    json: str | None = None              # also write the figures here


@dataclass(frozen=True)
class WeightsConfig:
    fetch: tuple[str, ...] = ()          # names to download (reenact/weights.py PUBLISHED, or all); none: list the cache
    timeout: float = 30.0                # seconds a download may wait for the server before it fails


@dataclass(frozen=True)
class ExportConfig:
    subject: str
    csv: str | None = None               # write one row per frame
    json: str | None = None              # write one object per frame
    names: str = "model"                 # model (its 53: eyeBlink_L) | arkit (ARKit's 52: eyeBlinkLeft) | live_link (Live Link Face's CSV columns)


ConfigT = TypeVar("ConfigT")


def resolve_config(cls: type[ConfigT], toml_path: str | None, overrides: dict[str, Any]) -> ConfigT:
    """Defaults < TOML file < command line (``overrides`` entries that are not None)."""
    values: dict[str, Any] = {}
    if toml_path is not None:
        values.update(read_toml(toml_path))
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        source = toml_path or "options"
        raise ReenactError(f"{source}: unknown setting {', '.join(unknown)} (valid: {', '.join(fields)})")
    missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in values]
    if missing:
        raise ReenactError(f"missing setting {', '.join(missing)}")
    config = cls(**{name: _coerce(name, value, fields[name].type) for name, value in values.items()})
    _check_choices(config)
    return config


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReenactError(f"{path}: no such {what}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ReenactError(f"{path}: not valid TOML ({error})") from None


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Check a value against the field's annotation; ints are accepted where floats are."""
    if annotation.startswith("tuple[str"):
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ReenactError(f"setting {name}: expected a list of strings, got {value!r}")
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool}
    allowed = [kinds[part.strip()] for part in annotation.split("|") if part.strip() in kinds]
    if value is None and "None" in annotation:
        return None
    if any(isinstance(value, kind) and not (isinstance(value, bool) and kind is int) for kind in allowed):
        return float(value) if annotation.startswith("float") else value
    raise ReenactError(f"setting {name}: expected {annotation}, got {value!r}")


def _check_choices(config: Any) -> None:
    for name, choices in (("mode", MODE_CHOICES), ("device", DEVICES), ("lr_schedule", LR_SCHEDULE_NAMES),
                          ("perceptual_loss", PERCEPTUAL_LOSS_NAMES),
                          ("smoothing", SMOOTHER_NAMES), ("face_landmarks", FACE_LANDMARK_BACKENDS),
                          ("lookahead", LOOKAHEAD_NAMES)):
        value = getattr(config, name, None)
        if value is not None and value not in choices:
            raise ReenactError(f"setting {name}: {value!r} is not one of {', '.join(choices)}")


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
