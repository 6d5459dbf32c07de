"""Heatmap decoding on the validation crops: the soft-argmax the model is trained through (at several inverse
temperatures) against DARK and plain argmax decoding of the same (softmaxed) heatmaps.

    python scripts/decoding.py [--model protocol] [--data ../shared/data/aflw2000/val]

Prints one line per decoding with the challenge NME (percent of 384).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from lightmark.codecs import HeatmapCodec
from lightmark.data.formats import load_dataset
from lightmark.engine.evaluate import evaluate
from lightmark.engine.predict import Predictor
from lightmark.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="protocol")
    ap.add_argument("--data", default="../shared/data/aflw2000/val")
    a = ap.parse_args()
    ds = load_dataset(a.data, require_landmarks=True)
    model = load_model(a.model)
    trained_beta = model.config.beta
    for beta in (0.7, trained_beta, 1.5):
        model.config.beta = beta
        nme = evaluate(Predictor(model, backend="torch"), ds, progress=False).summary["nme_challenge"]
        print(f"soft-argmax beta {beta:g}{' (trained)' if beta == trained_beta else ''}: {nme:.3f}")
    model.config.beta = trained_beta
    side = model.config.input_size // model.config.heatmap_stride
    codec = HeatmapCodec(model.config.input_size, side, 1.5)
    forward = model.forward
    for method in ("dark", "argmax"):

        def decoded(x: torch.Tensor, return_heatmaps: bool = False, method: str = method):
            _, hm = forward(x, return_heatmaps=True)  # (B, K, h, w) logits
            prob = torch.softmax(hm.flatten(2), -1).view_as(hm).detach().numpy()
            xy = torch.from_numpy(codec.decode(prob * 100, method=method).astype(np.float32))  # (B, K, 2) input px
            return (xy, hm) if return_heatmaps else xy

        model.forward = decoded
        nme = evaluate(Predictor(model, backend="torch"), ds, progress=False).summary["nme_challenge"]
        print(f"{method} decoding of the softmax heatmaps ({side}x{side}): {nme:.3f}")
    model.forward = forward


if __name__ == "__main__":
    main()
