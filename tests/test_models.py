"""Models: registry, size budget, shapes, checkpoints (including refusing a crafted one)."""

from __future__ import annotations

import pickle

import pytest
import torch

from lightmark.constants import FLIP_PERM, NUM_LANDMARKS
from lightmark.errors import ModelError, UnsafeFileError
from lightmark.models import (
    MAX_MODEL_MB,
    count_macs,
    create_model,
    float32_size_mb,
    list_models,
    load_model,
    model_summary,
    save_checkpoint,
)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_fits_the_size_budget(name: str) -> None:
    """Every model fits the 15 MB budget but the reference rows, which are there because they do not."""
    from lightmark.models.registry import REFERENCE_MODELS

    size = float32_size_mb(create_model(name))
    if name in REFERENCE_MODELS:
        assert size > MAX_MODEL_MB, f"{name} fits the budget: it need not be a reference-only model"
    else:
        assert size <= MAX_MODEL_MB, f"{name} is {size:.2f} MB float32, over the {MAX_MODEL_MB} MB budget"


@pytest.mark.parametrize("name", ["shufflenetv2_x0_5_heatmap", "shufflenetv2_x0_5_regression"])
@pytest.mark.parametrize("size", [96, 128])
def test_forward_shapes(name: str, size: int) -> None:
    model = create_model(name, input_size=size).eval()
    x = torch.rand(3, 3, size, size) * 255
    with torch.no_grad():
        raw, coords = model(x), model.landmarks(x)
    assert coords.shape == (3, NUM_LANDMARKS, 2)
    if model.config.head == "heatmap":
        s = model.config.heatmap_stride
        assert raw.shape == (3, NUM_LANDMARKS, size // s, size // s)
        # soft-argmax keeps the points inside the map's span
        assert coords.min() >= -0.5 and coords.max() <= size - 0.5
    else:
        assert raw.shape == (3, NUM_LANDMARKS, 2)  # units of the input side
        torch.testing.assert_close(coords, raw * size - 0.5)


def test_config_travels_with_the_weights(tmp_path) -> None:
    model = create_model("shufflenetv2_x0_5_heatmap", input_size=96).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, metrics={"nme": 1.5})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.config.flip_perm == FLIP_PERM
    x = torch.rand(2, 3, 96, 96) * 255
    with torch.no_grad():
        assert torch.equal(model.landmarks(x), loaded.landmarks(x))


def test_unknown_model_name() -> None:
    with pytest.raises(ModelError, match="available"):
        create_model("resnet9000")


def test_summary_counts() -> None:
    model = create_model("shufflenetv2_x0_5_heatmap")
    s = model_summary(model)
    n = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    assert s["params"] == n and s["size_mb"] == round((n + buffers) * 4 / 1e6, 3)
    assert s["gmacs"] == round(count_macs(model, 128) / 1e9, 4) and s["input_size"] == 128


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/lightmark_pwned_marker",))


def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path) -> None:
    import os

    marker = "/tmp/lightmark_pwned_marker"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pt"
    torch.save({"format": "lightmark-checkpoint-v1", "payload": _Evil()}, path)
    with pytest.raises(UnsafeFileError, match="evil.pt"):
        load_model(path)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", pickle.dumps({"format": "other"})])
def test_malformed_checkpoints(tmp_path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises((ModelError, UnsafeFileError), match="bad.pt"):
        load_model(path)


def test_missing_checkpoint(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_interpolated_checkpoint_blends_deployed_weights(tmp_path) -> None:
    """(1 - alpha) * start + alpha * end on every float tensor, taking each side's EMA when it has one; integer
    buffers from end; different networks and alpha outside [0, 1] refused; the script writes a loadable file."""
    from conftest import load_script
    from lightmark.models.checkpoint import Checkpoint, interpolate_checkpoints, load_checkpoint

    torch.manual_seed(0)
    a, b = (create_model("shufflenetv2_x0_5_heatmap", input_size=64) for _ in range(2))
    sa, sb = a.state_dict(), b.state_dict()
    counter = next(k for k, v in sb.items() if not v.is_floating_point())  # a BatchNorm batch counter
    sa[counter], sb[counter] = torch.tensor(3), torch.tensor(5)
    ema_a = {k: v - 1 if v.is_floating_point() else v for k, v in sa.items()}
    ema_b = {k: v + 1 if v.is_floating_point() else v for k, v in sb.items()}
    ema_b[counter] = torch.tensor(7)
    start = Checkpoint(a.config.to_dict(), sa, ema_state_dict=ema_a)
    end = Checkpoint(b.config.to_dict(), sb, ema_state_dict=ema_b, train_config={"lr": 1e-3})
    mix = interpolate_checkpoints(start, end, 0.25)
    name = next(k for k, v in sa.items() if v.is_floating_point() and v.numel() > 1)
    assert torch.allclose(mix.state_dict[name], 0.75 * ema_a[name] + 0.25 * ema_b[name])
    assert int(mix.state_dict[counter]) == 7  # end's deployed (EMA) counter
    assert (
        mix.ema_state_dict is None and mix.train_config == {"lr": 1e-3} and mix.extra["interpolated"]["alpha"] == 0.25
    )
    assert torch.equal(interpolate_checkpoints(start, end, 0.0).state_dict[name], ema_a[name])
    half = Checkpoint(b.config.to_dict(), {k: v.half() if v.is_floating_point() else v for k, v in sb.items()})
    with pytest.raises(ModelError, match="shape"):
        interpolate_checkpoints(start, half, 0.5)
    with pytest.raises(ModelError, match="alpha"):
        interpolate_checkpoints(start, end, 1.5)
    other = create_model("shufflenetv2_x0_5_heatmap", input_size=96)
    with pytest.raises(ModelError, match="input_size"):
        interpolate_checkpoints(start, Checkpoint(other.config.to_dict(), other.state_dict()), 0.5)
    start.save(tmp_path / "a.pt")
    end.save(tmp_path / "b.pt")
    args = ["--start", str(tmp_path / "a.pt"), "--end", str(tmp_path / "b.pt"), "--alpha", "0.5"]
    load_script("interpolate_weights").main([*args, "--out", str(tmp_path / "m.pt"), "--track", "mixed"])
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.extra["interpolated"] == {
        "alpha": 0.5,
        "start": str(tmp_path / "a.pt"),
        "end": str(tmp_path / "b.pt"),
    }
    load_model(tmp_path / "m.pt")
