"""The benchmark runs and reports every figure (no timing assertions: the machine may be busy)."""

from __future__ import annotations

import json

import pytest

from lightmark.cli import _int_list, main
from lightmark.engine.benchmark import benchmark_images, centre_box, dlib_shape_predictor_path, run_benchmark
from lightmark.engine.export import export_onnx
from lightmark.models import create_model, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.pt"
    save_checkpoint(path, create_model("shufflenetv2_x0_5_heatmap", input_size=64))
    export_onnx(path, path.with_suffix(".onnx"))  # the benchmark times the twin (no in-memory export)
    return path


def _check_figures(d: dict) -> None:
    for key in ("median", "p90", "mean", "min", "runs"):
        assert key in d and d[key] >= 0


def test_run_benchmark_report(checkpoint):
    report = run_benchmark(checkpoint, threads=(1,), runs=3, warmup=1, batch_size=4)
    d = report.to_dict()
    assert {"model", "settings", "machine", "results", "dlib", "ratios"} <= set(d)
    for key in ("params", "size_mb", "gmacs", "input_size", "onnx_mb", "checkpoint_mb", "onnx_source"):
        assert key in d["model"]
    assert d["model"]["input_size"] == 64 and d["model"]["params"] > 0
    assert d["model"]["onnx_source"] == str(checkpoint.with_suffix(".onnx"))
    (row,) = d["results"]
    assert row["threads"] == 1
    for backend in ("torch", "onnx"):
        for key in ("latency_ms", "batch_ms", "end_to_end_ms"):
            _check_figures(row[backend][key])
        assert row[backend]["latency_ms"]["runs"] == 3
        assert row[backend]["throughput_fps"] > 0
    if dlib_shape_predictor_path() is None:
        assert d["dlib"] is None and d["ratios"] == {}
    else:
        _check_figures(d["dlib"]["latency_ms"])
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


def test_benchmark_images_and_centre_box():
    imgs = benchmark_images(count=5, size=96)
    assert len(imgs) == 5 and imgs[0].shape == (96, 96, 3) and imgs[0].dtype.name == "uint8"
    x0, y0, x1, y1 = centre_box(384, 384)
    assert x1 - x0 == y1 - y0 and abs((x0 + x1) / 2 - 192) <= 1
