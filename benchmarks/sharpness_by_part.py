"""A body's cross-reenactment sharpness, body part by body part: where the figure is won and lost.

    python benchmarks/sharpness_by_part.py CHECKPOINT DRIVER [--subject FOLDER] [--grid OUT.png]

Drives a body checkpoint by DRIVER as `reenact eval --driver` does (the model, the model before its
stabiliser, without its temporal inputs, and retrieval), then prints, for each body part of
reenact/evaluation/appearance.py's SHARPNESS_PARTS: its share of the retargeted region (away
from the crop's padding, as `eval` measures), the training footage's energy there, each system's
energy over that, and the part's weight in the figure (share × footage energy: a part that is both
large and detailed decides it). The last line is the whole region's, pooled over the frames
(`eval` averages each frame's ratio: close, not equal). --grid writes driver frames as proxy |
warped reference | model | retrieval, 3× nearest-neighbour. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from reenact.data import SubjectClip  # noqa: E402
from reenact.evaluation import held_out  # noqa: E402
from reenact.evaluation.appearance import SHARPNESS_PARTS, ViewerFigures, part_energy_sums  # noqa: E402
from reenact.evaluation.cross import DrivenSystems, drive_systems  # noqa: E402
from reenact.io import probe_video  # noqa: E402
from reenact.reenactment import Reenactor  # noqa: E402
from reenact.subject import Subject  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("driver")
    parser.add_argument("--subject", help="default: the one it was trained on")
    parser.add_argument("--grid", help="write five driver frames side by side to this PNG")
    return parser.parse_args()


def driven_systems(reenactor: Reenactor, subject: Subject, driver: str):
    """The systems driven by ``driver``, and the viewer figures (their reference: the target's footage part by part)."""
    mode, resolution = reenactor.mode, reenactor.resolution
    clip = SubjectClip(subject.frames(), reenactor.model_proxies(subject), subject.tracks["valid"], resolution,
                       reenactor.window, reenactor.checkpoint.config["validation_fraction"])
    conditioning, _ = mode.conditioning_points(subject, resolution)
    features, present = mode.pose_features(subject, resolution)
    viewer = held_out.viewer_figures(mode, clip, conditioning, mode.footage_coverage(reenactor.target, resolution))
    motion = reenactor.retarget(reenactor.track(driver, probe_video(driver), "cpu"))
    return drive_systems(reenactor, motion, driver, clip, features, present), viewer


def part_table(driven: DrivenSystems, viewer: ViewerFigures, mode) -> None:
    masks, wanted = viewer.measured(held_out.region_masks(driven.proxies, mode)), driven.wanted
    valid, reference = wanted.valid, viewer.reference_energy
    footage = np.where(np.isnan(reference.part_energy), reference.whole, reference.part_energy)
    energies, counts = {}, None
    for name, images in driven.frames.items():
        sums, counts = part_energy_sums(images[valid], masks[valid], wanted.points[valid])
        energies[name] = sums.sum(axis=0) / np.maximum(counts.sum(axis=0), 1)
    pixels = counts.sum(axis=0)
    share, weight = pixels / pixels.sum(), pixels * footage / (pixels * footage).sum()
    print(f"{'part':16s} {'share':>6s} {'footage':>8s} {'weight':>7s} " + " ".join(f"{name[:18]:>18s}" for name in energies))
    for p, part in enumerate(SHARPNESS_PARTS):
        print(f"{part:16s} {share[p]:6.3f} {footage[p]:8.4f} {weight[p]:7.3f} "
              + " ".join(f"{energies[name][p] / footage[p]:18.2f}" for name in energies))
    print(f"{'region':16s} {1:6.3f} {(share * footage).sum():8.4f} {1:7.3f} "
          + " ".join(f"{(share * energies[name]).sum() / (share * footage).sum():18.2f}" for name in energies))


def grid(reenactor: Reenactor, driven: DrivenSystems, path: str) -> None:
    """Five driver frames: proxy | warped reference (black without one) | model | retrieval."""
    size = reenactor.resolution
    picks = set(np.linspace(0, driven.motion.frame_count - 1, 7).round().astype(int)[1:-1].tolist())
    rows = []
    for t, drive in ((t, drive) for t, drive in enumerate(driven.motion.drives()) if t in picks):
        reference = reenactor.model_proxy(drive)[-3:].permute(1, 2, 0).numpy() if reenactor.reference is not None \
            else np.zeros_like(driven.proxies[t])
        tiles = (driven.proxies[t], reference, driven.frames["model"][t], driven.frames["nearest_neighbour"][t])
        rows.append(np.concatenate([cv2.resize(tile, (3 * size, 3 * size), interpolation=cv2.INTER_NEAREST)
                                    for tile in tiles], axis=1))
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))


def main() -> None:
    args = parse_args()
    reenactor = Reenactor.load(args.checkpoint, torch.device("cpu"))
    if reenactor.mode.name != "body":
        sys.exit(f"{args.checkpoint}: a {reenactor.mode.name} checkpoint; the parts are a body's")
    subject = Subject.load(args.subject or reenactor.checkpoint.target["subject"])
    driven, viewer = driven_systems(reenactor, subject, args.driver)
    part_table(driven, viewer, reenactor.mode)
    if args.grid:
        grid(reenactor, driven, args.grid)


if __name__ == "__main__":
    main()
