"""Temporal smoothing: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012) and a jitter estimate.

The One Euro filter is a first-order low-pass filter whose cutoff frequency rises with the signal's speed:
``cutoff = min_cutoff + beta * |dx/dt|``. Slow motion (a still face: only prediction noise) is smoothed
strongly; fast motion passes with little lag. :class:`LandmarkSmoother` applies it to the face's shape only, after
taking out the head's similarity motion, so that moving the head adds no lag at all.
"""

from __future__ import annotations

import math

import numpy as np

from .config import DemoConfig


def smoothing_factor(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
    """Exponential-smoothing weight of a first-order low-pass filter with ``cutoff`` Hz at time step ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter over arrays of any shape (each element filtered on its own).

    Args:
        min_cutoff: cutoff (Hz) at zero speed; lower = smoother still signal, more lag.
        beta: speed coefficient (Hz per unit/s); higher = less lag when moving.
        d_cutoff: cutoff (Hz) of the low-pass filter on the derivative.

    >>> f = OneEuroFilter(min_cutoff=1.0, beta=0.01)
    >>> y = f(x, t)        # x: array, t: time in seconds (strictly increasing)
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("OneEuroFilter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next sample passes unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray | float, t: float) -> np.ndarray:
        """Filter sample ``x`` taken at time ``t`` (seconds); returns the filtered sample (float64 array)."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or x.shape != self._x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:  # repeated or out-of-order timestamp: keep the state
            return self._x.copy()
        dx = (x - self._x) / dt
        a_d = smoothing_factor(dt, self.d_cutoff)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        a = smoothing_factor(dt, self.min_cutoff + self.beta * np.abs(self._dx))
        self._x = a * x + (1.0 - a) * self._x
        self._t = float(t)
        return self._x.copy()


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2, 3) taking (K, 2) ``src`` onto ``dst``: ``dst ~ [[a, -b], [b, a]] src + t``."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    denom = float((s**2).sum()) or 1.0
    a = float((s * d).sum()) / denom
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / denom
    rs = np.array([[a, -b], [b, a]])
    return np.concatenate([rs, (md - rs @ ms)[:, None]], axis=1)


class ConstantVelocityFilter:
    """Kalman filter of a constant-velocity motion, for arrays of any shape (each element on its own, all with the
    same ratio of noises, so they share one 2x2 covariance).

    Args:
        ratio: the motion's acceleration noise over the measurement noise (std per s^2 over std; 1/s^2): higher
            follows changes of speed sooner, lower smooths more. A constant speed is followed without lag.
    """

    def __init__(self, ratio: float) -> None:
        if not ratio > 0:
            raise ValueError("ConstantVelocityFilter needs ratio > 0")
        self.ratio = float(ratio)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next sample passes unchanged."""
        self._x: np.ndarray | None = None
        self._v: np.ndarray | None = None
        self._p = np.diag([1.0, 1e6])  # covariance of (position, velocity) in units of the measurement variance
        self._t: float | None = None

    def __call__(self, x: np.ndarray | float, t: float) -> np.ndarray:
        """Filter sample ``x`` taken at time ``t`` (seconds); returns the filtered sample (float64 array)."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or x.shape != self._x.shape:
            self.reset()
            self._x, self._v, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:
            return self._x.copy()
        f = np.array([[1.0, dt], [0.0, 1.0]])
        q = self.ratio**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
        p = f @ self._p @ f.T + q
        gain = p[:, 0] / (p[0, 0] + 1.0)
        pred = self._x + self._v * dt
        innovation = x - pred
        self._x = pred + gain[0] * innovation
        self._v = self._v + gain[1] * innovation
        self._p = (np.eye(2) - np.outer(gain, [1.0, 0.0])) @ p
        self._t = float(t)
        return self._x.copy()


def _rigid_params(m: np.ndarray) -> np.ndarray:
    """(tx / s, ty / s, ln s, angle) of a similarity (2, 3) of scale s: the head's motion in face units."""
    s = float(np.hypot(m[0, 0], m[1, 0]))
    return np.array([m[0, 2] / s, m[1, 2] / s, np.log(s), np.arctan2(m[1, 0], m[0, 0])])


def _similarity(params: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_rigid_params`."""
    s = float(np.exp(params[2]))
    c, si = s * np.cos(params[3]), s * np.sin(params[3])
    return np.array([[c, -si, params[0] * s], [si, c, params[1] * s]])


class LandmarkSmoother:
    """Smoothing of (K, 2) landmarks that does not lag behind head motion.

    Each frame's points are split into a similarity transform (the head's position, size and roll: a least-squares
    fit of the track's reference shape, which averages the noise of all K points) and the shape left in the face's
    own frame (expression and per-point noise, in units of the face size). The transform goes through a
    constant-velocity Kalman filter (``motion``: acceleration over measurement noise, 1/s^2; 0 = unfiltered), which
    follows a steady motion, zoom or roll without lag; the shape goes through a One Euro filter (``min_cutoff`` Hz
    when still, ``beta`` per face size and second when it changes, e.g. the mouth opening). Chosen on the video
    benchmark (``scripts/video_benchmark.py --compare``), where One Euro on the points themselves lagged behind.
    """

    def __init__(
        self,
        min_cutoff: float = DemoConfig.min_cutoff,
        beta: float = DemoConfig.beta,
        motion: float = DemoConfig.motion,
        d_cutoff: float = 1.0,
    ) -> None:
        self.shape_filter = OneEuroFilter(min_cutoff, beta, d_cutoff)
        self.motion_filter = ConstantVelocityFilter(motion) if motion > 0 else None
        self.reference: np.ndarray | None = None
        self._angle = 0.0

    def reset(self) -> None:
        """Forget the reference shape and the filters' state."""
        self.shape_filter.reset()
        if self.motion_filter is not None:
            self.motion_filter.reset()
        self.reference = None

    def __call__(self, landmarks: np.ndarray, t: float) -> np.ndarray:
        """Smoothed (K, 2) float32 landmarks of the raw ``landmarks`` taken at time ``t`` (seconds)."""
        pts = np.asarray(landmarks, np.float64)
        if self.reference is None or self.reference.shape != pts.shape:
            self.reset()
            centred = pts - pts.mean(0)
            side = float(max(np.ptp(pts, axis=0).max(), 1e-6))  # the reference's unit: its landmark box side
            self.reference = centred / side
            self._angle = 0.0
        m = fit_similarity(self.reference, pts)  # reference (face units) -> image
        shape = (pts - m[:, 2]) @ np.linalg.inv(m[:, :2]).T  # the points in the reference frame (face units)
        smooth = self.shape_filter(shape, t)
        if self.motion_filter is not None:
            params = _rigid_params(m)
            params[3] = self._angle + (params[3] - self._angle + np.pi) % (2 * np.pi) - np.pi  # unwrapped roll
            self._angle = params[3]
            m = _similarity(self.motion_filter(params, t))
        return (smooth @ m[:, :2].T + m[:, 2]).astype(np.float32)


def jitter(series: np.ndarray) -> float:
    """Noise level of a (T, ...) time series, robust to slow motion: RMS of the second difference divided by
    sqrt(6) (for white noise of std s on a still or linearly moving signal this equals s). NaN when T < 3."""
    x = np.asarray(series, np.float64)
    if len(x) < 3:
        return float("nan")
    d2 = x[2:] - 2.0 * x[1:-1] + x[:-2]
    return float(np.sqrt(np.mean(d2**2)) / math.sqrt(6.0))


def still_jitter(series: np.ndarray) -> float:
    """Std of positions over time on a still segment: per-coordinate std over T frames, RMS over coordinates."""
    x = np.asarray(series, np.float64).reshape(len(series), -1)
    return float(np.sqrt(np.mean(x.var(axis=0)))) if len(x) >= 2 else float("nan")
