"""Command-line interface: a thin layer over the Python API (every command calls an importable function)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import LightmarkError


def _cmd_train(a: argparse.Namespace) -> int:
    from .engine.train import TrainConfig, train

    cfg = TrainConfig(
        train=[str(p) for p in a.train],
        val=a.val,
        out=a.out,
        model=a.model,
        input_size=a.input_size,
        train_weights=a.train_weights,
        epochs=a.epochs,
        samples_per_epoch=a.samples_per_epoch,
        batch_size=a.batch_size,
        lr=a.lr,
        loss=a.loss,
        heatmap_weight=a.heatmap_weight,
        ema_decay=a.ema,
        photometric=a.photometric,
        rotation_deg=a.rotation,
        workers=a.workers,
        threads=a.threads,
        device=a.device,
        seed=a.seed,
        checkpoint_minutes=a.checkpoint_minutes,
        max_steps=a.max_steps,
    )
    result = train(cfg, resume=a.resume, progress=not a.quiet)
    if result.history:
        print(f"best val NME {result.best_nme:.3f}% -> {result.best_path}")
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from .engine.evaluate import evaluate

    report = evaluate(a.model, a.data, batch_size=a.batch_size, flip_test=a.flip_test, progress=not a.quiet)
    print(report.table())
    if a.json:
        report.save_json(a.json)
        print(f"wrote {a.json}")
    if a.plots:
        for p in report.save_plots(a.plots):
            print(f"wrote {p}")
    return 0


def _expand_inputs(inputs: Sequence[str]):
    from .data.formats import load_dataset, load_images

    if len(inputs) == 1:
        return load_dataset(inputs[0])
    return load_images([Path(p) for p in inputs])


def _cmd_predict(a: argparse.Namespace) -> int:
    from .engine.predict import Predictor

    data = _expand_inputs(a.inputs)
    predictor = Predictor(a.model, flip_test=a.flip_test, threads=a.threads)
    res = predictor.predict_dataset(data, batch_size=a.batch_size, progress=not a.quiet, skip_bad=a.skip_bad)
    res.save_submission(a.out, a.zip)
    print(f"wrote {len(res)} rows to {a.out}" + (f" and {a.zip}" if a.zip else ""))
    if a.json:
        res.save_json(a.json)
        print(f"wrote {a.json}")
    if a.vis:
        res.save_visualizations(a.vis, limit=a.vis_limit)
        print(f"wrote {min(len(res), a.vis_limit)} annotated images to {a.vis}")
    for name, why in res.skipped:
        print(f"skipped {name}: {why}", file=sys.stderr)
    return 0


def _cmd_check(a: argparse.Namespace) -> int:
    from .submission import check_submission

    rep = check_submission(a.solution, a.images)
    if rep.ok:
        print(f"OK: {rep.rows} rows" + (f" for {rep.images} images" if a.images else ""))
        return 0
    for p in rep.problems:
        print(f"{a.solution}: {p}", file=sys.stderr)
    return 1


def _cmd_export(a: argparse.Namespace) -> int:
    from .models import default_model_path

    src = a.model or default_model_path()
    if a.format == "pt":
        from .engine.train import export_weights

        export_weights(src, a.out)
    else:
        from .engine.export import export_onnx

        diff = export_onnx(src, a.out)
        print(f"max |onnx - torch| = {diff:.2e} px")
    print(f"wrote {a.out}")
    return 0


def _cmd_synth(a: argparse.Namespace) -> int:
    from .synth import render_dataset

    stats = render_dataset(
        a.out,
        a.count,
        size=a.size,
        seed=a.seed,
        workers=a.workers,
        face_model=a.face_model,
        backgrounds=a.backgrounds,
        progress=not a.quiet,
    )
    print(json.dumps(stats))
    return 0


def _cmd_models(a: argparse.Namespace) -> int:
    from .models import create_model, list_models, model_summary

    for name in list_models():
        s = model_summary(create_model(name))
        print(
            f"{name:<34} {s['params'] / 1e6:6.2f}M params {s['size_mb']:6.2f} MB  {s['gmacs']:.3f} GMACs @ {s['input_size']}px"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightmark", description="Light-weight 68-point facial landmarks.")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model (also under torchrun for several processes)")
    t.add_argument("--train", action="append", required=True, type=Path, help="training dataset (repeatable)")
    t.add_argument("--train-weights", type=float, nargs="+", help="sampling weight of each --train set")
    t.add_argument("--val", help="labelled validation set, scored every epoch")
    t.add_argument(
        "--model", default="shufflenetv2_x1_0_heatmap", help="registered model name (see `lightmark models`)"
    )
    t.add_argument("--input-size", type=int, default=128)
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--samples-per-epoch", type=int, default=20_000)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--loss", default="wing")
    t.add_argument("--heatmap-weight", type=float, default=0.05)
    t.add_argument("--ema", type=float, default=0.998, help="EMA decay of the weights (0 = off)")
    t.add_argument("--photometric", type=float, default=1.0, help="photometric augmentation strength 0..1")
    t.add_argument("--rotation", type=float, default=30.0, help="max random rotation in degrees")
    t.add_argument("--workers", type=int, default=1)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-minutes", type=float, default=10.0)
    t.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = no limit)")
    t.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, curves.png)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=_cmd_train)

    e = sub.add_parser("evaluate", help="score a model on a labelled dataset")
    e.add_argument("--data", required=True)
    e.add_argument("--model", help="checkpoint (default: the shipped model)")
    e.add_argument("--json", help="write the report as JSON")
    e.add_argument("--plots", help="folder for CED plots and the worst-predictions gallery")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--flip-test", action="store_true", help="average with the mirrored image's prediction")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(fn=_cmd_evaluate)

    pr = sub.add_parser("predict", help="predict landmarks, write a challenge submission")
    pr.add_argument("inputs", nargs="+", help="a dataset folder, or image files")
    pr.add_argument("--model", help="checkpoint (default: the shipped model)")
    pr.add_argument("--out", required=True, help="solution.txt to write")
    pr.add_argument("--zip", help="also write a zip holding solution.txt")
    pr.add_argument("--json", help="also write predictions as JSON")
    pr.add_argument("--vis", help="folder for annotated images")
    pr.add_argument("--vis-limit", type=int, default=50)
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument("--threads", type=int)
    pr.add_argument("--flip-test", action="store_true")
    pr.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of failing")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(fn=_cmd_predict)

    c = sub.add_parser("check-submission", help="validate a solution.txt (or zip)")
    c.add_argument("solution")
    c.add_argument("--images", help="the image folder the submission covers")
    c.set_defaults(fn=_cmd_check)

    x = sub.add_parser("export", help="export a model (slim .pt or ONNX)")
    x.add_argument("--format", choices=["pt", "onnx"], default="onnx")
    x.add_argument("--model", help="checkpoint (default: the shipped model)")
    x.add_argument("--out", required=True)
    x.set_defaults(fn=_cmd_export)

    s = sub.add_parser("synth", help="render synthetic labelled faces (FaceSynthetics format)")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--face-model", help="ICT Face Model .npz or FaceXModel folder")
    s.add_argument("--backgrounds", help="folder of background images (e.g. FaceSynthetics samples)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=_cmd_synth)

    m = sub.add_parser("models", help="list registered models with size and cost")
    m.set_defaults(fn=_cmd_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except LightmarkError as e:
        if args.debug:
            raise
        print(f"lightmark {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
