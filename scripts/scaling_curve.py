"""Validation NME against training samples seen: the scaling curve of one recipe (issue 10), from evaluation JSONs
of separate runs, each trained to its own budget with its own full schedule (``make scaling`` writes them).

    python scripts/scaling_curve.py --eval 96000=docs/evals/compare_control.json \
        --eval 288000=docs/evals/scaling_288k.json --out docs/scaling_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_points(items: list[str]) -> list[tuple[int, float, dict]]:
    """``SAMPLES=eval.json`` items -> sorted (samples, NME/384, per-yaw-bin NME) of the files that exist."""
    points = []
    for item in items:
        samples, path = item.split("=", 1)
        if not Path(path).is_file():
            print(f"{path}: not there yet, left out")
            continue
        d = json.loads(Path(path).read_text())
        bins = {k: d[k]["nme_challenge"] for k in ("yaw_0_30", "yaw_30_60", "yaw_60_90") if k in d}
        points.append((int(samples), float(d["nme_challenge"]), bins))
    return sorted(points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", action="append", default=[], help="SAMPLES=eval.json (one per budget)")
    ap.add_argument("--out", type=Path, required=True, help="the plot (PNG)")
    ap.add_argument("--title", default="recipe (c) from scratch: validation NME against samples seen")
    args = ap.parse_args()
    points = read_points(args.eval)
    if not points:
        raise SystemExit("no evaluation JSON found")
    from lightmark.viz import plot_scaling

    xs = [p[0] for p in points]
    curves = {"all 199": [p[1] for p in points]}
    for key, label in (("yaw_0_30", "|yaw| < 30"), ("yaw_60_90", "|yaw| 60-90")):
        curves[label] = [p[2].get(key, float("nan")) for p in points]
    plot_scaling(xs, curves, args.out, args.title)
    for samples, nme, _ in points:
        print(f"{samples:>9d} samples: {nme:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
