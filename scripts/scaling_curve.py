"""Validation NME against training samples seen: scaling curves (issue 10), from evaluation JSONs of separate
runs, each trained to its own budget with its own full schedule (``make scaling`` writes them); one curve per
series label, and its |yaw| 60-90 bin dashed.

    python scripts/scaling_curve.py --eval "control@96000=docs/evals/compare_control.json" \
        --eval "control@288000=docs/evals/scaling_control_18x16k.json" --out docs/scaling_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_points(items: list[str]) -> dict[str, list[tuple[int, float, dict]]]:
    """``SERIES@SAMPLES=eval.json`` items -> per series, sorted (samples, NME/384, per-yaw-bin NME) of the files
    that exist."""
    series: dict[str, list[tuple[int, float, dict]]] = {}
    for item in items:
        key, path = item.split("=", 1)
        label, _, samples = key.rpartition("@")
        if not Path(path).is_file():
            print(f"{path}: not there yet, left out")
            continue
        d = json.loads(Path(path).read_text())
        bins = {k: d[k]["nme_challenge"] for k in ("yaw_0_30", "yaw_30_60", "yaw_60_90") if k in d}
        series.setdefault(label or "all", []).append((int(samples), float(d["nme_challenge"]), bins))
    return {label: sorted(points) for label, points in series.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", action="append", default=[], help="SERIES@SAMPLES=eval.json (one per run)")
    ap.add_argument("--out", type=Path, required=True, help="the plot (PNG)")
    ap.add_argument("--title", default="recipe (c) from scratch: validation NME/384 against samples seen")
    args = ap.parse_args()
    series = read_points(args.eval)
    if not series:
        raise SystemExit("no evaluation JSON found")
    from lightmark.viz import plot_scaling

    curves, dashed = {}, {}
    for label, points in series.items():
        curves[label] = {n: nme for n, nme, _ in points}
        dashed[f"{label}, |yaw| 60-90"] = {n: b.get("yaw_60_90", float("nan")) for n, _, b in points}
        for samples, nme, _ in points:
            print(f"{label:40s} {samples:>9d} samples: {nme:.3f}")
    plot_scaling(curves, args.out, args.title, dashed=dashed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
