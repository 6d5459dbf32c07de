"""Knowledge distillation (``lightmark train --teacher``): the teacher's points are a second coordinate target with
``distill_weight``, on every point (the label weights do not apply to it); a teacher that cannot read the run's
crops is refused before anything runs; the teacher is part of what a resumed run must keep."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require_shared
from lightmark.codecs import RegressionCodec
from lightmark.engine import train as train_mod
from lightmark.engine.train import TrainConfig, check_config, train, train_step
from lightmark.errors import ConfigError
from lightmark.models import Checkpoint, LandmarkModel, create_model, weights_of

K = 3  # points of the hand-computed case


class _Constant(torch.nn.Module):
    """A 'network' whose output is one learnable (1, K, 2) tensor, whatever the input: points at 0.5 of the side."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.full((1, K, 2), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.p.expand(x.shape[0], K, 2)


def _step_loss(distill_weight: float, teacher: torch.Tensor | None, w: torch.Tensor | None) -> float:
    net = _Constant()
    codec = RegressionCodec(128)  # points at 0.5 * 128 - 0.5 = 63.5 px; 128 px input: loss units are pixels
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    cfg = TrainConfig(train=["unused"], loss="l1", heatmap_weight=0.0, distill_weight=distill_weight)
    x = torch.zeros(2, 3, 128, 128)
    y = torch.full((2, K, 2), 63.5)
    y[..., 0] += 2.0  # labels 2 px right of the points: L1 per coordinate 2 (x), 0 (y) -> mean 1.0
    return float(train_step(net, codec, opt, x, y, cfg, w, teacher).total)


def test_teacher_term_hand_computed() -> None:
    teacher = torch.full((2, K, 2), 63.5)
    teacher[..., 1] += 4.0  # teacher 4 px below the points: per coordinate 0 (x), 4 (y) -> mean 2.0
    assert _step_loss(0.5, None, None) == pytest.approx(1.0)  # no teacher: the label term alone
    assert _step_loss(0.5, teacher, None) == pytest.approx(1.0 + 0.5 * 2.0)
    assert _step_loss(0.0, teacher, None) == pytest.approx(1.0)  # weight 0: off
    net = _Constant()  # the step reports the teacher's term apart: 0.5 x 2.0 of the 2.0
    cfg = TrainConfig(train=["unused"], loss="l1", heatmap_weight=0.0, distill_weight=0.5)
    y = torch.full((2, K, 2), 63.5) + torch.tensor([2.0, 0.0])
    got = train_step(
        net,
        RegressionCodec(128),
        torch.optim.SGD(net.parameters(), lr=0.0),
        torch.zeros(2, 3, 128, 128),
        y,
        cfg,
        None,
        teacher,
    )
    assert (float(got.total), float(got.teacher)) == pytest.approx((2.0, 1.0))
    # label weights (the jaw of 300-W faces, say) scale the label term only (mean weight 0.25: 0.25 x 1.0) and leave
    # the teacher term whole (0.5 x 2.0)
    w = torch.tensor([[0.75, 0.0, 0.0], [0.75, 0.0, 0.0]])
    assert _step_loss(0.5, teacher, w) == pytest.approx(0.25 + 1.0)


def test_teacher_gradient_pulls_the_points() -> None:
    """With labels on the points, the only gradient is the teacher's: a step moves the points towards it."""
    net, codec = _Constant(), RegressionCodec(128)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    cfg = TrainConfig(train=["unused"], loss="l1", heatmap_weight=0.0, distill_weight=1.0)
    y = torch.full((1, K, 2), 63.5)
    teacher = y + torch.tensor([3.0, -3.0])
    train_step(net, codec, opt, torch.zeros(1, 3, 128, 128), y, cfg, None, teacher)
    moved = net.p.detach()[0] - 0.5  # (K, 2) in units of the side
    assert (moved[:, 0] > 0).all() and (moved[:, 1] < 0).all()


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(train=["unused"], model="shufflenetv2_x0_5_heatmap", **kw)


def test_a_teacher_that_cannot_read_the_crops_is_refused() -> None:
    with pytest.raises(ConfigError, match="no such checkpoint"):
        check_config(_cfg(teacher="no/such/teacher.pt"))
    with pytest.raises(ConfigError, match="reads 128 px"):
        check_config(_cfg(teacher="mixed", input_size=64))  # the shipped model reads 128 px crops
    with pytest.raises(ConfigError, match="distill weight"):
        check_config(_cfg(teacher="mixed", distill_weight=-1.0))
    check_config(_cfg(teacher="mixed"))  # 128 px ibug68: accepted


def test_a_teacher_saved_before_schemes_reads_as_ibug68(tmp_path: Path) -> None:
    model = create_model("shufflenetv2_x0_5_heatmap", input_size=64)
    config = model.config.to_dict()
    del config["scheme"]  # checkpoints written before landmark schemes existed
    path = tmp_path / "old.pt"
    Checkpoint(config=config, state_dict=weights_of(model)).save(path)
    check_config(_cfg(teacher=str(path), input_size=64))
    with pytest.raises(ConfigError, match="reads 64 px ibug68"):
        check_config(_cfg(teacher=str(path), input_size=128))


def _teacher_checkpoint(path: Path, seed: int = 3) -> Path:
    torch.manual_seed(seed)
    model = create_model("shufflenetv2_x0_5_heatmap", input_size=64)
    Checkpoint(config=model.config.to_dict(), state_dict=weights_of(model)).save(path)
    return path


def test_training_with_a_teacher_records_it_and_resume_keeps_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIGHTMARK_CACHE", str(tmp_path / "cache"))
    src, data = require_shared("facesynthetics_100"), tmp_path / "train"
    data.mkdir()
    for i in range(2):
        for suffix in (".png", "_ldmks.txt"):
            shutil.copy(src / f"{i:06d}{suffix}", data / f"{i:06d}{suffix}")
    teacher = _teacher_checkpoint(tmp_path / "teacher.pt")
    common = dict(
        train=[str(data)], model="shufflenetv2_x0_5_heatmap", input_size=64, epochs=1, samples_per_epoch=16,
        batch_size=8, workers=0, threads=1, seed=1, ema_decay=0.0, max_steps=1,
    )  # fmt: skip
    train(TrainConfig(out=str(tmp_path / "plain"), **common), progress=False)
    taught = TrainConfig(out=str(tmp_path / "taught"), teacher=str(teacher), **common)
    seen, stepped = [], []  # what the teacher was called with, and what the student trained on
    read, step = LandmarkModel.landmarks, train_mod.train_step

    def spy_read(self, x, *args, **kwargs):
        frozen = not any(q.requires_grad for q in self.parameters())
        seen.append((self.training, torch.is_grad_enabled(), frozen, x.clone()))
        return read(self, x, *args, **kwargs)

    def spy_step(net, codec, opt, x, *args, **kwargs):
        stepped.append(x.clone())
        return step(net, codec, opt, x, *args, **kwargs)

    monkeypatch.setattr(LandmarkModel, "landmarks", spy_read)
    monkeypatch.setattr(train_mod, "train_step", spy_step)
    train(taught, progress=False)
    monkeypatch.setattr(LandmarkModel, "landmarks", read)  # (undo() would also drop LIGHTMARK_CACHE)
    monkeypatch.setattr(train_mod, "train_step", step)
    assert len(seen) == len(stepped) == 1
    training, grad, frozen, x = seen[0]
    assert not training and not grad and frozen  # eval mode, no graph, weights frozen
    assert torch.equal(x, stepped[0])  # the very crops the student trained on
    a = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "taught" / "last.pt", weights_only=True)
    assert b["train_config"]["teacher"] == str(teacher) and a["train_config"]["teacher"] is None
    assert any(not torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])  # it was used
    other = _teacher_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="different teacher"):
        train(TrainConfig(out=str(tmp_path / "taught"), teacher=str(other), **common), resume=True, progress=False)
    with pytest.raises(ConfigError, match="different distill_weight"):
        train(replace(taught, distill_weight=0.5), resume=True, progress=False)
    done = train(replace(taught, max_steps=2), resume=True, progress=False)  # the same teacher: the run goes on
    row = done.history[-1]  # the epoch's log row holds the teacher's term and the labels' apart
    assert row["teacher_loss"] > 0 and row["label_loss"] + row["teacher_loss"] == pytest.approx(row["train_loss"])
    assert "teacher_loss" in (tmp_path / "taught" / "log.csv").read_text().splitlines()[0].split(",")
    _teacher_checkpoint(teacher, seed=4)  # the same path, other weights: another teacher
    with pytest.raises(ConfigError, match="teacher .* has changed"):
        train(replace(taught, max_steps=2), resume=True, progress=False)
    assert torch.load(tmp_path / "taught" / "last.pt", weights_only=True)["epoch"] == 1


def test_teacher_flip_is_the_predictors_guarded_flip_test() -> None:
    """``--teacher-flip`` reads a crop as ``Predictor(flip_test=True)`` does: mirrored too, mapped back, averaged
    where the readings agree; without it, the direct reading alone."""
    from lightmark.engine.predict import Predictor
    from lightmark.engine.train import read_teacher
    from lightmark.models import load_model

    model = load_model("mixed").eval()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)  # whole-pixel crops: the same input for both
    crops[0] = 255 - crops[1]
    x = torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32))
    want = Predictor(model, flip_test=True, backend="torch").predict_crops(crops)
    np.testing.assert_allclose(read_teacher(model, x, flip=True).numpy(), want, atol=1e-3)
    direct = Predictor(model, flip_test=False, backend="torch").predict_crops(crops)
    np.testing.assert_allclose(read_teacher(model, x, flip=False).numpy(), direct, atol=1e-3)
    assert np.abs(want - direct).max() > 0.01  # the mirrored reading changed something
