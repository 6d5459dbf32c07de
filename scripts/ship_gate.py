"""Compare a candidate model's evaluation JSONs with the shipped model's, figure by figure.

The rule for shipping a new model of a track (README, "Reproduce"): it must not be worse than the shipped one on
validation (framing auto: all faces and |yaw| 60-90), on every re-framing row, and on HELEN inner-51. This prints the
figures side by side and exits 1 when any of them is worse, so the decision is read from measured JSONs, not memory.

    python scripts/ship_gate.py \
        --val docs/evals/mobilenet_protocol_auto.json docs/evals/framing_auto_protocol.json \
        --reframe docs/evals/reframe_auto_mobilenet_protocol.json docs/evals/reframe_auto_protocol.json \
        --helen docs/evals/helen_mobilenet_protocol.json docs/evals/helen_shipped_auto.json:protocol
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _load(spec: str) -> dict:
    """Read `path` or `path:key` (one model's entry of a JSON that holds several)."""
    path, _, key = spec.partition(":")
    data = json.loads(Path(path).read_text())
    if key:
        return data[key]
    if len(data) == 1 and isinstance(next(iter(data.values())), dict) and "all_870" in next(iter(data.values())):
        return next(iter(data.values()))  # helen_check.py keys its figures by the model's path
    return data


def gate_rows(val: tuple[str, str] | None, reframe: tuple[str, str] | None, helen: tuple[str, str] | None):
    """(figure, candidate, shipped) for every figure the gate compares; lower is better for all of them."""
    rows: list[tuple[str, float, float]] = []
    if val:
        cand, ship = (_load(s) for s in val)
        rows.append(("val NME/384", cand["nme_challenge"], ship["nme_challenge"]))
        for b in ("yaw_0_30", "yaw_30_60", "yaw_60_90"):
            rows.append((f"val {b}", cand[b]["nme_challenge"], ship[b]["nme_challenge"]))
    if reframe:
        cand, ship = (next(iter(_load(s)["rows"].values())) for s in reframe)
        for k, v in ship.items():
            if k != "latency_ms":
                rows.append((f"reframe {k}", cand[k], v))
    if helen:
        cand, ship = (_load(s) for s in helen)
        for part in ("inner_51", "jaw_17"):
            rows.append((f"HELEN 870 {part}", cand["all_870"][part], ship["all_870"][part]))
            rows.append((f"HELEN 170 {part}", cand["holdout_170"][part], ship["holdout_170"][part]))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--val", nargs=2, metavar=("CANDIDATE", "SHIPPED"), help="lightmark evaluate --json outputs")
    p.add_argument("--reframe", nargs=2, metavar=("CANDIDATE", "SHIPPED"), help="scripts/reframe_eval.py outputs")
    p.add_argument("--helen", nargs=2, metavar=("CANDIDATE", "SHIPPED"), help="scripts/helen_check.py outputs")
    p.add_argument("--tolerance", type=float, default=0.0, help="how much worse a figure may be and still pass")
    p.add_argument(
        "--informational",
        nargs="*",
        default=["HELEN 870 jaw_17", "HELEN 170 jaw_17"],
        help="figures shown but not gated",
    )
    args = p.parse_args(argv)
    rows = gate_rows(args.val, args.reframe, args.helen)
    print("| figure | candidate | shipped | change |\n|---|---|---|---|")
    worse = []
    for name, c, s in rows:
        flag = ""
        if c > s + args.tolerance and name not in args.informational:
            worse.append(name)
            flag = " (worse)"
        print(f"| {name} | {c:.3f} | {s:.3f} | {c - s:+.3f}{flag} |")
    print(
        f"\n{len(rows) - len(worse)} of {len(rows)} figures no worse"
        + (f"; worse: {', '.join(worse)}" if worse else "")
    )
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
