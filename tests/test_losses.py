"""Losses: hand-computed values on tiny tensors, zero at a perfect prediction, finite gradients."""

from __future__ import annotations

import math

import pytest
import torch

from lightmark.losses import (
    LOSSES,
    adaptive_wing_loss,
    get_loss,
    heatmap_mse,
    l1_loss,
    l2_loss,
    smooth_l1,
    wing_loss,
)

T = torch.float64


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    """B=1, K=2 points; errors: point 0 = (1, -12), point 1 = (0, 3)."""
    target = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]], dtype=T)
    pred = target + torch.tensor([[[1.0, -12.0], [0.0, 3.0]]], dtype=T)
    return pred, target


def test_wing_hand_computed() -> None:
    pred, target = _pair()
    w, eps = 10.0, 2.0
    c = w - w * math.log(1 + w / eps)  # C = 10 - 10 ln 6 = -7.9176
    # |x| = 1 < w: 10 ln(1 + 1/2) = 4.0547; |x| = 12 >= w: 12 - C = 19.9176
    # |x| = 0: 0;                       |x| = 3 < w: 10 ln(1 + 3/2) = 9.1629
    terms = [w * math.log(1.5), 12 - c, 0.0, w * math.log(2.5)]
    assert wing_loss(pred, target).item() == pytest.approx(sum(terms) / 4)
    # continuity at |x| = w: both branches give w ln(1 + w/eps)
    assert w * math.log(1 + w / eps) == pytest.approx(w - c)


def test_wing_weighted_and_params() -> None:
    pred, target = _pair()
    weight = torch.tensor([[1.0, 0.0]], dtype=T)  # point 1 masked out; mean still over all 4 coordinates
    c = 10 - 10 * math.log(6)
    assert wing_loss(pred, target, weight).item() == pytest.approx((10 * math.log(1.5) + 12 - c) / 4)
    # w = 2, eps = 1: |x|=1 < 2 -> 2 ln 2; |x|=12 -> 12 - (2 - 2 ln 3); |x|=3 -> 3 - (2 - 2 ln 3)
    c2 = 2 - 2 * math.log(3)
    expect = (2 * math.log(2) + 12 - c2 + 0 + 3 - c2) / 4
    assert wing_loss(pred, target, w=2.0, eps=1.0).item() == pytest.approx(expect)


def test_l1_l2_smooth_l1_hand_computed() -> None:
    pred, target = _pair()
    # L1 per coordinate: (1 + 12 + 0 + 3) / 4 = 4
    assert l1_loss(pred, target).item() == pytest.approx(4.0)
    # L2 per point squared euclidean: point 0: 1 + 144 = 145, point 1: 0 + 9 = 9 -> (145 + 9) / 2 = 77
    assert l2_loss(pred, target).item() == pytest.approx(77.0)
    # weighted: (2 * 145 + 0.5 * 9) / 2 = 147.25
    assert l2_loss(pred, target, torch.tensor([[2.0, 0.5]], dtype=T)).item() == pytest.approx(147.25)
    # smooth L1 (beta 1): |1| -> 1 - 0.5 = 0.5 (x >= beta); 12 -> 11.5; 0 -> 0; 3 -> 2.5 ; mean = 14.5 / 4
    assert smooth_l1(pred, target).item() == pytest.approx(14.5 / 4)
    # beta 2: 1 < 2 -> 0.5 * 1 / 2 = 0.25; 12 -> 11; 0; 3 -> 2 ; mean = 13.25 / 4
    assert smooth_l1(pred, target, beta=2.0).item() == pytest.approx(13.25 / 4)
    assert smooth_l1(pred, target, beta=2.0).item() == pytest.approx(
        torch.nn.functional.smooth_l1_loss(pred, target, beta=2.0).item()
    )


def test_heatmap_losses_hand_computed() -> None:
    target = torch.zeros(1, 2, 2, 2, dtype=T)
    target[0, 0, 0, 0] = 1.0
    pred = target.clone()
    pred[0, 0, 0, 0] = 0.5  # error 0.5 on a cell with y = 1
    pred[0, 1, 1, 1] = 0.2  # error 0.2 on a cell with y = 0
    # MSE: (0.25 + 0.04) / 8 cells
    assert heatmap_mse(pred, target).item() == pytest.approx(0.29 / 8)
    # weight point 1 by 3: (0.25 + 3 * 0.04) / 8
    assert heatmap_mse(pred, target, torch.tensor([[1.0, 3.0]], dtype=T)).item() == pytest.approx(0.37 / 8)
    # l2 on heatmaps: per-point sum over cells, mean over K: (0.25 + 0.04) / 2
    assert l2_loss(pred, target).item() == pytest.approx(0.29 / 2)
    # Adaptive wing, omega 14, theta 0.5, eps 1, alpha 2.1:
    #  cell y=0, x=0.2 < theta: 14 ln(1 + 0.2^2.1) = 14 ln(1.0341...) = 0.46920
    #  cell y=1, x=0.5 >= theta: p = 1.1, A = 14 / (1 + 0.5^1.1) * 1.1 * 0.5^0.1 / 1,
    #      C = 0.5 A - 14 ln(1 + 0.5^1.1), loss = 0.5 A - C = 14 ln(1 + 0.5^1.1) (continuous at theta)
    #  other cells have x = 0 -> 0
    small = 14 * math.log(1 + 0.2**2.1)
    p = 1.1
    a = 14 / (1 + 0.5**p) * p * 0.5 ** (p - 1)
    c = 0.5 * a - 14 * math.log(1 + 0.5**p)
    assert adaptive_wing_loss(pred, target).item() == pytest.approx((small + 0.5 * a - c) / 8)
    # linear branch: y = 1, x = 0.75 -> A * 0.75 - C
    pred2 = target.clone()
    pred2[0, 0, 0, 0] = 0.25
    assert adaptive_wing_loss(pred2, target).item() == pytest.approx((0.75 * a - c) / 8)


@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"heatmap_kl"}))  # KL takes logits vs a distribution
def test_zero_at_target_and_finite_gradient(name: str) -> None:
    torch.manual_seed(0)
    if name in ("adaptive_wing", "heatmap_mse"):
        target = torch.rand(2, 3, 4, 4, dtype=T)  # heatmap values in [0, 1]
    else:
        target = torch.randn(2, 3, 2, dtype=T) * 10
    pred = target.clone().requires_grad_(True)
    loss = get_loss(name)(pred, target)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.abs().max().item() == pytest.approx(0.0, abs=1e-9)
    # also finite and non-zero away from the target
    pred2 = (target + 0.3).requires_grad_(True)
    get_loss(name)(pred2, target).backward()
    assert torch.isfinite(pred2.grad).all() and pred2.grad.abs().sum() > 0


def test_get_loss_binds_params_and_rejects_unknown() -> None:
    pred, target = _pair()
    fn = get_loss("wing", w=2.0, eps=1.0)
    assert fn(pred, target).item() == pytest.approx(wing_loss(pred, target, w=2.0, eps=1.0).item())
    with pytest.raises(ValueError, match="adaptive_wing.*wing"):
        get_loss("nope")
    with pytest.raises(ValueError, match="omega"):
        get_loss("wing", omega=3.0)


def test_shape_checks() -> None:
    pred, target = _pair()
    with pytest.raises(ValueError):
        l1_loss(pred, target[:, :1])
    with pytest.raises(ValueError):
        l1_loss(pred, target, torch.ones(1, 3))
    with pytest.raises(ValueError):
        heatmap_mse(pred, target)  # coordinates are not heatmaps


def test_heatmap_kl_point_weights() -> None:
    """Weights scale each point's KL: all ones == unweighted, zeros on a point remove exactly its term."""
    from lightmark.losses import heatmap_kl

    g = torch.Generator().manual_seed(0)
    hm = torch.randn(2, 3, 8, 8, generator=g)
    t = torch.rand(2, 3, 8, 8, generator=g)
    t = t / t.sum((2, 3), keepdim=True)
    full = heatmap_kl(hm, t)
    assert torch.allclose(heatmap_kl(hm, t, torch.ones(2, 3)), full)
    w = torch.ones(2, 3)
    w[:, 0] = 0
    rest = heatmap_kl(hm[:, 1:], t[:, 1:])  # mean over the 2 x 2 remaining points
    assert torch.allclose(heatmap_kl(hm, t, w), rest * 4 / 6)


def test_heatmap_kl_hand_computed() -> None:
    """Two cells: logits (0, ln 3) -> p = (1/4, 3/4); target (1/2, 1/2): KL = 1/2 ln 2 + 1/2 ln(2/3)."""
    from lightmark.losses import heatmap_kl

    pred = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64).view(1, 1, 1, 2)
    target = torch.tensor([0.5, 0.5], dtype=torch.float64).view(1, 1, 1, 2)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert heatmap_kl(pred, target).item() == pytest.approx(expected, rel=1e-12)
