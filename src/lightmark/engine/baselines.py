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
from pathlib import Path

import numpy as np

from ..constants import NUM_LANDMARKS
from ..data.formats import FaceDataset, load_dataset
from ..data.images import read_image
from ..errors import LightmarkError
from .predict import PredictionResults
from .timing import latency

DLIB_HINT = "pip install 'lightmark[dlib]'"
CENTRE_BOX_RATIO = 256 / 384  # side of the centre box / the crop's shorter side


def centre_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The face box of a challenge-style crop ``width`` x ``height``: the centred square of side
    ``CENTRE_BOX_RATIO`` x the shorter side, as inclusive integer corners ``(x0, y0, x1, y1)`` (dlib rectangles):
    ``(64, 64, 319, 319)``, 256x256 pixels, on a 384x384 crop. dlib's box when its detector finds no face (the
    evaluation) and the box it is timed on (the benchmark)."""
    side = min(width, height) * CENTRE_BOX_RATIO
    x0, y0 = round((width - side) / 2), round((height - side) / 2)
    return x0, y0, x0 + round(side) - 1, y0 + round(side) - 1


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


class DlibPredictor:
    """dlib's HOG face detector + 68-point shape predictor, with the same ``predict``/``predict_dataset`` methods
    as :class:`~lightmark.engine.predict.Predictor`.

    Args:
        upsample: pyramid upsampling of the HOG detector (1 finds faces down to ~40 px).
        model_path: the ``.dat`` file; default: the one of ``face_recognition_models``.

    Raises:
        LightmarkError: dlib or face_recognition_models is not installed (the message says what to install).
    """

    name = "dlib-68 (ERT)"

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

    def predict_dataset(
        self, data: str | os.PathLike | FaceDataset, batch_size: int = 1, progress: bool = True
    ) -> PredictionResults:
        """Predict every image; ``results.detected`` says where the HOG detector found the face."""
        from tqdm import tqdm

        dataset = data if isinstance(data, FaceDataset) else load_dataset(data)
        names, paths, sizes, out, found = [], [], [], [], []
        for s in tqdm(dataset.samples, desc="dlib", unit="img", disable=not progress):
            image = read_image(s.image_path)
            box = self.detect(image)
            found.append(box is not None)
            out.append(self.predict(image, box or centre_box(image.shape[1], image.shape[0])))
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
