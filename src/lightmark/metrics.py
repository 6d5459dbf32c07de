"""Evaluation metrics for facial landmarks of any scheme (pure numpy; 68-point ``ibug68`` by default).

Conventions:
    * ``pred`` and ``gt`` are ``(N, K, 2)`` arrays of ``(x, y)`` pixel coordinates; a single face
      ``(K, 2)`` is treated as ``N = 1``.
    * Every NME is returned in **percent**: ``mean_k ||pred_k - gt_k|| / norm * 100``.
    * Normalisers: ``challenge_norm`` = ``sqrt(W * H)`` of the image (Light-Weight Facial Landmark Prediction
      Challenge), ``box_norm`` = ``sqrt(w * h)`` of the ground-truth landmark bounding box (AFLW2000-3D
      literature), ``interocular_norm`` = distance between the scheme's outer eye corners (36 and 45 of the
      68-point layouts, 300-W; 60 and 72 of WFLW's 98). Functions that use the scheme's points (the eye corners,
      the regions) take a ``scheme`` (a name or a :class:`~lightmark.schemes.LandmarkScheme`, default
      ``ibug68``) and refuse arrays with another point count instead of indexing them silently.
    * ``auc`` is the 300-W definition: the area under the cumulative error distribution (CED) from 0 to the
      threshold, divided by the threshold so that it lies in ``[0, 1]`` (1 = every image has zero error).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .constants import INNER, JAW, YAW_BIN_NAMES, YAW_BINS
from .schemes import DEFAULT_SCHEME, LandmarkScheme, get_scheme

__all__ = [
    "point_errors",
    "nme",
    "challenge_norm",
    "box_norm",
    "interocular_norm",
    "region_nme",
    "failure_rate",
    "ced_curve",
    "auc",
    "yaw_bin_masks",
    "summarize",
]


def _as_batch(pts: np.ndarray, name: str) -> np.ndarray:
    """``(K, 2)`` or ``(N, K, 2)`` -> float64 ``(N, K, 2)``."""
    a = np.asarray(pts, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(f"{name}: expected shape (N, K, 2) or (K, 2), got {np.shape(pts)}")
    return a


def _as_1d(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean error of every point.

    Args:
        pred: ``(N, K, 2)`` (or ``(K, 2)``) predicted points.
        gt: same shape, ground truth.

    Returns:
        ``(N, K)`` float64 distances in pixels.
    """
    p, g = _as_batch(pred, "pred"), _as_batch(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} differ in shape")
    return np.linalg.norm(p - g, axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray | float) -> np.ndarray:
    """Normalised mean error of every image, in percent.

    Args:
        pred: ``(N, K, 2)`` (or ``(K, 2)``) predicted points.
        gt: same shape, ground truth.
        norm: ``(N,)`` positive normalisers (or one scalar for all images).

    Returns:
        ``(N,)`` float64: ``mean_k ||pred - gt|| / norm * 100``.

    Raises:
        ValueError: shapes disagree or a normaliser is not a positive finite number.
    """
    err = point_errors(pred, gt).mean(axis=1)
    d = np.asarray(norm, dtype=np.float64).reshape(-1)
    if d.size == 1:
        d = np.full(err.shape, d[0])
    elif d.shape != err.shape:
        raise ValueError(f"norm has {d.size} values for {err.size} images")
    if not np.all(np.isfinite(d) & (d > 0)):
        raise ValueError("every normaliser must be a positive finite number")
    return err / d * 100.0


def challenge_norm(image_sizes: np.ndarray) -> np.ndarray:
    """Challenge normaliser ``sqrt(W * H)`` of the image.

    Args:
        image_sizes: ``(N, 2)`` as ``(width, height)``; a single ``(2,)`` pair gives ``(1,)``.

    Returns:
        ``(N,)`` float64.
    """
    s = np.asarray(image_sizes, dtype=np.float64)
    if s.ndim == 1:
        s = s[None]
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"image_sizes: expected shape (N, 2) as (width, height), got {np.shape(image_sizes)}")
    return np.sqrt(s[:, 0] * s[:, 1])


def box_norm(gt: np.ndarray) -> np.ndarray:
    """``sqrt(w * h)`` of the axis-aligned bounding box of the ground-truth landmarks.

    Args:
        gt: ``(N, K, 2)`` (or ``(K, 2)``).

    Returns:
        ``(N,)`` float64.
    """
    g = _as_batch(gt, "gt")
    wh = g.max(axis=1) - g.min(axis=1)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def interocular_norm(gt: np.ndarray, scheme: str | LandmarkScheme = DEFAULT_SCHEME) -> np.ndarray:
    """Distance between the scheme's outer eye corners (36 and 45 for ``ibug68``: the 300-W normaliser).

    Args:
        gt: ``(N, K, 2)`` (or ``(K, 2)``), K = the scheme's point count.
        scheme: landmark scheme name or object.

    Returns:
        ``(N,)`` float64.

    Raises:
        ValueError: K is not the scheme's point count.
    """
    s = get_scheme(scheme)
    g = s.check_points(_as_batch(gt, "gt"), "interocular_norm: gt")
    a, b = s.eye_corners
    return np.linalg.norm(g[:, a] - g[:, b], axis=-1)


def region_nme(
    pred: np.ndarray, gt: np.ndarray, norm: np.ndarray | float, scheme: str | LandmarkScheme = DEFAULT_SCHEME
) -> dict[str, np.ndarray]:
    """NME of each region of the scheme (jaw, brows, nose, eyes, mouth...), in percent.

    Args:
        pred: ``(N, K, 2)`` (or ``(K, 2)``) predicted points.
        gt: same shape, ground truth.
        norm: ``(N,)`` positive normalisers (or one scalar), as :func:`nme`.
        scheme: landmark scheme name or object; K must be its point count.

    Returns:
        ``{region: (N,) float64}`` in the scheme's region order.
    """
    s = get_scheme(scheme)
    p, g = s.check_points(pred, "pred"), s.check_points(gt, "gt")
    return {name: nme(p[:, list(ix)], g[:, list(ix)], norm) for name, ix in s.regions.items()}


def interocular_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float | int]:
    """Mean inter-ocular NME (percent; outer eye corners 36 / 45) of all 68 points, the inner 51 (brows, eyes,
    nose, mouth) and the 17 jaw points: the 300-W figures of ``scripts/helen_check.py``.

    Args:
        pred: ``(N, 68, 2)`` predicted points.
        gt: ``(N, 68, 2)`` ground truth.

    Returns:
        ``{"n", "all_68", "inner_51", "jaw_17"}``.
    """
    p, g = _as_batch(pred, "pred"), _as_batch(gt, "gt")
    norm = interocular_norm(g)
    return {
        "n": len(g),
        "all_68": float(nme(p, g, norm).mean()),
        "inner_51": float(nme(p[:, INNER], g[:, INNER], norm).mean()),
        "jaw_17": float(nme(p[:, JAW], g[:, JAW], norm).mean()),
    }


def failure_rate(nmes: np.ndarray, threshold: float = 10.0) -> float:
    """Percentage of images whose NME (percent) is strictly above ``threshold``.

    Args:
        nmes: ``(N,)`` per-image NME in percent.

    Returns:
        Percent in ``[0, 100]``; ``nan`` for an empty input.
    """
    e = _as_1d(nmes)
    if e.size == 0:
        return float("nan")
    return float(np.mean(e > threshold) * 100.0)


def ced_curve(nmes: np.ndarray, max_threshold: float = 10.0, steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution.

    Args:
        nmes: ``(N,)`` per-image NME in percent.
        max_threshold: last threshold.
        steps: number of thresholds (``>= 2``), evenly spaced over ``[0, max_threshold]``.

    Returns:
        ``(thresholds, fraction)``, both ``(steps,)``: ``fraction[i]`` = share of images with
        ``nme <= thresholds[i]`` (in ``[0, 1]``).
    """
    if steps < 2:
        raise ValueError("steps must be >= 2")
    e = np.sort(_as_1d(nmes))
    t = np.linspace(0.0, float(max_threshold), int(steps))
    if e.size == 0:
        return t, np.zeros_like(t)
    return t, np.searchsorted(e, t, side="right") / e.size


def auc(nmes: np.ndarray, threshold: float = 10.0) -> float:
    """Area under the CED from 0 to ``threshold`` divided by ``threshold`` (300-W definition, in [0, 1]).

    Computed exactly rather than by a trapezoid over a sampled CED: since
    ``integral_0^T 1[e_i <= t] dt = max(0, T - e_i)``, the AUC is ``mean_i max(0, 1 - e_i / T)``. Sampled
    trapezoid implementations (``np.trapz(ced_curve(...)[1], thresholds) / T``) converge to this value.

    Args:
        nmes: ``(N,)`` per-image NME in percent.

    Returns:
        AUC in ``[0, 1]``; ``nan`` for an empty input.
    """
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    e = _as_1d(nmes)
    if e.size == 0:
        return float("nan")
    return float(np.mean(np.clip(1.0 - e / threshold, 0.0, 1.0)))


def yaw_bin_masks(yaws: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the absolute-yaw bins of :data:`~lightmark.constants.YAW_BINS`.

    Args:
        yaws: ``(N,)`` yaw angles in degrees (sign ignored); ``nan`` falls in no bin.

    Returns:
        ``{bin_name: (N,) bool mask}`` in the order of ``YAW_BIN_NAMES``; bins are ``[lo, hi)``.
    """
    y = np.abs(_as_1d(yaws))
    with np.errstate(invalid="ignore"):
        return {name: (y >= lo) & (y < hi) for name, (lo, hi) in zip(YAW_BIN_NAMES, YAW_BINS, strict=True)}


def _mean(a: np.ndarray) -> float | None:
    return float(np.mean(a)) if a.size else None


def summarize(
    pred: np.ndarray,
    gt: np.ndarray,
    image_sizes: np.ndarray,
    yaws: np.ndarray | None = None,
    scheme: str | LandmarkScheme = DEFAULT_SCHEME,
) -> dict[str, Any]:
    """All standard metrics of a set of predictions, as a JSON-serialisable dict of plain Python numbers.

    Args:
        pred: ``(N, K, 2)`` predicted points in image pixels, K = the scheme's point count.
        gt: ``(N, K, 2)`` ground truth.
        image_sizes: ``(N, 2)`` as ``(width, height)``, or one ``(2,)`` pair shared by all images.
        yaws: optional ``(N,)`` yaw angles in degrees (``nan`` = unknown).
        scheme: landmark scheme (name or object) of the points: its eye corners give the inter-ocular NME.

    Returns:
        ``n``, ``nme_challenge``, ``nme_box``, ``nme_interocular`` (means, percent), ``fr_10`` / ``auc_10``
        (failure rate in percent / AUC in [0, 1] at 10 % on the challenge NME), ``fr_10_box`` / ``auc_10_box``
        (same on the box NME). With ``yaws``: one entry per bin ``{bin: {"n", "nme_challenge", "nme_box"}}``
        (NMEs ``None`` for an empty bin) and ``nme_challenge_balanced``, the mean of the three bin challenge
        NMEs (``None`` if a bin is empty). Empty input gives ``None`` for every mean.

    Raises:
        ValueError: mismatched shapes, a point count that is not the scheme's, or a zero normaliser (degenerate
            ground truth, e.g. eyes 36 = 45).
    """
    s = get_scheme(scheme)
    p, g = s.check_points(pred, "pred"), s.check_points(gt, "gt")
    n = p.shape[0]
    sizes = np.asarray(image_sizes, dtype=np.float64)
    if sizes.ndim == 1:
        sizes = np.broadcast_to(sizes.reshape(1, -1), (n, sizes.size))
    e_ch = nme(p, g, challenge_norm(sizes)) if n else np.zeros(0)
    e_box = nme(p, g, box_norm(g)) if n else np.zeros(0)
    e_io = nme(p, g, interocular_norm(g, s)) if n else np.zeros(0)

    def _or_none(x: float) -> float | None:
        return None if np.isnan(x) else x

    out: dict[str, Any] = {
        "n": int(n),
        "nme_challenge": _mean(e_ch),
        "nme_box": _mean(e_box),
        "nme_interocular": _mean(e_io),
        "fr_10": _or_none(failure_rate(e_ch, 10.0)),
        "auc_10": _or_none(auc(e_ch, 10.0)),
        "fr_10_box": _or_none(failure_rate(e_box, 10.0)),
        "auc_10_box": _or_none(auc(e_box, 10.0)),
    }
    if yaws is not None:
        y = _as_1d(yaws)
        if y.size != n:
            raise ValueError(f"yaws has {y.size} values for {n} images")
        bin_nmes = []
        for name, mask in yaw_bin_masks(y).items():
            out[name] = {
                "n": int(mask.sum()),
                "nme_challenge": _mean(e_ch[mask]),
                "nme_box": _mean(e_box[mask]),
            }
            bin_nmes.append(out[name]["nme_challenge"])
        out["nme_challenge_balanced"] = None if None in bin_nmes else float(np.mean(bin_nmes))
    return out
