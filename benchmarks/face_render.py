"""Face proxy rasterization speed: correspondence images per second on the CPU (or --device cuda).

    python benchmarks/face_render.py [--resolution 256] [--frames 256] [--batch 32] [--threads 1]

Renders the shipped face mesh in a head-and-shoulders framing (the face about 40 % of the
crop's width, as track frames it) with a slow head turn. Prints JSON and writes nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reenact.face.geometry import axis_angle_to_matrix
from reenact.files import strict_json
from reenact.face.model import load_face_model
from reenact.face.proxy import FaceProxyRenderer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_face_model()
    renderer = FaceProxyRenderer(model, args.resolution, torch.device(args.device))
    yaw = np.linspace(-0.4, 0.4, args.frames)
    rotation = axis_angle_to_matrix(torch.tensor(np.stack([np.zeros_like(yaw), yaw, np.zeros_like(yaw)], 1), dtype=torch.float32)).numpy()
    translation = np.tile([0.0, 0.0, -60.0], (args.frames, 1))
    expression = np.zeros((args.frames, 53), np.float32)
    focal, size = 600.0, 600
    crops = np.tile([(size - 360) // 2, (size - 360) // 2 + 40, 360], (args.frames, 1))
    identity = np.zeros(100, np.float32)
    renderer.correspondence(identity, expression[:1], rotation[:1], translation[:1], focal, (size / 2, size / 2), crops[:1])
    start = time.perf_counter()
    for first in range(0, args.frames, args.batch):
        batch = slice(first, first + args.batch)
        renderer.correspondence(identity, expression[batch], rotation[batch], translation[batch], focal,
                                (size / 2, size / 2), crops[batch])
    seconds = time.perf_counter() - start
    print(strict_json({"benchmark": "face_render", "device": f"{args.device} ({args.threads} thread(s))",
                      "resolution": args.resolution, "batch": args.batch, "frames": args.frames,
                      "frames_per_second": round(args.frames / seconds, 1),
                      "triangles": int(model.mesh_triangles.shape[0])}))


if __name__ == "__main__":
    main()
