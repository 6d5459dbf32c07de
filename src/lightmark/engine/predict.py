"""Prediction: the two-line API (``Predictor()`` then ``predict(image)``) and batch prediction over folders.

Prediction with ONNX Runtime (the default for the shipped models) needs neither torch nor the ``onnx`` package:
the torch model is loaded only for ``backend="torch"``, :meth:`Predictor.describe` and in-memory exports.
"""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..choices import Backend, Choice, Head
from ..constants import CROP_SHIFT_UP, CROP_SIDE_RATIO
from ..data.formats import FaceDataset, Sample, load_dataset
from ..data.images import read_image
from ..data.transforms import (
    apply_gamma,
    face_roll,
    flip_landmarks,
    upright_matrix,
    warp_window,
    whole_image_matrix,
)
from ..detectors import DEFAULT_DETECTOR, DETECTORS, PHOTO_OPTIONS, FaceDetector, create_detector
from ..detectors.base import SAME_FACE_IOU, SEARCH_ROTATIONS, Detection, iou, largest_face
from ..errors import ConfigError, ImageError, LightmarkError, ModelError
from ..models.config import ModelConfig
from ..models.shipped import missing_model_message, resolve_model_path, shipped_onnx_path, shipped_track
from ..pose import head_roll
from ..utils import progress_bar, require, scoped_threads
from .coco import COCO_KEYPOINT_NAMES, COCO_SKELETON, coco_document
from .faces import (
    FACE_SCORE_THRESHOLD,
    MODEL_DEFAULT,
    SURE_READING,
    DetectionResults,
    Face,
    ModelDefault,
    combined_score,
    detect_faces,
    first_matrix,
    refine_faces,
)
from .onnx_runtime import (
    META_CONFIG,
    META_SOURCE_SHA256,
    file_sha256,
    onnx_config,
    onnx_metadata,
    onnx_summary,
    onnxruntime_available,
    ort_session,
)
from .timing import latency

if TYPE_CHECKING:  # pragma: no cover
    from ..detectors.blazeface import BlazeFace
    from ..models.landmark_model import LandmarkModel

Box = tuple[float, float, float, float]


class Framing(Choice):
    """Where :meth:`Predictor.predict` looks for the one face of an image given without a box.

    ``WHOLE``: the image is the face crop (the challenge's crops: the face about half the side, upright).
    ``DETECT``: the shipped detector finds the face (the largest, at any roll: one call at half resolution on the
    image and its copies turned by 90, 180 and 270 degrees names the turns in which the face is upright, and the best
    of them is searched), the first crop is framed around it and refined on the model's own points; an image
    where it finds none falls back to ``WHOLE``, and ``PredictionResults.detected`` says which.
    ``AUTO``: the crop reading, and for images it is not sure of (mean per-point confidence below
    :data:`~lightmark.engine.faces.SURE_READING`) the detection's too; the one whose last pass the model is more
    confident about wins (``detected`` says where the detection won). Needs a model with confidence (heatmap heads).
    """

    WHOLE = "whole"
    DETECT = "detect"
    AUTO = "auto"


TORCH_NEEDED_FOR = (
    "the torch model (backend 'torch', a CUDA device, describe() of a graph that records no model summary, "
    "an in-memory ONNX export)"
)

__all__ = [
    "Backend",
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "FLIP_DISAGREEMENT",
    "PredictionResults",
    "Predictor",
    "box_matrix",
    "flip_disagreement",
    "landmarks_matrix",
    "map_back_mirrored",
    "merge_flip",
    "merge_flip_readings",
    "onnx_twin",
    "onnxruntime_available",
]


def onnx_twin(checkpoint: str | os.PathLike) -> Path | None:
    """``X.onnx`` beside checkpoint ``X.pt`` when it exists (whether it is up to date is checked on loading:
    see :meth:`Predictor.__init__`)."""
    twin = Path(checkpoint).with_suffix(".onnx")
    return twin if twin.is_file() and twin != Path(checkpoint) else None


def _is_torch_model(obj: Any) -> bool:
    """``obj`` is a :class:`~lightmark.models.LandmarkModel` (checked without importing torch: an instance can
    only exist once its module is imported)."""
    mod = sys.modules.get("lightmark.models.landmark_model")
    return mod is not None and isinstance(obj, mod.LandmarkModel)


def merge_flip(points: np.ndarray, mirrored: np.ndarray, width: int, perm: Sequence[int]) -> np.ndarray:
    """The flip test's average: (B, K, 2) points predicted on crops ``width`` px wide, and ``mirrored`` (B, K, 2)
    predicted on the same crops mirrored left-right, mapped back and re-ordered by the mirror permutation ``perm``
    (:func:`~lightmark.data.transforms.flip_landmarks`). float32."""
    points = np.asarray(points, np.float32)
    return (0.5 * (points + map_back_mirrored(mirrored, width, perm))).astype(np.float32)


def map_back_mirrored(mirrored: np.ndarray, width: int, perm: Sequence[int]) -> np.ndarray:
    """(B, K, 2) points predicted on mirrored crops ``width`` px wide -> the same points in the direct crops' pixels
    and point order (float32)."""
    back = [flip_landmarks(m, width, tuple(perm)) for m in mirrored]
    return np.stack(back).astype(np.float32) if back else np.zeros_like(mirrored, np.float32)


FLIP_DISAGREEMENT = 0.05
"""The flip test averages a crop's two readings (direct and mirrored) only where they agree: where their mean point
distance exceeds this fraction of the crop side, one of them has failed, and the more confident one is kept instead
(session 19). Set from the training faces, not the validation crops: on the 100 FaceSynthetics samples the
protocol model's two readings never disagreed by more (largest 0.0497, 99th percentile 0.035)."""


def flip_disagreement(points: np.ndarray, back: np.ndarray, width: int) -> np.ndarray:
    """(B,) mean point distance between (B, K, 2) direct readings and the mirrored ones mapped back (same crops,
    same point order), as a fraction of the crop side ``width``: what :func:`merge_flip_readings` guards on."""
    return np.linalg.norm(np.asarray(points) - np.asarray(back), axis=-1).mean(-1) / float(width)


def merge_flip_readings(
    points: np.ndarray,
    conf: np.ndarray,
    mirrored: np.ndarray,
    conf_mirrored: np.ndarray,
    width: int,
    perm: Sequence[int],
    disagreement: float = FLIP_DISAGREEMENT,
) -> tuple[np.ndarray, np.ndarray]:
    """The guarded flip test: (B, K, 2) points and (B, K) confidences of crops ``width`` px wide, and the same of
    their mirror images (in mirrored crop pixels and order). Each face's two readings are averaged
    (:func:`merge_flip`) where their mean point distance is at most ``disagreement`` x ``width``; otherwise the
    reading with the higher mean confidence is kept whole. Returns float32 (B, K, 2) points and (B, K) confidence."""
    perm = list(perm)
    points = np.asarray(points, np.float32)
    conf, conf_back = np.asarray(conf, np.float32), np.asarray(conf_mirrored, np.float32)[:, perm]
    back = map_back_mirrored(mirrored, width, perm)  # (B, K, 2)
    apart = flip_disagreement(points, back, width) > disagreement  # (B,)
    direct_wins = conf.mean(1) >= conf_back.mean(1)  # (B,)
    merged = np.where(apart[:, None, None], np.where(direct_wins[:, None, None], points, back), 0.5 * (points + back))
    merged_conf = np.where(apart[:, None], np.where(direct_wins[:, None], conf, conf_back), 0.5 * (conf + conf_back))
    return merged.astype(np.float32), merged_conf.astype(np.float32)


def box_matrix(
    box: Box, out_size: int, scale: float = 1.0, ratio: float = CROP_SIDE_RATIO, shift_up: float = CROP_SHIFT_UP
) -> np.ndarray:
    """Crop matrix for a face box (x0, y0, x1, y1) taken as the face's landmark box (``scale`` enlarges it
    first): side ``ratio`` x its longer side, shifted up by ``shift_up`` x side; by default framed exactly like the
    challenge-framed training crops (see :func:`landmarks_matrix`)."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2.0, (y0 + y1) / 2.0, scale * max(x1 - x0, y1 - y0) / 2.0
    return landmarks_matrix(np.array([[cx - half, cy - half], [cx + half, cy + half]]), out_size, ratio, shift_up)


def landmarks_matrix(
    landmarks: np.ndarray, out_size: int, ratio: float = CROP_SIDE_RATIO, shift_up: float = CROP_SHIFT_UP
) -> np.ndarray:
    """Crop matrix framing a face like the challenge-framed training crops, from its (K, 2) landmarks (e.g. the
    previous video frame's), not rotated: :func:`~lightmark.data.transforms.upright_matrix` at angle 0 with the
    crop framing (side ``ratio`` x the landmark box, window shifted up by ``shift_up`` x side)."""
    return upright_matrix(np.asarray(landmarks, np.float64), out_size, ratio, shift_up, angle_deg=0.0)


@dataclass
class PredictionResults:
    """Landmarks predicted for a set of images, in each image's own pixel coordinates (0-based, pixel centres at
    integers). The ``save_*`` methods are what ``lightmark predict``'s output options call; each writes
    atomically."""

    names: list[str]
    landmarks: np.ndarray  # (N, K, 2) float32
    image_sizes: np.ndarray  # (N, 2) int (w, h)
    paths: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason) with skip_bad
    detected: np.ndarray | None = None  # (N,) bool: the face was read from a detection (framing detect / auto)
    face_scores: np.ndarray | None = None  # (N,) mean per-point confidence (heatmap models): low = not a face crop

    def unlike_faces(self, threshold: float = FACE_SCORE_THRESHOLD) -> list[str]:
        """Names of the images whose face score is below ``threshold``: they look nothing like a face crop
        (a whole photo, or no face at all)."""
        if self.face_scores is None:
            return []
        return [n for n, s in zip(self.names, self.face_scores, strict=True) if s < threshold]

    def __len__(self) -> int:
        return len(self.names)

    def save_submission(self, path: str | os.PathLike, zip_path: str | os.PathLike | None = None) -> None:
        """Write the challenge's ``solution.txt`` (and a zip holding it) atomically (``--out``, ``--zip``)."""
        from ..submission import write_submission

        write_submission(path, self.names, self.landmarks, zip_path=zip_path)

    def save_json(self, path: str | os.PathLike) -> None:
        """Write ``{"predictions": [{"name", "width", "height", "landmarks": [[x, y] x K]}], "skipped": [[name,
        reason]]}`` atomically (``--json``)."""
        import json

        from ..utils import atomic_write

        rows = [
            {"name": n, "width": int(s[0]), "height": int(s[1]), "landmarks": np.round(p, 3).tolist()}
            for n, s, p in zip(self.names, self.image_sizes, self.landmarks, strict=True)
        ]
        with atomic_write(path) as f:
            json.dump({"predictions": rows, "skipped": [list(s) for s in self.skipped]}, f)

    def save_pts(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write one 300-W/iBUG ``.pts`` file per image, ``out_dir/<name>.pts`` (the image's relative path with the
        suffix replaced, so sub-folders are kept), 1-based as the format is (``--pts``;
        :func:`~lightmark.data.formats.read_pts` reads them back to these 0-based points). Returns the paths."""
        from ..data.formats import write_pts
        from ..schemes import DEFAULT_SCHEME, scheme_for_count
        from ..utils import ensure_dir

        out_dir = ensure_dir(out_dir)
        written = []
        for name, pts in zip(self.names, self.landmarks, strict=True):
            dst = out_dir / Path(name).with_suffix(".pts")
            write_pts(dst, pts, scheme_for_count(len(pts)) or DEFAULT_SCHEME)
            written.append(dst)
        return written

    def save_csv(self, path: str | os.PathLike) -> None:
        """Write a CSV with a header and one row per image: ``name, width, height, x0, y0, ..., x(K-1), y(K-1)``
        (0-based pixel coordinates, 3 decimals; ``--csv``)."""
        import csv

        from ..utils import atomic_write

        k = self.landmarks.shape[1] if self.landmarks.ndim == 3 else 0
        header = ["name", "width", "height", *[f"{c}{i}" for i in range(k) for c in "xy"]]
        with atomic_write(path, newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for name, size, pts in zip(self.names, self.image_sizes, self.landmarks, strict=True):
                w.writerow([name, int(size[0]), int(size[1]), *(f"{v:.3f}" for v in np.asarray(pts).reshape(-1))])

    def to_coco(self) -> dict:
        """The predictions as a COCO keypoints dict (:func:`~lightmark.engine.coco.coco_document`): one face per
        image, ``bbox`` the landmark box, no ``score``."""
        anns = [(i, pts, None, None) for i, pts in enumerate(self.landmarks)]
        return coco_document(self.names, self.image_sizes, anns)

    def save_coco(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_coco` as JSON atomically (``--coco``)."""
        import json

        from ..utils import atomic_write

        with atomic_write(path) as f:
            json.dump(self.to_coco(), f)

    def save_visualizations(self, out_dir: str | os.PathLike, limit: int | None = None) -> list[Path]:
        """Draw the landmarks on each image and write ``out_dir/<name>.jpg`` (``--vis``)."""
        from ..viz import draw_landmarks, save_annotated

        def draw(i: int, image: np.ndarray) -> np.ndarray:
            return draw_landmarks(image, self.landmarks[i])

        return save_annotated(out_dir, self.names, self.paths, draw, limit)


def _version() -> str:
    from .. import __version__

    return __version__


class _TorchModel:
    """A predictor's torch model, loaded on first use (ONNX Runtime prediction never needs it) and shared by the
    predictor's :meth:`Predictor.with_threads` copies."""

    def __init__(self, model: LandmarkModel | None, source: Path | None, device: str) -> None:
        self._model, self.source, self.device = model, source, device

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> LandmarkModel:
        if self._model is None:
            if self.source is None or self.source.suffix == ".onnx":
                raise ModelError(f"{self.source}: an ONNX graph has no torch model; give its .pt checkpoint")
            require("torch", TORCH_NEEDED_FOR)
            from ..models.checkpoint import load_model

            self._model = load_model(self.source).to(self.device)
        return self._model


def _resolve_device(device: str | None, model: LandmarkModel | None) -> str:
    """The predictor's device name: ``device``, else where a given model lives, else ``"cpu"``; a device other
    than the CPU is checked now (it needs torch)."""
    if device is None:
        device = "cpu" if model is None else str(next(model.parameters()).device)
    device = str(device)
    if device == "cpu":
        return device
    torch = require("torch", f"device {device!r}")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"device {device!r}: not a torch device ({str(e).splitlines()[0]})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available here (torch {torch.__version__}); use 'cpu'")
    return device


def _check_model_options(
    model: object, backend: Backend | str, threads: int | None, onnx: object
) -> tuple[Backend, LandmarkModel | None]:
    """:class:`Predictor`'s model options checked: (the backend, the caller's torch model or None)."""
    backend = Backend.parse(backend, "backend")  # ConfigError listing the backends
    if threads is not None and int(threads) < 1:
        raise ConfigError(f"threads: expected at least 1 (or None for the default), got {threads}")
    if onnx is not None and backend is Backend.TORCH:
        raise ConfigError("onnx= is the graph of the 'onnx' backend: pass backend='onnx' (or 'auto')")
    given = model if _is_torch_model(model) else None
    if given is None and model is not None and not isinstance(model, (str, os.PathLike)):
        raise ConfigError(
            f"model: expected a checkpoint or ONNX path, a shipped track name or a LandmarkModel, "
            f"got {type(model).__name__}"
        )
    return backend, given


class Predictor:
    """Facial landmarks (the model's scheme: 68 iBUG points for the shipped protocol and mixed models) for face
    images.

    >>> predictor = Predictor()                    # the shipped model
    >>> points = predictor.predict(image_rgb)      # (K, 2) in image pixels (K = 68 for the default model)

    ``image`` is an RGB uint8 array (or a path). By default (``framing``) the image is read as a face crop (like
    the challenge's crops) and, where the model is not sure of that reading, around the face the shipped detector
    finds too, and the more confident reading is kept; give ``box=(x0, y0, x1, y1)`` from a face detector, or
    ``landmarks=`` of the previous video frame, to crop there instead.

    Args:
        model: a checkpoint path (``.pt``), an exported ONNX graph (``.onnx``, run on the ``"onnx"`` backend), a
            shipped track name (:data:`~lightmark.models.shipped.SHIPPED_MODELS`: ``"protocol"``, ``"mixed"``,
            ``"mixed_resnet18"``, ``"wflw98"``), a :class:`LandmarkModel` (used as is, never moved unless ``device``
            says so), or None for the shipped default.
        backend: a :class:`~lightmark.choices.Backend` or its value: ``TORCH``, ``ONNX`` (ONNX Runtime: the
            checkpoint's ONNX twin ``X.onnx`` beside ``X.pt`` when it is up to date, else an in-memory export) or
            ``AUTO`` (ONNX Runtime when it is installed and the model has an up-to-date twin, else torch). A shipped
            model whose ``.pt`` is not installed (a wheel: see the README's "Models") runs its shipped ``.onnx`` on
            ``AUTO`` / ``ONNX``.
        threads: CPU threads of a call (None: every core this process may use). On ONNX Runtime the model runs on
            one thread per call, and a batch is cut into ``threads`` chunks predicted side by side (crop, model and
            mapping back, on Python threads: OpenCV and ONNX Runtime release the GIL), so that no thread pool
            spins between calls and one face costs what it costs on one thread. On torch, the forward pass gets
            ``threads`` through torch's process-wide setting, set for the pass and restored right after
            (:func:`~lightmark.utils.scoped_threads`): nothing else in the process is changed.
        onnx: the ONNX graph (a file or serialized bytes) the ``"onnx"`` backend runs, used as given: no twin
            look-up, no export. Needs ``backend`` ``"onnx"`` or ``"auto"``.
        flip_test: also read each crop mirrored: the two readings are averaged where they agree, else the more
            confident one is kept (:func:`merge_flip_readings`; a model without confidence: the plain average).
            About 1.5x the time. None: the model's ``flip_test`` (on for the shipped protocol model since
            session 19, off for the others).
        refine: extra passes, each on the upright crop framed around the previous pass's points
            (:func:`~lightmark.data.transforms.upright_matrix` with the model's ``fine_ratio`` / ``fine_shift_up``):
            the coarse-to-fine prediction of models trained for it. None: the model's ``refine_passes`` (1 for
            two-pass models, 0 otherwise). Not applied to ``landmarks=`` crops, which are already fine crops.
        detector: the face detector of :meth:`detect` - a registry name (:data:`~lightmark.detectors.DETECTORS`,
            made on first use with :data:`~lightmark.detectors.PHOTO_OPTIONS` and this predictor's threads) or a
            detector object (a :class:`~lightmark.detectors.FaceDetector` plug-in, used as is).
        framing: where :meth:`predict` looks for the one face of an image given without ``box`` / ``landmarks``
            (:class:`Framing`): the whole image (the challenge's crops: 2-4 ms per image on one thread), the face
            the detector finds (any size, position and roll: one half-resolution detector call names the image's
            quarter turns that hold the face upright, the best of them is searched, and the model reads the face's
            detections), or both, keeping the one the model is more confident about (``"auto"``: the detector's
            face only where the crop reading is not sure, :data:`~lightmark.engine.faces.SURE_READING`; a crop
            reading costs one model call plus one per ``refine`` pass, a detection reading one for its first crops
            (one batch) plus at least one refining pass, and two detector calls where the half-resolution call
            finds the face, five where it does not). None: ``"auto"`` for models with a confidence (heatmap heads:
            both shipped models), else ``"whole"``.
        sure_reading: a first reading whose mean per-point confidence is at least this gets no second framing - the
            detection reading of ``"auto"`` and the wider first crop of :meth:`detect`
            (:data:`~lightmark.engine.faces.SURE_READING`, measured without flip test; with ``flip_test`` the
            confidence is the merged one). ``math.inf``: always read both, as through session 12; 0: never.
        flip_disagreement: with flip test, a crop's two readings further apart than this fraction of the crop side
            (mean point distance) are not averaged, the more confident one is kept (:data:`FLIP_DISAGREEMENT`);
            ``math.inf``: always average, as before session 19.

    The ONNX path imports neither torch nor ``onnx``: the model config comes from the graph's metadata, and the
    torch model (attribute ``model``) is loaded on first use only.

    Attributes ``backend`` (``Backend.TORCH`` or ``Backend.ONNX``), ``session`` (the ONNX Runtime session, None on
    torch), ``onnx_graph`` (the path or bytes it was opened from) and ``onnx_path`` (the file, None for bytes) are
    read-only: make another predictor (e.g. :meth:`with_threads`) rather than changing them.
    """

    def __init__(
        self,
        model: str | os.PathLike | LandmarkModel | None = None,
        *,
        backend: Backend | str = Backend.AUTO,
        threads: int | None = None,
        flip_test: bool | None = None,
        gamma: float = 1.0,
        box_scale: float = 1.0,
        device: str | None = None,
        onnx: bytes | str | os.PathLike | None = None,
        refine: int | None = None,
        detector: str | FaceDetector = DEFAULT_DETECTOR,
        framing: Framing | str | None = None,
        sure_reading: float = SURE_READING,
        flip_disagreement: float = FLIP_DISAGREEMENT,
    ) -> None:
        backend, given = _check_model_options(model, backend, threads, onnx)
        self.threads = None if threads is None else int(threads)
        self.device = _resolve_device(device, given)
        if given is not None:
            given.eval()
            if device is not None:
                given.to(self.device)
        source = None if given is not None else resolve_model_path(model)
        self._torch = _TorchModel(given, source, self.device)
        self._given_config: ModelConfig | None = None if given is None else given.config
        self.config: ModelConfig | None = self._given_config
        self.session = None  # ONNX Runtime session when the backend is "onnx"
        self.onnx_graph: Path | bytes | None = None  # what the session was opened from
        self.onnx_path: Path | None = None  # the file in use (None: in-memory graph or torch)
        if onnx is not None:
            self._open_onnx(onnx)
            self.backend = Backend.ONNX
        else:
            track = None if given is not None else shipped_track(model)
            self.backend = self._open_backend(backend, source, track)
        if self.config is None:  # an ONNX graph without a recorded config: the checkpoint's
            self.config = self.model.config
        track = shipped_track(model) if given is None and onnx is None else None
        self.name = track or (Path(model).name if isinstance(model, (str, os.PathLike)) else self.config.name)
        """The model's name in reports: the shipped track, else the file name, else the architecture."""
        self.input_size = self.config.input_size
        self.flip_test = self.config.flip_test if flip_test is None else bool(flip_test)
        self.gamma = gamma
        self.box_scale = box_scale
        self.refine = self.config.refine_passes if refine is None else int(refine)
        if self.refine < 0:
            raise ConfigError(f"refine: expected 0 or more passes, got {refine}")
        if isinstance(detector, str) and detector not in DETECTORS:
            raise ConfigError(f"unknown face detector {detector!r}; available: {', '.join(DETECTORS)}")
        self.sure_reading = float(sure_reading)
        """A reading at least this confident (mean per-point confidence) gets no second framing
        (:data:`~lightmark.engine.faces.SURE_READING`)."""
        if not float(flip_disagreement) >= 0:  # NaN too
            raise ConfigError(
                f"flip_disagreement: expected a fraction >= 0 (inf: always average), got {flip_disagreement}"
            )
        self.flip_disagreement = float(flip_disagreement)
        """With flip test, a crop's two readings further apart than this (mean point distance / crop side) are not
        averaged: the more confident one is kept (:data:`FLIP_DISAGREEMENT`)."""
        self._detector_spec = detector  # a name, or the caller's detector object
        self._detector = detector  # a name until detect() first needs it
        confident = self.has_confidence
        if framing is None:
            framing = Framing.AUTO if confident else Framing.WHOLE
        self.framing = Framing.parse(framing, "framing")  # ConfigError listing the framings
        if self.framing is Framing.AUTO and not confident:
            raise ConfigError(f"framing 'auto' picks by the model's confidence: {self.config.name} has none")
        self._framer: BlazeFace | None = None  # the detector of Framing.DETECT / AUTO, made on first use
        self._tiled: BlazeFace | None = None  # the same, with tiles for small faces (made when first needed)

    @property
    def has_confidence(self) -> bool:
        """The model gives a per-point confidence: an ONNX graph with the confidence output, a torch heatmap head."""
        if self.session is not None:
            return len(self.session.get_outputs()) > 1
        return self.config.head is Head.HEATMAP

    @property
    def has_face_head(self) -> bool:
        """The model gives a face probability (:meth:`face_probability`): an ONNX graph with the third output, a torch
        model with a face head."""
        if self.session is not None:
            return len(self.session.get_outputs()) > 2
        return self.model.face is not None

    def empty_prediction(self) -> tuple[np.ndarray, np.ndarray | None]:
        """What predicting no face gives: (0, K, 2) points and (0, K) confidence (None for a model without one)."""
        k = self.config.num_landmarks
        return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32) if self.has_confidence else None

    @property
    def detection_passes(self) -> int:
        """Refining passes of a face read from a detection (a rough first crop): ``refine``, at least one."""
        return max(self.refine, 1)

    @property
    def detector(self) -> FaceDetector:
        """The face detector of :meth:`detect` (created on first use; a name given to the constructor is made with
        the photo options :data:`~lightmark.detectors.PHOTO_OPTIONS` and this predictor's threads)."""
        if isinstance(self._detector, str):
            options = dict(PHOTO_OPTIONS.get(self._detector, {}))
            if self._detector == "blazeface":
                options["threads"] = self.threads or 1
            self._detector = create_detector(self._detector, **options)
        return self._detector

    def detect(
        self,
        image: np.ndarray | str | os.PathLike,
        *,
        passes: int = 1,
        min_score: float | None | ModelDefault = MODEL_DEFAULT,
    ) -> list[Face]:
        """Every face in a whole image (RGB uint8 array or path), largest first: found by :attr:`detector`, cut
        upright by its roll (and 1.5x wider: :data:`~lightmark.engine.faces.WIDE_FIRST_CROP`, the more confident
        reading kept), refined ``passes`` times on the model's own points (and once more while a face has not
        settled: :data:`~lightmark.engine.faces.SETTLE_MOVE`), copies of one face reported once, kept when its
        detector score plus face score (:attr:`~lightmark.engine.faces.Face.combined_score`) is at least
        ``min_score``, its landmarks spread over the box (:data:`~lightmark.engine.faces.MIN_SPAN`) and it is not a
        part of a larger face (:data:`~lightmark.engine.faces.NESTED`: an eye read as a face) (None: all;
        default: :data:`~lightmark.engine.faces.MIN_SCORE` for a model with a face head, else
        :data:`~lightmark.engine.faces.MIN_SCORE_WITHOUT_FACE_HEAD`).
        Each :class:`~lightmark.engine.faces.Face` has the detector's box and score, landmarks, per-point
        confidence, face score and head pose.

        >>> faces = Predictor().detect("group.jpg")
        >>> [f.landmarks for f in faces]            # (K, 2) each, image pixels
        """
        image = _check_image(read_image(image) if isinstance(image, (str, os.PathLike)) else image)
        return detect_faces(self, self.detector, image, passes=passes, min_score=min_score)

    @property
    def model(self) -> LandmarkModel:
        """The torch model (loaded on first use: it needs torch, and the ``.pt`` checkpoint of a shipped model)."""
        return self._torch.get()

    def _on_cpu(self) -> bool:
        return self.device == "cpu"

    def _check_onnx_usable(self) -> None:
        if not self._on_cpu():
            raise ConfigError(f"the onnx backend runs on the CPU only (device='cpu'), not {self.device!r}")
        if not onnxruntime_available():
            require("onnxruntime", "backend 'onnx'")  # raises MissingDependencyError

    def _open_onnx(self, graph: bytes | str | os.PathLike) -> None:
        """Open the ONNX Runtime session on ``graph`` (a file or serialized bytes) with this predictor's threads;
        the config comes from the graph's metadata unless a torch model was given."""
        self._check_onnx_usable()
        graph = graph if isinstance(graph, bytes) else Path(graph)
        if isinstance(graph, Path) and not graph.is_file():
            raise ModelError(missing_model_message(graph))
        session = ort_session(graph, 1)  # one thread per call: batches run chunks side by side
        recorded = onnx_config(session, "ONNX graph" if isinstance(graph, bytes) else str(graph))
        self.session, self.onnx_graph = session, graph
        self._input_name = session.get_inputs()[0].name
        self.onnx_path = None if isinstance(graph, bytes) else graph
        self.config = self._given_config or recorded

    def _close_onnx(self) -> None:
        self.session, self.onnx_graph, self.onnx_path, self.config = None, None, None, self._given_config

    def _load_torch(self) -> Backend:
        """Load the torch model now (errors at construction, not at the first prediction); returns TORCH."""
        self.config = self.model.config
        return Backend.TORCH

    def _open_backend(self, backend: Backend, source: Path | None, track: str | None) -> Backend:
        """Resolve ``backend`` to TORCH or ONNX (opening the ONNX Runtime session)."""
        is_graph = source is not None and source.suffix.lower() == ".onnx"
        if backend is Backend.TORCH:
            if is_graph:
                raise ConfigError(f"{source}: an ONNX graph runs on backend 'onnx' (or 'auto'), not 'torch'")
            return self._load_torch()
        if backend is Backend.AUTO and not is_graph and (not self._on_cpu() or not onnxruntime_available()):
            return self._load_torch()
        self._check_onnx_usable()
        if is_graph:
            self._open_onnx(source)
            if self.config is None:
                self._close_onnx()
                raise ModelError(f"{source}: no lightmark model config in its metadata (export it with lightmark)")
            return Backend.ONNX
        if source is not None and not source.is_file():
            if track is not None and shipped_onnx_path(track).is_file():  # a wheel: the shipped graph only
                self._open_onnx(shipped_onnx_path(track))
                return Backend.ONNX
            raise ModelError(missing_model_message(source))
        twin = onnx_twin(source) if source is not None else None
        if twin is not None:
            try:
                self._open_onnx(twin)
                if self._twin_is_current(source, twin):
                    return Backend.ONNX
                problem = "exported from another checkpoint (re-export it)"
            except Exception as e:  # an unreadable twin is not used, and the user is told
                problem = f"not usable ({e})"
            self._close_onnx()
            import warnings

            fallback = "the torch model" if backend is Backend.AUTO else "an in-memory export"
            warnings.warn(f"{twin}: ONNX twin {problem}; using {fallback}", stacklevel=3)
        if backend is Backend.AUTO:
            return self._load_torch()
        require("torch", "exporting the model to ONNX in memory")
        require("onnx", "exporting the model to ONNX in memory")
        from .export import onnx_bytes

        self._open_onnx(onnx_bytes(self.model))
        return Backend.ONNX

    def _twin_is_current(self, checkpoint: Path, twin: Path) -> bool:
        """The open ONNX twin was exported from this checkpoint: same SHA-256 when the file records one (exports
        by :func:`~lightmark.engine.export.export_onnx`), else same config and not older than the checkpoint
        (this older case loads the torch model)."""
        import json

        meta = onnx_metadata(self.session)
        if META_SOURCE_SHA256 in meta:
            return meta[META_SOURCE_SHA256] == file_sha256(checkpoint)
        if META_CONFIG in meta:
            recorded = ModelConfig.from_dict(json.loads(meta[META_CONFIG])).to_dict()
            if json.loads(json.dumps(recorded)) != json.loads(json.dumps(self.model.config.to_dict())):
                return False
        return twin.stat().st_mtime >= checkpoint.stat().st_mtime

    def with_threads(self, threads: int | None) -> Predictor:
        """A predictor like this one - the same model object, backend, ONNX graph (no twin check, no export) and
        options - whose forward pass runs on ``threads`` threads (see the class's ``threads``)."""
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"threads: expected at least 1 (or None for the default), got {threads}")
        new = copy.copy(self)  # shares the (lazily loaded) torch model
        new.threads = None if threads is None else int(threads)
        new._detector, new._framer, new._tiled = self._detector_spec, None, None  # detectors are made again
        return new  # the ONNX session (one thread per call, safe to call from several threads) is shared

    # -- pre/post-processing -------------------------------------------------------------------------------
    def crop(
        self, image: np.ndarray, box: Box | None = None, landmarks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's input crop (S, S, 3) uint8 and the affine map (2, 3) image -> crop."""
        image = _check_image(image)
        m = self.crop_matrix(image, box, landmarks)
        return self.cut(image, m), m

    def crop_matrix(self, image: np.ndarray, box: Box | None = None, landmarks: np.ndarray | None = None) -> np.ndarray:
        """The affine map (2, 3) image -> the model's input crop: around ``landmarks`` (the previous video frame's),
        else around a face ``box``, else the whole image."""
        s = self.input_size
        if landmarks is not None:
            pts = np.asarray(landmarks, dtype=np.float64)
            usable = pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 2 and np.isfinite(pts).all()
            if not usable or not np.ptp(pts, axis=0).max() > 0:
                raise ConfigError(f"landmarks: expected finite, not all equal (K, 2) points, got shape {pts.shape}")
            m = self.fine_matrix(pts)
        elif box is not None:
            b = np.asarray(box, dtype=np.float64).reshape(-1)
            if b.shape != (4,) or not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
                raise ConfigError(f"box: expected finite (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")
            m = self.box_crop_matrix(tuple(b))
        else:
            m = whole_image_matrix(image.shape[1], image.shape[0], s)
        return m

    def cut(self, image: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The (S, S, 3) uint8 input crop of an RGB image through the affine map ``m`` (2, 3) (gamma applied)."""
        return apply_gamma(warp_window(image, m, self.input_size), self.gamma)

    def box_crop_matrix(self, box: Box) -> np.ndarray:
        """The crop (2, 3) for a face's landmark box: a model trained with fine views (``refine_passes`` >= 1 in
        its config) sees the box the way its fine pass was trained (``fine_ratio``, ``fine_shift_up``; upright as
        the box is, since a box has no roll), others the challenge framing. Measured on the validation crops'
        68-landmark boxes, one pass, the MobileNet mixed model: 2.28 NME/384 framed as its fine view, 2.74 framed
        as the challenge (session 9)."""
        if self.config.refine_passes >= 1:
            return box_matrix(box, self.input_size, self.box_scale, self.config.fine_ratio, self.config.fine_shift_up)
        return box_matrix(box, self.input_size, self.box_scale)

    def fine_matrix(self, points: np.ndarray, angle_deg: float | None = None) -> np.ndarray:
        """The refining crop (2, 3) for a face with (K, 2) image ``points``: upright, framed as the model's fine
        pass was trained (``fine_ratio``, ``fine_shift_up`` of its config), turned by ``angle_deg``; by default
        levelled by the eye line or, for models whose config says ``fine_head_roll``, by the head pose's roll
        (:func:`~lightmark.pose.head_roll`)."""
        c = self.config
        if angle_deg is None:
            angle_deg = head_roll(points) if c.fine_head_roll else face_roll(points)
        return upright_matrix(points, self.input_size, c.fine_ratio, c.fine_shift_up, angle_deg=angle_deg)

    def run_model(self, x: np.ndarray) -> np.ndarray:
        """The model alone on this predictor's backend and threads: (B, 3, S, S) float32 RGB in [0, 255] ->
        (B, K, 2) float32 landmarks in input pixels (no crop, no flip test)."""
        return self.run_model_with_confidence(x)[0]

    def run_model_with_confidence(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`run_model` plus the (B, K) per-point confidence in [0, 1] of heatmap models
        (:meth:`~lightmark.codecs.HeatmapCodec.confidence`; None for regression heads and graphs exported
        without it)."""
        points, conf, _ = self.run_model_outputs(x)
        return points, conf

    def run_model_outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """:meth:`run_model_with_confidence` plus the (B,) probability that each input is a face, from models with a
        face head (:class:`~lightmark.models.landmark_model.FaceHead`; None without one)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.session is not None:
            outs = self.session.run(None, {self._input_name: x}) + [None, None]
            return outs[0], outs[1], outs[2]
        import torch

        with torch.no_grad(), scoped_threads(self.threads):
            out = self.model.outputs(torch.from_numpy(x).to(self.device))
        return tuple(None if t is None else t.cpu().numpy() for t in out)  # type: ignore[return-value]

    def face_probability(self, crops: np.ndarray) -> np.ndarray | None:
        """(N, S, S, 3) uint8 model-input crops -> (N,) probability that each is a face, from the model's face head
        (None for a model without one): one forward pass."""
        x = np.ascontiguousarray(np.asarray(crops).transpose(0, 3, 1, 2), dtype=np.float32)
        return self.run_model_outputs(x)[2]

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 crops -> (B, K, 2) landmarks in crop pixels (with ``flip_test``, one forward pass over
        the crops and their mirror images, merged by :func:`merge_flip_readings`)."""
        return self.predict_crops_with_confidence(crops)[0]

    def predict_crops_with_confidence(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict_crops` plus the (B, K) per-point confidence (merged like the points)."""
        return self.read_crops(crops)[:2]

    def read_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """:meth:`predict_crops_with_confidence` plus the (B,) probability that each crop is a face, from the same
        forward pass (None without a face head; with ``flip_test`` the crop's own, as :meth:`face_probability`
        reads it: the thresholds on it were set that way)."""
        x = np.ascontiguousarray(np.asarray(crops).transpose(0, 3, 1, 2), dtype=np.float32)
        if not self.flip_test:
            points, conf, face = self.run_model_outputs(x)
            return points.astype(np.float32), conf, face
        points, conf, face = self.run_model_outputs(np.concatenate([x, x[..., ::-1]]))
        n, perm = len(x), list(self.config.flip_perm)
        face = None if face is None else face[:n]
        if conf is None:  # no confidence to tell a failed reading: the plain average
            return merge_flip(points[:n], points[n:], self.input_size, perm), None, face
        points, conf = merge_flip_readings(
            points[:n], conf[:n], points[n:], conf[n:], self.input_size, perm, self.flip_disagreement
        )
        return points, conf, face

    # -- public API -------------------------------------------------------------------------------------------
    @property
    def guards_flip(self) -> bool:
        """The flip test keeps a failed reading out (:func:`merge_flip_readings`): a finite ``flip_disagreement``
        and a model with per-point confidence (heatmap heads); otherwise the two readings are averaged."""
        return math.isfinite(self.flip_disagreement) and self.has_confidence

    def describe(self) -> dict:
        """Metadata for evaluation reports: model name, input size, backend, size, parameters, GMACs (these
        three counted on the torch model: read from the ONNX graph's metadata where its export recorded them, so
        the ONNX backend needs no torch here, else counted now, which needs torch). ``flip_disagreement``: the
        flip test's guard, None where no flip test or no guard (:attr:`guards_flip`)."""
        s = onnx_summary(self.session) if self.session is not None else None
        if s is None:
            from ..models import model_summary

            s = model_summary(self.model)
        return {
            "model": self.config.name,
            "input_size": self.input_size,
            "flip_test": self.flip_test,
            "flip_disagreement": self.flip_disagreement if self.flip_test and self.guards_flip else None,
            "refine": self.refine,
            "framing": self.framing.value,
            "backend": self.backend,
            "params": s["params"],
            "size_mb": s["size_mb"],
            "gmacs": s["gmacs"],
        }

    def latency_ms(
        self,
        images: np.ndarray | str | os.PathLike | Sequence[np.ndarray | str | os.PathLike],
        runs: int = 200,
        warmup: int = 20,
    ) -> dict:
        """Median/p90/mean ms (:func:`~lightmark.engine.timing.timing_stats`) of :meth:`predict` (framing, crop,
        model, mapping back) with this predictor's threads (see ``threads``; :meth:`with_threads`), on one image or,
        given a list, call ``i`` on ``images[i % len(images)]``: the default reading costs more on the images it is
        not sure of (:data:`~lightmark.engine.faces.SURE_READING`), so its mean over many images is its cost."""
        one = isinstance(images, (np.ndarray, str, os.PathLike))
        images = [images] if one else list(images)
        if not images:
            raise ConfigError("latency_ms needs at least one image")
        calls = iter(range(runs + warmup))
        return latency(lambda: self.predict(images[next(calls) % len(images)]), runs, warmup)

    def predict(
        self,
        image: np.ndarray | str | os.PathLike,
        box: Box | None = None,
        landmarks: np.ndarray | None = None,
    ) -> np.ndarray:
        """(K, 2) landmarks of one face in image pixel coordinates (K: the model's points, 68 for the default model);
        ``image`` is an RGB uint8 array or a path."""
        image = _check_image(read_image(image) if isinstance(image, (str, os.PathLike)) else image)
        points, _, _ = self._predict_chunk(
            [image], None if box is None else [box], None if landmarks is None else [landmarks]
        )
        return points[0]  # the batch path without its chunking: one face is the latency path (README, "Speed")

    def predict_batch(
        self,
        images: Sequence[np.ndarray | str | os.PathLike],
        boxes: Sequence[Box | None] | None = None,
        landmarks: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """(N, K, 2) landmarks for N faces (RGB uint8 arrays or image paths; ``boxes`` / ``landmarks``: one per
        image, or None): one forward pass over the batch, plus one per ``refine`` pass, plus the detection reading
        of images given without a box under :attr:`Framing.AUTO`."""
        return self.predict_batch_with_confidence(images, boxes, landmarks)[0]

    def predict_batch_with_confidence(
        self,
        images: Sequence[np.ndarray | str | os.PathLike],
        boxes: Sequence[Box | None] | None = None,
        landmarks: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict_batch` plus the (N, K) per-point confidence of the last pass (None without one)."""
        points, conf, _ = self._predict_batch(images, boxes, landmarks)
        return points, conf

    def _predict_batch(
        self,
        images: Sequence[np.ndarray | str | os.PathLike],
        boxes: Sequence[Box | None] | None,
        landmarks: Sequence[np.ndarray | None] | None,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Points (N, K, 2), confidence (N, K) or None, and (N,) bool "framed by a detection"."""
        if isinstance(images, (str, os.PathLike, np.ndarray)) and not (
            isinstance(images, np.ndarray) and images.ndim == 4
        ):
            raise ImageError("predict_batch: expected a sequence of images or paths (predict() takes one image)")
        for what, given in (("boxes", boxes), ("landmarks", landmarks)):
            if given is not None and len(given) != len(images):
                raise ConfigError(f"{what}: expected one per image ({len(images)}), got {len(given)}")
        if len(images) == 0:
            return (*self.empty_prediction(), np.zeros(0, bool))
        images = [_check_image(read_image(img) if isinstance(img, (str, os.PathLike)) else img) for img in images]
        chunks = self._chunks(len(images))
        if self.framing is not Framing.WHOLE:
            _ = self.framer, self.tiled_framer  # made once, before the chunks' threads would race to make them
        if len(chunks) == 1:
            return self._predict_chunk(images, boxes, landmarks)
        with ThreadPoolExecutor(len(chunks)) as pool:
            parts = list(
                pool.map(
                    lambda idx: self._predict_chunk(
                        [images[i] for i in idx],
                        None if boxes is None else [boxes[i] for i in idx],
                        None if landmarks is None else [landmarks[i] for i in idx],
                    ),
                    chunks,
                )
            )
        points, found = np.concatenate([p[0] for p in parts]), np.concatenate([p[2] for p in parts])
        conf = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        return points, conf, found

    def _chunks(self, n: int) -> list[np.ndarray]:
        """Index chunks of a batch of ``n`` images predicted side by side: one per thread on ONNX Runtime (at most
        one per image), one on torch (whose forward pass has its own threads)."""
        workers = 1 if self.session is None else min(self.threads or _usable_cpus(), n)
        return [np.arange(n)] if workers <= 1 else np.array_split(np.arange(n), workers)

    def _predict_chunk(
        self,
        images: list[np.ndarray],
        boxes: Sequence[Box | None] | None,
        landmarks: Sequence[np.ndarray | None] | None,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """:meth:`_predict_batch` on checked images, in the calling thread."""
        points, conf, found = self._first_pass(images, boxes, landmarks)  # (N, K, 2) image pixels
        fine = np.array([landmarks is not None and landmarks[i] is not None for i in range(len(images))])
        base = np.where(fine, 0, self.refine)  # (N,) a crop around given landmarks is already a fine crop
        passes = np.where(found, np.maximum(base, self.detection_passes), base)
        # coarse to fine; no settling passes here: on the re-framed validation sets they gained nothing and cost the
        # crops rolled by 90 degrees 0.16 NME/384 (docs/usage.md, "Whole photos: every face")
        refine_faces(self, images, points, conf, passes, settle=np.zeros(len(images), bool))
        if self.framing is Framing.AUTO:  # a second framing for the images the crop reading is not sure of
            sure = conf.mean(1) >= self.sure_reading  # (N,)
            free = [
                i
                for i in range(len(images))
                if not sure[i] and (boxes is None or boxes[i] is None) and (landmarks is None or landmarks[i] is None)
            ]
            self._try_detections(images, free, points, conf, found)
        return points, conf, found

    def _try_detections(
        self, images: list[np.ndarray], idx: list[int], points: np.ndarray, conf: np.ndarray, found: np.ndarray
    ) -> None:
        """:attr:`Framing.AUTO`: predict images ``idx`` again from the face the :attr:`framer` finds (refined at
        least once) and keep, in place, whichever of the two the model is more confident about."""
        readings = dict(zip(idx, self._detected_readings([images[i] for i in idx]), strict=True))
        idx = [i for i in idx if readings[i] is not None]
        if not idx:
            return
        pts = np.stack([readings[i][0] for i in idx])
        c = np.stack([readings[i][1] for i in idx])
        n = len(idx)
        refine_faces(self, [images[i] for i in idx], pts, c, np.full(n, self.detection_passes), np.zeros(n, bool))
        better = c.mean(1) > conf[idx].mean(1)
        won = np.asarray(idx)[better]
        points[won], conf[won], found[won] = pts[better], c[better], True

    def _first_pass(
        self,
        images: list[np.ndarray],
        boxes: Sequence[Box | None] | None,
        landmarks: Sequence[np.ndarray | None] | None,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The first pass over checked images: (N, K, 2) points, (N, K) confidence and (N,) bool "framed by a
        detection" (:class:`Framing`; only for images given without ``boxes`` / ``landmarks``)."""
        free = [
            i
            for i in range(len(images))
            if self.framing is Framing.DETECT
            and (boxes is None or boxes[i] is None)
            and (landmarks is None or landmarks[i] is None)
        ]
        detected = zip(free, self._detected_readings([images[i] for i in free]), strict=True)
        readings = {i: r for i, r in detected if r is not None}  # images read from a detection already
        mats = {  # the others: image -> crop
            i: self.crop_matrix(img, None if boxes is None else boxes[i], None if landmarks is None else landmarks[i])
            for i, img in enumerate(images)
            if i not in readings
        }
        if mats:
            crops = np.stack([self.cut(images[i], m) for i, m in mats.items()])
            pts, conf = self.predict_mapped_with_confidence(crops, list(mats.values()))
            readings.update((i, (pts[j], None if conf is None else conf[j])) for j, i in enumerate(mats))
        points = np.stack([readings[i][0] for i in range(len(images))])
        confs = [readings[i][1] for i in range(len(images))]
        conf = None if any(c is None for c in confs) else np.stack(confs)
        return points, conf, np.array([i not in mats for i in range(len(images))])

    def _detected_readings(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None] | None]:
        """The first reading - (K, 2) points in image pixels and (K,) confidence (None without one) - of the largest
        face the :attr:`framer` finds in each image (:meth:`_largest_face`), None where it finds none; one model
        call for every image's crops. The image and its turned copies may each see the face upright with a
        different roll (the detector's keypoints are unreliable on faces far from upright): the model reads the
        first crop of each of the face's detections and the reading with the highest detector score plus mean
        model confidence wins (:attr:`~lightmark.engine.faces.Face.combined_score`). Measured on the validation
        crops (mixed model, ``scripts/reframe_eval.py --framing detect``): 2.63 NME/384 as they are, 2.75 / 2.63
        turned by 90 / 180 degrees; the model's confidence alone, around the largest box, scored 2.84 / 2.98 / 2.84
        (a stray box from a turned copy hid the face's own detections; confidence alone preferred upside-down crops
        of profiles). Searching the upright image only scores 2.77 as they are but 31.0 upside down (protocol model;
        docs/experiments.md, "Coarse-to-fine")."""
        faces = [self._largest_face(image) for image in images]  # per image: the detections of its largest face
        owner = [i for i, face in enumerate(faces) for _ in face]  # (M,) the image of each detection
        dets = [d for face in faces for d in face]
        out: list[tuple[np.ndarray, np.ndarray | None] | None] = [None] * len(images)
        if not dets:
            return out
        mats = [first_matrix(self, d, self.framer.box_to_face) for d in dets]
        crops = np.stack([self.cut(images[i], m) for i, m in zip(owner, mats, strict=True)])
        pts, conf = self.predict_mapped_with_confidence(crops, mats)  # (M, K, 2), (M, K) or None
        scores = np.array([d.score for d in dets])
        # a regression head has no confidence: the detector's best score decides
        merit = scores if conf is None else combined_score(scores, conf.mean(1))  # as detect() keeps
        start = 0  # the detections of image i are rows start : start + len(faces[i])
        for i, face in enumerate(faces):
            if face:
                best = start + int(np.argmax(merit[start : start + len(face)]))
                out[i] = pts[best], None if conf is None else conf[best]
            start += len(face)
        return out

    def _largest_face(self, image: np.ndarray) -> list[Detection]:
        """The :attr:`framer`'s detections of the image's largest face (:func:`~lightmark.detectors.base.largest_face`),
        one per turned copy searched that sees it upright; [] for none. One call at half resolution finds the face in
        the image's quarter turns (:meth:`~lightmark.detectors.blazeface.BlazeFace.mosaic_face`) and only the turn of
        its best-scoring detection there is searched at full resolution; every other turn too where that search
        misses the mosaic's face (no face, or another one), every turn where the mosaic shows no face (too small
        for it, or missed); last, tiles down to a photo's least face (:attr:`tiled_framer`). One turn scores about
        as the mosaic's named turns did on the re-framed validation sets, at 0.85-0.94x the mean time
        (docs/usage.md, "One turn at full resolution")."""
        every = (0, *self.framer.rotations)
        face = self.framer.mosaic_face(image)  # [(turn, detection)], best first
        if not face:
            found = self.framer.orientations(image, every)
        else:
            turn, seen = face[0]
            found = self.framer.orientations(image, (turn,))
            if not any(iou(d.box, seen.box[None])[0] > SAME_FACE_IOU for d in found):  # the mosaic's face missed
                found += self.framer.orientations(image, [t for t in every if t != turn])
        if not found:  # no face at the whole image's scale in any turn: smaller ones, in tiles
            found = self.tiled_framer.orientations(image)
        return [found[i] for i in largest_face(found)]

    @property
    def framer(self) -> BlazeFace:
        """The detector of :attr:`Framing.DETECT`: BlazeFace on the whole image and its turned copies."""
        if self._framer is None:
            # one thread per call, like the model's: a batch's chunks already run side by side
            self._framer = create_detector("blazeface", rotations=SEARCH_ROTATIONS, threads=1)
        return self._framer

    @property
    def tiled_framer(self) -> BlazeFace:
        """:attr:`framer` searching tiles too, down to the faces :meth:`detect` looks for in photos
        (:data:`~lightmark.detectors.PHOTO_OPTIONS`): for images where the whole-image search finds no face."""
        if self._tiled is None:
            options = PHOTO_OPTIONS["blazeface"]
            self._tiled = create_detector("blazeface", rotations=SEARCH_ROTATIONS, threads=1, **options)
        return self._tiled

    def _predict_mapped(self, crops: np.ndarray, mats: Sequence[np.ndarray]) -> np.ndarray:
        """(N, S, S, 3) crops cut by ``mats`` (image -> crop) -> (N, K, 2) landmarks in image pixels."""
        return self.predict_mapped_with_confidence(crops, mats)[0]

    def predict_mapped_with_confidence(
        self, crops: np.ndarray, mats: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, S, S, 3) crops cut by ``mats`` (N, 2, 3) (image -> crop) -> (N, K, 2) landmarks in image pixels and
        the (N, K) per-point confidence (None without one)."""
        return self.read_mapped(crops, mats)[:2]

    def read_mapped(
        self, crops: np.ndarray, mats: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """:meth:`predict_mapped_with_confidence` plus the (N,) face probability of each crop (:meth:`read_crops`)."""
        pts, conf, face = self.read_crops(crops)  # (N, K, 2) crop pixels
        m = np.asarray(mats, np.float64)  # (N, 2, 3) image -> crop: crop = A @ image + t
        a, t = m[:, :, :2], m[:, None, :, 2]
        det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]  # (N,)
        a_inv_t = np.stack([a[:, 1, 1], -a[:, 1, 0], -a[:, 0, 1], a[:, 0, 0]], 1).reshape(-1, 2, 2) / det[:, None, None]
        return ((pts - t) @ a_inv_t).astype(np.float32), conf, face  # image = A^-1 (crop - t); a_inv_t: A^-1 transposed

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
        ``results.skipped``. ``decode_threads`` threads decode the next images while the model runs. The progress
        bar shows only when ``progress`` and stderr is a terminal (:func:`~lightmark.utils.progress_bar`).
        """
        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        samples = (data if isinstance(data, FaceDataset) else _as_dataset(data, self.config.scheme)).samples
        names: list[str] = []
        paths: list[Path] = []
        sizes: list[tuple[int, int]] = []
        out: list[np.ndarray] = []
        scores: list[np.ndarray | None] = []
        detected: list[np.ndarray] = []
        skipped: list[tuple[str, str]] = []
        with progress_bar(total=len(samples), desc="predict", unit="img", enabled=progress) as bar:
            for good, bad in _loaded_chunks(samples, batch_size, skip_bad, decode_threads):
                skipped += bad
                if good:
                    points, conf, found = self._predict_batch([img for _, img in good], None, None)
                    out.append(points)
                    detected.append(found)
                    scores.append(None if conf is None else conf.mean(1))
                    for s, img in good:
                        names.append(s.name)
                        paths.append(s.image_path)
                        sizes.append((img.shape[1], img.shape[0]))
                bar.update(len(good) + len(bad))
        k = self.config.num_landmarks
        return PredictionResults(
            names=names,
            landmarks=np.concatenate(out) if out else np.zeros((0, k, 2), np.float32),
            image_sizes=np.asarray(sizes, np.int64).reshape(-1, 2),
            paths=paths,
            skipped=skipped,
            face_scores=None if any(f is None for f in scores) else np.concatenate(scores or [np.zeros(0)]),
            detected=np.concatenate(detected) if self.framing is not Framing.WHOLE and detected else None,
        )

    def detect_dataset(
        self,
        data: str | os.PathLike | FaceDataset | Sequence[str | os.PathLike],
        progress: bool = True,
        skip_bad: bool = False,
        passes: int = 1,
        min_score: float | None | ModelDefault = MODEL_DEFAULT,
        decode_threads: int = 2,
    ) -> DetectionResults:
        """:meth:`detect` on every image of a folder / dataset / list of files (decoded in a thread pool); bad
        images raise unless ``skip_bad`` (then listed in ``results.skipped``)."""
        samples = (data if isinstance(data, FaceDataset) else _as_dataset(data, self.config.scheme)).samples
        res = DetectionResults([], np.zeros((0, 2), np.int64), [], model=self.name)
        sizes: list[tuple[int, int]] = []
        with progress_bar(total=len(samples), desc="detect", unit="img", enabled=progress) as bar:
            for good, bad in _loaded_chunks(samples, 8, skip_bad, decode_threads):
                res.skipped += bad
                for s, img in good:
                    res.faces.append(self.detect(img, passes=passes, min_score=min_score))
                    res.names.append(s.name)
                    res.paths.append(s.image_path)
                    sizes.append((img.shape[1], img.shape[0]))
                bar.update(len(good) + len(bad))
        res.image_sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
        return res


def _loaded_chunks(
    samples: Sequence[Sample], size: int, skip_bad: bool, decode_threads: int
) -> Iterator[tuple[list[tuple[Sample, np.ndarray]], list[tuple[str, str]]]]:
    """Chunks of ``size`` samples decoded in a thread pool: ``(decoded (sample, image) pairs, skipped (name,
    reason) pairs)``; a bad image raises unless ``skip_bad``."""

    def load(s: Sample) -> tuple[Sample, np.ndarray | None, str]:
        try:
            return s, read_image(s.image_path), ""
        except LightmarkError as e:
            if not skip_bad:
                raise
            return s, None, str(e)

    with ThreadPoolExecutor(max_workers=max(1, decode_threads)) as pool:
        for chunk in _chunks(samples, size):
            loaded = list(pool.map(load, chunk))
            yield (
                [(s, img) for s, img, _ in loaded if img is not None],
                [(s.name, e) for s, img, e in loaded if img is None],
            )


def _usable_cpus() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_image(image) -> np.ndarray:
    """An ``HxWx3`` uint8 RGB array (an ``HxW`` grey one is repeated to RGB), else :class:`ImageError`."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected an RGB uint8 array or an image path, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ImageError(f"expected a non-empty HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
    return image


def _as_dataset(data: str | os.PathLike | Sequence[str | os.PathLike], scheme: str) -> FaceDataset:
    from ..data.formats import load_images

    if isinstance(data, (str, os.PathLike)):
        return load_dataset(data, scheme=scheme)
    return load_images(list(data))


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
