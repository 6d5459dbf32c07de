"""Live video demo: face detection (a :mod:`lightmark.detectors` plug-in, BlazeFace by default), landmark tracking
with crops that hold still on a still face and follow any roll, smoothing that does not lag, head pose, FPS, and
per-frame CSV/JSON export. Entry point: :func:`run_demo` (the CLI's ``lightmark demo``); its settings and their
defaults: :class:`DemoConfig`."""

from ..pose import MEAN_SHAPE_68, HeadPose, draw_pose_axes, estimate_head_pose
from .config import DemoConfig
from .filters import ConstantVelocityFilter, LandmarkSmoother, OneEuroFilter, fit_similarity, jitter, still_jitter
from .runner import DemoStats, make_detectors, run_demo, still_jitter_report
from .tracking import CropModel, FaceTracker, PredictorCrops, TrackedFace
from .video import PathClip, SyntheticClip, VideoSource, make_synthetic_clip, read_video, render_path_clip

__all__ = [
    "MEAN_SHAPE_68",
    "ConstantVelocityFilter",
    "CropModel",
    "DemoConfig",
    "DemoStats",
    "FaceTracker",
    "HeadPose",
    "LandmarkSmoother",
    "OneEuroFilter",
    "PathClip",
    "PredictorCrops",
    "SyntheticClip",
    "TrackedFace",
    "VideoSource",
    "draw_pose_axes",
    "estimate_head_pose",
    "fit_similarity",
    "jitter",
    "make_detectors",
    "make_synthetic_clip",
    "read_video",
    "render_path_clip",
    "run_demo",
    "still_jitter",
    "still_jitter_report",
]
