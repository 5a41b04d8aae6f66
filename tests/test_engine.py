"""The engine and the modes: one proxy window for training and inference, the stream a front end
drives, and the layout rules that keep modes and pipelines apart."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from reenact.data import proxy_windows
from reenact.drive import Drive, detection_frame
from reenact.modes import BODY, FACE, MODES
from reenact.proxy_window import ProxyWindow
from reenact.reenactment import blacken_padding
from tests.conftest import REPO


def test_the_streamed_window_with_wait_is_trainings_window_clamped_to_the_clip():
    proxies = torch.arange(7 * 2 * 3 * 3, dtype=torch.uint8).reshape(7, 2, 3, 3)
    window = ProxyWindow(window=5, lookahead="wait")
    streamed = [w for t in range(7) for w, _ in window.push(proxies[t], t)] + [w for w, _ in window.flush()]
    gathered = proxy_windows(proxies, torch.arange(7), 5, 0, 7)
    assert len(streamed) == 7 and torch.equal(torch.stack(streamed), gathered)


def test_every_mode_is_registered_under_its_name_with_what_differs():
    assert MODES == {"body": BODY, "face": FACE}
    assert (BODY.who, FACE.who) == ("person", "face")
    assert BODY.stabiliser.sparse_proxy and not FACE.stabiliser.sparse_proxy
    assert FACE.has_expressions and not BODY.has_expressions


def test_the_padding_past_the_targets_video_is_black():
    frame = np.full((64, 64, 3), 200, np.uint8)
    target = {"crop": {"x": -100, "y": 0, "size": 640}, "source_size": [600, 640]}
    padding = BODY.padding(target, 64)             # 10 source pixels a pixel: columns 0 to 9 lie past the video
    assert padding[:, :10].all() and not padding[:, 10:].any()
    shown = blacken_padding(frame, padding)
    assert (shown[:, :10] == 0).all() and (shown[:, 10:] == 200).all()
    assert FACE.padding(target, 64) is None and BODY.padding({**target, "crop": {"x": 0, "y": 0, "size": 600}}, 64) is None
    coverage = BODY.footage_coverage({**target, "crop": {"x": -105, "y": 0, "size": 640}}, 64)   # half of column 10 past it
    assert coverage[:, :10].max() == 0 and coverage[:, 10] == pytest.approx(0.5) and coverage[:, 11:].min() == 1
    assert FACE.footage_coverage(target, 64) is None and BODY.footage_coverage({"crop": target["crop"]}, 64) is None


def test_a_frame_larger_than_the_detection_size_is_shrunk_to_it_and_a_smaller_one_is_not():
    frame = np.zeros((480, 1280, 3), np.uint8)
    assert detection_frame(frame, 640).shape == (240, 640, 3)
    assert detection_frame(frame, 2000) is frame


def test_a_drive_carries_what_the_engine_needs_after_the_translator():
    drive = Drive(np.zeros((4, 4, 3), np.uint8), head=np.array([1, 2, 1], np.float32))
    assert drive.face_crop is None and drive.points is None and drive.head[2] == 1


MODE_NAME_COMPARISON = re.compile(r"""(==|!=|\bis\b|\bin\b)\s*\(?\s*["'](body|face)["']|["'](body|face)["']\s*(==|!=)""")


def python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in (REPO / folder).rglob("*.py")] + [REPO / "cli.py"]


def test_no_code_outside_the_modes_compares_mode_names():
    offending = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for path in python_files("reenact", "pipelines") if "modes" not in path.relative_to(REPO).parts
                 for number, line in enumerate(path.read_text().splitlines(), 1) if MODE_NAME_COMPARISON.search(line)]
    assert not offending, "\n".join(offending)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def test_the_front_ends_are_thin_shells_over_the_engine_that_import_no_other_pipeline():
    for name in ("transfer", "live", "eval"):
        path = REPO / "pipelines" / f"{name}.py"
        assert len(path.read_text().splitlines()) < 150, path
        assert not [module for module in imported_modules(path) if module.startswith("pipelines")], path
        assert "reenact.reenactment" in imported_modules(path), path


def test_inference_does_not_import_training():
    for path in (REPO / "reenact" / "reenactment.py", REPO / "reenact" / "enhancer.py", REPO / "reenact" / "checkpoint.py"):
        assert not any(module.startswith("reenact.training") for module in imported_modules(path)), path


def test_the_mode_packages_do_not_import_each_other_in_a_loop():
    """render/ holds the rasterizer only; face/ may use body/'s nothing, body/ face/'s feature outlines."""
    folders = {name: REPO / "reenact" / name for name in ("body", "face", "render")}
    uses = {name: {module.split(".")[1] for path in folder.glob("*.py") for module in imported_modules(path)
                   if module.startswith("reenact.") and module.split(".")[1] in folders and module.split(".")[1] != name}
            for name, folder in folders.items()}
    assert uses["render"] == set() and "body" not in uses["face"], uses


def test_a_checkpoint_target_without_what_the_drivers_read_fails_with_one_line():
    import pytest

    from reenact.errors import ReenactError

    target = {"subject": "s", "subject_resolution": 96, "fps": 25.0, "source_size": [64, 64], "track_config": {},
              "crop": {}}
    with pytest.raises(ReenactError, match="x.ckpt: the checkpoint's body target lacks ground; train it again"):
        BODY.check_target(target, "x.ckpt")
    BODY.check_target({**target, "ground": {}}, "x.ckpt")
