"""Early ICAHT (Rejeski et al., Blood 2023) and CAR-HEMATOTOX (Rejeski et al., Blood 2021) at their boundaries."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import haematotox as ht

PATIENT = pd.DataFrame({"patient_id": ["P01"], "os_days": [400.0], "hsct_day": [np.nan]})


def anc_labs(values: dict[float, float], pid: str = "P01") -> pd.DataFrame:
    return pd.DataFrame([{"patient_id": pid, "day": float(d), "analyte": "anc", "value": float(v), "unit": "10^9/L"}
                         for d, v in values.items()])


def daily_anc(low_days: set[int], low: float = 0.3, high: float = 1.5) -> dict[float, float]:
    """ANC measured every day 0-30: `low` on low_days, `high` otherwise."""
    return {d: (low if d in low_days else high) for d in range(0, 31)}


def one(values: dict[float, float], patients: pd.DataFrame = PATIENT) -> pd.Series:
    return ht.early_icaht(anc_labs(values), patients).iloc[0]


@pytest.mark.parametrize("severe, profound, grade", [
    (0, 0, 0), (1, 0, 1), (6, 0, 1), (7, 0, 2), (13, 0, 2), (14, 0, 3), (30, 0, 3), (31, 0, 4),
    (7, 6, 2), (7, 7, 3), (13, 13, 3), (14, 14, 4),
])
def test_icaht_grade_table(severe, profound, grade):
    assert ht.icaht_grade(severe, profound) == grade


@pytest.mark.parametrize("low_days, value, grade", [
    (set(range(2, 8)), 0.3, 1),          # 6 days <= 0.5
    (set(range(2, 9)), 0.3, 2),          # 7 days
    (set(range(2, 15)), 0.3, 2),         # 13 days
    (set(range(2, 16)), 0.3, 3),         # 14 days
    (set(range(0, 31)), 0.3, 4),         # never above 0.5 in days 0-30
    (set(range(2, 9)), 0.1, 3),          # 7 days <= 0.1 -> grade 3
    (set(range(2, 16)), 0.1, 4),         # 14 days <= 0.1 -> grade 4
    (set(range(2, 8)), 0.5, 1),          # ANC exactly 0.5 counts (<= 500/uL)
    (set(range(2, 8)), 0.51, 0),         # 0.51 does not
])
def test_daily_profiles(low_days, value, grade):
    r = one(daily_anc(low_days, low=value))
    assert r["status"] == "graded" and r["grade"] == grade


def test_non_stable_recovery_counts_stable_recovery_does_not():
    # 5 days low, 2 days above (non-stable), 5 days low -> 12 days (2 + 5 + 5) -> grade 2
    r = one(daily_anc(set(range(2, 7)) | set(range(9, 14))))
    assert (r["days_le_0_5_min"], r["grade"]) == (12, 2)
    # 5 low, 3 above (stable recovery), 5 low -> 10 days
    r = one(daily_anc(set(range(2, 7)) | set(range(10, 15))))
    assert r["days_le_0_5_min"] == 10


def test_gap_with_agreeing_neighbours_is_filled_and_disagreeing_is_undetermined():
    # measured on days 0, 2, 10, 20, 30: low on 2 and 10 -> days 2-10 low (9 days); day 1 and days 11-19
    # lie between disagreeing measurements (10 undetermined days)
    r = one({0: 1.5, 2: 0.3, 10: 0.3, 20: 1.5, 30: 1.5})
    assert (r["days_le_0_5_min"], r["days_le_0_5_max"]) == (9, 19)
    assert r["status"] == "too sparse to grade" and pd.isna(r["grade"])
    assert (r["grade_low"], r["grade_high"]) == (2, 3)


def test_sparse_but_decisive_sampling_is_graded():
    r = one({0: 1.5, 5: 1.6, 10: 1.4, 20: 1.8, 30: 2.0})
    assert r["status"] == "graded" and r["grade"] == 0


def test_window_stops_at_death_and_before_hsct():
    died = PATIENT.assign(os_days=10.0)
    r = one(daily_anc(set(range(0, 31))), died)
    assert (r["window_end"], r["days_le_0_5_min"], r["grade"]) == (10.0, 11, 2)
    hsct = PATIENT.assign(hsct_day=15.0)
    r = one(daily_anc(set(range(0, 31))), hsct)
    assert (r["window_end"], r["days_le_0_5_min"]) == (14.0, 15)


def test_no_anc():
    r = ht.early_icaht(None, PATIENT).iloc[0]
    assert r["status"] == "no ANC in days 0-30" and pd.isna(r["grade"])


def test_distribution_exact_ci():
    pts = pd.DataFrame({"patient_id": ["P01", "P02", "P03"], "os_days": [400.0] * 3})
    labs = pd.concat([anc_labs(daily_anc(set(range(2, 20))), "P01"), anc_labs(daily_anc(set()), "P02"),
                      anc_labs({0: 1.5, 2: 0.3, 10: 0.3, 20: 1.5}, "P03")])
    dist = ht.icaht_distribution(ht.early_icaht(labs, pts)).set_index("what")
    sev = dist.loc["severe (grade >= 3)"]
    assert (sev["k"], sev["n"]) == (1, 2)
    assert dist.loc["too sparse to grade", "k"] == 1


# ------------------------------------------------------------------ CAR-HEMATOTOX
@pytest.mark.parametrize("plt_, anc, hb, crp, fer, score", [
    (176, 1.2, 90, 29.9, 649, 0),      # every input on the low-risk side of its cut
    (175, 1.2, 90, 29.9, 649, 1),      # platelets 75-175 -> 1
    (75, 1.2, 90, 29.9, 649, 1),
    (74.9, 1.2, 90, 29.9, 649, 2),     # < 75 -> 2
    (176, 1.19, 90, 29.9, 649, 1),     # ANC < 1.2 x 10^9/L -> 1
    (176, 1.2, 89.9, 29.9, 649, 1),    # Hb < 9.0 g/dL -> 1
    (176, 1.2, 90, 30, 649, 1),        # CRP >= 3.0 mg/dL -> 1
    (176, 1.2, 90, 29.9, 650, 1),      # ferritin 650-2000 -> 1
    (176, 1.2, 90, 29.9, 2000, 1),
    (176, 1.2, 90, 29.9, 2001, 2),     # > 2000 -> 2
    (50, 0.5, 70, 100, 5000, 7),       # maximum
])
def test_hematotox_points(plt_, anc, hb, crp, fer, score):
    assert ht.hematotox_points([plt_], [anc], [hb], [crp], [fer])[0] == score


def test_hematotox_baseline_is_last_value_before_lymphodepletion():
    rows = []
    for day, values in ((-7, dict(platelets=50, anc=0.5, hemoglobin=70, crp=100, ferritin=5000)),
                        (-5, dict(platelets=200, anc=2.0, hemoglobin=120, crp=5, ferritin=300)),
                        (-3, dict(platelets=20, anc=0.1, hemoglobin=60, crp=200, ferritin=9000))):
        rows += [{"patient_id": "P01", "day": float(day), "analyte": a, "value": float(v)} for a, v in values.items()]
    labs = pd.DataFrame(rows)
    r = ht.hematotox(labs, PATIENT).iloc[0]
    assert (r["score"], r["risk"]) == (0.0, "low")  # day -5 values; day -3 is after lymphodepletion started
    r = ht.hematotox(labs, PATIENT.assign(lymphodepletion_day=-6.0)).iloc[0]
    assert (r["score"], r["risk"]) == (7.0, "high")
    r = ht.hematotox(labs[labs["analyte"] != "crp"], PATIENT).iloc[0]
    assert np.isnan(r["score"]) and r["risk"] == "inputs incomplete"


def test_patients_graded_together_as_each_alone():
    # All patients are graded in one pass (one sorted key over every patient's samples): a patient's
    # neighbouring samples never come from another patient, and each window ends at that patient's own day.
    labs = pd.concat([anc_labs({0: 0.3, 4: 0.3, 5: 1.5, 30: 1.5}, "A"),  # days 1-3 between two lows: neutropenic
                      anc_labs({2: 1.5, 20: 0.05}, "B"),           # before day 2 undetermined: too sparse
                      anc_labs({-3: 0.2}, "C"),                    # no ANC in days 0-30
                      anc_labs({0: 0.3, 1: 0.3, 2: 0.3, 3: 0.3, 4: 2.0, 5: 0.4}, "D")], ignore_index=True)
    patients = pd.DataFrame({"patient_id": ["A", "B", "C", "D", "E"], "os_days": [400.0, 400.0, 400.0, 4.0, 400.0]})
    together = ht.early_icaht(labs, patients).set_index("patient_id")
    for pid in patients["patient_id"]:
        alone = ht.early_icaht(labs[labs["patient_id"] == pid], patients[patients["patient_id"] == pid])
        pd.testing.assert_series_equal(together.loc[pid], alone.set_index("patient_id").loc[pid],
                                       check_dtype=False)
    assert together.loc["A", "days_le_0_5_min"] == 5 and together.loc["A", "grade"] == 1
    assert together.loc["C", "status"] == together.loc["E", "status"] == "no ANC in days 0-30"
    assert together.loc["D", "window_end"] == 4.0 and together.loc["D", "days_le_0_5_min"] == 4  # day 5 after death
    assert together.loc["B", "status"] == "too sparse to grade"
