"""The benchmark runs and reports every figure (no assertion on how fast: the machine may be busy), the timing
helpers it shares with the Predictor and evaluation, and scoped thread settings."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import lightmark.engine.benchmark as benchmark
from lightmark.cli import _int_list, main
from lightmark.engine.baselines import dlib_shape_predictor_path
from lightmark.engine.benchmark import benchmark_images, run_benchmark
from lightmark.engine.export import export_onnx
from lightmark.engine.timing import latency, time_calls, timing_stats
from lightmark.models import create_model, save_checkpoint
from lightmark.utils import scoped_threads


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.pt"
    save_checkpoint(path, create_model("shufflenetv2_x0_5_heatmap", input_size=64))
    export_onnx(path, path.with_suffix(".onnx"))  # the benchmark times the twin (no in-memory export)
    return path


def _check_figures(d: dict, runs: int) -> None:
    assert set(d) == {"median", "p90", "mean", "min", "runs"} and d["runs"] == runs
    assert 0 < d["min"] <= d["median"] <= d["p90"] and d["min"] <= d["mean"]  # a real call takes some time


def test_run_benchmark_report(checkpoint):
    before = torch.get_num_threads(), cv2.getNumThreads()
    report = run_benchmark(checkpoint, threads=(1,), runs=3, warmup=1, batch_size=4)
    assert (torch.get_num_threads(), cv2.getNumThreads()) == before  # thread settings restored
    d = report.to_dict()
    assert {"model", "settings", "machine", "results", "dlib", "ratios"} <= set(d)
    for key in ("params", "size_mb", "gmacs", "input_size", "onnx_mb", "checkpoint_mb", "onnx_source"):
        assert key in d["model"]
    assert d["model"]["input_size"] == 64 and d["model"]["params"] > 0
    assert d["model"]["onnx_source"] == str(checkpoint.with_suffix(".onnx"))
    (row,) = d["results"]
    assert row["threads"] == 1
    for backend in ("torch", "onnx"):
        for key, runs in (("latency_ms", 3), ("batch_ms", 5), ("end_to_end_ms", 3)):  # batches: max(5, runs // 20)
            _check_figures(row[backend][key], runs)
        fps = 4 / (row[backend]["batch_ms"]["median"] / 1000)
        assert row[backend]["throughput_fps"] == pytest.approx(fps, rel=1e-3)  # batch 4 at the median time
    if dlib_shape_predictor_path() is None:
        assert d["dlib"] is None and d["ratios"] == {}
    else:
        _check_figures(d["dlib"]["latency_ms"], 3)
        assert len(d["ratios"]) == 3 and all(v > 0 for v in d["ratios"].values())
    table = report.table()
    assert "onnx" in table and "torch" in table and "GMACs" in table
    json.dumps(d)  # serialisable


def test_cli_benchmark_json(checkpoint, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["benchmark", "--model", str(checkpoint), "--threads", "1", "--runs", "2", "--warmup", "1"]
    assert main([*argv, "--batch-size", "2", "--no-dlib", "--json", str(out), "--quiet"]) == 0
    d = json.loads(out.read_text())
    assert [r["threads"] for r in d["results"]] == [1] and d["dlib"] is None
    assert "face ms" in capsys.readouterr().out


def test_cli_benchmark_threads_option(capsys):
    assert _int_list("1,2") == [1, 2] and _int_list("4") == [4]
    with pytest.raises(SystemExit):
        main(["benchmark", "--threads", "one"])
    with pytest.raises(SystemExit):
        main(["benchmark", "--threads", "0"])


def test_benchmark_images() -> None:
    imgs = benchmark_images(count=5, size=96)
    assert len(imgs) == 5 and imgs[0].shape == (96, 96, 3) and imgs[0].dtype.name == "uint8"
    assert not np.array_equal(imgs[0], imgs[1])  # a face drawing and its darkened, rotated copy


def test_dlib_is_timed_on_the_evaluation_centre_box(monkeypatch) -> None:
    """The benchmark times dlib on the box the evaluation falls back to (one rule: baselines.centre_box)."""
    seen = []

    class _FakeDlib:
        model_path, version = "fake.dat", "0"

        def predict(self, image, box):
            seen.append((image.shape[:2], box))
            return np.zeros((68, 2), np.float32)

    monkeypatch.setattr(benchmark, "DlibPredictor", _FakeDlib)
    images = [np.zeros((384, 384, 3), np.uint8), np.zeros((300, 600, 3), np.uint8)]
    d = benchmark._time_dlib(images, runs=3, warmup=1, say=lambda *a: None)
    assert d["model"] == "fake.dat" and d["latency_ms"]["runs"] == 3
    # warm-up + 3 runs cycle through the images
    assert seen == [((384, 384), (64, 64, 319, 319)), ((300, 600), (200, 50, 399, 249))] * 2


def test_timing_stats_of_known_times() -> None:
    s = timing_stats([4.0, 1.0, 10.0, 2.0, 3.0])
    # median of 1 2 3 4 10 is 3; p90 interpolates between 4 and 10 at 0.6: 7.6
    assert s == {"median": 3.0, "p90": 7.6, "mean": 4.0, "min": 1.0, "runs": 5}
    assert timing_stats([1.23456789])["median"] == 1.2346  # rounded to 0.1 us
    with pytest.raises(ValueError):
        timing_stats([])


def test_time_calls_warms_up_then_times_each_call() -> None:
    calls = []
    ms = time_calls(lambda: calls.append(1), runs=4, warmup=3)
    assert len(calls) == 7 and len(ms) == 4
    calls.clear()
    assert latency(lambda: calls.append(1), runs=5, warmup=2)["runs"] == 5 and len(calls) == 7


def test_scoped_threads_sets_and_restores() -> None:
    old_torch, old_cv = torch.get_num_threads(), cv2.getNumThreads()
    target = 1 if old_torch != 1 else 2
    with scoped_threads(target, opencv=True):
        assert torch.get_num_threads() == target and cv2.getNumThreads() == target
    assert (torch.get_num_threads(), cv2.getNumThreads()) == (old_torch, old_cv)
    with pytest.raises(RuntimeError, match="boom"), scoped_threads(target):
        assert torch.get_num_threads() == target and cv2.getNumThreads() == old_cv  # torch only by default
        raise RuntimeError("boom")
    assert torch.get_num_threads() == old_torch  # restored on error too
    with scoped_threads(None):
        assert torch.get_num_threads() == old_torch
