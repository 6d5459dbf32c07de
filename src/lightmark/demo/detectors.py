"""Face detectors for the video demo, as plug-ins: anything with ``detect(frame_rgb) -> [(x0, y0, x1, y1, score)]``.

The bundled one is dlib's HOG + linear SVM frontal face detector, whose model is compiled into the ``dlib-bin``
wheel (no download, no compiler): ``pip install 'lightmark[demo]'``. It finds frontal and moderately turned faces
of at least ~80 px (40 px with ``upsample=1``, four times slower); the tracker keeps following a face once found,
even when it turns further.
"""

from __future__ import annotations

import importlib.util
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import LightmarkError
from .config import DemoConfig

Detection = tuple[float, float, float, float, float]
DEMO_EXTRA_HINT = "pip install 'lightmark[demo]'"


@runtime_checkable
class Detector(Protocol):
    """A face detector: boxes ``(x0, y0, x1, y1, score)`` in the frame's pixels, best first.

    Optional attribute ``box_to_face = (dx, dy, scale)``: where the 68-landmark box sits relative to a
    detection box of side ``s`` (centre shifted by ``(dx, dy) * s``, side ``scale * s``); default ``(0, 0, 1)``.
    """

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]: ...


def dlib_available() -> bool:
    """True when ``dlib`` (e.g. from the ``dlib-bin`` wheel) can be imported."""
    return importlib.util.find_spec("dlib") is not None


class DlibHogDetector:
    """dlib's HOG frontal face detector (``dlib.get_frontal_face_detector``), run on a frame downscaled so
    its longer side is at most ``max_side`` px.

    Args:
        upsample: dlib's pyramid upsampling (0 = fastest, faces >= ~80 px of the downscaled frame).
        max_side: downscale larger frames to this longer side before detecting (0 = never).
        threshold: dlib's ``adjust_threshold`` (lower finds more faces, and more false ones).
    """

    # Measured on the 151 of 199 AFLW2000-3D validation crops where HOG finds the face: the 68-landmark box's
    # centre sits 0.09 box sides below the HOG box's centre (+-0.05) and its side is 0.95 x the box side (medians).
    box_to_face: tuple[float, float, float] = (0.0, 0.09, 0.95)

    def __init__(self, upsample: int = 0, max_side: int = 640, threshold: float = 0.0) -> None:
        if not dlib_available():
            raise LightmarkError(f"the demo's face detector needs dlib: {DEMO_EXTRA_HINT}")
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = int(upsample)
        self.max_side = int(max_side)
        self.threshold = float(threshold)

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        h, w = frame_rgb.shape[:2]
        scale = 1.0
        img = frame_rgb
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            img = cv2.resize(frame_rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        rects, scores, _ = self._detector.run(gray, self.upsample, self.threshold)
        out = [
            (  # dlib's rectangles are inclusive pixel ranges: outer edges in pixel-centre coordinates
                r.left() / scale - 0.5,
                r.top() / scale - 0.5,
                (r.right() + 1) / scale - 0.5,
                (r.bottom() + 1) / scale - 0.5,
                float(s),
            )
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(out, key=lambda d: -d[4])


DETECTORS: dict[str, type] = {"dlib-hog": DlibHogDetector}


def create_detector(name: str = DemoConfig.detector, **options) -> Detector:
    """A detector by name (one of :data:`DETECTORS`; default: the demo's, ``"dlib-hog"``).

    Raises:
        LightmarkError: unknown name, or its package is not installed (the message names the extra).
    """
    if name not in DETECTORS:
        raise LightmarkError(f"unknown face detector {name!r}; available: {', '.join(DETECTORS)}")
    return DETECTORS[name](**options)


def face_from_box(box: Detection | tuple[float, float, float, float], box_to_face=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Four corner points (4, 2) of the landmark box a detection implies (usable as ``landmarks=`` to crop)."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    side = max(x1 - x0, y1 - y0)
    dx, dy, k = box_to_face
    cx, cy = (x0 + x1) / 2 + dx * side, (y0 + y1) / 2 + dy * side
    half = k * side / 2
    return np.array([[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half], [cx - half, cy + half]])
