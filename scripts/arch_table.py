"""Architecture / input size against time per face: the ms side of the ms-vs-NME table (issue 13).

Each candidate (a registered model at an input size) is built untrained, exported to ONNX in memory exactly as a
trained one would be, and timed through ``Predictor.predict(image, box=)`` on one thread, in turn call by call
with dlib's shape predictor given the same box (when installed) and the shipped model, on the validation crops.
The time of a graph does not depend on its weights, so this is each candidate's cost as it would ship. The NME
column comes from evaluation JSONs of trained runs of that candidate at one training budget, where they exist
(``--nme NAME@SIZE=FILE``).

    python scripts/arch_table.py --json docs/evals/arch_table.json \
        --nme shufflenetv2_x1_0_heatmap@128=docs/evals/compare_control.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lightmark import Predictor
from lightmark.detectors.base import points_box
from lightmark.engine.benchmark import benchmark_faces, dlib_rect
from lightmark.engine.export import onnx_bytes
from lightmark.engine.timing import ratio_stats, time_interleaved, timing_stats
from lightmark.models import create_model, model_summary

CANDIDATES = (
    ("shufflenetv2_x0_5_heatmap", 128),
    ("shufflenetv2_x1_0_heatmap", 96),
    ("shufflenetv2_x1_0_heatmap", 128),
    ("shufflenetv2_x1_0_heatmap", 160),
    ("shufflenetv2_x1_5_heatmap", 128),
    ("shufflenetv2_x1_0_regression", 128),
    ("shufflenetv2_x0_5_regression", 128),
    ("mobilenet_x1_0_heatmap", 128),
    ("mobilenet_x1_0_heatmap", 160),
    ("resnet18_regression", 128),
    ("resnet50_regression", 128),
)


def candidate(name: str, size: int) -> tuple[Predictor, dict]:
    """An ONNX predictor of the untrained candidate (one thread) and its size figures."""
    model = create_model(name, input_size=size).eval()
    return Predictor(model, onnx=onnx_bytes(model), threads=1, refine=0), model_summary(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/aflw2000/val")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--nme", nargs="*", default=[], help="NAME@SIZE=eval.json: NME of a trained run of a candidate")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    images, gt = benchmark_faces(args.data, None)
    boxes = [points_box(g) for g in gt]
    n = len(images)
    calls = {}
    try:
        from lightmark.engine.baselines import DlibPredictor

        dlib = DlibPredictor()
        rects = [dlib_rect(b) for b in boxes]
        calls["dlib"] = lambda r: dlib.predict(images[r % n], rects[r % n])
    except Exception as e:  # dlib missing: times only
        print(f"dlib not timed ({e})")
    rows = {}
    for name, size in CANDIDATES:
        pred, summary = candidate(name, size)
        key = f"{name}@{size}"
        rows[key] = summary
        calls[key] = lambda r, p=pred: p.predict(images[r % n], box=boxes[r % n])
    ms = time_interleaved(calls, args.rounds, warmup=20)
    nme = {}
    for item in args.nme:
        key, path = item.split("=", 1)
        nme[key] = json.loads(Path(path).read_text())["nme_challenge"] if Path(path).is_file() else None
    print(f"{'candidate':40s} {'params M':>8s} {'GMACs':>6s} {'ms':>6s} {'/ dlib [IQR]':>22s} {'NME':>6s}")
    if "dlib" in ms:
        print(f"{'dlib shape predictor, given the box':40s} {'':>8s} {'':>6s} {np.median(ms['dlib']):6.3f}")
    for key, summary in rows.items():
        rows[key] = {**summary, "ms": timing_stats(ms[key]), "nme": nme.get(key)}
        ratio = ""
        if "dlib" in ms:
            rows[key]["ratio_to_dlib"] = r = ratio_stats(ms[key], ms["dlib"])
            ratio = f"{r['median']:.3f} [{r['q25']:.2f}, {r['q75']:.2f}]"
        shown = "-" if rows[key]["nme"] is None else f"{rows[key]['nme']:.2f}"
        print(
            f"{key:40s} {summary['params'] / 1e6:8.2f} {summary['gmacs']:6.3f} "
            f"{np.median(ms[key]):6.3f} {ratio:>22s} {shown:>6s}"
        )
    if args.json:
        out = {"dlib_ms": timing_stats(ms["dlib"]) if "dlib" in ms else None, "candidates": rows}
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
