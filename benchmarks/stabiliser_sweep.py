"""How the temporal stabiliser's settings trade flicker against sharpness, on a checkpoint's held-out frames.

    python benchmarks/stabiliser_sweep.py CHECKPOINT [--subject FOLDER] [--set blend=0.9,0.93] [--set restore_detail=0,1] ...

The generator runs once over the held-out frames (fed its own unstabilised output, as always);
then each setting's stabiliser runs over those frames. Prints, per setting, flicker over the real
frames' (the fidelity benchmark's "flicker ×real") and sharpness (masked Laplacian energy over
the real frames'). The stabiliser follows the proxies' rendered flow, as `transfer` and `eval` do (--dis: DIS's
estimate from the proxy images); --real runs each setting over the real frames too. The settings in
reenact/modes/ were chosen with it; a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from reenact.data import SubjectClip  # noqa: E402
from reenact.evaluation import metrics  # noqa: E402
from reenact.evaluation.appearance import clear_of_padding, high_frequency_energy, within_footage  # noqa: E402
from reenact.evaluation.held_out import generate_held_out, region_masks  # noqa: E402
from reenact.reenactment import Reenactor, StreamOptions  # noqa: E402
from reenact.stabilise import TemporalStabiliser  # noqa: E402
from reenact.subject import Subject  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--subject", help="default: the one it was trained on")
    parser.add_argument("--set", action="append", default=[], help="NAME=V1,V2,...: a StabiliserSettings field's values to try")
    parser.add_argument("--dis", action="store_true", help="estimate the proxies' flow with DIS instead of rendering it")
    parser.add_argument("--real", action="store_true",
                        help="also run each setting's stabiliser over the real frames: what it costs footage that does not flicker")
    return parser.parse_args()


def flicker(frames: np.ndarray, flows: list[np.ndarray]) -> float:
    floats = frames.astype(np.float32) / 255
    return float(np.mean([metrics.warping_error(floats[t - 1], floats[t], flows[t - 1]) for t in range(1, len(floats))]))


def setting_value(default, text: str):
    """``text`` as the type of the setting's ``default``; a switch is 0 or 1."""
    return bool(int(text)) if isinstance(default, bool) else type(default)(text)


def main() -> None:
    args = parse_args()
    torch.set_grad_enabled(False)
    reenactor = Reenactor.load(args.checkpoint, torch.device("cpu"))
    subject = Subject.load(args.subject or reenactor.target["subject"])
    clip = SubjectClip(subject.frames(), reenactor.model_proxies(subject), subject.tracks["valid"], reenactor.resolution,
                       reenactor.window, reenactor.checkpoint.config["validation_fraction"])
    held_out = range(clip.train_end, len(clip.frames))
    real = clip.frames[clip.train_end:].permute(0, 2, 3, 1).numpy()
    proxies = np.stack([clip.proxies[t][reenactor.drawn].permute(1, 2, 0).numpy() for t in held_out])
    proxy_flows = [None] * len(held_out) if args.dis else list(reenactor.mode.own_flows(subject, held_out))
    footage = clear_of_padding(reenactor.mode.footage_coverage(reenactor.target, reenactor.resolution))
    masks = within_footage(region_masks(clip.proxies[clip.train_end:].permute(0, 2, 3, 1).numpy(), reenactor.mode),
                           footage)       # as `eval` measures sharpness
    outputs = generate_held_out(reenactor, clip, {"unstabilised": StreamOptions(stabilise=False, enhance=False)}, subject)
    raw = np.stack([output["unstabilised"].frame for output in outputs])
    real_float = real.astype(np.float32) / 255
    flows = [metrics.real_frame_flow(real_float[t - 1], real_float[t]) for t in range(1, len(real))]
    real_flicker, real_energy = flicker(real, flows), high_frequency_energy(real, masks)
    sharpness = lambda frames: float(np.mean(high_frequency_energy(frames, masks) / real_energy))
    print(f"{'unstabilised':40s} flicker ×real {flicker(raw, flows) / real_flicker:5.2f}  sharpness {sharpness(raw):.2f}")
    base = reenactor.mode.stabiliser
    grid = {name: [setting_value(getattr(base, name), v) for v in values.split(",")]
            for name, values in (item.split("=", 1) for item in args.set)}
    for values in itertools.product(*grid.values()):
        settings = dataclasses.replace(base, **dict(zip(grid, values)))
        label = ", ".join(f"{n}={v}" for n, v in zip(grid, values)) or "the mode's settings"
        runs = [("", raw), (" (real frames)", real)] if args.real else [("", raw)]
        for name, frames in runs:
            stabilise = TemporalStabiliser(settings)
            shown = np.stack([stabilise(proxy, frame, flow) for proxy, frame, flow in zip(proxies, frames, proxy_flows)])
            print(f"{label + name:40s} flicker ×real {flicker(shown, flows) / real_flicker:5.2f}  sharpness {sharpness(shown):.2f}")


if __name__ == "__main__":
    main()
