"""Face detectors as plug-ins: a small registry and ``create_detector(name, **options)``.

>>> from lightmark.detectors import create_detector
>>> faces = create_detector("blazeface", min_face=48).detect(image_rgb)   # [Detection], largest first

Shipped: ``blazeface`` (MediaPipe's BlazeFace short-range as ONNX, the default) and ``dlib-hog`` (needs the
``[dlib]`` extra). A plug-in is any class with ``name``, ``box_to_face`` (:class:`BoxToFace`) and
``detect(image_rgb) -> list[Detection]`` (:class:`FaceDetector`); :func:`register_detector` adds one.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import LightmarkError
from .base import BoxToFace, Detection, FaceDetector, by_size

DEFAULT_DETECTOR = "blazeface"
PHOTO_OPTIONS: dict[str, dict] = {"blazeface": {"min_face": 48.0}}
"""Options of a detector made by name for whole photos (:meth:`~lightmark.engine.predict.Predictor.detect`):
BlazeFace adds tiles down to faces of 48 px (docs/usage.md, the whole-photo figures). Video: the whole frame only."""


def _blazeface(**options) -> FaceDetector:
    from .blazeface import BlazeFace

    return BlazeFace(**options)


def _dlib_hog(**options) -> FaceDetector:
    from .dlib_hog import DlibHog

    return DlibHog(**options)


DETECTORS: dict[str, Callable[..., FaceDetector]] = {"blazeface": _blazeface, "dlib-hog": _dlib_hog}


def register_detector(name: str, factory: Callable[..., FaceDetector]) -> None:
    """Make ``create_detector(name, **options)`` call ``factory(**options)``."""
    DETECTORS[name] = factory


def create_detector(name: str = DEFAULT_DETECTOR, **options) -> FaceDetector:
    """A face detector by registry name (:data:`DETECTORS`) with its options.

    Raises:
        LightmarkError: unknown name, or the detector's package is missing (the message names the extra).
    """
    if name not in DETECTORS:
        raise LightmarkError(f"unknown face detector {name!r}; available: {', '.join(DETECTORS)}")
    return DETECTORS[name](**options)


__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "PHOTO_OPTIONS",
    "BoxToFace",
    "Detection",
    "FaceDetector",
    "by_size",
    "create_detector",
    "register_detector",
]
