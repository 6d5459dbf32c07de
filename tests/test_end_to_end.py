"""End to end on real files: train a few steps, evaluate, predict, write and check a submission; the CLI;
two-process DistributedDataParallel training through torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared
from lightmark.cli import main
from lightmark.data.formats import load_dataset
from lightmark.engine.evaluate import evaluate
from lightmark.engine.train import TrainConfig, train
from lightmark.models import load_checkpoint, load_model
from lightmark.submission import check_submission


def _subset(src: Path, dst: Path, n: int, pattern: str = "*.png") -> Path:
    """Copy the first n samples of a FaceSynthetics-format folder (image + labels) into dst."""
    dst.mkdir(parents=True)
    for img in sorted(src.glob(pattern))[: n * 2]:
        if img.stem.endswith("_seg"):
            continue
        shutil.copy(img, dst / img.name)
        for extra in (f"{img.stem}_ldmks.txt",):
            shutil.copy(src / extra, dst / extra)
    return dst


def _val_subset(dst: Path, n: int = 12) -> Path:
    """The first n validation crops with an annot.pkl the test writes."""
    import pickle

    val = load_dataset(require_shared("aflw2000/val"))
    dst.mkdir(parents=True)
    names = val.names[:n]
    for s in val.samples[:n]:
        shutil.copy(s.image_path, dst / s.name)
    ys = [[(float(x), float(y)) for x, y in s.landmarks] for s in val.samples[:n]]
    (dst / "annot.pkl").write_bytes(pickle.dumps((names, ys)))
    shutil.copy(require_shared("aflw2000/val_yaw.csv"), dst / "yaw.csv")
    return dst


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    train_dir = _subset(require_shared("facesynthetics_100"), root / "train", 8)
    val_dir = _val_subset(root / "val")
    assert train_dir == root / "train"  # where _tiny_config looks
    cfg = _tiny_config(root, root / "run", val=str(val_dir), epochs=2, samples_per_epoch=64, threads=0)
    with pytest.MonkeyPatch.context() as mp:  # this run's crop cache, not the user's; the variable restored after
        mp.setenv("LIGHTMARK_CACHE", str(root / "cache"))
        result = train(cfg, progress=False)
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["val_nme"])
    return root


def test_training_writes_its_outputs(tiny_run: Path) -> None:
    run = tiny_run / "run"
    for f in ("last.pt", "best.pt", "log.csv", "curves.png"):
        assert (run / f).is_file(), f
    model = load_model(run / "best.pt")
    assert model.config.input_size == 64


def test_evaluate_predict_submit(tiny_run: Path, tmp_path: Path) -> None:
    model = tiny_run / "run" / "best.pt"
    report = evaluate(model, tiny_run / "val", progress=False)
    from lightmark.models import load_checkpoint

    assert report.summary["n"] == 12  # the run's own validation set: the figure it recorded for best.pt
    assert report.summary["nme_challenge"] == pytest.approx(load_checkpoint(model).best_nme, abs=1e-4)
    report.save_json(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    for key in ("nme_challenge", "nme_box", "fr_10", "auc_10", "n", "yaw_0_30", "yaw_30_60", "yaw_60_90"):
        assert key in data, key  # yaw bins: the subset's yaw comes from val_yaw.csv
    plots = report.save_plots(tmp_path / "plots")
    assert all(p.is_file() for p in plots)

    out = tmp_path / "solution.txt"
    code = main(
        [
            "predict",
            str(tiny_run / "val"),
            "--model",
            str(model),
            "--out",
            str(out),
            "--zip",
            str(tmp_path / "sub.zip"),
            "--quiet",
        ]
    )
    assert code == 0
    rep = check_submission(tmp_path / "sub.zip", tiny_run / "val")
    assert rep.ok and rep.rows == 12, rep.problems
    assert main(["check-submission", str(out), "--images", str(tiny_run / "val")]) == 0


def test_evaluate_latency_is_the_mean_over_the_images(tiny_run: Path, capsys) -> None:
    """``evaluate --latency`` times every image in turn (up to 200) and prints the mean, as the results table."""
    args = ["evaluate", "--data", str(tiny_run / "val"), "--model", str(tiny_run / "run" / "best.pt")]
    assert main([*args, "--latency", "--quiet"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("latency:"))
    assert " ms mean over 12 images (median " in line and line.endswith("), 1 thread"), line


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code = main(["evaluate", "--data", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "missing" in err


def test_cli_help_lists_commands(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "evaluate", "predict", "check-submission", "export", "synth"):
        assert cmd in out


def _tiny_config(tiny_run: Path, out: Path, **overrides) -> TrainConfig:
    """A seconds-long training run on the 8 copied FaceSynthetics samples."""
    base = dict(
        train=[str(tiny_run / "train")],
        model="shufflenetv2_x0_5_heatmap",
        input_size=64,
        samples_per_epoch=32,
        batch_size=16,
        warmup_steps=2,
        workers=0,
        threads=1,
        out=str(out),
    )
    return TrainConfig(**{**base, **overrides})


def test_resume_continues_from_last_checkpoint(tiny_run: Path, tmp_path: Path) -> None:
    """Two epochs in one go == one epoch, stop, resume for the second (same seed): identical weights."""
    import torch

    full = train(_tiny_config(tiny_run, tmp_path / "full", epochs=2), progress=False)
    train(_tiny_config(tiny_run, tmp_path / "split", epochs=2, max_steps=2), progress=False)
    train(_tiny_config(tiny_run, tmp_path / "split", epochs=2), resume=True, progress=False)
    a = torch.load(full.out_dir / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_torchrun_two_processes(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "lightmark.cli",
        "train",
        "--train",
        str(tiny_run / "train"),
        "--model",
        "shufflenetv2_x0_5_heatmap",
        "--input-size",
        "64",
        "--epochs",
        "1",
        "--samples-per-epoch",
        "64",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--threads",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "world size 2" in proc.stdout
    assert (out / "last.pt").is_file()


def test_resume_refuses_a_changed_schedule(tiny_run: Path, tmp_path: Path) -> None:
    from lightmark.errors import ConfigError

    train(_tiny_config(tiny_run, tmp_path / "r", epochs=1), progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        train(_tiny_config(tiny_run, tmp_path / "r", epochs=1, batch_size=8), resume=True, progress=False)


def test_init_starts_from_the_given_weights(tiny_run: Path, tmp_path: Path) -> None:
    """--init loads the checkpoint's (EMA) weights: one step at a negligible learning rate leaves them in place,
    while a run without --init starts elsewhere. A different architecture is refused."""
    import torch

    from lightmark.errors import ConfigError

    src = tiny_run / "run" / "best.pt"
    ref = load_model(src).state_dict()
    common = dict(epochs=1, max_steps=1, lr=1e-12, ema_decay=0.0, weight_decay=0.0)
    train(_tiny_config(tiny_run, tmp_path / "ft", init=str(src), **common), progress=False)
    train(_tiny_config(tiny_run, tmp_path / "scratch", seed=5, **common), progress=False)
    ft = load_model(tmp_path / "ft" / "last.pt", use_ema=False).state_dict()
    scratch = load_model(tmp_path / "scratch" / "last.pt", use_ema=False).state_dict()
    conv = [k for k, v in ref.items() if v.dtype.is_floating_point and v.ndim == 4]
    assert all(torch.allclose(ft[k], ref[k], atol=1e-6) for k in conv)
    assert not all(torch.allclose(scratch[k], ref[k], atol=1e-3) for k in conv)
    with pytest.raises(ConfigError, match="differs"):
        train(_tiny_config(tiny_run, tmp_path / "bad", init=str(src), model="shufflenetv2_x1_0_heatmap"))


def test_a_fine_tune_is_read_like_the_model_it_starts_from(tiny_run: Path, tmp_path: Path) -> None:
    """A checkpoint whose test-time defaults differ from a fresh model's (the shipped protocol model reads with flip
    test) is still a valid --init, and the fine-tune keeps those defaults (TEST_TIME_FIELDS)."""
    from lightmark.models.config import TEST_TIME_FIELDS

    assert TEST_TIME_FIELDS == ("flip_test",)
    ckpt = load_checkpoint(tiny_run / "run" / "best.pt")
    ckpt.config = {**ckpt.config, "flip_test": True}
    ckpt.save(tmp_path / "flip.pt")
    common = dict(epochs=1, max_steps=1, ema_decay=0.0)
    train(_tiny_config(tiny_run, tmp_path / "ft", init=str(tmp_path / "flip.pt"), **common), progress=False)
    assert load_model(tmp_path / "ft" / "last.pt").config.flip_test
    train(_tiny_config(tiny_run, tmp_path / "ft0", init=str(tiny_run / "run" / "best.pt"), **common), progress=False)
    assert not load_model(tmp_path / "ft0" / "last.pt").config.flip_test


def test_jaw_weights_are_checked_and_used(tiny_run: Path, tmp_path: Path) -> None:
    from lightmark.engine.train import build_trainset, check_config
    from lightmark.errors import ConfigError

    with pytest.raises(ConfigError, match="jaw weights"):
        check_config(_tiny_config(tiny_run, tmp_path / "a", jaw_weights=[0.0, 1.0]))
    with pytest.raises(ConfigError, match="jaw weights"):
        check_config(_tiny_config(tiny_run, tmp_path / "a", jaw_weights=[2.0]))
    ts = build_trainset(_tiny_config(tiny_run, tmp_path / "a", jaw_weights=[0.25]), tuple(range(68)), progress=False)
    _, _, w = ts[(0, 0)]
    assert w[:17].tolist() == [0.25] * 17 and w[17:].tolist() == [1.0] * 51


def test_train_schemes_read_each_set_in_its_own_label_files(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model of scheme ibug68_fs trained on FaceSynthetics' own _ldmks.txt: --train-schemes ibug68 reads them;
    without it the set's (missing) _ldmks_ibug68_fs.txt files are looked for; a scheme of another layout is refused."""
    from lightmark.data.formats import ldmks_suffix
    from lightmark.engine.train import build_trainset, check_config
    from lightmark.errors import ConfigError

    monkeypatch.setenv("LIGHTMARK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="train schemes"):
        check_config(_tiny_config(tiny_run, tmp_path / "a", train_schemes=["ibug68", "ibug68"]))
    with pytest.raises(ConfigError, match="train scheme wflw98"):
        check_config(_tiny_config(tiny_run, tmp_path / "a", scheme="ibug68_fs", train_schemes=["wflw98"]))
    cfg = _tiny_config(tiny_run, tmp_path / "a", scheme="ibug68_fs", train_schemes=["ibug68"])
    check_config(cfg)
    ts = build_trainset(cfg, tuple(range(68)), progress=False)
    plain = build_trainset(_tiny_config(tiny_run, tmp_path / "a"), tuple(range(68)), progress=False)
    assert np.array_equal(ts.caches[0].landmarks, plain.caches[0].landmarks)
    assert not list((tiny_run / "train").glob("*" + ldmks_suffix("ibug68_fs")))
    with pytest.raises(Exception, match="ibug68_fs"):
        build_trainset(_tiny_config(tiny_run, tmp_path / "a", scheme="ibug68_fs"), tuple(range(68)), progress=False)


def test_export_keeps_the_validation_figure_and_records_the_track(tiny_run: Path, tmp_path: Path) -> None:
    import torch

    from lightmark.engine.export import export_pt
    from lightmark.models import load_checkpoint

    best = load_checkpoint(tiny_run / "run" / "best.pt")
    export_pt(tiny_run / "run" / "best.pt", tmp_path / "slim.pt")
    slim = load_checkpoint(tmp_path / "slim.pt")
    assert slim.optimizer is None and slim.ema_state_dict is None  # deployable weights only: the EMA
    assert all(torch.equal(slim.state_dict[k], v) for k, v in best.ema_state_dict.items())
    export_pt(tmp_path / "slim.pt", tmp_path / "again.pt", track="mixed")  # re-export of a slim checkpoint
    again = load_checkpoint(tmp_path / "again.pt")
    assert again.val_nme == pytest.approx(best.best_nme) and again.track == "mixed"
    assert again.train_config == best.train_config
    export_pt(tmp_path / "again.pt", tmp_path / "third.pt")  # no new track: the recorded one is kept
    assert load_checkpoint(tmp_path / "third.pt").track == "mixed"


def test_the_model_defaults_to_the_init_checkpoints_architecture(tiny_run: Path) -> None:
    from lightmark.engine.train import DEFAULT_MODEL, TrainConfig, with_model
    from lightmark.models import load_checkpoint

    src = str(tiny_run / "run" / "best.pt")
    arch = load_checkpoint(src).config["name"]
    assert arch != DEFAULT_MODEL  # else the test could not tell the two rules apart
    assert with_model(TrainConfig(train=["x"], init=src)).model == arch
    assert with_model(TrainConfig(train=["x"])).model == DEFAULT_MODEL
    assert with_model(TrainConfig(train=["x"], init=src, model="resnet18_regression")).model == "resnet18_regression"


def test_init_accepts_a_shipped_track_name_and_rejects_bad_jaw_weights(tiny_run: Path, tmp_path: Path) -> None:
    from lightmark.engine.train import check_config
    from lightmark.errors import ConfigError

    check_config(_tiny_config(tiny_run, tmp_path / "t", init="protocol", model="shufflenetv2_x1_0_heatmap"))
    with pytest.raises(ConfigError, match="no such checkpoint"):
        check_config(_tiny_config(tiny_run, tmp_path / "t", init=str(tmp_path / "missing.pt")))
    with pytest.raises(ConfigError, match="jaw weights"):
        check_config(_tiny_config(tiny_run, tmp_path / "t", jaw_weights=[float("nan")]))
