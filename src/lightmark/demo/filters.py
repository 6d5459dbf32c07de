"""Temporal smoothing: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012) and a jitter estimate.

The One Euro filter is a first-order low-pass filter whose cutoff frequency rises with the signal's speed:
``cutoff = min_cutoff + beta * |dx/dt|``. Slow motion (a still face: only prediction noise) is smoothed
strongly; fast motion passes with little lag.
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


class LandmarkSmoother:
    """One Euro filter for (K, 2) landmarks whose parameters do not depend on the face's size in pixels:
    ``beta`` is given in units of the face size (the landmark box side), converted to pixels each frame.

    The defaults (``min_cutoff`` 1 Hz, ``beta`` 8 per face side; written in :class:`~lightmark.demo.DemoConfig`)
    were measured on a synthetic 25 fps clip with 1 px of landmark noise on a 110 px face: a still face's jitter
    falls 2.5x (1.0 -> 0.40 px); while the face moves at ~100 px/s the mean error is 1.3 px (0.8 px unsmoothed),
    where ``beta`` 0.5 lags by 4.3 px.
    """

    def __init__(
        self, min_cutoff: float = DemoConfig.min_cutoff, beta: float = DemoConfig.beta, d_cutoff: float = 1.0
    ) -> None:
        self.beta = float(beta)
        self.filter = OneEuroFilter(min_cutoff, 0.0, d_cutoff)

    def reset(self) -> None:
        self.filter.reset()

    def __call__(self, landmarks: np.ndarray, t: float) -> np.ndarray:
        pts = np.asarray(landmarks, np.float64)
        side = float(max(np.ptp(pts, axis=0).max(), 1.0))
        self.filter.beta = self.beta / side
        return self.filter(pts, t).astype(np.float32)


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
