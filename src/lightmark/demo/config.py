"""The video demo's settings: one dataclass, the single place their defaults are written."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..choices import Backend


@dataclass
class DemoConfig:
    """Settings of :func:`~lightmark.demo.run_demo` and :class:`~lightmark.demo.FaceTracker`. ``lightmark demo``,
    :func:`~lightmark.demo.still_jitter_report` and :class:`~lightmark.demo.LandmarkSmoother` read their defaults
    here; the ``help`` texts are those of the command line."""

    detector: str = field(default="blazeface", metadata={"help": "face detector plug-in (lightmark.detectors)"})
    backend: Backend = field(default=Backend.AUTO, metadata={"help": "inference engine"})
    threads: int | None = field(
        default=None, metadata={"help": "model, OpenCV and detector threads (default: the libraries' own; detector 1)"}
    )
    max_faces: int = field(default=1, metadata={"help": "most faces tracked at once"})
    redetect_every: int = field(default=10, metadata={"help": "run the detector every N frames (0 = on loss)"})
    rotated_redetect: bool = field(
        default=True,
        metadata={"help": "when no face is tracked, also search the frame turned 90/180/270 degrees (blazeface)"},
    )
    hold_crop: float = field(
        default=1.5,
        metadata={"help": "keep a face's crop while a new one would move its corners less (model-input pixels)"},
    )
    smooth: bool = field(default=True, metadata={"help": "One Euro filtering of the face's shape"})
    min_cutoff: float = field(default=1.0, metadata={"help": "One Euro cutoff (Hz) of a still face's shape"})
    beta: float = field(default=8.0, metadata={"help": "One Euro speed coefficient (per face size and second)"})
    motion: float = field(
        default=0.0,
        metadata={"help": "Kalman filter of the head's motion: acceleration over measurement noise (1/s^2; 0 = off)"},
    )
    refine: bool = field(
        default=True, metadata={"help": "after a detection, predict twice (the second crop framed by the first)"}
    )
    flip_test: bool | None = field(
        default=None,
        metadata={"help": "also read each crop mirrored, ~1.5x the model's time (default: the model's own)"},
    )
    max_misses: int = field(
        default=2, metadata={"help": "drop an upright frontal track that the detector missed this many times in a row"}
    )
    min_face: float = field(default=24.0, metadata={"help": "smallest landmark box side (px) of a tracked face"})
    max_frames: int | None = field(default=None, metadata={"help": "stop after N frames"})

    def __post_init__(self) -> None:
        """Refuse settings that would fail mid-run (one-line :class:`~lightmark.errors.ConfigError`)."""
        from ..errors import ConfigError

        self.backend = Backend.parse(self.backend, "backend")
        checks = (
            (self.threads is None or self.threads >= 1, f"threads: expected 1 or more, got {self.threads}"),
            (self.min_cutoff > 0, f"min_cutoff: expected a positive cutoff (Hz), got {self.min_cutoff}"),
            (self.beta >= 0, f"beta: expected 0 or more, got {self.beta}"),
            (self.motion >= 0, f"motion: expected 0 (off) or more, got {self.motion}"),
            (self.hold_crop >= 0, f"hold_crop: expected 0 or more pixels, got {self.hold_crop}"),
            (self.max_misses >= 1, f"max_misses: expected 1 or more, got {self.max_misses}"),
            (self.min_face > 0, f"min_face: expected a positive side, got {self.min_face}"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
