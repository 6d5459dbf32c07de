"""Real-time landmark tracking on a video or camera: detection, tracking, smoothing, head pose, export.

Per frame, every tracked face is cropped from its previous frame's landmarks and all faces go through the
landmark model in one batch. The detector runs only when there is no face, when a track is lost (implausible
landmarks: box size jump, face leaves the frame, shape that no head pose explains) and every
``redetect_every`` frames (new faces; a track that the detector should see but misses twice is dropped).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np

from ..engine.predict import Predictor
from ..errors import LightmarkError
from ..models import LandmarkModel
from ..utils import atomic_write
from .config import DemoConfig
from .detectors import Detection, Detector, create_detector, face_from_box
from .filters import LandmarkSmoother
from .pose import HeadPose, draw_pose_axes, estimate_head_pose

MAX_POSE_ERROR = 0.2
"""Largest RMS reprojection error (fraction of the landmark box side) of a plausible 68-point face. Measured:
ground-truth AFLW2000-3D shapes fit the mean face with 0.047 median, 0.113 max; random point sets give >= 0.37."""


def box_of(points: np.ndarray) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of (K, 2) points."""
    lo, hi = np.asarray(points).min(0), np.asarray(points).max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1, ...) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _side(points: np.ndarray) -> float:
    return float(np.ptp(points, axis=0).max())


def _same_face(old: np.ndarray, new: np.ndarray) -> bool:
    """A track's last landmarks and a new face are the same face: boxes overlap (IoU > 0.3) or the old centre
    lies inside the new box (a track that shrank or slid while drifting)."""
    nb = box_of(new)
    cx, cy = np.asarray(old).mean(0)
    return iou(box_of(old), nb) > 0.3 or (nb[0] <= cx <= nb[2] and nb[1] <= cy <= nb[3])


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
        return box_of(self.landmarks)


@dataclass
class _Track:
    id: int
    raw: np.ndarray
    smoother: LandmarkSmoother | None
    smoothed: np.ndarray | None = None
    pose: HeadPose | None = None
    misses: int = 0  # consecutive detection rounds without a matching detection
    ref_side: float = 0.0  # face size at the last detection that started or confirmed the track
    history: list = field(default_factory=list)  # last 2 (raw, smoothed) pairs, for the jitter estimate


class FaceTracker:
    """Detect-then-track 68-point landmarks over frames; see the module docstring.

    Args:
        predictor: the landmark predictor.
        detector: a :class:`~lightmark.demo.detectors.Detector`.
        config: a :class:`~lightmark.demo.DemoConfig` (default: its defaults); ``options`` replace its fields. Read:
            ``max_faces`` (most faces tracked at once), ``redetect_every`` (run the detector every N frames even
            when tracking; 0 = only when a face is lost), ``smooth`` (One Euro filtering of the landmarks,
            ``min_cutoff`` Hz, ``beta`` per face size), ``refine`` (after a detection, predict twice: the second
            crop framed by the first prediction), ``max_misses`` and ``min_face``.
    """

    def __init__(self, predictor: Predictor, detector: Detector, config: DemoConfig | None = None, **options) -> None:
        cfg = replace(config or DemoConfig(), **options)
        if cfg.max_faces < 1:
            raise LightmarkError("max_faces must be at least 1")
        self.predictor = predictor
        self.detector = detector
        self.max_faces = int(cfg.max_faces)
        self.redetect_every = int(cfg.redetect_every)
        self.smooth = cfg.smooth
        self.min_cutoff, self.beta = float(cfg.min_cutoff), float(cfg.beta)
        self.refine = cfg.refine
        self.max_misses = int(cfg.max_misses)
        self.min_face = float(cfg.min_face)
        self.box_to_face = tuple(getattr(detector, "box_to_face", (0.0, 0.0, 1.0)))
        self.tracks: list[_Track] = []
        self.frame_index = -1
        self.next_id = 0
        # counters
        self.detector_runs = 0
        self.lost = 0
        self.new_tracks = 0
        self.seconds = {"detect": 0.0, "landmarks": 0.0, "pose": 0.0}
        self._sq = {"raw": 0.0, "smoothed": 0.0}  # sums of squared second differences (jitter estimate)
        self._nsq = 0

    # -- helpers ------------------------------------------------------------------------------------------
    def _plausible(self, new: np.ndarray, prev: np.ndarray, frame_wh: tuple[int, int], ref_side: float) -> bool:
        """Landmarks that continue a track: finite, not too small, no jump in size or position since the last
        frame, size within [0.67, 1.5] x the last detection's (catches slow drift), centre inside the frame."""
        if not np.isfinite(new).all():
            return False
        s_new, s_prev = _side(new), max(_side(prev), 1e-6)
        if s_new < self.min_face or not 0.67 <= s_new / s_prev <= 1.5:
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

    def _detect(self, frame: np.ndarray) -> list[Detection]:
        t = time.perf_counter()
        dets = list(self.detector.detect(frame))
        self.seconds["detect"] += time.perf_counter() - t
        self.detector_runs += 1
        return dets

    def _predict(self, frame: np.ndarray, inits: list[np.ndarray]) -> np.ndarray:
        t = time.perf_counter()
        out = self.predictor.predict_batch([frame] * len(inits), landmarks=inits)
        self.seconds["landmarks"] += time.perf_counter() - t
        return out

    # -- main step ----------------------------------------------------------------------------------------
    def update(self, frame_rgb: np.ndarray, t: float) -> list[TrackedFace]:
        """Process one RGB frame taken at time ``t`` (seconds); returns the faces in it."""
        self.frame_index += 1
        wh = (frame_rgb.shape[1], frame_rgb.shape[0])
        lost: list[_Track] = []
        # 1. track: crop each face from its previous landmarks, one batch
        if self.tracks:
            preds = self._predict(frame_rgb, [tr.raw for tr in self.tracks])
            kept = []
            for tr, p in zip(self.tracks, preds, strict=True):
                pose = self._pose(p, wh) if self._plausible(p, tr.raw, wh, tr.ref_side) else None
                if pose is None or pose.error > MAX_POSE_ERROR:
                    lost.append(tr)
                    self.lost += 1
                    continue
                tr.raw, tr.pose = p, pose
                kept.append(tr)
            self.tracks = kept
        # 2. detect when needed: no face, a face lost, or periodically
        periodic = self.redetect_every > 0 and self.frame_index % self.redetect_every == 0
        detected_ids: set[int] = set()
        if not self.tracks or lost or periodic:
            detected_ids = self._associate(frame_rgb, self._detect(frame_rgb), wh, lost)
        # 3. drop duplicates (two tracks on one face: keep the older)
        self.tracks.sort(key=lambda tr: tr.id)
        unique: list[_Track] = []
        for tr in self.tracks:
            if all(iou(box_of(tr.raw), box_of(u.raw)) < 0.5 for u in unique):
                unique.append(tr)
        self.tracks = unique
        # 4. smooth, pose, jitter bookkeeping
        out = []
        for tr in self.tracks:
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
            out.append(TrackedFace(tr.id, tr.smoothed, tr.raw, tr.pose, tr.id in detected_ids))
        return out

    def _associate(self, frame: np.ndarray, dets: list[Detection], wh: tuple[int, int], lost: list[_Track]) -> set[int]:
        """Match detections to tracks; start tracks on unmatched detections (a face found again where a track was
        just lost keeps its id and smoothing state). Returns the ids of the tracks (re)started."""
        free = self._match(dets, lost)
        return self._start_tracks(frame, [dets[i] for i in free], wh, lost) if free else set()

    def _match(self, dets: list[Detection], lost: list[_Track]) -> list[int]:
        """Confirm the tracks that detections overlap, count a miss for the others and drop those missed too often;
        a track whose scale drifted away from its detection's moves to ``lost``. Returns the unmatched detections'
        indices."""
        face_boxes = [box_of(face_from_box(d, self.box_to_face)) for d in dets]
        matched: set[int] = set()
        free = []
        for i, fb in enumerate(face_boxes):
            best = max(self.tracks, key=lambda tr: iou(fb, box_of(tr.raw)), default=None)
            if best is not None and best.id not in matched and iou(fb, box_of(best.raw)) > 0.3:
                if not 0.75 <= (fb[2] - fb[0]) / max(_side(best.raw), 1e-6) <= 1.33:
                    # the track's scale drifted away from the detection's: restart it there (same id)
                    self.tracks.remove(best)
                    lost.append(best)
                    self.lost += 1
                    free.append(i)
                    continue
                matched.add(best.id)
                best.misses = 0
                best.ref_side = fb[2] - fb[0]
            else:
                free.append(i)
        for tr in self.tracks:
            if tr.id not in matched:
                tr.misses += 1
        # A track the detector should see (near-frontal) but has missed max_misses times in a row is dropped.
        keep = []
        for tr in self.tracks:
            frontal = tr.pose is not None and abs(tr.pose.yaw) < 30.0
            if tr.misses >= self.max_misses and frontal:
                self.lost += 1
            else:
                keep.append(tr)
        self.tracks = keep
        return free

    def _start_tracks(
        self, frame: np.ndarray, dets: list[Detection], wh: tuple[int, int], lost: list[_Track]
    ) -> set[int]:
        """Start a track on each detection whose landmarks are a plausible face (up to ``max_faces``): a face that
        was just lost keeps its id and smoothing state. Returns the ids started."""
        new_ids: set[int] = set()
        starts = [face_from_box(d, self.box_to_face) for d in dets[: self.max_faces]]
        preds = self._predict(frame, starts)
        if self.refine:
            preds = self._predict(frame, list(preds))
        for p, start in zip(preds, starts, strict=True):
            pose = self._pose(p, wh)
            if pose is None or pose.error > MAX_POSE_ERROR or not np.isfinite(p).all():
                continue
            if len(self.tracks) >= self.max_faces:
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
                tr = _Track(again.id, p, again.smoother, pose=pose)
            else:
                smoother = LandmarkSmoother(self.min_cutoff, self.beta) if self.smooth else None
                tr = _Track(self.next_id, p, smoother, pose=pose)
                self.next_id += 1
                self.new_tracks += 1
            tr.ref_side = _side(start)
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


@dataclass
class DemoStats:
    """What :func:`run_demo` did. ``fps`` counts processing only (detection, landmarks, smoothing, pose);
    ``fps_total`` also includes decoding, drawing and writing."""

    frames: int = 0
    faces: int = 0  # distinct face tracks started
    face_frames: int = 0  # (frame, face) rows exported
    fps: float = 0.0
    fps_total: float = 0.0
    detector_runs: int = 0
    lost: int = 0  # tracks dropped (implausible landmarks or missed by the detector)
    jitter_raw: float = float("nan")  # px, see FaceTracker.jitter
    jitter_smoothed: float = float("nan")
    ms_per_frame: dict = field(default_factory=dict)  # detect / landmarks / pose, mean over frames
    backend: str = ""
    outputs: dict = field(default_factory=dict)

    @property
    def jitter(self) -> float:
        """Jitter reduction factor of the smoothing (raw / smoothed; 1.0 without smoothing)."""
        if not self.jitter_smoothed > 0:
            return float("nan")
        return self.jitter_raw / self.jitter_smoothed

    def to_dict(self) -> dict:
        return {**asdict(self), "jitter_factor": self.jitter}

    def summary(self) -> str:
        return (
            f"{self.frames} frames, {self.faces} face track(s), {self.face_frames} face-frames; "
            f"{self.fps:.1f} fps processing ({self.fps_total:.1f} fps incl. video I/O, backend {self.backend}); "
            f"detector ran {self.detector_runs}x, {self.lost} track(s) lost; "
            f"jitter {self.jitter_raw:.3f} px raw -> {self.jitter_smoothed:.3f} px smoothed"
        )


CSV_HEADER = ["frame", "time", "face_id", "yaw", "pitch", "roll"] + [f"{c}{i}" for i in range(68) for c in "xy"]


def _draw(frame: np.ndarray, faces: list[TrackedFace], fps: float) -> np.ndarray:
    from ..viz import draw_landmarks

    img = frame
    for f in faces:
        img = draw_landmarks(img, f.landmarks, color=(0, 255, 0) if not f.detected else (255, 200, 0))
        x0, y0, _, _ = f.box
        label = f"#{f.id}"
        if f.pose is not None:
            draw_pose_axes(img, f.pose)
            label += f" yaw {f.pose.yaw:+.0f} pitch {f.pose.pitch:+.0f} roll {f.pose.roll:+.0f}"
        cv2.putText(img, label, (int(x0), max(12, int(y0) - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
    if img is frame:
        img = frame.copy()
    cv2.putText(img, f"{fps:.1f} FPS", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return img


def _csv_row(index: int, t: float, face: TrackedFace) -> list:
    ypr = face.pose.as_tuple() if face.pose is not None else (float("nan"),) * 3
    return [index, f"{t:.4f}", face.id, *(f"{v:.2f}" for v in ypr)] + [f"{v:.2f}" for v in face.landmarks.reshape(-1)]


def _face_json(face: TrackedFace) -> dict:
    pose = face.pose
    return {
        "id": face.id,
        "landmarks": np.round(face.landmarks, 2).tolist(),
        "raw": np.round(face.raw, 2).tolist(),
        "yaw": None if pose is None else round(pose.yaw, 2),
        "pitch": None if pose is None else round(pose.pitch, 2),
        "roll": None if pose is None else round(pose.roll, 2),
        "box": [round(v, 1) for v in face.box],
        "detected": face.detected,
    }


class _FrameOutputs:
    """Where the processed frames go: an annotated video, a window, CSV rows, JSON (written by :meth:`finish`).
    Files are opened on ``stack`` (written atomically: nothing is left behind by a run that fails)."""

    WINDOW = "lightmark"

    def __init__(self, stack: ExitStack, src, *, out=None, show=False, csv=None, json_path=None) -> None:
        from .video import video_writer

        self.writer = stack.enter_context(video_writer(out, src.fps, (src.width, src.height))) if out else None
        self.csv_rows = None
        if csv:
            import csv as csv_module

            self.csv_rows = csv_module.writer(stack.enter_context(atomic_write(csv)), lineterminator="\n")
            self.csv_rows.writerow(CSV_HEADER)
        self.show = show
        if show:
            try:
                cv2.namedWindow(self.WINDOW, cv2.WINDOW_NORMAL)
            except cv2.error:
                raise LightmarkError(
                    "--show needs OpenCV with GUI support (opencv-python, not -headless); use --out instead"
                ) from None
            stack.callback(cv2.destroyAllWindows)
        self.json_path = json_path
        self.frames_json: list[dict] = []
        self.paths = {k: str(v) for k, v in (("video", out), ("csv", csv), ("json", json_path)) if v}

    def add(self, index: int, t: float, frame: np.ndarray, faces: list[TrackedFace], fps: float) -> bool:
        """Output one frame; returns False when the viewer quits (q or Esc in the window)."""
        if self.csv_rows is not None:
            self.csv_rows.writerows(_csv_row(index, t, f) for f in faces)
        if self.json_path:
            self.frames_json.append({"frame": index, "time": round(t, 4), "faces": [_face_json(f) for f in faces]})
        if self.writer is None and not self.show:
            return True
        annotated = _draw(frame, faces, fps)
        if self.writer is not None:
            self.writer(annotated)
        if self.show:
            cv2.imshow(self.WINDOW, cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
            return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
        return True

    def finish(self, source, fps: float, stats: DemoStats) -> None:
        """Record the outputs in ``stats``, write the JSON."""
        stats.outputs = dict(self.paths)
        if self.json_path:
            with atomic_write(self.json_path) as f:
                json.dump({"source": str(source), "fps": fps, "frames": self.frames_json, "stats": stats.to_dict()}, f)


def _make_detector(detector: str | Detector | None, cfg: DemoConfig) -> Detector:
    detector = cfg.detector if detector is None else detector
    return create_detector(detector) if isinstance(detector, str) else detector


def _make_predictor(model, cfg: DemoConfig, *, pin_threads: bool) -> Predictor:
    """``model`` itself when it is a ready Predictor (anything with ``predict_batch``), else one loading it.
    ``pin_threads``: set the process's torch and OpenCV thread counts to ``cfg.threads`` (applications only)."""
    if hasattr(model, "predict_batch"):
        return model
    if pin_threads:
        from ..utils import set_threads

        set_threads(cfg.threads)
    return Predictor(model, backend=cfg.backend, threads=cfg.threads)


def _track_frames(src, tracker: FaceTracker, outputs: _FrameOutputs, stats: DemoStats, max_frames, bar) -> float:
    """Track every frame (up to ``max_frames``) into ``outputs``; counts frames and faces in ``stats``. Returns
    the seconds spent tracking."""
    busy = 0.0
    fps_ema = 0.0
    for index, t, frame in src:
        if max_frames is not None and index >= max_frames:
            break
        t0 = time.perf_counter()
        faces = tracker.update(frame, t)
        dt = time.perf_counter() - t0
        busy += dt
        fps_ema = 1.0 / dt if fps_ema == 0 else 0.9 * fps_ema + 0.1 / max(dt, 1e-6)
        stats.frames += 1
        stats.face_frames += len(faces)
        if not outputs.add(index, t, frame, faces, fps_ema):
            break
        if bar is not None:
            bar.update(1)
    return busy


def _tracker_stats(stats: DemoStats, tracker: FaceTracker, busy: float, elapsed: float) -> None:
    """Fill ``stats`` from the tracker's counters, ``busy`` seconds tracking out of ``elapsed``."""
    stats.faces = tracker.new_tracks
    stats.fps = stats.frames / busy if busy > 0 else 0.0
    stats.fps_total = stats.frames / elapsed if elapsed > 0 else 0.0
    stats.detector_runs = tracker.detector_runs
    stats.lost = tracker.lost
    stats.jitter_raw, stats.jitter_smoothed = tracker.jitter
    n = max(stats.frames, 1)
    stats.ms_per_frame = {k: round(1000 * v / n, 3) for k, v in tracker.seconds.items()}


def run_demo(
    source: str | int | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    show: bool = False,
    csv: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    model: str | os.PathLike | LandmarkModel | Predictor | None = None,
    detector: str | Detector | None = None,
    config: DemoConfig | None = None,
    progress: bool = False,
    **options,
) -> DemoStats:
    """Track 68-point landmarks, head pose and FPS on a video file or camera index.

    Args:
        source: a video path or a camera index (int or digit string).
        out: write the annotated video here (mp4v).
        show: display the annotated frames in a window (needs an OpenCV build with GUI; q or Esc quits).
        csv: per-frame rows ``frame, time, face_id, yaw, pitch, roll, x0, y0 ... x67, y67``.
        json_path: ``{"source", "fps", "frames": [{"frame", "time", "faces": [{"id", "landmarks", ...}]}],
            "stats"}``.
        model: checkpoint path, model, or a ready :class:`Predictor` (default: the shipped model).
        detector: a detector name (see :func:`~lightmark.demo.detectors.create_detector`) or instance (default:
            the config's).
        config: the settings (a :class:`~lightmark.demo.DemoConfig`; default: its defaults); ``options`` replace
            its fields, e.g. ``max_faces=2, smooth=False, threads=1, max_frames=100``.

    Raises:
        LightmarkError: the source cannot be opened, the detector's package is missing, or ``show`` without GUI.
    """
    from .video import VideoSource

    cfg = replace(config or DemoConfig(), **options)
    det = _make_detector(detector, cfg)
    src = VideoSource(source)  # fails early on a missing file or camera
    predictor = _make_predictor(model, cfg, pin_threads=True)
    tracker = FaceTracker(predictor, det, cfg)
    stats = DemoStats(backend=predictor.backend)
    with ExitStack() as stack, src:
        outputs = _FrameOutputs(stack, src, out=out, show=show, csv=csv, json_path=json_path)
        t_start = time.perf_counter()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=src.frame_count or None, desc="demo", unit="frame"))
        busy = _track_frames(src, tracker, outputs, stats, cfg.max_frames, bar)
        _tracker_stats(stats, tracker, busy, time.perf_counter() - t_start)
        outputs.finish(source, src.fps, stats)
    return stats


def still_jitter_report(
    source: str | int | os.PathLike,
    frames: range | None = None,
    *,
    model: str | os.PathLike | LandmarkModel | Predictor | None = None,
    detector: str | Detector | None = None,
    skip: int = 5,
    config: DemoConfig | None = None,
    **options,
) -> dict:
    """Measure landmark jitter on a video of a still face: per-coordinate std over time (RMS over the 68 points)
    of the raw and the One Euro smoothed landmarks of the first tracked face, in pixels and in % of the face size.

    Args:
        source: the video (e.g. a :func:`~lightmark.demo.video.make_synthetic_clip` with only a still segment).
        frames: the still frames (default: all); the first ``skip`` of them are left out (filter warm-up).
        model, detector, config, options: as for :func:`run_demo` (``threads`` sets the predictor's only).
    """
    from .filters import still_jitter
    from .video import VideoSource

    cfg = replace(config or DemoConfig(), **options)
    det = _make_detector(detector, cfg)
    predictor = _make_predictor(model, cfg, pin_threads=False)
    tracker = FaceTracker(predictor, det, cfg)
    raw, smooth = [], []
    with VideoSource(source) as src:
        for index, t, frame in src:
            faces = tracker.update(frame, t)
            if frames is not None and index not in frames:
                continue
            if faces and faces[0].id == 0:
                raw.append(faces[0].raw)
                smooth.append(faces[0].landmarks)
    raw, smooth = raw[skip:], smooth[skip:]
    if len(raw) < 3:
        raise LightmarkError(f"{source}: the face was tracked on {len(raw)} usable frames; need at least 3")
    side = float(np.median([_side(p) for p in raw]))
    r, s = still_jitter(np.array(raw)), still_jitter(np.array(smooth))
    return {
        "frames": len(raw),
        "face_side_px": round(side, 2),
        "raw_px": round(r, 4),
        "smoothed_px": round(s, 4),
        "raw_pct": round(100 * r / side, 4),
        "smoothed_pct": round(100 * s / side, 4),
        "factor": round(r / s, 3) if s > 0 else float("inf"),
        "backend": predictor.backend,
    }
