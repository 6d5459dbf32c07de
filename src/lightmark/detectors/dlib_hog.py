"""dlib's HOG + linear SVM frontal face detector (compiled into the ``dlib-bin`` wheel: ``pip install
'lightmark[dlib]'``). Slower than BlazeFace and blind to turned faces; kept as an option and a baseline."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np

from ..errors import LightmarkError
from ..utils import install_hint
from .base import BoxToFace, Detection, by_size

DLIB_HINT = install_hint("dlib")


def dlib_available() -> bool:
    """True when ``dlib`` (e.g. from the ``dlib-bin`` wheel) can be imported."""
    return importlib.util.find_spec("dlib") is not None


class DlibHog:
    """dlib's HOG frontal face detector (``dlib.get_frontal_face_detector``), on the image downscaled so its longer
    side is at most ``max_side`` px.

    Args:
        upsample: dlib's pyramid upsampling (0 = fastest, faces of ~80 px of the downscaled image and up).
        max_side: downscale larger images to this longer side first (0 = never).
        threshold: dlib's ``adjust_threshold`` (lower finds more faces, and more false ones).
    """

    name = "dlib-hog"
    # Measured on the 151 of 199 AFLW2000-3D validation crops where HOG finds the face: the 68-landmark box's
    # centre sits 0.09 box sides below the HOG box's centre (+-0.05) and its side is 0.95 x the box side (medians).
    box_to_face = BoxToFace(dx=0.0, dy=0.09, scale=0.95)

    def __init__(self, upsample: int = 0, max_side: int = 640, threshold: float = 0.0) -> None:
        if not dlib_available():
            raise LightmarkError(f"the dlib-hog face detector needs dlib: {DLIB_HINT}")
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = int(upsample)
        self.max_side = int(max_side)
        self.threshold = float(threshold)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, largest first (dlib's SVM margin as the score)."""
        h, w = image.shape[:2]
        scale = 1.0
        img = image
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            img = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        rects, scores, _ = self._detector.run(gray, self.upsample, self.threshold)
        # dlib's rectangles are inclusive pixel ranges: outer edges in pixel-centre coordinates
        out = [
            Detection(
                box=np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float64) / scale - 0.5,
                score=float(s),
            )
            for r, s in zip(rects, scores, strict=True)
        ]
        return by_size(out)
