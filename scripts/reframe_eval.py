"""NME/384 of a model on re-framed copies of the validation crops (face 0.5x / 1.5x, shifted 20 %, rolled 90 / 180
degrees; black borders where the image runs out), single-pass and with the model's refine passes, with the
single-thread latency of each (mean over the first 50 crops, each once). NME/384 grows with the face's size at equal
relative accuracy (a face at 1.5x size scores about 1.5x the unperturbed figure), so each set's NME/box (scale-free)
is written too.

    python scripts/reframe_eval.py [--model protocol] [--data ../shared/data/aflw2000/val] [--json r.json]

The re-framed sets are written once under --work (default /tmp/lightmark_reframe) and reused.
"""

from __future__ import annotations

import argparse
import json

from lightmark.data.formats import load_dataset
from lightmark.data.images import read_image
from lightmark.data.reframe import reframed_sets
from lightmark.engine.evaluate import evaluate
from lightmark.engine.predict import Predictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="protocol", help="checkpoint path or shipped track name")
    ap.add_argument("--data", default="../shared/data/aflw2000/val", help="labelled square crops")
    ap.add_argument("--work", default="/tmp/lightmark_reframe", help="where the re-framed sets are written")
    ap.add_argument("--refine", type=int, nargs="+", default=[0, 1], help="refine passes to compare (whole framing)")
    ap.add_argument("--framing", nargs="+", default=["whole", "detect"], help="framings to compare (Predictor)")
    ap.add_argument("--json", help="write the figures as JSON")
    a = ap.parse_args()
    source = load_dataset(a.data, require_landmarks=True)
    sets = reframed_sets(source, a.work)
    rows, rows_box = {}, {}  # NME/384 (with latency) and NME/box (scale-free) per set
    runs = [("whole", r) for r in a.refine] if "whole" in a.framing else []
    runs += [(f, None) for f in a.framing if f != "whole"]  # detect: one refining pass (the Predictor's minimum)
    timed = [read_image(s.image_path) for s in source.samples[:50]]
    for framing, refine in runs:
        predictor = Predictor(a.model, refine=refine, threads=1, framing=framing)
        ms = predictor.latency_ms(timed, runs=len(timed), warmup=5)["mean"]  # each timed image once
        summaries = {n: evaluate(predictor, d, progress=False).summary for n, d in sets.items()}
        nmes = {n: s["nme_challenge"] for n, s in summaries.items()}
        label = f"{framing}, refine {predictor.refine}" if framing == "whole" else f"{framing}"
        rows[label] = {"latency_ms": ms, **nmes}
        rows_box[label] = {n: s["nme_box"] for n, s in summaries.items()}
        print(f"{label} ({ms:.2f} ms): " + "  ".join(f"{n} {v:.2f}" for n, v in nmes.items()), flush=True)
        print("  NME / box: " + "  ".join(f"{n} {v:.2f}" for n, v in rows_box[label].items()), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": str(a.model), "data": a.data, "rows": rows, "rows_box": rows_box}, f, indent=1)


if __name__ == "__main__":
    main()
