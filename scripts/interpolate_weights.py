"""Interpolate two checkpoints of one network in weight space (WiSE-FT): ``(1 - alpha) * START + alpha * END``.

A fine-tune that gains on one figure and loses on another (the skinned protocol fine-tune: validation better, HELEN
worse) can be blended with the model it started from; the result is still one network of the same size.

    python scripts/interpolate_weights.py --start ../runs/mobilenet_protocol/last.pt \\
        --end ../runs/mobilenet_protocol_textures/last.pt --alpha 0.5 --out wise.pt \\
        [--track protocol --val ../shared/data/aflw2000/val]

With ``--val`` the result's whole-crop validation NME/384 is recorded in it (``val_nme``, what a shipped checkpoint
carries and ``lightmark export`` keeps); ``--track`` records its track, as ``lightmark export --track`` does.
"""

from __future__ import annotations

import argparse

from lightmark.models.checkpoint import SHIPPED_MODELS, interpolate_checkpoints, load_checkpoint


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", required=True, help="the checkpoint the fine-tune started from (alpha 0)")
    ap.add_argument("--end", required=True, help="the fine-tuned checkpoint (alpha 1)")
    ap.add_argument("--alpha", type=float, required=True, help="weight of --end, in [0, 1]")
    ap.add_argument("--out", required=True, help="the interpolated checkpoint")
    ap.add_argument("--track", choices=list(SHIPPED_MODELS), help="record the training track")
    ap.add_argument("--val", help="labelled validation crops: record the result's whole-crop NME/384 (val_nme)")
    a = ap.parse_args(argv)
    ckpt = interpolate_checkpoints(load_checkpoint(a.start), load_checkpoint(a.end), a.alpha)
    ckpt.extra["interpolated"].update(start=str(a.start), end=str(a.end))
    ckpt.track = a.track or ckpt.track
    ckpt.save(a.out)
    if a.val:
        from lightmark.engine.evaluate import evaluate

        ckpt.val_nme = float(evaluate(a.out, a.val, progress=False).summary["nme_challenge"])
        ckpt.save(a.out)
        print(f"validation NME/384 (whole crop): {ckpt.val_nme:.3f}")
    print(f"wrote {a.out} ({1 - a.alpha:g} x {a.start} + {a.alpha:g} x {a.end})")


if __name__ == "__main__":
    main()
