"""Prediction: the two-line API (``Predictor()`` then ``predict(image)``) and batch prediction over folders."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..constants import CROP_SHIFT_UP, CROP_SIDE_RATIO
from ..data.formats import FaceDataset, Sample, load_dataset
from ..data.images import read_image
from ..data.transforms import (
    apply_gamma,
    crop_matrix,
    flip_landmarks,
    invert_affine,
    landmark_box,
    transform_points,
    upright_matrix,
    warp,
    whole_image_matrix,
)
from ..errors import ConfigError, ImageError, LightmarkError
from ..models import LandmarkModel, load_model, resolve_model_path
from ..utils import scoped_threads
from .timing import latency

Box = tuple[float, float, float, float]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx")


def onnxruntime_available() -> bool:
    """True when ``onnxruntime`` can be imported."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def onnx_twin(checkpoint: str | os.PathLike) -> Path | None:
    """``X.onnx`` beside checkpoint ``X.pt`` when it exists (whether it is up to date is checked on loading:
    see :meth:`Predictor.__init__`)."""
    twin = Path(checkpoint).with_suffix(".onnx")
    return twin if twin.is_file() and twin != Path(checkpoint) else None


def _twin_is_current(session, checkpoint: Path, twin: Path, config: dict) -> bool:
    """The ONNX twin was exported from this checkpoint: same SHA-256 when the file records one (exports by
    :func:`~lightmark.engine.export.export_onnx`), else same config and not older than the checkpoint."""
    import json

    from .export import META_CONFIG, META_SOURCE_SHA256, file_sha256, onnx_metadata

    meta = onnx_metadata(session)
    if META_SOURCE_SHA256 in meta:
        return meta[META_SOURCE_SHA256] == file_sha256(checkpoint)
    if META_CONFIG in meta and json.loads(meta[META_CONFIG]) != json.loads(json.dumps(config)):
        return False
    return twin.stat().st_mtime >= checkpoint.stat().st_mtime


def merge_flip(points: np.ndarray, mirrored: np.ndarray, width: int, perm: Sequence[int]) -> np.ndarray:
    """The flip test's average: (B, K, 2) points predicted on crops ``width`` px wide, and ``mirrored`` (B, K, 2)
    predicted on the same crops mirrored left-right, mapped back and re-ordered by the mirror permutation ``perm``
    (:func:`~lightmark.data.transforms.flip_landmarks`). float32."""
    points = np.asarray(points, np.float32)
    back = np.stack([flip_landmarks(m, width, tuple(perm)) for m in mirrored]) if len(mirrored) else points
    return (0.5 * (points + back)).astype(np.float32)


def box_matrix(box: Box, out_size: int, scale: float = 1.0) -> np.ndarray:
    """Crop matrix for a face box (x0, y0, x1, y1) taken as the face's landmark box (``scale`` enlarges it
    first): framed exactly like the training crops (see :func:`landmarks_matrix`)."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2.0, (y0 + y1) / 2.0, scale * max(x1 - x0, y1 - y0) / 2.0
    return landmarks_matrix(np.array([[cx - half, cy - half], [cx + half, cy + half]]), out_size)


def landmarks_matrix(
    landmarks: np.ndarray, out_size: int, ratio: float = CROP_SIDE_RATIO, shift_up: float = CROP_SHIFT_UP
) -> np.ndarray:
    """Crop matrix framing a face like the training crops, from its (K, 2) landmarks (e.g. the previous
    video frame's): side ``ratio`` x the landmark box, window shifted up by ``shift_up`` x side."""
    center, side = landmark_box(landmarks)
    side *= ratio
    return crop_matrix(center - np.array([0.0, shift_up * side]), side, out_size)


@dataclass
class PredictionResults:
    """Landmarks predicted for a set of images, in each image's own pixel coordinates."""

    names: list[str]
    landmarks: np.ndarray  # (N, K, 2) float32
    image_sizes: np.ndarray  # (N, 2) int (w, h)
    paths: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason) with skip_bad
    detected: np.ndarray | None = None  # (N,) bool: a face detector found the face (detector-based predictors)

    def __len__(self) -> int:
        return len(self.names)

    def save_submission(self, path: str | os.PathLike, zip_path: str | os.PathLike | None = None) -> None:
        """Write the challenge's ``solution.txt`` (and a zip holding it) atomically."""
        from ..submission import write_submission

        write_submission(path, self.names, self.landmarks, zip_path=zip_path)

    def save_json(self, path: str | os.PathLike) -> None:
        """Write ``[{"name", "width", "height", "landmarks": [[x, y] x K]}]`` atomically."""
        import json

        from ..utils import atomic_write

        rows = [
            {"name": n, "width": int(s[0]), "height": int(s[1]), "landmarks": np.round(p, 3).tolist()}
            for n, s, p in zip(self.names, self.image_sizes, self.landmarks, strict=True)
        ]
        with atomic_write(path) as f:
            json.dump({"predictions": rows, "skipped": [list(s) for s in self.skipped]}, f)

    def save_visualizations(self, out_dir: str | os.PathLike, limit: int | None = None) -> list[Path]:
        """Draw the landmarks on each image and write ``out_dir/<name>.jpg``."""
        from ..data.images import write_image
        from ..viz import draw_landmarks

        out_dir = Path(out_dir)
        written = []
        for i, (name, path) in enumerate(zip(self.names, self.paths, strict=False)):
            if limit is not None and i >= limit:
                break
            dst = out_dir / (Path(name).stem + ".jpg")
            write_image(dst, draw_landmarks(read_image(path), self.landmarks[i]))
            written.append(dst)
        return written


class Predictor:
    """68-point landmarks for face images.

    >>> predictor = Predictor()                    # the shipped model
    >>> points = predictor.predict(image_rgb)      # (68, 2) in image pixels

    ``image`` is an RGB uint8 array (or a path). By default the whole image is the face crop (like the
    challenge's crops); give ``box=(x0, y0, x1, y1)`` from a face detector, or ``landmarks=`` of the previous
    video frame, to crop first.

    Args:
        model: a checkpoint path, a shipped track name, a :class:`LandmarkModel` (used as is, never moved), or
            None for the shipped default.
        backend: ``"torch"``, ``"onnx"`` (ONNX Runtime: the checkpoint's ONNX twin ``X.onnx`` beside ``X.pt``
            when it is up to date, else an in-memory export) or ``"auto"`` (ONNX Runtime when it is installed and
            the model has an up-to-date twin, else torch).
        threads: threads of one forward pass of the model (None: the library defaults). ONNX Runtime gets them
            per session; torch has only a process-wide setting, so it is set for the forward pass and restored
            right after (:func:`~lightmark.utils.scoped_threads`): nothing else in the process is changed.
            Pre-processing (OpenCV's warp) keeps the process's setting.
        onnx: the ONNX graph (a file or serialized bytes) the ``"onnx"`` backend runs, used as given: no twin
            look-up, no export. Needs ``backend`` ``"onnx"`` or ``"auto"``.
        flip_test: average with the prediction on the mirrored crop (:func:`merge_flip`).
        refine: extra passes, each on the upright crop framed around the previous pass's points
            (:func:`~lightmark.data.transforms.upright_matrix` with the model's ``fine_ratio`` / ``fine_shift_up``):
            the coarse-to-fine prediction of models trained for it. None: the model's ``refine_passes`` (1 for
            two-pass models, 0 otherwise). Not applied to ``landmarks=`` crops, which are already fine crops.

    Attributes ``backend`` ("torch" or "onnx"), ``session`` (the ONNX Runtime session, None on torch),
    ``onnx_graph`` (the path or bytes it was opened from) and ``onnx_path`` (the file, None for bytes) are read-only:
    make another predictor (e.g. :meth:`with_threads`) rather than changing them.
    """

    def __init__(
        self,
        model: str | os.PathLike | LandmarkModel | None = None,
        *,
        backend: str = "auto",
        threads: int | None = None,
        flip_test: bool = False,
        gamma: float = 1.0,
        box_scale: float = 1.0,
        device: str | None = None,
        onnx: bytes | str | os.PathLike | None = None,
        refine: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise LightmarkError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"threads: expected at least 1 (or None for the default), got {threads}")
        if onnx is not None and backend == "torch":
            raise ConfigError("onnx= is the graph of the 'onnx' backend: pass backend='onnx' (or 'auto')")
        self.threads = None if threads is None else int(threads)
        self.model = model if isinstance(model, LandmarkModel) else load_model(model)
        self.model.eval()
        # default: where a given model already lives (never move a caller's module), else the CPU
        self.device = torch.device(device if device is not None else next(self.model.parameters()).device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available here (torch {torch.__version__}); use 'cpu'")
        self.model.to(self.device)
        self.config = self.model.config
        self.input_size = self.config.input_size
        self.session = None  # ONNX Runtime session when the backend is "onnx"
        self.onnx_graph: Path | bytes | None = None  # what the session was opened from
        self.onnx_path: Path | None = None  # the file in use (None: in-memory graph or torch)
        if onnx is not None:
            self._open_onnx(onnx)
            self.backend = "onnx"
        else:
            source = None if isinstance(model, LandmarkModel) else resolve_model_path(model)
            self.backend = self._open_backend(backend, source)
        self.flip_test = flip_test
        self.gamma = gamma
        self.box_scale = box_scale
        self.refine = self.config.refine_passes if refine is None else int(refine)
        if self.refine < 0:
            raise ConfigError(f"refine: expected 0 or more passes, got {refine}")

    def _check_onnx_usable(self) -> None:
        if self.device.type != "cpu":
            raise LightmarkError("the onnx backend runs on the CPU only (device='cpu')")
        if not onnxruntime_available():
            raise LightmarkError("backend 'onnx' needs onnxruntime: pip install onnxruntime")

    def _open_onnx(self, graph: bytes | str | os.PathLike) -> None:
        """Open the ONNX Runtime session on ``graph`` (a file or serialized bytes) with this predictor's threads."""
        self._check_onnx_usable()
        from .export import ort_session

        graph = graph if isinstance(graph, bytes) else Path(graph)
        self.session = ort_session(graph, self.threads)
        self.onnx_graph = graph
        self.onnx_path = None if isinstance(graph, bytes) else graph

    def _open_backend(self, backend: str, source: Path | None) -> str:
        """Resolve ``backend`` to "torch" or "onnx" (opening the ONNX Runtime session)."""
        if backend == "torch" or (backend == "auto" and (self.device.type != "cpu" or not onnxruntime_available())):
            return "torch"
        self._check_onnx_usable()
        twin = onnx_twin(source) if source is not None else None
        if twin is not None:
            try:
                self._open_onnx(twin)
                if _twin_is_current(self.session, source, twin, self.config.to_dict()):
                    return "onnx"
                problem = "exported from another checkpoint (re-export it)"
            except Exception as e:  # an unreadable twin is not used, and the user is told
                problem = f"not usable ({e})"
            self.session, self.onnx_graph, self.onnx_path = None, None, None
            import warnings

            fallback = "the torch model" if backend == "auto" else "an in-memory export"
            warnings.warn(f"{twin}: ONNX twin {problem}; using {fallback}", stacklevel=3)
        if backend == "auto":
            return "torch"
        from .export import onnx_bytes

        self._open_onnx(onnx_bytes(self.model))
        return "onnx"

    def with_threads(self, threads: int | None) -> Predictor:
        """A predictor like this one - the same model object, backend, ONNX graph (no twin check, no export) and
        options - whose forward pass runs on ``threads`` threads (see the class's ``threads``)."""
        return Predictor(
            self.model,
            backend=self.backend,
            threads=threads,
            flip_test=self.flip_test,
            gamma=self.gamma,
            box_scale=self.box_scale,
            device=str(self.device),
            onnx=self.onnx_graph,
            refine=self.refine,
        )

    # -- pre/post-processing -------------------------------------------------------------------------------
    def crop(
        self, image: np.ndarray, box: Box | None = None, landmarks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's input crop (S, S, 3) uint8 and the affine map (2, 3) image -> crop."""
        s = self.input_size
        image = _check_image(image)
        if landmarks is not None:
            pts = np.asarray(landmarks, dtype=np.float64)
            usable = pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 2 and np.isfinite(pts).all()
            if not usable or not np.ptp(pts, axis=0).max() > 0:
                raise ConfigError(f"landmarks: expected finite, not all equal (K, 2) points, got shape {pts.shape}")
            m = self.fine_matrix(pts) if self.config.refine_passes else landmarks_matrix(pts, s)
        elif box is not None:
            b = np.asarray(box, dtype=np.float64).reshape(-1)
            if b.shape != (4,) or not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
                raise ConfigError(f"box: expected finite (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")
            m = box_matrix(tuple(b), s, self.box_scale)
        else:
            m = whole_image_matrix(image.shape[1], image.shape[0], s)
        return self._cut(image, m), m

    def _cut(self, image: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The (S, S, 3) uint8 input crop of a checked image through the affine map ``m`` (gamma applied)."""
        return apply_gamma(warp(image, m, self.input_size), self.gamma)

    def fine_matrix(self, points: np.ndarray) -> np.ndarray:
        """The refining crop (2, 3) for a face with (K, 2) image ``points``: upright, framed as the model's fine
        pass was trained (``fine_ratio``, ``fine_shift_up`` of its config)."""
        c = self.config
        return upright_matrix(points, self.input_size, c.fine_ratio, c.fine_shift_up)

    def run_model(self, x: np.ndarray) -> np.ndarray:
        """The model alone on this predictor's backend and threads: (B, 3, S, S) float32 RGB in [0, 255] ->
        (B, K, 2) float32 landmarks in input pixels (no crop, no flip test)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.session is not None:
            return self.session.run(None, {self.session.get_inputs()[0].name: x})[0]
        with torch.no_grad(), scoped_threads(self.threads):
            out = self.model.landmarks(torch.from_numpy(x).to(self.device))
        return out.cpu().numpy()

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 crops -> (B, K, 2) landmarks in crop pixels (flip-averaged with ``flip_test``:
        one forward pass over the crops and their mirror images)."""
        x = np.ascontiguousarray(np.asarray(crops).transpose(0, 3, 1, 2), dtype=np.float32)
        if not self.flip_test:
            return self.run_model(x).astype(np.float32)
        out = self.run_model(np.concatenate([x, x[..., ::-1]]))
        n = len(x)
        return merge_flip(out[:n], out[n:], self.input_size, self.config.flip_perm)

    # -- public API -------------------------------------------------------------------------------------------
    def describe(self) -> dict:
        """Metadata for evaluation reports: model name, input size, backend, size, parameters, GMACs."""
        from ..models import model_summary

        s = model_summary(self.model)
        return {
            "model": self.config.name,
            "input_size": self.input_size,
            "flip_test": self.flip_test,
            "refine": self.refine,
            "backend": self.backend,
            "params": s["params"],
            "size_mb": s["size_mb"],
            "gmacs": s["gmacs"],
        }

    def latency_ms(self, image: np.ndarray, runs: int = 200, warmup: int = 20) -> dict:
        """Median/p90 ms (:func:`~lightmark.engine.timing.latency`) of :meth:`predict` (crop + model + mapping
        back) on one image with this predictor's threads (see ``threads``; :meth:`with_threads`)."""
        return latency(lambda: self.predict(image), runs, warmup)

    def predict(
        self,
        image: np.ndarray | str | os.PathLike,
        box: Box | None = None,
        landmarks: np.ndarray | None = None,
    ) -> np.ndarray:
        """(68, 2) landmarks of one face in image pixel coordinates."""
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)
        return self.predict_batch([image], None if box is None else [box], None if landmarks is None else [landmarks])[
            0
        ]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[Box | None] | None = None,
        landmarks: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """(N, 68, 2) landmarks for N faces: one forward pass over the batch, plus one per ``refine`` pass."""
        if len(images) == 0:
            return np.zeros((0, self.config.num_landmarks, 2), np.float32)
        images = [_check_image(img) for img in images]
        crops, mats = [], []
        for i, img in enumerate(images):
            c, m = self.crop(img, None if boxes is None else boxes[i], None if landmarks is None else landmarks[i])
            crops.append(c)
            mats.append(m)
        points = self._predict_mapped(np.stack(crops), mats)  # (N, K, 2) image pixels
        for _ in range(self.refine if landmarks is None else 0):  # coarse to fine: re-crop on the last points
            mats = [self.fine_matrix(p) for p in points]
            crops = [self._cut(img, m) for img, m in zip(images, mats, strict=True)]
            points = self._predict_mapped(np.stack(crops), mats)
        return points

    def _predict_mapped(self, crops: np.ndarray, mats: Sequence[np.ndarray]) -> np.ndarray:
        """(N, S, S, 3) crops cut by ``mats`` (image -> crop) -> (N, K, 2) landmarks in image pixels."""
        pts = self.predict_crops(crops)
        return np.stack([transform_points(p, invert_affine(m)) for p, m in zip(pts, mats, strict=True)])

    def predict_dataset(
        self,
        data: str | os.PathLike | FaceDataset | Sequence[str | os.PathLike],
        batch_size: int = 32,
        progress: bool = True,
        skip_bad: bool = False,
        decode_threads: int = 2,
    ) -> PredictionResults:
        """Predict every image of a dataset / folder / list of files, in batches, decoding in a thread pool.

        Bad images raise (before any output is written) unless ``skip_bad``: then they are listed in
        ``results.skipped``. ``decode_threads`` threads decode the next images while the model runs.
        """
        from tqdm import tqdm

        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        dataset = data if isinstance(data, FaceDataset) else _as_dataset(data)
        samples = dataset.samples
        names: list[str] = []
        paths: list[Path] = []
        sizes: list[tuple[int, int]] = []
        out: list[np.ndarray] = []
        skipped: list[tuple[str, str]] = []

        def load(s: Sample) -> tuple[Sample, np.ndarray | None, str]:
            try:
                return s, read_image(s.image_path), ""
            except LightmarkError as e:
                if not skip_bad:
                    raise
                return s, None, str(e)

        with (
            ThreadPoolExecutor(max_workers=max(1, decode_threads)) as pool,
            tqdm(total=len(samples), desc="predict", unit="img", disable=not progress) as bar,
        ):
            for chunk in _chunks(samples, batch_size):
                loaded = list(pool.map(load, chunk))
                good = [(s, img) for s, img, _ in loaded if img is not None]
                skipped += [(s.name, err) for s, img, err in loaded if img is None]
                if good:
                    out.append(self.predict_batch([img for _, img in good]))
                    for s, img in good:
                        names.append(s.name)
                        paths.append(s.image_path)
                        sizes.append((img.shape[1], img.shape[0]))
                bar.update(len(chunk))
        k = self.config.num_landmarks
        return PredictionResults(
            names=names,
            landmarks=np.concatenate(out) if out else np.zeros((0, k, 2), np.float32),
            image_sizes=np.asarray(sizes, np.int64).reshape(-1, 2),
            paths=paths,
            skipped=skipped,
        )


def _check_image(image) -> np.ndarray:
    """An ``HxWx3`` uint8 RGB array (an ``HxW`` grey one is repeated to RGB), else :class:`ImageError`."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected an RGB uint8 array or an image path, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ImageError(f"expected a non-empty HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
    return image


def _as_dataset(data: str | os.PathLike | Sequence[str | os.PathLike]) -> FaceDataset:
    from ..data.formats import load_images

    if isinstance(data, (str, os.PathLike)):
        return load_dataset(data)
    return load_images(list(data))


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
