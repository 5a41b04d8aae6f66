"""The trackers over generated frames, as eval measures them, with each system's frames in a worker
process of its own when there are enough frames to pay for the workers' start.

A system's frames are one sequence to MediaPipe's video mode, so a worker tracks whole systems,
never a chunk of one: the points are those one process finds, exactly.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from reenact.modes import MODES, Mode
from reenact.progress import progress_task, with_progress

# Generated frames are enlarged this much before tracking: the trackers want faces and bodies
# bigger than a tiny model's 96 pixels.
TRACKING_UPSCALE = 4
# Below this many frames in all, starting the workers (importing MediaPipe, about 1 s) costs more
# than they save.
PARALLEL_MIN_FRAMES = 240


def track_generated(images: np.ndarray, mode: Mode, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) points found in generated frames (model pixels) and (N,) whether found; ``what``
    names the frames in the progress line and in warnings."""
    return mode.track_generated(images, TRACKING_UPSCALE,
                                lambda frames: with_progress(frames, f"tracking {what}", len(images)), what)


def track_systems(parts: dict[str, dict[str, np.ndarray]], mode: Mode,
                  workers: int = 0) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """track_generated over each system's frames in each part, keyed as ``parts`` is: a part's key
    ends its systems' descriptions ("driven by …"). ``workers`` processes (0: one per core, as far
    as the systems go, once there are PARALLEL_MIN_FRAMES frames in all)."""
    jobs = {(part, name): images for part, systems in parts.items() for name, images in systems.items()}
    total = sum(len(images) for images in jobs.values())
    if not workers:
        workers = min(os.cpu_count() or 1, len(jobs)) if total >= PARALLEL_MIN_FRAMES else 1
    if workers == 1:
        tracked = {(part, name): track_generated(images, mode, f"{name} frames {part}") for (part, name), images in jobs.items()}
    else:
        tracked = _tracked_in_workers(jobs, mode, workers, total)
    return {part: {name: tracked[part, name] for name in systems} for part, systems in parts.items()}


def _tracked_in_workers(jobs: dict[tuple[str, str], np.ndarray], mode: Mode, workers: int,
                        total: int) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    context = multiprocessing.get_context("spawn")   # a fork would copy MediaPipe's and torch's threads
    with ProcessPoolExecutor(workers, mp_context=context) as pool, \
            progress_task(f"tracking {len(jobs)} systems' frames", total) as task:
        futures = {pool.submit(_tracked, images, mode.name, f"{name} frames {part}"): (part, name)
                   for (part, name), images in jobs.items()}
        for future in as_completed(futures):
            task.advance(len(jobs[futures[future]]))
        return {key: future.result() for future, key in futures.items()}


def _tracked(images: np.ndarray, mode_name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    return MODES[mode_name].track_generated(images, TRACKING_UPSCALE, lambda frames: frames, what)
