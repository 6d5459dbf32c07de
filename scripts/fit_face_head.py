"""Fit a face / no-face head on a trained checkpoint (issue 12; :mod:`lightmark.engine.face_head`): the landmarks stay
as they are, the per-point confidence gains a factor P(face).

Positives are drawn from the checkpoint's own training sets with its own framings and augmentation (its saved
training config; ``--train`` replaces machine-local paths); negatives are procedural backgrounds and face-free
windows of the first half of the FaceSynthetics sample (by name). ``scripts/detect_check.py`` builds its group
photos' backgrounds from the second half, which the fit never sees as a negative (those pictures' faces, with some
of their background around them, are among the positives of a model trained on them).

    python scripts/fit_face_head.py --model src/lightmark/weights/lightmark_protocol.pt --out face.pt \
        [--train ../shared/data/facesynthetics_100 ../synth/s256] [--positives 4000] [--negatives 8000] [--json r.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np

from lightmark.engine.face_head import background_windows, facesynthetics_halves, fit_face_head, procedural_windows
from lightmark.engine.train import TrainConfig, build_trainset
from lightmark.models.checkpoint import load_checkpoint, weights_of

ROOT = Path(__file__).resolve().parents[1]
FS_DIR = ROOT.parent / "shared" / "data" / "facesynthetics_100"


def positives(
    train_config: dict, train: list[str] | None, count: int, seed: int, flip_perm: tuple[int, ...]
) -> np.ndarray:
    """(count, S, S, 3) uint8 training crops of the checkpoint's training sets, framed and augmented as it was."""
    known = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in train_config.items() if k in known})
    if train:
        cfg.train, cfg.train_weights, cfg.jaw_weights = list(train), None, None
    cfg.samples_per_epoch, cfg.seed = count, seed
    trainset = build_trainset(cfg, flip_perm)
    return np.stack([trainset[(0, i)][0].numpy().transpose(1, 2, 0) for i in range(count)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a lightmark checkpoint (.pt) with its training config")
    ap.add_argument("--out", required=True, help="the checkpoint with the face head")
    ap.add_argument("--train", nargs="*", help="training sets for the positives (default: the checkpoint's)")
    ap.add_argument("--backgrounds", default=str(FS_DIR), help="FaceSynthetics folder (pictures + _seg.png)")
    ap.add_argument("--positives", type=int, default=4000)
    ap.add_argument("--negatives", type=int, default=8000, help="half procedural, half FaceSynthetics windows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the fit's figures here")
    a = ap.parse_args()
    ckpt = load_checkpoint(a.model)
    model = ckpt.build_model()
    if not ckpt.train_config:
        raise SystemExit(f"{a.model}: no training config in the checkpoint: give --train and a full checkpoint")
    size = model.config.input_size
    rng = np.random.default_rng(a.seed)
    pos = positives(ckpt.train_config, a.train, a.positives, a.seed, model.config.flip_perm)
    photo = _augmenter(ckpt.train_config)
    neg = procedural_windows(rng, a.negatives // 2, size)
    neg += background_windows(facesynthetics_halves(a.backgrounds)[0], rng, a.negatives - len(neg), size)
    if len(neg) < a.negatives:
        raise SystemExit(f"{a.backgrounds}: only {len(neg)} of {a.negatives} negatives (no face-free windows there)")
    neg = np.stack([photo(rng, n) for n in neg])
    report = fit_face_head(model, pos, neg)
    print(json.dumps(report, indent=1))
    ckpt.config, ckpt.state_dict, ckpt.ema_state_dict = model.config.to_dict(), weights_of(model), None
    ckpt.optimizer = ckpt.scheduler = None  # the deployed (EMA) weights alone: not a run to resume
    ckpt.extra["face_head_fit"] = {**report, "seed": a.seed, "source": str(a.model)}
    ckpt.save(a.out)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    print(f"wrote {a.out}")


def _augmenter(train_config: dict) -> Callable[[np.random.Generator, np.ndarray], np.ndarray]:
    """The positives' photometric augmentation, for the negatives: ``f(rng, crop) -> crop``."""
    from lightmark.data.transforms import GAMMA_PROBABILITY, photometric_augmentation

    photo = photometric_augmentation(
        train_config.get("photometric", 1.0), train_config.get("gamma_probability", GAMMA_PROBABILITY)
    )

    def apply(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
        photo.set_random_seed(int(rng.integers(2**31)))
        return photo(image=crop)["image"]

    return apply


if __name__ == "__main__":
    main()
