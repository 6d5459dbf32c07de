"""Reference predictors scored by the same evaluation code as lightmark's models.

:class:`DlibPredictor` is dlib's 68-point shape predictor (an ensemble of regression trees trained on iBUG 300-W,
``shape_predictor_68_face_landmarks.dat`` from ``face_recognition_models``), an optional dependency:
``pip install 'lightmark[dlib]'``. Its face box comes from dlib's own HOG detector, as dlib users run it; when the
detector finds no face, the centre box of the crop (:func:`centre_box`: 256x256 on a 384x384 crop) is used, so every
image gets a prediction and the NME covers the same images as every other row.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import CHALLENGE_SIZE, NUM_LANDMARKS
from ..data.formats import FaceDataset, load_dataset
from ..data.images import read_image
from ..detectors.dlib_hog import DLIB_HINT
from ..errors import LightmarkError
from .predict import PredictionResults
from .timing import latency

CENTRE_BOX_RATIO = 256 / CHALLENGE_SIZE  # side of the centre box / the crop's shorter side (256 px of a challenge crop)


def centre_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The face box of a challenge-style crop ``width`` x ``height``: the centred square of side
    ``CENTRE_BOX_RATIO`` x the shorter side, as inclusive integer corners ``(x0, y0, x1, y1)`` (dlib rectangles):
    ``(64, 64, 319, 319)``, 256x256 pixels, on a 384x384 crop. dlib's box when its detector finds no face (the
    evaluation) and the box it is timed on (the benchmark)."""
    side = min(width, height) * CENTRE_BOX_RATIO
    x0, y0 = round((width - side) / 2), round((height - side) / 2)
    return x0, y0, x0 + round(side) - 1, y0 + round(side) - 1


def predict_each(
    predict_found: Callable[[np.ndarray], tuple[np.ndarray, bool]],
    data: str | os.PathLike | FaceDataset,
    desc: str,
    progress: bool = True,
) -> PredictionResults:
    """A baseline's :class:`PredictionResults` over a dataset, one image at a time: ``predict_found(image)`` gives
    the (68, 2) landmarks and whether the baseline found the face itself (``results.detected``)."""
    from tqdm import tqdm

    dataset = data if isinstance(data, FaceDataset) else load_dataset(data)
    names, paths, sizes, out, found = [], [], [], [], []
    for s in tqdm(dataset.samples, desc=desc, unit="img", disable=not progress):
        image = read_image(s.image_path)
        landmarks, hit = predict_found(image)
        out.append(landmarks)
        found.append(hit)
        names.append(s.name)
        paths.append(s.image_path)
        sizes.append((image.shape[1], image.shape[0]))
    return PredictionResults(
        names=names,
        landmarks=np.stack(out) if out else np.zeros((0, NUM_LANDMARKS, 2), np.float32),
        image_sizes=np.asarray(sizes, np.int64).reshape(-1, 2),
        paths=paths,
        detected=np.asarray(found, bool),
    )


class OneByOneBaseline:
    """A reference predictor that reads one image at a time through ``predict_found(image) -> (points, found)``;
    ``progress_name`` labels its progress bar."""

    progress_name = "baseline"

    def predict_found(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """(68, 2) landmarks of an RGB image and whether the baseline found the face itself."""
        raise NotImplementedError

    def predict_dataset(
        self, data: str | os.PathLike | FaceDataset, batch_size: int = 1, progress: bool = True
    ) -> PredictionResults:
        """Predict every image; ``results.detected`` says where the baseline found the face itself."""
        return predict_each(self.predict_found, data, self.progress_name, progress)


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


class DlibPredictor(OneByOneBaseline):
    """dlib's HOG face detector + 68-point shape predictor, with the same ``predict``/``predict_dataset`` methods
    as :class:`~lightmark.engine.predict.Predictor`.

    Args:
        upsample: pyramid upsampling of the HOG detector (1 finds faces down to ~40 px).
        model_path: the ``.dat`` file; default: the one of ``face_recognition_models``.

    Raises:
        LightmarkError: dlib or face_recognition_models is not installed (the message says what to install).
    """

    name = "dlib-68 (ERT)"
    progress_name = "dlib"

    def __init__(self, upsample: int = 1, model_path: str | os.PathLike | None = None) -> None:
        path = Path(model_path) if model_path is not None else dlib_shape_predictor_path()
        if path is None or not path.is_file():
            raise LightmarkError(f"the dlib baseline needs dlib and face_recognition_models: {DLIB_HINT}")
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape_predictor = dlib.shape_predictor(str(path))
        self.model_path = path
        self.upsample = int(upsample)
        self.version = str(dlib.__version__)

    def detect(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """The HOG detection nearest the image centre as inclusive ``(x0, y0, x1, y1)``, or None."""
        rects = self.detector(np.ascontiguousarray(image), self.upsample)
        if len(rects) == 0:
            return None
        h, w = image.shape[:2]

        def off_centre(r) -> float:
            return ((r.left() + r.right()) / 2 - w / 2) ** 2 + ((r.top() + r.bottom()) / 2 - h / 2) ** 2

        r = min(rects, key=off_centre)
        return r.left(), r.top(), r.right(), r.bottom()

    def predict(
        self, image: np.ndarray | str | os.PathLike, box: tuple[int, int, int, int] | None = None
    ) -> np.ndarray:
        """(68, 2) landmarks in image pixels; ``box`` (inclusive corners) skips the detector."""
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)
        if box is None:
            box = self.detect(image) or centre_box(image.shape[1], image.shape[0])
        rect = self._dlib.rectangle(*(round(float(v)) for v in box))  # dlib takes integer corners
        shape = self.shape_predictor(np.ascontiguousarray(image), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def predict_found(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """(68, 2) landmarks of the HOG detection nearest the centre (the centre box when there is none), and
        whether the detector found a face."""
        box = self.detect(image)
        return self.predict(image, box or centre_box(image.shape[1], image.shape[0])), box is not None

    def describe(self) -> dict:
        """Metadata for evaluation reports."""
        return {
            "model": self.name,
            "backend": f"dlib {self.version}",
            "detector": f"dlib HOG (upsample {self.upsample}), centre box fall-back",
            "size_mb": round(self.model_path.stat().st_size / 1e6, 2),  # the model file, MB
        }

    def latency_ms(self, image: np.ndarray, runs: int = 200, warmup: int = 20) -> dict:
        """Median/p90 ms of the shape predictor on one face box (detector excluded), single thread."""
        t0 = time.perf_counter()
        box = self.detect(image)  # timed once: the detector's cost is reported beside the predictor's
        detect_ms = (time.perf_counter() - t0) * 1e3
        box = box or centre_box(image.shape[1], image.shape[0])
        stats = latency(lambda: self.predict(image, box), runs, warmup)
        return {**stats, "hog_detect_ms": round(detect_ms, 2)}


MEDIAPIPE_HINT = (
    "pip install mediapipe==0.10.21 (the last release whose wheel ships the face mesh model; it pins numpy < 2, "
    "so give it its own virtual environment: make compare-peers)"
)
MESH_VERTICES = 468  # MediaPipe's face mesh without the iris refinement


@dataclass(frozen=True)
class MeshMap:
    """The 68 points read off a dense mesh: point ``j`` is ``sum_k weights[j, k] * mesh[index[j, k]]`` (each row
    of ``weights`` sums to 1, so the map commutes with moving and scaling the face). ``mean_shape`` is the 68
    points' mean position in their own bounding box (unit square), the fall-back shape when no mesh is found."""

    index: np.ndarray  # (68, K) int: mesh vertices
    weights: np.ndarray  # (68, K) float64, rows sum to 1
    mean_shape: np.ndarray  # (68, 2) in the unit landmark box
    fitted_on: str = ""

    def apply(self, mesh: np.ndarray) -> np.ndarray:
        """(..., V, 2) mesh vertices -> (..., 68, 2) float32 landmarks."""
        return np.einsum("...jkc,jk->...jc", mesh[..., self.index, :], self.weights).astype(np.float32)

    def to_dict(self) -> dict:
        """The map as JSON-ready lists (weights and mean shape rounded to 1e-5)."""
        return {
            "index": self.index.tolist(),
            "weights": np.round(self.weights, 5).tolist(),
            "mean_shape": np.round(self.mean_shape, 5).tolist(),
            "fitted_on": self.fitted_on,
        }


def fit_mesh_map(
    mesh: np.ndarray, landmarks: np.ndarray, norm: np.ndarray, k: int = 4, ridge: float = 1e-3, fitted_on: str = ""
) -> MeshMap:
    """Fit a :class:`MeshMap` on faces with both a mesh and labelled points. Each point takes the ``k`` vertices
    nearest it on average (distance / ``norm``) and the weights ``w`` (summing to 1) that minimise the mean over
    faces of its squared error / ``norm ** 2`` plus ``ridge * |w - 1/k|^2`` (a pull towards equal weights).
    Faces scaled with their ``norm`` give the same map. Generous to the mesh: it learns the label set's own
    definition of each point.

    Args:
        mesh: (N, V, 2) mesh vertices of N faces.
        landmarks: (N, 68, 2) labelled points of the same faces.
        norm: (N,) each face's size, the normaliser of the figure the map should serve (e.g. the inter-ocular
            distance for inter-ocular NME).

    Returns:
        The map; its ``mean_shape`` is the labelled points' mean in their own bounding box.
    """
    mesh, landmarks = np.asarray(mesh, np.float64), np.asarray(landmarks, np.float64)
    scale = 1.0 / np.asarray(norm, np.float64)  # (N,)
    n, points = len(scale), landmarks.shape[1]
    index, weights = np.zeros((points, k), np.int64), np.zeros((points, k))
    kkt = np.zeros((k + 1, k + 1))  # [[A'A / n + ridge I, 1], [1', 0]]: least squares with sum(w) = 1
    kkt[:k, k] = kkt[k, :k] = 1.0
    rhs = np.r_[np.full(k, ridge / k), 1.0]
    for j in range(points):
        off = (mesh - landmarks[:, j : j + 1]) * scale[:, None, None]  # (N, V, 2) vertex - point, in face sizes
        index[j] = np.argsort(np.linalg.norm(off, axis=2).mean(0))[:k]
        a = off[:, index[j]].transpose(0, 2, 1).reshape(2 * n, k)  # (2N, k): the error is a @ w when sum(w) = 1
        kkt[:k, :k] = a.T @ a / n + ridge * np.eye(k)
        weights[j] = np.linalg.solve(kkt, rhs)[:k]
    lo, hi = landmarks.min(1, keepdims=True), landmarks.max(1, keepdims=True)
    mean_shape = ((landmarks - lo) / np.maximum(hi - lo, 1e-9)).mean(0)
    return MeshMap(index, weights, mean_shape, fitted_on)


def place_in_box(unit_shape: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """(K, 2) points in the unit square -> (K, 2) float32 points in the box ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    return (np.asarray(unit_shape) * [x1 - x0, y1 - y0] + [x0, y0]).astype(np.float32)


class MediaPipeMeshPredictor(OneByOneBaseline):
    """MediaPipe's face mesh (468 vertices, ``mediapipe==0.10.21``'s ``solutions.face_mesh``, which finds the face
    with its own BlazeFace detector) read as 68 points through a fitted :class:`MeshMap`, with the same
    ``predict``/``predict_dataset`` methods as :class:`~lightmark.engine.predict.Predictor`. When the mesh finds
    no face, the map's mean shape in the centre box (:func:`centre_box`) stands in, as dlib's centre box does.

    Args:
        mesh_map: how the 68 points are read off the mesh (:func:`fit_mesh_map`); None: only :meth:`mesh` works
            (e.g. to collect the meshes a map is fitted on).
        tracking: video mode (each call starts from the previous frame's mesh: the detector runs only when the
            face is lost); default: every image on its own (detector, then mesh).

    Raises:
        LightmarkError: mediapipe (with the solutions API and its bundled models) is not installed.
    """

    name = "MediaPipe face mesh"
    progress_name = "mediapipe"

    def __init__(self, mesh_map: MeshMap | None = None, tracking: bool = False) -> None:
        try:
            import mediapipe as mp

            face_mesh = mp.solutions.face_mesh
        except (ImportError, AttributeError) as e:
            raise LightmarkError(f"the MediaPipe baseline needs {MEDIAPIPE_HINT}") from e
        self.mesh_map, self.tracking, self.version = mesh_map, tracking, str(mp.__version__)
        self._mesh = face_mesh.FaceMesh(static_image_mode=not tracking, max_num_faces=1, refine_landmarks=False)

    def mesh(self, image: np.ndarray) -> np.ndarray | None:
        """(468, 2) mesh vertices in image pixels of the one face MediaPipe finds in an RGB image, or None."""
        found = self._mesh.process(np.ascontiguousarray(image)).multi_face_landmarks
        if not found:
            return None
        h, w = image.shape[:2]
        return np.array([(p.x * w, p.y * h) for p in found[0].landmark[:MESH_VERTICES]], np.float64)

    def predict_found(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """(68, 2) landmarks and whether the mesh found a face (the fall-back shape when it did not)."""
        if self.mesh_map is None:
            raise LightmarkError("MediaPipeMeshPredictor without a mesh_map gives meshes only: fit_mesh_map makes one")
        mesh = self.mesh(image)
        if mesh is None:
            return place_in_box(self.mesh_map.mean_shape, centre_box(image.shape[1], image.shape[0])), False
        return self.mesh_map.apply(mesh), True

    def predict(self, image: np.ndarray | str | os.PathLike) -> np.ndarray:
        """(68, 2) landmarks in image pixels."""
        return self.predict_found(read_image(image) if isinstance(image, (str, os.PathLike)) else image)[0]

    def describe(self) -> dict:
        """Metadata for evaluation reports."""
        return {
            "model": self.name,
            "backend": f"mediapipe {self.version}",
            "detector": "BlazeFace inside the face mesh solution" + (", tracking" if self.tracking else ""),
            "mesh_map": None if self.mesh_map is None else self.mesh_map.fitted_on,
        }
