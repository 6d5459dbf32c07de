"""Real-time landmark tracking on a video or camera: :class:`~lightmark.demo.tracking.FaceTracker` (detection,
tracking, smoothing, head pose) on every frame, with an annotated video, a window, CSV and JSON as outputs."""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..constants import NUM_LANDMARKS
from ..detectors import FaceDetector, create_detector
from ..detectors.base import SEARCH_ROTATIONS
from ..engine.predict import Predictor
from ..errors import LightmarkError
from ..pose import draw_pose_axes
from ..utils import atomic_write
from .config import DemoConfig
from .tracking import FaceTracker, TrackedFace, face_side

if TYPE_CHECKING:  # pragma: no cover - the demo runs on ONNX Runtime without torch
    from ..models import LandmarkModel

"""Extra in-plane turns (degrees) of the frame searched while no face is tracked, by detectors that take
``rotations`` (BlazeFace): a face found rolled past 45 degrees, or lost while upside down, is found again."""
ROTATING_DETECTORS = ("blazeface",)


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
    crops_held: int = 0  # frames x faces cut with the previous frame's crop (see DemoConfig.hold_crop)
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


def csv_header(num_points: int = NUM_LANDMARKS) -> list[str]:
    """The columns of the demo's CSV for a model of ``num_points`` points."""
    return ["frame", "time", "face_id", "yaw", "pitch", "roll"] + [f"{c}{i}" for i in range(num_points) for c in "xy"]


CSV_HEADER = csv_header()
"""The CSV columns of a 68-point model."""


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

    def __init__(
        self, stack: ExitStack, src, *, out=None, show=False, csv=None, json_path=None, num_points: int = NUM_LANDMARKS
    ) -> None:
        from .video import video_writer

        self.writer = stack.enter_context(video_writer(out, src.fps, (src.width, src.height))) if out else None
        self.csv_rows = None
        if csv:
            import csv as csv_module

            self.csv_rows = csv_module.writer(stack.enter_context(atomic_write(csv)), lineterminator="\n")
            self.csv_rows.writerow(csv_header(num_points))
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


def make_detectors(detector: str | FaceDetector | None, cfg: DemoConfig) -> tuple[FaceDetector, FaceDetector | None]:
    """The tracker's detector and its search detector (the frame also turned by
    :data:`~lightmark.detectors.base.SEARCH_ROTATIONS`, for ``rotated_redetect`` with a detector of
    :data:`ROTATING_DETECTORS` given by name; else None: the same one). A detector given by name runs on
    ``cfg.threads`` threads (default 1)."""
    name = cfg.detector if detector is None else detector
    if not isinstance(name, str):
        return name, None
    options = {"threads": cfg.threads or 1} if name in ROTATING_DETECTORS else {}
    main = create_detector(name, **options)
    if cfg.rotated_redetect and name in ROTATING_DETECTORS:
        return main, create_detector(name, rotations=SEARCH_ROTATIONS, **options)
    return main, None


def _make_predictor(model, cfg: DemoConfig, *, pin_threads: bool) -> Predictor:
    """``model`` itself when it is a ready Predictor or :class:`~lightmark.demo.tracking.CropModel` (anything with
    ``first_matrix``), else a Predictor of it (a path, a track name or a torch ``LandmarkModel``). ``pin_threads``:
    set the process's OpenCV (and, when loaded, torch) thread counts to ``cfg.threads`` (applications only)."""
    if isinstance(model, Predictor) or hasattr(model, "first_matrix"):  # a Predictor or a CropModel, used as is
        return model
    if pin_threads:
        from ..utils import set_threads

        set_threads(cfg.threads)
    return Predictor(model, backend=cfg.backend, threads=cfg.threads, flip_test=cfg.flip_test)


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
    stats.crops_held = tracker.crops_held
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
    detector: str | FaceDetector | None = None,
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
        detector: a detector name (see :func:`~lightmark.detectors.create_detector`) or instance (default:
            the config's).
        config: the settings (a :class:`~lightmark.demo.DemoConfig`; default: its defaults); ``options`` replace
            its fields, e.g. ``max_faces=2, smooth=False, threads=1, max_frames=100``.

    Raises:
        LightmarkError: the source cannot be opened, the detector's package is missing, or ``show`` without GUI.
    """
    from .video import VideoSource

    cfg = replace(config or DemoConfig(), **options)
    det, search = make_detectors(detector, cfg)
    src = VideoSource(source)  # fails early on a missing file or camera
    with ExitStack() as stack, src:  # the capture is released whatever fails next
        predictor = _make_predictor(model, cfg, pin_threads=True)
        tracker = FaceTracker(predictor, det, cfg, search_detector=search)
        stats = DemoStats(backend=predictor.backend)
        outputs = _FrameOutputs(
            stack, src, out=out, show=show, csv=csv, json_path=json_path, num_points=tracker.model.num_points
        )
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
    detector: str | FaceDetector | None = None,
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
    det, search = make_detectors(detector, cfg)
    predictor = _make_predictor(model, cfg, pin_threads=False)
    tracker = FaceTracker(predictor, det, cfg, search_detector=search)
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
    side = float(np.median([face_side(p) for p in raw]))
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
