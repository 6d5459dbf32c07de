"""Exact resume: training killed with SIGKILL mid-epoch and restarted with ``--resume`` ends with the same weights
as an uninterrupted run (same seed); a ``max_steps`` stop in the middle of an epoch resumes where it stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import require_shared
from lightmark.engine.train import TrainConfig, train
from lightmark.models import create_model

STEPS_PER_EPOCH = 16
BATCH = 8


def _facesynthetics_subset(dst: Path, n: int = 8) -> Path:
    src = require_shared("facesynthetics_100")
    dst.mkdir(parents=True)
    for i in range(n):
        for suffix in (".png", "_ldmks.txt"):
            shutil.copy(src / f"{i:06d}{suffix}", dst / f"{i:06d}{suffix}")
    return dst


def _cli_train(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "lightmark.cli", "train", "--train", str(data),
        "--model", "shufflenetv2_x0_5_heatmap", "--input-size", "64", "--epochs", "2",
        "--samples-per-epoch", str(STEPS_PER_EPOCH * BATCH), "--batch-size", str(BATCH),
        "--workers", "0", "--threads", "1", "--seed", "7", "--quiet", "--out", str(out),
        "--checkpoint-minutes", "0.001",  # a mid-epoch last.pt after (almost) every step
        *extra,
    ]  # fmt: skip


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "LIGHTMARK_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _mid_epoch_position(path: Path) -> tuple[int, int] | None:
    """(epoch, batch_in_epoch) of a mid-epoch checkpoint at ``path``, else None."""
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)  # atomic writes: never half a file
    except (OSError, RuntimeError, EOFError):
        return None  # replaced between the check and the read
    return (ck["epoch"], ck["batch_in_epoch"]) if ck["batch_in_epoch"] > 0 else None


def _assert_same_weights(a_path: Path, b_path: Path) -> None:
    a = torch.load(a_path, map_location="cpu", weights_only=True)
    b = torch.load(b_path, map_location="cpu", weights_only=True)
    assert (a["epoch"], a["batch_in_epoch"]) == (b["epoch"], b["batch_in_epoch"])
    for key in ("state_dict", "ema_state_dict"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}[{k}] differs"


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    data = _facesynthetics_subset(tmp_path / "train")
    full_out, killed_out = tmp_path / "full", tmp_path / "killed"
    # the uninterrupted reference runs at the same time as the run that gets killed (own cache folders)
    full = subprocess.Popen(
        _cli_train(data, full_out), env=_env(tmp_path / "cache_full"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    victim = subprocess.Popen(
        _cli_train(data, killed_out), env=_env(tmp_path / "cache_killed"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        position = None
        while position is None and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            position = _mid_epoch_position(killed_out / "last.pt")
        if position is None:
            pytest.fail(f"no mid-epoch checkpoint before the run ended: {victim.stderr.read()[-2000:]}")
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
        killed_at = _mid_epoch_position(killed_out / "last.pt")  # a later one may have landed before the kill
        assert killed_at is not None and killed_at[1] > 0

        resumed = subprocess.run(
            _cli_train(data, killed_out, "--resume"), env=_env(tmp_path / "cache_killed"),
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert f"at epoch {killed_at[0]}, batch {killed_at[1]}" in resumed.stdout
        out, err = full.communicate(timeout=180)
        assert full.returncode == 0, err[-2000:]
    finally:
        for proc in (full, victim):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    _assert_same_weights(full_out / "last.pt", killed_out / "last.pt")
    assert not list(killed_out.glob(".*.tmp")), "temporary files left in the run folder"


def test_max_steps_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path, monkeypatch) -> None:
    """A stop after 3 of 4 steps of the first epoch checkpoints (epoch 0, batch 3), not (epoch 1, batch 0)."""
    monkeypatch.setenv("LIGHTMARK_CACHE", str(tmp_path / "cache"))
    data = _facesynthetics_subset(tmp_path / "train")
    common = dict(
        train=[str(data)], model="shufflenetv2_x0_5_heatmap", input_size=64, epochs=2,
        samples_per_epoch=4 * BATCH, batch_size=BATCH, warmup_steps=2, workers=0, threads=1, seed=5,
    )  # fmt: skip
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        rng = torch.random.get_rng_state()
        train(TrainConfig(out=str(tmp_path / "full"), **common), progress=False)
        # the run's threads (1) and seed (5) were its own: the caller's are back
        assert torch.get_num_threads() == 2 and torch.equal(torch.random.get_rng_state(), rng)
        train(TrainConfig(out=str(tmp_path / "split"), max_steps=3, **common), progress=False)
        ck = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
        assert (ck["epoch"], ck["batch_in_epoch"]) == (0, 3)
        train(TrainConfig(out=str(tmp_path / "split"), **common), resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)
    _assert_same_weights(tmp_path / "full" / "last.pt", tmp_path / "split" / "last.pt")


def _tiny(tmp_path: Path, **kw) -> TrainConfig:
    data = _facesynthetics_subset(tmp_path / "train", n=2)
    return TrainConfig(
        train=[str(data)], out=str(tmp_path / "run"), model="shufflenetv2_x0_5_heatmap", input_size=64, epochs=1,
        samples_per_epoch=2 * BATCH, batch_size=BATCH, workers=0, seed=1, **kw,
    )  # fmt: skip


def test_resume_without_last_checkpoint_is_an_error(tmp_path: Path) -> None:
    from lightmark.errors import ConfigError

    cfg = TrainConfig(train=["unused"], out=str(tmp_path / "nothing_here"))
    with pytest.raises(ConfigError, match="last.pt does not exist"):
        train(cfg, resume=True, progress=False)
    assert not (tmp_path / "nothing_here").exists()  # refused before anything was written


@pytest.mark.parametrize("missing", ["train_config", "ema_state_dict", "optimizer"])
def test_resume_refuses_a_checkpoint_that_lacks_what_the_run_needs(tmp_path: Path, monkeypatch, missing: str) -> None:
    """No silent fall-backs: no recorded config (no resume check possible), no EMA for an EMA run (it would
    restart the average from raw weights), no optimiser state."""
    from lightmark.errors import ModelError
    from lightmark.models import load_checkpoint

    monkeypatch.setenv("LIGHTMARK_CACHE", str(tmp_path / "cache"))
    cfg = _tiny(tmp_path, max_steps=1)
    threads = torch.get_num_threads()
    try:
        train(cfg, progress=False)
        last = Path(cfg.out) / "last.pt"
        ck = load_checkpoint(last)
        setattr(ck, missing, None)
        ck.save(last)
        with pytest.raises(ModelError, match=missing.replace("_", "[_ ]").replace("train", "train(ing)?")):
            train(cfg, resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["mobilenet_x1_0_heatmap", "shufflenetv2_x0_5_heatmap", "resnet18_regression"])
def test_channels_last_computes_what_nchw_computes(name: str) -> None:
    """The memory layout is a speed choice only: one training forward and backward in NHWC gives NCHW's outputs,
    and each parameter's gradient within 5 % (measured: at most 1.7 %, on batch-norm weights whose gradients are
    1e-5 of the largest; a layout mistake scrambles channels and misses by 100 %). Gradients that are zero but for
    rounding (biases before a batch norm: below 1e-6 of the largest in NCHW) are left out: Adam turns their noise
    into full steps, which is also why whole runs in the two layouts cannot be compared weight by weight."""
    torch.manual_seed(0)
    model = create_model(name).train()
    x = torch.rand(4, 3, 128, 128) * 255
    outs, grads = [], []
    for fmt in (torch.contiguous_format, torch.channels_last):
        model.to(memory_format=fmt).zero_grad()
        out = model(x.contiguous(memory_format=fmt))
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-3, atol=1e-3 * float(outs[0].abs().max()))
    scale = max(float(g.abs().max()) for g in grads[0].values())
    compared = [n for n, g in grads[0].items() if g.abs().max() > 1e-6 * scale]
    assert len(compared) > 0.8 * len(grads[0])
    for n in compared:
        assert float((grads[1][n] - grads[0][n]).norm() / grads[0][n].norm()) < 0.05, n


def test_a_channels_last_run_trains_nhwc_and_writes_nchw_checkpoints(tmp_path: Path, monkeypatch) -> None:
    """A channels-last run (the default) feeds NHWC batches to NHWC convolutions, an NCHW run NCHW ones; both write
    contiguous weights and optimiser state (a file does not depend on the layout it was trained in), record the
    layout, and reach the same losses to rounding."""
    import lightmark.engine.train as train_module

    monkeypatch.setenv("LIGHTMARK_CACHE", str(tmp_path / "cache"))
    data = _facesynthetics_subset(tmp_path / "train", n=4)
    common = dict(
        train=[str(data)], model="shufflenetv2_x0_5_heatmap", input_size=64, epochs=1,
        samples_per_epoch=3 * BATCH, batch_size=BATCH, warmup_steps=2, workers=0, threads=1, seed=3,
    )  # fmt: skip
    seen, step = [], train_module.train_step

    def spy(net, codec, opt, x, *args, **kwargs):
        conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        nhwc = torch.channels_last
        seen.append((x.is_contiguous(memory_format=nhwc), conv.weight.is_contiguous(memory_format=nhwc)))
        return step(net, codec, opt, x, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", spy)
    losses = {}
    for layout in ("nhwc", "nchw"):
        seen.clear()
        cfg = TrainConfig(out=str(tmp_path / layout), channels_last=layout == "nhwc", **common)
        losses[layout] = train(cfg, progress=False).history[-1]["train_loss"]
        assert seen == [(layout == "nhwc", layout == "nhwc")] * 3
        ck = torch.load(tmp_path / layout / "last.pt", weights_only=True)
        assert ck["train_config"]["channels_last"] is (layout == "nhwc")
        tensors = [*ck["state_dict"].values(), *ck["ema_state_dict"].values()]
        tensors += [v for st in ck["optimizer"]["state"].values() for v in st.values() if torch.is_tensor(v)]
        assert all(v.is_contiguous() for v in tensors)
    assert losses["nhwc"] == pytest.approx(losses["nchw"], rel=1e-2)


def test_resumed_optimiser_state_takes_its_parameters_layout() -> None:
    """A checkpoint's contiguous Adam moments, loaded into a channels-last run, are laid out like their parameters."""
    from lightmark.engine.train import _contiguous, _match_layouts

    conv = torch.nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(conv.parameters())
    conv(torch.rand(1, 3, 8, 8)).sum().backward()
    opt.step()
    saved = _contiguous(opt.state_dict())
    assert all(v.is_contiguous() for st in saved["state"].values() for v in st.values() if torch.is_tensor(v))
    fresh = torch.optim.AdamW(conv.parameters())
    fresh.load_state_dict(saved)
    _match_layouts(fresh)
    moments = fresh.state[conv.weight]
    assert moments["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(moments["exp_avg"], opt.state[conv.weight]["exp_avg"], rtol=0, atol=0)


def test_each_torchrun_process_takes_its_own_gpu(monkeypatch) -> None:
    """Under torchrun a bare ``cuda`` is the GPU of the process's LOCAL_RANK, not GPU 0 for every process; a single
    process, an explicit index and the CPU are left as given (no CUDA needed: only device names are built)."""
    from lightmark.engine.train import _device

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _device("cuda") == torch.device("cuda", 1)
    assert _device("cuda:0") == torch.device("cuda", 0)
    assert _device("cpu") == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert _device("cuda") == torch.device("cuda")
