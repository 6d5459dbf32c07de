"""What every face detector returns, and the rule that turns a detection into a face frame for the landmark model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

SAME_FACE_IOU = 0.3
"""Two boxes that overlap more than this (intersection over union) are taken for one face: the detections of one face
in an image's turned copies (:func:`largest_face`, ``BlazeFace.detect``'s suppression across turns, ``Predictor``'s
check that a full-resolution search found the mosaic's face), a track and a new detection in the video tracker."""
SEARCH_ROTATIONS: tuple[int, ...] = (90, 180, 270)
"""The turns (degrees, clockwise on screen) of an image searched too, to find faces at any roll."""


def points_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """The (x0, y0, x1, y1) bounding box of (K, 2) points (of a face's landmarks: its "68-landmark box")."""
    lo, hi = np.min(points, 0), np.max(points, 0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with (M, 4) boxes, all (x0, y0, x1, y1)."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-12)


@dataclass(frozen=True)
class BoxToFace:
    """Where the 68-landmark box sits relative to a detector's box of side ``s`` (max of width and height), in the
    face's upright frame: centre moved by ``(dx, dy) * s``, side ``scale * s``. Measured per detector (see each
    detector's ``box_to_face``) on faces with known landmarks."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True, eq=False)  # compared by identity: numpy fields have no single truth value
class Detection:
    """One face found by a detector, in the image's pixel coordinates.

    ``box`` (4,) is ``(x0, y0, x1, y1)``; ``keypoints`` (K, 2) are the detector's own points when it has them
    (BlazeFace: the subject's right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion),
    else None; ``roll`` is the in-plane angle (degrees, clockwise on screen, 0 = upright) the eyes imply, 0 without
    keypoints.
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None
    roll: float = 0.0

    @property
    def side(self) -> float:
        """The box's larger side in pixels."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))

    def face_corners(self, box_to_face: BoxToFace = BoxToFace()) -> np.ndarray:
        """(4, 2) corners of the landmark box this detection implies, rotated by ``roll``: usable as the points of
        :func:`~lightmark.data.transforms.upright_matrix` (with ``angle_deg=roll``) to frame a crop."""
        x0, y0, x1, y1 = (float(v) for v in self.box)
        s = self.side
        t = np.deg2rad(self.roll)
        c, si = np.cos(t), np.sin(t)
        u, v = np.array([c, si]), np.array([-si, c])  # the face's right and down directions on screen
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + s * (box_to_face.dx * u + box_to_face.dy * v)
        h = box_to_face.scale * s / 2
        return np.stack([centre + h * (a * u + b * v) for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))])

    def mapped(self, m: np.ndarray) -> Detection:
        """This detection through a similarity transform ``m`` (2, 3) (e.g. from a rotated copy back to the image)."""
        m = np.asarray(m, np.float64)
        x0, y0, x1, y1 = self.box
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) @ m[:, :2].T + m[:, 2]
        a = np.abs(m[:, :2])  # the axis-aligned bounds of the mapped box (exact for quarter turns)
        half = a @ np.array([x1 - x0, y1 - y0]) / 2
        centre = corners.mean(0)
        kp = None if self.keypoints is None else self.keypoints @ m[:, :2].T + m[:, 2]
        roll = self.roll + float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
        roll = (roll + 180.0) % 360.0 - 180.0
        return replace(self, box=np.concatenate([centre - half, centre + half]), keypoints=kp, roll=roll)


@runtime_checkable
class FaceDetector(Protocol):
    """A face detector plug-in: ``detect(image_rgb)`` returns the faces found, largest first.

    Attributes: ``name`` (its registry name) and ``box_to_face`` (:class:`BoxToFace`: how its boxes relate to the
    68-landmark box).
    """

    name: str
    box_to_face: BoxToFace

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def largest_face(detections: Sequence[Detection]) -> list[int]:
    """Indices of the detections that show the largest face, each possibly from another turned copy of the image:
    those overlapping (:data:`SAME_FACE_IOU`) the best-scoring detection near the largest box (a turned copy's
    stray box can be the largest and miss the face). Boxes without area are never the largest. [] for no
    detections."""
    if not detections:
        return []
    boxes = np.stack([d.box for d in detections])  # (M, 4)
    real = [i for i, b in enumerate(boxes) if np.all(b[2:] > b[:2])]  # boxes with an area
    if not real:
        return [max(range(len(detections)), key=lambda i: detections[i].score)]
    largest = max(real, key=lambda i: detections[i].side)
    near = np.flatnonzero(iou(boxes[largest], boxes) > SAME_FACE_IOU)  # the largest itself among them
    anchor = max(near, key=lambda i: detections[i].score)
    same = iou(boxes[anchor], boxes) > SAME_FACE_IOU
    same[anchor] = True
    return [int(i) for i in np.flatnonzero(same)]


def by_size(detections: list[Detection]) -> list[Detection]:
    """Detections sorted largest box first (ties: higher score first)."""
    return sorted(detections, key=lambda d: (-d.side, -d.score))
