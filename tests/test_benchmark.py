"""The benchmark runs and reports every figure (no assertion on how fast: the machine may be busy), times the
contenders in turn call by call on the same inputs and the same face box, and the timing helpers it shares with the
Predictor and evaluation; scoped thread settings."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import lightmark.engine.benchmark as benchmark
from conftest import require_shared
from lightmark.cli import _int_list, main
from lightmark.detectors.base import points_box
from lightmark.engine.baselines import dlib_shape_predictor_path
from lightmark.engine.benchmark import benchmark_faces, benchmark_images, run_benchmark
from lightmark.engine.export import export_onnx
from lightmark.engine.timing import latency, ratio_stats, time_calls, time_interleaved, timing_stats
from lightmark.models import create_model, save_checkpoint
from lightmark.utils import scoped_threads

HAS_DLIB = dlib_shape_predictor_path() is not None


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.pt"
    save_checkpoint(path, create_model("shufflenetv2_x0_5_heatmap", input_size=64))
    export_onnx(path, path.with_suffix(".onnx"))  # the benchmark times the twin (no in-memory export)
    return path


def _check_figures(d: dict, runs: int) -> None:
    assert set(d) == {"median", "p90", "mean", "min", "runs"} and d["runs"] == runs
    assert 0 < d["min"] <= d["median"] <= d["p90"] and d["min"] <= d["mean"]  # a real call takes some time


def _check_ratio(r: dict, runs: int) -> None:
    assert set(r) == {"median", "q25", "q75", "iqr", "of_medians", "runs"} and r["runs"] == runs
    assert 0 < r["q25"] <= r["median"] <= r["q75"] and r["iqr"] == pytest.approx(r["q75"] - r["q25"], abs=2e-4)


def test_run_benchmark_report(checkpoint):
    before = cv2.getNumThreads()
    report = run_benchmark(checkpoint, threads=(1, 2), runs=3, warmup=1, batch_size=4, count=6)
    assert cv2.getNumThreads() == before  # OpenCV's thread setting restored
    d = report.to_dict()
    assert set(d) == {"model", "settings", "machine", "latency", "throughput", "accuracy", "dlib", "raw_ms"}
    for key in ("params", "gmacs", "input_size", "onnx_mb", "onnx_nodes", "onnx_source"):
        assert key in d["model"]
    assert d["model"]["input_size"] == 64 and d["model"]["params"] > 0 and 0 < d["model"]["onnx_nodes"] < 300
    assert d["model"]["onnx_source"] == str(checkpoint.with_suffix(".onnx"))
    assert d["settings"]["images"] == 6 and d["accuracy"] is None  # synthetic drawings: no labels, no NME
    lat = d["latency"]
    names = {"predict", "network", "predict_refine1", "predict_auto"} | ({"dlib"} if HAS_DLIB else set())
    assert lat["threads"] == 1 and set(lat["ms"]) == names
    for name in names:
        _check_figures(lat["ms"][name], 3)
        assert len(d["raw_ms"]["latency"][name]) == 3
    assert [r["threads"] for r in d["throughput"]] == [1, 2]
    for row in d["throughput"]:
        for name, t in row["batch_ms"].items():
            _check_figures(t, 5)  # batches: max(5, runs // 10)
            assert row["faces_per_s"][name] == pytest.approx(4 / (t["median"] / 1000), rel=1e-3)
    if HAS_DLIB:
        assert set(lat["ratio_to_dlib"]) == names - {"dlib"}
        for r in lat["ratio_to_dlib"].values():
            _check_ratio(r, 3)
        for row in d["throughput"]:
            assert row["dlib_processes"] == row["threads"] and "dlib" in row["faces_per_s"]
            _check_ratio(row["speed_ratio_to_dlib"], 5)
        assert d["dlib"]["model"].endswith(".dat")
    else:
        assert d["dlib"] is None and lat["ratio_to_dlib"] == {}
    table = report.table()
    assert "predict(image, box=)" in table and "refine=1" in table and "faces/s" in table
    json.dumps(d)  # serialisable


def test_benchmark_on_labelled_crops_reports_accuracy():
    """With labels, every contender gets the 68-landmark box of the ground truth, and each path's NME is given."""
    data = require_shared("aflw2000/val")
    images, gt = benchmark_faces(data, count=4)
    assert len(images) == 4 and gt.shape == (4, 68, 2)
    report = run_benchmark(None, threads=(), runs=2, warmup=0, data=data, count=4, refine=False)
    d = report.to_dict()
    assert "68-landmark box" in d["settings"]["box"] and d["throughput"] == []
    assert set(d["accuracy"]) == {"predict"} | ({"dlib"} if HAS_DLIB else set())
    assert 0 < d["accuracy"]["predict"] < 10  # the shipped model on its own validation crops: a few percent
    assert "NME %" in report.table()


def test_contenders_get_the_same_face_and_box(monkeypatch):
    """Per-face calls: lightmark's predict(box=) and dlib see the same image and the same box (dlib's as its
    integer corners); the network alone gets that face's crop."""
    seen = []

    class _FakeDlib:
        def predict(self, image, box):
            seen.append(("dlib", id(image), box))
            return np.zeros((68, 2), np.float32)

    class _FakePredictor:
        def predict(self, image, box=None):
            seen.append(("predict", id(image), box))

        def run_model(self, x):
            seen.append(("network", x.shape))

    images = [np.zeros((50, 50, 3), np.uint8), np.zeros((60, 40, 3), np.uint8)]
    boxes = [(10.4, 11.6, 30.2, 33.5), (5.0, 6.0, 20.0, 30.0)]
    inputs = [np.zeros((1, 3, 8, 8), np.float32)] * 2
    faces = benchmark._Faces(images, boxes, inputs)
    calls = benchmark._latency_calls(_FakePredictor(), None, _FakeDlib(), faces)
    assert list(calls) == ["dlib", "predict", "network"]  # no refined or auto predictor given: not timed
    for r in range(3):
        for call in calls.values():
            call(r)
    assert [s[0] for s in seen] == ["dlib", "predict", "network"] * 3
    faces_seen = [s[1] for s in seen if s[0] != "network"]  # round r: face r % 2 for both
    assert faces_seen == [id(images[k]) for k in (0, 0, 1, 1, 0, 0)]
    assert seen[0][2] == (10, 12, 30, 34) and seen[1][2] == boxes[0]  # same box; dlib's rounded to its pixels
    assert seen[3][2] == (5, 6, 20, 30) and seen[4][2] == boxes[1]


def test_points_box():
    pts = np.array([[3.0, 9.0], [7.5, 2.0], [5.0, 4.0]])
    assert points_box(pts) == (3.0, 2.0, 7.5, 9.0)


def test_cli_benchmark_json(checkpoint, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["benchmark", "--model", str(checkpoint), "--threads", "1", "--runs", "2", "--warmup", "1"]
    assert main([*argv, "--batch-size", "2", "--no-dlib", "--json", str(out), "--quiet"]) == 0
    d = json.loads(out.read_text())
    assert [r["threads"] for r in d["throughput"]] == [1] and d["dlib"] is None
    assert "ms median" in capsys.readouterr().out


def test_cli_benchmark_threads_option(capsys):
    assert _int_list("1,2") == [1, 2] and _int_list("4") == [4]
    for value, problem in (("one", "expected comma-separated integers, got 'one'"),
                           ("0", "expected positive integers, got '0'")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main(["benchmark", "--threads", value])
        assert e.value.code == 2 and f"argument --threads: {problem}" in capsys.readouterr().err


def test_benchmark_images() -> None:
    imgs = benchmark_images(count=5, size=96)
    assert len(imgs) == 5 and imgs[0].shape == (96, 96, 3) and imgs[0].dtype.name == "uint8"
    assert not np.array_equal(imgs[0], imgs[1])  # a face drawing and its darkened, rotated copy


def test_time_interleaved_calls_in_turn_on_the_same_input() -> None:
    log = []
    calls = {k: (lambda r, k=k: log.append((k, r))) for k in "ABC"}
    ms = time_interleaved(calls, rounds=3, warmup=2)
    assert {k: len(v) for k, v in ms.items()} == {"A": 3, "B": 3, "C": 3}
    assert all(t >= 0 for v in ms.values() for t in v)
    warm, timed = log[:6], log[6:]
    assert warm == [("A", 0), ("B", 0), ("C", 0), ("A", 1), ("B", 1), ("C", 1)]
    # each round: every contender once, on that round's input, the order turning by one
    assert timed == [("A", 0), ("B", 0), ("C", 0), ("B", 1), ("C", 1), ("A", 1), ("C", 2), ("A", 2), ("B", 2)]
    log.clear()
    time_interleaved(calls, rounds=2, rotate=False)
    assert [k for k, _ in log] == ["A", "B", "C", "A", "B", "C"]


def test_ratio_stats_of_known_times() -> None:
    r = ratio_stats([2.0, 3.0, 8.0, 4.0, 1.0], [1.0, 2.0, 4.0, 4.0, 2.0])  # ratios 2 1.5 2 1 0.5
    assert r == {"median": 1.5, "q25": 1.0, "q75": 2.0, "iqr": 1.0, "of_medians": 1.5, "runs": 5}
    with pytest.raises(ValueError):
        ratio_stats([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        ratio_stats([], [])


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


def test_predictor_latency_cycles_through_the_images_given(monkeypatch) -> None:
    """``Predictor.latency_ms`` on a list calls ``predict`` on image ``i % n`` (warm-up calls included): the default
    reading costs more on some images than others, so it is timed over many; one array is one image; none refused."""
    from lightmark.engine.predict import Predictor
    from lightmark.errors import ConfigError

    p = Predictor(threads=1)
    seen = []
    monkeypatch.setattr(p, "predict", lambda image: seen.append(int(image[0, 0, 0])))
    images = [np.full((8, 8, 3), v, np.uint8) for v in (1, 2, 3)]
    stats = p.latency_ms(images, runs=5, warmup=2)
    assert stats["runs"] == 5 and seen == [1, 2, 3, 1, 2, 3, 1]
    seen.clear()
    p.latency_ms(images[1], runs=2, warmup=1)
    assert seen == [2, 2, 2]
    with pytest.raises(ConfigError):
        p.latency_ms([], runs=1)
    paths = []
    monkeypatch.setattr(p, "predict", lambda image: paths.append(image))
    p.latency_ms("face.jpg", runs=1, warmup=0)  # a path is one image, as predict takes it
    assert paths == ["face.jpg"]


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
