"""Proxy rendering speed: skeleton images per second on one CPU thread.

    python benchmarks/proxy_render.py [--resolution 256] [--frames 2000] [--subject DIR]

Draws a subject folder's real tracked keypoints (default: the demo's examples/out/taiji_target,
made by examples/demo.sh). Prints frames/s as JSON and writes nothing.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from reenact.body.crop import Crop
from reenact.body.skeleton import SkeletonRenderer
from reenact.files import strict_json
from reenact.subject import Subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--subject", default="examples/out/taiji_target", help="a subject folder whose keypoints to draw")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    subject = Subject.load(args.subject)
    keypoints = Crop.from_dict(subject.meta["crop"]).to_crop_pixels(subject.tracks["keypoints"], args.resolution)
    keypoints = np.resize(keypoints, (args.frames, *keypoints.shape[1:]))
    renderer = SkeletonRenderer(args.resolution)
    start = time.perf_counter()
    for frame in keypoints:
        renderer.render(frame)
    seconds = time.perf_counter() - start
    print(strict_json({"benchmark": "proxy_render", "device": "cpu (1 thread)", "resolution": args.resolution,
                      "frames": args.frames, "frames_per_second": round(args.frames / seconds, 1), "subject": args.subject}))


if __name__ == "__main__":
    main()
