"""MediaPipe over a clip in worker processes: a contiguous chunk of frames each, one graph each.

MediaPipe's graphs run one frame after another on one core, so a clip tracked by one process
leaves the other cores idle. Each worker decodes its own chunk with ffmpeg and runs its own graph.
In video mode a graph tracks each frame from the previous one, and a chunk that started cold
would detect afresh where a single pass tracked on: each worker first shows its graph the
``warmup`` frames before its chunk and drops their results, so that at the chunk's first frame
its state has settled as a single pass's would have. What differs is bounded by
``docs/overview.md`` ("Parallel tracking") and checked by tests/test_parallel_tracking.py.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from reenact.io import VideoInfo, iter_frames
from reenact.progress import progress_task

# Below this many frames a chunk's warm-up and a worker's start-up (importing MediaPipe, about 1 s)
# cost more than the chunk saves.
MIN_CHUNK_FRAMES = 240
WARMUP_FRAMES = 30
PROGRESS_EVERY = 10


@dataclass(frozen=True)
class Chunk:
    first: int             # the first frame whose result is kept
    count: int | None      # frames kept; None: to the end of the clip (the frame count may be an estimate)
    warmup: int            # frames before ``first`` shown to the tracker and dropped

    @property
    def decode_from(self) -> int:
        return self.first - self.warmup


# A chunk's tracker: (frames from chunk.decode_from, the video, the chunk, its options) → per-frame
# arrays over every frame it was shown (warm-up included) and, under "counts", integers to add up.
ChunkTracker = Callable[[Iterable[np.ndarray], VideoInfo, Chunk, dict], dict]


def worker_count(requested: int, frame_count: int | None) -> int:
    """``requested`` workers, or for 0 one per core as far as chunks of MIN_CHUNK_FRAMES go."""
    if requested > 0:
        return requested
    if not frame_count:
        return 1
    return max(1, min(os.cpu_count() or 1, frame_count // MIN_CHUNK_FRAMES))


def plan_chunks(frame_count: int, workers: int, warmup: int = WARMUP_FRAMES) -> list[Chunk]:
    """``workers`` contiguous chunks covering ``frame_count`` frames; the last runs to the clip's end."""
    bounds = np.linspace(0, frame_count, workers + 1).round().astype(int)
    chunks = [Chunk(int(start), int(stop - start), min(warmup, int(start))) for start, stop in zip(bounds[:-1], bounds[1:])]
    return chunks[:-1] + [Chunk(chunks[-1].first, None, chunks[-1].warmup)]


def track_in_chunks(tracker: ChunkTracker, video: VideoInfo, size: tuple[int, int], options: dict,
                    workers: int, description: str) -> dict:
    """The tracker's arrays for the whole clip, frame for frame as one pass gives them (within the
    module's tolerance), from ``workers`` processes; ``counts`` summed over the chunks."""
    workers = worker_count(workers, video.frame_count)
    if workers == 1:
        with progress_task(description, video.frame_count) as task:
            frames = _advancing(iter_frames(video, size=size), lambda: task.advance(1), every=1)
            return tracker(frames, video, Chunk(0, None, 0), options)
    chunks = plan_chunks(video.frame_count, workers)
    context = multiprocessing.get_context("spawn")   # a fork would copy MediaPipe's and torch's threads
    progress_queue = context.Queue()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_set_progress_queue,
                             initargs=(progress_queue,)) as pool, progress_task(description, video.frame_count) as task:
        futures = [pool.submit(_track_chunk, tracker, video, size, chunk, options) for chunk in chunks]
        while not all(future.done() for future in futures):
            wait(futures, timeout=0.5)
            _drain(progress_queue, task)
        results = [future.result() for future in futures]
        _drain(progress_queue, task)
    return _joined(results)


def _track_chunk(tracker: ChunkTracker, video: VideoInfo, size: tuple[int, int], chunk: Chunk, options: dict) -> dict:
    frames = iter_frames(video, size=size, first_frame=chunk.decode_from,
                         max_frames=None if chunk.count is None else chunk.warmup + chunk.count)
    frames = _advancing(frames, lambda: _PROGRESS.put(PROGRESS_EVERY), every=PROGRESS_EVERY, warmup=chunk.warmup)
    result = tracker(frames, video, chunk, options)
    kept = {key: (value if key == "counts" else value[chunk.warmup:]) for key, value in result.items()}
    frame_count = len(next(value for key, value in kept.items() if key != "counts"))
    _PROGRESS.put(frame_count % PROGRESS_EVERY)       # the last frames, fewer than a report's worth
    return kept


_PROGRESS = None


def _set_progress_queue(progress_queue) -> None:
    global _PROGRESS
    _PROGRESS = progress_queue


def _advancing(frames: Iterable[np.ndarray], advance: Callable[[], None], every: int,
               warmup: int = 0) -> Iterator[np.ndarray]:
    """The frames, calling ``advance`` after every ``every`` frames past the first ``warmup``."""
    for index, frame in enumerate(frames, start=-warmup):
        yield frame
        if index >= 0 and (index + 1) % every == 0:
            advance()


def _drain(progress_queue, task) -> None:
    while True:
        try:
            task.advance(progress_queue.get_nowait())
        except queue.Empty:
            return


def _joined(results: list[dict]) -> dict:
    joined = {key: np.concatenate([result[key] for result in results]) for key in results[0] if key != "counts"}
    counts = {}
    for result in results:
        for key, value in result.get("counts", {}).items():
            counts[key] = counts.get(key, 0) + value
    return joined | {"counts": counts}
