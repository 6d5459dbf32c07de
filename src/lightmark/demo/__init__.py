"""Live video demo: face detection (a swappable plug-in), landmark tracking, One Euro smoothing, head pose, FPS,
and per-frame CSV/JSON export. Entry point: :func:`run_demo` (the CLI's ``lightmark demo``); its settings and their
defaults: :class:`DemoConfig`."""

from .config import DemoConfig
from .detectors import Detector, DlibHogDetector, create_detector, dlib_available
from .filters import LandmarkSmoother, OneEuroFilter, jitter, still_jitter
from .pose import MEAN_SHAPE_68, HeadPose, draw_pose_axes, estimate_head_pose
from .runner import DemoStats, FaceTracker, TrackedFace, run_demo, still_jitter_report
from .video import SyntheticClip, VideoSource, make_synthetic_clip, read_video

__all__ = [
    "MEAN_SHAPE_68",
    "DemoConfig",
    "DemoStats",
    "Detector",
    "DlibHogDetector",
    "FaceTracker",
    "HeadPose",
    "LandmarkSmoother",
    "OneEuroFilter",
    "SyntheticClip",
    "TrackedFace",
    "VideoSource",
    "create_detector",
    "dlib_available",
    "draw_pose_axes",
    "estimate_head_pose",
    "jitter",
    "make_synthetic_clip",
    "read_video",
    "run_demo",
    "still_jitter",
    "still_jitter_report",
]
