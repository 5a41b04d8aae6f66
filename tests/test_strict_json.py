"""Every JSON file reenact writes is strict JSON: an undefined figure is null, never NaN or Infinity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reenact.files import strict_json, write_json
from tests.conftest import REPO, strict_loads


def test_undefined_figures_become_null(tmp_path):
    figures = {"psnr": 21.5, "identity_distance": float("nan"), "rows": [1.0, float("inf"), -math.inf],
               "nested": {"flicker": np.float64("nan"), "steps": 12}, "pair": (0.5, float("nan"))}
    write_json(tmp_path / "m.json", figures)
    read = strict_loads((tmp_path / "m.json").read_text())
    assert read == {"psnr": 21.5, "identity_distance": None, "rows": [1.0, None, None],
                    "nested": {"flicker": None, "steps": 12}, "pair": [0.5, None]}


def test_the_strict_reader_refuses_python_nan():
    with pytest.raises(ValueError, match="NaN"):
        strict_loads('{"a": NaN}')
    assert strict_json({"a": float("nan")}) == '{"a": null}'


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "benchmarks").glob("*.json")))
def test_the_shipped_benchmark_figures_are_strict(name):
    strict_loads((REPO / "benchmarks" / name).read_text())
