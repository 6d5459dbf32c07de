"""Training losses for landmark regression (coordinates) and heatmaps.

Shapes: ``pred`` and ``target`` are ``(B, K, 2)`` coordinates or ``(B, K, H, W)`` heatmaps. The optional
``weight`` is ``(B, K)`` (e.g. visibility); it multiplies every element of point ``k`` of sample ``b``.

Reduction (all losses): an element-wise loss ``l`` is computed (per coordinate, per heatmap cell, or per point
for :func:`l2_loss`), multiplied by the broadcast weight, and averaged over **all** elements, i.e.
``mean(weight[..., None] * l)``; weights are not renormalised (mmpose convention), so masking points out
lowers the loss rather than re-weighting the rest.

Definitions (``x = |pred - target|`` per coordinate / cell):
    * ``wing_loss``: ``w * ln(1 + x / eps)`` if ``x < w`` else ``x - C``, ``C = w - w * ln(1 + w / eps)``
      (Feng et al., CVPR 2018). ``w`` is in the units of the coordinates (pixels for w = 10).
    * ``adaptive_wing_loss``: ``omega * ln(1 + (x / epsilon) ** (alpha - y))`` if ``x < theta`` else
      ``A * x - C`` with ``y`` the target cell value, ``A = omega / (1 + (theta / epsilon) ** (alpha - y)) *
      (alpha - y) * (theta / epsilon) ** (alpha - y - 1) / epsilon``, ``C = theta * A - omega * ln(1 +
      (theta / epsilon) ** (alpha - y))`` (Wang et al., ICCV 2019; without the paper's dilated loss-map
      weighting). Targets should lie in ``[0, 1]``.
    * ``l1_loss``: per-coordinate ``x``.
    * ``l2_loss``: per-point **squared euclidean** distance, ``sum_d (pred - target)^2`` over each point's
      representation (its 2 coordinates, or its ``H * W`` heatmap cells), averaged over ``(B, K)``.
    * ``smooth_l1``: per-coordinate ``0.5 x^2 / beta`` if ``x < beta`` else ``x - 0.5 beta`` (as
      ``torch.nn.functional.smooth_l1_loss``).
    * ``heatmap_mse``: per-cell squared error ``(pred - target)^2`` (no 0.5 factor).
    * ``heatmap_kl``: per-point ``KL(target || softmax(pred))`` over the ``H * W`` cells of each map, with
      ``pred`` logits and ``target`` a distribution (each map sums to 1), averaged over ``(B, K)``.

Which losses apply where: :data:`COORDINATE_LOSSES` take ``(B, K, 2)`` coordinates (training's ``loss``);
:data:`HEATMAP_LOSSES` take ``(B, K, H, W)`` maps (a heatmap codec's ``heatmap_loss``, see
:class:`lightmark.codecs.HeatmapCodec`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from .choices import CoordinateLoss, HeatmapLoss

__all__ = [
    "wing_loss",
    "adaptive_wing_loss",
    "l1_loss",
    "l2_loss",
    "smooth_l1",
    "heatmap_mse",
    "heatmap_kl",
    "LOSSES",
    "COORDINATE_LOSSES",
    "HEATMAP_LOSSES",
    "get_loss",
]

LossFn = Callable[..., torch.Tensor]


def _check(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, heatmaps: bool | None) -> None:
    """Validate shapes; ``heatmaps`` True/False requires 4-D/3-D input, None allows both."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    is_coords = pred.ndim == 3 and pred.shape[-1] == 2
    is_hm = pred.ndim == 4
    if heatmaps is True and not is_hm:
        raise ValueError(f"expected heatmaps of shape (B, K, H, W), got {tuple(pred.shape)}")
    if heatmaps is None and not (is_coords or is_hm):
        raise ValueError(f"expected (B, K, 2) coordinates or (B, K, H, W) heatmaps, got {tuple(pred.shape)}")
    if weight is not None and tuple(weight.shape) != tuple(pred.shape[:2]):
        raise ValueError(f"weight must have shape {tuple(pred.shape[:2])}, got {tuple(weight.shape)}")


def _reduce(elem: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``mean(weight * elem)`` with ``weight`` (B, K) broadcast over the trailing dims of ``elem``."""
    if weight is not None:
        w = weight.to(elem.dtype).reshape(*weight.shape, *([1] * (elem.ndim - 2)))
        elem = elem * w
    return elem.mean()


def wing_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    w: float = 10.0,
    eps: float = 2.0,
) -> torch.Tensor:
    """Wing loss (Feng et al. 2018) on the per-coordinate absolute error; see the module docstring."""
    _check(pred, target, weight, None)
    if w <= 0 or eps <= 0:
        raise ValueError("wing_loss needs w > 0 and eps > 0")
    x = (pred - target).abs()
    c = w - w * math.log1p(w / eps)
    elem = torch.where(x < w, w * torch.log1p(x / eps), x - c)
    return _reduce(elem, weight)


def adaptive_wing_loss(
    pred_hm: torch.Tensor,
    target_hm: torch.Tensor,
    weight: torch.Tensor | None = None,
    omega: float = 14.0,
    theta: float = 0.5,
    epsilon: float = 1.0,
    alpha: float = 2.1,
) -> torch.Tensor:
    """Adaptive Wing loss (Wang et al. 2019) on ``(B, K, H, W)`` heatmaps; see the module docstring."""
    _check(pred_hm, target_hm, weight, True)
    y = target_hm
    x = (pred_hm - y).abs()
    p = alpha - y  # exponent, >= alpha - 1 > 1 for targets in [0, 1]: smooth at x = 0
    r = theta / epsilon
    a = omega / (1.0 + torch.pow(r, p)) * p * torch.pow(r, p - 1.0) / epsilon
    c = theta * a - omega * torch.log1p(torch.pow(r, p))
    small = omega * torch.log1p(torch.pow(x / epsilon, p))
    elem = torch.where(x < theta, small, a * x - c)
    return _reduce(elem, weight)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-coordinate (or per-cell) absolute error."""
    _check(pred, target, weight, None)
    return _reduce((pred - target).abs(), weight)


def l2_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over ``(B, K)`` of the per-point squared euclidean distance (summed over coordinates / cells)."""
    _check(pred, target, weight, None)
    sq = (pred - target).square().flatten(2).sum(-1)  # (B, K)
    return _reduce(sq, weight)


def smooth_l1(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, beta: float = 1.0
) -> torch.Tensor:
    """Mean per-coordinate smooth-L1 (Huber / beta) error."""
    _check(pred, target, weight, None)
    if beta <= 0:
        raise ValueError("smooth_l1 needs beta > 0")
    x = (pred - target).abs()
    elem = torch.where(x < beta, 0.5 * x.square() / beta, x - 0.5 * beta)
    return _reduce(elem, weight)


def heatmap_mse(pred_hm: torch.Tensor, target_hm: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-cell squared error of ``(B, K, H, W)`` heatmaps (optionally weighted per point)."""
    _check(pred_hm, target_hm, weight, True)
    return _reduce((pred_hm - target_hm).square(), weight)


def heatmap_kl(pred_hm: torch.Tensor, target_hm: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over ``(B, K)`` of ``KL(target || softmax(pred))``: ``pred_hm`` logits, ``target_hm`` maps summing to 1."""
    _check(pred_hm, target_hm, weight, True)
    logp = F.log_softmax(pred_hm.flatten(2), dim=-1).view_as(pred_hm)
    t = target_hm
    kl = (t * (torch.log(t.clamp_min(1e-12)) - logp)).sum((2, 3))  # (B, K)
    return _reduce(kl, weight)


COORDINATE_LOSSES: dict[CoordinateLoss, LossFn] = {
    CoordinateLoss.WING: wing_loss,
    CoordinateLoss.L1: l1_loss,
    CoordinateLoss.L2: l2_loss,
    CoordinateLoss.SMOOTH_L1: smooth_l1,
}
"""Losses on ``(B, K, 2)`` coordinates (training's ``loss`` option); looked up by member or value."""
HEATMAP_LOSSES: dict[HeatmapLoss, LossFn] = {
    HeatmapLoss.KL: heatmap_kl,
    HeatmapLoss.MSE: heatmap_mse,
    HeatmapLoss.ADAPTIVE_WING: adaptive_wing_loss,
}
"""Losses on ``(B, K, H, W)`` heatmaps (a heatmap codec's ``heatmap_loss``)."""
LOSSES: dict[str, LossFn] = {**COORDINATE_LOSSES, **HEATMAP_LOSSES}
"""Registry of every loss function; each is called as ``fn(pred, target, weight=None)``."""


def get_loss(name: str | CoordinateLoss | HeatmapLoss, **kwargs: float) -> LossFn:
    """Loss ``name`` of :data:`LOSSES` with hyper-parameters bound; call it as ``fn(pred, target, weight)``.

    Raises:
        ValueError: unknown name (the message lists the known ones) or a keyword the loss does not take.
    """
    try:
        fn = LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}") from None
    params = [p for p in inspect.signature(fn).parameters if p not in ("pred", "target", "pred_hm", "target_hm")]
    bad = sorted(set(kwargs) - set(params) | ({"weight"} & set(kwargs)))
    if bad:
        raise ValueError(f"loss {name!r} does not take {bad}; hyper-parameters: {[p for p in params if p != 'weight']}")
    return partial(fn, **kwargs) if kwargs else fn
