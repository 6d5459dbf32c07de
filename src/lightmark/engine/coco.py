"""COCO keypoints output (``--coco``) for crops and for whole-image detections: one face category with the point
names (the 68 iBUG/300-W names for 68-point schemes) and the drawing skeleton of the landmark scheme."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..constants import CONTOURS
from ..schemes import LandmarkScheme, get_scheme, scheme_for_count


def _keypoint_names() -> tuple[str, ...]:
    groups = (
        ("jaw", 17),
        ("right_brow", 5),
        ("left_brow", 5),
        ("nose_bridge", 4),
        ("nose_lower", 5),
        ("right_eye", 6),
        ("left_eye", 6),
        ("outer_mouth", 12),
        ("inner_mouth", 8),
    )
    return tuple(f"{g}_{i}" for g, n in groups for i in range(n))


COCO_KEYPOINT_NAMES: tuple[str, ...] = _keypoint_names()
"""Names of the 68 iBUG/300-W points in order (``jaw_0`` ... ``inner_mouth_7``; right/left are the subject's)."""


def _skeleton(contours: Sequence[tuple[int, int, bool]]) -> tuple[tuple[int, int], ...]:
    return tuple(
        (a + 1, b + 1)
        for start, end, closed in contours
        for a, b in [*((i, i + 1) for i in range(start, end - 1)), *([(end - 1, start)] if closed else [])]
    )


COCO_SKELETON: tuple[tuple[int, int], ...] = _skeleton(CONTOURS)
"""COCO ``skeleton``: 1-based point pairs joined when drawing a face (:data:`lightmark.constants.CONTOURS`)."""


def coco_keypoints(scheme: str | LandmarkScheme | None, num_points: int) -> tuple[list[str], list[list[int]]]:
    """COCO ``keypoints`` names and 1-based ``skeleton`` for ``num_points`` points of ``scheme`` (None: the scheme
    the point count names, see :func:`~lightmark.schemes.scheme_for_count`): :data:`COCO_KEYPOINT_NAMES` for
    68-point schemes, ``<scheme>_<i>`` for others, ``point_<i>`` and no skeleton for an unknown count."""
    s = get_scheme(scheme) if scheme is not None else scheme_for_count(num_points)
    if s is None or s.num_points != num_points:
        return [f"point_{i}" for i in range(num_points)], []
    names = (
        list(COCO_KEYPOINT_NAMES)
        if s.num_points == len(COCO_KEYPOINT_NAMES)
        else [f"{s.name}_{i}" for i in range(s.num_points)]
    )
    return names, [list(e) for e in _skeleton(s.contours)]


def coco_document(
    names: Sequence[str],
    image_sizes: np.ndarray,
    faces: Sequence[tuple[int, np.ndarray, np.ndarray | None, float | None]],
    scheme: str | LandmarkScheme | None = None,
) -> dict:
    """A COCO keypoints dict: ``images`` (one per name, (w, h) from ``image_sizes``), ``annotations`` (one per face
    ``(image index, (K, 2) points, bbox (x0, y0, x1, y1) or None for the landmark box, score or None)``: ``keypoints``
    ``[x, y, 2] * K``, ``num_keypoints``, ``bbox`` ``[x, y, w, h]``, ``area``, ``score`` when given) and
    ``categories`` (one "face" category with the names and skeleton of :func:`coco_keypoints` for ``scheme``, by
    default the scheme the point count names: :data:`COCO_KEYPOINT_NAMES` and :data:`COCO_SKELETON` for 68
    points). Coordinates are 0-based pixel indices, as COCO's keypoints, and the ``bbox`` is in the same pixel-centre
    coordinates (add 0.5 to its x and y for COCO's pixel-edge convention); v = 2 (labelled and visible) for every
    point: the model predicts occluded points too."""
    from .. import __version__

    images = [
        {"id": i, "file_name": n, "width": int(s[0]), "height": int(s[1])}
        for i, (n, s) in enumerate(zip(names, image_sizes, strict=True), 1)
    ]
    annotations = []
    for j, (i, pts, box, score) in enumerate(faces, 1):
        pts = np.asarray(pts, np.float64)
        (x0, y0), (x1, y1) = (pts.min(0), pts.max(0)) if box is None else (box[:2], box[2:])
        kps = np.concatenate([np.round(pts, 3), np.full((len(pts), 1), 2.0)], axis=1).reshape(-1)
        ann = {
            "id": j,
            "image_id": int(i) + 1,
            "category_id": 1,
            "keypoints": [int(v) if k % 3 == 2 else float(v) for k, v in enumerate(kps)],
            "num_keypoints": len(pts),
            "bbox": [round(float(v), 3) for v in (x0, y0, x1 - x0, y1 - y0)],
            "area": round(float((x1 - x0) * (y1 - y0)), 3),
            "iscrowd": 0,
        }
        if score is not None:
            ann["score"] = round(float(score), 4)
        annotations.append(ann)
    k = len(faces[0][1]) if faces else len(COCO_KEYPOINT_NAMES)
    names, skeleton = coco_keypoints(scheme, k)
    category = {"id": 1, "name": "face", "supercategory": "person", "keypoints": names, "skeleton": skeleton}
    info = {"description": f"{k}-point facial landmarks predicted by lightmark", "version": __version__}
    return {"info": info, "images": images, "annotations": annotations, "categories": [category]}
