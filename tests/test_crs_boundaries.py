"""Boundary cases of issue 13 for helpers.crs, written from the published definitions.

ASTCT 2019 (Lee DW et al., BBMT 2019): CRS follows the infusion; fever >= 38.0 C not attributable to
another cause; after tocilizumab/steroids fever is no longer required. Lee 2014 (Blood 2014) and CTCAE
v5.0 grade oxygen by FiO2 (< 40 % -> 2, >= 40 % -> 3); the Lee 2014 footnote defines high-dose
vasopressors by norepinephrine-equivalent dose (>= 20 ug/min, >= 10 ug/min with vasopressin); Penn
(Porter 2018) grade 4 = high-dose vasopressors, grade 3 = low-dose vasopressors or any supplemental O2.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import crs
from helpers.crs import GradingOptions

FEVER = dict(temp_max_c=38.5)


def day_row(day: float, **kw) -> dict:
    row = dict(patient_id="P01", day=float(day), temp_max_c=37.0, sbp_min_mmhg=110.0, vasopressors=0,
               vasopressin=0, oxygen="none", o2_flow_l_min=np.nan, fio2_pct=np.nan, tocilizumab=0,
               steroids=0, fever_other_cause=0)
    row.update(kw)
    return row


def quiet(first: int, last: int) -> list[dict]:
    """Normal days first..last (inclusive)."""
    return [day_row(d) for d in range(first, last + 1)]


def grades(rows: list[dict], system: str, **opts) -> dict[float, int]:
    g = crs.grade_daily(pd.DataFrame(rows), system, None, GradingOptions(**opts))
    return dict(zip(g["day"], g["grade"]))


ALL = crs.SYSTEMS

# id, rows, system(s), day looked at, expected grade, options
CASES = [
    # CRS follows the infusion: days < 0 are baseline
    ("fever_day_-2_is_not_crs", [day_row(-2, **FEVER), *quiet(-1, 3)], ALL, -2.0, 0, {}),
    ("fever_day_0_is_crs", [day_row(0, **FEVER), *quiet(1, 3)], ALL, 0.0, 1, {}),
    ("prefusion_fever_and_steroids_do_not_mask",
     [day_row(-2, **FEVER), day_row(-1, steroids=1, **FEVER), *quiet(0, 1), day_row(2, sbp_min_mmhg=85)],
     ALL, 2.0, 0, {}),
    # masking lasts for the episode only, and never overrides fever_other_cause
    ("septic_shock_day_20_after_toci_day_1",
     [day_row(1, tocilizumab=1, **FEVER), *quiet(2, 19),
      day_row(20, temp_max_c=39.0, fever_other_cause=1, vasopressors=2, sbp_min_mmhg=70)], ALL, 20.0, 0, {}),
    ("other_cause_day_inside_masked_episode",
     [day_row(1, tocilizumab=1, **FEVER), day_row(2, fever_other_cause=1, vasopressors=2, sbp_min_mmhg=70)],
     ALL, 2.0, 0, {}),
    ("afebrile_hypotension_4_weeks_after_resolved_crs",
     [day_row(1, tocilizumab=1, **FEVER), day_row(2, sbp_min_mmhg=85), *quiet(3, 28), day_row(29, sbp_min_mmhg=85)],
     ALL, 29.0, 0, {}),
    ("masked_day_inside_episode_still_graded",
     [day_row(1, tocilizumab=1, **FEVER), day_row(2, sbp_min_mmhg=85)], ("astct",), 2.0, 2, {}),
    # episode gap: 2 sign-free days keep the episode open, 3 close it (default episode_gap_days = 3)
    ("gap_2_days_episode_open",
     [day_row(1, tocilizumab=1, **FEVER), *quiet(2, 3), day_row(4, sbp_min_mmhg=85)], ("astct",), 4.0, 2, {}),
    ("gap_3_days_episode_closed",
     [day_row(1, tocilizumab=1, **FEVER), *quiet(2, 4), day_row(5, sbp_min_mmhg=85)], ("astct",), 5.0, 0, {}),
    ("gap_3_days_with_option_4_open",
     [day_row(1, tocilizumab=1, **FEVER), *quiet(2, 4), day_row(5, sbp_min_mmhg=85)], ("astct",), 5.0, 2,
     {"episode_gap_days": 4}),
    ("unrecorded_days_count_as_sign_free",
     [day_row(1, tocilizumab=1, **FEVER), day_row(5, sbp_min_mmhg=85)], ("astct",), 5.0, 0, {}),
    ("new_fever_opens_a_new_episode",
     [day_row(1, tocilizumab=1, **FEVER), *quiet(2, 9), day_row(10, **FEVER), day_row(11, steroids=1, **FEVER),
      day_row(12, sbp_min_mmhg=85)], ("astct",), 12.0, 2, {}),
    ("anticytokine_after_episode_closed_does_not_mask",
     [day_row(1, **FEVER), *quiet(2, 4), day_row(5, tocilizumab=1), day_row(6, sbp_min_mmhg=85)],
     ("astct",), 6.0, 0, {}),
    # Penn / Lee 2014: a recorded norepinephrine-equivalent dose decides "high dose"
    ("penn_vasopressin_plus_one_ne_5", [day_row(1, vasopressors=1, vasopressin=1, norepi_equiv_ug_min=5.0,
                                                **FEVER)], ("penn",), 1.0, 3, {}),
    ("penn_vasopressin_plus_one_ne_10", [day_row(1, vasopressors=1, vasopressin=1, norepi_equiv_ug_min=10.0,
                                                 **FEVER)], ("penn",), 1.0, 4, {}),
    ("penn_two_pressors_ne_12", [day_row(1, vasopressors=2, norepi_equiv_ug_min=12.0, **FEVER)], ("penn",),
     1.0, 3, {}),
    ("penn_two_pressors_ne_19.9", [day_row(1, vasopressors=2, norepi_equiv_ug_min=19.9, **FEVER)], ("penn",),
     1.0, 3, {}),
    ("penn_two_pressors_ne_20", [day_row(1, vasopressors=2, norepi_equiv_ug_min=20.0, **FEVER)], ("penn",),
     1.0, 4, {}),
    ("penn_two_pressors_no_dose_fallback", [day_row(1, vasopressors=2, **FEVER)], ("penn",), 1.0, 4, {}),
    ("penn_two_pressors_no_dose_fallback_off", [day_row(1, vasopressors=2, **FEVER)], ("penn",), 1.0, 3,
     {"penn_multiple_pressors_high_dose": False}),
    ("penn_dose_beats_flag", [day_row(1, vasopressors=1, norepi_equiv_ug_min=5.0, vasopressor_high_dose=1,
                                      **FEVER)], ("penn",), 1.0, 3, {}),
    ("lee_one_pressor_ne_19.9", [day_row(1, vasopressors=1, norepi_equiv_ug_min=19.9, **FEVER)], ("lee2014",),
     1.0, 2, {}),
    ("lee_one_pressor_ne_20", [day_row(1, vasopressors=1, norepi_equiv_ug_min=20.0, **FEVER)], ("lee2014",),
     1.0, 3, {}),
    ("lee_two_pressors_low_dose_still_multiple", [day_row(1, vasopressors=2, norepi_equiv_ug_min=5.0, **FEVER)],
     ("lee2014",), 1.0, 3, {}),
    # a recorded FiO2 grades what FiO2 defines, whatever the device field says
    ("fio2_60_blank_device_lee", [day_row(1, oxygen=None, fio2_pct=60.0, **FEVER)], ("lee2014", "ctcae5"),
     1.0, 3, {}),
    ("fio2_39.9_blank_device_lee", [day_row(1, oxygen=None, fio2_pct=39.9, **FEVER)], ("lee2014", "ctcae5"),
     1.0, 2, {}),
    ("fio2_40_device_none_lee", [day_row(1, oxygen="none", fio2_pct=40.0, **FEVER)], ("lee2014", "ctcae5"),
     1.0, 3, {}),
    ("fio2_21_is_room_air", [day_row(1, oxygen=None, fio2_pct=21.0, **FEVER)], ALL, 1.0, 1, {}),
    ("fio2_30_blank_device_penn_any_o2", [day_row(1, oxygen=None, fio2_pct=30.0, **FEVER)], ("penn",), 1.0, 3, {}),
    ("fio2_60_blank_device_astct_by_device", [day_row(1, oxygen=None, fio2_pct=60.0, **FEVER)], ("astct",),
     1.0, 1, {}),
    # documented ambiguities and their options
    ("high_flow_5_l_min_by_device", [day_row(1, oxygen="high_flow", o2_flow_l_min=5.0, **FEVER)], ("astct",),
     1.0, 3, {}),
    ("high_flow_5_l_min_by_rate", [day_row(1, oxygen="high_flow", o2_flow_l_min=5.0, **FEVER)], ("astct",),
     1.0, 2, {"high_flow_by_device": False}),
    ("high_flow_7_l_min_by_rate", [day_row(1, oxygen="high_flow", o2_flow_l_min=7.0, **FEVER)], ("astct",),
     1.0, 3, {"high_flow_by_device": False}),
    ("low_flow_6_l_min", [day_row(1, oxygen="low_flow", o2_flow_l_min=6.0, **FEVER)], ("astct",), 1.0, 2, {}),
    ("low_flow_6.1_l_min", [day_row(1, oxygen="low_flow", o2_flow_l_min=6.1, **FEVER)], ("astct",), 1.0, 3, {}),
    ("bipap_fio2_50_lee_default", [day_row(1, oxygen="bipap", fio2_pct=50.0, **FEVER)], ("lee2014",), 1.0, 3, {}),
    ("bipap_lee_as_ventilator_support", [day_row(1, oxygen="bipap", fio2_pct=50.0, **FEVER)], ("lee2014",), 1.0,
     4, {"ventilator_support_devices": ("bipap", "cpap", "mechanical_ventilation")}),
    ("bipap_astct_positive_pressure", [day_row(1, oxygen="bipap", **FEVER)], ("astct",), 1.0, 4, {}),
    ("afebrile_hypoxia_lee_gated", [day_row(1, oxygen="none", fio2_pct=50.0)], ("lee2014",), 1.0, 0, {}),
    ("afebrile_hypoxia_lee_ungated", [day_row(1, oxygen="none", fio2_pct=50.0)], ("lee2014",), 1.0, 3,
     {"fever_gate_all_systems": False}),
    ("afebrile_hypoxia_ungated_not_before_infusion", [day_row(-1, oxygen="none", fio2_pct=50.0), *quiet(0, 1)],
     ("lee2014",), -1.0, 0, {"fever_gate_all_systems": False}),
]


@pytest.mark.parametrize("rows, systems, day, grade, opts", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_issue13_boundaries(rows, systems, day, grade, opts):
    for system in systems:
        assert grades(rows, system, **opts)[day] == grade, system


def test_pre_infusion_fever_gives_no_onset():
    rows = [day_row(-2, **FEVER), *quiet(-1, 2), day_row(3, **FEVER)]
    s = crs.summarise_patients(crs.grade_daily(pd.DataFrame(rows)))
    assert s["onset_day"].iloc[0] == 3.0 and s["max_grade"].iloc[0] == 1


OPTIONAL = [c for c in crs.DAILY_COLUMNS if c not in crs.REQUIRED_DAILY_COLUMNS] + [
    "vasopressor_high_dose", "norepi_equiv_ug_min", "fluid_boluses", "coag_replacement"]


@pytest.mark.parametrize("column", OPTIONAL)
def test_each_optional_column_may_be_absent(column):
    rows = [day_row(1, tocilizumab=1, steroids=1, vasopressors=1, vasopressin=1, oxygen="low_flow", o2_flow_l_min=3.0,
                    fio2_pct=30.0, norepi_equiv_ug_min=8.0, vasopressor_high_dose=0, fluid_boluses=2,
                    coag_replacement=1, **FEVER), day_row(2, sbp_min_mmhg=85)]
    d = pd.DataFrame(rows)
    assert column in d.columns
    out = crs.grade_systems(d.drop(columns=column))
    assert set(out) == set(crs.SYSTEMS) and all(len(g) == 2 for g in out.values())


def test_only_key_columns_grades_zero():
    d = pd.DataFrame({"patient_id": ["P01", "P01"], "day": [0.0, 1.0]})
    for g in crs.grade_systems(d).values():
        assert g["grade"].tolist() == [0, 0]
