"""Geometry (one affine warp per sample) and photometric augmentation.

Coordinates use the pixel-centre convention: x = 0 is the centre of the first pixel column. Every crop is an
affine map ``M`` (2x3) from source-image pixels to output pixels; landmarks go through the same ``M``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..constants import (
    CROP_SHIFT_UP,
    CROP_SIDE_RATIO,
    FINE_SHIFT_UP,
    FINE_SIDE_RATIO,
    FLIP_PERM,
    LEFT_EYE,
    RIGHT_EYE,
)


def crop_matrix(
    center: np.ndarray | tuple[float, float],
    side: float,
    out_size: int,
    angle_deg: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """Affine map (2, 3) taking a square window (``side`` px around ``center``, rotated by ``angle_deg``
    counter-clockwise) of the source image to an ``out_size`` square; ``flip`` mirrors the result."""
    s = out_size / side
    a = np.deg2rad(angle_deg)
    cos, sin = np.cos(a) * s, np.sin(a) * s
    cx, cy = float(center[0]), float(center[1])
    half = out_size / 2.0 - 0.5
    # x' = R s (x - c) + half, with R rotating the content by +angle on screen (y points down).
    m = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]], dtype=np.float64)
    m[:, 2] = np.array([half, half]) - m[:, :2] @ np.array([cx, cy])
    if flip:
        m[0] = -m[0]
        m[0, 2] += out_size - 1
    return m


def whole_image_matrix(width: int, height: int, out_size: int) -> np.ndarray:
    """The whole image (padded to a centred square when not square) resized to ``out_size``."""
    return crop_matrix(((width - 1) / 2.0, (height - 1) / 2.0), float(max(width, height)), out_size)


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine map to (..., 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine map."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def warp(
    image: np.ndarray, m: np.ndarray, out_size: int, interpolation: int = cv2.INTER_LINEAR, antialias: bool = True
) -> np.ndarray:
    """Warp ``image`` by ``m`` into an ``out_size`` square, black outside the source (like the challenge crops).

    With ``antialias``, a map that shrinks by more than 1.5x first shrinks the image with area averaging
    (``cv2.INTER_AREA``), so that the bilinear warp itself stays near 1:1 and does not alias."""
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if antialias and scale < 1 / 1.5:
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        fx, fy = nw / w, nh / h
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        # small-image pixel x_s = (x + 0.5) * f - 0.5, so the map from the small image is m @ inverse(that).
        pre = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
        m = np.asarray(m, np.float64) @ pre
    return cv2.warpAffine(
        image, m, (out_size, out_size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def area_shrink(image: np.ndarray, k: int) -> np.ndarray:
    """An (H, W[, C]) image whose sides are multiples of ``k``, shrunk ``k`` times: each pixel the mean of a k x k
    block, as ``cv2.resize(..., INTER_AREA)`` gives it (uint8: within one grey level, where a mean ends in .5 and
    ``k`` is even). OpenCV's own area resize is fast at k = 2 only; beyond, a box filter anchored at each block's
    corner, read at every k-th pixel, is about 2.7x faster (52 against 143 us for a 342 px window at k = 3, measured
    on this project's 2-core machine)."""
    if k == 2:
        h, w = image.shape[:2]
        return cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    # each pixel: the mean of the k x k block below and right of it; every k-th one is a block's mean
    box = cv2.boxFilter(image, -1, (k, k), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(box[::k, ::k])


def warp_window(image: np.ndarray, m: np.ndarray, out_size: int) -> np.ndarray:
    """:func:`warp` for inference, about 2.7x faster on large images: a map that shrinks by more than 1.5x first
    area-averages only the window it covers, by an integer factor ``k`` (the bilinear warp that follows stays within
    2/3-4/3 scale), and that warp is skipped when it is the identity (a whole image shrunk by an integer factor).
    Differs from :func:`warp` by resampling only (validation NME within 0.015 of it)."""
    m = np.asarray(m, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 1 / 1.5:
        k = max(2, round(1 / scale))
        h, w = image.shape[:2]
        inv = cv2.invertAffineTransform(m)
        s = out_size - 0.5
        c = np.array([[-0.5, -0.5], [s, -0.5], [-0.5, s], [s, s]]) @ inv[:, :2].T + inv[:, 2]  # window corners
        x0 = max(0, (int(np.floor(c[:, 0].min())) - 1) // k * k)
        y0 = max(0, (int(np.floor(c[:, 1].min())) - 1) // k * k)
        x1 = min(w, int(np.ceil(c[:, 0].max())) + 1 + k)
        y1 = min(h, int(np.ceil(c[:, 1].max())) + 1 + k)
        w2, h2 = (x1 - x0) // k, (y1 - y0) // k
        if w2 < 1 or h2 < 1:  # the window lies outside the image
            return np.zeros((out_size, out_size, *image.shape[2:]), image.dtype)
        image = area_shrink(image[y0 : y0 + h2 * k, x0 : x0 + w2 * k], k)
        # small pixel u averages source pixels k*u .. k*u + k - 1: its centre is source x = k*u + x0 + (k - 1) / 2
        m = np.concatenate([m[:, :2] * k, (m[:, :2] @ [x0 + (k - 1) / 2, y0 + (k - 1) / 2] + m[:, 2])[:, None]], 1)
        if image.shape[:2] == (out_size, out_size) and np.abs(m - _IDENTITY).max() < 1e-9:
            return image
    return cv2.warpAffine(
        image, m, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def landmark_box(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (2,) and side max(w, h) of the bounding box of (K, 2) points."""
    lo, hi = points.min(0), points.max(0)
    return (lo + hi) / 2.0, float(max(hi - lo))


def face_roll(points: np.ndarray) -> float:
    """In-plane roll (degrees) of a face's (K, 2) points: the angle of the line from the subject's right eye centre
    (image left on an upright face) to the left one (the eyes of the 68 iBUG points: any scheme with a map to them;
    68 points + 2 pupils count as 68), measured clockwise on screen (y points down). An upright face is 0, one
    rolled upside down 180; ``crop_matrix(..., angle_deg=face_roll(p))`` levels the eyes."""
    from ..schemes import ibug68_points

    pts = ibug68_points(points)
    d = pts[LEFT_EYE].mean(0) - pts[RIGHT_EYE].mean(0)
    return float(np.degrees(np.arctan2(d[1], d[0])))


def upright_matrix(
    points: np.ndarray,
    out_size: int,
    ratio: float = FINE_SIDE_RATIO,
    shift_up: float = FINE_SHIFT_UP,
    angle_deg: float | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    flip: bool = False,
) -> np.ndarray:
    """Crop matrix (2, 3) framing a face upright from its (K, 2) points: rotated by ``angle_deg`` (default
    :func:`face_roll`), side ``ratio`` x the landmark box measured in that rotated frame, window centre ``shift_up``
    x side above the box centre, plus ``offset`` (fractions of the side, in the output frame). The fine pass of
    two-pass prediction and its training crops both use it."""
    a = face_roll(points) if angle_deg is None else float(angle_deg)
    t = np.deg2rad(a)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # the rotation crop_matrix applies
    q = np.asarray(points, dtype=np.float64) @ rot.T  # (K, 2) in the upright frame
    lo, hi = q.min(0), q.max(0)
    side = ratio * float(max(hi - lo))
    centre = (lo + hi) / 2.0 + (np.array([0.0, -shift_up]) + np.asarray(offset)) * side
    return crop_matrix(centre @ rot, side, out_size, a, flip=flip)  # rot is orthonormal: rot^T maps back


def flip_landmarks(points: np.ndarray, width: int, perm: tuple[int, ...] = FLIP_PERM) -> np.ndarray:
    """Mirror (K, 2) points of an image ``width`` px wide and re-order them with the mirror permutation."""
    out = np.array(points, dtype=np.float32, copy=True)
    out[:, 0] = width - 1 - out[:, 0]
    return out[list(perm)]


def gamma_lut(gamma: float) -> np.ndarray:
    """256-entry uint8 lookup table for ``out = 255 * (in / 255) ** (1 / gamma)`` (gamma > 1 brightens)."""
    x = np.arange(256, dtype=np.float64) / 255.0
    return np.clip(np.round(255.0 * x ** (1.0 / gamma)), 0, 255).astype(np.uint8)


def apply_gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """Gamma correction through a lookup table (identity for gamma == 1)."""
    return image if gamma == 1.0 else cv2.LUT(image, gamma_lut(gamma))


@dataclass
class CropJitter:
    """How training crops are drawn around a face, matching the challenge's crops by default.

    The defaults follow how the challenge's crops were cut (../shared/data/README.md), which
    :func:`crop_statistics` measures on a labelled crop set (on the 199 validation crops: side 1.90 +- 0.16 x the
    landmark box, window centre 0.084 +- 0.02 x side above the box centre, 0.00 +- 0.02 sideways).
    """

    side_mean: float = CROP_SIDE_RATIO
    side_std: float = 0.16
    side_range: tuple[float, float] = (1.5, 2.4)
    shift_up: float = CROP_SHIFT_UP
    shift_std: tuple[float, float] = (0.025, 0.03)  # (x, y) in units of the side
    rotation_deg: float = 30.0  # uniform in +-rotation_deg, with probability p_rotate
    p_rotate: float = 0.6
    p_flip: float = 0.5
    log_uniform_side: bool = False  # draw side / box log-uniformly over side_range (wide framing) instead

    def sample(self, rng: np.random.Generator, center: np.ndarray, box_side: float, out_size: int) -> np.ndarray:
        """Draw a random crop matrix (2, 3); apply the flip permutation to landmarks when ``m`` mirrors
        (``is_flipped(m)``)."""
        if self.log_uniform_side:
            ratio = float(np.exp(rng.uniform(*np.log(self.side_range))))
        else:
            ratio = float(np.clip(rng.normal(self.side_mean, self.side_std), *self.side_range))
        side = ratio * box_side
        dx = rng.normal(0.0, self.shift_std[0]) * side
        dy = (rng.normal(0.0, self.shift_std[1]) - self.shift_up) * side
        angle = rng.uniform(-self.rotation_deg, self.rotation_deg) if rng.random() < self.p_rotate else 0.0
        # Shift in the rotated frame so "up" means up in the output crop.
        a = np.deg2rad(angle)
        # crop_matrix maps image vectors v to R v (R = [[c, s], [-s, c]]); an output-frame offset is R^T (dx, dy).
        off = np.array([dx * np.cos(a) - dy * np.sin(a), dx * np.sin(a) + dy * np.cos(a)])
        return crop_matrix(center + off, side, out_size, angle, flip=bool(rng.random() < self.p_flip))


WIDE_JITTER = CropJitter(
    side_range=(1.15, 4.2), log_uniform_side=True, shift_std=(0.1, 0.1), rotation_deg=180.0, p_rotate=0.8
)
"""The coarse pass's training framing: the face from a quarter to nearly the whole of the image, off centre, at
any roll (80 % of crops; the rest upright as photographed)."""


@dataclass
class FineJitter:
    """Training crops of the fine pass: :func:`upright_matrix` around the true points, perturbed the way a coarse
    pass errs (roll, size and position)."""

    ratio: float = FINE_SIDE_RATIO
    ratio_std: float = 0.06
    shift_up: float = FINE_SHIFT_UP
    shift_std: float = 0.03  # of the side, x and y
    angle_std: float = 6.0  # degrees
    p_flip: float = 0.5

    def sample(self, rng: np.random.Generator, points: np.ndarray, out_size: int) -> np.ndarray:
        """A random fine-pass crop matrix (2, 3) for a face with (K, 2) ``points``."""
        ratio = self.ratio * float(np.exp(rng.normal(0.0, self.ratio_std)))
        angle = face_roll(points) + rng.normal(0.0, self.angle_std)
        offset = tuple(rng.normal(0.0, self.shift_std, 2))
        flip = bool(rng.random() < self.p_flip)
        return upright_matrix(points, out_size, ratio, self.shift_up, angle, offset, flip)


def crop_statistics(landmarks: np.ndarray, image_sizes: np.ndarray) -> dict[str, float]:
    """How a set of face crops frames its faces. landmarks (N, K, 2), image_sizes (N, 2) as (w, h).

    Returns mean and std of side / landmark-box side, and of the window centre's offset from the box centre
    in units of the side (``shift_up`` > 0: the window sits above the box centre)."""
    pts = np.asarray(landmarks, np.float64)
    sizes = np.asarray(image_sizes, np.float64)
    lo, hi = pts.min(1), pts.max(1)
    side = np.sqrt(sizes[:, 0] * sizes[:, 1])
    ratio = side / (hi - lo).max(1)
    off = ((sizes - 1) / 2.0 - (lo + hi) / 2.0) / side[:, None]
    return {
        "side_mean": float(ratio.mean()),
        "side_std": float(ratio.std()),
        "shift_up_mean": float(-off[:, 1].mean()),
        "shift_up_std": float(off[:, 1].std()),
        "shift_x_std": float(off[:, 0].std()),
    }


def is_flipped(m: np.ndarray) -> bool:
    """True when the affine map mirrors (negative determinant)."""
    return float(np.linalg.det(m[:, :2])) < 0


GAMMA_PROBABILITY = 0.4  # default chance of a random gamma (0.6-1.6) per training crop


def photometric_augmentation(strength: float = 1.0, gamma_probability: float = GAMMA_PROBABILITY):
    """Albumentations pipeline for colour, gamma, blur, noise, JPEG, grey and occlusion (uint8 RGB in/out).

    ``strength`` scales every probability (0 disables everything); ``gamma_probability`` is the gamma step's own
    chance before that scaling (0: no gamma augmentation)."""
    import albumentations as A

    p = float(np.clip(strength, 0.0, 1.0))
    return A.Compose(
        [
            A.ColorJitter(
                brightness=(0.6, 1.4),
                contrast=(0.6, 1.4),
                saturation=(0.5, 1.5),
                hue=(-0.05, 0.05),
                p=0.8 * p,
            ),
            A.RandomGamma(gamma_limit=(60, 160), p=float(np.clip(gamma_probability, 0.0, 1.0)) * p),
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.3, 2.0)),
                    A.MotionBlur(blur_limit=(3, 9)),
                    A.Downscale(scale_range=(0.35, 0.8)),
                ],
                p=0.35 * p,
            ),
            A.OneOf([A.GaussNoise(std_range=(0.02, 0.08)), A.ISONoise()], p=0.3 * p),
            A.ImageCompression(quality_range=(30, 95), p=0.4 * p),
            A.ToGray(p=0.1 * p),
            A.CoarseDropout(
                num_holes_range=(1, 2),
                hole_height_range=(0.1, 0.3),
                hole_width_range=(0.1, 0.3),
                fill="random_uniform",
                p=0.25 * p,
            ),
        ]
    )
