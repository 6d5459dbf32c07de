"""Where a model's points sit, region by region, against a labelled set: mean point error and mean signed offset
(x, y in pixels; y > 0: below the labels) of each region of the 68 points, through ``Predictor.predict``'s default
reading.

    python scripts/region_offsets.py --model ../runs/protocol_s9.pt ../runs/mobilenet_protocol_textures_fs/last.pt
        [--data ../shared/data/aflw2000/val] [--json r.json]

A definition difference (brows on their upper edge or their centre line, say) shows as a signed offset shared by
the faces of a set, an error as spread around it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from lightmark.data.formats import load_dataset
from lightmark.engine.evaluate import in_scheme
from lightmark.engine.predict import Predictor
from lightmark.metrics import point_errors
from lightmark.schemes import get_scheme

OUTER_UPPER_LIP = tuple(range(49, 54))
"""Points 49-53, the ones FaceSynthetics' definition moves inside the lip (docs/synth.md)."""


def region_offsets(pred: np.ndarray, gt: np.ndarray) -> dict[str, dict[str, float]]:
    """pred, gt: (N, 68, 2) pixels -> per region of ibug68 (and the outer upper lip): mean error, mean x and y
    offset (pred - gt)."""
    err = point_errors(pred, gt)  # (N, 68)
    d = pred - gt  # (N, 68, 2)
    groups = {"all": tuple(range(68)), **get_scheme("ibug68").regions, "outer_upper_lip": OUTER_UPPER_LIP}
    out = {}
    for name, ix in groups.items():
        ix = list(ix)
        out[name] = {
            "error_px": float(err[:, ix].mean()),
            "dx_px": float(d[:, ix, 0].mean()),
            "dy_px": float(d[:, ix, 1].mean()),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", required=True, help="shipped track names or checkpoint paths")
    ap.add_argument("--data", default="../shared/data/aflw2000/val", help="labelled 68-point set")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    data = load_dataset(a.data, require_landmarks=True)
    gt = data.landmarks_array()  # (N, 68, 2)
    result = {}
    for name in a.model:
        predictor = Predictor(name)
        pred = predictor.predict_dataset(data, progress=False).landmarks
        result[name] = region_offsets(in_scheme(pred, predictor.config.scheme, data.scheme), gt)
        print(name)
        for region, r in result[name].items():
            print(f"  {region:15s} error {r['error_px']:6.2f} px  dx {r['dx_px']:+6.2f}  dy {r['dy_px']:+6.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"data": a.data, "models": result}, f, indent=1)


if __name__ == "__main__":
    main()
