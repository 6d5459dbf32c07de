"""Results tables for the README, generated from saved evaluation JSONs (``lightmark evaluate --json``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .constants import YAW_BIN_NAMES
from .utils import atomic_write

START, END = "<!-- results:start -->", "<!-- results:end -->"


def markers(section: str = "results") -> tuple[str, str]:
    """The README comment markers that delimit a generated ``section``."""
    return f"<!-- {section}:start -->", f"<!-- {section}:end -->"


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def results_table(reports: dict[str, str | os.PathLike]) -> str:
    """A markdown table, one row per ``label: evaluation JSON``: challenge NME overall and per yaw bin,
    box NME, FR and AUC at 10% (challenge NME), then the model's cost as the JSON records it (``evaluate
    --latency``): size in MB, parameters, GMACs and single-thread CPU latency per face (mean ms over the images
    timed)."""
    head = (
        "| model | n | NME/384 % | [0,30) | [30,60) | [60,90] | NME box % | FR@10 % | AUC@10 "
        "| size MB | params M | GMACs | CPU ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for label, path in reports.items():
        r = json.loads(Path(path).read_text())
        bins = [r.get(b, {}).get("nme_challenge") if isinstance(r.get(b), dict) else None for b in YAW_BIN_NAMES]
        meta = r.get("meta", {})
        params = meta.get("params")
        lat = meta.get("latency_ms", {}).get("mean") if isinstance(meta.get("latency_ms"), dict) else None
        rows.append(
            f"| {label} | {r['n']} | **{_fmt(r['nme_challenge'])}** | "
            + " | ".join(_fmt(b) for b in bins)
            + f" | {_fmt(r['nme_box'])} | {_fmt(r['fr_10'])} | {_fmt(r['auc_10'], 3)} | {_fmt(meta.get('size_mb'))}"
            + f" | {_fmt(None if params is None else params / 1e6)} | {_fmt(meta.get('gmacs'), 3)} | {_fmt(lat)} |"
        )
    return "\n".join(rows)


def ced_plot(
    reports: dict[str, str | os.PathLike],
    path: str | os.PathLike,
    max_threshold: float = 10.0,
    title: str = "CED on the validation crops, NME / 384",
) -> Path:
    """One CED plot (challenge NME) of every ``label: evaluation JSON`` (their per-image NMEs).

    Raises:
        ConfigError: a JSON without per-image figures (not written by ``lightmark evaluate --json``).
    """
    import numpy as np

    from .errors import ConfigError
    from .viz import plot_ced

    curves = {}
    for label, p in reports.items():
        r = json.loads(Path(p).read_text())
        rows = r.get("per_image") or []
        if not rows:
            raise ConfigError(f"{p}: no per-image figures to plot (write it with `lightmark evaluate --json`)")
        curves[label] = np.array([row["nme_challenge"] for row in rows], np.float64)
    return plot_ced(curves, path, max_threshold=max_threshold, title=title)


def update_readme(readme: str | os.PathLike, content: str, section: str = "results") -> None:
    """Replace the text between the ``section`` markers of ``readme`` with ``content``."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = markers(section)
    if start not in text or end not in text:
        raise ValueError(f"{readme}: no {start} ... {end} markers")
    new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: f"{start}\n{content}\n{end}", text, flags=re.S)
    with atomic_write(readme) as f:
        f.write(new)


LATENCY_ROWS: dict[str, str] = {
    "dlib": "dlib 68-point shape predictor, given the box",
    "predict": "lightmark `Predictor.predict(image, box=)` (single pass: crop, network, mapping back)",
    "network": "lightmark network alone (`Predictor.run_model`, ONNX Runtime)",
    "predict_refine1": "lightmark `Predictor(refine=1).predict(image, box=)` (coarse to fine)",
    "predict_auto": "lightmark `Predictor().predict(image)`, no box (framing auto: crop and detector readings)",
}
"""Row labels of the one-face latency table, by ``lightmark benchmark`` contender key."""


def _ratio(r: dict | None) -> str:
    return "1" if r is None else f"{r['median']:.2f} [{r['q25']:.2f}, {r['q75']:.2f}]"


def latency_tables(bench: dict) -> str:
    """Markdown tables of a ``lightmark benchmark --json`` record: one face per call (median ms, ratio of per-call
    times to dlib's as median [IQR], NME when the run had labels), then batches (faces/s per thread count)."""
    lat, acc = bench["latency"], bench.get("accuracy") or {}
    n_faces, runs = bench["settings"].get("images"), lat["ms"]["predict"]["runs"]
    rows = [
        f"| one face per call, {lat['threads']} thread ({n_faces} faces, {runs} calls each) | ms, median "
        "| time / dlib | NME % |",
        "|---|---|---|---|",
    ]
    for key, label in LATENCY_ROWS.items():
        if key not in lat["ms"]:
            continue
        ratio = None if key == "dlib" else lat["ratio_to_dlib"].get(key)
        nme = _fmt(acc.get(key)) if key in acc else "-"
        rows.append(f"| {label} | {lat['ms'][key]['median']:.2f} | {_ratio(ratio)} | {nme} |")
    rows += [
        "",
        "| batches | `predict_batch` faces/s | network alone | dlib faces/s | `predict_batch` / dlib |",
        "|---|---|---|---|---|",
    ]
    for t in bench.get("throughput", []):
        fps, procs = t["faces_per_s"], t["dlib_processes"]
        where = "in process" if procs == 1 else f"on {procs} processes"
        rows.append(
            f"| {t['batch_size']} faces, {t['threads']} thread(s); dlib {where} | {fps['predict_batch']:.0f} | "
            f"{fps['network']:.0f} | {fps.get('dlib', float('nan')):.0f} | {_ratio(t.get('speed_ratio_to_dlib'))} |"
        )
    return "\n".join(rows)


def architecture_table(arch: dict) -> str:
    """Markdown table of a ``scripts/arch_table.py --json`` record: each candidate (registered model @ input size)
    with its parameters, size, GMACs, ``predict(box=)`` median ms, its time over dlib's (median [IQR] of per-call
    ratios) and the NME of a trained run where one was given."""
    rows = [
        "| candidate | params M | size MB | GMACs | `predict(box=)` ms | time / dlib [IQR] | NME/384, trained run |",
        "|---|---|---|---|---|---|---|",
    ]
    if arch.get("dlib_ms"):
        rows.append(f"| dlib shape predictor, given the box | - | - | - | {arch['dlib_ms']['median']:.2f} | 1 | - |")
    for key, r in arch["candidates"].items():
        rows.append(
            f"| {key} | {r['params'] / 1e6:.2f} | {r['size_mb']:.1f} | {r['gmacs']:.3f} | {r['ms']['median']:.2f} | "
            f"{_ratio(r['ratio_to_dlib']) if r.get('ratio_to_dlib') else '-'} | {_fmt(r.get('nme'))} |"
        )
    return "\n".join(rows)


def _timing_rows(what: str, times: dict, ratio_key: str, reference: str, mean: bool = False) -> list[str]:
    """A blank line, then a markdown table of per-call times on one core (median ms, the mean too with ``mean``)
    and each contender's per-call ratio (``ratio_key``) to ``reference``, as median [IQR]."""
    head = f"| one core, {what} | ms, median |" + (" ms, mean |" if mean else "") + f" time / {reference} |"
    rows = ["", head, "|---" * (4 if mean else 3) + "|"]
    for name, t in times.items():
        cells = f"{t['median']:.2f} |" + (f" {t['mean']:.2f} |" if mean else "")
        rows.append(f"| {name} | {cells} {_ratio(t[ratio_key])} |")
    return rows


def peers_table(peers: dict) -> str:
    """Markdown tables of a ``scripts/peers_check.py --json`` record: accuracy of each contender on the validation
    crops (NME/384, |yaw| 60-90) and the HELEN holdout (inter-ocular NME, inner 51 / jaw), with the faces its own
    detector found; then the time per call on one core: given a face's box (median ms, per-call ratio to lightmark's
    ``predict(box=)`` as median [IQR]) and, where the record has them, for whole images (median and mean ms, per-call
    ratio to MediaPipe's image mode)."""
    rows = [
        "| contender | validation NME/384 | \\|yaw\\| 60-90 | HELEN 170 inner 51 | HELEN 170 jaw | faces its detector "
        "found (val / HELEN) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in peers["accuracy"].items():
        v, h, f = r["val"], r["helen_170"], r.get("found") or {}
        found = "-" if f.get("val") is None else f"{f['val']} / {f['helen_170']}"
        rows.append(
            f"| {name} | {_fmt(v['nme_challenge'])} | {_fmt(v['yaw_60_90']['nme_challenge'])} | "
            f"{_fmt(h['inner_51'])} | {_fmt(h['jaw_17'])} | {found} |"
        )
    rows += _timing_rows(
        "one face per call", peers["latency_ms"], "ratio_to_lightmark_box", "lightmark one-pass `predict(box=)`"
    )
    if "latency_whole_ms" in peers:
        rows += _timing_rows(
            "a whole image per call", peers["latency_whole_ms"], "ratio_to_mediapipe", "MediaPipe image mode", mean=True
        )
    return "\n".join(rows)
