"""The training loop, top to bottom: data -> model -> AdamW + warm-up/cosine -> EMA -> validate -> checkpoint.

Runs on one process, or on several under ``torchrun`` (DistributedDataParallel, gloo on the CPU, nccl on GPUs).
Every checkpoint carries the model config, the training config, optimiser, scheduler and EMA state; a resumed
run continues from the exact batch where the last checkpoint was written, and each sample is a pure function of
``(seed, epoch, index)``, so interrupted-and-resumed training reproduces an uninterrupted one.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from ..constants import JAW
from ..data.formats import load_dataset
from ..data.training import AugmentConfig, CropJitter, LandmarkTrainSet, build_crop_cache
from ..errors import ConfigError, ModelError
from ..losses import get_loss
from ..models import (
    LandmarkModel,
    create_model,
    load_checkpoint,
    load_model,
    model_config,
    model_summary,
    resolve_model_path,
    save_checkpoint,
)
from ..utils import atomic_write, ensure_dir

COORDINATE_LOSSES = ("wing", "l1", "l2", "smooth_l1")
"""Losses on (B, K, 2) coordinates that ``TrainConfig.loss`` accepts (heatmap losses need heatmap targets)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in every checkpoint)."""

    train: list[str]  # dataset paths (any supported format with landmarks)
    val: str | None = None  # labelled dataset scored after every epoch (challenge NME)
    out: str = "runs/train"
    model: str = "shufflenetv2_x1_0_heatmap"
    input_size: int = 128
    train_weights: list[float] | None = None  # sampling weight of each training set (default: by size)
    jaw_weights: list[float] | None = None  # loss weight of the 17 jaw points of each training set (default 1)
    init: str | None = None  # checkpoint whose weights start the run (fine-tuning); None = random init
    epochs: int = 10
    samples_per_epoch: int = 20_000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 300
    loss: str = "wing"  # on coordinates, in units of 1/128 of the input side
    heatmap_weight: float = 0.05  # KL(softmax(heatmap) || Gaussian at the target), heatmap heads only
    heatmap_sigma: float = 1.5  # heatmap cells
    ema_decay: float = 0.998  # 0 disables the exponential moving average of the weights
    photometric: float = 1.0  # augmentation strength, 0..1
    rotation_deg: float = 30.0
    cache_size: int = 0  # side of the cached loose crops; 0 = 2 x input_size
    context: float = 3.6  # cached crop side / landmark box side (covers a 2.4x crop rotated by 30 degrees)
    workers: int = 1  # DataLoader worker processes
    threads: int = 0  # torch threads (0 = torch's default)
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    checkpoint_minutes: float = 10.0  # also checkpoint mid-epoch this often
    log_every: int = 100  # print a status line every N steps when the progress bar is off
    max_steps: int = 0  # stop early after this many optimiser steps in total (0 = no limit; for tests)

    @property
    def steps_per_epoch(self) -> int:
        return self.samples_per_epoch // (self.batch_size * _world())


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict] = field(default_factory=list)
    best_nme: float = math.inf
    best_path: Path | None = None


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` pairs of one epoch for this rank, from global batch ``start_batch`` (mid-epoch resume).

    Global batch g holds indices [g*B*W, (g+1)*B*W); rank r takes the r-th slice of B of it. The epoch travels
    with each index, so persistent data workers need no per-epoch state (``set_epoch`` moves the sampler on)."""

    def __init__(
        self, steps: int, batch_size: int, start_batch: int = 0, rank: int = 0, world: int = 1, epoch: int = 0
    ) -> None:
        self.steps, self.b, self.start, self.rank, self.world = steps, batch_size, start_batch, rank, world
        self.epoch = epoch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for g in range(self.start, self.steps):
            base = (g * self.world + self.rank) * self.b
            for i in range(base, base + self.b):
                yield (self.epoch, i)

    def __len__(self) -> int:
        return (self.steps - self.start) * self.b


def heatmap_kl(
    hm: torch.Tensor, target_px: torch.Tensor, stride: float, sigma: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """KL(Gaussian target || softmax(hm)): hm (B, K, H, W) logits, target_px (B, K, 2) input pixels, optional
    weight (B, K); mean over (B, K) of weight x per-point KL."""
    b, k, h, w = hm.shape
    ys = (torch.arange(h, dtype=hm.dtype, device=hm.device) + 0.5) * stride - 0.5  # (H,) input px of cell centres
    xs = (torch.arange(w, dtype=hm.dtype, device=hm.device) + 0.5) * stride - 0.5
    s2 = 2.0 * (sigma * stride) ** 2
    gx = torch.exp(-((xs.view(1, 1, w) - target_px[..., :1]) ** 2) / s2)  # (B, K, W)
    gy = torch.exp(-((ys.view(1, 1, h) - target_px[..., 1:]) ** 2) / s2)  # (B, K, H)
    t = gy.unsqueeze(-1) * gx.unsqueeze(-2)  # (B, K, H, W)
    t = t / t.sum((2, 3), keepdim=True).clamp_min(1e-12)
    logp = F.log_softmax(hm.flatten(2), dim=-1).view_as(hm)
    kl = (t * (torch.log(t.clamp_min(1e-12)) - logp)).sum((2, 3))  # (B, K)
    return (kl * weight).mean() if weight is not None else kl.mean()


def train_step(
    net: torch.nn.Module,
    model: LandmarkModel,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    w: torch.Tensor | None = None,
) -> torch.Tensor:
    """One optimiser step. x: (B, 3, S, S) float 0..255, y: (B, K, 2) input px, w: optional (B, K) point weights;
    ``net`` is ``model`` or its DDP wrapper. Coordinate loss in units of 1/128 of the input side, plus the heatmap
    KL for heatmap heads."""
    unit = 128.0 / cfg.input_size
    coords, hm = net(x, return_heatmaps=True)
    loss = get_loss(cfg.loss)(coords * unit, y * unit, w)
    if hm is not None and cfg.heatmap_weight > 0:
        loss = loss + cfg.heatmap_weight * heatmap_kl(hm, y, model.heatmap_stride, cfg.heatmap_sigma, w)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def lr_lambda(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 1% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def ema_update(ema: LandmarkModel, model: LandmarkModel, decay: float) -> None:
    for e, p in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
        if e.dtype.is_floating_point:
            e.lerp_(p, 1.0 - decay)
        else:
            e.copy_(p)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _init_distributed(device: torch.device) -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return True
    return False


def check_config(cfg: TrainConfig) -> None:
    """Refuse impossible options before any data is read or any output written.

    Raises:
        ConfigError: a bad number, unknown loss, or ``train_weights`` that do not match ``train``.
        ModelError: unknown model name, or an input size the model does not take.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if not cfg.train:
        raise ConfigError("no training set given")
    if cfg.batch_size < 1 or cfg.epochs < 1:
        raise ConfigError(f"batch size and epochs must be at least 1, got {cfg.batch_size} and {cfg.epochs}")
    if cfg.samples_per_epoch < cfg.batch_size * world:
        raise ConfigError(
            f"samples per epoch ({cfg.samples_per_epoch}) must be at least the batch size x processes "
            f"({cfg.batch_size} x {world})"
        )
    w = cfg.train_weights
    if w is not None and (len(w) != len(cfg.train) or min(w) < 0 or sum(w) <= 0):
        raise ConfigError(
            f"train weights: expected {len(cfg.train)} non-negative weights (one per training set), got {w}"
        )
    j = cfg.jaw_weights
    if j is not None and (len(j) != len(cfg.train) or not all(math.isfinite(v) and 0 <= v <= 1 for v in j)):
        raise ConfigError(f"jaw weights: expected {len(cfg.train)} weights in [0, 1] (one per training set), got {j}")
    resuming = (Path(cfg.out) / "last.pt").is_file()  # a resumed run takes its weights from last.pt, not --init
    if cfg.init is not None and not resuming and not resolve_model_path(cfg.init).is_file():
        raise ConfigError(f"--init {cfg.init}: no such checkpoint")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0) or not 0 <= cfg.ema_decay < 1:
        raise ConfigError(f"need lr > 0 and 0 <= ema decay < 1, got lr {cfg.lr} and ema decay {cfg.ema_decay}")
    if cfg.loss not in COORDINATE_LOSSES:
        raise ConfigError(f"unknown coordinate loss {cfg.loss!r}; available: {', '.join(COORDINATE_LOSSES)}")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {cfg.device!r}")
    model_config(cfg.model, input_size=cfg.input_size)


# Fields that define the sample stream and the schedule: a resumed run must keep them.
RESUME_KEYS = (
    "train",
    "train_weights",
    "jaw_weights",
    "init",
    "model",
    "input_size",
    "epochs",
    "samples_per_epoch",
    "batch_size",
    "seed",
)


def build_trainset(cfg: TrainConfig, flip_perm: tuple[int, ...], progress: bool = True) -> LandmarkTrainSet:
    """Crop caches of every training set (built once, then reused) wrapped in the augmenting dataset."""
    cache_size = cfg.cache_size or 2 * cfg.input_size
    caches = [
        build_crop_cache(load_dataset(p, require_landmarks=True), cache_size, cfg.context, progress=progress)
        for p in cfg.train
    ]
    augment = AugmentConfig(jitter=CropJitter(rotation_deg=cfg.rotation_deg), photometric=cfg.photometric)
    point_weights = None
    if cfg.jaw_weights is not None:
        point_weights = []
        for cache, jw in zip(caches, cfg.jaw_weights, strict=True):
            pw = np.ones(cache.landmarks.shape[1], np.float32)
            pw[JAW] = jw
            point_weights.append(pw)
    return LandmarkTrainSet(
        caches, cfg.input_size, cfg.samples_per_epoch, cfg.train_weights, augment, flip_perm, cfg.seed, point_weights
    )


def profile_pipeline(cfg: TrainConfig, batches: int = 30) -> dict:
    """Measure images/s of the input pipeline alone (``cfg.workers`` processes) and of full training steps
    (data + forward + backward + AdamW), after one warm-up batch each. Nothing is written."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = create_model(cfg.model, input_size=cfg.input_size)
    trainset = build_trainset(cfg, model.config.flip_perm)
    loader_ips = measure_input_pipeline(trainset, cfg.batch_size, cfg.workers, batches)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sampler = EpochSampler(batches + 1, cfg.batch_size)
    loader = DataLoader(trainset, cfg.batch_size, sampler=sampler, num_workers=cfg.workers)
    model.train()
    t0, n = 0.0, 0
    for i, (x, y, w) in enumerate(loader):
        if i == 1:
            t0 = time.time()
        train_step(model, model, opt, x.float(), y, cfg, w)
        n += x.shape[0] if i >= 1 else 0
    return {
        "loader_images_per_s": round(loader_ips, 1),
        "train_images_per_s": round(n / (time.time() - t0), 1),
        "workers": cfg.workers,
        "threads": torch.get_num_threads(),
        "batch_size": cfg.batch_size,
        "model": cfg.model,
        "input_size": cfg.input_size,
    }


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a model as ``cfg`` says; write ``last.pt``, ``best.pt``, ``log.csv`` and ``curves.png`` to ``cfg.out``."""
    from tqdm import tqdm

    from .evaluate import evaluate

    check_config(cfg)
    device = _device(cfg.device)
    started_dist = _init_distributed(device)
    rank, world = _rank(), _world()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    if rank == 0:
        ensure_dir(out)
        for name in ("last.pt", "best.pt", "log.csv", "curves.png"):  # left by a run killed while writing
            for stale in out.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
    torch.manual_seed(cfg.seed)

    # -- data ---------------------------------------------------------------------------------------------
    model = create_model(cfg.model, input_size=cfg.input_size)
    trainset = build_trainset(cfg, model.config.flip_perm, progress=progress and rank == 0)
    val_set = load_dataset(cfg.val, require_landmarks=True) if cfg.val else None

    # -- model, optimiser, schedule, EMA ------------------------------------------------------------------
    if cfg.init is not None and not (resume and (out / "last.pt").is_file()):  # fine-tuning: trained (EMA) weights
        init = load_model(cfg.init)
        a, b = init.config.to_dict(), model.config.to_dict()
        a.pop("input_size"), b.pop("input_size")  # fully convolutional: weights fit any input size
        if a != b:
            raise ConfigError(f"--init {cfg.init}: its model ({init.config.name}) differs from --model {cfg.model}")
        model.load_state_dict(init.state_dict())
    model.to(device)
    ema = copy.deepcopy(model).eval() if cfg.ema_decay > 0 else None
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
    )
    steps_per_epoch = cfg.steps_per_epoch
    total_steps = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, cfg.warmup_steps, total_steps))

    start_epoch, start_batch, history, best = 0, 0, [], math.inf
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and not last_path.is_file() and rank == 0:
        print(f"--resume: {last_path} does not exist yet, starting from scratch", flush=True)
    if resume and last_path.is_file():
        ck = load_checkpoint(last_path)
        saved = ck.get("train_config") or {}
        changed = [k for k in RESUME_KEYS if k in saved and _plain(getattr(cfg, k)) != saved[k]]
        if changed:
            raise ConfigError(
                f"{last_path}: cannot resume with different {', '.join(changed)} "
                f"(was {', '.join(repr(saved[k]) for k in changed)})"
            )
        try:
            model.load_state_dict(ck["state_dict"])
            if ema is not None:  # the saved average, or the loaded weights when the run had none
                ema.load_state_dict(ck.get("ema_state_dict") or ck["state_dict"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            start_epoch, start_batch = int(ck["epoch"]), int(ck["batch_in_epoch"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            why = f"no {e} entry" if isinstance(e, KeyError) else " ".join(str(e).split())[:200]
            raise ModelError(f"{last_path}: cannot resume from this checkpoint ({why})") from None
        history, best = ck.get("history", []), ck.get("best_nme", math.inf)
        if rank == 0:
            print(f"resumed {last_path} at epoch {start_epoch}, batch {start_batch}")
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    def save(path: Path, epoch: int, batch: int) -> None:
        if rank != 0:
            return
        save_checkpoint(
            path,
            model,
            ema_state_dict={k: v.detach().cpu().clone() for k, v in ema.state_dict().items()} if ema else None,
            optimizer=opt.state_dict(),
            scheduler=sched.state_dict(),
            epoch=epoch,
            batch_in_epoch=batch,
            history=history,
            best_nme=best,
            train_config=_plain(asdict(cfg)),
        )

    if rank == 0:
        info = model_summary(model)
        print(
            f"model {cfg.model}: {info['params'] / 1e6:.2f}M params, {info['size_mb']:.2f} MB float32, "
            f"{info['gmacs']:.3f} GMACs at {cfg.input_size}px; {steps_per_epoch} steps/epoch x {cfg.epochs} epochs, "
            f"world size {world}"
        )

    # -- the loop -----------------------------------------------------------------------------------------
    # Workers are forked once and kept (forking a process whose OpenMP pool is busy can deadlock the child).
    sampler = EpochSampler(steps_per_epoch, cfg.batch_size, start_batch, rank, world, start_epoch)
    loader = DataLoader(
        trainset,
        cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=True,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers else None,
    )
    step = start_epoch * steps_per_epoch + start_batch
    last_ckpt = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch, start_batch)
        net.train()
        t0, seen, loss_sum, n_loss = time.time(), 0, 0.0, 0
        stopped_mid_epoch = False
        bar = tqdm(
            loader,
            total=steps_per_epoch - start_batch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress or rank != 0,
            leave=False,
        )
        for batch_idx, (x, y, w) in enumerate(bar, start=start_batch):
            x, y, w = x.to(device).float(), y.to(device), w.to(device)  # (B, 3, S, S) 0..255, (B, K, 2) px, (B, K)
            loss = train_step(net, model, opt, x, y, cfg, w)
            sched.step()
            step += 1
            if ema is not None:  # warm-up: the average starts short and lengthens to ema_decay
                ema_update(ema, model, min(cfg.ema_decay, (1.0 + step) / (10.0 + step)))
            seen += x.shape[0]
            loss_sum += loss.item()
            n_loss += 1
            bar.set_postfix(loss=f"{loss_sum / n_loss:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if not progress and rank == 0 and cfg.log_every and step % cfg.log_every == 0:
                rate = seen * world / max(time.time() - t0, 1e-9)
                print(f"epoch {epoch + 1} step {step} loss {loss_sum / n_loss:.4f} {rate:.0f} img/s", flush=True)
            if cfg.max_steps and step >= cfg.max_steps:
                stopped_mid_epoch = batch_idx + 1 < steps_per_epoch
                break
            if time.time() - last_ckpt > cfg.checkpoint_minutes * 60 and batch_idx + 1 < steps_per_epoch:
                save(last_path, epoch, batch_idx + 1)
                last_ckpt = time.time()
        if stopped_mid_epoch:  # max_steps inside an epoch: a resume must continue from the next batch
            save(last_path, epoch, batch_idx + 1)
            break
        elapsed = time.time() - t0
        start_batch = 0

        row = {
            "epoch": epoch + 1,
            "step": step,
            "lr": sched.get_last_lr()[0],
            "train_loss": loss_sum / max(1, n_loss),
            "images_per_s": seen * world / max(elapsed, 1e-9),
        }
        if val_set is not None and rank == 0:
            report = evaluate(ema if ema is not None else model, val_set, progress=False)
            row["val_nme"] = report.summary["nme_challenge"]
            row["val_nme_box"] = report.summary["nme_box"]
        history.append(row)
        if "val_nme" in row and row["val_nme"] < best:
            best = row["val_nme"]
            save(best_path, epoch + 1, 0)
        if rank == 0:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
            save(last_path, epoch + 1, 0)
            last_ckpt = time.time()
            _write_log(out, history)
        if cfg.max_steps and step >= cfg.max_steps:
            break

    if val_set is None and rank == 0:
        save(best_path, len(history), 0)
    if started_dist:
        dist.destroy_process_group()
    return TrainResult(out, history, best, best_path if best_path.exists() else None)


def _plain(d):
    """Checkpoint-safe copy of a config (only dict/list/str/int/float/bool/None)."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return d


def _write_log(out: Path, history: list[dict]) -> None:
    keys = sorted(
        {k for row in history for k in row},
        key=lambda k: list(history[-1]).index(k) if k in history[-1] else 99,
    )
    with atomic_write(out / "log.csv") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    from ..viz import plot_training

    plot_training(history, out / "curves.png")


def measure_input_pipeline(
    trainset: LandmarkTrainSet, batch_size: int = 64, workers: int = 1, batches: int = 30
) -> float:
    """Images/s the data loader alone delivers (after one warm-up batch)."""
    sampler = EpochSampler(batches + 1, batch_size)
    loader = DataLoader(trainset, batch_size, sampler=sampler, num_workers=workers)
    it = iter(loader)
    next(it)
    t0 = time.time()
    n = sum(batch[0].shape[0] for batch in it)
    return n / (time.time() - t0)


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike, use_ema: bool = True, **metadata) -> None:
    """Write a slim deployable checkpoint (config + weights (EMA when present) + metadata) from a training one."""
    from ..models import model_from_checkpoint

    ck = load_checkpoint(checkpoint)
    if use_ema and ck.get("ema_state_dict") is not None:
        ck = {**ck, "state_dict": ck["ema_state_dict"]}
    model = model_from_checkpoint(ck, str(checkpoint))
    extra = {"train_config": ck.get("train_config"), "history": ck.get("history"), **metadata}
    for key in ("val_nme", "track"):  # re-exporting a slim checkpoint keeps its figure and track
        if key not in extra and key in ck:
            extra[key] = ck[key]
    if "val_nme" not in extra and math.isfinite(ck.get("best_nme", math.inf)):
        extra["val_nme"] = ck["best_nme"]  # challenge NME of these weights on the training run's --val set
    save_checkpoint(out, model, **_plain(extra))
