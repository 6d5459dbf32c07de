"""Training inputs: decoded face crops cached once in a uint8 array, then augmented on the fly.

Decoding a 512x512 PNG costs ~5 ms; a training step at 128 px costs ~0.3 ms per image, so every image is
decoded once, cut loosely around its landmarks (``context`` x the landmark box) and kept in a memory-mapped
``(N, S, S, 3)`` uint8 array. Each training sample is then one affine warp of a cached crop plus
photometric augmentation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import OutputError
from ..utils import atomic_write, default_cache_dir
from .formats import FaceDataset
from .images import read_image
from .transforms import (
    GAMMA_PROBABILITY,
    WIDE_JITTER,
    CropJitter,
    FineJitter,
    crop_matrix,
    is_flipped,
    landmark_box,
    photometric_augmentation,
    transform_points,
    warp,
)


@dataclass
class CropCache:
    """Loose face crops: ``images`` (N, S, S, 3) uint8 RGB and ``landmarks`` (N, K, 2) float32 in crop pixels."""

    images: np.ndarray
    landmarks: np.ndarray
    names: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.images)


CACHE_VERSION = 2  # bump when the cutting code changes (v2: anti-aliased shrinking)


def _cache_key(dataset: FaceDataset, size: int, context: float) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([CACHE_VERSION, str(dataset.root.resolve()), dataset.format, size, context]).encode())
    for s in dataset.samples:
        st = s.image_path.stat()
        h.update(f"{s.name}|{st.st_size}|{st.st_mtime_ns}".encode())
        h.update(np.ascontiguousarray(s.landmarks, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def _cut(args: tuple[Path, np.ndarray, int, float]) -> tuple[np.ndarray, np.ndarray]:
    path, pts, size, context = args
    image = read_image(path)
    center, side = landmark_box(pts)
    m = crop_matrix(center, context * side, size)
    return warp(image, m, size), transform_points(pts, m)


def build_crop_cache(
    dataset: FaceDataset,
    size: int = 224,
    context: float = 3.6,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 2,
    progress: bool = True,
) -> CropCache:
    """Decode and cut every labelled sample once (reused from ``cache_dir`` when the data is unchanged)."""
    from tqdm import tqdm

    if not dataset.has_landmarks:
        raise ValueError(f"{dataset.root}: training needs landmarks for every sample")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(dataset, size, context)
    img_path = cache_dir / f"crops-{key}.npy"
    meta_path = cache_dir / f"crops-{key}.json"
    n = len(dataset)
    if img_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        images = np.load(img_path, mmap_mode="r")
        return CropCache(images, np.asarray(meta["landmarks"], np.float32), meta["names"], str(dataset.root))

    tmp = cache_dir / f".crops-{key}.{os.getpid()}.npy"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    except OSError as e:
        raise OutputError(
            f"{cache_dir}: cannot write the crop cache ({e.strerror or e}); set LIGHTMARK_CACHE to a writable folder"
        ) from None
    landmarks = np.zeros((n, dataset.samples[0].landmarks.shape[0], 2), np.float32)
    jobs = [(s.image_path, s.landmarks, size, context) for s in dataset.samples]
    desc = f"caching {dataset.root.name} ({n} faces)"
    try:
        if workers > 1 and n > 64:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers) as pool:
                it = pool.imap(_cut, jobs, chunksize=16)
                for i, (img, pts) in enumerate(tqdm(it, total=n, desc=desc, disable=not progress)):
                    images[i], landmarks[i] = img, pts
        else:
            for i, job in enumerate(tqdm(jobs, desc=desc, disable=not progress)):
                images[i], landmarks[i] = _cut(job)
        images.flush()
        del images
        os.replace(tmp, img_path)
    except BaseException as e:  # a bad image, disk full, Ctrl-C: leave no half-written (large) temporary file
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"{img_path}: cannot write the crop cache ({e.strerror or e})") from None
        raise
    with atomic_write(meta_path) as f:
        json.dump({"names": dataset.names, "landmarks": landmarks.tolist(), "size": size, "context": context}, f)
    return CropCache(np.load(img_path, mmap_mode="r"), landmarks, dataset.names, str(dataset.root))


@dataclass
class AugmentConfig:
    """Training augmentation: crop geometry (see :class:`CropJitter`; a share ``fine_fraction`` of the crops framed
    like a two-pass model's fine pass, :class:`FineJitter`) and photometric strength."""

    jitter: CropJitter = field(default_factory=CropJitter)
    photometric: float = 1.0  # 0 disables colour/blur/noise/JPEG/occlusion
    gamma_probability: float = GAMMA_PROBABILITY  # chance of a random gamma per crop (0: none)
    fine: FineJitter = field(default_factory=FineJitter)
    fine_fraction: float = 0.0  # share of fine-pass crops (0: every crop from ``jitter``)
    wide: CropJitter = field(default_factory=lambda: WIDE_JITTER)
    wide_fraction: float = 0.0  # share of the other crops drawn from ``wide`` (the coarse pass's framing)


class LandmarkTrainSet(Dataset):
    """Augmented samples drawn from one or more crop caches with mixing weights.

    Item ``(e, i)`` (index i of epoch e) is fully determined by ``(seed, e, i)`` - whichever worker computes it - so a
    resumed run sees exactly the samples an uninterrupted one would.
    ``point_weights`` (one ``(K,)`` array or None per cache) weigh each point in the loss, e.g. 0 on the jaw of
    a set whose jaw follows another convention (300-W's visible contour); None = all ones.
    Returns ``(image (3, S, S) uint8, landmarks (K, 2) float32 in input pixels, point weights (K,) float32)``.
    """

    def __init__(
        self,
        caches: Sequence[CropCache],
        input_size: int,
        samples_per_epoch: int,
        weights: Sequence[float] | None = None,
        augment: AugmentConfig | None = None,
        flip_perm: Sequence[int] | None = None,
        seed: int = 0,
        point_weights: Sequence[np.ndarray | Sequence[float] | None] | None = None,
    ) -> None:
        from ..constants import FLIP_PERM

        self.caches = list(caches)
        w = np.asarray(weights if weights is not None else [len(c) for c in self.caches], np.float64)
        self.weights = w / w.sum()
        self.input_size = input_size
        self.samples_per_epoch = samples_per_epoch
        self.augment = augment or AugmentConfig()
        self.flip_perm = list(flip_perm if flip_perm is not None else FLIP_PERM)
        self.seed = seed
        self._photo = None
        if point_weights is not None and len(point_weights) != len(self.caches):
            raise ValueError(f"point_weights: expected {len(self.caches)} entries (one per cache)")
        self.point_weights = []
        for k, c in enumerate(self.caches):
            pw = point_weights[k] if point_weights is not None else None
            if len(self.flip_perm) != c.landmarks.shape[1]:  # a flip permutation of another landmark scheme
                raise ValueError(
                    f"flip_perm has {len(self.flip_perm)} entries for {c.landmarks.shape[1]}-point cache {k}"
                )
            pw = np.ones(c.landmarks.shape[1], np.float32) if pw is None else np.asarray(pw, np.float32)
            if pw.shape != (c.landmarks.shape[1],):
                raise ValueError(f"point_weights[{k}]: expected shape ({c.landmarks.shape[1]},), got {pw.shape}")
            self.point_weights.append(pw)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _crop_matrix(self, rng: np.random.Generator, pts: np.ndarray) -> np.ndarray:
        """The sample's crop (2, 3): a fine-pass crop with probability ``fine_fraction``, else a ``wide`` one with
        probability ``wide_fraction``, else ``jitter``'s. (No random draw is spent on a choice whose fraction is 0,
        so older runs' sample streams are kept.)"""
        aug = self.augment
        if aug.fine_fraction > 0 and rng.random() < aug.fine_fraction:
            return aug.fine.sample(rng, pts, self.input_size)
        center, side = landmark_box(pts)
        jitter = aug.wide if aug.wide_fraction > 0 and rng.random() < aug.wide_fraction else aug.jitter
        return jitter.sample(rng, center, side, self.input_size)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``key`` = (epoch, index), or an index of epoch 0."""
        epoch, i = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, i])
        src = int(rng.choice(len(self.caches), p=self.weights)) if len(self.caches) > 1 else 0
        cache = self.caches[src]
        j = int(rng.integers(len(cache)))
        image, pts = np.asarray(cache.images[j]), cache.landmarks[j]
        m = self._crop_matrix(rng, pts)
        crop = warp(image, m, self.input_size)
        out = transform_points(pts, m)
        pw = self.point_weights[src]
        if is_flipped(m):
            out, pw = out[self.flip_perm], pw[self.flip_perm]
        if self.augment.photometric > 0:
            if self._photo is None:
                self._photo = photometric_augmentation(self.augment.photometric, self.augment.gamma_probability)
            self._photo.set_random_seed(int(rng.integers(2**31)))
            crop = self._photo(image=crop)["image"]
        image_t = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
        return image_t, torch.from_numpy(out), torch.from_numpy(np.ascontiguousarray(pw))
