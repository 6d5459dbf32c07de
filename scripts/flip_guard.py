"""The guarded flip test (session 19): how far a crop's direct and mirrored readings lie apart, and what the guard
(:data:`~lightmark.engine.predict.FLIP_DISAGREEMENT`) does to validation NME.

    python scripts/flip_guard.py --json docs/evals/flip_guard.json

For each shipped model: the distribution of the disagreement (mean point distance between the two readings / crop
side, every pass of every crop) on the 100 FaceSynthetics samples - the protocol model's training faces, where
the threshold was set - and on the 199 validation crops; then validation NME/384 through ``predict``'s default
reading (framing auto) without flip test, with the plain average (no guard) and with the guard at several
thresholds. One thread; the two readings are recomputed for the record, so this takes about twice a flip-test run.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from lightmark.data.formats import FaceDataset, load_dataset
from lightmark.engine.evaluate import evaluate
from lightmark.engine.predict import FLIP_DISAGREEMENT, Framing, Predictor, flip_disagreement, map_back_mirrored

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
THRESHOLDS = (0.02, 0.03, 0.05, 0.08)


class RecordingPredictor(Predictor):
    """A flip-test predictor that records each crop's disagreement (:func:`flip_disagreement`) as it reads."""

    record: list[float]

    def read_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        x = np.ascontiguousarray(np.asarray(crops).transpose(0, 3, 1, 2), dtype=np.float32)
        points = self.run_model(np.concatenate([x, x[..., ::-1]]))  # (2B, K, 2)
        back = map_back_mirrored(points[len(x) :], self.input_size, self.config.flip_perm)
        self.record.extend(flip_disagreement(points[: len(x)], back, self.input_size).tolist())
        return super().read_crops(crops)


def disagreement(model: str, images: list[Path]) -> dict:
    """Percentiles of the disagreement over every crop read (all passes) of ``images``."""
    p = RecordingPredictor(model, flip_test=True, threads=1)
    p.record = []
    for path in images:
        p.predict(str(path))
    d = np.asarray(p.record)
    if not len(d):
        raise SystemExit(f"{model}: no crop was read")
    pct = {f"p{q}": float(np.percentile(d, q)) for q in (50, 90, 95, 99)}
    return {"crops": len(d), **pct, "max": float(d.max()), "above_default": float((d > FLIP_DISAGREEMENT).mean())}


def validation(model: str, val: FaceDataset) -> dict:
    """Validation NME/384 (framing auto) without flip, with the plain average, and guarded at each threshold."""
    settings = {"no flip test": (False, math.inf), "plain average (no guard)": (True, math.inf)}
    settings |= {f"guard {t}": (True, t) for t in THRESHOLDS}
    out = {}
    for name, (flip, guard) in settings.items():
        p = Predictor(model, flip_test=flip, flip_disagreement=guard, threads=1, framing=Framing.AUTO)
        s = evaluate(p, val, progress=False).summary
        out[name] = {k: s[k] for k in ("nme_challenge", "yaw_0_30", "yaw_30_60", "yaw_60_90")}
        print(f"{model:9s} {name:26s} {s['nme_challenge']:.3f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["protocol", "mixed"], help="checkpoints or shipped track names")
    ap.add_argument("--data", default=str(DATA), help="the shared data folder")
    ap.add_argument("--json", help="write the figures as JSON")
    a = ap.parse_args()
    data = Path(a.data)
    fs = sorted(p for p in (data / "facesynthetics_100").glob("*.png") if "_seg" not in p.name)
    val = load_dataset(data / "aflw2000" / "val", require_landmarks=True)
    out = {}
    for model in a.model:
        out[model] = {
            "disagreement_facesynthetics_100": disagreement(model, fs),
            "disagreement_validation": disagreement(model, [s.image_path for s in val.samples]),
            "validation_auto": validation(model, val),
        }
        for k in ("disagreement_facesynthetics_100", "disagreement_validation"):
            print(model, k, {n: round(v, 4) for n, v in out[model][k].items()})
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
