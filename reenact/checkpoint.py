"""Checkpoints: plain dicts of tensors and primitives, written atomically, read with weights_only.

Top-level keys: format, format_version, mode, step, world_size, config (the train config),
preset, model (constructor arguments of each network), generator / generator_ema /
image_discriminator / temporal_discriminators (state dicts), optimizers, schedulers, target
(what transfer needs), perceptual_loss, validation, rng.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from reenact.errors import ReenactError
from reenact.files import atomic_path
from reenact.modes import MODES, Mode

FORMAT = "reenact.checkpoint"
FORMAT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"      # torch.save writes a zip archive
REQUIRED = ("mode", "step", "config", "resolution", "window", "model", "generator", "target")


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | Path, mode: str | None = None) -> dict:
    """Load with ``weights_only=True``, so a checkpoint that carries code is refused, never run."""
    path = Path(path)
    if not path.exists():
        raise ReenactError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise ReenactError(f"{path}: is a folder, not a checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or unsafe files
        raise ReenactError(f"{path}: not a reenact checkpoint: {why_unloadable(path, error)}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ReenactError(f"{path}: not a reenact checkpoint")
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise ReenactError(f"{path}: checkpoint format {checkpoint.get('format_version')} is not supported "
                           f"(this reenact reads {FORMAT_VERSION})")
    if checkpoint.get("mode") not in MODES:
        raise ReenactError(f"{path}: a checkpoint of unknown mode {checkpoint.get('mode')!r} (this reenact knows {', '.join(MODES)})")
    if mode is not None and checkpoint["mode"] != mode:
        raise ReenactError(f"{path}: a {checkpoint['mode']} checkpoint, but {mode} is needed here")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise ReenactError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    MODES[checkpoint["mode"]].check_target(checkpoint["target"], str(path))
    return checkpoint


def why_unloadable(path: Path, error: Exception) -> str:
    """In words, why torch.load refused ``path`` (its own messages are internals: "KeyError 101")."""
    with open(path, "rb") as file:
        start = file.read(64)
    if not start:
        return "the file is empty"
    if not start.startswith(ZIP_MAGIC):
        printable = all(32 <= byte < 127 or byte in b"\t\r\n" for byte in start)
        text = start.decode("ascii").strip() if printable else ""
        kind = f"a text file (it starts {text.splitlines()[0][:30]!r})" if text else "some other kind of file"
        return f"it is {kind}, and a checkpoint is the zip archive that `reenact train` writes"
    if isinstance(error, pickle.UnpicklingError):
        return ("it holds Python objects other than tensors and plain values, which reenact never loads "
                "(they could run code); only checkpoints written by `reenact train` are read")
    return "the archive is damaged or cut short (an interrupted copy?); copy it again or retrain"


def undertrained_note(state: dict, path: str | Path) -> str | None:
    """One line when the checkpoint stopped short of its preset's ``useful_steps``, with the time the
    rest takes at the rate it trained; None otherwise (and for checkpoints older than the field)."""
    useful, step = state.get("preset", {}).get("useful_steps"), int(state.get("step", 0))
    if not useful or step >= useful:
        return None
    seconds = float(state.get("training_seconds") or 0.0)
    rate = step / seconds if step and seconds else None
    more = f"; at the {rate:.2f} steps/s it trained at, about {(useful - step) / rate / 60:.0f} more minutes" if rate else ""
    return (f"{path}: undertrained: {step} steps of the {useful} its {state['preset']['resolution']} px preset needs "
            f"before it looks like the target{more} (`reenact train SUBJECT --resume --steps {useful}`)")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its plain dict (``state``) and typed views of what inference reads. The
    model object builds and loads its own networks (as pix2pixHD's does); training's parts and
    resuming are in reenact/resume.py."""
    path: Path
    state: dict

    @classmethod
    def load(cls, path: str | Path, mode: str | None = None) -> "Checkpoint":
        return cls(Path(path), load_checkpoint(path, mode))

    @property
    def mode(self) -> Mode:
        return MODES[self.state["mode"]]

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def resolution(self) -> int:
        return int(self.state["resolution"])

    @property
    def window(self) -> int:
        return int(self.state["window"])

    @property
    def target(self) -> dict:
        """What a driver needs of the target, so the checkpoint works without its subject folder."""
        return self.state["target"]

    @property
    def config(self) -> dict:
        """The resolved train config it was trained with."""
        return self.state["config"]

    @property
    def head_scale(self) -> float:
        """Subject pixels → model pixels."""
        return self.resolution / self.target["subject_resolution"]

    def generator(self, device: torch.device) -> torch.nn.Module:
        """The generator (its EMA where trained with one), in eval mode on ``device``."""
        from reenact.translator import GENERATORS, build_generator

        architecture = self.state["model"].get("architecture", {}).get("generator")
        if architecture is not None and architecture not in GENERATORS:
            raise ReenactError(f"{self.path}: its generator {architecture!r} is unknown to this reenact "
                               f"(it knows {', '.join(GENERATORS)}); train it again with this reenact")
        generator = build_generator(self.state["model"]).to(device).eval()
        try:
            generator.load_state_dict(self.state.get("generator_ema") or self.state["generator"])
        except RuntimeError:
            raise ReenactError(f"{self.path}: its generator's weights do not fit the network it describes "
                               "(a corrupt checkpoint, or one from another reenact); train it again") from None
        return generator

    def face_enhancer(self, device: torch.device) -> torch.nn.Module | None:
        """Everybody Dance Now's face enhancer, where the checkpoint has one."""
        from reenact.translator import build_face_enhancer

        enhancer = build_face_enhancer(self.state["model"])
        if enhancer is None or "face_enhancer" not in self.state:
            return None
        enhancer.load_state_dict(self.state["face_enhancer"])
        return enhancer.to(device).eval()

    @property
    def face_crop_size(self) -> int | None:
        return self.state["model"].get("face_crop", {}).get("size")
