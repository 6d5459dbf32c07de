"""Head pose (yaw, pitch, roll) from 68 landmarks: a 3D mean face through ``cv2.solvePnP``.

Object frame of :data:`MEAN_SHAPE_68` (millimetres, origin at the landmarks' centroid), aligned with an upright
frontal face seen by an OpenCV camera: ``x`` towards the image right (the subject's left), ``y`` down, ``z``
away from the camera (into the head).

Angles (degrees), relative to a face looking straight at the camera (by default measured from the line of
sight, like weak-perspective labels such as AFLW2000-3D's, so a face off the image centre that looks at the
camera has zero yaw and pitch):
    yaw > 0    the face turns towards the image's right (the subject's left)
    pitch > 0  the face looks up
    roll > 0   the face tilts counter-clockwise on screen
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The 68 iBUG landmark vertices of the ICT Face Model's neutral mean face (ICT-FaceKit, MIT licence), in mm,
# mirrored to be exactly left/right symmetric, expressed in the object frame above.
MEAN_SHAPE_68: np.ndarray = np.array(
    [
    (-73.6, -39.4, 57.8), (-72.8, -17.5, 55.1), (-69.4, 2.0, 49.0), (-65.6, 21.0, 42.6),
    (-57.2, 42.3, 33.1), (-43.0, 59.5, 20.9), (-30.5, 66.5, 6.6), (-15.4, 70.0, -8.4),
    (0.0, 73.1, -10.0), (15.4, 70.0, -8.4), (30.5, 66.5, 6.6), (43.0, 59.5, 20.9),
    (57.2, 42.3, 33.1), (65.6, 21.0, 42.6), (69.4, 2.0, 49.0), (72.8, -17.5, 55.1),
    (73.6, -39.4, 57.8), (-58.2, -54.6, 15.3), (-49.3, -62.4, 4.5), (-37.9, -65.2, -3.9),
    (-24.1, -64.5, -10.5), (-11.7, -61.7, -12.9), (11.7, -61.7, -12.9), (24.1, -64.5, -10.5),
    (37.9, -65.2, -3.9), (49.3, -62.4, 4.5), (58.2, -54.6, 15.3), (0.0, -40.0, -13.0),
    (0.0, -28.9, -20.8), (0.0, -18.7, -28.7), (0.0, -6.7, -36.3), (-12.5, 8.8, -14.4),
    (-6.0, 8.8, -19.8), (0.0, 9.4, -21.3), (6.0, 8.8, -19.8), (12.5, 8.8, -14.4),
    (-44.6, -36.9, 8.3), (-38.7, -41.3, 0.7), (-27.8, -42.0, -1.0), (-18.4, -35.1, 2.4),
    (-27.3, -33.4, 0.2), (-38.6, -33.3, 2.1), (18.4, -35.1, 2.4), (27.8, -42.0, -1.0),
    (38.7, -41.3, 0.7), (44.6, -36.9, 8.3), (38.6, -33.3, 2.1), (27.3, -33.4, 0.2),
    (-25.3, 32.6, -7.5), (-17.0, 25.2, -17.9), (-7.3, 21.6, -22.9), (0.0, 22.2, -24.0),
    (7.3, 21.6, -22.9), (17.0, 25.2, -17.9), (25.3, 32.6, -7.5), (18.0, 38.0, -14.6),
    (10.3, 40.4, -19.5), (0.0, 41.2, -21.1), (-10.3, 40.4, -19.5), (-18.0, 38.0, -14.6),
    (-22.1, 32.3, -6.9), (-10.0, 30.4, -16.5), (0.0, 30.6, -18.5), (10.0, 30.4, -16.5),
    (22.1, 32.3, -6.9), (10.7, 31.2, -16.0), (0.0, 31.4, -18.2), (-10.7, 31.2, -16.0),
    ],
    dtype=np.float64,
)  # fmt: skip


@dataclass
class HeadPose:
    """Pose of one face: Euler angles (degrees, see the module docstring) and the PnP solution."""

    yaw: float
    pitch: float
    roll: float
    rvec: np.ndarray  # (3,) Rodrigues rotation, object -> camera
    tvec: np.ndarray  # (3,) translation in mm
    camera: np.ndarray  # (3, 3) intrinsics used
    error: float  # RMS reprojection error in units of the landmark box side

    def as_tuple(self) -> tuple[float, float, float]:
        return self.yaw, self.pitch, self.roll


def camera_matrix(width: int, height: int, focal: float | None = None) -> np.ndarray:
    """Pinhole intrinsics for an image: focal length ``focal`` px (default ``max(width, height)``, a ~53 degree
    field of view), principal point at the centre."""
    f = float(focal or max(width, height))
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) object -> camera rotation of the given angles (degrees): ``R = Ry(-yaw) Rx(-pitch) Rz(-roll)``."""
    a, b, c = np.deg2rad([-yaw, -pitch, -roll])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


def angles_from_rotation(r: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of an object -> camera rotation (inverse of :func:`rotation_from_angles`)."""
    a = np.arctan2(r[0, 2], r[2, 2])
    b = np.arcsin(np.clip(-r[1, 2], -1.0, 1.0))
    c = np.arctan2(r[1, 0], r[1, 1])
    return float(-np.rad2deg(a)), float(-np.rad2deg(b)), float(-np.rad2deg(c))


def ray_alignment(t: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking the direction of ``t`` (camera -> head) onto the optical axis ``(0, 0, 1)``."""
    d = np.asarray(t, np.float64).reshape(3) / max(float(np.linalg.norm(t)), 1e-12)
    axis = np.array([d[1], -d[0], 0.0])  # d x (0, 0, 1), without np.cross's 40 us of overhead
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        return np.eye(3)
    angle = np.arctan2(s, float(d[2]))
    q, _ = cv2.Rodrigues(axis / s * angle)
    return q


def project(points3d: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """(N, 3) object points -> (N, 2) image points."""
    pts, _ = cv2.projectPoints(np.asarray(points3d, np.float64), rvec, tvec, camera, None)
    return pts.reshape(-1, 2)


def _checked(landmarks: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """``landmarks`` as float64 (K, 2) with K the points of ``shape``, all finite, else ValueError."""
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != shape[:, :2].shape or not np.isfinite(pts).all():
        raise ValueError(f"landmarks: expected {len(shape)} finite (x, y) points, got shape {pts.shape}")
    return pts


def estimate_head_pose(
    landmarks: np.ndarray,
    image_size: tuple[int, int],
    focal: float | None = None,
    shape: np.ndarray = MEAN_SHAPE_68,
    line_of_sight: bool = True,
) -> HeadPose:
    """Fit the 3D mean face to (68, 2) landmarks of an image ``(width, height)`` (or the points of any scheme that
    maps to the 68: :func:`~lightmark.schemes.ibug68_points`), at any roll: a face rolled past 90 degrees is fitted
    in the image turned half a turn about the principal point (where the solver starts upright), and the pose turned
    back (:func:`fit_head_pose` does the fit).

    Raises:
        ValueError: ``landmarks`` is not (68, 2) finite points (nor points of a scheme that maps to them).
    """
    from .data.transforms import face_roll
    from .schemes import ibug68_points

    pts = np.asarray(landmarks, np.float64)
    pts = _checked(ibug68_points(pts) if pts.ndim == 2 and len(pts) != len(shape) else pts, shape)
    if abs(face_roll(pts)) <= 90.0:
        return fit_head_pose(pts, image_size, focal, shape, line_of_sight)
    w, h = image_size
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])  # camera_matrix's principal point
    half = fit_head_pose(2 * centre - pts, image_size, focal, shape, line_of_sight=False)
    flip = np.diag([-1.0, -1.0, 1.0])  # half a turn about the optical axis
    r = flip @ cv2.Rodrigues(half.rvec)[0]
    t = flip @ half.tvec
    yaw, pitch, roll = angles_from_rotation(ray_alignment(t) @ r if line_of_sight else r)
    return HeadPose(yaw, pitch, roll, cv2.Rodrigues(r)[0].reshape(3), t, half.camera, half.error)


def head_roll(landmarks: np.ndarray) -> float:
    """The face's roll in degrees, in :func:`~lightmark.data.transforms.face_roll`'s convention (0: eyes level), from
    the head pose fitted to (K, 2) ``landmarks`` of any scheme that maps to the 68 points. Unlike the eye line, it
    does not tilt with yaw: on the validation crops' profile faces the eye line reads 38-50 degrees where the head
    is rolled by 8-27. The face is fitted centred in a virtual image four times its size. On noisy points of a
    rolled profile face it is less steady from frame to frame than the eye line (see the video tracker)."""
    pts = np.asarray(landmarks, np.float64)
    side = float(max(np.ptp(pts, axis=0).max(), 1.0))
    size = int(np.ceil(4 * side))
    centred = pts - pts.mean(0) + (size - 1) / 2.0
    return -estimate_head_pose(centred, (size, size)).roll


def fit_head_pose(
    landmarks: np.ndarray,
    image_size: tuple[int, int],
    focal: float | None = None,
    shape: np.ndarray = MEAN_SHAPE_68,
    line_of_sight: bool = True,
) -> HeadPose:
    """Fit the 3D mean face to (68, 2) landmarks of an image ``(width, height)`` with ``cv2.solvePnP``.

    ``line_of_sight``: angles relative to the ray from the camera to the head (else to the optical axis).

    Raises:
        ValueError: ``landmarks`` is not (68, 2) finite points.
    """
    pts = _checked(landmarks, shape)
    cam = camera_matrix(image_size[0], image_size[1], focal)
    side = float(max(np.ptp(pts, axis=0).max(), 1e-6))
    # Initial guess: frontal, at the distance where the mean face has the landmarks' size.
    z0 = cam[0, 0] * float(np.ptp(shape[:, :2], axis=0).max()) / side
    centre = pts.mean(0)
    t0 = np.array([(centre[0] - cam[0, 2]) * z0 / cam[0, 0], (centre[1] - cam[1, 2]) * z0 / cam[1, 1], z0])
    ok, rvec, tvec = cv2.solvePnP(
        shape, pts, cam, None, rvec=np.zeros((3, 1)), tvec=t0.reshape(3, 1), useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )  # fmt: skip
    if not ok:
        rvec, tvec = np.zeros((3, 1)), t0.reshape(3, 1)
    r, _ = cv2.Rodrigues(rvec)
    if line_of_sight:
        r = ray_alignment(tvec.reshape(3)) @ r
    yaw, pitch, roll = angles_from_rotation(r)
    err = float(np.sqrt(((project(shape, rvec, tvec, cam) - pts) ** 2).sum(1).mean()) / side)
    return HeadPose(yaw, pitch, roll, rvec.reshape(3), tvec.reshape(3), cam, err)


def draw_pose_axes(image_rgb: np.ndarray, pose: HeadPose, length: float = 60.0, thickness: int = 2) -> np.ndarray:
    """Draw the head's axes in place (x red, y green, z blue, ``length`` mm from the nose tip) and return the
    image. ``z`` is drawn out of the face (towards the viewer of a frontal face)."""
    origin = MEAN_SHAPE_68[30]
    axes = origin + np.array([[0.0, 0.0, 0.0], [length, 0, 0], [0, -length, 0], [0, 0, -length]])
    p = project(axes, pose.rvec, pose.tvec, pose.camera)
    if not np.isfinite(p).all() or np.abs(p).max() > 1e5:
        return image_rgb
    o = tuple(int(round(v)) for v in p[0])
    for q, color in zip(p[1:], ((255, 0, 0), (0, 200, 0), (40, 80, 255)), strict=True):
        cv2.line(image_rgb, o, tuple(int(round(v)) for v in q), color, thickness, cv2.LINE_AA)
    return image_rgb
