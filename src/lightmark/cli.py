"""Command-line interface: a thin layer over the Python API (every command calls an importable function)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError, LightmarkError


def _cmd_train(a: argparse.Namespace) -> int:
    from .engine.train import TrainConfig, train

    cfg = TrainConfig(
        train=[str(p) for p in a.train],
        val=a.val,
        out=a.out,
        model=a.model,
        input_size=a.input_size,
        train_weights=a.train_weights,
        jaw_weights=a.jaw_weights,
        init=a.init,
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
    if a.profile:
        from .engine.train import profile_pipeline

        print(json.dumps(profile_pipeline(cfg, a.profile)))
        return 0
    result = train(cfg, resume=a.resume, progress=not a.quiet)
    if result.history and math.isfinite(result.best_nme):
        print(f"best val NME {result.best_nme:.3f}% -> {result.best_path}")
    elif result.history:
        print(f"trained {len(result.history)} epochs -> {result.out_dir / 'last.pt'} (no --val: nothing scored)")
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from .engine.evaluate import evaluate
    from .utils import check_writable

    if a.json:
        check_writable(a.json)
    if a.plots:
        check_writable(a.plots, folder=True)
    model = a.model
    if a.baseline == "dlib":
        from .engine.baselines import DlibPredictor

        if a.model or a.flip_test:
            raise ConfigError("--baseline dlib takes neither --model nor --flip-test")
        model = DlibPredictor()
    report = evaluate(
        model, a.data, batch_size=a.batch_size, flip_test=a.flip_test, progress=not a.quiet, latency=a.latency
    )
    written = []  # files first: a closed stdout (`| head`) must not lose them
    if a.json:
        report.save_json(a.json)
        written.append(a.json)
    if a.plots:
        written += report.save_plots(a.plots, label=str(report.meta.get("model", "lightmark")))
    print(report.table())
    if "latency_ms" in report.meta:
        lat = report.meta["latency_ms"]
        print(f"latency: {lat['median']:.2f} ms median (p90 {lat['p90']:.2f}) per face, 1 thread")
    for p in written:
        print(f"wrote {p}")
    return 0


def _expand_inputs(inputs: Sequence[str]):
    from .data.formats import load_dataset, load_images

    if len(inputs) == 1:
        return load_dataset(inputs[0])
    return load_images([Path(p) for p in inputs])


def _cmd_predict(a: argparse.Namespace) -> int:
    from .engine.predict import Predictor
    from .errors import ImageError
    from .utils import check_writable

    for path in (a.out, a.zip, a.json):  # fail before predicting (and before writing any output)
        if path:
            check_writable(path)
    if a.vis:
        check_writable(a.vis, folder=True)
    data = _expand_inputs(a.inputs)
    predictor = Predictor(a.model, backend=a.backend, flip_test=a.flip_test, threads=a.threads)
    res = predictor.predict_dataset(data, batch_size=a.batch_size, progress=not a.quiet, skip_bad=a.skip_bad)
    if not len(res):
        for name, why in res.skipped:
            print(f"skipped {name}: {why}", file=sys.stderr)
        raise ImageError(f"none of the {len(res.skipped)} images could be read; nothing written")
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
    from .models import resolve_model_path
    from .utils import check_writable

    src = resolve_model_path(a.model)
    if a.track and a.format != "pt":
        raise ConfigError("--track is recorded in .pt exports only (use --format pt)")
    check_writable(a.out)
    if a.format == "pt":
        from .engine.train import export_weights

        export_weights(src, a.out, **({"track": a.track} if a.track else {}))
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
            f"{name:<34} {s['params'] / 1e6:6.2f}M params {s['size_mb']:6.2f} MB  "
            f"{s['gmacs']:.3f} GMACs @ {s['input_size']}px"
        )
    return 0


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _cmd_benchmark(a: argparse.Namespace) -> int:
    from .engine.benchmark import run_benchmark
    from .errors import ConfigError
    from .utils import check_writable

    if a.runs < 1 or a.warmup < 0 or a.batch_size < 1:
        raise ConfigError(
            f"need --runs >= 1, --warmup >= 0 and --batch-size >= 1, got {a.runs}, {a.warmup}, {a.batch_size}"
        )
    if a.json:
        check_writable(a.json)
    report = run_benchmark(
        a.model,
        threads=a.threads,
        runs=a.runs,
        warmup=a.warmup,
        batch_size=a.batch_size,
        data=a.data,
        with_dlib=not a.no_dlib,
        progress=not a.quiet,
    )
    print(report.table())
    if a.json:
        from .utils import atomic_write

        with atomic_write(a.json) as f:
            json.dump(report.to_dict(), f, indent=1)
        print(f"wrote {a.json}")
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    stats = run_demo(
        a.source,
        out=a.out,
        show=a.show,
        csv=a.csv,
        json_path=a.json,
        max_faces=a.max_faces,
        model=a.model,
        detector=a.detector,
        backend=a.backend,
        threads=a.threads,
        redetect_every=a.redetect_every,
        smooth=not a.no_smooth,
        min_cutoff=a.min_cutoff,
        beta=a.beta,
        max_frames=a.max_frames,
        progress=not a.quiet,
    )
    print(stats.summary())
    for kind, path in stats.outputs.items():
        print(f"wrote {kind} {path}")
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from .report import results_table, update_readme
    from .utils import check_writable

    reports = {}
    for item in a.eval:
        label, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--eval expects LABEL=PATH, got {item!r}")
        reports[label] = path
    if a.ced:
        check_writable(a.ced)
    table = results_table(reports)
    print(table)
    if a.ced:
        from .report import ced_plot

        print(f"wrote {ced_plot(reports, a.ced)}")
    if a.readme:
        update_readme(a.readme, table, a.section)
        print(f"updated {a.readme}")
    return 0


MODEL_HELP = "checkpoint, or a shipped model: protocol | mixed (default: the shipped default model)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightmark", description="Light-weight 68-point facial landmarks.")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model (also under torchrun for several processes)")
    t.add_argument("--train", action="append", required=True, type=Path, help="training dataset (repeatable)")
    t.add_argument("--train-weights", type=float, nargs="+", help="sampling weight of each --train set")
    t.add_argument(
        "--jaw-weights",
        type=float,
        nargs="+",
        help="loss weight (0..1) of the 17 jaw points of each --train set, e.g. 0 for 300-W's visible-contour jaw",
    )
    t.add_argument("--init", help="start from this checkpoint's weights (fine-tuning; EMA weights when present)")
    t.add_argument("--val", help="labelled validation set, scored every epoch")
    t.add_argument(
        "--model", default="shufflenetv2_x1_0_heatmap", help="registered model name (see `lightmark models`)"
    )
    t.add_argument("--input-size", type=int, default=128, help="square input side in pixels (multiple of 32)")
    t.add_argument("--epochs", type=int, default=10, help="number of epochs")
    t.add_argument("--samples-per-epoch", type=int, default=20_000, help="augmented samples drawn per epoch")
    t.add_argument("--batch-size", type=int, default=64, help="images per optimiser step (per process under torchrun)")
    t.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (linear warm-up, cosine decay)")
    t.add_argument("--loss", default="wing", help="coordinate loss: wing, l1, l2 or smooth_l1")
    t.add_argument("--heatmap-weight", type=float, default=0.05, help="weight of the heatmap KL term (heatmap heads)")
    t.add_argument("--ema", type=float, default=0.998, help="EMA decay of the weights (0 = off)")
    t.add_argument("--photometric", type=float, default=1.0, help="photometric augmentation strength 0..1")
    t.add_argument("--rotation", type=float, default=30.0, help="max random rotation in degrees")
    t.add_argument("--workers", type=int, default=1, help="data loader worker processes (0 = in the main process)")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--seed", type=int, default=0, help="seed of the sample stream and the initial weights")
    t.add_argument("--checkpoint-minutes", type=float, default=10.0, help="also write last.pt mid-epoch this often")
    t.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = no limit)")
    t.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, curves.png)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--quiet", action="store_true")
    t.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="BATCHES",
        help="only measure images/s of the input pipeline and of training steps over BATCHES batches, then exit",
    )
    t.set_defaults(fn=_cmd_train)

    e = sub.add_parser("evaluate", help="score a model on a labelled dataset")
    e.add_argument("--data", required=True)
    e.add_argument("--model", help=MODEL_HELP)
    e.add_argument("--json", help="write the report as JSON")
    e.add_argument("--plots", help="folder for CED plots and the worst-predictions gallery")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--flip-test", action="store_true", help="average with the mirrored image's prediction")
    e.add_argument(
        "--baseline",
        choices=["dlib"],
        help="score a reference predictor instead of a model (dlib: HOG box + 68-point ERT; needs lightmark[dlib])",
    )
    e.add_argument("--latency", action="store_true", help="also time one prediction (median, 1 thread)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(fn=_cmd_evaluate)

    pr = sub.add_parser("predict", help="predict landmarks, write a challenge submission")
    pr.add_argument("inputs", nargs="+", help="a dataset folder, or image files")
    pr.add_argument("--model", help=MODEL_HELP)
    pr.add_argument("--out", required=True, help="solution.txt to write")
    pr.add_argument("--zip", help="also write a zip holding solution.txt")
    pr.add_argument("--json", help="also write predictions as JSON")
    pr.add_argument("--vis", help="folder for annotated images")
    pr.add_argument("--vis-limit", type=int, default=50)
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument("--threads", type=int)
    pr.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"], help="inference engine")
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
    x.add_argument("--model", help=MODEL_HELP)
    x.add_argument("--out", required=True)
    x.add_argument("--track", choices=["protocol", "mixed"], help="record the training track in a .pt export")
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

    r = sub.add_parser("report", help="results table (markdown) from evaluation JSONs")
    r.add_argument("--eval", action="append", required=True, metavar="LABEL=PATH", help="evaluate --json output")
    r.add_argument("--readme", help="replace a generated section of the README with the table")
    r.add_argument("--section", default="results", help="which section (README markers <!-- NAME:start/end -->)")
    r.add_argument("--ced", help="also plot the CED curves of every --eval to this PNG")
    r.set_defaults(fn=_cmd_report)

    m = sub.add_parser("models", help="list registered models with size and cost")
    m.set_defaults(fn=_cmd_models)

    b = sub.add_parser("benchmark", help="time the model (torch, ONNX Runtime, end to end; dlib when installed)")
    b.add_argument("--model", help=MODEL_HELP)
    b.add_argument("--threads", type=_int_list, default=[1, 2], help="thread counts to time, e.g. 1,2")
    b.add_argument("--runs", type=int, default=300, help="timed runs per figure (after a warm-up)")
    b.add_argument("--warmup", type=int, default=20, help="untimed runs before each figure")
    b.add_argument("--batch-size", type=int, default=32, help="batch size of the throughput figure")
    b.add_argument("--data", help="folder of face crops to time on (default: synthetic drawings)")
    b.add_argument("--no-dlib", action="store_true", help="skip dlib's shape predictor even when installed")
    b.add_argument("--json", help="write every figure as JSON")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(fn=_cmd_benchmark)

    d = sub.add_parser("demo", help="track landmarks and head pose on a video or camera (needs lightmark[demo])")
    d.add_argument("--source", required=True, help="video file, or camera index (0, 1, ...)")
    d.add_argument("--out", help="annotated video to write (.mp4)")
    d.add_argument("--show", action="store_true", help="show the annotated video in a window (q quits)")
    d.add_argument("--csv", help="per-frame landmarks and yaw/pitch/roll as CSV")
    d.add_argument("--json", help="per-frame landmarks and yaw/pitch/roll as JSON")
    d.add_argument("--max-faces", type=int, default=1)
    d.add_argument("--model", help=MODEL_HELP)
    d.add_argument("--detector", default="dlib-hog", help="face detector plug-in (default: dlib-hog)")
    d.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    d.add_argument("--threads", type=int)
    d.add_argument("--redetect-every", type=int, default=10, help="run the detector every N frames (0 = on loss)")
    d.add_argument("--no-smooth", action="store_true", help="turn the One Euro filter off")
    d.add_argument("--min-cutoff", type=float, default=1.0, help="One Euro cutoff (Hz) of a still face")
    d.add_argument("--beta", type=float, default=8.0, help="One Euro speed coefficient (per face size)")
    d.add_argument("--max-frames", type=int, help="stop after N frames")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(fn=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Bad input gives a one-line ``lightmark CMD: error: FILE: PROBLEM`` on stderr and exit
    code 2 (``--debug``: the full traceback instead)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # no OpenCV warning lines on stderr beside our error
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # nor FFmpeg's ("moov atom not found"...): fatal only
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (LightmarkError, OSError) as e:  # OSError: a safety net, the API wraps the file errors it expects
        if args.debug:
            raise
        msg = " ".join(str(e).splitlines()) or type(e).__name__  # always one line
        print(f"lightmark {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
