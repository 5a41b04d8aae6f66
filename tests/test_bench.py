"""`reenact bench train` and benchmarks/gpu_validate.py, on a machine without a GPU."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from pipelines import bench_train
from reenact.config import BenchTrainConfig
from reenact.errors import ReenactError
from tests.conftest import REPO, run_reenact, strict_loads


def gpu_validate():
    spec = importlib.util.spec_from_file_location("gpu_validate", REPO / "benchmarks" / "gpu_validate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_validate"] = module      # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_bench_train_prints_figures_on_cpu():
    result = run_reenact("bench", "train", "--preset", "tiny", "--batch-size", "1", "--steps", "1", "--warmup", "1",
                         "--device", "cpu", "--perceptual-loss", "vgg19")
    assert result.returncode == 0, result.stderr
    row = strict_loads(result.stdout.strip().splitlines()[-1])[0]
    assert row["variant"] == "fp32" and row["images_per_s"] > 0 and row["first_step_s"] > 0
    assert row["perceptual_loss"] == "vgg19" and row["face_enhancer"] and not row["tf32"]
    assert row["flops_per_step"] > 50e9 and row["tflops_per_s"] > 0     # 10 GFLOP without the VGG loss
    assert row["mfu"] is None and row["compile_s"] is None and row["recompiles"] is None
    assert row["peak_allocated_mb"] is None and row["peak_host_rss_mb"] > 0
    for heading in ("GFLOP/step", "TFLOP/s", "MFU", "first step s", "compile s", "recompiles", "alloc MB", "host RSS MB"):
        assert heading in result.stderr


@pytest.mark.parametrize("name, precision, peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.4), ("NVIDIA H100 80GB HBM3", "fp32", 66.9), ("NVIDIA H100 PCIe", "tf32", 378.0),
    ("NVIDIA H200", "bf16", 989.4), ("NVIDIA A100-SXM4-80GB", "fp32", 19.5), ("NVIDIA L40S", "bf16", 362.05),
    ("NVIDIA L4", "bf16", 121.0), ("NVIDIA H100 NVL", "bf16", None), ("NVIDIA GeForce RTX 4090", "bf16", None),
])
def test_mfu_peaks_come_from_the_device_name_and_precision(monkeypatch, name, precision, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert bench_train.peak_tflops(torch.device("cuda"), precision) == peak
    assert bench_train.peak_tflops(torch.device("cpu"), precision) is None


def test_variants_and_batch_sizes_are_checked():
    cpu = torch.device("cpu")
    assert bench_train.variant_names(BenchTrainConfig(), cpu) == ["fp32"]
    assert bench_train.variant_names(BenchTrainConfig(compile=True), cpu) == ["fp32", "compiled"]
    assert bench_train.variant_names(BenchTrainConfig(variants="bf16, bf16_channels_last"), cpu) == ["bf16", "bf16_channels_last"]
    with pytest.raises(ReenactError, match="unknown variant 'fp16'"):
        bench_train.variant_names(BenchTrainConfig(variants="fp16"), cpu)
    with pytest.raises(ReenactError, match="tf32 needs a CUDA device"):
        bench_train.variant_names(BenchTrainConfig(variants="tf32"), cpu)
    assert bench_train.parse_batch_sizes("8,16, 32") == [8, 16, 32] and bench_train.parse_batch_sizes(None) == []
    with pytest.raises(ReenactError, match="whole numbers"):
        bench_train.parse_batch_sizes("8,x")


def test_gpu_validate_without_a_gpu_says_so_in_one_line(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    assert gpu_validate().main(["--out", str(tmp_path / "r.json")]) == 0
    assert capsys.readouterr().out == "no CUDA device: nothing to validate (run this on a GPU machine)\n"
    assert not (tmp_path / "r.json").exists()


def test_synthetic_subject_loads_as_a_tracked_body(tmp_path):
    from reenact.subject import Subject

    folder = gpu_validate().write_synthetic_subject(tmp_path / "subject", frame_count=70, resolution=32)
    subject = Subject.load(folder)
    assert subject.mode.name == "body" and subject.frames().shape == (70, 32, 32, 3) and subject.proxies().shape == (70, 32, 32, 3)
    assert np.array_equal(subject.frames()[64], subject.frames()[0])       # a block of distinct frames, repeated
    heads = subject.mode.enhancer_heads(subject, 32)
    assert heads.shape == (70, 3) and heads[:, 2].all() and ((heads[:, :2] > 0) & (heads[:, :2] < 32)).all()
    assert subject.meta["ground"]["hips"] is not None and subject.meta["config"]["min_confidence"] > 0


def test_gpu_validate_table_lists_what_was_not_measured():
    module = gpu_validate()
    results = {"environment": {"device": "d", "torch": "t", "cuda": "c"}, "stages": {
        "bench_256": {"preset": "256", "rows": [{"variant": "fp32", "batch_size": 16, "images_per_s": 10.0, "step_ms": 8.0,
                                                  "flops_per_step": 38e12, "tflops_per_s": 47.5, "mfu": 0.71}],
                      "compile": None},
        "eval_face": {"skipped": "no clip"}}}
    table = module.markdown(results)
    assert "| 256 | fp32 | 16 | 10 | 8 | 38 | 47.5 | 71.0% |" in table and "- eval_face: no clip" in table


def test_gpu_validate_names_no_path_compiled_that_is_not():
    paths = gpu_validate().cuda_paths
    assert not [name for name in paths(None) if "compile" in name]
    compiled = {name: path for name, path in paths("inductor").items() if path.acceleration.compile_backend}
    assert set(compiled) == {"compile", "combined_compiled"}


def test_gpu_validate_runs_the_repo_cli_where_no_reenact_script_is_installed(monkeypatch, tmp_path):
    """A GPU machine that was handed a copy of the repo has python but no `reenact` script beside it."""
    module = gpu_validate()
    bare_bin = tmp_path / "bin"
    bare_bin.mkdir()
    python = bare_bin / "python3"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    context = module.Context(module.PROFILES["cpu"], "cpu", tmp_path, tmp_path, tmp_path / "r.json", {})
    finished = module.run_cli(context, "train", "--help", runner=False, log="help")
    assert finished.returncode == 0 and "--minutes" in finished.output
