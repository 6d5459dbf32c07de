"""scripts/framing_cascade.py: the cascade's rule and the average of two readings that agree, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def fc():
    return load_script("framing_cascade")


def test_readings_that_agree_are_averaged_by_confidence(fc):
    a = np.array([[0.0, 0.0], [100.0, 100.0]])  # landmark box side 100
    b = a + [2.0, 0.0]  # 2 px apart: 0.02 of the side
    avg, agreed = fc.agreement_average(a, 0.6, b, 0.2, agree=0.03)
    assert agreed
    np.testing.assert_allclose(avg, a + [0.5, 0.0])  # (0.6 * 0 + 0.2 * 2) / 0.8 = 0.5


def test_readings_that_disagree_keep_the_more_confident(fc):
    a = np.array([[0.0, 0.0], [100.0, 100.0]])
    b = a + [10.0, 0.0]  # 0.1 of the side
    got, agreed = fc.agreement_average(a, 0.6, b, 0.7, agree=0.05)
    assert not agreed and got is b
    got, _ = fc.agreement_average(a, 0.7, b, 0.7, agree=0.05)
    assert got is a  # ties: the first reading


def test_cascade_reads_the_second_framing_below_the_threshold_only(fc):
    # (conf, NME) of the first reading, then of the second; extra columns (the averages) are ignored
    r = np.array([[0.9, 1.0, 0.95, 0.5, 9.0, 1.0], [0.5, 4.0, 0.8, 2.0, 9.0, 0.0], [0.5, 3.0, 0.4, 6.0, 9.0, 0.0]])
    assert fc.cascade(r, 0.74) == pytest.approx(((1.0 + 2.0 + 3.0) / 3, 2))
    assert fc.cascade(r, float("inf")) == pytest.approx(((0.5 + 2.0 + 3.0) / 3, 3))
