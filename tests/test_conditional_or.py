"""The conditional odds ratio and its exact interval against scipy's odds_ratio (R's fisher.test: test_stats.py)."""
import itertools

import numpy as np
import pytest
from scipy.stats.contingency import odds_ratio

from helpers.conditional_or import conditional_odds_ratio


def scipy_or(t) -> tuple[float, float, float]:
    res = odds_ratio(np.asarray(t), kind="conditional")
    ci = res.confidence_interval(confidence_level=0.95)
    return float(res.statistic), float(ci.low), float(ci.high)


def test_small_tables_are_scipys_bit_for_bit():
    for cells in itertools.product(range(5), repeat=4):
        t = np.array(cells).reshape(2, 2)
        if (t.sum(axis=0) == 0).any() or (t.sum(axis=1) == 0).any():
            continue
        assert conditional_odds_ratio(t) == scipy_or(t), t.tolist()


def test_zero_cells_give_the_bounds_of_the_parameter_space():
    est, lo, hi = conditional_odds_ratio(np.array([[0, 5], [4, 3]]))  # first cell at its minimum
    assert est == 0 and lo == 0 and 0 < hi < np.inf
    est, lo, hi = conditional_odds_ratio(np.array([[5, 0], [3, 4]]))  # first cell at its maximum
    assert est == np.inf and hi == np.inf and 0 < lo < np.inf


@pytest.mark.parametrize("cells", [[1419, 1535, 2265, 2851], [4000, 900, 10, 90], [59, 2251, 186, 841],
                                   [1200, 3, 2500, 1], [3, 1200, 1, 2500]])
def test_large_tables_agree_with_scipy_to_1e_9(cells):
    t = np.array(cells).reshape(2, 2)
    got, ref = conditional_odds_ratio(t), scipy_or(t)
    assert got[0] == ref[0]  # the estimate solves on the mean, which both compute alike
    assert got[1:] == pytest.approx(ref[1:], rel=1e-9)


def test_other_confidence_level():
    t = np.array([[7, 3], [2, 8]])
    res = odds_ratio(t, kind="conditional").confidence_interval(confidence_level=0.9)
    assert conditional_odds_ratio(t, conf=0.9)[1:] == (float(res.low), float(res.high))
