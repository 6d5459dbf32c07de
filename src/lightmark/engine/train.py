"""The training loop, top to bottom: data -> model -> AdamW + warm-up/cosine -> EMA -> validate -> checkpoint.

Runs on one process, or on several under ``torchrun`` (DistributedDataParallel, gloo on the CPU, nccl on GPUs).
Every checkpoint carries the model config, the training config, optimiser, scheduler and EMA state; a resumed
run continues from the exact batch where the last checkpoint was written, and each sample is a pure function of
``(seed, epoch, index)``, so interrupted-and-resumed training reproduces an uninterrupted one.
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from ..choices import CoordinateLoss, Head, HeatmapLoss
from ..codecs import Codec
from ..constants import FINE_SHIFT_UP, FINE_SIDE_RATIO
from ..data.formats import load_dataset, read_name_lists, without
from ..data.training import AugmentConfig, LandmarkTrainSet, build_crop_cache
from ..data.transforms import GAMMA_PROBABILITY, CropJitter
from ..errors import ConfigError, ModelError
from ..losses import get_loss
from ..models import (
    Checkpoint,
    LandmarkModel,
    create_model,
    load_checkpoint,
    load_model,
    model_config,
    model_summary,
    resolve_model_path,
    weights_of,
)
from ..models.config import TEST_TIME_FIELDS, ModelConfig
from ..models.landmark_model import head_state_to_stride4
from ..schemes import DEFAULT_SCHEME, LandmarkScheme, get_scheme
from ..utils import atomic_write, ensure_dir, scoped_threads

DEFAULT_MODEL = "shufflenetv2_x1_0_heatmap"  # what a run trains when neither --model nor --init says


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in every checkpoint)."""

    train: list[str] = field(metadata={"help": "training datasets (any supported format with landmarks)"})
    val: str | None = field(
        default=None, metadata={"help": "labelled validation set, scored after every epoch (challenge NME)"}
    )
    out: str = field(default="runs/train", metadata={"help": "run folder (checkpoints, log.csv, curves.png)"})
    model: str | None = field(
        default=None,
        metadata={
            "help": f"registered model name (see `lightmark models`; default: the --init checkpoint's, else "
            f"{DEFAULT_MODEL})"
        },
    )
    input_size: int = field(default=128, metadata={"help": "square input side in pixels (multiple of 32)"})
    scheme: str = field(
        default=DEFAULT_SCHEME,
        metadata={
            "help": "landmark scheme the model predicts and every set is read in (lightmark.schemes: ibug68 = 3D "
            "jaw, ibug68_2d = visible-outline jaw, wflw98 = WFLW's 98 points)"
        },
    )
    val_scheme: str | None = field(
        default=None,
        metadata={
            "help": "landmark scheme the --val set is labelled in (default: --scheme); a wflw98 model is scored on "
            "68-point labels (ibug68) through its 68-point subset"
        },
    )
    train_schemes: list[str] | None = field(
        default=None,
        metadata={
            "help": "landmark scheme whose label files each training set is read from (one per set; default "
            "--scheme): FaceSynthetics' own _ldmks.txt (ibug68) beside renders labelled ibug68_fs; each must have "
            "--scheme's points and mirror pairs"
        },
    )
    train_weights: list[float] | None = field(
        default=None, metadata={"help": "sampling weight of each training set (default: by size)"}
    )
    jaw_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "loss weight 0..1 of the jaw points (the scheme's jaw) of each training set (default 1; 0 for "
            "300-W's contour jaw)"
        },
    )
    exclude: list[str] | None = field(
        default=None,
        metadata={
            "help": "files listing image names (one per line, # comments) that no training set may use, "
            "e.g. splits/helen_holdout_170.txt"
        },
    )
    init: str | None = field(
        default=None,
        metadata={
            "help": "start from this checkpoint's weights (fine-tuning; EMA weights when present; default: random)"
        },
    )
    teacher: str | None = field(
        default=None,
        metadata={
            "help": "checkpoint or shipped model whose points on each training crop are a second target "
            "(knowledge distillation; same input size and landmark scheme; every point, the jaw too)"
        },
    )
    distill_weight: float = field(
        default=1.0, metadata={"help": "weight of the coordinate loss to the --teacher's points (0 = off)"}
    )
    teacher_flip: bool = field(
        default=False,
        metadata={
            "help": "the --teacher reads each crop mirrored too, as predict's guarded flip test does (the two "
            "readings averaged where they agree), at twice the teacher's cost"
        },
    )
    epochs: int = field(default=10, metadata={"help": "number of epochs"})
    samples_per_epoch: int = field(default=20_000, metadata={"help": "augmented samples drawn per epoch"})
    batch_size: int = field(default=64, metadata={"help": "images per optimiser step (per process under torchrun)"})
    lr: float = field(default=2e-3, metadata={"help": "peak AdamW learning rate (linear warm-up, cosine decay)"})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=300, metadata={"help": "optimiser steps of the linear learning-rate warm-up"})
    loss: CoordinateLoss = field(
        default=CoordinateLoss.WING, metadata={"help": "coordinate loss (in units of 1/128 of the input side)"}
    )
    heatmap_weight: float = field(
        default=0.05, metadata={"help": "weight of the codec's heatmap loss (heatmap heads only)"}
    )
    heatmap_sigma: float | None = field(
        default=None, metadata={"help": "target Gaussian's sigma in heatmap cells (default: the model config's)"}
    )
    heatmap_loss: HeatmapLoss | None = field(
        default=None, metadata={"help": "heatmap loss (default: the model config's)"}
    )
    heatmap_stride: int | None = field(
        default=None,
        metadata={
            "help": "heatmap side = input size / stride: 4 or 8 (default: the model config's); --init from a "
            "stride-8 model keeps its head's layers and adds the stride-4 ones"
        },
    )
    ema_decay: float = field(default=0.998, metadata={"help": "EMA decay of the weights (0 = off)"})
    photometric: float = field(default=1.0, metadata={"help": "photometric augmentation strength 0..1"})
    gamma_probability: float = field(
        default=GAMMA_PROBABILITY,
        metadata={"help": "chance 0..1 of a random gamma (0.6-1.6) per training crop, before --photometric scaling"},
    )
    rotation_deg: float = field(default=30.0, metadata={"help": "max random rotation in degrees"})
    wide_fraction: float = field(
        default=0.0,
        metadata={
            "help": "share 0..1 of the non-fine crops drawn from the wide framing (face 1/4 to nearly all of the "
            "crop, off centre, any roll: the coarse pass of two-pass prediction); the rest follow the challenge's"
        },
    )
    fine_fraction: float = field(
        default=0.0,
        metadata={
            "help": "share 0..1 of crops framed like the fine pass (upright, tight); > 0 makes the model two-pass"
        },
    )
    cache_size: int = field(
        default=0, metadata={"help": "side of the cached loose crops in pixels (0 = 2 x input size)"}
    )
    context: float = field(
        default=3.6,
        metadata={"help": "cached crop side / landmark box side (covers a 2.4x crop rotated by 30 degrees)"},
    )
    workers: int = field(default=1, metadata={"help": "data loader worker processes (0 = in the main process)"})
    threads: int = field(default=0, metadata={"help": "torch threads (0 = torch's default)"})
    channels_last: bool = field(
        default=True,
        metadata={
            "help": "train with images and convolution weights in channels-last (NHWC) memory layout: the same "
            "network, 1.1-1.8x the training images/s of NCHW on the CPUs measured (docs/speed.md; not measured on a "
            "GPU)"
        },
    )
    device: str = field(default="auto", metadata={"help": "where to train"})
    seed: int = field(default=0, metadata={"help": "seed of the sample stream and the initial weights"})
    checkpoint_minutes: float = field(default=10.0, metadata={"help": "also write last.pt mid-epoch this often"})
    log_every: int = field(
        default=100, metadata={"help": "print a status line every N steps when the progress bar is off"}
    )
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimiser steps in total (0 = no limit)"})

    def __post_init__(self) -> None:
        self.loss = CoordinateLoss.parse(self.loss, "coordinate loss")  # a ConfigError listing the known losses
        if self.heatmap_loss is not None:
            self.heatmap_loss = HeatmapLoss.parse(self.heatmap_loss, "heatmap loss")

    @property
    def steps_per_epoch(self) -> int:
        return self.samples_per_epoch // (self.batch_size * _world())


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict] = field(default_factory=list)
    best_nme: float = math.inf
    best_path: Path | None = None


@dataclass
class Run:
    """Where a run executes: device, process rank and world size, output folder."""

    device: torch.device
    rank: int
    world: int
    out: Path
    started_dist: bool  # this call initialised torch.distributed (and tears it down)

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainState:
    """Everything the loop changes; a checkpoint saves and restores exactly this."""

    model: LandmarkModel
    ema: LandmarkModel | None
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    epoch: int = 0  # the epoch in progress (0-based)
    batch: int = 0  # the next batch of that epoch
    step: int = 0  # optimiser steps so far
    history: list[dict] = field(default_factory=list)
    best: float = math.inf

    def eval_model(self) -> LandmarkModel:
        """The weights that are evaluated and deployed: the EMA when the run keeps one (as Checkpoint.weights)."""
        return self.ema if self.ema is not None else self.model


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


class StepLoss(NamedTuple):
    """One optimiser step's loss (detached scalars): the total it minimised and, within it, the teacher's term
    (``distill_weight`` x the coordinate loss to the teacher's points; 0 without a teacher)."""

    total: torch.Tensor
    teacher: torch.Tensor


def train_step(
    net: torch.nn.Module,
    codec: Codec,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    w: torch.Tensor | None = None,
    teacher_points: torch.Tensor | None = None,
) -> StepLoss:
    """One optimiser step. x: (B, 3, S, S) float 0..255, y: (B, K, 2) input px, w: optional (B, K) point weights;
    ``net`` is the model or its DDP wrapper. Coordinate loss (through the codec's differentiable decoding) in units
    of 1/128 of the input side, plus ``heatmap_weight`` x the codec's own loss (the heatmap term), plus
    ``distill_weight`` x the coordinate loss to ``teacher_points`` (B, K, 2) input px, every point weighted 1."""
    unit = 128.0 / cfg.input_size
    coord_loss = get_loss(cfg.loss)
    raw = net(x)  # (B, K, h, w) heatmap logits or (B, K, 2) normalised coordinates
    points = codec.decode_train(raw)  # (B, K, 2) input px
    loss = coord_loss(points * unit, y * unit, w)
    if cfg.heatmap_weight > 0:
        loss = loss + cfg.heatmap_weight * codec.loss(raw, y, w)
    taught = torch.zeros((), device=loss.device)
    if teacher_points is not None and cfg.distill_weight > 0:
        taught = cfg.distill_weight * coord_loss(points * unit, teacher_points * unit, None)
        loss = loss + taught
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return StepLoss(loss.detach(), taught.detach())


def memory_format(cfg: TrainConfig) -> torch.memory_format:
    """The memory layout of a run's images and convolution weights (``cfg.channels_last``)."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


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


def ema_decay_at(step: int, decay: float) -> float:
    """EMA warm-up: the average starts short and lengthens to ``decay``."""
    return min(decay, (1.0 + step) / (10.0 + step))


def _device(name: str) -> torch.device:
    """The run's device: ``auto`` is CUDA when there is one; under torchrun each process takes the GPU of its
    ``LOCAL_RANK`` (a bare ``cuda`` would put every process on GPU 0)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _init_distributed(device: torch.device) -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":  # bound to this process's GPU (:func:`_device`), not the current device (GPU 0)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
        return True
    return False


def with_model(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``model`` filled in: as given, else the architecture of the ``init`` checkpoint (so that
    ``--init protocol`` fine-tunes the shipped protocol model whatever its network), else :data:`DEFAULT_MODEL`."""
    if cfg.model is not None:
        return cfg
    name = DEFAULT_MODEL
    if cfg.init is not None and resolve_model_path(cfg.init).is_file():
        name = load_checkpoint(resolve_model_path(cfg.init)).config["name"]
    return replace(cfg, model=name)


def check_config(cfg: TrainConfig, resume: bool = False) -> None:
    """Refuse impossible options before any data is read or any output written.

    Raises:
        ConfigError: a bad number, unknown loss, ``train_weights`` that do not match ``train``, or ``resume``
            without a ``last.pt`` to resume from.
        ModelError: unknown model name, or an input size the model does not take.
    """
    cfg = with_model(cfg)
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
    _check_set_weights(cfg)
    get_scheme(cfg.scheme)  # ConfigError naming the known schemes
    if cfg.val_scheme is not None:
        from .evaluate import in_scheme

        in_scheme(np.zeros((0, get_scheme(cfg.scheme).num_points, 2)), cfg.scheme, cfg.val_scheme)  # a map exists
    read_name_lists(cfg.exclude or [])
    last = Path(cfg.out) / "last.pt"
    if resume and not last.is_file():
        raise ConfigError(f"--resume: {last} does not exist (start the run without --resume)")
    if cfg.init is not None and not resume and not resolve_model_path(cfg.init).is_file():
        raise ConfigError(f"--init {cfg.init}: no such checkpoint")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0) or not 0 <= cfg.ema_decay < 1:
        raise ConfigError(f"need lr > 0 and 0 <= ema decay < 1, got lr {cfg.lr} and ema decay {cfg.ema_decay}")
    if not (0 <= cfg.fine_fraction <= 1 and 0 <= cfg.wide_fraction <= 1):
        raise ConfigError(f"fine and wide fractions must be in [0, 1], got {cfg.fine_fraction}, {cfg.wide_fraction}")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {cfg.device!r}")
    try:
        model_config(cfg.model, **_model_overrides(cfg))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _check_teacher(cfg)


def _check_teacher(cfg: TrainConfig) -> None:
    """A ``teacher`` exists and reads the student's crops: the same input size and landmark scheme."""
    if not (math.isfinite(cfg.distill_weight) and cfg.distill_weight >= 0):
        raise ConfigError(f"distill weight must be a number >= 0, got {cfg.distill_weight}")
    if cfg.teacher is None:
        return
    path = resolve_model_path(cfg.teacher)
    if not path.is_file():
        raise ConfigError(f"--teacher {cfg.teacher}: no such checkpoint")
    t = ModelConfig.from_dict(load_checkpoint(path).config)  # a config saved before schemes is ibug68
    if (t.input_size, t.scheme) != (cfg.input_size, cfg.scheme):
        raise ConfigError(
            f"--teacher {cfg.teacher}: it reads {t.input_size} px {t.scheme} crops, the run trains on "
            f"{cfg.input_size} px {cfg.scheme} ones"
        )


def _check_set_weights(cfg: TrainConfig) -> None:
    """``train_weights``, ``jaw_weights`` and ``train_schemes``: one per training set, in range; each set's scheme
    has the model scheme's points and mirror pairs."""
    w = cfg.train_weights
    if w is not None and (len(w) != len(cfg.train) or min(w) < 0 or sum(w) <= 0):
        raise ConfigError(
            f"train weights: expected {len(cfg.train)} non-negative weights (one per training set), got {w}"
        )
    j = cfg.jaw_weights
    if j is not None and (len(j) != len(cfg.train) or not all(math.isfinite(v) and 0 <= v <= 1 for v in j)):
        raise ConfigError(f"jaw weights: expected {len(cfg.train)} weights in [0, 1] (one per training set), got {j}")
    if cfg.train_schemes is not None:
        if len(cfg.train_schemes) != len(cfg.train):
            raise ConfigError(f"train schemes: expected {len(cfg.train)}, one per training set: {cfg.train_schemes}")
        model = get_scheme(cfg.scheme)
        for name in cfg.train_schemes:
            s = get_scheme(name)
            if (s.num_points, s.flip_perm) != (model.num_points, model.flip_perm):
                raise ConfigError(f"train scheme {s.name}: its points or mirror pairs differ from {model.name}'s")


def _model_overrides(cfg: TrainConfig) -> dict:
    """The model-config fields a training config sets (the rest come from the registered model)."""
    out = {"input_size": cfg.input_size, "scheme": cfg.scheme}
    if cfg.heatmap_sigma is not None:
        out["heatmap_sigma"] = cfg.heatmap_sigma
    if cfg.heatmap_loss is not None:
        out["heatmap_loss"] = cfg.heatmap_loss
    if cfg.heatmap_stride is not None:
        out["heatmap_stride"] = cfg.heatmap_stride
    if cfg.fine_fraction > 0:  # trained for the fine pass (levelled by the eye line): predict in two passes
        out.update(refine_passes=1, fine_ratio=FINE_SIDE_RATIO, fine_shift_up=FINE_SHIFT_UP, fine_head_roll=False)
    else:  # trained on the challenge framing only: its refining crops are best levelled by the head's roll
        out["fine_head_roll"] = True
    return out


# Fields that define the sample stream, the teacher's targets and the schedule: a resumed run must keep them.
RESUME_KEYS = (
    "train",
    "exclude",
    "train_schemes",
    "train_weights",
    "jaw_weights",
    "init",
    "teacher",
    "distill_weight",
    "teacher_flip",
    "model",
    "input_size",
    "heatmap_stride",
    "scheme",
    "epochs",
    "samples_per_epoch",
    "batch_size",
    "seed",
)


_RESUME_DEFAULTS = {
    "scheme": DEFAULT_SCHEME,
    "train_schemes": None,
    "heatmap_stride": None,
    "teacher": None,
    "distill_weight": 1.0,
    "teacher_flip": False,
}
"""The value of a resume key that checkpoints written before it existed lack."""


def build_trainset(cfg: TrainConfig, flip_perm: tuple[int, ...], progress: bool = True) -> LandmarkTrainSet:
    """Crop caches of every training set (built once, then reused) wrapped in the augmenting dataset."""
    cache_size = cfg.cache_size or 2 * cfg.input_size
    excluded = read_name_lists(cfg.exclude or [])
    scheme = get_scheme(cfg.scheme)
    caches = []
    for path, labels in zip(cfg.train, cfg.train_schemes or [scheme.name] * len(cfg.train), strict=True):
        data = without(load_dataset(path, require_landmarks=True, scheme=labels), excluded)
        caches.append(build_crop_cache(data, cache_size, cfg.context, progress=progress))
    augment = AugmentConfig(
        jitter=CropJitter(rotation_deg=cfg.rotation_deg),
        photometric=cfg.photometric,
        gamma_probability=cfg.gamma_probability,
        fine_fraction=cfg.fine_fraction,
        wide_fraction=cfg.wide_fraction,
    )
    point_weights = None
    if cfg.jaw_weights is not None:
        point_weights = []
        for cache, jw in zip(caches, cfg.jaw_weights, strict=True):
            pw = np.ones(cache.landmarks.shape[1], np.float32)
            pw[list(scheme.jaw)] = jw
            point_weights.append(pw)
    return LandmarkTrainSet(
        caches, cfg.input_size, cfg.samples_per_epoch, cfg.train_weights, augment, flip_perm, cfg.seed, point_weights
    )


def profile_pipeline(cfg: TrainConfig, batches: int = 30) -> dict:
    """Measure images/s of the input pipeline alone (``cfg.workers`` processes) and of full training steps
    (data + forward + backward + AdamW), after one warm-up batch each. Nothing is written. Torch runs on
    ``cfg.threads`` threads meanwhile (the caller's count restored after)."""
    cfg = with_model(cfg)
    with scoped_threads(cfg.threads or None):
        return _profile(cfg, batches)


def _profile(cfg: TrainConfig, batches: int) -> dict:
    fmt = memory_format(cfg)
    model = create_model(cfg.model, **_model_overrides(cfg)).to(memory_format=fmt)
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
        train_step(model, model.codec, opt, x.to(torch.float32, memory_format=fmt), y, cfg, w)
        n += x.shape[0] if i >= 1 else 0
    return {
        "loader_images_per_s": round(loader_ips, 1),
        "train_images_per_s": round(n / (time.time() - t0), 1),
        "workers": cfg.workers,
        "threads": torch.get_num_threads(),
        "batch_size": cfg.batch_size,
        "model": cfg.model,
        "input_size": cfg.input_size,
        "channels_last": cfg.channels_last,
    }


# -- the training run, step by step --------------------------------------------------------------------------
def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a model as ``cfg`` says; write ``last.pt``, ``best.pt``, ``log.csv`` and ``curves.png`` to ``cfg.out``.

    ``resume`` continues ``cfg.out/last.pt`` (an error when there is none). Torch's thread count (``cfg.threads``)
    and random state (seeded with ``cfg.seed``) are the run's while it runs and the caller's again after it (CPU
    and, in a single process, the GPUs' generators)."""
    cfg = with_model(cfg)
    check_config(cfg, resume)
    with scoped_threads(cfg.threads or None), torch.random.fork_rng(devices=_forked_gpus(cfg)):
        return _train(cfg, resume, progress)


def _forked_gpus(cfg: TrainConfig) -> list[int]:
    """The CUDA generators :func:`train` saves and restores (``torch.manual_seed`` seeds every device): all of them
    in a single process on a GPU; none under torchrun, where each process is the run's alone."""
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    return list(range(torch.cuda.device_count())) if single and _device(cfg.device).type == "cuda" else []


def _train(cfg: TrainConfig, resume: bool, progress: bool) -> TrainResult:
    """:func:`train`'s run, in its thread and random-state scope."""
    from .evaluate import evaluate

    run = _set_up(cfg)
    model = _build_model(cfg, resume)
    teacher = _load_teacher(cfg, run.device)  # before the crop cache, which can take minutes: a bad teacher fails now
    trainset = build_trainset(cfg, model.config.flip_perm, progress=progress and run.main)
    val_scheme = cfg.val_scheme or cfg.scheme
    val_set = load_dataset(cfg.val, require_landmarks=True, scheme=val_scheme) if cfg.val else None
    state = _new_state(cfg, model.to(run.device, memory_format=memory_format(cfg)))
    if resume:
        _restore(state, cfg, run)
    net = torch.nn.parallel.DistributedDataParallel(state.model) if run.world > 1 else state.model
    if run.main:
        _print_summary(cfg, state.model, run.world)

    loader, sampler = _loader(cfg, trainset, state, run)
    while state.epoch < cfg.epochs:
        sampler.set_epoch(state.epoch, state.batch)
        row = _run_epoch(cfg, net, state, loader, run, progress, teacher)
        if row is None:  # max_steps inside an epoch: last.pt says where to continue
            _save(run.out / "last.pt", cfg, state, run)
            break
        if val_set is not None and run.main:
            report = evaluate(state.eval_model(), val_set, progress=False)
            row["val_nme"] = report.summary["nme_challenge"]
            row["val_nme_box"] = report.summary["nme_box"]
        _end_epoch(cfg, state, row, run)
        if cfg.max_steps and state.step >= cfg.max_steps:
            break

    if val_set is None:
        _save(run.out / "best.pt", cfg, state, run)
    if run.started_dist:
        dist.destroy_process_group()
    best_path = run.out / "best.pt"
    return TrainResult(run.out, state.history, state.best, best_path if best_path.exists() else None)


def _set_up(cfg: TrainConfig) -> Run:
    """Device, distributed group, seed; the output folder (cleared of files a killed run left)."""
    device = _device(cfg.device)
    started = _init_distributed(device)
    run = Run(device, _rank(), _world(), Path(cfg.out), started)
    if run.main:
        ensure_dir(run.out)
        for name in ("last.pt", "best.pt", "log.csv", "curves.png"):  # left by a run killed while writing
            for stale in run.out.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
    torch.manual_seed(cfg.seed)
    return run


def _build_model(cfg: TrainConfig, resume: bool) -> LandmarkModel:
    """A fresh model of ``cfg.model``; fine-tuning (``cfg.init``, not on resume) starts from trained weights, also
    those of a model of another landmark scheme (:func:`adapt_head`)."""
    model = create_model(cfg.model, **_model_overrides(cfg))
    if cfg.init is None or resume:  # a resumed run takes its weights from last.pt
        return model
    init = load_model(cfg.init)
    a, b = init.config.to_dict(), model.config.to_dict()
    for key in (*_model_overrides(cfg), *_SCHEME_FIELDS, *TEST_TIME_FIELDS, "face_head"):  # any input size
        a.pop(key, None), b.pop(key, None)
    if a != b:
        raise ConfigError(f"--init {cfg.init}: its model ({init.config.name}) differs from --model {cfg.model}")
    for key in TEST_TIME_FIELDS:  # read the way the model it starts from is read (e.g. the protocol's flip test)
        setattr(model.config, key, getattr(init.config, key))
    # a face head is fitted on the finished model (lightmark.engine.face_head): fine-tuning starts without one
    state = {k: v for k, v in init.state_dict().items() if not k.startswith("face.")}
    if init.config.scheme != model.config.scheme:
        state = adapt_head(state, init.config.landmark_scheme, model.config.landmark_scheme, model.config.head)
    if init.config.heatmap_stride != model.config.heatmap_stride:
        if model.config.heatmap_stride != 4:
            raise ConfigError(f"--init {cfg.init}: a stride-4 heatmap head cannot start a stride-8 one")
        state = head_state_to_stride4(state, model.state_dict())
    model.load_state_dict(state)
    return model


def read_teacher(teacher: LandmarkModel, x: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """The teacher's (B, K, 2) points (input px) on (B, 3, S, S) crops, without a graph; with ``flip``, predict's
    guarded flip test: the mirrored crops read in the same call, mapped back and averaged where the two readings
    agree (:func:`~lightmark.engine.predict.merge_flip_readings`; plain average for a teacher without confidence)."""
    with torch.no_grad():
        if not flip:
            return teacher.landmarks(x)
        points, conf = teacher.landmarks_and_confidence(torch.cat([x, x.flip(3)]))  # (2B, K, 2), (2B, K)
    from .predict import merge_flip, merge_flip_readings

    n, side, perm = x.shape[0], x.shape[3], list(teacher.config.flip_perm)
    p = points.float().cpu().numpy()
    if conf is None:
        merged = merge_flip(p[:n], p[n:], side, perm)
    else:
        c = conf.float().cpu().numpy()
        merged, _ = merge_flip_readings(p[:n], c[:n], p[n:], c[n:], side, perm)
    return torch.from_numpy(merged).to(x.device)


def _load_teacher(cfg: TrainConfig, device: torch.device) -> LandmarkModel | None:
    """The frozen ``cfg.teacher`` in eval mode on ``device`` (its EMA weights), or None without one."""
    if cfg.teacher is None or cfg.distill_weight == 0:
        return None
    teacher = load_model(cfg.teacher).to(device, memory_format=memory_format(cfg)).eval()
    teacher.requires_grad_(False)
    return teacher


_SCHEME_FIELDS = ("scheme", "num_landmarks", "flip_perm")

_HEAD_OUTPUTS = {Head.HEATMAP: "head.out.", Head.REGRESSION: "head.fc.2."}
"""Per head type, the prefix of the layer whose outputs are the landmarks (one channel / two units per point)."""


def adapt_head(state: dict, source: LandmarkScheme, target: LandmarkScheme, head: Head) -> dict:
    """A state dict of a model of scheme ``source`` made into one of scheme ``target``: everything but the landmark
    outputs is kept, and each target point's output (heatmap channel or x/y units) is the mean of the outputs of
    the points its ``from_ibug68`` prior names (a heatmap of averaged logits peaks between its points; averaged
    regression units give the mean point). Needs a 68-point source with the identity map and a target with a prior.

    Raises:
        ConfigError: no prior for the pair of schemes, or an unknown head type (``head`` may be its value)."""
    if source.to_ibug68 != tuple(range(source.num_points)) or target.from_ibug68 is None:
        raise ConfigError(f"no way to start a {target.name} model from a {source.name} one (needs from_ibug68)")
    head = Head.parse(head, "head")
    prefix, out = _HEAD_OUTPUTS[head], dict(state)
    for key in [k for k in state if k.startswith(prefix)]:
        w = state[key]  # (K, ...) heatmap channels or (2K, ...) regression units, point-major
        per_point = w.reshape(source.num_points, -1, *w.shape[1:]) if head is Head.REGRESSION else w.unsqueeze(1)
        rows = [per_point[list(p)].mean(0) for p in target.from_ibug68]  # (units, ...) per target point
        out[key] = torch.stack(rows).reshape(-1, *w.shape[1:]).contiguous()
    return out


def _new_state(cfg: TrainConfig, model: LandmarkModel) -> TrainState:
    """AdamW (no weight decay on biases and norms), warm-up + cosine schedule, and the EMA copy."""
    ema = copy.deepcopy(model).eval() if cfg.ema_decay > 0 else None
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
    )
    total = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, cfg.warmup_steps, total))
    return TrainState(model, ema, opt, sched)


def _restore(state: TrainState, cfg: TrainConfig, run: Run) -> None:
    """Load ``last.pt`` into ``state``, refusing a checkpoint from another configuration or one that lacks
    anything the run needs (its config, the EMA of an EMA run, optimiser or schedule)."""
    path = run.out / "last.pt"
    ck = load_checkpoint(path)
    if ck.train_config is None:
        raise ModelError(f"{path}: cannot resume, the checkpoint records no training config")
    was_set = {k: ck.train_config.get(k, _RESUME_DEFAULTS.get(k)) for k in RESUME_KEYS}
    changed = [k for k in RESUME_KEYS if _plain(getattr(cfg, k)) != was_set[k]]
    digest = ck.train_config.get("teacher_sha256")  # None: saved before digests were recorded
    if not changed and digest is not None and _teacher_digest(cfg).get("teacher_sha256") != digest:
        raise ConfigError(f"{path}: cannot resume, the teacher {cfg.teacher} has changed since (its file's SHA-256)")
    if changed:
        was = ", ".join(repr(was_set[k]) for k in changed)
        raise ConfigError(f"{path}: cannot resume with different {', '.join(changed)} (was {was})")
    missing = [n for n in ("optimizer", "scheduler") if getattr(ck, n) is None]
    if state.ema is not None and ck.ema_state_dict is None:
        missing.append("ema_state_dict")
    if missing:
        raise ModelError(f"{path}: cannot resume from this checkpoint (no {', '.join(missing)} entry)")
    try:
        state.model.load_state_dict(ck.state_dict)
        if state.ema is not None:
            state.ema.load_state_dict(ck.ema_state_dict)
        state.opt.load_state_dict(ck.optimizer)
        _match_layouts(state.opt)
        state.sched.load_state_dict(ck.scheduler)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: cannot resume from this checkpoint ({' '.join(str(e).split())[:200]})") from None
    state.epoch, state.batch = ck.epoch, ck.batch_in_epoch
    state.step = state.epoch * cfg.steps_per_epoch + state.batch
    state.history, state.best = ck.history, ck.best_nme
    if run.main:
        print(f"resumed {path} at epoch {state.epoch}, batch {state.batch}")


def _save(path: Path, cfg: TrainConfig, state: TrainState, run: Run) -> None:
    """Checkpoint ``state`` (rank 0 only): weights, EMA, optimiser, schedule, position, history, config."""
    if not run.main:
        return
    Checkpoint(
        config=state.model.config.to_dict(),
        state_dict=weights_of(state.model),
        ema_state_dict=weights_of(state.ema) if state.ema is not None else None,
        optimizer=_contiguous(state.opt.state_dict()),
        scheduler=state.sched.state_dict(),
        epoch=state.epoch,
        batch_in_epoch=state.batch,
        history=state.history,
        best_nme=state.best,
        train_config=_plain(asdict(cfg)) | _teacher_digest(cfg),
    ).save(path)


def _teacher_digest(cfg: TrainConfig) -> dict:
    """``{"teacher_sha256": ...}`` of the teacher's file ({} without a teacher), which a resumed run must match: a
    shipped name re-shipped, or a path overwritten, is another teacher."""
    if cfg.teacher is None:
        return {}
    path = resolve_model_path(cfg.teacher).resolve()
    stat = path.stat()
    return {"teacher_sha256": _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)}


@functools.lru_cache(maxsize=4)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, hashed once per (size, modification time): every checkpoint of a run records it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _contiguous(opt_state: dict) -> dict:
    """An optimiser's ``state_dict`` with every state tensor contiguous (NCHW): a checkpoint does not depend on the
    memory layout the run trained in."""
    state = {
        i: {k: v.contiguous() if torch.is_tensor(v) else v for k, v in s.items()} for i, s in opt_state["state"].items()
    }
    return {**opt_state, "state": state}


def _match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give each loaded optimiser state tensor its parameter's memory layout (a checkpoint's are contiguous), so that
    the fused update sees one layout per parameter."""
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if torch.is_tensor(v) and v.shape == p.shape:
                    opt.state[p][k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def _print_summary(cfg: TrainConfig, model: LandmarkModel, world: int) -> None:
    info = model_summary(model)
    print(
        f"model {cfg.model}: {info['params'] / 1e6:.2f}M params, {info['size_mb']:.2f} MB float32, "
        f"{info['gmacs']:.3f} GMACs at {cfg.input_size}px; {cfg.steps_per_epoch} steps/epoch x {cfg.epochs} "
        f"epochs, world size {world}"
    )


def _loader(cfg: TrainConfig, trainset: LandmarkTrainSet, state: TrainState, run: Run):
    """The DataLoader over this rank's share of each epoch, and its sampler (moved on by ``set_epoch``).
    Workers are forked once and kept (forking a process whose OpenMP pool is busy can deadlock the child)."""
    sampler = EpochSampler(cfg.steps_per_epoch, cfg.batch_size, state.batch, run.rank, run.world, state.epoch)
    loader = DataLoader(
        trainset,
        cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=True,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers else None,
    )
    return loader, sampler


def _run_epoch(
    cfg: TrainConfig,
    net: torch.nn.Module,
    state: TrainState,
    loader: DataLoader,
    run: Run,
    progress: bool,
    teacher: LandmarkModel | None = None,
) -> dict | None:
    """Train from ``state.batch`` to the end of epoch ``state.epoch`` (checkpointing every
    ``checkpoint_minutes``), with ``teacher``'s points on each crop as a second target when given. Returns the
    epoch's log row, or None when ``max_steps`` stopped it mid-epoch."""
    from tqdm import tqdm

    steps, fmt = cfg.steps_per_epoch, memory_format(cfg)
    net.train()
    codec = state.model.codec
    t0, seen, loss_sum, teacher_sum, n_loss, last_ckpt = time.time(), 0, 0.0, 0.0, 0, time.time()
    show = progress and run.main
    bar = tqdm(loader, total=steps - state.batch, desc=f"epoch {state.epoch + 1}/{cfg.epochs}", disable=not show,
               leave=False)  # fmt: skip
    for x, y, w in bar:
        x = x.to(run.device, torch.float32, memory_format=fmt)  # (B, 3, S, S) 0..255
        y, w = y.to(run.device), w.to(run.device)  # (B, K, 2), (B, K)
        taught = None
        if teacher is not None:
            taught = read_teacher(teacher, x, cfg.teacher_flip)  # (B, K, 2) input px
        step_loss = train_step(net, codec, state.opt, x, y, cfg, w, taught)
        loss_sum, teacher_sum = loss_sum + step_loss.total.item(), teacher_sum + step_loss.teacher.item()
        state.sched.step()
        state.step, state.batch, n_loss, seen = state.step + 1, state.batch + 1, n_loss + 1, seen + x.shape[0]
        if state.ema is not None:
            ema_update(state.ema, state.model, ema_decay_at(state.step, cfg.ema_decay))
        bar.set_postfix(loss=f"{loss_sum / n_loss:.4f}", lr=f"{state.sched.get_last_lr()[0]:.2e}")
        if not show and run.main and cfg.log_every and state.step % cfg.log_every == 0:
            rate = seen * run.world / max(time.time() - t0, 1e-9)
            print(
                f"epoch {state.epoch + 1} step {state.step} loss {loss_sum / n_loss:.4f} {rate:.0f} img/s", flush=True
            )
        if cfg.max_steps and state.step >= cfg.max_steps and state.batch < steps:
            return None
        if time.time() - last_ckpt > cfg.checkpoint_minutes * 60 and state.batch < steps:
            _save(run.out / "last.pt", cfg, state, run)
            last_ckpt = time.time()
    row = {
        "epoch": state.epoch + 1,
        "step": state.step,
        "lr": state.sched.get_last_lr()[0],
        "train_loss": loss_sum / max(1, n_loss),
        "images_per_s": seen * run.world / max(time.time() - t0, 1e-9),
    }
    if teacher is not None:  # train_loss = the labels' terms + the teacher's: both apart, comparable with plain runs
        row["teacher_loss"] = teacher_sum / max(1, n_loss)
        row["label_loss"] = row["train_loss"] - row["teacher_loss"]
    return row


def _end_epoch(cfg: TrainConfig, state: TrainState, row: dict, run: Run) -> None:
    """Record the epoch, keep ``best.pt`` (lowest validation NME) and ``last.pt``, write the log and curves."""
    state.history.append(row)
    state.epoch, state.batch = state.epoch + 1, 0
    if "val_nme" in row and row["val_nme"] < state.best:
        state.best = row["val_nme"]
        _save(run.out / "best.pt", cfg, state, run)
    if run.main:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        _save(run.out / "last.pt", cfg, state, run)
        _write_log(run.out, state.history)


def _plain(d):
    """Checkpoint-safe copy of a config (only dict/list/str/int/float/bool/None; enums as their values)."""
    if isinstance(d, Enum):
        return d.value
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
