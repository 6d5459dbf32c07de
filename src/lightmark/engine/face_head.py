"""The face / no-face head (issue 12), fitted on a finished model whose weights stay frozen.

A logistic regression on the model's deepest features, averaged over the map (:class:`~lightmark.models.
landmark_model.FaceHead`): the landmarks do not change, and the per-point confidence gains a factor P(face), so the
face score (the mean confidence) of a crop without a face falls towards 0 while a turned face, whose hidden points
the heatmaps are unsure of, keeps the score its visible points earn.

Positives: crops of labelled training faces, framed and augmented as the model was trained. Negatives: windows
without a face: the renderer's procedural backgrounds, and windows of FaceSynthetics pictures whose segmentation
has no face pixel, augmented the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ..choices import Head
from ..models.landmark_model import FaceHead, LandmarkModel

FACE_CLASSES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14)
"""FaceSynthetics segmentation classes that belong to a face (skin, nose, eyes, brows, ears, mouth, lips, beard);
the others (background 0, neck, hair, clothing, glasses, headwear, facewear; 255 unlabelled) do not."""


def facesynthetics_halves(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """The segmentation maps (``*_seg.png``) of a FaceSynthetics folder split by name into a first and a second half:
    face heads take their face-free negatives from the first, ``scripts/detect_check.py`` its backgrounds from the
    second."""
    segs = sorted(Path(folder).glob("*_seg.png"))
    return segs[: len(segs) // 2], segs[len(segs) // 2 :]


def background_windows(
    seg_paths: Sequence[str | Path], rng: np.random.Generator, count: int, size: int, tries: int = 60
) -> list[np.ndarray]:
    """Up to ``count`` (size, size, 3) uint8 RGB windows of FaceSynthetics pictures (``*_seg.png`` paths beside
    their ``.png``, at least 96 px) that hold no face pixel (:data:`FACE_CLASSES`): hair, clothing and background
    are allowed. Each window is a random square of 48 px to half the picture's side, area-resized to ``size``; a
    picture without such a window after ``tries`` draws is given up (fewer windows when all are)."""
    out: list[np.ndarray] = []
    pictures = [str(p) for p in seg_paths]
    while len(out) < count and pictures:
        path = pictures[int(rng.integers(len(pictures)))]
        seg = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        face = cv2.integral(np.isin(seg, FACE_CLASSES).astype(np.uint8))
        h, w = seg.shape[:2]
        for _ in range(tries):
            c = int(rng.integers(48, min(h, w) // 2 + 1))
            x, y = (int(v) for v in rng.integers(0, [w - c + 1, h - c + 1]))
            if face[y + c, x + c] - face[y, x + c] - face[y + c, x] + face[y, x] == 0:
                img = cv2.imread(path.replace("_seg.png", ".png"))[y : y + c, x : x + c, ::-1]
                out.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
                break
        else:
            pictures.remove(path)
    return out


def procedural_windows(rng: np.random.Generator, count: int, size: int) -> list[np.ndarray]:
    """``count`` (size, size, 3) uint8 RGB procedural backgrounds (the renderer's: gradients, noise, clutter)."""
    from ..synth.compose import procedural_background

    return [(np.clip(procedural_background(rng, size), 0, 1) * 255 + 0.5).astype(np.uint8) for _ in range(count)]


@torch.no_grad()
def pooled_features(model: LandmarkModel, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB crops -> (N, C) float32: the model's deepest map averaged over its cells (what
    :class:`FaceHead` reads), the model in eval mode."""
    crops = np.asarray(crops)
    model.eval()
    out = []
    for i in range(0, len(crops), batch):
        x = torch.from_numpy(np.ascontiguousarray(crops[i : i + batch].transpose(0, 3, 1, 2))).float()
        out.append(model.features(x)[-1].mean((2, 3)).numpy())
    return np.concatenate(out).astype(np.float32)


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, l2: float = 1e-3, steps: int = 300
) -> tuple[np.ndarray, float]:
    """Class-balanced L2-regularised logistic regression (L-BFGS): (N, C) features, (N,) labels in {0, 1} ->
    weights (C,) and bias with ``P(1) = sigmoid(features @ w + b)``."""
    x = torch.from_numpy(np.asarray(features, np.float32))
    y = torch.from_numpy(np.asarray(labels, np.float32))
    pos = float(y.mean())
    if not 0 < pos < 1:
        raise ValueError("fit_logistic needs both classes")
    sample_w = torch.where(y > 0, 0.5 / pos, 0.5 / (1 - pos))  # each class weighs half
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mu) / sd
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y, weight=sample_w) + l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    w_raw = (w / sd).detach().numpy()  # undo the standardisation: z @ w = x @ (w / sd) - mu @ (w / sd)
    return w_raw.astype(np.float32), float(b.detach() - (mu / sd) @ w.detach())


def fit_face_head(
    model: LandmarkModel, positives: np.ndarray, negatives: np.ndarray, l2: float = 1e-3
) -> dict[str, float]:
    """Give ``model`` (in place) a :class:`FaceHead` fitted on (N, S, S, 3) uint8 crops with a face (``positives``)
    and without (``negatives``); its other weights do not change. Returns the fit's balanced accuracy and the mean
    P(face) of each class on the fitting crops."""
    if model.config.head is not Head.HEATMAP:
        raise ValueError("a face head needs a heatmap model (it scales the face score, the mean confidence)")
    feats = np.concatenate([pooled_features(model, positives), pooled_features(model, negatives)])
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    w, b = fit_logistic(feats, labels, l2)
    head = FaceHead(feats.shape[1])
    with torch.no_grad():
        head.fc.weight.copy_(torch.from_numpy(w)[None])
        head.fc.bias.fill_(b)
    model.face = head.eval()
    model.config = replace(model.config, face_head=True)
    p = 1 / (1 + np.exp(-(feats @ w + b)))
    pos, neg = p[labels == 1], p[labels == 0]
    return {
        "balanced_accuracy": float(((pos > 0.5).mean() + (neg <= 0.5).mean()) / 2),
        "p_face_positives": float(pos.mean()),
        "p_face_negatives": float(neg.mean()),
        "positives": len(pos),
        "negatives": len(neg),
    }
