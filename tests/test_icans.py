"""ICANS grading at the ASTCT 2019 boundaries (Lee DW et al., BBMT 2019;25:625-638, Tables 4-6)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import icans


def one_day(day: float = 3.0, pid: str = "P01", **kw) -> pd.DataFrame:
    return pd.DataFrame([{"patient_id": pid, "day": float(day), **kw}])


def grade(age: float | None = 30.0, **kw) -> tuple[int, str]:
    patients = pd.DataFrame({"patient_id": ["P01"], "age_years": [age]})
    g = icans.grade_daily(one_day(**kw), patients)
    return int(g["grade"].iloc[0]), str(g["driver"].iloc[0])


CASES = [
    # id, age, domains, grade, driver
    ("ice_10", 30, {"ice_score": 10}, 0, "none"),
    ("ice_9", 30, {"ice_score": 9}, 1, "encephalopathy"),
    ("ice_7", 30, {"ice_score": 7}, 1, "encephalopathy"),
    ("ice_6", 30, {"ice_score": 6}, 2, "encephalopathy"),
    ("ice_3", 30, {"ice_score": 3}, 2, "encephalopathy"),
    ("ice_2", 30, {"ice_score": 2}, 3, "encephalopathy"),
    # ICE 0, awake with global aphasia -> 3; ICE 0 because unarousable -> 4
    ("ice_0_awake_global_aphasia", 30, {"ice_score": 0, "consciousness": "alert"}, 3, "encephalopathy"),
    ("ice_0_unarousable", 30, {"ice_score": 0, "consciousness": "unarousable"}, 4, "consciousness"),
    ("unarousable_ice_not_done", 30, {"consciousness": "unarousable"}, 4, "consciousness"),
    ("awakens_spontaneously", 30, {"ice_score": 10, "consciousness": "awakens_spontaneously"}, 1, "consciousness"),
    ("awakens_to_voice", 30, {"consciousness": "awakens_to_voice"}, 2, "consciousness"),
    ("awakens_to_tactile", 30, {"consciousness": "awakens_to_tactile"}, 3, "consciousness"),
    ("ice_6_voice_tie", 30, {"ice_score": 6, "consciousness": "awakens_to_voice"}, 2,
     "encephalopathy+consciousness"),
    ("seizure_rapidly_resolving", 30, {"seizure": "rapidly_resolving"}, 3, "seizure"),
    ("seizure_prolonged", 30, {"seizure": "prolonged_or_repetitive"}, 4, "seizure"),
    ("seizure_none", 30, {"seizure": "none"}, 0, "none"),
    ("motor_weakness", 30, {"motor_weakness": 1}, 4, "motor_weakness"),
    ("no_motor_weakness", 30, {"motor_weakness": 0}, 0, "none"),
    ("edema_focal", 30, {"cerebral_edema": "focal"}, 3, "cerebral_edema"),
    ("edema_diffuse", 30, {"cerebral_edema": "diffuse"}, 4, "cerebral_edema"),
    ("worst_domain_wins", 30, {"ice_score": 8, "seizure": "rapidly_resolving"}, 3, "seizure"),
    # children under 12: CAPD 1-8 -> 1 (2 with awakening to voice), >= 9 -> 3
    ("capd_0_child", 8, {"capd_score": 0}, 0, "none"),
    ("capd_1_child", 8, {"capd_score": 1}, 1, "encephalopathy"),
    ("capd_8_child", 8, {"capd_score": 8}, 1, "encephalopathy"),
    ("capd_8_voice_child", 8, {"capd_score": 8, "consciousness": "awakens_to_voice"}, 2, "consciousness"),
    ("capd_9_child", 8, {"capd_score": 9}, 3, "encephalopathy"),
    ("age_11.9_uses_capd", 11.9, {"capd_score": 9, "ice_score": 10}, 3, "encephalopathy"),
    ("age_12_uses_ice", 12, {"capd_score": 9, "ice_score": 10}, 0, "none"),
    ("child_only_ice_recorded", 8, {"ice_score": 5}, 2, "encephalopathy"),
    ("age_unknown_uses_ice", None, {"capd_score": 9, "ice_score": 10}, 0, "none"),
    # not attributable to another cause
    ("other_cause", 30, {"seizure": "prolonged_or_repetitive", "icans_other_cause": 1}, 0, "other cause"),
    ("not_assessed", 30, {"icans_other_cause": 0}, 0, "not assessed"),
]


@pytest.mark.parametrize("age, kw, expected, driver", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_icans_boundaries(age, kw, expected, driver):
    assert grade(age, **kw) == (expected, driver)


def test_pre_infusion_days_are_not_graded():
    g = icans.grade_daily(one_day(-1, seizure="prolonged_or_repetitive"))
    assert g["grade"].tolist() == [0] and not g["assessed"].iloc[0]


def course() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """P01: ICANS days 5-8 (max 3 on day 6) after CRS days 2-6; P02 assessed, no ICANS; P03 never assessed."""
    daily = pd.DataFrame({"patient_id": ["P01"] * 6 + ["P02", "P03"], "day": [4, 5, 6, 7, 8, 9, 5, 5.0],
                          "ice_score": [10, 8, 2, 5, 9, 10, 10, np.nan]})
    patients = pd.DataFrame({"patient_id": ["P01", "P02", "P03"], "age_years": [30, 40, 50],
                             "icans_grade_reported": [3, 1, pd.NA]}).astype({"icans_grade_reported": "Int64"})
    crs_summary = pd.DataFrame({"patient_id": ["P01", "P02", "P03"], "crs_any": [True, False, True],
                                "onset_day": [2.0, np.nan, 1.0], "resolution_day": [7.0, np.nan, 4.0]})
    return daily, patients, crs_summary


def test_summary_onset_duration_and_crs_timing():
    daily, patients, crs_summary = course()
    s = icans.summarise_patients(icans.grade_daily(daily, patients), crs_summary, patients).set_index("patient_id")
    p1 = s.loc["P01"]
    assert (p1["max_grade"], p1["onset_day"], p1["last_day"], p1["duration_days"], p1["icans_days"],
            p1["day_of_max"]) == (3, 5.0, 8.0, 4.0, 4, 6.0)
    assert p1["onset_vs_crs_days"] == 3.0 and p1["timing"] == "during CRS"
    assert not s.loc["P02", "icans_any"] and s.loc["P02", "assessed"]
    assert not s.loc["P03", "assessed"]


def test_incidence_exact_ci_graded_and_reported():
    daily, patients, crs_summary = course()
    s = icans.summarise_patients(icans.grade_daily(daily, patients), crs_summary, patients)
    inc = icans.incidence(s).set_index(["source", "outcome"])
    g = inc.loc[("graded", "any ICANS")]
    assert (g["k"], g["n"]) == (1, 2)  # P03 never assessed: not in the denominator
    assert g["ci_low"] == pytest.approx(0.01257912, abs=1e-7) and g["ci_high"] == pytest.approx(0.9874209, abs=1e-6)
    r = inc.loc[("reported", "severe ICANS")]
    assert (r["k"], r["n"]) == (1, 2)


def test_every_icans_column_may_be_absent():
    daily, patients, _ = course()
    full = daily.assign(capd_score=np.nan, consciousness="alert", seizure="none", motor_weakness=0,
                        cerebral_edema="none", icans_other_cause=0)
    for col in [*icans.ICANS_COLUMNS, "icans_other_cause"]:
        g = icans.grade_daily(full.drop(columns=col), patients)
        assert len(g) == len(full)
    g = icans.grade_daily(daily[["patient_id", "day"]])
    assert not g["assessed"].any()


def test_death_due_to_icans_is_grade_5():
    daily, patients, crs_summary = course()
    patients = patients.assign(death_cause=["icans", None, None], os_days=[9.0, 400.0, 300.0])
    s = icans.summarise_patients(icans.grade_daily(daily, patients), crs_summary, patients).set_index("patient_id")
    assert s.loc["P01", "max_grade"] == 5 and s.loc["P01", "day_of_max"] == 9.0
    inc = icans.incidence(s.reset_index()).set_index(["source", "outcome"])
    assert inc.loc[("graded", "severe ICANS"), "k"] == 1
