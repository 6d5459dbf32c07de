"""Video input/output for the demo, and a synthetic test clip made from one face image.

Frames are RGB ``uint8`` arrays throughout; conversion to OpenCV's BGR happens only at the I/O boundary.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..constants import LEFT_BROW, RIGHT_BROW
from ..errors import ImageError, OutputError


def parse_source(source: str | int | os.PathLike) -> int | Path:
    """A camera index (an int, or a string of digits) or a video file path."""
    if isinstance(source, int):
        return source
    s = str(source)
    return int(s) if s.isdigit() else Path(s)


class VideoSource:
    """Frames of a video file or a camera: ``for index, time_s, frame_rgb in VideoSource(src)``.

    ``time_s`` is the video's own clock for files (index / fps: deterministic) and the wall clock for cameras.
    """

    def __init__(self, source: str | int | os.PathLike) -> None:
        import time

        self._clock = time.perf_counter
        self.source = parse_source(source)
        self.is_camera = isinstance(self.source, int)
        if not self.is_camera and not Path(self.source).is_file():
            raise ImageError(f"{self.source}: video file not found")
        self.cap = cv2.VideoCapture(self.source if self.is_camera else str(self.source))
        if not self.cap.isOpened():
            what = f"camera {self.source}" if self.is_camera else f"{self.source}"
            raise ImageError(f"{what}: cannot open the video (unsupported codec or no such device)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 30.0
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not self.is_camera else 0

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        t0 = self._clock()
        i = 0
        while True:
            ok, bgr = self.cap.read()
            if not ok or bgr is None:
                return
            t = self._clock() - t0 if self.is_camera else i / self.fps
            yield i, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1

    def close(self) -> None:
        self.cap.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def video_writer(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> Iterator:
    """An ``mp4v`` ``cv2.VideoWriter`` of RGB frames (``writer(frame_rgb)``) writing to a temporary file renamed
    over ``path`` when the block ends without error."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".mp4", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o644)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (int(size[0]), int(size[1])))
    if not writer.isOpened():
        os.unlink(tmp)
        raise OutputError(f"{path}: OpenCV cannot open an mp4v video writer")

    def write(frame_rgb: np.ndarray) -> None:
        writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))

    try:
        yield write
        writer.release()
        os.replace(tmp, path)
    except BaseException:
        writer.release()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_video(path: str | os.PathLike, limit: int | None = None) -> list[np.ndarray]:
    """All (or the first ``limit``) frames of a video file as RGB arrays."""
    frames = []
    with VideoSource(path) as src:
        for i, _, f in src:
            if limit is not None and i >= limit:
                break
            frames.append(f)
    return frames


# --------------------------------------------------------------------------------------------- synthetic clip
@dataclass
class SyntheticClip:
    """A synthetic clip and its ground truth."""

    path: Path
    fps: float
    size: tuple[int, int]  # (width, height)
    landmarks: np.ndarray  # (T, 68, 2) true landmarks per frame
    segments: dict[str, range] = field(default_factory=dict)  # "still", "move", "jump" -> frame ranges

    @property
    def frames(self) -> int:
        return len(self.landmarks)


def _background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth, textured, non-face background."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([90 + 60 * xx / w, 110 + 40 * yy / h, 140 - 50 * xx / w], -1)
    tex = cv2.resize(rng.uniform(-30, 30, (h // 16 + 1, w // 16 + 1, 3)).astype(np.float32), (w, h))
    return np.clip(base + tex, 0, 255).astype(np.float32)


def make_synthetic_clip(
    out: str | os.PathLike,
    face_rgb: np.ndarray,
    landmarks: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    size: tuple[int, int] = (640, 360),
    fps: float = 25.0,
    still: int = 24,
    move: int = 24,
    jump: int = 16,
    face_side: float = 110.0,
    noise: float = 4.0,
    seed: int = 0,
) -> SyntheticClip:
    """Write an mp4v clip of one face image composited on a background: ``still`` frames of a motionless face
    (sensor noise only, for jitter), ``move`` frames translating, scaling, rotating in plane and turning (a
    perspective squeeze), then ``jump`` frames with the face moved to the other side of the frame at once.

    Args:
        face_rgb: the face image; ``landmarks`` its (68+, 2) points (only the first 68 are used).
        mask: optional (H, W) foreground mask (nonzero = person) to cut the person out; else the whole image.
        face_side: the landmark box side in the clip, pixels.
        noise: std of the per-frame Gaussian pixel noise.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    lm = np.asarray(landmarks, np.float64)[:68]
    lo, hi = lm.min(0), lm.max(0)
    src_c, src_side = (lo + hi) / 2, float(max(hi - lo))
    alpha = np.ones(face_rgb.shape[:2], np.float32) if mask is None else (np.asarray(mask) > 0).astype(np.float32)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5)[..., None]
    bg = _background(w, h, rng)
    n = still + move + jump
    gts = []
    with video_writer(out, fps, size) as write:
        for i in range(n):
            if i < still:
                cx, cy, k, ang, squeeze = 0.3 * w, 0.5 * h, 1.0, 0.0, 1.0
            elif i < still + move:
                u = (i - still + 1) / move
                cx, cy = (0.3 + 0.15 * u) * w, (0.5 - 0.08 * np.sin(np.pi * u)) * h
                k, ang, squeeze = 1.0 + 0.15 * u, 12.0 * np.sin(2 * np.pi * u), 1.0 - 0.25 * np.sin(np.pi * u)
            else:
                cx, cy, k, ang, squeeze = 0.8 * w, 0.45 * h, 0.9, 0.0, 1.0
            scale = k * face_side / src_side
            a = np.deg2rad(ang)
            rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) * scale
            rot = rot @ np.diag([squeeze, 1.0])  # "turning": horizontal squeeze about the face centre
            m = np.zeros((2, 3))
            m[:, :2] = rot
            m[:, 2] = np.array([cx, cy]) - rot @ src_c
            face = cv2.warpAffine(face_rgb.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
            am = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
            frame = am * face + (1 - am) * bg + rng.normal(0, noise, (h, w, 3))
            write(np.clip(frame, 0, 255).astype(np.uint8))
            gts.append(lm @ m[:, :2].T + m[:, 2])
    segments = {"still": range(0, still), "move": range(still, still + move), "jump": range(still + move, n)}
    return SyntheticClip(Path(out), fps, (w, h), np.asarray(gts, np.float32), segments)


# ------------------------------------------------------------------------------------------- a clip along a path
@dataclass
class PathClip:
    """Frames (in memory) of a face moved along a known path, and the truth of every frame."""

    frames: list[np.ndarray]  # RGB uint8 (H, W, 3)
    landmarks: np.ndarray  # (T, 68, 2) true landmarks per frame
    poses: np.ndarray  # (T, 4) the path: centre x, centre y, face side (px), roll (degrees, clockwise on screen)
    fps: float
    segments: dict[str, range] = field(default_factory=dict)

    @property
    def face_sides(self) -> np.ndarray:
        """(T,) the face's landmark box side in its own upright frame, px."""
        return self.poses[:, 2]


def face_mask(
    shape_hw: tuple[int, int], landmarks: np.ndarray, grow: float = 1.25, feather: float = 0.04
) -> np.ndarray:
    """A soft (H, W) float32 alpha in [0, 1] around a face: the convex hull of its 68 points grown ``grow`` times
    about their centre and stretched up to the forehead, edges blurred by ``feather`` x the face side."""
    lm = np.asarray(landmarks, np.float64)[:68]
    centre, side = lm.mean(0), float(np.ptp(lm, axis=0).max())
    brows = lm[RIGHT_BROW.start : LEFT_BROW.stop] + np.array([0.0, -0.35 * side])  # the forehead above the brows
    pts = np.concatenate([lm, brows])
    pts = centre + grow * (pts - centre)
    mask = np.zeros(shape_hw, np.float32)
    cv2.fillConvexPoly(mask, np.round(cv2.convexHull(pts.astype(np.float32))[:, 0]).astype(np.int32), 1.0)
    return cv2.GaussianBlur(mask, (0, 0), max(feather * side, 0.5))


def render_path_clip(
    face_rgb: np.ndarray,
    landmarks: np.ndarray,
    background_rgb: np.ndarray,
    poses: np.ndarray,
    *,
    fps: float = 30.0,
    noise: float = 3.0,
    seed: int = 0,
    segments: dict[str, range] | None = None,
) -> PathClip:
    """Composite a face picture onto a background at each pose of a path, with per-frame sensor noise.

    Args:
        face_rgb: the face picture; ``landmarks`` its (68, 2) points.
        background_rgb: the frame's background, already at the clip's size (H, W, 3).
        poses: (T, 4) per frame: where the face's landmark-box centre goes (x, y), its side there (px) and its roll
            (degrees, clockwise on screen). The true landmarks go through the same similarity transform.
        noise: std of the Gaussian pixel noise added to every frame (a camera sensor's).
    """
    rng = np.random.default_rng(seed)
    lm = np.asarray(landmarks, np.float64)[:68]
    lo, hi = lm.min(0), lm.max(0)
    src_c, src_side = (lo + hi) / 2, float(max(hi - lo))
    alpha = face_mask(face_rgb.shape[:2], lm)[..., None]
    face = face_rgb.astype(np.float32) * alpha  # premultiplied: no dark fringe from bilinear interpolation
    h, w = background_rgb.shape[:2]
    bg = background_rgb.astype(np.float32)
    frames, truth = [], []
    for cx, cy, side, roll in np.asarray(poses, np.float64):
        a = np.deg2rad(roll)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * (side / src_side)
        m = np.concatenate([rot, (np.array([cx, cy]) - rot @ src_c)[:, None]], axis=1)
        fg = cv2.warpAffine(face, m, (w, h), flags=cv2.INTER_LINEAR)
        am = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        frame = fg + (1 - am) * bg + rng.normal(0, noise, (h, w, 3)).astype(np.float32)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
        truth.append(lm @ m[:, :2].T + m[:, 2])
    return PathClip(frames, np.asarray(truth, np.float32), np.asarray(poses, np.float64), fps, dict(segments or {}))
