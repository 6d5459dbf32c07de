"""Real-face check on 300-W HELEN faces: inter-ocular NME (outer eye corners 36/45) of all 68 points, the inner 51
(brows, eyes, nose, mouth) and the 17 jaw points, on all 870 faces and on the fixed 170-face holdout that no model
trains on (splits/helen_holdout_170.txt).

    python scripts/helen_check.py [--model protocol mixed ...] [--data ../shared/data/300w_helen_train] [--json r.json]
        [--framing whole|detect|auto] [--[no-]flip-test]

300-W's jaw follows the visible outline; the synthetic faces' and AFLW2000-3D's is the projected 3D jaw, so the jaw
column measures a convention gap as much as an error. Inner 51 is the comparable figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lightmark.data.formats import FaceDataset, load_dataset, read_name_lists
from lightmark.engine.evaluate import in_scheme
from lightmark.engine.predict import Framing, Predictor
from lightmark.metrics import interocular_scores

HOLDOUT = Path(__file__).resolve().parents[1] / "splits" / "helen_holdout_170.txt"


def split_holdout(full: FaceDataset) -> tuple[FaceDataset, FaceDataset]:
    """The 170 holdout faces of the HELEN set (:data:`HOLDOUT`) and the others."""
    held = read_name_lists([str(HOLDOUT)])
    keep = [s for s in full.samples if s.name in held]
    rest = [s for s in full.samples if s.name not in held]
    return FaceDataset(full.root, full.format, keep), FaceDataset(full.root, full.format, rest)


def scores(predictor: Predictor, data: FaceDataset) -> dict:
    """Mean inter-ocular NME (percent) of all 68 points, the inner 51 and the jaw (:func:`interocular_scores`)."""
    pred = predictor.predict_dataset(data, progress=False).landmarks  # (N, K, 2) in the model's scheme
    pred = in_scheme(pred, predictor.config.scheme, data.scheme)  # (N, 68, 2): e.g. a 98-point model's subset
    return interocular_scores(pred, data.landmarks_array())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["protocol", "mixed"], help="checkpoints or shipped track names")
    ap.add_argument("--data", default="../shared/data/300w_helen_train", help="the 870 HELEN faces")
    ap.add_argument("--json", help="write the figures as JSON")
    ap.add_argument("--framing", choices=[f.value for f in Framing], help="Predictor framing (default: the library's)")
    ap.add_argument(
        "--flip-test",
        action=argparse.BooleanOptionalAction,
        help="also read each crop mirrored (default: the model's, on for the shipped protocol model)",
    )
    a = ap.parse_args()
    full = load_dataset(a.data, require_landmarks=True)
    holdout = split_holdout(full)[0]
    out = {}
    for model in a.model:
        predictor = Predictor(model, framing=a.framing, flip_test=a.flip_test)
        out[model] = {"all_870": scores(predictor, full), "holdout_170": scores(predictor, holdout)}
        out[model] |= {"framing": predictor.framing.value, "flip_test": predictor.flip_test}
        for subset in ("all_870", "holdout_170"):
            s = out[model][subset]
            print(f"{model} {subset}: all {s['all_68']:.2f}  inner 51 {s['inner_51']:.2f}  jaw {s['jaw_17']:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
