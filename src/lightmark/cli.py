"""Command-line interface: a thin layer over the Python API (every command calls an importable function).

No default of the API is repeated here: ``train`` and ``demo`` options are generated from TrainConfig and
DemoConfig (see :mod:`lightmark.config_cli`), the other commands read the defaults of the function they call (the
few defaults written here, e.g. ``--vis-limit``, exist only on the command line)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .choices import Backend, ExportFormat
from .config_cli import CliSpec, DefaultsHelpFormatter, LazyParser, add_config_options, config_from_args, default_of
from .errors import ConfigError, LightmarkError
from .models.shipped import SHIPPED_MODELS
from .utils import EXTRAS, missing_dependency


def _cmd_train(a: argparse.Namespace) -> int:
    from .engine.train import TrainConfig, train

    cfg = config_from_args(TrainConfig, a, train=[str(p) for p in a.train])
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

        if a.model or a.flip_test is not None or a.refine is not None or a.framing != "whole":  # Framing.WHOLE
            raise ConfigError("--baseline dlib takes none of --model, --flip-test, --refine, --framing")
        model = DlibPredictor()
    report = evaluate(
        model,
        a.data,
        batch_size=a.batch_size,
        flip_test=a.flip_test,
        refine=a.refine,
        framing=a.framing,
        progress=not a.quiet,
        latency=a.latency,
        scheme=a.scheme,
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
        spread = f"median {lat['median']:.2f}, p90 {lat['p90']:.2f}"
        print(f"latency: {lat['mean']:.2f} ms mean over {lat['images']} images ({spread}), 1 thread")
    for p in written:
        print(f"wrote {p}")
    return 0


def _expand_inputs(inputs: Sequence[str]):
    from .data.formats import load_dataset, load_images

    if len(inputs) == 1:
        return load_dataset(inputs[0])
    return load_images([Path(p) for p in inputs])


PREDICT_FILE_OUTPUTS: tuple[str, ...] = ("out", "zip", "json", "csv", "coco")
PREDICT_FOLDER_OUTPUTS: tuple[str, ...] = ("pts", "vis")


def _cmd_predict(a: argparse.Namespace) -> int:
    from .engine.predict import Framing, Predictor
    from .errors import ImageError

    _check_predict_options(a)
    whole_for_out = a.out and a.framing is None  # the challenge's crops, read as the protocol reads them: no detector
    if whole_for_out:
        a.framing = Framing.WHOLE.value
    data = _expand_inputs(a.inputs)
    predictor = Predictor(
        a.model, backend=a.backend, flip_test=a.flip_test, threads=a.threads, refine=a.refine, framing=a.framing
    )
    if a.detect:
        passes = predictor.detection_passes
        min_score = default_of(Predictor.detect, "min_score") if a.min_score is None else a.min_score
        res = predictor.detect_dataset(
            data, progress=not a.quiet, skip_bad=a.skip_bad, passes=passes, min_score=min_score
        )
    else:
        res = predictor.predict_dataset(data, batch_size=a.batch_size, progress=not a.quiet, skip_bad=a.skip_bad)
    if not len(res):
        for name, why in res.skipped:
            print(f"skipped {name}: {why}", file=sys.stderr)
        raise ImageError(f"none of the {len(res.skipped)} images could be read; nothing written")
    note = " (every output of this call reads the crops whole, without the face detector)" if whole_for_out else ""
    _write_predictions(a, res, note)
    for name, why in res.skipped:
        print(f"skipped {name}: {why}", file=sys.stderr)
    from .engine.faces import FACE_SCORE_THRESHOLD

    if predictor.framing is Framing.DETECT and res.detected is not None and not res.detected.all():
        missed = [n for n, found in zip(res.names, res.detected, strict=True) if not found]
        print(
            f"warning: --framing detect found no face in {len(missed)} of {len(res)} images (e.g. "
            f"{', '.join(missed[:3])}): those were read as whole-image crops",
            file=sys.stderr,
        )
    odd = [] if a.detect else res.unlike_faces()
    if odd:
        print(
            f"warning: {len(odd)} of {len(res)} images look nothing like a face crop (face score below "
            f"{FACE_SCORE_THRESHOLD}), e.g. {', '.join(odd[:3])}: for whole photos, "
            "use --detect",
            file=sys.stderr,
        )
    return 0


def _check_predict_options(a: argparse.Namespace) -> None:
    """`lightmark predict`'s option mistakes, and every output checked for writability, before anything runs."""
    from .utils import check_writable

    given = [name for name in (*PREDICT_FILE_OUTPUTS, *PREDICT_FOLDER_OUTPUTS) if getattr(a, name)]
    if not given:
        raise ConfigError("nothing to write: give at least one of --out, --json, --csv, --coco, --pts, --vis")
    if a.zip and not a.out:
        raise ConfigError("--zip holds the solution.txt of --out: give --out too")
    if a.vis_limit < 0:
        raise ConfigError(f"--vis-limit: expected 0 or more, got {a.vis_limit}")
    for name in PREDICT_FILE_OUTPUTS:  # fail before predicting (and before writing any output)
        if getattr(a, name):
            check_writable(getattr(a, name))
    for name in PREDICT_FOLDER_OUTPUTS:
        if getattr(a, name):
            check_writable(getattr(a, name), folder=True)
    if a.detect and (a.out or a.zip):
        raise ConfigError("--out/--zip write the challenge's one-face-per-crop solution.txt: drop --detect for crops")
    if a.detect and a.framing is not None:
        raise ConfigError("--framing places the one face of a crop; --detect reports every face: give one of them")
    if a.min_score is not None and not a.detect:
        raise ConfigError("--min-score filters the faces of --detect: add --detect, or drop --min-score")


def _write_predictions(a: argparse.Namespace, res, out_note: str) -> None:
    """Every output `lightmark predict` was given, each announced on stdout (``out_note`` after solution.txt's)."""
    if a.out:
        res.save_submission(a.out, a.zip)
        print(f"wrote {len(res)} rows to {a.out}" + (f" and {a.zip}" if a.zip else "") + out_note)
    if a.json:
        res.save_json(a.json)
        print(f"wrote {a.json}")
    if a.csv:
        res.save_csv(a.csv)
        print(f"wrote {a.csv}")
    if a.coco:
        res.save_coco(a.coco)
        print(f"wrote {a.coco}")
    if a.pts:
        written = res.save_pts(a.pts)
        print(f"wrote {len(written)} .pts files to {a.pts}")
    if a.vis:
        res.save_visualizations(a.vis, limit=a.vis_limit)
        print(f"wrote {min(len(res), a.vis_limit)} annotated images to {a.vis}")


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
    from .engine.export import export_model
    from .utils import check_writable

    fmt = ExportFormat(a.format)
    if a.track and fmt is not ExportFormat.PT:
        raise ConfigError("--track is recorded in .pt exports only (use --format pt)")
    check_writable(a.out)
    print(export_model(a.model, a.out, fmt, **({"track": a.track} if a.track else {})))
    return 0


def _cmd_synth(a: argparse.Namespace) -> int:
    from .synth import SynthConfig, render_dataset

    stats = render_dataset(
        a.out,
        a.count,
        size=a.size,
        seed=a.seed,
        workers=a.workers,
        face_model=a.face_model,
        backgrounds=a.backgrounds,
        textures=a.textures,
        progress=not a.quiet,
        config=SynthConfig(texture_share=a.texture_share, fs_labels=a.fs_labels),
    )
    print(json.dumps(stats))
    return 0


def _cmd_repose(a: argparse.Namespace) -> int:
    from .synth.repose import ReposeConfig, repose_dataset

    stats = repose_dataset(
        a.source,
        a.out,
        config_from_args(ReposeConfig, a),
        seed=a.seed,
        workers=a.workers,
        face_model=a.face_model,
        progress=not a.quiet,
    )
    print(json.dumps(stats))
    return 0


def _cmd_models(a: argparse.Namespace) -> int:
    from .detectors import DETECTORS
    from .models.shipped import DEFAULT_TRACK, SHIPPED_TERMS, shipped_onnx_path

    print("shipped models (ONNX, in every install):")
    for track, terms in SHIPPED_TERMS.items():
        path = shipped_onnx_path(track)
        default = " (default)" if track == DEFAULT_TRACK else ""
        print(f"  {track + default:<20} {path.stat().st_size / 2**20:5.2f} MB  {terms}")
    print(f"face detectors: {', '.join(DETECTORS)} (blazeface: MediaPipe, Apache-2.0, weights/README.md)")
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        print("registered architectures: listed with torch installed (pip install 'lightmark[train]')")
        return 0
    print("registered architectures (lightmark train --model NAME):")
    from .models import create_model, list_models, model_summary
    from .models.registry import REFERENCE_MODELS

    for name in list_models():
        s = model_summary(create_model(name))
        note = "  (reference row only: over the 15 MB limit)" if name in REFERENCE_MODELS else ""
        print(
            f"  {name:<34} {s['params'] / 1e6:6.2f}M params {s['size_mb']:6.2f} MB  "
            f"{s['gmacs']:.3f} GMACs @ {s['input_size']}px{note}"
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
    from .demo import DemoConfig, run_demo

    config = config_from_args(DemoConfig, a)
    stats = run_demo(
        a.source,
        out=a.out,
        show=a.show,
        csv=a.csv,
        json_path=a.json,
        model=a.model,
        config=config,
        progress=not a.quiet,
    )
    print(stats.summary())
    for kind, path in stats.outputs.items():
        print(f"wrote {kind} {path}")
    return 0


REPORT_KEYS: tuple[str, ...] = ("n", "nme_challenge", "nme_box", "fr_10", "auc_10")
"""Top-level keys every ``--eval`` JSON must have (``lightmark evaluate --json`` writes them)."""


def _report_inputs(a: argparse.Namespace) -> dict[str, str]:
    """Check every ``lightmark report`` argument before anything is printed or written: ``--eval`` pairs (unique
    labels, readable evaluation JSONs), ``--section`` only with ``--readme``, the README's markers, and the
    writability of ``--readme`` / ``--ced``. Returns label -> path."""
    from .report import markers, update_readme
    from .utils import check_writable

    if a.section is not None and not a.readme:
        raise ConfigError("--section names a section of --readme: give --readme too")
    if a.ced and not a.eval:
        raise ConfigError("--ced plots the CED curves of --eval reports: give --eval")
    reports: dict[str, str] = {}
    for item in a.eval or []:
        label, sep, path = item.partition("=")
        label, path = label.strip(), path.strip()
        if not sep or not label or not path:
            raise ConfigError(f"--eval expects LABEL=PATH, got {item!r}")
        if label in reports:
            raise ConfigError(f"--eval: label {label!r} given twice")
        if "|" in label or "\n" in label:
            raise ConfigError(f"--eval: label {label!r} would break the markdown table (no '|' or newline)")
        data = _read_json(path)
        missing = [k for k in REPORT_KEYS if k not in data] if isinstance(data, dict) else list(REPORT_KEYS)
        if missing:
            raise ConfigError(f"{path}: not an evaluation report (no {', '.join(missing)}; write it with `lightmark "
                              "evaluate --json`)")  # fmt: skip
        if a.ced and not data.get("per_image"):
            raise ConfigError(f"{path}: no per-image figures for --ced (write it with `lightmark evaluate --json`)")
        reports[label] = path
    if a.readme:
        section = a.section if a.section is not None else default_of(update_readme, "section")
        try:
            text = Path(a.readme).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{a.readme}: cannot read ({e.strerror or e})") from None
        start, end = markers(section)
        if start not in text or end not in text:
            raise ConfigError(f"{a.readme}: no {start} ... {end} markers (section {section!r})")
        check_writable(a.readme)
    if a.ced:
        from .utils import require

        check_writable(a.ced)
        require("matplotlib", "--ced")
    return reports


def _read_json(path: str):
    """The JSON value in ``path``, or a one-line ConfigError."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: not a JSON file ({e})") from None


def _record(path: str, keys: tuple[str, ...], writer: str) -> dict:
    """A JSON record that must hold ``keys`` (written by ``writer``), or a one-line ConfigError."""
    data = _read_json(path)
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise ConfigError(f"{path}: not a record of `{writer}` (no {', '.join(keys)})")
    return data


def _cmd_report(a: argparse.Namespace) -> int:
    from .report import architecture_table, latency_tables, peers_table, results_table, update_readme

    reports = _report_inputs(a)
    if a.benchmark:
        table = latency_tables(_record(a.benchmark, ("latency", "settings"), "lightmark benchmark --json"))
    elif a.arch:
        table = architecture_table(_record(a.arch, ("candidates",), "scripts/arch_table.py --json"))
    elif a.peers:
        table = peers_table(_record(a.peers, ("accuracy", "latency_ms"), "scripts/peers_check.py --json"))
    else:
        table = results_table(reports)
    print(table)
    if a.ced:
        from .report import ced_plot

        print(f"wrote {ced_plot(reports, a.ced)}")
    if a.readme:
        section = a.section if a.section is not None else default_of(update_readme, "section")
        update_readme(a.readme, table, section)
        print(f"updated {a.readme}")
    return 0


MODEL_HELP = f"checkpoint, or a shipped model: {' | '.join(SHIPPED_MODELS)} (default: the shipped default model)"
FRAMING_HELP = (
    "where the one face of each image is: whole = the image is the face crop (the challenge's crops); detect = the "
    "shipped detector finds it (any size, position or roll), then the crop is refined on the model's points; "
    "auto = the crop, and where the model is not sure of that reading the detector's face too, keeping the one the "
    "model is more confident about"
)
QUIET_HELP = "no progress bar"

# `lightmark train` and `lightmark demo` options are generated from TrainConfig and DemoConfig (type, default and
# help text from each field, see config_cli); these tables hold only what the command line spells differently.
TRAIN_CLI: CliSpec = {
    "train": {"action": "append", "type": Path, "nargs": None, "help": "training dataset (repeatable)"},
    "out": {"required": True},
    "ema_decay": {"flags": ["--ema"]},
    "rotation_deg": {"flags": ["--rotation"]},
    "device": {"choices": ["auto", "cpu", "cuda"]},
}
TRAIN_EXCLUDED: dict[str, str] = {}
"""TrainConfig fields that `lightmark train` leaves out, each with its reason (none: every field is an option)."""
DEMO_CLI: CliSpec = {
    "smooth": {"help": "turn the One Euro filter off"},
    "refine": {"help": "predict once after a detection, not twice"},
    "rotated_redetect": {"help": "while no face is tracked, search the upright frame only (not turned copies)"},
}
DEMO_EXCLUDED: dict[str, str] = {}
"""DemoConfig fields that `lightmark demo` leaves out, each with its reason (none: every field is an option)."""
REPOSE_CLI: CliSpec = {"yaws": {"metavar": "YAW"}}
REPOSE_EXCLUDED: dict[str, str] = {}
"""ReposeConfig fields that `lightmark repose` leaves out, each with its reason (none: every field is an option)."""


def _train_options(p: argparse.ArgumentParser) -> None:
    from .engine.train import TrainConfig

    add_config_options(p, TrainConfig, cli=TRAIN_CLI, exclude=TRAIN_EXCLUDED)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="BATCHES",
        help="only measure images/s of the input pipeline and of training steps over BATCHES batches, then exit",
    )


def _evaluate_options(p: argparse.ArgumentParser) -> None:
    from .engine.evaluate import evaluate

    p.add_argument("--data", required=True, help="labelled dataset (a folder or file in any supported format)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--plots", help="folder for CED plots and the worst-predictions gallery")
    p.add_argument("--batch-size", type=int, default=default_of(evaluate, "batch_size"), help="images per batch")
    _flip_option(p)
    p.add_argument("--refine", type=int, help=REFINE_HELP)
    _framing_option(p, default_of(evaluate, "framing").value)  # the challenge's protocol: the crop is the face
    p.add_argument(
        "--baseline",
        choices=["dlib"],
        help="score a reference predictor instead of a model (dlib: HOG box + 68-point ERT; needs lightmark[dlib])",
    )
    p.add_argument("--latency", action="store_true", help="also time prediction, 1 thread (mean over up to 200 images)")
    p.add_argument(
        "--scheme",
        help="landmark scheme the data is labelled in (default: the model's); e.g. a wflw98 model on 68-point "
        "labels (--scheme ibug68) is scored on its 68-point subset",
    )
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


REFINE_HELP = (
    "extra passes on the upright crop around the last points (default: the model's; 1 for two-pass models, 0 otherwise)"
)


def _predict_options(p: argparse.ArgumentParser) -> None:
    from .engine.faces import MIN_SPAN
    from .engine.predict import Predictor

    p.add_argument("inputs", nargs="+", help="a dataset folder, or image files")
    p.add_argument("--model", help=MODEL_HELP)
    out = p.add_argument_group("outputs (at least one; all checked for writability before any image is predicted)")
    out.add_argument("--out", metavar="TXT", help="the challenge's solution.txt")
    out.add_argument("--zip", help="also a zip holding the solution.txt of --out")
    out.add_argument("--json", help='JSON: {"predictions": [{name, width, height, landmarks}], "skipped": [...]}')
    out.add_argument("--csv", help="CSV: name, width, height, x0, y0, ..., x67, y67 (0-based pixels)")
    out.add_argument("--coco", metavar="JSON", help="COCO keypoints JSON (images, annotations, the face category)")
    out.add_argument("--pts", metavar="DIR", help="folder for one 300-W .pts file per image (1-based, as the format)")
    out.add_argument("--vis", metavar="DIR", help="folder for annotated images")
    out.add_argument("--vis-limit", type=int, default=50, help="most annotated images written to --vis")
    batch = default_of(Predictor.predict_dataset, "batch_size")
    p.add_argument("--batch-size", type=int, default=batch, help="images per batch")
    p.add_argument("--threads", type=int, help="threads of the model's forward pass (default: the library's)")
    backend = default_of(Predictor, "backend")
    p.add_argument("--backend", default=backend, choices=Backend.values(), help="inference engine")
    _flip_option(p)
    p.add_argument("--refine", type=int, help=REFINE_HELP)
    _framing_option(p, default_of(Predictor, "framing"))
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of failing")
    det = p.add_argument_group("whole photos (--detect: every face of each image, not one face per crop)")
    det.add_argument(
        "--detect",
        action="store_true",
        help="find every face with the shipped BlazeFace detector; --json/--csv/--coco/--pts/--vis then hold "
        "one entry per face (box, scores, landmarks, confidence, pose)",
    )
    det.add_argument(
        "--min-score",
        type=float,
        help="least detector score + face score (mean per-point confidence, times P(face) with a face head) of a "
        f"reported face (default: {default_of(Predictor.detect, 'min_score')}; its landmarks must also span "
        f"{MIN_SPAN} of the detector's box); --refine sets the refining passes "
        "(default and least: 1)",
    )
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _flip_option(p: argparse.ArgumentParser) -> None:
    """``--flip-test`` / ``--no-flip-test``; neither: the model's own default (``ModelConfig.flip_test``)."""
    p.add_argument(
        "--flip-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also read each crop mirrored (averaged where the readings agree; ~1.5x the time); "
        "default: the model's (on for the shipped protocol model)",
    )


def _framing_option(p: argparse.ArgumentParser, default: str | None) -> None:
    from .engine.predict import Framing

    auto = " (default: auto for models with a confidence, both shipped models among them, else whole)"
    help_text = FRAMING_HELP + (auto if default is None else "")  # a set default is appended by the formatter
    p.add_argument("--framing", default=default, choices=[f.value for f in Framing], help=help_text)


def _check_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("solution", help="solution.txt, or a zip holding it")
    p.add_argument("--images", help="the image folder the submission covers")


def _export_options(p: argparse.ArgumentParser) -> None:
    fmt = ExportFormat.ONNX.value
    p.add_argument("--format", choices=ExportFormat.values(), default=fmt, help="slim checkpoint or ONNX graph")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--out", required=True, help="file to write")
    from .models.shipped import SHIPPED_MODELS

    p.add_argument("--track", choices=list(SHIPPED_MODELS), help="record the training track in a .pt export")


def _synth_options(p: argparse.ArgumentParser) -> None:
    from .synth import SynthConfig, render_dataset

    p.add_argument("--count", type=int, required=True, help="number of faces to render")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=default_of(render_dataset, "size"), help="image side in pixels")
    p.add_argument("--seed", type=int, default=default_of(render_dataset, "seed"), help="seed of the face stream")
    p.add_argument("--workers", type=int, default=default_of(render_dataset, "workers"), help="render processes")
    p.add_argument("--face-model", help="ICT Face Model .npz or FaceXModel folder")
    p.add_argument("--backgrounds", help="folder of background images (e.g. FaceSynthetics samples)")
    p.add_argument("--textures", help="FaceSynthetics folder: its faces are unwrapped into skin textures (cached)")
    p.add_argument(
        "--texture-share", type=float, default=SynthConfig.texture_share, help="fraction of the faces wearing a texture"
    )
    p.add_argument(
        "--fs-labels",
        action="store_true",
        help="also write NNNNNN_ldmks_ibug68_fs.txt: the 68 points in FaceSynthetics' definition (docs/synth.md)",
    )
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _repose_options(p: argparse.ArgumentParser) -> None:
    from .synth.repose import ReposeConfig, repose_dataset

    def default(name: str):
        return default_of(repose_dataset, name)

    p.add_argument("source", help="labelled dataset of square pictures (FaceSynthetics folder, 300-W .pts folder...)")
    p.add_argument("--out", required=True, help="output folder (FaceSynthetics layout, as `lightmark synth` writes)")
    add_config_options(p, ReposeConfig, cli=REPOSE_CLI, exclude=REPOSE_EXCLUDED)
    p.add_argument("--seed", type=int, default=default("seed"), help="seed of the poses and expressions")
    p.add_argument("--workers", type=int, default=default("workers"), help="processes")
    p.add_argument("--face-model", help="ICT Face Model .npz or FaceXModel folder")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _report_options(p: argparse.ArgumentParser) -> None:
    from .report import update_readme

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--eval", action="append", metavar="LABEL=PATH", help="evaluate --json output")
    src.add_argument("--benchmark", metavar="PATH", help="latency tables from a `lightmark benchmark --json` record")
    src.add_argument("--arch", metavar="PATH", help="architecture table from a `scripts/arch_table.py --json` record")
    src.add_argument("--peers", metavar="PATH", help="dlib / MediaPipe tables from a `scripts/peers_check.py --json`")
    p.add_argument("--readme", help="replace a generated section of the README with the table")
    section = default_of(update_readme, "section")
    section_help = f"which section of --readme (markers <!-- NAME:start/end -->; default: {section})"
    p.add_argument("--section", metavar="NAME", help=section_help)
    p.add_argument("--ced", help="also plot the CED curves of every --eval to this PNG")


def _benchmark_options(p: argparse.ArgumentParser) -> None:
    from .engine.benchmark import run_benchmark

    def default(name: str):
        return default_of(run_benchmark, name)

    p.add_argument("--model", help=MODEL_HELP)
    threads = list(default("threads"))
    p.add_argument("--threads", type=_int_list, default=threads, help="thread counts to time, e.g. 1,2")
    p.add_argument("--runs", type=int, default=default("runs"), help="timed runs per figure (after a warm-up)")
    p.add_argument("--warmup", type=int, default=default("warmup"), help="untimed runs before each figure")
    p.add_argument("--batch-size", type=int, default=default("batch_size"), help="batch size of the throughput figure")
    p.add_argument("--data", help="folder of face crops to time on (default: synthetic drawings)")
    p.add_argument("--no-dlib", action="store_true", help="skip dlib's shape predictor even when installed")
    p.add_argument("--json", help="write every figure as JSON")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _demo_options(p: argparse.ArgumentParser) -> None:
    from .demo import DemoConfig

    p.add_argument("--source", required=True, help="video file, or camera index (0, 1, ...)")
    p.add_argument("--out", help="annotated video to write (.mp4)")
    p.add_argument("--show", action="store_true", help="show the annotated video in a window (q quits)")
    p.add_argument("--csv", help="per-frame landmarks and yaw/pitch/roll as CSV")
    p.add_argument("--json", help="per-frame landmarks and yaw/pitch/roll as JSON")
    p.add_argument("--model", help=MODEL_HELP)
    add_config_options(p, DemoConfig, cli=DEMO_CLI, exclude=DEMO_EXCLUDED)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]], ...]
COMMANDS = (
    ("train", "train a model (also under torchrun for several processes)", _train_options, _cmd_train),
    ("evaluate", "score a model on a labelled dataset", _evaluate_options, _cmd_evaluate),
    ("predict", "predict landmarks, write a challenge submission", _predict_options, _cmd_predict),
    ("check-submission", "validate a solution.txt (or zip)", _check_options, _cmd_check),
    ("export", "export a model (slim .pt or ONNX)", _export_options, _cmd_export),
    ("synth", "render synthetic labelled faces (FaceSynthetics format)", _synth_options, _cmd_synth),
    (
        "repose",
        "re-pose labelled pictures in 3D: new yaws (and expressions) with exact labels (FaceSynthetics format)",
        _repose_options,
        _cmd_repose,
    ),
    ("report", "results table (markdown) from evaluation JSONs", _report_options, _cmd_report),
    ("models", "list registered models with size and cost", lambda p: None, _cmd_models),
    (
        "benchmark",
        "time prediction per face and per batch, interleaved call by call with dlib (when installed)",
        _benchmark_options,
        _cmd_benchmark,
    ),
    ("demo", "track landmarks and head pose on a video or camera", _demo_options, _cmd_demo),
)  # fmt: skip
"""(name, help, options(parser), run(args)) of each command."""

EXAMPLES: dict[str, str] = {
    "train": "lightmark train --train ../shared/data/facesynthetics_100 --val ../shared/data/aflw2000/val "
    "--out runs/a\n  lightmark train --train DATA --val VAL --out runs/ft --init protocol --epochs 4",
    "evaluate": "lightmark evaluate --data ../shared/data/aflw2000/val --json r.json --plots plots/\n"
    "  lightmark evaluate --data ../shared/data/aflw2000/val --baseline dlib --latency",
    "predict": "lightmark predict faces/ --json p.json\n"
    "  lightmark predict test/ --model protocol --out solution.txt --zip submission.zip\n"
    "  lightmark predict a.jpg b.jpg --csv lm.csv --coco coco.json --pts pts/ --vis vis/\n"
    "  lightmark predict photos/ --detect --json faces.json --vis vis/",
    "check-submission": "lightmark check-submission solution.txt --images test/",
    "export": "lightmark export --format onnx --model protocol --out protocol.onnx\n"
    "  lightmark export --format pt --model runs/a/best.pt --out slim.pt --track protocol",
    "synth": "lightmark synth --count 1000 --out synth/ --workers 2",
    "repose": "lightmark repose ../shared/data/facesynthetics_100 --out reposed/ --poses 8 --workers 2\n"
    "  lightmark repose ../shared/data/300w_helen_train --out helen_lp/ --yaws -60 -30 30 60",
    "report": 'lightmark report --eval "protocol=docs/evals/protocol.json" --eval "dlib=docs/evals/dlib.json"\n'
    '  lightmark report --eval "mixed=r.json" --readme README.md --section results --ced ced.png\n'
    "  lightmark report --benchmark docs/evals/benchmark.json --readme README.md --section latency",
    "models": "lightmark models",
    "benchmark": "lightmark benchmark --threads 1,2 --json b.json",
    "demo": "lightmark demo --source video.mp4 --out annotated.mp4 --csv lm.csv\n  lightmark demo --source 0 --show",
}
"""An example command line of each command (its ``--help`` epilog)."""


class _HelpFormatter(DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help, the examples epilog printed as written."""


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``lightmark`` parser. A command's options are added when it is parsed or its help shown, so a command
    imports only its own modules (:func:`command_parsers` adds them all)."""
    p = argparse.ArgumentParser(
        prog="lightmark",
        description="Light-weight 68-point facial landmarks.",
        epilog="example:\n  lightmark predict face.jpg --json face.json\n\n"
        "`lightmark COMMAND --help` shows a command's options and an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--version", action="version", version=f"lightmark {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=LazyParser)
    for name, help_text, options, run in COMMANDS:
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=_HelpFormatter,
            populate=options,
        )
        cmd.set_defaults(fn=run)
    return p


def command_parsers(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """Each command's parser (of ``parser``, default: a new :func:`build_parser`), its options added."""
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: cmd.populate() for name, cmd in sub.choices.items()}


def _missing_extra(e: ModuleNotFoundError) -> str | None:
    """The optional dependency (a key of :data:`~lightmark.utils.EXTRAS`) whose absence raised ``e``, if any."""
    top = (e.name or "").split(".")[0]
    return top if top in EXTRAS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Bad input gives a one-line ``lightmark CMD: error: FILE: PROBLEM`` on stderr and exit
    code 2 (``--debug``: the full traceback instead); so does a missing optional dependency, naming the extra that
    installs it (``lightmark train: error: this command needs torch: pip install 'lightmark[train]'``)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # no OpenCV warning lines on stderr beside our error
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # nor FFmpeg's ("moov atom not found"...): fatal only
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)  # a command's options import its modules (train's: torch)
    except ModuleNotFoundError as e:
        if "--debug" in argv or _missing_extra(e) is None:
            raise
        command = next((a for a in argv if a in {c[0] for c in COMMANDS}), "")
        msg = missing_dependency(_missing_extra(e), "this command", prefer=command)
        print(f"lightmark {command}: error: {msg}", file=sys.stderr)
        return 2
    try:
        return int(args.fn(args) or 0)
    except (LightmarkError, OSError, ModuleNotFoundError) as e:  # OSError: a safety net, the API wraps the file
        # errors it expects; ModuleNotFoundError: an optional dependency (torch, numba...) is not installed
        if args.debug or (isinstance(e, ModuleNotFoundError) and _missing_extra(e) is None):
            raise
        if isinstance(e, ModuleNotFoundError):
            e = missing_dependency(_missing_extra(e), "this command", prefer=args.command)
        msg = " ".join(str(e).splitlines()) or type(e).__name__  # always one line
        print(f"lightmark {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
