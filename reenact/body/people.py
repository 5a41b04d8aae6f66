"""Finding everyone in a clip, so that body tracking follows the largest person.

MediaPipe's Holistic graph follows one person, the one its detector scores highest, which is
not always the largest. A scan of a few frames per second finds everyone: the static Pose
model finds one person, that person is blanked out, and it looks again. When more than one
person shows up, the tracker gets frames in which everyone but the largest (tallest) person is
blanked out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from reenact.progress import native_stderr_silenced

SCANS_PER_SECOND = 2
MAX_PEOPLE = 4
BOX_MARGIN = 0.15          # of the box's height, added on every side: limbs reach past the visible joints
MIN_VISIBILITY = 0.5
SAME_PERSON_OVERLAP = 0.5  # a detection mostly inside an earlier box is that person seen through the blanking
# Pose finds "people" in furniture now and then: a second person must be at least this fraction
# of the tallest one's height and be seen in two scans in a row.
MIN_RELATIVE_HEIGHT = 0.25


@dataclass
class PeopleScan:
    sampled: np.ndarray            # (S,) frame indices that were scanned
    people: list[np.ndarray]       # per sample, (n, 4) x1, y1, x2, y2 boxes, tallest first

    @property
    def crowded(self) -> int:
        """How many scanned frames show more than one person."""
        return sum(len(boxes) > 1 for boxes in self.people)

    def boxes_at(self, t: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The boxes to keep and to blank in frame t: those of the scans before and after it, so
        that a person moving between scans stays covered."""
        after = int(np.searchsorted(self.sampled, t))
        nearby = {min(after, len(self.sampled) - 1), max(after - 1, 0)}
        keep = [self.people[s][0] for s in nearby if len(self.people[s])]
        others = [box for s in nearby for box in self.people[s][1:]]
        return keep, others


def person_box(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """x1, y1, x2, y2 around (33, 3) pose landmarks (x, y in pixels, visibility), with a margin."""
    seen = landmarks[landmarks[:, 2] >= MIN_VISIBILITY, :2]
    if len(seen) < 4:
        return None
    low, high = seen.min(axis=0), seen.max(axis=0)
    margin = BOX_MARGIN * (high[1] - low[1])
    return np.clip(np.concatenate([low - margin, high + margin]), 0, [size[0], size[1], size[0], size[1]])


def overlap_fraction(box: np.ndarray, other: np.ndarray) -> float:
    """The fraction of ``box``'s area that lies inside ``other``."""
    width = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    height = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    return float(width * height / area)


def region(box: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of an image that a box covers."""
    x1, y1, x2, y2 = np.round(box).astype(int).clip(min=0)
    return slice(y1, y2), slice(x1, x2)


def blank(frame: np.ndarray, box: np.ndarray) -> None:
    frame[region(box)] = 0


def find_people(frame: np.ndarray, pose: object) -> np.ndarray:
    """(n, 4) boxes of everyone the static Pose model finds in an RGB frame, tallest first."""
    height, width = frame.shape[:2]
    work, boxes = frame.copy(), []
    for _ in range(MAX_PEOPLE):
        result = pose.process(work)
        if result.pose_landmarks is None:
            break
        points = np.array([(p.x * width, p.y * height, p.visibility) for p in result.pose_landmarks.landmark])
        box = person_box(points, (width, height))
        if box is None or any(overlap_fraction(box, earlier) > SAME_PERSON_OVERLAP for earlier in boxes):
            break
        boxes.append(box)
        blank(work, box)
    boxes.sort(key=lambda b: b[3] - b[1], reverse=True)
    boxes = [b for b in boxes if b[3] - b[1] >= MIN_RELATIVE_HEIGHT * (boxes[0][3] - boxes[0][1])]
    return np.array(boxes, np.float32).reshape(-1, 4)


def drop_flickers(people: list[np.ndarray]) -> list[np.ndarray]:
    """Keep only the tallest person in scans whose neighbours both saw a single person (or nobody)."""
    crowded = [len(boxes) > 1 for boxes in people]
    confirmed = [here and ((s > 0 and crowded[s - 1]) or (s + 1 < len(people) and crowded[s + 1]))
                 for s, here in enumerate(crowded)]
    return [boxes if keep else boxes[:1] for boxes, keep in zip(people, confirmed)]


def scan_people(frames: Iterable[np.ndarray], fps: float) -> PeopleScan:
    """Scan SCANS_PER_SECOND frames a second of RGB ``frames`` (all of the clip's, in order)."""
    import mediapipe as mp

    step = max(1, int(round(fps / SCANS_PER_SECOND)))
    sampled, people = [], []
    with native_stderr_silenced(), mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for t, frame in enumerate(frames):
            if t % step == 0:
                sampled.append(t)
                people.append(find_people(frame, pose))
    return PeopleScan(np.array(sampled, np.int64), drop_flickers(people))


def largest_person_only(frames: Iterable[np.ndarray], scan: PeopleScan, first_frame: int = 0) -> Iterator[np.ndarray]:
    """The frames (from frame ``first_frame`` of the clip) with everyone but the largest person
    blanked out (unchanged where the scans saw one person or nobody)."""
    for t, frame in enumerate(frames, start=first_frame):
        keep, others = scan.boxes_at(t)
        if not others:
            yield frame
            continue
        masked = frame.copy()
        for box in others:
            blank(masked, box)
        for box in keep:                # where a blanked box overlaps the person we follow, restore them
            masked[region(box)] = frame[region(box)]
        yield masked
