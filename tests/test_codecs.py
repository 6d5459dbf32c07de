"""Codecs: heatmap encode/decode round trips, soft-argmax, decoders by config, the heatmap loss, regression."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightmark.choices import Decoder
from lightmark.codecs import PEAK_DECODERS, HeatmapCodec, RegressionCodec, soft_argmax
from lightmark.errors import ModelError
from lightmark.losses import heatmap_kl
from lightmark.models import create_model


def _points(codec: HeatmapCodec, n: int, margin_cells: float, seed: int = 0) -> np.ndarray:
    """Random sub-pixel points at least ``margin_cells`` heatmap cells inside the map."""
    m = margin_cells * codec.stride
    return np.random.default_rng(seed).uniform(m, codec.input_size - 1 - m, (n, 2))


def test_coordinate_convention() -> None:
    c = HeatmapCodec(256, 64)
    assert c.stride == 4.0
    # cell j covers input x = (j + 0.5) * s - 0.5: cell 0 -> 1.5, cell 63 -> 253.5
    np.testing.assert_allclose(c.to_input([[0, 63]]), [[1.5, 253.5]])
    np.testing.assert_allclose(c.to_heatmap(c.to_input([[3.25, 7.5]])), [[3.25, 7.5]])
    hm, w = c.encode(np.array([[1.5, 253.5]]))  # exactly on the centre of cell (row 63, col 0)
    assert hm.shape == (1, 64, 64) and hm.dtype == np.float32 and w.tolist() == [1.0]
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (63, 0)
    assert hm[0, 63, 0] == pytest.approx(1.0)
    assert hm[0, 63, 1] == pytest.approx(np.exp(-1 / (2 * 1.5**2)))


def test_encode_visibility() -> None:
    c = HeatmapCodec(128, 32, sigma=2.0)
    pts = np.array([[64.0, 64.0], [-0.6, 10.0], [10.0, 127.6], [np.nan, 3.0], [-0.5, 127.5]])
    hm, w = c.encode(pts)
    assert hm.shape == (5, 32, 32) and w.shape == (5,)
    np.testing.assert_array_equal(w, [1, 0, 0, 0, 1])  # input [-0.5, 127.5] is inside
    assert np.all(hm[1:4] == 0) and hm[0].max() > 0.9
    with pytest.raises(ValueError):
        c.encode(np.zeros((3, 3)))


@pytest.mark.parametrize(("input_size", "heatmap_size", "sigma"), [(256, 64, 1.5), (64, 64, 2.0), (96, 48, 1.0)])
def test_dark_round_trip(input_size: int, heatmap_size: int, sigma: float) -> None:
    c = HeatmapCodec(input_size, heatmap_size, sigma)
    # DARK blurs with the codec's Gaussian (zero padding): exact up to rounding once the point is a few sigma
    # from the border.
    pts = _points(c, 68, margin_cells=3 * sigma)
    hm, _ = c.encode(pts)
    out = c.decode_maps(hm, "dark")
    assert out.shape == (68, 2)
    assert np.abs(out - pts).max() < 0.05


def test_dark_near_border_still_close() -> None:
    c = HeatmapCodec(256, 64, 1.5)
    pts = _points(c, 200, margin_cells=0.0, seed=3)
    out = c.decode_maps(c.encode(pts)[0], "dark")
    assert np.abs(out - pts).max() < 0.5 * c.stride + 1e-6  # never worse than half a cell


@pytest.mark.parametrize(("input_size", "heatmap_size"), [(64, 64), (256, 64)])
def test_argmax_round_trip(input_size: int, heatmap_size: int) -> None:
    c = HeatmapCodec(input_size, heatmap_size, 1.5)
    pts = _points(c, 68, margin_cells=1.0, seed=1)
    out = c.decode_maps(c.encode(pts)[0], "argmax")
    # peak cell + quarter-cell shift: at most 0.25 cell per axis (0.25 px at stride 1)
    assert np.abs(out - pts).max() <= 0.25 * c.stride + 1e-6
    if c.stride == 1:
        assert np.abs(out - pts).max() < 0.3


def test_decode_batch_shapes_and_torch_input() -> None:
    c = HeatmapCodec(128, 32, 1.5)
    pts = _points(c, 2 * 5, margin_cells=5, seed=2).reshape(2, 5, 2)
    hm = np.stack([c.encode(p)[0] for p in pts])  # (B, K, H, W)
    assert hm.shape == (2, 5, 32, 32)
    for method in (*PEAK_DECODERS, "dark", "argmax"):  # members or their values
        out = c.decode_maps(hm, method)
        assert out.shape == (2, 5, 2)
        np.testing.assert_allclose(c.decode_maps(torch.from_numpy(hm), method), out)
    np.testing.assert_allclose(c.decode_maps(hm), pts, atol=0.05)
    with pytest.raises(ValueError, match="unknown decoder 'nope'; known: soft_argmax, argmax, dark"):
        c.decode_maps(hm, "nope")
    with pytest.raises(ValueError, match="soft_argmax is not a peak decoder"):
        c.decode_maps(hm, Decoder.SOFT_ARGMAX)
    with pytest.raises(ValueError):
        c.decode_maps(hm[0, 0])


def test_dark_on_flat_and_degenerate_maps() -> None:
    c = HeatmapCodec(64, 16, 1.5)
    out = c.decode_maps(np.zeros((2, 16, 16)), "dark")  # flat: argmax cell 0, no refinement
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, c.to_input([[0, 0], [0, 0]]))


def test_soft_argmax_sharp_heatmap() -> None:
    # logits = 20 * gaussian: the softmax is ~ a Gaussian of sigma 3 / sqrt(20) = 0.67 cells, wide enough
    # for the discrete expectation to be unbiased, and sharp enough (e^20 >> 64 * 64 cells) to drown the
    # background. Much sharper softmaxes snap to the nearest cell centre (100 * sigma-1.5 map: ~0.3 cell off).
    c = HeatmapCodec(256, 64, sigma=3.0)
    pts = _points(c, 2 * 68, margin_cells=12, seed=4).reshape(2, 68, 2)
    hm = torch.from_numpy(np.stack([c.encode(p)[0] for p in pts]))
    out = soft_argmax(hm * 20.0, c.stride)
    assert out.shape == (2, 68, 2) and out.dtype == torch.float32
    assert (out.double() - torch.from_numpy(pts)).abs().max().item() < 0.1
    # beta scales the logits the same way
    torch.testing.assert_close(soft_argmax(hm * 10.0, c.stride, beta=2.0), out)


def test_soft_argmax_differentiable_and_uniform() -> None:
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    out = soft_argmax(logits, stride=2.0)
    # uniform softmax: mean of cell centres (j + 0.5) * 2 - 0.5 for j = 0..3 -> 3.5
    torch.testing.assert_close(out, torch.tensor([[[3.5, 3.5]]]))
    out.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        soft_argmax(torch.zeros(4, 4), 1.0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_soft_argmax_onnx_dynamic_batch(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

    class Head(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return soft_argmax(x, 4.0)

    path = tmp_path / "sa.onnx"
    torch.onnx.export(
        Head(),
        (torch.randn(2, 3, 8, 8),),
        str(path),
        input_names=["hm"],
        output_names=["xy"],
        dynamic_axes={"hm": {0: "batch"}, "xy": {0: "batch"}},
        dynamo=False,
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 5):
        x = torch.randn(b, 3, 8, 8)
        (y,) = sess.run(None, {"hm": x.numpy()})
        np.testing.assert_allclose(y, Head()(x).numpy(), atol=1e-4)


@pytest.mark.parametrize("decoder", Decoder.values())
def test_decode_by_config_recovers_points(decoder: str) -> None:
    """Every decoder the config can name finds the points of sharp Gaussian logits (in input pixels)."""
    c = HeatmapCodec(256, 64, sigma=3.0, decoder=decoder)  # 20 x this map: a softmax of sigma 0.67 cells
    pts = _points(c, 2 * 10, margin_cells=12, seed=5).reshape(2, 10, 2)
    logits = 20.0 * torch.from_numpy(np.stack([c.encode(p)[0] for p in pts]))  # (2, 10, 64, 64)
    out = c.decode(logits)
    assert out.shape == (2, 10, 2) and out.dtype == torch.float32
    tol = 0.25 * c.stride + 1e-3 if decoder == "argmax" else 0.15
    assert (out.double() - torch.from_numpy(pts)).abs().max().item() < tol
    assert c.decoder is Decoder.parse(decoder) and c.exportable == (decoder == "soft_argmax")


def test_codec_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="soft_argmax"):
        HeatmapCodec(64, 16, decoder="centroid")
    with pytest.raises(ValueError, match="heatmap_kl"):
        HeatmapCodec(64, 16, heatmap_loss="focal")
    with pytest.raises(ModelError, match="decoder"):
        create_model("shufflenetv2_x0_5_heatmap", decoder="centroid")


def test_heatmap_loss_targets_are_the_encoded_gaussians() -> None:
    """The KL target is the codec's own encoding (one cell grid): KL against it is 0 for logits = its log."""
    c = HeatmapCodec(64, 16, sigma=1.5)
    pts = torch.tensor([[[20.3, 31.0], [40.0, 12.7]]], dtype=torch.float64)  # (1, 2, 2) input px
    target = torch.from_numpy(c.encode(pts[0].numpy())[0]).double()[None]  # (1, 2, 16, 16) amplitude 1
    dist = target / target.sum((2, 3), keepdim=True)
    assert c.loss(torch.log(dist), pts).item() == pytest.approx(0.0, abs=1e-9)
    flat = torch.zeros(1, 2, 16, 16, dtype=torch.float64)  # uniform prediction: KL = log(256) - H(target)
    entropy = -(dist * torch.log(dist.clamp_min(1e-12))).sum((2, 3))  # (1, 2)
    expected = (np.log(256.0) - entropy).mean().item()
    assert c.loss(flat, pts).item() == pytest.approx(expected, rel=1e-6)  # encode is float32
    assert heatmap_kl(flat, dist).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["heatmap_mse", "adaptive_wing"])
def test_regression_heatmap_losses_compare_the_scaled_probability_map(name: str) -> None:
    """heatmap_mse / adaptive_wing see softmax(raw) scaled to the target's mass: 0 when that equals the target."""
    c = HeatmapCodec(64, 16, sigma=1.5, heatmap_loss=name)
    pts = torch.tensor([[[30.0, 30.0]]], dtype=torch.float64)
    target = torch.from_numpy(c.encode(pts[0].numpy())[0]).double()[None]
    perfect = torch.log(target / target.sum())
    assert c.loss(perfect, pts).item() == pytest.approx(0.0, abs=1e-9)
    assert c.loss(torch.zeros_like(perfect), pts).item() > 1e-3


def test_regression_codec_round_trip() -> None:
    c = RegressionCodec(128)
    pts = np.array([[-0.5, 0.0], [63.5, 127.5]])
    enc = c.encode(pts)
    np.testing.assert_allclose(enc, [[0.0, 0.5 / 128], [0.5, 1.0]], atol=1e-7)
    np.testing.assert_allclose(c.decode(torch.from_numpy(enc)[None]).numpy()[0], pts, atol=1e-5)
    assert c.loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == 0.0


def test_model_decoder_comes_from_its_config() -> None:
    """The network returns raw logits; model.landmarks decodes them with the codec its config names."""
    torch.manual_seed(0)
    model = create_model("shufflenetv2_x0_5_heatmap", input_size=64).eval()
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        raw = model(x)
        assert raw.shape == (2, 68, 8, 8)
        torch.testing.assert_close(model.landmarks(x), soft_argmax(raw, 8.0))
        model.config.decoder = "argmax"
        expected = model.codec.decode_maps(torch.softmax(raw.flatten(2), -1).view_as(raw).numpy(), "argmax")
        np.testing.assert_allclose(model.landmarks(x).numpy(), expected, atol=1e-4)


def test_peak_mass_hand_computed():
    """The per-point confidence: all mass in one cell -> 1; uniform -> 9 / (H * W); two cells 2 apart -> the
    better 3x3 window holds both."""
    import torch

    from lightmark.codecs import peak_mass

    k, side = 3, 8
    prob = torch.zeros(1, k, side * side)
    prob[0, 0, 27] = 1.0  # one cell
    prob[0, 1] = 1.0 / (side * side)  # uniform
    prob[0, 2, 9], prob[0, 2, 11] = 0.5, 0.5  # (1, 1) and (3, 1): the window centred on (2, 1) holds both
    out = peak_mass(prob, k, side)
    assert torch.allclose(out, torch.tensor([[1.0, 9.0 / 64, 1.0]]))
