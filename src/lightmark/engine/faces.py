"""Every face in a whole image: a detector plug-in finds the faces, each is cut upright (rolled by the detector's
eye keypoints) and framed the way the model was trained, then refined on the model's own points.

>>> from lightmark import Predictor
>>> faces = Predictor().detect("group.jpg")          # [Face], largest first
>>> faces[0].landmarks, faces[0].pose.yaw
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.transforms import upright_matrix
from ..detectors import Detection, FaceDetector
from ..pose import HeadPose, estimate_head_pose


@dataclass
class Face:
    """One face of an image, in the image's pixel coordinates.

    ``box`` (4,) the detector's (x0, y0, x1, y1); ``score`` the detector's score; ``landmarks`` (K, 2);
    ``pose`` the head pose fitted to the landmarks (None for layouts other than 68 points).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    pose: HeadPose | None = None

    def to_dict(self, decimals: int = 2) -> dict:
        """JSON-ready: ``{"box", "score", "landmarks", "pose": {"yaw", "pitch", "roll"}}``."""
        pose = None
        if self.pose is not None:
            pose = {k: round(float(v), decimals) for k, v in zip(("yaw", "pitch", "roll"), self.pose.as_tuple())}
        return {
            "box": np.round(np.asarray(self.box, np.float64), decimals).tolist(),
            "score": round(float(self.score), 4),
            "landmarks": np.round(np.asarray(self.landmarks, np.float64), decimals).tolist(),
            "pose": pose,
        }


def first_matrix(predictor, detection: Detection, box_to_face) -> np.ndarray:
    """The first crop (2, 3) for a detection: upright by its roll, framed like the model's refining crops
    (``fine_ratio`` / ``fine_shift_up``: the challenge framing for single-pass models) around the landmark box that
    the detection implies (``box_to_face``)."""
    c = predictor.config
    corners = detection.face_corners(box_to_face)
    return upright_matrix(corners, predictor.input_size, c.fine_ratio, c.fine_shift_up, angle_deg=detection.roll)


def landmarks_of_detections(
    predictor, image: np.ndarray, detections: Sequence[Detection], box_to_face, passes: int = 1
) -> np.ndarray:
    """(N, K, 2) landmarks for N detections of one image: one batched pass on the detection crops, then ``passes``
    batched passes on upright crops framed around the previous points (:meth:`Predictor.fine_matrix`)."""
    if not detections:
        return np.zeros((0, predictor.config.num_landmarks, 2), np.float32)
    mats = [first_matrix(predictor, d, box_to_face) for d in detections]
    for step in range(passes + 1):
        if step:
            mats = [predictor.fine_matrix(p) for p in points]
        crops = np.stack([predictor._cut(image, m) for m in mats])
        points = predictor._predict_mapped(crops, mats)
    return points


def detect_faces(
    predictor, detector: FaceDetector, image: np.ndarray, passes: int = 1, pose: bool = True
) -> list[Face]:
    """Every face the ``detector`` finds in an RGB uint8 ``image``, with the ``predictor``'s landmarks (``passes``
    refining passes after the detection crop) and, for 68-point models, the head pose; largest first."""
    detections = detector.detect(image)
    points = landmarks_of_detections(predictor, image, detections, detector.box_to_face, passes)
    h, w = image.shape[:2]
    fit = pose and predictor.config.num_landmarks == 68
    return [
        Face(d.box, d.score, p, estimate_head_pose(p, (w, h)) if fit else None)
        for d, p in zip(detections, points, strict=True)
    ]
