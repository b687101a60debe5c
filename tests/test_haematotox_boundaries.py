"""Early ICAHT at the edges of its definition, written from the EHA/EBMT grading table (Rejeski K et al.,
Blood 2023;142:865-877), as restated in the T-ICAHT follow-up and implemented by public automated graders:

    ANC <= 500/uL: 1-6 days grade 1, 7-13 grade 2, 14-30 grade 3, > 30 days (the whole day 0-30 window) grade 4
    ANC <= 100/uL: >= 7 days grade 3, >= 14 days grade 4
    days cumulative below the threshold; a non-stable recovery (< 3 days above it) counts to the total;
    the count is censored at progression, a subsequent line of therapy (here allo-HSCT) or death.

One patient, ANC measured every day 0-30 unless said otherwise. The cases of tests/test_haematotox.py are not
repeated here; each case below sits on one side of a boundary, with its neighbour on the other side.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import haematotox as ht

ALIVE = {"patient_id": "P01", "os_days": 400.0, "os_event": 0}


def profile(levels: dict[range | tuple, float], base: float = 1.5) -> dict[float, float]:
    """Daily ANC on days 0-30: `base`, overridden on each range of days by its level (x 10^9/L)."""
    anc = {float(d): base for d in range(31)}
    for days, value in levels.items():
        anc.update({float(d): value for d in days})
    return anc


def grade(anc: dict[float, float], **patient) -> pd.Series:
    labs = pd.DataFrame([{"patient_id": "P01", "day": d, "analyte": "anc", "value": v, "unit": "10^9/L"}
                         for d, v in anc.items()])
    return ht.early_icaht(labs, pd.DataFrame([{**ALIVE, **patient}])).iloc[0]


@pytest.mark.parametrize("days, expected", [
    (range(0, 30), 3),    # 30 days at or below 0.5 (day 30 above): 14-30 days, grade 3
    (range(0, 31), 4),    # all 31 days of the window: > 30 days, grade 4
    (range(1, 31), 3),    # day 0 above: 30 days
])
def test_thirty_against_thirty_one_days_at_0_5(days, expected):
    r = grade(profile({days: 0.3}))
    assert (r["status"], r["grade"]) == ("graded", expected)


@pytest.mark.parametrize("n_days, expected", [
    (6, 1),     # 6 days <= 0.1 (and so <= 0.5): no upgrade from the 0.1 row, 1-6 days <= 0.5 is grade 1
    (7, 3),     # 7 days <= 0.1: grade 3 (the 0.5 row alone would give 2)
    (13, 3),    # 13 days <= 0.1: still grade 3 (0.5 row: 2)
    (14, 4),    # 14 days <= 0.1: grade 4 (0.5 row: 3)
])
def test_days_at_0_1(n_days, expected):
    r = grade(profile({range(3, 3 + n_days): 0.05}))
    assert (r["days_le_0_1_min"], r["grade"]) == (n_days, expected)


@pytest.mark.parametrize("profound, expected", [(6, 2), (7, 3)])
def test_the_higher_row_wins(profound, expected):
    """10 days <= 0.5 (grade 2), of which 6 or 7 are <= 0.1."""
    r = grade(profile({range(3, 13): 0.3, range(3, 3 + profound): 0.08}))
    assert (r["days_le_0_5_min"], r["days_le_0_1_min"], r["grade"]) == (10, profound, expected)


@pytest.mark.parametrize("value, expected", [
    (0.1, 3),     # exactly 100/uL counts as below: 7 days <= 0.1, grade 3
    (0.11, 2),    # just above: only the 0.5 row (7 days), grade 2
])
def test_anc_exactly_0_1_counts_as_below(value, expected):
    assert grade(profile({range(5, 12): value}))["grade"] == expected


@pytest.mark.parametrize("value, n_days, expected", [
    (0.5, 7, 2),     # exactly 500/uL: 7 days, grade 2
    (0.501, 7, 0),   # just above 500/uL: not neutropenic at all
    (0.5, 14, 3),
])
def test_anc_exactly_0_5_counts_as_below(value, n_days, expected):
    assert grade(profile({range(5, 5 + n_days): value}))["grade"] == expected


@pytest.mark.parametrize("recovery, total, expected", [
    (2, 4 + 2 + 2, 2),   # 4 low, 2 days above (non-stable, counted), 2 low: 8 days, grade 2
    (3, 4 + 2, 1),       # 4 low, 3 days above (stable recovery, not counted), 2 low: 6 days, grade 1
])
def test_recovery_of_two_days_counts_and_of_three_does_not(recovery, total, expected):
    r = grade(profile({range(2, 6): 0.3, range(6 + recovery, 8 + recovery): 0.3}))
    assert (r["days_le_0_5_min"], r["grade"]) == (total, expected)


@pytest.mark.parametrize("recovery, profound, expected", [
    (2, 3 + 2 + 2, 3),   # the 2-day recovery above 0.1 counts: 7 days <= 0.1, grade 3
    (3, 3 + 2, 2),       # a 3-day one does not: 5 days <= 0.1; the 0.5 row (8 days) gives grade 2
])
def test_non_stable_recovery_counts_at_0_1_too(recovery, profound, expected):
    """3 days <= 0.1, then `recovery` days at 0.3 (above 0.1, still <= 0.5), then 2 days <= 0.1."""
    r = grade(profile({range(2, 5): 0.05, range(5, 5 + recovery): 0.3, range(5 + recovery, 7 + recovery): 0.05}))
    assert (r["days_le_0_5_min"], r["days_le_0_1_min"], r["grade"]) == (5 + recovery, profound, expected)


@pytest.mark.parametrize("patient, window_end, expected", [  # death on day 10: tests/test_haematotox.py
    ({"os_days": 30.0, "os_event": 1}, 30, 4),       # death on day 30: the whole window
    ({"os_days": 5.0, "os_event": 1}, 5, 1),         # death on day 5: 6 days, grade 1
    ({"os_days": 6.0, "os_event": 1}, 6, 2),         # death on day 6: 7 days, grade 2
    ({"pfs_days": 12.0, "pfs_event": 1}, 12, 2),     # relapse documented on day 12: 13 days, grade 2
    ({"pfs_days": 13.0, "pfs_event": 1}, 13, 3),     # relapse on day 13: 14 days, grade 3
    ({"pfs_days": 12.0, "pfs_event": 0}, 30, 4),     # PFS censored on day 12 is no relapse: not censored
    ({"pfs_days": 45.0, "pfs_event": 1}, 30, 4),     # relapse after the window: the whole window
    ({"hsct_day": 14.0}, 13, 3),                     # allo-HSCT on day 14: counted to day 13 (14 days), grade 3
    ({"hsct_day": 13.0}, 12, 2),                     # allo-HSCT on day 13: 13 days, grade 2
    ({"os_days": 20.0, "os_event": 1, "pfs_days": 12.0, "pfs_event": 1, "hsct_day": 16.0}, 12, 2),  # earliest wins
])
def test_censoring(patient, window_end, expected):
    """Neutropenic (0.3) every day 0-30; the count stops at death, documented relapse, or before allo-HSCT."""
    r = grade(profile({range(0, 31): 0.3}), **patient)
    assert (r["window_end"], r["days_le_0_5_min"], r["grade"]) == (window_end, window_end + 1, expected)


def test_relapse_columns_absent_means_not_censored():
    r = grade(profile({range(0, 31): 0.3}))
    assert (r["window_end"], r["grade"]) == (30, 4)


def test_days_outside_0_to_30_are_not_counted():
    anc = {**{float(d): 0.05 for d in range(-7, 0)}, **profile({}), **{float(d): 0.05 for d in range(31, 60)}}
    assert grade(anc)["grade"] == 0


@pytest.mark.parametrize("anc, status, bounds", [
    ({0: 1.5, 5: 0.3, 30: 1.5}, "too sparse to grade", (1, 3)),   # only day 5 known low: 1 to 29 days
    ({0: 1.5, 3: 0.3, 20: 0.3, 30: 1.5}, "graded", (3, 3)),       # days 3-20 known low (18): grade 3 either way
])
def test_sparse_patient(anc, status, bounds):
    r = grade({float(d): v for d, v in anc.items()})
    assert r["status"] == status and (r["grade_low"], r["grade_high"]) == bounds
    assert pd.isna(r["grade"]) if status != "graded" else r["grade"] == bounds[0]


def test_shipped_definition_constants():
    o = ht.IcahtOptions()
    assert (o.first_day, o.last_day, o.severe_anc, o.profound_anc) == (0, 30, 0.5, 0.1)
    assert o.severe_days == (1, 7, 14, 31) and o.profound_days == (7, 14) and o.stable_recovery_days == 3
    assert np.isclose(o.severe_anc * 1000, 500) and np.isclose(o.profound_anc * 1000, 100)
