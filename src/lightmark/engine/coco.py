"""COCO keypoints output (``--coco``) for crops and for whole-image detections: one face category with the 68
iBUG/300-W point names and the drawing skeleton."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..constants import CONTOURS


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
COCO_SKELETON: tuple[tuple[int, int], ...] = tuple(
    (a + 1, b + 1)
    for start, end, closed in CONTOURS
    for a, b in [*((i, i + 1) for i in range(start, end - 1)), *([(end - 1, start)] if closed else [])]
)
"""COCO ``skeleton``: 1-based point pairs joined when drawing a face (:data:`lightmark.constants.CONTOURS`)."""


def coco_document(
    names: Sequence[str],
    image_sizes: np.ndarray,
    faces: Sequence[tuple[int, np.ndarray, np.ndarray | None, float | None]],
) -> dict:
    """A COCO keypoints dict: ``images`` (one per name, (w, h) from ``image_sizes``), ``annotations`` (one per face
    ``(image index, (K, 2) points, bbox (x0, y0, x1, y1) or None for the landmark box, score or None)``: ``keypoints``
    ``[x, y, 2] * K``, ``num_keypoints``, ``bbox`` ``[x, y, w, h]``, ``area``, ``score`` when given) and
    ``categories`` (one "face" category with :data:`COCO_KEYPOINT_NAMES` and :data:`COCO_SKELETON`). Coordinates are
    0-based pixel indices, as COCO's keypoints, and the ``bbox`` is in the same pixel-centre coordinates (add 0.5 to
    its x and y for COCO's pixel-edge convention); v = 2 (labelled and visible) for every point: the model predicts
    occluded points too."""
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
    category = {
        "id": 1,
        "name": "face",
        "supercategory": "person",
        "keypoints": list(COCO_KEYPOINT_NAMES),
        "skeleton": [list(e) for e in COCO_SKELETON],
    }
    info = {"description": "68-point facial landmarks predicted by lightmark", "version": __version__}
    return {"info": info, "images": images, "annotations": annotations, "categories": [category]}
