"""Timing helpers shared by :meth:`Predictor.latency_ms <lightmark.engine.predict.Predictor.latency_ms>`, the
dlib baseline, evaluation's ``latency`` figure and the speed benchmark: wall-clock times of repeated calls after
untimed warm-up calls, summarised by their median and 90th percentile (robust to the odd slow call)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def time_calls(fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def timing_stats(ms: Sequence[float]) -> dict:
    """``{"median", "p90", "mean", "min", "runs"}`` of a list of times (ms, rounded to 0.1 us)."""
    a = np.asarray(ms, np.float64)
    if a.size == 0:
        raise ValueError("timing_stats needs at least one time")
    return {
        "median": round(float(np.median(a)), 4),
        "p90": round(float(np.percentile(a, 90)), 4),
        "mean": round(float(a.mean()), 4),
        "min": round(float(a.min()), 4),
        "runs": int(a.size),
    }


def latency(fn: Callable[[], object], runs: int = 200, warmup: int = 20) -> dict:
    """:func:`timing_stats` of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    return timing_stats(time_calls(fn, runs, warmup))


def time_interleaved(
    calls: dict[str, Callable[[int], object]], rounds: int, warmup: int = 0, rotate: bool = True
) -> dict[str, list[float]]:
    """Milliseconds of each contender's calls, timed in turn: round ``r`` calls every contender once, one after
    the other, each with the argument ``r`` (so all get the same input), for ``warmup`` untimed rounds and then
    ``rounds`` timed ones. With ``rotate`` the order turns by one each round (A B C, B C A, C A B, ...), so no
    contender always runs right after the same other one.

    Whatever else the machine does slows the contenders of a round alike: the per-call ratios
    (:func:`ratio_stats`) are far steadier than the ratio of medians of separate runs.

    Returns:
        ``{name: [ms of round 0, ms of round 1, ...]}`` (``rounds`` times each, in round order).
    """
    names = list(calls)
    out: dict[str, list[float]] = {n: [] for n in names}
    for w in range(warmup):
        for name in names:
            calls[name](w)
    for r in range(rounds):
        k = r % len(names) if rotate and names else 0
        for name in names[k:] + names[:k]:
            t = time.perf_counter_ns()
            calls[name](r)
            out[name].append((time.perf_counter_ns() - t) / 1e6)
    return out


def ratio_stats(num: Sequence[float], den: Sequence[float]) -> dict:
    """Spread of the per-call ratios ``num[i] / den[i]`` of two contenders timed in turn (:func:`time_interleaved`):
    ``{"median", "q25", "q75", "iqr", "runs"}`` of the ratios (rounded to 1e-4), and ``"of_medians"``, the ratio of
    the two median times."""
    a, b = np.asarray(num, np.float64), np.asarray(den, np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"ratio_stats needs two equally long, non-empty lists of times, got {a.size} and {b.size}")
    r = a / b
    q25, med, q75 = (float(v) for v in np.percentile(r, [25, 50, 75]))
    return {
        "median": round(med, 4),
        "q25": round(q25, 4),
        "q75": round(q75, 4),
        "iqr": round(q75 - q25, 4),
        "of_medians": round(float(np.median(a) / np.median(b)), 4),
        "runs": int(r.size),
    }
