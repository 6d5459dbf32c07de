"""Is a candidate's change on the validation crops more than noise? The per-image NME/384 differences of two
``lightmark evaluate --json`` outputs on the same images, overall and per |yaw| bin: mean, a paired bootstrap 95 %
interval, and how many images got better. The ship gate (scripts/ship_gate.py) compares means only; this says how
far apart they would have to be to mean anything.

    python scripts/paired_diff.py docs/evals/resnet18_mixed_10p16x16k_auto.json \
        docs/evals/framing_auto_mixed_resnet18_s21.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def per_image(path: Path) -> dict[str, float]:
    """image name -> NME/384 of one evaluation JSON."""
    return {p["name"]: float(p["nme_challenge"]) for p in json.loads(path.read_text())["per_image"]}


def paired_diff(diff: np.ndarray, draws: int = 4000, seed: int = 0) -> dict[str, float]:
    """``diff`` (N,) candidate minus shipped, per image -> mean, bootstrap 2.5 / 97.5 percentiles of the mean
    (``draws`` resamples of the N images with replacement), images better (diff < 0) and N."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (draws, len(diff)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {
        "mean": float(diff.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "better": int((diff < 0).sum()),
        "n": len(diff),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("candidate", type=Path)
    ap.add_argument("shipped", type=Path)
    ap.add_argument(
        "--data", help="the crops both were scored on, for their yaw (default: the candidate's meta.dataset)"
    )
    args = ap.parse_args()
    from lightmark.data.formats import load_dataset
    from lightmark.metrics import yaw_bin_masks

    cand, ship = per_image(args.candidate), per_image(args.shipped)
    if cand.keys() != ship.keys():
        raise SystemExit("the two files score different images")
    data = args.data or json.loads(args.candidate.read_text())["meta"]["dataset"]
    dataset = load_dataset(data, require_landmarks=True)
    if set(dataset.names) != cand.keys():
        raise SystemExit(f"{data} holds other images than the two files score")
    diff = np.array([cand[n] - ship[n] for n in dataset.names])
    bins = {"all": np.ones(len(diff), bool), **yaw_bin_masks(dataset.yaws())}
    print("| images | candidate - shipped (mean) | 95 % bootstrap interval | better |\n|---|---|---|---|")
    for name, mask in bins.items():
        r = paired_diff(diff[mask])
        print(f"| {name} | {r['mean']:+.3f} | [{r['lo']:+.3f}, {r['hi']:+.3f}] | {r['better']} of {r['n']} |")


if __name__ == "__main__":
    main()
