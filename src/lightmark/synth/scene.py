"""Camera, head pose and lighting of the synthetic scenes.

Coordinate frames:

- model space: the face model's (centimetres, ``y`` up, ``z`` out of the face, ``x`` towards the subject's
  left);
- camera space: OpenCV convention (``x`` right, ``y`` down, ``z`` forward, camera at the origin);
- image: pixel-centre convention, ``(x, y) = (col, row)`` of a pixel's centre (see :mod:`.raster`).

Head pose angles (degrees), applied about a pivot in model space: ``yaw > 0`` turns the face towards the
image's right (the subject's left), ``pitch > 0`` raises the chin (face up), ``roll > 0`` tilts the head
clockwise in the image (the top of the head goes right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Model space -> camera space for a frontal view: flip y (up -> down) and z (out of the face -> towards camera)
MODEL_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation (3,3) in model space for angles in degrees (see the module docstring)."""
    y, p, r = np.radians([yaw, pitch, roll])
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])  # +z (nose) towards +x
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])  # +z (nose) towards +y (up)
    rz = np.array([[cr, sr, 0.0], [-sr, cr, 0.0], [0.0, 0.0, 1.0]])  # +y (top) towards +x (image right)
    return rz @ ry @ rx


def head_angles(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a model-space head rotation ``R`` (3,3): the inverse of
    :func:`rotation_matrix` (yaw in [-90, 90])."""
    R = np.asarray(R, np.float64)
    yaw = math.degrees(math.atan2(-R[2, 0], math.hypot(R[2, 1], R[2, 2])))
    pitch = math.degrees(math.atan2(-R[2, 1], R[2, 2]))
    roll = math.degrees(math.atan2(-R[1, 0], R[0, 0]))
    return yaw, pitch, roll


@dataclass
class Camera:
    """A pinhole camera: ``image = K (R X + t)`` for model-space points ``X`` (then divide by depth)."""

    K: np.ndarray  # (3,3)
    R: np.ndarray  # (3,3) model -> camera rotation (includes the head pose)
    t: np.ndarray  # (3,)
    size: int

    @property
    def P(self) -> np.ndarray:
        """The (3,4) projection matrix ``K [R | t]``."""
        return self.K @ np.concatenate([self.R, self.t[:, None]], 1)

    def to_camera(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, np.float64) @ self.R.T + self.t

    def project(self, X: np.ndarray) -> np.ndarray:
        """Image coordinates (N,2) of model-space points (N,3)."""
        return project_points(self.P, X)

    def scaled(self, factor: int) -> Camera:
        """The camera of the same view rendered ``factor`` times larger (pixel-centre convention kept).

        A pixel of the small image covers ``factor`` x ``factor`` pixels of the large one, so
        ``x_large = factor * x_small + (factor - 1) / 2``.
        """
        s = np.array([[factor, 0.0, (factor - 1) / 2.0], [0.0, factor, (factor - 1) / 2.0], [0.0, 0.0, 1.0]])
        return Camera(K=s @ self.K, R=self.R, t=self.t, size=self.size * factor)


def project_points(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Project model-space points (N,3) with a (3,4) matrix to image coordinates (N,2) (float64)."""
    X = np.asarray(X, np.float64)
    h = X @ P[:, :3].T + P[:, 3]
    return h[:, :2] / h[:, 2:3]


def frame_camera(
    points: np.ndarray,
    head_rotation: np.ndarray,
    pivot: np.ndarray,
    size: int,
    distance: float,
    box_fraction: float,
    centre_offset: tuple[float, float],
) -> Camera:
    """A camera at ``distance`` cm from ``pivot`` looking along the model's -z (before the head rotation),
    with the focal length and head translation chosen so that the bounding box of ``points`` (the 68
    landmarks) has side ``box_fraction * size`` (its larger side) and its centre lies at
    ``centre + centre_offset * size``.
    """
    R = MODEL_TO_CAMERA @ head_rotation
    c = (size - 1) / 2.0
    f = 1000.0
    t = np.array([0.0, 0.0, distance]) - R @ pivot
    target = np.array([c + centre_offset[0] * size, c + centre_offset[1] * size])
    for _ in range(4):
        K = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
        uv = project_points(K @ np.concatenate([R, t[:, None]], 1), points)
        lo, hi = uv.min(0), uv.max(0)
        side = float(max(hi - lo))
        f *= box_fraction * size / max(side, 1e-6)
        K = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
        uv = project_points(K @ np.concatenate([R, t[:, None]], 1), points)
        centre = (uv.min(0) + uv.max(0)) / 2.0
        depth = float((points @ R.T + t)[:, 2].mean())
        t[:2] += (target - centre) * depth / f
    K = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=R, t=t, size=size)


def kelvin_to_rgb(kelvin: float) -> np.ndarray:
    """Approximate linear-RGB colour (max component 1) of a black body at ``kelvin`` (1000-40000 K)."""
    t = min(max(kelvin, 1000.0), 40000.0) / 100.0
    if t <= 66:
        r = 255.0
        g = 99.4708025861 * math.log(t) - 161.1195681661
        b = 0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307
    else:
        r = 329.698727446 * (t - 60) ** -0.1332047592
        g = 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0
    rgb = np.clip(np.array([r, g, b]) / 255.0, 0.0, 1.0) ** 2.2
    return rgb / rgb.max()


def direction_from_angles(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector in camera space pointing from the subject towards a light at ``azimuth`` (degrees, 0 =
    the camera, > 0 = image right) and ``elevation`` (degrees, > 0 = above)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return np.array([math.sin(a) * math.cos(e), -math.sin(e), -math.cos(a) * math.cos(e)])
