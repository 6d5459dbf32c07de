"""Re-framed copies of a labelled crop set: the face smaller or larger, off centre, or rolled, with black borders
where the image runs out - how a model trained on one framing meets others.

    >>> from lightmark.data.reframe import REFRAMES, write_reframed
    >>> folder = write_reframed(load_dataset("../shared/data/aflw2000/val"), REFRAMES["roll_90"], "/tmp/roll_90")

The written folder is in the challenge's format (images + ``annot.pkl``, and ``yaw.csv`` when the source has yaw),
so ``lightmark evaluate --data FOLDER`` and ``lightmark predict FOLDER`` take it as they take the original.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LightmarkError
from ..utils import atomic_save_bytes, atomic_write, ensure_dir
from .formats import FaceDataset, load_dataset
from .images import read_image, write_image
from .transforms import transform_points, warp


@dataclass(frozen=True)
class Reframe:
    """A similarity map of the whole image about its centre: the content rolled by ``roll_deg`` (counter-clockwise
    on screen), scaled by ``scale``, then moved by ``shift`` (fractions of the side, x right, y down)."""

    name: str
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    roll_deg: float = 0.0

    def matrix(self, width: int, height: int) -> np.ndarray:
        """(2, 3) affine map from the original image's pixels to the re-framed image's (same size)."""
        a = np.deg2rad(self.roll_deg)
        cos, sin = np.cos(a) * self.scale, np.sin(a) * self.scale
        c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        side = float(np.sqrt(width * height))
        m = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]])
        m[:, 2] = c + np.asarray(self.shift) * side - m[:, :2] @ c
        return m


REFRAMES: dict[str, Reframe] = {
    r.name: r
    for r in (
        Reframe("none"),
        Reframe("scale_0.5", scale=0.5),
        Reframe("scale_1.5", scale=1.5),
        Reframe("shift_x_0.2", shift=(0.2, 0.0)),
        Reframe("shift_y_0.2", shift=(0.0, 0.2)),
        Reframe("roll_90", roll_deg=90.0),
        Reframe("roll_180", roll_deg=180.0),
    )
}
"""The re-framings the accuracy work is judged on (issue 10's "Done when")."""


def write_reframed(dataset: FaceDataset, reframe: Reframe, out_dir: str | os.PathLike) -> Path:
    """Write ``dataset`` (square or not; labelled) re-framed by ``reframe`` into ``out_dir`` as lossless PNGs with
    an ``annot.pkl`` of the moved landmarks (and the source's yaw as ``yaw.csv``). Returns ``out_dir``."""
    out = ensure_dir(out_dir)
    names, points = [], []
    for s in dataset.samples:
        image = read_image(s.image_path)
        h, w = image.shape[:2]
        if w != h:
            raise ValueError(f"{s.image_path}: re-framing needs square crops, got {w}x{h}")
        m = reframe.matrix(w, h)
        name = Path(s.name).with_suffix(".png").as_posix()
        write_image(out / name, warp(image, m, w))
        names.append(name)
        points.append([tuple(map(float, p)) for p in transform_points(s.landmarks, m)])
    atomic_save_bytes(out / "annot.pkl", pickle.dumps((names, points)))
    yaws = dataset.yaws()
    if np.isfinite(yaws).any():
        with atomic_write(out / "yaw.csv") as f:
            f.write("image,abs_yaw_deg\n")
            f.writelines(f"{n},{y}\n" for n, y in zip(names, yaws, strict=True) if np.isfinite(y))
    return out


def reframed_sets(dataset: FaceDataset, work: str | os.PathLike) -> dict[str, FaceDataset]:
    """Every re-framing of :data:`REFRAMES` of ``dataset``, by name: read from ``work/<name>`` when a complete copy
    is there (as many labelled images as ``dataset``), else written there first (:func:`write_reframed`)."""
    sets = {}
    for name, reframe in REFRAMES.items():
        folder = Path(work) / name
        try:
            done = load_dataset(folder, require_landmarks=True)
        except (LightmarkError, OSError):  # absent or half-written: written again below
            done = None
        if done is None or len(done) != len(dataset):
            done = load_dataset(write_reframed(dataset, reframe, folder), require_landmarks=True)
        sets[name] = done
    return sets
