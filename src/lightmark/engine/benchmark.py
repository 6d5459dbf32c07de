"""Speed benchmark: per-face latency and batch throughput of the landmark model with torch and ONNX Runtime on
each thread count, end-to-end :meth:`Predictor.predict` latency (crop included), model cost figures, and dlib's
68-point shape predictor on the same face crops when ``dlib`` and ``face_recognition_models`` are installed
(``pip install 'lightmark[dlib]'``).

Timings are wall-clock medians and 90th percentiles after a warm-up; they depend on what else the machine runs,
so the report records the load average at the start.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..models import LandmarkModel, load_model, model_summary

DLIB_HINT = "pip install 'lightmark[dlib]'"


def _stats(ms: Sequence[float]) -> dict:
    a = np.asarray(ms, np.float64)
    return {
        "median": round(float(np.median(a)), 4),
        "p90": round(float(np.percentile(a, 90)), 4),
        "mean": round(float(a.mean()), 4),
        "min": round(float(a.min()), 4),
        "runs": int(a.size),
    }


def time_calls(fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def dlib_shape_predictor_path() -> Path | None:
    """The 68-point model file of ``face_recognition_models``, found without importing the package (its
    ``__init__`` needs ``pkg_resources``); None when dlib or the models are not installed."""
    if importlib.util.find_spec("dlib") is None:
        return None
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "models" / "shape_predictor_68_face_landmarks.dat"
        if p.is_file():
            return p
    return None


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


def centre_box(width: int, height: int, ratio: float = 1.9) -> tuple[int, int, int, int]:
    """The face box of a challenge-style crop: a square ``1 / ratio`` of the crop's side around its centre."""
    side = min(width, height) / ratio
    cx, cy = width / 2, height / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)), int(round(cy + side / 2))


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
    import cv2

    from .export import META_SOURCE_SHA256, file_sha256, onnx_bytes, onnx_metadata, ort_session
    from .predict import Predictor, onnx_twin

    if isinstance(model, LandmarkModel):
        net, source = model.eval(), None
    else:
        from ..models import resolve_model_path

        source = resolve_model_path(model)
        net = load_model(source)
    s = net.config.input_size

    # The ONNX graph: the checkpoint's up-to-date twin when there is one, else an in-memory export.
    blob, onnx_source = None, "in-memory export"
    twin = onnx_twin(source) if source is not None else None
    if twin is not None:
        meta = onnx_metadata(ort_session(twin, 1))
        if meta.get(META_SOURCE_SHA256) == file_sha256(source):
            blob, onnx_source = twin.read_bytes(), str(twin)
    if blob is None:
        blob = onnx_bytes(net)

    images = benchmark_images(data, count=max(batch_size, 1))
    probe = Predictor(net, backend="torch")
    crops = np.stack([probe.crop(img)[0] for img in images])  # (N, S, S, 3) uint8
    x_all = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), np.float32)
    x1, xb = x_all[:1], np.ascontiguousarray(np.resize(x_all, (batch_size, 3, s, s)))
    n_batches = max(5, runs // 20)
    old_threads, old_cv = torch.get_num_threads(), cv2.getNumThreads()
    summary = model_summary(net)
    report = BenchmarkReport(
        model={
            "name": net.config.name,
            **summary,
            "checkpoint": str(source) if source else None,
            "checkpoint_mb": round(source.stat().st_size / 1e6, 3) if source else None,
            "onnx_mb": round(len(blob) / 1e6, 3),
            "onnx_source": onnx_source,
        },
        settings={
            "threads": list(threads),
            "runs": runs,
            "warmup": warmup,
            "batch_size": batch_size,
            "batch_runs": n_batches,
            "images": str(data) if data else "synthetic face drawings",
            "image_size": list(images[0].shape[:2]),
        },
        machine={
            "cpu_count": os.cpu_count(),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else [float("nan")] * 3,
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
            "opencv": cv2.__version__,
        },
    )
    say = print if progress else (lambda *a, **k: None)
    try:
        for t in threads:
            torch.set_num_threads(int(t))
            cv2.setNumThreads(int(t))
            row: dict = {"threads": int(t)}
            sess = ort_session(blob, int(t))
            for backend in ("torch", "onnx"):
                say(f"threads {t}: {backend} ...")
                pred = Predictor(net, backend="torch")
                if backend == "onnx":
                    pred.session, pred.backend = sess, "onnx"
                row[backend] = _time_backend(net if backend == "torch" else sess, pred, images, x1, xb, runs, warmup)
            report.results.append(row)
        if with_dlib:
            report.dlib = _time_dlib(images, runs, warmup, say)
    finally:
        torch.set_num_threads(old_threads)
        cv2.setNumThreads(old_cv)
    if report.dlib is not None and report.results:
        one = report.results[0]
        d = report.dlib["latency_ms"]["median"]
        th = one["threads"]
        report.ratios = {  # median dlib ms / median lightmark ms: > 1 means lightmark is faster
            f"dlib_over_onnx_predict_{th}t": round(d / one["onnx"]["end_to_end_ms"]["median"], 4),
            f"dlib_over_onnx_model_{th}t": round(d / one["onnx"]["latency_ms"]["median"], 4),
            f"dlib_over_torch_predict_{th}t": round(d / one["torch"]["end_to_end_ms"]["median"], 4),
        }
    return report


def _time_backend(
    runner: LandmarkModel | object,
    pred: object,
    images: list[np.ndarray],
    x1: np.ndarray,
    xb: np.ndarray,
    runs: int,
    warmup: int,
) -> dict:
    """Batch-1 latency, batch throughput and end-to-end ``pred.predict`` latency of a torch model or an ORT
    session."""
    if isinstance(runner, torch.nn.Module):
        tx1, txb = torch.from_numpy(x1), torch.from_numpy(xb)

        def one() -> object:
            with torch.inference_mode():
                return runner(tx1)

        def many() -> object:
            with torch.inference_mode():
                return runner(txb)
    else:
        name = runner.get_inputs()[0].name

        def one() -> object:
            return runner.run(None, {name: x1})

        def many() -> object:
            return runner.run(None, {name: xb})

    lat = time_calls(one, runs, warmup)
    bat = time_calls(many, max(5, runs // 20), 2)
    k = [0]

    def predict_one() -> None:
        pred.predict(images[k[0] % len(images)])
        k[0] += 1

    e2e = time_calls(predict_one, runs, warmup)
    return {
        "latency_ms": _stats(lat),
        "batch_ms": _stats(bat),
        "throughput_fps": round(len(xb) / (float(np.median(bat)) / 1000.0), 2),
        "end_to_end_ms": _stats(e2e),
    }


def _time_dlib(images: list[np.ndarray], runs: int, warmup: int, say: Callable) -> dict | None:
    """dlib's 68-point shape predictor on the same crops, face box = the crop's centre box. None when absent."""
    path = dlib_shape_predictor_path()
    if path is None:
        say(f"dlib not measured: needs dlib and face_recognition_models ({DLIB_HINT})")
        return None
    import dlib

    say("dlib ...")
    sp = dlib.shape_predictor(str(path))
    rects = [dlib.rectangle(*centre_box(img.shape[1], img.shape[0])) for img in images]
    k = [0]

    def predict_one() -> np.ndarray:
        i = k[0] % len(images)
        k[0] += 1
        shape = sp(images[i], rects[i])
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    ms = time_calls(predict_one, runs, warmup)
    return {"latency_ms": _stats(ms), "model": str(path), "threads": 1, "version": dlib.__version__}
