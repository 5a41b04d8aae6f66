"""Config resolution: defaults < TOML < command line, unknown keys and bad types are errors."""

import pytest

from reenact.config import (FACE_LANDMARK_BACKENDS, LR_SCHEDULE_NAMES, SMOOTHER_NAMES, TrackConfig, TrainConfig,
                            resolve_config)
from reenact.errors import ReenactError


def test_defaults_then_toml_then_options(tmp_path):
    toml = tmp_path / "train.toml"
    toml.write_text('preset = "tiny"\nsteps = 5\nlearning_rate = 1\n')
    config = resolve_config(TrainConfig, str(toml), {"subject": "s", "steps": 7, "out": None})
    assert (config.preset, config.steps, config.learning_rate, config.seed) == ("tiny", 7, 1.0, 0)
    assert isinstance(config.learning_rate, float)


def test_unknown_key_is_an_error_naming_the_file_and_the_key(tmp_path):
    toml = tmp_path / "track.toml"
    toml.write_text("resolutoin = 128\n")
    with pytest.raises(ReenactError, match=r"track.toml: unknown setting resolutoin"):
        resolve_config(TrackConfig, str(toml), {"video": "v.mp4"})


def test_wrong_type_and_bad_choice_are_errors():
    with pytest.raises(ReenactError, match="resolution: expected int"):
        resolve_config(TrackConfig, None, {"video": "v.mp4", "resolution": "big"})
    with pytest.raises(ReenactError, match="mode"):
        resolve_config(TrackConfig, None, {"video": "v.mp4", "mode": "hands"})


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ReenactError, match="no such config file"):
        resolve_config(TrackConfig, str(tmp_path / "none.toml"), {"video": "v"})
    bad = tmp_path / "bad.toml"
    bad.write_text("= nope")
    with pytest.raises(ReenactError, match="not valid TOML"):
        resolve_config(TrackConfig, str(bad), {"video": "v"})


def test_configs_are_frozen():
    config = resolve_config(TrackConfig, None, {"video": "v"})
    with pytest.raises(Exception):
        config.resolution = 5


def test_choice_lists_match_the_registries():
    from reenact.body.smoothing import SMOOTHERS
    from reenact.face.fitting import LAYOUTS
    from reenact.face.tracking import FIT_LAYOUTS
    from reenact.training import LR_SCHEDULES

    assert set(LR_SCHEDULE_NAMES) == set(LR_SCHEDULES)
    assert set(SMOOTHER_NAMES) == set(SMOOTHERS)
    assert set(FACE_LANDMARK_BACKENDS) == set(FIT_LAYOUTS) and set(FIT_LAYOUTS.values()) <= set(LAYOUTS)
