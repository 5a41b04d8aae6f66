"""The stabiliser's two flows on a subject's own proxies: rendered from the geometry, or DIS's
estimate from the proxy images. Milliseconds per frame on one CPU thread, and how well each
carries the previous proxy onto the current one (mean absolute error in levels, over the drawn
pixels that moved); plus how far apart the two are (median end-point distance, pixels).

    python benchmarks/stabiliser_flow.py --subject DIR [--subject DIR]... [--frames 200]

Any subject folder (`reenact track` output), face or body. Prints JSON, one line a subject, and
writes nothing. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from reenact.files import strict_json
from reenact.stabilise import drawn_near, optical_flow, warp
from reenact.subject import Subject


def estimated_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """What the stabiliser does without a rendered flow."""
    return optical_flow(previous[..., :3], current[..., :3]) * drawn_near(previous, current)


def timed(make_flows, frames: range) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    flows = list(make_flows(frames))
    return flows, 1000 * (time.perf_counter() - start) / len(frames)


def compare(subject: Subject, count: int) -> dict:
    proxies = np.asarray(subject.proxies()[:count + 1])
    frames = range(1, len(proxies))
    rendered, rendered_ms = timed(lambda frames: subject.mode.own_flows(subject, frames), frames)
    estimated, estimated_ms = timed(lambda frames: (estimated_flow(proxies[t - 1], proxies[t]) for t in frames), frames)
    errors = {"rendered": [], "dis": []}
    distances = []
    for t, rendered_flow, estimated_flow_ in zip(frames, rendered, estimated):
        moved = (proxies[t][..., :3].max(axis=-1) > 0) & (np.linalg.norm(rendered_flow, axis=-1) > 0.5)
        if not moved.any():
            continue
        current = proxies[t][..., :3].astype(np.float32)
        for name, flow in (("rendered", rendered_flow), ("dis", estimated_flow_)):
            errors[name].append(np.abs(warp(proxies[t - 1][..., :3], flow) - current)[moved].mean())
        distances.append(np.median(np.linalg.norm(rendered_flow[moved] - estimated_flow_[moved], axis=-1)))
    return {"subject": str(subject.root), "mode": subject.mode.name, "resolution": int(proxies.shape[1]),
            "frames": len(frames), "frames_compared": len(distances),
            "ms_per_frame": {"rendered": round(rendered_ms, 2), "dis": round(estimated_ms, 2)},
            "carried_proxy_error_levels": {name: round(float(np.mean(values)), 2) if values else None
                                           for name, values in errors.items()},
            "median_distance_px": round(float(np.median(distances)), 2) if distances else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", action="append", required=True, help="a subject folder (repeat for more)")
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    for folder in args.subject:
        print(strict_json(compare(Subject.load(folder), args.frames)))


if __name__ == "__main__":
    main()
