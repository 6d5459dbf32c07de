"""Detect-then-track 68-point landmarks over video frames, with crops that hold still and follow any roll.

Per frame, every tracked face is cut from an upright crop framed around its previous landmarks
(:meth:`~lightmark.engine.predict.Predictor.fine_matrix`: the crop follows the face's roll, so a face can turn
upside down and back) and all faces go through the landmark model in one batch. The crop is *held*: the previous
frame's crop is kept while the new one would move its corners by less than ``hold_crop`` model-input pixels, so on a
still face the loop reaches a fixed point (same frame in, same crop, same points out) instead of wandering with the
model's own noise. The detector (a :mod:`lightmark.detectors` plug-in) runs when there is no face, when a track is
lost (implausible landmarks: size jump, face leaving the frame, a shape no head pose explains) and every
``redetect_every`` frames; while searching it also looks at the frame turned 90, 180 and 270 degrees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import cv2
import numpy as np

from ..data.transforms import face_roll, invert_affine
from ..detectors import BoxToFace, Detection, FaceDetector
from ..detectors.base import SAME_FACE_IOU, iou, points_box
from ..engine.faces import first_matrix
from ..errors import LightmarkError
from ..pose import HeadPose, estimate_head_pose
from .config import DemoConfig
from .filters import LandmarkSmoother

MAX_POSE_ERROR = 0.2
"""Largest RMS reprojection error (fraction of the landmark box side) of a plausible 68-point face. Measured:
ground-truth AFLW2000-3D shapes fit the mean face with 0.047 median, 0.113 max; random point sets give >= 0.37."""
UPRIGHT_DETECTABLE = 30.0
"""Largest |roll| and |yaw| (degrees) of a track that the upright detector is expected to find: only such tracks
count a miss when a periodic detection does not confirm them."""


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (:func:`lightmark.detectors.base.iou`)."""
    return float(iou(np.asarray(a[:4], np.float64), np.asarray([b[:4]], np.float64))[0])


def face_side(points: np.ndarray) -> float:
    """Side of a 68-point face's landmark box measured in its own upright frame (unchanged by roll), px."""
    pts = np.asarray(points, np.float64)
    t = np.deg2rad(face_roll(pts))
    q = pts @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return float(np.ptp(q, axis=0).max())


def _same_face(old: np.ndarray, new: np.ndarray) -> bool:
    """A track's last landmarks and a new face are the same face: boxes overlap (IoU above
    :data:`~lightmark.detectors.base.SAME_FACE_IOU`) or the old centre lies inside the new box (a track that shrank
    or slid while drifting)."""
    nb = points_box(new)
    cx, cy = np.asarray(old).mean(0)
    return box_iou(points_box(old), nb) > SAME_FACE_IOU or (nb[0] <= cx <= nb[2] and nb[1] <= cy <= nb[3])


def crop_change(old: np.ndarray, new: np.ndarray, size: int) -> float:
    """How far crop ``new`` (2, 3) moves the corners of crop ``old`` (``size`` px square), in crop pixels."""
    s = size - 0.5
    corners = np.array([[-0.5, -0.5], [s, -0.5], [s, s], [-0.5, s]])
    back = invert_affine(old)
    image_pts = corners @ back[:, :2].T + back[:, 2]
    return float(np.linalg.norm(image_pts @ new[:, :2].T + new[:, 2] - corners, axis=1).max())


class CropModel(Protocol):
    """What the tracker needs of a landmark model: crops framed from a detection or from previous points, and the
    landmarks (in frame pixels) of the crops it cuts. :class:`PredictorCrops` adapts a
    :class:`~lightmark.engine.predict.Predictor`."""

    backend: str
    input_size: int
    num_points: int  # points per face (the model's landmark scheme)

    def first_matrix(self, detection: Detection, box_to_face: BoxToFace) -> np.ndarray: ...

    def fine_matrix(self, points: np.ndarray) -> np.ndarray: ...

    def landmarks(self, frame: np.ndarray, mats: list[np.ndarray]) -> np.ndarray: ...


class PredictorCrops:
    """A :class:`~lightmark.engine.predict.Predictor` as a :class:`CropModel`: each crop is cut from the part of the
    frame it covers only (the same pixels as a whole-frame warp, without resizing the whole frame)."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.backend = predictor.backend
        self.input_size = int(predictor.input_size)
        self.num_points = int(predictor.config.num_landmarks)

    def first_matrix(self, detection: Detection, box_to_face: BoxToFace) -> np.ndarray:
        return first_matrix(self.predictor, detection, box_to_face)

    def fine_matrix(self, points: np.ndarray) -> np.ndarray:
        # Levelled by the eye line whatever the model's rule: from frame to frame it is steadier than the head
        # pose's roll, which lost 143 of 180 roll frames of the benchmark's profile face (eye line: 98).
        return self.predictor.fine_matrix(points, angle_deg=face_roll(points))

    def landmarks(self, frame: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        crops = np.stack([self._cut(frame, m) for m in mats])
        return self.predictor._predict_mapped(crops, mats)

    def _cut(self, frame: np.ndarray, m: np.ndarray) -> np.ndarray:
        s = self.input_size
        back = invert_affine(m)
        corners = np.array([[-0.5, -0.5], [s, -0.5], [s, s], [-0.5, s]]) @ back[:, :2].T + back[:, 2]
        h, w = frame.shape[:2]
        x0, y0 = (max(0, int(np.floor(v)) - 2) for v in corners.min(0))
        x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + 3), min(h, int(np.ceil(corners[:, 1].max())) + 3)
        if x1 <= x0 or y1 <= y0:  # the crop lies outside the frame: all black, as a whole-frame warp gives
            return np.zeros((s, s, 3), np.uint8)
        shifted = np.asarray(m, np.float64).copy()
        shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)
        return self.predictor.cut(frame[y0:y1, x0:x1], shifted)


@dataclass
class TrackedFace:
    """One face in one frame."""

    id: int
    landmarks: np.ndarray  # (68, 2) smoothed (== raw when smoothing is off)
    raw: np.ndarray  # (68, 2) the model's prediction
    pose: HeadPose | None
    detected: bool  # (re)initialised from a detection in this frame

    @property
    def box(self) -> tuple[float, float, float, float]:
        return points_box(self.landmarks)


@dataclass
class _Track:
    id: int
    raw: np.ndarray
    smoother: LandmarkSmoother | None
    crop: np.ndarray | None = None  # (2, 3) the crop the next frame is cut with (held while it barely changes)
    smoothed: np.ndarray | None = None
    pose: HeadPose | None = None
    misses: int = 0  # consecutive detection rounds without a matching detection
    ref_side: float = 0.0  # face size at the last detection that started or confirmed the track
    history: list = field(default_factory=list)  # last 2 (raw, smoothed) pairs, for the jitter estimate


class FaceTracker:
    """Detect-then-track 68-point landmarks over frames; see the module docstring.

    Args:
        predictor: the landmark model: a :class:`~lightmark.engine.predict.Predictor` or a :class:`CropModel`.
        detector: a :class:`~lightmark.detectors.FaceDetector` (its ``box_to_face`` frames the first crop).
        config: a :class:`~lightmark.demo.DemoConfig` (default: its defaults); ``options`` replace its fields. Read:
            ``max_faces``, ``redetect_every``, ``hold_crop``, ``smooth`` (``min_cutoff``, ``beta``), ``refine``,
            ``max_misses`` and ``min_face``.
        search_detector: the detector run while no face is tracked (e.g. one that also searches rotated copies of
            the frame); default: ``detector``.
    """

    def __init__(
        self,
        predictor,
        detector: FaceDetector,
        config: DemoConfig | None = None,
        *,
        search_detector: FaceDetector | None = None,
        **options,
    ) -> None:
        cfg = replace(config or DemoConfig(), **options)
        if cfg.max_faces < 1:
            raise LightmarkError("max_faces must be at least 1")
        if not hasattr(predictor, "first_matrix"):  # not a CropModel: a Predictor, or what Predictor() takes
            from ..engine.predict import Predictor

            predictor = PredictorCrops(predictor if isinstance(predictor, Predictor) else Predictor(predictor))
        self.model: CropModel = predictor
        self.detector = detector
        self.search_detector = search_detector or detector
        self.cfg = cfg
        self.box_to_face = getattr(detector, "box_to_face", BoxToFace())
        self.tracks: list[_Track] = []
        self.frame_index = -1
        self.next_id = 0
        # counters
        self.detector_runs = 0
        self.lost = 0
        self.new_tracks = 0
        self.crops_held = 0
        self.crops_moved = 0
        self.seconds = {"detect": 0.0, "landmarks": 0.0, "pose": 0.0}
        self._sq = {"raw": 0.0, "smoothed": 0.0}  # sums of squared second differences (jitter estimate)
        self._nsq = 0

    # -- helpers ------------------------------------------------------------------------------------------
    def _plausible(self, new: np.ndarray, prev: np.ndarray, frame_wh: tuple[int, int], ref_side: float) -> bool:
        """Landmarks that continue a track: finite, not too small, no jump in size or position since the last
        frame, size within [0.67, 1.5] x the last detection's (catches slow drift), centre inside the frame.
        Sizes are measured in the face's upright frame, so rolling changes none of them."""
        if not np.isfinite(new).all():
            return False
        s_new, s_prev = face_side(new), max(face_side(prev), 1e-6)
        if s_new < self.cfg.min_face or not 0.67 <= s_new / s_prev <= 1.5:
            return False
        if ref_side > 0 and not 0.67 <= s_new / ref_side <= 1.5:
            return False
        c_new, c_prev = new.mean(0), prev.mean(0)
        if np.linalg.norm(c_new - c_prev) > 0.6 * s_prev:
            return False
        w, h = frame_wh
        return bool(-0.1 * s_new <= c_new[0] <= w + 0.1 * s_new and -0.1 * s_new <= c_new[1] <= h + 0.1 * s_new)

    def _pose(self, pts: np.ndarray, frame_wh: tuple[int, int]) -> HeadPose | None:
        t = time.perf_counter()
        try:
            return estimate_head_pose(pts, frame_wh)
        except (ValueError, cv2.error):
            return None
        finally:
            self.seconds["pose"] += time.perf_counter() - t

    def _detect(self, frame: np.ndarray, search: bool) -> list[Detection]:
        t = time.perf_counter()
        dets = list((self.search_detector if search else self.detector).detect(frame))
        self.seconds["detect"] += time.perf_counter() - t
        self.detector_runs += 1
        return dets

    def _landmarks(self, frame: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        t = time.perf_counter()
        out = self.model.landmarks(frame, mats)
        self.seconds["landmarks"] += time.perf_counter() - t
        return np.asarray(out, np.float32)

    def _next_crop(self, tr: _Track) -> np.ndarray:
        """The crop for the track's next frame: framed around its smoothed points (their head motion is the raw
        points', unfiltered: no lag), or the current one while that would move its corners by less than
        ``hold_crop`` model-input pixels (the fixed point of a still face)."""
        new = self.model.fine_matrix(tr.raw if tr.smoothed is None else tr.smoothed)
        if tr.crop is not None and crop_change(tr.crop, new, self.model.input_size) < self.cfg.hold_crop:
            self.crops_held += 1
            return tr.crop
        self.crops_moved += 1
        return new

    # -- main step ----------------------------------------------------------------------------------------
    def update(self, frame_rgb: np.ndarray, t: float) -> list[TrackedFace]:
        """Process one RGB frame taken at time ``t`` (seconds); returns the faces in it."""
        self.frame_index += 1
        wh = (frame_rgb.shape[1], frame_rgb.shape[0])
        lost = self._track(frame_rgb, wh)
        # detect when needed: no face, a face lost, or periodically
        every = self.cfg.redetect_every
        periodic = every > 0 and self.frame_index % every == 0
        detected_ids: set[int] = set()
        if not self.tracks or lost or periodic:
            dets = self._detect(frame_rgb, search=not self.tracks)
            detected_ids = self._associate(frame_rgb, dets, wh, lost)
        # drop duplicates (two tracks on one face: keep the older)
        self.tracks.sort(key=lambda tr: tr.id)
        unique: list[_Track] = []
        for tr in self.tracks:
            if all(box_iou(points_box(tr.raw), points_box(u.raw)) < 0.5 for u in unique):
                unique.append(tr)
        self.tracks = unique
        return [self._output(tr, t, wh, tr.id in detected_ids) for tr in self.tracks]

    def _track(self, frame: np.ndarray, wh: tuple[int, int]) -> list[_Track]:
        """Predict every track's landmarks in its crop (one batch); drop and return the tracks lost."""
        if not self.tracks:
            return []
        for tr in self.tracks:
            tr.crop = self._next_crop(tr)
        preds = self._landmarks(frame, [tr.crop for tr in self.tracks])
        kept, lost = [], []
        for tr, p in zip(self.tracks, preds, strict=True):
            pose = self._pose(p, wh) if self._plausible(p, tr.raw, wh, tr.ref_side) else None
            if pose is None or pose.error > MAX_POSE_ERROR:
                lost.append(tr)
                self.lost += 1
                continue
            tr.raw, tr.pose = p, pose
            kept.append(tr)
        self.tracks = kept
        return lost

    def _output(self, tr: _Track, t: float, wh: tuple[int, int], detected: bool) -> TrackedFace:
        """Smooth a track's points, fit the pose of the smoothed points, count jitter; the frame's face."""
        sm = tr.smoother(tr.raw, t) if tr.smoother is not None else tr.raw
        tr.smoothed = np.asarray(sm, np.float32)
        if tr.smoother is not None:  # report the pose of the smoothed landmarks
            tr.pose = self._pose(tr.smoothed, wh) or tr.pose
        tr.history = [*tr.history[-2:], (tr.raw.astype(np.float64), tr.smoothed.astype(np.float64))]
        if len(tr.history) == 3:
            for k, j in (("raw", 0), ("smoothed", 1)):
                a, b, c = (h[j] for h in tr.history)
                self._sq[k] += float(np.mean((c - 2 * b + a) ** 2))
            self._nsq += 1
        return TrackedFace(tr.id, tr.smoothed, tr.raw, tr.pose, detected)

    def _associate(self, frame: np.ndarray, dets: list[Detection], wh: tuple[int, int], lost: list[_Track]) -> set[int]:
        """Match detections to tracks; start tracks on unmatched detections (a face found again where a track was
        just lost keeps its id and smoothing state). Returns the ids of the tracks (re)started."""
        free = self._match(dets, lost)
        return self._start_tracks(frame, [dets[i] for i in free], wh, lost) if free else set()

    def _match(self, dets: list[Detection], lost: list[_Track]) -> list[int]:
        """Confirm the tracks that detections overlap, count a miss for the others and drop those missed too often;
        a track whose scale drifted away from its detection's moves to ``lost``. Returns the unmatched detections'
        indices."""
        matched: set[int] = set()
        free = []
        for i, d in enumerate(dets):
            corners = d.face_corners(self.box_to_face)
            fb, fside = points_box(corners), self.box_to_face.scale * d.side
            best = max(self.tracks, key=lambda tr: box_iou(fb, points_box(tr.raw)), default=None)
            if best is not None and best.id not in matched and box_iou(fb, points_box(best.raw)) > SAME_FACE_IOU:
                if not 0.75 <= fside / max(face_side(best.raw), 1e-6) <= 1.33:
                    # the track's scale drifted away from the detection's: restart it there (same id)
                    self.tracks.remove(best)
                    lost.append(best)
                    self.lost += 1
                    free.append(i)
                    continue
                matched.add(best.id)
                best.misses = 0
                best.ref_side = fside
            else:
                free.append(i)
        for tr in self.tracks:
            if tr.id not in matched:
                tr.misses += 1
        # A track the upright detector should see (near-frontal, near-upright) but missed max_misses times is dropped.
        keep = []
        for tr in self.tracks:
            visible = tr.pose is not None and abs(tr.pose.yaw) < UPRIGHT_DETECTABLE
            visible = visible and abs(face_roll(tr.raw)) < UPRIGHT_DETECTABLE
            if tr.misses >= self.cfg.max_misses and visible:
                self.lost += 1
            else:
                keep.append(tr)
        self.tracks = keep
        return free

    def _first_points(self, frame: np.ndarray, dets: list[Detection]) -> np.ndarray:
        """Landmarks of new detections: the detection crop (upright by the detector's roll), then with ``refine``
        one more pass on the crop framed around those points."""
        points = self._landmarks(frame, [self.model.first_matrix(d, self.box_to_face) for d in dets])
        if self.cfg.refine:
            points = self._landmarks(frame, [self.model.fine_matrix(p) for p in points])
        return points

    def _start_tracks(
        self, frame: np.ndarray, dets: list[Detection], wh: tuple[int, int], lost: list[_Track]
    ) -> set[int]:
        """Start a track on each detection whose landmarks are a plausible face (up to ``max_faces``): a face that
        was just lost keeps its id and smoothing state. Returns the ids started."""
        new_ids: set[int] = set()
        dets = dets[: self.cfg.max_faces]
        for p, d in zip(self._first_points(frame, dets), dets, strict=True):
            pose = self._pose(p, wh)
            if pose is None or pose.error > MAX_POSE_ERROR or not np.isfinite(p).all():
                continue
            if len(self.tracks) >= self.cfg.max_faces:
                # full: replace the track detections have confirmed least (a new face beats an unconfirmed one)
                worst = max(self.tracks, key=lambda tr: (tr.misses, -tr.id))
                if worst.misses == 0:
                    continue
                self.tracks.remove(worst)
                lost.append(worst)
                self.lost += 1
            again = next((lt for lt in lost if _same_face(lt.raw, p)), None)
            if again is not None:  # a momentary loss or a drifted track: same face, same id, smoothing goes on
                lost.remove(again)
                tr = _Track(again.id, p, again.smoother, pose=pose)  # no crop, no smoothed points: framed anew
            else:
                smoother = LandmarkSmoother(self.cfg.min_cutoff, self.cfg.beta) if self.cfg.smooth else None
                tr = _Track(self.next_id, p, smoother, pose=pose)
                self.next_id += 1
                self.new_tracks += 1
            tr.ref_side = self.box_to_face.scale * d.side
            self.tracks.append(tr)
            new_ids.add(tr.id)
        return new_ids

    @property
    def jitter(self) -> tuple[float, float]:
        """(raw, smoothed) frame-to-frame noise estimate in pixels (RMS second difference / sqrt(6), per
        coordinate), over every tracked face and frame so far; NaN before three frames of one track."""
        if not self._nsq:
            return float("nan"), float("nan")
        return tuple(float(np.sqrt(self._sq[k] / self._nsq / 6.0)) for k in ("raw", "smoothed"))  # type: ignore[return-value]
