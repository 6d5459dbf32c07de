"""Speed benchmark: per-face latency and batch throughput of the landmark model with torch and ONNX Runtime on
each thread count, end-to-end :meth:`Predictor.predict` latency (crop included), model cost figures, and dlib's
68-point shape predictor on the same face crops when ``dlib`` and ``face_recognition_models`` are installed
(``pip install 'lightmark[dlib]'``).

Everything runs through the public :class:`~lightmark.engine.predict.Predictor` API: the ONNX graph is the one
``Predictor(model, backend="onnx")`` picks (the checkpoint's up-to-date twin, else an in-memory export), and each
thread count gets its own predictors (:meth:`Predictor.with_threads`). Timings
(:mod:`lightmark.engine.timing`) are wall-clock medians and 90th percentiles after a warm-up; they depend on what
else the machine runs, so the report records the load average at the start.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import LightmarkError
from ..models import LandmarkModel, model_summary, resolve_model_path
from ..utils import scoped_threads
from .baselines import DLIB_HINT, DlibPredictor, centre_box
from .predict import Predictor
from .timing import time_calls, timing_stats


def benchmark_images(data: str | os.PathLike | None = None, count: int = 32, size: int = 384) -> list[np.ndarray]:
    """Face crops to time on: the first ``count`` images of a dataset folder, else synthetic face drawings of
    ``size`` px (timing barely depends on the content)."""
    if data is not None:
        from ..data.formats import load_dataset
        from ..data.images import read_image

        return [read_image(s.image_path) for s in load_dataset(data).samples[:count]]
    from .export import verification_inputs

    faces = []
    for i in range((count + 1) // 2):
        batch = verification_inputs(size, seed=i).transpose(0, 2, 3, 1)
        faces += [batch[1], batch[2]]
    return [np.ascontiguousarray(f.clip(0, 255).astype(np.uint8)) for f in faces[:count]]


@dataclass
class BenchmarkReport:
    """All figures of one benchmark run; ``table()`` prints them, ``to_dict()`` serialises them."""

    model: dict
    settings: dict
    machine: dict
    results: list[dict] = field(default_factory=list)  # one per thread count
    dlib: dict | None = None
    ratios: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "settings": self.settings,
            "machine": self.machine,
            "results": self.results,
            "dlib": self.dlib,
            "ratios": self.ratios,
        }

    def table(self) -> str:
        m = self.model
        batch_col, e2e_col = f"batch {self.settings['batch_size']} faces/s", "predict() ms (med / p90)"
        lines = [
            f"model {m['name']} @ {m['input_size']} px: {m['params'] / 1e6:.2f} M params, {m['size_mb']:.2f} MB "
            f"float32, {m['gmacs']:.3f} GMACs; onnx {m['onnx_mb']:.2f} MB ({m['onnx_source']})",
            f"{'threads':>7} {'backend':<8} {'face ms (med / p90)':>20} {batch_col:>18} {e2e_col:>25}",
        ]
        for r in self.results:
            for b in ("torch", "onnx"):
                lat, e2e = r[b]["latency_ms"], r[b]["end_to_end_ms"]
                lines.append(
                    f"{r['threads']:>7} {b:<8} {lat['median']:>9.3f} / {lat['p90']:<8.3f} "
                    f"{r[b]['throughput_fps']:>18.1f} {e2e['median']:>12.3f} / {e2e['p90']:<10.3f}"
                )
        if self.dlib is not None:
            d = self.dlib["latency_ms"]
            lines.append(
                f"{'1':>7} {'dlib':<8} {d['median']:>9.3f} / {d['p90']:<8.3f} {'-':>18} (68-point ERT on the face box)"
            )
        for k, v in self.ratios.items():
            what = k.removeprefix("dlib_over_").replace("_", " ")
            faster = f"lightmark {v:.2f}x faster" if v >= 1 else f"dlib {1 / v:.2f}x faster"
            lines.append(f"dlib 68-pt vs lightmark {what} (median per face): {faster}")
        lines.append(
            f"load average at start {self.machine['loadavg'][0]:.2f} on {self.machine['cpu_count']} CPUs "
            f"(timings under load are slower and noisier)"
        )
        return "\n".join(lines)


def run_benchmark(
    model: str | os.PathLike | LandmarkModel | None = None,
    threads: Sequence[int] = (1, 2),
    runs: int = 300,
    batch_size: int = 32,
    warmup: int = 20,
    data: str | os.PathLike | None = None,
    with_dlib: bool = True,
    progress: bool = False,
) -> BenchmarkReport:
    """Time the model; see the module docstring. ``runs`` timed calls per figure (batch figures use
    ``max(5, runs // 20)`` batches).

    Returns:
        a :class:`BenchmarkReport`.
    """
    say = print if progress else (lambda *a, **k: None)
    source = None if isinstance(model, LandmarkModel) else resolve_model_path(model)
    onnx = Predictor(model if source is None else source, backend="onnx")  # holds the torch model too
    images = benchmark_images(data, count=max(batch_size, 1))
    crops = np.stack([onnx.crop(img)[0] for img in images])  # (N, S, S, 3) uint8
    x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), np.float32)  # (N, 3, S, S) model inputs
    inputs = _Inputs(images, x[:1], np.ascontiguousarray(np.resize(x, (batch_size, *x.shape[1:]))))
    n_batches = max(5, runs // 20)
    report = BenchmarkReport(
        model=_model_figures(onnx, source),
        settings={
            "threads": list(threads),
            "runs": runs,
            "warmup": warmup,
            "batch_size": batch_size,
            "batch_runs": n_batches,
            "images": str(data) if data else "synthetic face drawings",
            "image_size": list(images[0].shape[:2]),
        },
        machine=_machine(),
    )
    for t in threads:
        report.results.append(_time_thread_count(onnx, int(t), inputs, runs, warmup, n_batches, say))
    if with_dlib:
        report.dlib = _time_dlib(images, runs, warmup, say)
    report.ratios = _dlib_ratios(report)
    return report


@dataclass
class _Inputs:
    """What is timed: the images (end to end), one model input (batch 1) and a batch of them."""

    images: list[np.ndarray]
    x1: np.ndarray  # (1, 3, S, S) float32
    xb: np.ndarray  # (batch, 3, S, S) float32


def _model_figures(pred: Predictor, source: Path | None) -> dict:
    """Name, parameters, size, GMACs of the model; sizes of its checkpoint and of the ONNX graph timed."""
    graph = pred.onnx_graph
    onnx_size = len(graph) if isinstance(graph, bytes) else graph.stat().st_size
    return {
        "name": pred.config.name,
        **model_summary(pred.model),
        "checkpoint": str(source) if source else None,
        "checkpoint_mb": round(source.stat().st_size / 1e6, 3) if source else None,
        "onnx_mb": round(onnx_size / 1e6, 3),
        "onnx_source": str(pred.onnx_path) if pred.onnx_path is not None else "in-memory export",
    }


def _machine() -> dict:
    """What the figures depend on: CPUs, load at the start, library versions."""
    import cv2
    import onnxruntime

    return {
        "cpu_count": os.cpu_count(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else [float("nan")] * 3,
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
    }


def _time_thread_count(
    onnx: Predictor, threads: int, inputs: _Inputs, runs: int, warmup: int, n_batches: int, say: Callable
) -> dict:
    """Both backends on ``threads`` threads: the model's (torch's and ORT's per predictor) and, for the crop in
    ``predict``, OpenCV's (set for this step only, restored after)."""
    row: dict = {"threads": threads}
    predictors = {"torch": Predictor(onnx.model, backend="torch", threads=threads), "onnx": onnx.with_threads(threads)}
    with scoped_threads(threads, opencv=True):
        for backend, pred in predictors.items():
            say(f"threads {threads}: {backend} ...")
            row[backend] = _time_backend(pred, inputs, runs, warmup, n_batches)
    return row


def _time_backend(pred: Predictor, inputs: _Inputs, runs: int, warmup: int, n_batches: int) -> dict:
    """Batch-1 latency and batch throughput of the model alone (:meth:`Predictor.run_model`), and end-to-end
    :meth:`Predictor.predict` latency cycling through the images."""
    lat = time_calls(lambda: pred.run_model(inputs.x1), runs, warmup)
    bat = time_calls(lambda: pred.run_model(inputs.xb), n_batches, 2)
    e2e = time_calls(_cycling(pred.predict, inputs.images), runs, warmup)
    return {
        "latency_ms": timing_stats(lat),
        "batch_ms": timing_stats(bat),
        "throughput_fps": round(len(inputs.xb) / (float(np.median(bat)) / 1000.0), 2),
        "end_to_end_ms": timing_stats(e2e),
    }


def _cycling(fn: Callable, *args: Sequence) -> Callable[[], object]:
    """A call of ``fn`` on the next items of ``args`` (the first call takes item 0 of each, and so on round)."""
    k = [0]

    def call() -> object:
        i = k[0] % len(args[0])
        k[0] += 1
        return fn(*(a[i] for a in args))

    return call


def _time_dlib(images: list[np.ndarray], runs: int, warmup: int, say: Callable) -> dict | None:
    """dlib's 68-point shape predictor on the same crops, face box = :func:`~lightmark.engine.baselines.centre_box`
    (the evaluation's fall-back box; the detector is not timed). None when dlib is not installed."""
    try:
        dlib = DlibPredictor()
    except LightmarkError:
        say(f"dlib not measured: needs dlib and face_recognition_models ({DLIB_HINT})")
        return None
    say("dlib ...")
    boxes = [centre_box(img.shape[1], img.shape[0]) for img in images]
    ms = time_calls(_cycling(dlib.predict, images, boxes), runs, warmup)
    return {"latency_ms": timing_stats(ms), "model": str(dlib.model_path), "threads": 1, "version": dlib.version}


def _dlib_ratios(report: BenchmarkReport) -> dict:
    """Median dlib ms / median lightmark ms on the first thread count (> 1: lightmark is faster); {} without dlib."""
    if report.dlib is None or not report.results:
        return {}
    one = report.results[0]
    d = report.dlib["latency_ms"]["median"]
    th = one["threads"]
    return {
        f"dlib_over_onnx_predict_{th}t": round(d / one["onnx"]["end_to_end_ms"]["median"], 4),
        f"dlib_over_onnx_model_{th}t": round(d / one["onnx"]["latency_ms"]["median"], 4),
        f"dlib_over_torch_predict_{th}t": round(d / one["torch"]["end_to_end_ms"]["median"], 4),
    }
