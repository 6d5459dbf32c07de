"""scripts/paired_diff.py: per-image differences and their bootstrap interval, against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def paired():
    return load_script("paired_diff")


def test_paired_diff_counts_and_brackets_the_mean(paired) -> None:
    diff = np.array([-0.3, -0.1, 0.2, 0.0])
    r = paired.paired_diff(diff, draws=2000)
    assert r["mean"] == pytest.approx(-0.05) and r["better"] == 2 and r["n"] == 4  # 0.0 is not better
    # a mean of 4 resampled values lies between the smallest and the largest value, and the interval holds the mean
    assert -0.3 <= r["lo"] <= r["mean"] <= r["hi"] <= 0.2


def test_paired_diff_of_a_constant_change_has_no_spread(paired) -> None:
    r = paired.paired_diff(np.full(30, 0.05))
    assert r["lo"] == pytest.approx(0.05) and r["hi"] == pytest.approx(0.05) and r["better"] == 0


def test_per_image_reads_an_evaluation_json(paired, tmp_path) -> None:
    path = tmp_path / "e.json"
    path.write_text(
        json.dumps({"per_image": [{"name": "a.jpg", "nme_challenge": 1.5}, {"name": "b.jpg", "nme_challenge": 2}]})
    )
    assert paired.per_image(path) == {"a.jpg": 1.5, "b.jpg": 2.0}
