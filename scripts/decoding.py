"""Heatmap decoding on the validation crops: the soft-argmax the model is trained through (at several inverse
temperatures) against DARK and plain argmax decoding of the same (softmaxed) heatmaps.

    python scripts/decoding.py [--model protocol] [--data ../shared/data/aflw2000/val]

Prints one line per decoding with the challenge NME (percent of 384).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from lightmark.codecs import PEAK_DECODERS
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
    trained = model.config
    side = trained.input_size // trained.heatmap_stride
    variants = [(f"soft-argmax beta {b:g}{' (trained)' if b == trained.beta else ''}", {"beta": b}) for b in
                (0.7, trained.beta, 1.5)]  # fmt: skip
    variants += [(f"{d} decoding of the softmax heatmaps ({side}x{side})", {"decoder": d}) for d in PEAK_DECODERS]
    for label, change in variants:
        model.config = replace(trained, **change)  # the codec follows the config: no patched forward
        nme = evaluate(Predictor(model, backend="torch", framing="whole"), ds, progress=False).summary["nme_challenge"]
        print(f"{label}: {nme:.3f}")
    model.config = trained


if __name__ == "__main__":
    main()
