"""NME/384 on the re-framed validation crops as grouped bars, one panel per model, one bar per reading (whole crop,
detector, auto), from the JSONs of ``scripts/reframe_eval.py``; the dashed line is issue 10's goal for the last
reading of each panel (its unperturbed figure + 0.5). Bars above the axis are cut and labelled with their value.

    python scripts/reframe_chart.py --out docs/reframe_chart.png \
        --row "protocol|whole crop=docs/evals/reframe_two_pass_c.json:whole, refine 1" \
        --row "protocol|auto=docs/evals/reframe_auto_protocol.json:auto"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = ["none", "scale_0.5", "scale_1.5", "shift_x_0.2", "shift_y_0.2", "roll_90", "roll_180"]
NAMES = ["as given", "face 0.5x", "face 1.5x", "shift x 20 %", "shift y 20 %", "roll 90", "roll 180"]
TOP = 8.0  # NME/384 shown; higher bars are cut and labelled


def read_rows(items: list[str]) -> dict[str, list[tuple[str, list[float]]]]:
    """``PANEL|LABEL=file.json:row`` items -> per panel, (label, NME per re-framed set in SETS order)."""
    panels: dict[str, list[tuple[str, list[float]]]] = {}
    for item in items:
        key, ref = item.split("=", 1)
        panel, _, label = key.partition("|")
        path, _, row = ref.rpartition(":")
        figures = json.loads(Path(path).read_text())["rows"][row]
        panels.setdefault(panel, []).append((label, [float(figures[s]) for s in SETS]))
    return panels


def draw(panels: dict[str, list[tuple[str, list[float]]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), sharey=True, squeeze=False)
    x = np.arange(len(SETS))
    for ax, (panel, rows) in zip(axes[0], panels.items(), strict=True):
        width = 0.8 / len(rows)
        for i, (label, values) in enumerate(rows):
            pos = x - 0.4 + width * (i + 0.5)
            bars = ax.bar(pos, np.minimum(values, TOP), width, label=label)
            for p, v in zip(pos, values, strict=True):
                if v > TOP:
                    ax.text(p, TOP * 0.97, f"{v:.0f}", ha="center", va="top", fontsize=7, rotation=90, color="white")
        goal = rows[-1][1][0] + 0.5
        ax.axhline(goal, color=bars.patches[0].get_facecolor(), ls="--", lw=1)
        ax.set_title(f"{panel}: dashed = {rows[-1][0]} as given + 0.5")
        ax.set_xticks(x, NAMES, rotation=30, ha="right")
        ax.set_ylim(0, TOP)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("NME/384 % (199 validation crops)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--row", action="append", required=True, help="PANEL|LABEL=reframe_eval.json:row key")
    ap.add_argument("--out", required=True, help="PNG to write")
    a = ap.parse_args()
    draw(read_rows(a.row), Path(a.out))


if __name__ == "__main__":
    main()
