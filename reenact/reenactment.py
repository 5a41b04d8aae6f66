"""The reenactment engine: one trained target, loaded once, that `transfer`, `live` and `eval` all call.

The same steps for every front end:
1. ``Reenactor.load``: the checkpoint, its mode, the generator and the face enhancer.
2. A driver: ``track`` + ``retarget`` give a whole clip's ``Motion`` (offline), ``live_driver`` a
   causal one (a camera); both are built from the target's tracking settings.
3. ``model_proxy``: each driven proxy at the model's resolution.
4. ``run`` (or a ``FrameStream`` fed by the caller's own ``ProxyWindow``): the proxy window, the
   translator with its previous output, the face enhancer and paste-back; out come ``Output``s.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from reenact.checkpoint import Checkpoint, undertrained_note
from reenact.config import TrackConfig
from reenact.data import center_proxy, resize_uint8
from reenact.drive import Drive
from reenact.enhancer import enhance_frame
from reenact.io import VideoInfo
from reenact.modes.base import Motion
from reenact.paste_back import composite, looped_footage
from reenact.motion_file import load_motion, load_or_track, motion_path
from reenact.progress import info, warn
from reenact.proxy_window import ProxyWindow
from reenact.stabilise import TemporalStabiliser
from reenact.translator import StreamingTranslator


@dataclass(frozen=True)
class Output:
    proxy: np.ndarray           # (R, R, 3) uint8: the frame's own proxy (its RGB channels) at the model's resolution
    frame: np.ndarray           # (R, R, 3) uint8, or the target's footage with the face pasted in
    drive: Drive | None         # what drove it (None: a subject's own proxies, in eval)
    unstabilised: np.ndarray    # (R, R, 3) uint8: the generator's frame before the stabiliser, enhancer and paste-back (its padding black)


@dataclass(frozen=True)
class StreamOptions:
    feedback: bool = True       # the generator sees its previous output (off: a blank frame)
    stabilise: bool = True      # the temporal stabiliser, with the mode's settings
    enhance: bool = True        # the body's face enhancer, where the checkpoint has one
    paste_back: bool = False    # face: into the target's own footage


class Reenactor:
    def __init__(self, checkpoint: Checkpoint, device: torch.device):
        self.checkpoint, self.device, self.mode = checkpoint, device, checkpoint.mode
        self.generator = checkpoint.generator(device)
        self.enhancer = checkpoint.face_enhancer(device)
        self.reference = self.mode.reference_warp(checkpoint.state.get("reference"))
        # The proxy's drawn channels, without the reference warped after them: what the stabiliser follows.
        self.drawn = slice(None, -self.reference.channels) if self.reference is not None else slice(None)

    @classmethod
    def load(cls, path: str | Path, device: torch.device) -> "Reenactor":
        """The checkpoint's target on ``device``; an undertrained checkpoint is said so once, here,
        for every command that loads one."""
        checkpoint = Checkpoint.load(path)
        note = undertrained_note(checkpoint.state, path)
        if note:
            warn(note)
        return cls(checkpoint, device)

    @property
    def resolution(self) -> int:
        return self.checkpoint.resolution

    @property
    def window(self) -> int:
        return self.checkpoint.window

    @property
    def target(self) -> dict:
        return self.checkpoint.target

    def check_options(self, edits: tuple[str, ...], paste_back: bool) -> None:
        """Fail before the slow parts when ``--edit`` or ``--paste-back`` can't apply."""
        self.mode.check_options(edits, paste_back, self.target, str(self.checkpoint.path))

    def track_config(self, path: str, device: str) -> TrackConfig:
        """The settings the target was tracked with, for another video."""
        return TrackConfig(**{**self.target["track_config"], "video": path, "out": None, "device": device})

    def track(self, path: str, video: VideoInfo, device: str):
        """A driver video's whole-clip tracks, found with the target's tracking settings: from its
        motion file when it was tracked so before (reenact/motion_file.py), else tracked and saved."""
        tracks, saved, how = load_or_track(path, video, self.mode, self.track_config(path, device))
        if how == "reused":
            info(f"{path}: reusing its motion file {saved} (tracked before with the same settings)")
        elif how == "saved":
            info(f"{path}: saved its motion file {saved}; later runs with this driver reuse it")
        return tracks

    def saved_tracks(self, path: str, device: str):
        """A driver video's tracks from its motion file, or None when it was never tracked with the
        target's settings (no tracking here)."""
        return load_motion(motion_path(path, self.mode.name, self.track_config(path, device)), self.mode)

    def retarget(self, tracks, edits: tuple[str, ...] = ()) -> Motion:
        return self.mode.retarget(tracks, self.target, edits)

    def live_driver(self, edits: tuple[str, ...] = ()):
        return self.mode.live_driver(self.target, edits, self.device)

    def model_proxy(self, drive: Drive) -> torch.Tensor:
        """A drive's (R, R, C) uint8 proxy at the subject's resolution, with the reference warped to its
        pose where the model has one → (C', R', R') uint8 at the model's."""
        proxy = drive.proxy
        if self.reference is not None:
            proxy = np.concatenate([proxy, self.reference(drive.points)], axis=-1)
        return resize_uint8(proxy[None], self.resolution)[0]

    def model_proxies(self, subject) -> np.ndarray:
        """What conditioned each of a subject's frames, as in training."""
        return self.mode.model_proxies(subject, self.reference)

    def stream(self, options: StreamOptions = StreamOptions()) -> "FrameStream":
        return FrameStream(self, options)

    def run(self, proxies: Iterable[tuple[torch.Tensor, Drive | None]], options: StreamOptions = StreamOptions(),
            lookahead: str = "wait") -> Iterator[Output]:
        """Consecutive (model proxy, drive) pairs → their outputs, in order. ``wait`` gives each frame
        the window the model was trained on, clamped at the ends (what training sees)."""
        stream, window = self.stream(options), ProxyWindow(self.window, lookahead)
        for proxy, drive in proxies:
            yield from (stream(*ready) for ready in window.push(proxy, drive))
        yield from (stream(*ready) for ready in window.flush())

    def run_each(self, proxies: Iterable[tuple[torch.Tensor, Drive | None]],
                 options: dict[str, StreamOptions]) -> Iterator[dict[str, Output]]:
        """As run, once with each of ``options`` side by side over one pass of ``proxies`` (each
        proxy and drive made once): a dict of each frame's outputs by the options' names."""
        runs = [self.run(copy, run_options) for copy, run_options in zip(itertools.tee(proxies, len(options)), options.values())]
        return (dict(zip(options, outputs)) for outputs in zip(*runs))

    def driven(self, motion: Motion) -> Iterator[tuple[torch.Tensor, Drive]]:
        """A whole retargeted clip's (model proxy, drive) pairs."""
        return ((self.model_proxy(drive), drive) for drive in motion.drives())

    def drive(self, motion: Motion, options: StreamOptions = StreamOptions()) -> Iterator[Output]:
        """A whole retargeted clip's outputs."""
        return self.run(self.driven(motion), options)

    def rest_frame(self, drive: Drive, stream: "FrameStream") -> np.ndarray:
        """What shows before the driver does: the target's rest proxy translated on its own."""
        proxy = self.model_proxy(drive)
        generated = StreamingTranslator(self.generator, self.window)(torch.cat([proxy] * self.window))
        return stream.finish(generated, proxy[:3].permute(1, 2, 0).numpy(), drive)


def blacken_padding(frame: np.ndarray, padding: np.ndarray) -> np.ndarray:
    """``frame`` black on ``padding`` (R, R) bool, as the target's footage is there and as training's
    losses see it: the generator is never asked to paint there, and where it painted black in
    training, unseen poses had it paint grey walls in the studio (fashion's cross-reenactment). A
    driven limb reaching past the video is cut at its edge, as the target's own footage frames it."""
    return np.where(padding[..., None], np.uint8(0), frame)


class FrameStream:
    """Proxy windows in, finished frames out: the translator with its previous output, then the face
    enhancer and paste-back. One per run of consecutive frames: it holds the previous output."""

    def __init__(self, reenactor: Reenactor, options: StreamOptions):
        self.reenactor, self.window = reenactor, reenactor.window
        stabiliser = TemporalStabiliser(reenactor.mode.stabiliser) if options.stabilise else None
        self.translate = StreamingTranslator(reenactor.generator, reenactor.window, options.feedback, stabiliser,
                                             reenactor.drawn)
        self.enhancer = reenactor.enhancer if options.enhance else None
        self.footage = looped_footage(reenactor.target) if options.paste_back else None
        self.padding = reenactor.mode.padding(reenactor.target, reenactor.resolution)

    def __call__(self, proxy_window: torch.Tensor, drive: Drive | None) -> Output:
        proxy = center_proxy(proxy_window[None], self.window)[0, :3].permute(1, 2, 0).cpu().numpy()
        generated = self.translate(proxy_window, drive.flow if drive is not None else None)
        unstabilised = self.translate.unstabilised
        if self.padding is not None:
            unstabilised = blacken_padding(unstabilised, self.padding)
        return Output(proxy, self.finish(generated, proxy, drive), drive, unstabilised)

    def finish(self, generated: np.ndarray, proxy: np.ndarray, drive: Drive | None) -> np.ndarray:
        """The face enhancer around the driven head, the padding past the target's video black as in
        its footage, then paste-back into that footage."""
        if self.enhancer is not None and drive is not None and drive.head is not None:
            scale = self.reenactor.checkpoint.head_scale
            head = drive.head * np.array([scale, scale, 1], np.float32)
            generated = enhance_frame(self.enhancer, proxy, generated, head, self.reenactor.checkpoint.face_crop_size,
                                      self.reenactor.device)
        if self.padding is not None:
            generated = blacken_padding(generated, self.padding)
        if self.footage is not None:
            generated = composite(next(self.footage), generated, drive.face_crop)
        return generated
