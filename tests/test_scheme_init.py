"""Starting a model of another landmark scheme from a 68-point model (adapt_head)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lightmark.engine.train import adapt_head  # noqa: E402
from lightmark.errors import ConfigError  # noqa: E402
from lightmark.models import create_model  # noqa: E402
from lightmark.schemes import get_scheme  # noqa: E402


@pytest.mark.parametrize("name", ["shufflenetv2_x0_5_heatmap", "shufflenetv2_x0_5_regression"])
def test_a_wflw98_model_started_from_a_68_point_model_predicts_its_points(name: str) -> None:
    """Mapped points come out exactly as the 68-point model's; an odd jaw point of a regression model is exactly
    the mean of its two neighbours, and a heatmap model's lies between them."""
    torch.manual_seed(0)
    src = create_model(name).eval()
    dst = create_model(name, scheme="wflw98").eval()
    ibug, wflw = get_scheme("ibug68"), get_scheme("wflw98")
    dst.load_state_dict(adapt_head(src.state_dict(), ibug, wflw, src.config.head))
    x = torch.rand(2, 3, 128, 128) * 255
    with torch.no_grad():
        p68, p98 = src.landmarks(x).numpy(), dst.landmarks(x).numpy()
    assert p98.shape == (2, 98, 2)
    np.testing.assert_allclose(p98[:, list(wflw.to_ibug68)], p68, atol=1e-4)
    if src.config.head == "regression":
        np.testing.assert_allclose(p98[:, 1], p68[:, :2].mean(1), atol=1e-4)
        np.testing.assert_allclose(p98[:, 96], p68[:, [37, 38, 40, 41]].mean(1), atol=1e-4)
    else:  # between its two neighbours (inside their bounding box, give or take a pixel)
        lo, hi = p68[:, :2].min(1), p68[:, :2].max(1)
        assert ((p98[:, 1] >= lo - 1) & (p98[:, 1] <= hi + 1)).all()


def test_adapt_head_refuses_schemes_without_a_prior() -> None:
    state = create_model("shufflenetv2_x0_5_heatmap").state_dict()
    with pytest.raises(ConfigError, match="from_ibug68"):
        adapt_head(state, get_scheme("wflw98"), get_scheme("ibug68"), "heatmap")
    with pytest.raises(ConfigError, match="head"):
        adapt_head(state, get_scheme("ibug68"), get_scheme("wflw98"), "mystery")


def test_wflw98_prior_mirrors() -> None:
    """Each WFLW point's prior, mirrored through the 68-point flip, is its mirror point's prior."""
    from lightmark.constants import FLIP_PERM

    s = get_scheme("wflw98")
    for j, prior in enumerate(s.from_ibug68):
        assert sorted(FLIP_PERM[i] for i in prior) == sorted(s.from_ibug68[s.flip_perm[j]])
