"""Evaluation on a labelled dataset: the challenge NME and friends, a printed table, JSON, CED and gallery."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..constants import NUM_LANDMARKS, YAW_BIN_NAMES
from ..data.formats import FaceDataset, load_dataset
from ..errors import ConfigError, DatasetError, LightmarkError
from ..metrics import box_norm, challenge_norm, nme, summarize
from ..schemes import DEFAULT_SCHEME, get_scheme
from ..utils import atomic_write, ensure_dir
from .predict import Framing, PredictionResults, Predictor

if TYPE_CHECKING:
    from ..models import LandmarkModel  # a type only: importing this module needs no torch


@dataclass
class EvaluationReport:
    """Metrics of one model on one dataset; can print, serialise and plot itself."""

    summary: dict  # see lightmark.metrics.summarize
    names: list[str]
    nme_challenge: np.ndarray  # (N,) per-image NME in percent
    nme_box: np.ndarray  # (N,)
    predictions: PredictionResults
    ground_truth: np.ndarray  # (N, K, 2)
    meta: dict = field(default_factory=dict)  # model, dataset, options

    def table(self) -> str:
        """A plain-text table of the headline figures."""
        s = self.summary
        rows = [("all", s["n"], s["nme_challenge"], s["nme_box"])]
        for b in YAW_BIN_NAMES:
            if b in s:
                rows.append((b, s[b]["n"], s[b]["nme_challenge"], s[b]["nme_box"]))
        lines = [f"{'subset':<12}{'n':>6}{'NME/384 %':>12}{'NME box %':>12}"]
        lines += [f"{r[0]:<12}{r[1]:>6}{r[2]:>12.3f}{r[3]:>12.3f}" for r in rows]
        lines.append(
            f"FR@10% {s['fr_10']:.2f}%  AUC@10% {s['auc_10']:.4f}  |  box: FR@10% {s['fr_10_box']:.2f}%  "
            f"AUC@10% {s['auc_10_box']:.4f}"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        per_image = [
            {"name": n, "nme_challenge": float(a), "nme_box": float(b)}
            for n, a, b in zip(self.names, self.nme_challenge, self.nme_box, strict=True)
        ]
        if self.predictions.detected is not None:
            for row, found in zip(per_image, self.predictions.detected, strict=True):
                row["detected"] = bool(found)
        return {**self.summary, "meta": self.meta, "per_image": per_image}

    def save_json(self, path: str | os.PathLike) -> None:
        with atomic_write(path) as f:
            json.dump(self.to_dict(), f, indent=1)

    def save_plots(self, out_dir: str | os.PathLike, label: str = "lightmark", k_worst: int = 16) -> list[Path]:
        """``ced.png`` (challenge NME), ``ced_box.png`` and ``worst.png`` (the worst predictions, gt in red)."""
        from ..data.images import read_image
        from ..viz import plot_ced, worst_gallery

        out_dir = Path(out_dir)
        ensure_dir(out_dir)
        plot_ced({label: self.nme_challenge}, out_dir / "ced.png", max_threshold=10.0, title="CED, NME / sqrt(W*H)")
        plot_ced({label: self.nme_box}, out_dir / "ced_box.png", max_threshold=20.0, title="CED, NME / box")
        worst = np.argsort(-self.nme_challenge)[:k_worst]
        images = [read_image(self.predictions.paths[i]) for i in worst]
        worst_gallery(
            images,
            [self.predictions.landmarks[i] for i in worst],
            [self.ground_truth[i] for i in worst],
            [float(self.nme_challenge[i]) for i in worst],
            out_dir / "worst.png",
            k=k_worst,
        )
        return [out_dir / "ced.png", out_dir / "ced_box.png", out_dir / "worst.png"]


def evaluate(
    model: str | os.PathLike | LandmarkModel | Predictor | None,
    data: str | os.PathLike | FaceDataset,
    *,
    batch_size: int = 32,
    flip_test: bool | None = None,
    refine: int | None = None,
    framing: Framing | str = Framing.WHOLE,
    progress: bool = True,
    latency: bool = False,
    scheme: str | None = None,
) -> EvaluationReport:
    """Predict a labelled dataset and score it (challenge NME = mean error / sqrt(W*H), box NME, FR, AUC,
    per-yaw-bin figures when yaw is known). ``model`` None means the shipped model; any object with
    ``predict_dataset`` and ``describe`` (e.g. :class:`~lightmark.engine.baselines.DlibPredictor`) is scored the
    same way. ``latency`` adds the median single-thread CPU time of one prediction to ``meta["latency_ms"]`` (such
    an object then also needs ``latency_ms(image)``). ``flip_test``, ``refine`` and ``framing``
    are :class:`Predictor` options. ``scheme``: the landmark scheme ``data`` is labelled in (default: the model's;
    a given :class:`FaceDataset` says its own); a model of another scheme is scored on its map to the data's
    points (a WFLW model on 68-point labels through :attr:`LandmarkScheme.to_ibug68`)."""
    if hasattr(model, "predict_dataset") and hasattr(model, "describe"):
        predictor = model
    else:
        predictor = Predictor(model, flip_test=flip_test, refine=refine, framing=framing)
    model_scheme = getattr(getattr(predictor, "config", None), "scheme", DEFAULT_SCHEME)
    if isinstance(data, FaceDataset):
        dataset = data
    else:
        try:
            dataset = load_dataset(data, require_landmarks=True, scheme=scheme or model_scheme)
        except LightmarkError as e:
            if scheme is not None or model_scheme == DEFAULT_SCHEME:
                raise
            hint = f"a {model_scheme} model on data of another scheme: give it, e.g. --scheme ibug68 / scheme="
            raise type(e)(f"{e} ({hint}'ibug68', to score the model through its map to those points)") from None
    if not dataset.has_landmarks:
        raise DatasetError(f"{dataset.root}: evaluation needs landmarks for every image")
    scheme = dataset.scheme
    preds = predictor.predict_dataset(dataset, batch_size=batch_size, progress=progress)
    preds.landmarks = in_scheme(preds.landmarks, model_scheme, scheme)
    gt = dataset.landmarks_array()
    yaws = dataset.yaws()
    has_yaw = bool(np.isfinite(yaws).any())
    summary = summarize(preds.landmarks, gt, preds.image_sizes, yaws if has_yaw else None, scheme)
    per_image = nme(preds.landmarks, gt, challenge_norm(preds.image_sizes))
    meta = {"dataset": str(dataset.root), **predictor.describe()}
    if preds.detected is not None:  # framing detect / auto: faces read from a detection, and the others
        found = preds.detected
        meta["detected"] = int(found.sum())
        meta["nme_challenge_detected"] = float(per_image[found].mean()) if found.any() else None
        meta["nme_challenge_not_detected"] = float(per_image[~found].mean()) if (~found).any() else None
    if latency and len(dataset):
        meta["latency_ms"] = _latency(predictor, dataset)
    return EvaluationReport(
        summary=summary,
        names=preds.names,
        nme_challenge=per_image,
        nme_box=nme(preds.landmarks, gt, box_norm(gt)),
        predictions=preds,
        ground_truth=gt,
        meta=meta,
    )


def in_scheme(points: np.ndarray, source: str, target: str) -> np.ndarray:
    """(N, K, 2) points of scheme ``source`` as points of scheme ``target``: unchanged for the same number of
    points, through ``source``'s map to the 68 iBUG points for a 68-point target.

    Raises:
        ConfigError: no such map."""
    a, b = get_scheme(source), get_scheme(target)
    if a.num_points == b.num_points:
        return points
    if b.num_points == NUM_LANDMARKS and a.to_ibug68 is not None:
        return a.as_ibug68(points)
    raise ConfigError(f"a {a.name} model cannot be scored on {b.name} labels (no map between them)")


LATENCY_IMAGES = 200
"""A :class:`Predictor` is timed over up to this many of the dataset's images, one call each in turn."""


def _latency(predictor, dataset: FaceDataset) -> dict:
    """Single-thread latency of one prediction: a :class:`Predictor` over the dataset's first
    :data:`LATENCY_IMAGES` images in turn (its default reading costs more on some images than on others), timed
    through :meth:`Predictor.with_threads` (its model and ONNX graph, nothing process-wide changed); any other
    predictor on the first image through its own ``latency_ms`` (single-threaded by design, e.g. dlib)."""
    from ..data.images import read_image

    if isinstance(predictor, Predictor):
        one = predictor.with_threads(1)
        images = [read_image(s.image_path) for s in dataset.samples[:LATENCY_IMAGES]]
        return {**one.latency_ms(images), "threads": 1, "backend": one.backend, "images": len(images)}
    image = read_image(dataset.samples[0].image_path)
    if not hasattr(predictor, "latency_ms"):
        raise ConfigError(f"{type(predictor).__name__} cannot be timed (no latency_ms method)")
    return {**predictor.latency_ms(image), "threads": 1}
