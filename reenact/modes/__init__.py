"""Body and face: everything that differs between the two kinds of subject, as one object each.

Code outside this package asks a subject's or checkpoint's mode (``mode_of``) for what it
needs; it never compares mode names.
"""

from __future__ import annotations

from reenact.errors import ReenactError
from reenact.modes.base import Mode
from reenact.modes.body import BODY
from reenact.modes.face import FACE

MODES: dict[str, Mode] = {BODY.name: BODY, FACE.name: FACE}


def mode_of(name: str, where: str = "") -> Mode:
    """The mode called ``name``; ``where`` names the file that said so, for the error."""
    if name not in MODES:
        raise ReenactError(f"{where + ': ' if where else ''}unknown mode {name!r} (this reenact knows {', '.join(MODES)})")
    return MODES[name]


def detect_mode(video, config) -> Mode:
    """Body when legs are visible in most of the first seconds, else face when a face is there."""
    from reenact.body import layout
    from reenact.body.tracker import holistic_model
    from reenact.io import iter_frames
    from reenact.progress import info, native_stderr_silenced

    frames = list(iter_frames(video, size=video.fit_within(config.detect_size), max_frames=int(3 * video.fps)))
    sampled = frames[:: max(1, len(frames) // 10)]
    knees = [layout.POSE["left_knee"], layout.POSE["right_knee"]]
    legs = faces = 0
    with native_stderr_silenced(), holistic_model() as model:
        for frame in sampled:
            result = model.process(frame)
            if result.pose_landmarks is not None:
                legs += max(result.pose_landmarks.landmark[k].visibility for k in knees) > 0.5
            faces += result.face_landmarks is not None
    mode = BODY if legs >= len(sampled) / 2 or faces < len(sampled) / 2 else FACE
    info(f"mode auto: chose {mode.name} (legs visible in {legs}/{len(sampled)} sampled frames, face in {faces})")
    return mode
