"""Interpolate two checkpoints of one network in weight space (WiSE-FT): ``(1 - alpha) * START + alpha * END``.

A fine-tune that gains on one figure and loses on another (the skinned protocol fine-tune: validation better, HELEN
worse) can be blended with the model it started from; the result is still one network of the same size.

    python scripts/interpolate_weights.py --start ../runs/mobilenet_protocol/last.pt \\
        --end ../runs/mobilenet_protocol_textures/last.pt --alpha 0.5 --out wise.pt
"""

from __future__ import annotations

import argparse

from lightmark.models.checkpoint import interpolate_checkpoints, load_checkpoint


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", required=True, help="the checkpoint the fine-tune started from (alpha 0)")
    ap.add_argument("--end", required=True, help="the fine-tuned checkpoint (alpha 1)")
    ap.add_argument("--alpha", type=float, required=True, help="weight of --end, in [0, 1]")
    ap.add_argument("--out", required=True, help="the interpolated checkpoint")
    a = ap.parse_args(argv)
    ckpt = interpolate_checkpoints(load_checkpoint(a.start), load_checkpoint(a.end), a.alpha)
    ckpt.extra["interpolated"].update(start=str(a.start), end=str(a.end))
    ckpt.save(a.out)
    print(f"wrote {a.out} ({1 - a.alpha:g} x {a.start} + {a.alpha:g} x {a.end})")


if __name__ == "__main__":
    main()
