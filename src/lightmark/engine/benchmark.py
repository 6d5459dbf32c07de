"""Speed benchmark: lightmark against dlib's 68-point shape predictor, the contenders timed in turn, call by call.

Two sections, both on the same face crops and the same face boxes for every contender:

* **one face per call, one thread**: dlib's shape predictor given the face box, :meth:`Predictor.predict`
  with ``box=`` (the single-pass path: crop, network, mapping back), the network alone
  (:meth:`Predictor.run_model` on that face's crop) and the coarse-to-fine path (``Predictor(refine=1)``: a second
  pass on the upright crop framed by the first pass's points, for crops of unknown framing), each reported as its
  own cost.
* **batches**, on each thread count ``t``: :meth:`Predictor.predict_batch` on ``t`` threads (the batch cut into
  ``t`` chunks predicted side by side), the network alone on the batch's crops (the same ``t`` chunks side by
  side), and dlib on ``t`` processes (a pool of ``t`` workers, each with its own shape predictor and the images
  already in memory; in process for ``t = 1``), in faces/s.

The face box: with a labelled ``data`` folder, the box of each face's ground-truth landmarks (the "68-landmark box",
which is how lightmark frames a ``box=``), given to dlib as its rectangle too; on the synthetic drawings (no
labels), the box of lightmark's own whole-image prediction. With labels the report also gives each path's NME
(challenge normaliser, %) on those boxes, so a faster path cannot hide a loss of accuracy.

Timing (:func:`~lightmark.engine.timing.time_interleaved`): round ``r`` calls every contender once on input ``r``
(the contender order rotating), so a busy machine slows all contenders of a round alike; each contender's ratio to
dlib is given as the median and interquartile range of the per-call ratios. The ONNX graph is the one
``Predictor(model, backend="onnx")`` picks (the checkpoint's up-to-date twin, else an in-memory export).
"""

from __future__ import annotations

import multiprocessing
import os
import platform
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata as _metadata
from pathlib import Path

import numpy as np

from ..choices import Backend
from ..constants import CHALLENGE_SIZE
from ..detectors.base import points_box
from ..errors import LightmarkError, ModelError
from ..utils import opencv_threads
from .baselines import DLIB_HINT, DlibPredictor
from .predict import Framing, Predictor
from .timing import ratio_stats, time_interleaved, timing_stats

DLIB = "dlib"
PREDICT = "predict"
NETWORK = "network"
REFINE = "predict_refine1"
AUTO = "predict_auto"
BATCH = "predict_batch"
LATENCY_LABELS = {
    DLIB: "dlib shape predictor, given the box",
    PREDICT: "lightmark predict(image, box=)",
    NETWORK: "lightmark network alone (run_model)",
    REFINE: "lightmark predict(box=), refine=1",
    AUTO: "lightmark predict(image), no box (auto)",
}


def benchmark_images(
    data: str | os.PathLike | None = None, count: int = 32, size: int = CHALLENGE_SIZE
) -> list[np.ndarray]:
    """Face crops to time on: the first ``count`` images of a dataset folder, else synthetic face drawings of
    ``size`` px (timing barely depends on the content)."""
    return benchmark_faces(data, count, size)[0]


def benchmark_faces(
    data: str | os.PathLike | None = None, count: int | None = 32, size: int = CHALLENGE_SIZE
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """``(images, landmarks)``: the first ``count`` (None: all) images of a dataset folder and their (N, 68, 2)
    ground-truth landmarks (None unless every image has them), else ``count`` (None: 32) synthetic face drawings of
    ``size`` px and None."""
    if data is not None:
        from ..data.formats import load_dataset
        from ..data.images import read_image

        samples = load_dataset(data).samples[:count]
        if not samples:
            raise LightmarkError(f"{data}: no images to time on")
        images = [read_image(s.image_path) for s in samples]
        labelled = all(s.landmarks is not None for s in samples)
        return images, np.stack([s.landmarks for s in samples]).astype(np.float64) if labelled else None
    from .export import verification_inputs

    count = 32 if count is None else count
    faces = []
    for i in range((count + 1) // 2):
        batch = verification_inputs(size, seed=i).transpose(0, 2, 3, 1)
        faces += [batch[1], batch[2]]
    return [np.ascontiguousarray(f.clip(0, 255).astype(np.uint8)) for f in faces[:count]], None


def dlib_rect(box: Sequence[float]) -> tuple[int, int, int, int]:
    """A box as dlib's inclusive integer corners (what :meth:`DlibPredictor.predict` rounds it to)."""
    return tuple(round(float(v)) for v in box)  # type: ignore[return-value]


@dataclass
class BenchmarkReport:
    """All figures of one benchmark run; ``table()`` prints them, ``to_dict()`` serialises them."""

    model: dict
    settings: dict
    machine: dict
    latency: dict = field(default_factory=dict)  # {"ms": {name: stats}, "ratio_to_dlib": {name: ratio stats}, ...}
    throughput: list[dict] = field(default_factory=list)  # one per thread count
    accuracy: dict | None = None  # {name: NME %} with labelled data
    dlib: dict | None = None  # what dlib was (model file, version), None when not measured
    raw_ms: dict = field(default_factory=dict)  # every timed call, {"latency": {name: [ms]}, "batch_<t>t": ...}

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "settings": self.settings,
            "machine": self.machine,
            "latency": self.latency,
            "throughput": self.throughput,
            "accuracy": self.accuracy,
            "dlib": self.dlib,
            "raw_ms": self.raw_ms,
        }

    def table(self) -> str:
        m, s = self.model, self.settings
        cost = f"{m['params'] / 1e6:.2f} M params, {m['gmacs']:.3f} GMACs, " if m.get("params") is not None else ""
        lines = [
            f"model {m['name']} @ {m['input_size']} px: {cost}onnx {m['onnx_mb']:.2f} MB, {m['onnx_nodes']} nodes "
            f"({m['onnx_source']})",
            f"{s['images']} images ({s['data']}); face box: {s['box']}"
            + (
                "; every lightmark call reads the crop mirrored too (the model's flip test)"
                if s.get("flip_test")
                else ""
            ),
            "",
            f"One face per call, 1 thread, contenders in turn call by call ({s['runs']} rounds after "
            f"{s['warmup']} warm-up rounds)",
        ]
        lat = self.latency
        has_dlib = bool(lat.get("ratio_to_dlib"))
        head = f"  {'':<40} {'ms median':>9} {'p90':>7}"
        head += f"  {'time / dlib: median [IQR]':>27}" if has_dlib else ""
        head += f" {'NME %':>6}" if self.accuracy else ""
        lines.append(head)
        for name, label in LATENCY_LABELS.items():
            if name not in lat.get("ms", {}):
                continue
            t = lat["ms"][name]
            row = f"  {label:<40} {t['median']:>9.3f} {t['p90']:>7.3f}"
            if has_dlib:
                r = lat["ratio_to_dlib"].get(name)
                row += f"  {_fmt_ratio(r):>27}" if r else f"  {'1':>27}"
            if self.accuracy:
                row += f" {self.accuracy[name]:>6.2f}" if name in self.accuracy else f" {'':>6}"
            lines.append(row)
        if self.throughput:
            b = s["batch_size"]
            lines += [
                "",
                f"Batches of {b} faces, contenders in turn batch by batch ({s['batch_runs']} rounds): faces/s "
                f"(median batch time); dlib on as many processes as threads",
                f"  {'threads':>7} {'predict_batch':>13} {'network':>9} {'dlib':>9}  "
                + ("predict_batch / dlib faces/s: median [IQR]" if has_dlib else ""),
            ]
            for row in self.throughput:
                fps = row["faces_per_s"]
                d = f"{fps[DLIB]:>9.1f}" if DLIB in fps else f"{'-':>9}"
                r = f"  {_fmt_ratio(row['speed_ratio_to_dlib'])}" if row.get("speed_ratio_to_dlib") else ""
                lines.append(f"  {row['threads']:>7} {fps[BATCH]:>13.1f} {fps[NETWORK]:>9.1f} {d}{r}")
        if self.dlib is None and s.get("dlib_note"):
            lines.append(s["dlib_note"])
        la = self.machine["loadavg"]
        lines.append(
            f"load average {la[0]:.2f} at the start on {self.machine['cpu_count']} CPUs (a busy machine slows every "
            "contender of a round alike: trust the ratios over the times)"
        )
        return "\n".join(lines)


def _fmt_ratio(r: dict) -> str:
    return f"{r['median']:.3f} [{r['q25']:.3f}, {r['q75']:.3f}]"


def run_benchmark(
    model=None,
    threads: Sequence[int] = (1, 2),
    runs: int = 300,
    batch_size: int = 32,
    warmup: int = 20,
    data: str | os.PathLike | None = None,
    with_dlib: bool = True,
    progress: bool = False,
    count: int | None = None,
    refine: bool = True,
) -> BenchmarkReport:
    """Time lightmark against dlib; see the module docstring.

    Args:
        model: a checkpoint path / shipped track name / :class:`LandmarkModel` / None (the shipped default).
        threads: thread counts of the batch section (the per-face section runs on one thread).
        runs: timed rounds of the per-face section; the batch section times ``max(5, runs // 10)`` batches.
        batch_size: faces per batch.
        warmup: untimed rounds before the per-face section (the batch section warms up with 2).
        data: a dataset folder (all its images, or the first ``count``); None: synthetic drawings (``count`` of
            them, default ``max(32, batch_size)``).
        with_dlib: time dlib when it is installed (``pip install 'lightmark[dlib]'``).
        refine: also time the coarse-to-fine path (``refine=1``).

    Returns:
        a :class:`BenchmarkReport`.
    """
    say = print if progress else (lambda *a, **k: None)
    pred = _onnx_predictor(model)
    if data is None and count is None:
        count = max(32, batch_size)
    images, gt = benchmark_faces(data, count)
    if gt is not None:
        boxes, box_note = [points_box(g) for g in gt], "the 68-landmark box of the ground truth (every contender)"
    else:
        boxes = [points_box(pred.predict(img)) for img in images]
        box_note = "the box of lightmark's whole-image prediction (no labels; every contender)"
    dlib, dlib_note = _dlib(with_dlib)
    n_batches = max(5, runs // 10)
    report = BenchmarkReport(
        model=_model_figures(pred),
        settings={
            "runs": runs,
            "warmup": warmup,
            "threads": [int(t) for t in threads],
            "batch_size": batch_size,
            "batch_runs": n_batches,
            "images": len(images),
            "data": str(data) if data else "synthetic face drawings",
            "box": box_note,
            "image_size": list(images[0].shape[:2]),
            "dlib_note": dlib_note,
            "flip_test": pred.flip_test,  # the model's default reading (the shipped protocol model's: on)
        },
        machine=_machine(),
        dlib=None if dlib is None else {"model": str(dlib.model_path), "version": dlib.version},
    )
    faces = _Faces(images, boxes, [_model_input(pred, img, box) for img, box in zip(images, boxes, strict=True)])
    refined = _with_refine(pred, model) if refine else None
    auto = _with_auto(pred, model) if refine else None

    say(f"one face per call, 1 thread: {runs} rounds ...")
    calls = _latency_calls(pred, refined, dlib, faces, auto)
    report.raw_ms["latency"], report.latency = _time_per_face(calls, runs, warmup)
    if gt is not None:
        say("accuracy on the timed boxes ...")
        report.accuracy = _accuracy(calls, faces, gt)
    for t in threads:
        say(f"batches of {batch_size}, {t} thread(s): {n_batches} rounds ...")
        row, raw = _time_batches(pred, dlib, faces, int(t), batch_size, n_batches)
        report.throughput.append(row)
        report.raw_ms[f"batch_{int(t)}t"] = raw
    return report


def _time_per_face(calls: dict[str, Callable[[int], object]], runs: int, warmup: int) -> tuple[dict, dict]:
    """Time ``calls`` in turn on one thread: (raw ms per contender, the report's latency section)."""
    with opencv_threads(1):  # the crop's warp
        ms = time_interleaved(calls, runs, warmup)
    latency = {
        "threads": 1,
        "ms": {k: timing_stats(v) for k, v in ms.items()},
        "ratio_to_dlib": {k: ratio_stats(v, ms[DLIB]) for k, v in ms.items() if k != DLIB} if DLIB in ms else {},
    }
    return ms, latency


@dataclass
class _Faces:
    """What is timed: the images, one face box each, and each face's model input (1, 3, S, S) float32."""

    images: list[np.ndarray]
    boxes: list[tuple[float, float, float, float]]
    inputs: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.images)


def _onnx_predictor(model) -> Predictor:
    """The ONNX Runtime predictor timed (1 thread), single pass (refine 0)."""
    return Predictor(model, backend=Backend.ONNX, threads=1, refine=0, framing=Framing.WHOLE)


def _same_graph(pred: Predictor, model, **options) -> Predictor:
    """A one-thread predictor on ``pred``'s ONNX graph (no second twin check or export) with other ``options``."""
    given = model if model is not None and not isinstance(model, (str, os.PathLike)) else None
    src = given if given is not None else (pred.onnx_path or model)
    return Predictor(src, backend=Backend.ONNX, onnx=pred.onnx_graph, threads=1, **options)


def _with_refine(pred: Predictor, model) -> Predictor:
    """``pred`` with one refining pass, on the same ONNX graph."""
    return _same_graph(pred, model, refine=1)


def _with_auto(pred: Predictor, model) -> Predictor | None:
    """``pred``'s graph with the default framing of :meth:`Predictor.predict` without a box (``auto``: the crop and,
    where it is not sure of that reading, the detector's face, the more confident reading kept); None for models
    without a confidence (no ``auto``)."""
    auto = _same_graph(pred, model)
    return auto if auto.framing is Framing.AUTO else None


def _model_input(pred: Predictor, image: np.ndarray, box) -> np.ndarray:
    crop = pred.crop(image, box)[0]
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None], np.float32)


def _dlib(with_dlib: bool) -> tuple[DlibPredictor | None, str]:
    if not with_dlib:
        return None, "dlib not timed (--no-dlib)"
    try:
        return DlibPredictor(), ""
    except LightmarkError:
        return None, f"dlib not timed: needs dlib and face_recognition_models ({DLIB_HINT})"


def _latency_calls(
    pred: Predictor,
    refined: Predictor | None,
    dlib: DlibPredictor | None,
    faces: _Faces,
    auto: Predictor | None = None,
) -> dict[str, Callable[[int], object]]:
    """The per-face contenders, each a call on face ``r % N`` (``auto``: on the whole image, no box)."""
    n = len(faces)
    calls: dict[str, Callable[[int], object]] = {}
    if dlib is not None:
        rects = [dlib_rect(b) for b in faces.boxes]
        calls[DLIB] = lambda r: dlib.predict(faces.images[r % n], rects[r % n])
    calls[PREDICT] = lambda r: pred.predict(faces.images[r % n], box=faces.boxes[r % n])
    calls[NETWORK] = lambda r: pred.run_model(faces.inputs[r % n])
    if refined is not None:
        calls[REFINE] = lambda r: refined.predict(faces.images[r % n], box=faces.boxes[r % n])
    if auto is not None:
        calls[AUTO] = lambda r: auto.predict(faces.images[r % n])
    return calls


def _accuracy(calls: dict[str, Callable[[int], object]], faces: _Faces, gt: np.ndarray) -> dict:
    """NME (%, challenge normaliser, like ``lightmark evaluate``) of each landmark-returning contender over every
    face, on the same boxes as timed."""
    from ..metrics import challenge_norm, nme

    sizes = np.array([(img.shape[1], img.shape[0]) for img in faces.images])
    norm = challenge_norm(sizes)
    out = {}
    for name, call in calls.items():
        if name == NETWORK:  # crop pixels, not image pixels: its accuracy is predict()'s
            continue
        pts = np.stack([np.asarray(call(i), np.float64) for i in range(len(faces))])
        out[name] = round(float(nme(pts, gt, norm).mean()), 4)
    return out


_WORKER: dict = {}  # a dlib pool worker's state (set by _dlib_worker_init)


def _dlib_worker_init(model_path: str, images: list[np.ndarray], rects: list[tuple[int, int, int, int]]) -> None:
    _WORKER.update(dlib=DlibPredictor(model_path=model_path), images=images, rects=rects)


def _dlib_worker_run(indices: Sequence[int]) -> list[np.ndarray]:
    d, images, rects = _WORKER["dlib"], _WORKER["images"], _WORKER["rects"]
    return [d.predict(images[i], rects[i]) for i in indices]


def _dlib_pool(dlib: DlibPredictor, faces: _Faces, processes: int):
    """A pool of ``processes`` dlib workers holding the images (forked where possible: nothing is copied per
    call but the face indices)."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    rects = [dlib_rect(b) for b in faces.boxes]
    return ctx.Pool(processes, _dlib_worker_init, (str(dlib.model_path), faces.images, rects))


def _time_batches(
    pred: Predictor, dlib: DlibPredictor | None, faces: _Faces, threads: int, batch_size: int, rounds: int
) -> tuple[dict, dict]:
    """Batch round ``r``: faces ``r * batch_size ...`` (wrapping around) through predict_batch, the network alone
    and dlib on ``threads`` processes, in turn."""
    n = len(faces)
    batches = [[(k * batch_size + j) % n for j in range(batch_size)] for k in range(-(-n // batch_size))]
    xs = [np.concatenate([faces.inputs[i] for i in b]) for b in batches]
    pool = _dlib_pool(dlib, faces, threads) if dlib is not None and threads > 1 else None
    workers = ThreadPoolExecutor(threads)  # the network alone, on as many chunks side by side as predict_batch
    try:
        pred_t = pred.with_threads(threads)
        calls: dict[str, Callable[[int], object]] = {}
        if dlib is not None:
            rects = [dlib_rect(b) for b in faces.boxes]
            if pool is None:
                calls[DLIB] = lambda r: [dlib.predict(faces.images[i], rects[i]) for i in batches[r % len(batches)]]
            else:
                calls[DLIB] = lambda r: pool.map(
                    _dlib_worker_run, np.array_split(batches[r % len(batches)], threads), chunksize=1
                )

        def lightmark(r: int) -> np.ndarray:
            b = batches[r % len(batches)]
            return pred_t.predict_batch([faces.images[i] for i in b], [faces.boxes[i] for i in b])

        calls[BATCH] = lightmark
        calls[NETWORK] = lambda r: list(workers.map(pred_t.run_model, np.array_split(xs[r % len(xs)], threads)))
        with opencv_threads(threads):
            ms = time_interleaved(calls, rounds, warmup=2)
    finally:
        workers.shutdown()
        if pool is not None:
            pool.close()
            pool.join()
    row: dict = {
        "threads": threads,
        "batch_size": batch_size,
        "dlib_processes": threads if dlib is not None else None,
        "batch_ms": {k: timing_stats(v) for k, v in ms.items()},
        "faces_per_s": {k: round(batch_size / (float(np.median(v)) / 1000.0), 2) for k, v in ms.items()},
    }
    if DLIB in ms:  # faces/s ratio per round = dlib's time / lightmark's
        row["speed_ratio_to_dlib"] = ratio_stats(ms[DLIB], ms[BATCH])
        row["network_speed_ratio_to_dlib"] = ratio_stats(ms[DLIB], ms[NETWORK])
    return row, ms


def _model_figures(pred: Predictor) -> dict:
    """Name, input size and ONNX graph (size, nodes, source) of the model timed; parameters, float32 size and GMACs
    where they are known without torch (recorded in the graph) or torch can count them."""
    graph = pred.onnx_graph
    data = graph if isinstance(graph, bytes) else Path(graph).read_bytes()
    out = {
        "name": pred.config.name,
        "input_size": pred.input_size,
        "onnx_mb": round(len(data) / 1e6, 3),
        "onnx_nodes": _node_count(data),
        "onnx_source": str(pred.onnx_path) if pred.onnx_path is not None else "in-memory export",
        "params": None,
        "gmacs": None,
    }
    try:
        described = pred.describe()
    except (ImportError, ModelError):  # a graph recording no figures, and no torch or no .pt to count them on
        return out
    return {**out, **{k: described[k] for k in ("params", "size_mb", "gmacs")}}


def _node_count(data: bytes) -> int | None:
    try:
        import onnx
    except ImportError:
        return None
    return len(onnx.load_from_string(data).graph.node)


def _version_of(dist: str) -> str | None:
    try:
        return _metadata.version(dist)
    except _metadata.PackageNotFoundError:
        return None


def _machine() -> dict:
    """What the figures depend on: CPUs, load at the start, library versions."""
    import cv2

    return {
        "cpu_count": os.cpu_count(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else [float("nan")] * 3,
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": _version_of("onnxruntime"),
        "opencv": cv2.__version__,
        "dlib": _version_of("dlib-bin") or _version_of("dlib"),
        "torch": _version_of("torch"),
    }
