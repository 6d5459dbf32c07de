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
