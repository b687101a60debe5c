"""Hand-graded boundary tests for helpers.crs (ASTCT 2019, Lee 2014, CTCAE v5.0, Penn 2018)."""
from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import crs  # noqa: E402
from helpers.crs import GradingOptions  # noqa: E402

INT_COLUMNS = ["vasopressors", "vasopressin", "tocilizumab", "steroids", "fever_other_cause"]


def day_row(day: float = 1.0, pid: str = "P01", **kw) -> dict:
    """One afebrile, normotensive, room-air day; keyword arguments override."""
    row = dict(patient_id=pid, day=float(day), temp_max_c=37.0, sbp_min_mmhg=110.0, vasopressors=0,
               vasopressin=0, oxygen="none", o2_flow_l_min=np.nan, fio2_pct=np.nan, tocilizumab=0,
               steroids=0, fever_other_cause=0)
    row.update(kw)
    return row


def frame(rows: list[dict]) -> pd.DataFrame:
    """Daily table with the contract's nullable integer columns."""
    d = pd.DataFrame(rows)
    return d.astype({c: "Int64" for c in INT_COLUMNS})


def labs_for(day: float, pid: str = "P01", **values) -> pd.DataFrame:
    """Long labs table with canonical units, one value per analyte on `day`."""
    unit = crs.ORGAN_ANALYTES
    return pd.DataFrame([{"patient_id": pid, "day": float(day), "analyte": a, "value": float(v),
                          "unit": unit[a]} for a, v in values.items()])


def last_grade(rows, system, labs=None, **opts) -> tuple[int, str]:
    """Grade and driver of the last day of a one-patient table."""
    g = crs.grade_daily(frame(rows), system, labs, GradingOptions(**opts))
    return int(g["grade"].iloc[-1]), str(g["driver"].iloc[-1])


FEVER = dict(temp_max_c=38.5)

# --------------------------------------------------------------------------------- ASTCT

ASTCT_CASES = [
    # id, rows, options, expected grade, expected driver
    ("37.9C_no_fever", [day_row(temp_max_c=37.9)], {}, 0, "none"),
    ("38.0C_fever", [day_row(temp_max_c=38.0)], {}, 1, "fever"),
    ("fever_other_cause", [day_row(fever_other_cause=1, **FEVER)], {}, 0, "none"),
    ("fever_other_cause_counted_by_option", [day_row(fever_other_cause=1, **FEVER)],
     {"other_cause_fever_counts": True}, 1, "fever"),
    # fever day 1 + tocilizumab day 1 -> day 2 masked: afebrile SBP 85 still CRS grade 2
    ("masked_after_tocilizumab", [day_row(1, tocilizumab=1, **FEVER), day_row(2, sbp_min_mmhg=85)],
     {}, 2, "hypotension:no_pressor"),
    ("masked_after_steroids", [day_row(1, **FEVER), day_row(2, steroids=1, sbp_min_mmhg=85)],
     {}, 2, "hypotension:no_pressor"),
    # fever day 1, no anti-cytokine yet: afebrile hypotensive day 2 is not CRS (see also
    # test_masking_starts_on_first_anticytokine_day_after_fever for steroids started later)
    ("afebrile_before_any_anticytokine", [day_row(1, **FEVER), day_row(2, sbp_min_mmhg=85)],
     {}, 0, "none"),
    # tocilizumab on day 0 before any fever does not start masking
    ("tocilizumab_before_first_fever", [day_row(0, tocilizumab=1), day_row(1, sbp_min_mmhg=85)],
     {}, 0, "none"),
    ("masking_switched_off", [day_row(1, tocilizumab=1, **FEVER), day_row(2, sbp_min_mmhg=85)],
     {"fever_not_required_after_anticytokine": False}, 0, "none"),
    # masked day with nothing left to grade -> resolved (grade 0)
    ("masked_day_without_signs", [day_row(1, tocilizumab=1, **FEVER), day_row(2)], {}, 0, "none"),
    ("sbp_90_not_hypotension", [day_row(sbp_min_mmhg=90.0, **FEVER)], {}, 1, "fever"),
    ("sbp_89_hypotension", [day_row(sbp_min_mmhg=89.0, **FEVER)], {}, 2, "hypotension:no_pressor"),
    ("sbp_89_with_threshold_85", [day_row(sbp_min_mmhg=89.0, **FEVER)],
     {"sbp_hypotension_mmhg": 85.0}, 1, "fever"),
    ("vasopressin_alone", [day_row(vasopressin=1, **FEVER)], {}, 3, "hypotension:vasopressin"),
    ("one_vasopressor", [day_row(vasopressors=1, **FEVER)], {}, 3, "hypotension:one_pressor"),
    ("one_vasopressor_plus_vasopressin", [day_row(vasopressors=1, vasopressin=1, **FEVER)], {}, 3,
     "hypotension:one_pressor"),
    ("two_vasopressors", [day_row(vasopressors=2, **FEVER)], {}, 4, "hypotension:multi_pressor"),
    ("low_flow_6", [day_row(oxygen="low_flow", o2_flow_l_min=6.0, **FEVER)], {}, 2, "hypoxia:low_flow"),
    ("low_flow_6.5", [day_row(oxygen="low_flow", o2_flow_l_min=6.5, **FEVER)], {}, 3,
     "hypoxia:low_flow_over_limit"),
    ("low_flow_missing_rate", [day_row(oxygen="low_flow", **FEVER)], {}, 2, "hypoxia:low_flow"),
    ("high_flow", [day_row(oxygen="high_flow", o2_flow_l_min=30.0, **FEVER)], {}, 3, "hypoxia:high_flow"),
    ("facemask", [day_row(oxygen="facemask", **FEVER)], {}, 3, "hypoxia:facemask"),
    ("nonrebreather", [day_row(oxygen="nonrebreather", **FEVER)], {}, 3, "hypoxia:nonrebreather"),
    ("venturi", [day_row(oxygen="venturi", **FEVER)], {}, 3, "hypoxia:venturi"),
    ("cpap", [day_row(oxygen="cpap", **FEVER)], {}, 4, "hypoxia:cpap"),
    ("bipap", [day_row(oxygen="bipap", **FEVER)], {}, 4, "hypoxia:bipap"),
    ("mechanical_ventilation", [day_row(oxygen="mechanical_ventilation", **FEVER)], {}, 4,
     "hypoxia:mechanical_ventilation"),
    ("hypoxia_without_fever", [day_row(oxygen="facemask")], {}, 0, "none"),
    # hypotension 3 and hypoxia 3: both named
    ("tie_pressor_and_facemask", [day_row(vasopressors=1, oxygen="facemask", **FEVER)], {}, 3,
     "hypotension:one_pressor+hypoxia:facemask"),
    # hypoxia 4 beats hypotension 2
    ("more_severe_wins", [day_row(sbp_min_mmhg=80, oxygen="bipap", **FEVER)], {}, 4, "hypoxia:bipap"),
    # every column missing -> nothing present
    ("all_missing", [day_row(temp_max_c=np.nan, sbp_min_mmhg=np.nan, vasopressors=pd.NA,
                             vasopressin=pd.NA, oxygen=None, tocilizumab=pd.NA, steroids=pd.NA,
                             fever_other_cause=pd.NA)], {}, 0, "none"),
]


@pytest.mark.parametrize("rows, opts, grade, driver", [c[1:] for c in ASTCT_CASES],
                         ids=[c[0] for c in ASTCT_CASES])
def test_astct_boundaries(rows, opts, grade, driver):
    assert last_grade(rows, "astct", **opts) == (grade, driver)


def test_astct_ignores_organ_toxicity():
    # creatinine 700 umol/L = 6.6 x ULN 106 -> CTCAE grade 4, still ASTCT grade 1 (fever only)
    assert last_grade([day_row(**FEVER)], "astct", labs_for(1, creatinine=700)) == (1, "fever")


def test_masking_starts_on_first_anticytokine_day_after_fever():
    # day 1 steroids without fever (pre-fever, does not mask), day 2 fever, day 3 afebrile SBP 85
    # (not masked yet: no anti-cytokine on/after day 2), day 4 steroids + SBP 85 -> masked grade 2
    rows = [day_row(1, steroids=1), day_row(2, **FEVER), day_row(3, sbp_min_mmhg=85),
            day_row(4, steroids=1, sbp_min_mmhg=85), day_row(5, sbp_min_mmhg=85)]
    g = crs.grade_daily(frame(rows), "astct")
    assert g["grade"].tolist() == [0, 1, 0, 2, 2]
    assert g["crs_day"].tolist() == [False, True, False, True, True]
    assert g["grade"].dtype == np.int64


# ------------------------------------------------------------------------------- Lee 2014

LEE_CASES = [
    ("37.9C_no_fever", [day_row(temp_max_c=37.9)], {}, None, 0, "none"),
    ("38.0C_fever", [day_row(temp_max_c=38.0)], {}, None, 1, "fever"),
    ("sbp_90", [day_row(sbp_min_mmhg=90, **FEVER)], {}, None, 1, "fever"),
    ("sbp_89_fluids", [day_row(sbp_min_mmhg=89, **FEVER)], {}, None, 2, "hypotension:no_pressor"),
    ("one_pressor_dose_unknown_low", [day_row(vasopressors=1, **FEVER)], {}, None, 2,
     "hypotension:low_dose_pressor"),
    # vasopressin counts as a pressor outside ASTCT: alone = one low-dose pressor
    ("vasopressin_alone", [day_row(vasopressin=1, **FEVER)], {}, None, 2, "hypotension:low_dose_pressor"),
    ("one_pressor_plus_vasopressin", [day_row(vasopressors=1, vasopressin=1, **FEVER)], {}, None, 3,
     "hypotension:multi_pressor"),
    ("one_pressor_plus_vasopressin_not_counted", [day_row(vasopressors=1, vasopressin=1, **FEVER)],
     {"vasopressin_counts_outside_astct": False}, None, 2, "hypotension:low_dose_pressor"),
    ("two_pressors", [day_row(vasopressors=2, **FEVER)], {}, None, 3, "hypotension:multi_pressor"),
    ("high_dose_flag", [day_row(vasopressors=1, vasopressor_high_dose=1, **FEVER)], {}, None, 3,
     "hypotension:high_dose_pressor"),
    ("norepi_19.9", [day_row(vasopressors=1, norepi_equiv_ug_min=19.9, **FEVER)], {}, None, 2,
     "hypotension:low_dose_pressor"),
    ("norepi_20", [day_row(vasopressors=1, norepi_equiv_ug_min=20.0, **FEVER)], {}, None, 3,
     "hypotension:high_dose_pressor"),
    # vasopressin alone (one pressor) with norepinephrine equivalent 10 -> footnote high dose
    ("vasopressin_ne_10", [day_row(vasopressin=1, norepi_equiv_ug_min=10.0, **FEVER)], {}, None, 3,
     "hypotension:high_dose_pressor"),
    ("fio2_39", [day_row(oxygen="facemask", fio2_pct=39.0, **FEVER)], {}, None, 2, "hypoxia:fio2_low"),
    ("fio2_40", [day_row(oxygen="facemask", fio2_pct=40.0, **FEVER)], {}, None, 3, "hypoxia:fio2_high"),
    ("fio2_missing_facemask", [day_row(oxygen="facemask", **FEVER)], {}, None, 2, "hypoxia:fio2_low"),
    ("fio2_missing_nonrebreather", [day_row(oxygen="nonrebreather", **FEVER)], {}, None, 3,
     "hypoxia:fio2_high"),
    # issue 13: a recorded FiO2 grades what FiO2 defines, whatever the device field says (here "none")
    ("fio2_50_with_device_none", [day_row(fio2_pct=50.0, **FEVER)], {}, None, 3, "hypoxia:fio2_high"),
    ("cpap_fio2_30", [day_row(oxygen="cpap", fio2_pct=30.0, **FEVER)], {}, None, 2, "hypoxia:fio2_low"),
    ("cpap_as_ventilator_support", [day_row(oxygen="cpap", fio2_pct=30.0, **FEVER)],
     {"ventilator_support_devices": ("cpap", "bipap", "mechanical_ventilation")}, None, 4,
     "hypoxia:ventilator"),
    ("mechanical_ventilation", [day_row(oxygen="mechanical_ventilation", fio2_pct=30.0, **FEVER)], {},
     None, 4, "hypoxia:ventilator"),
    # creatinine 160 / ULN 106 = 1.51 -> CTCAE 2 -> Lee 2
    ("creatinine_ctcae2", [day_row(**FEVER)], {}, {"creatinine": 160}, 2, "organ:creatinine_ctcae2"),
    # 159 / 106 = 1.4999 -> CTCAE 1 -> not organ toxicity
    ("creatinine_ctcae1", [day_row(**FEVER)], {}, {"creatinine": 159}, 1, "fever"),
    # 319 / 106 = 3.01 -> CTCAE 3
    ("creatinine_ctcae3", [day_row(**FEVER)], {}, {"creatinine": 319}, 3, "organ:creatinine_ctcae3"),
    # 637 / 106 = 6.01 -> CTCAE 4 -> Lee 4
    ("creatinine_ctcae4", [day_row(**FEVER)], {}, {"creatinine": 637}, 4, "organ:creatinine_ctcae4"),
    # ALT 121 / 40 = 3.03 -> CTCAE 2
    ("alt_ctcae2", [day_row(**FEVER)], {}, {"alt": 121}, 2, "organ:alt_ctcae2"),
    # ALT 801 / 40 = 20.03 -> CTCAE 4, transaminitis 4 -> Lee 3 only
    ("alt_ctcae4_transaminitis_is_3", [day_row(**FEVER)], {}, {"alt": 801}, 3, "organ:alt_ctcae3+"),
    # bilirubin 211 / 21 = 10.05 -> CTCAE 4 (not a transaminase) -> Lee 4
    ("bilirubin_ctcae4", [day_row(**FEVER)], {}, {"bilirubin": 211}, 4, "organ:bilirubin_ctcae4"),
    ("organ_without_fever_not_crs", [day_row()], {}, {"creatinine": 637}, 0, "none"),
    ("organ_without_fever_ungated", [day_row()], {"fever_gate_all_systems": False},
     {"creatinine": 637}, 4, "organ:creatinine_ctcae4"),
]


@pytest.mark.parametrize("rows, opts, lab_values, grade, driver", [c[1:] for c in LEE_CASES],
                         ids=[c[0] for c in LEE_CASES])
def test_lee2014_boundaries(rows, opts, lab_values, grade, driver):
    labs = labs_for(1, **lab_values) if lab_values else None
    assert last_grade(rows, "lee2014", labs, **opts) == (grade, driver)


# ------------------------------------------------------------------------------ CTCAE v5.0

CTCAE_CASES = [
    ("37.9C_no_fever", [day_row(temp_max_c=37.9)], 0, "none"),
    ("38.0C_fever", [day_row(temp_max_c=38.0)], 1, "fever"),
    ("sbp_90", [day_row(sbp_min_mmhg=90, **FEVER)], 1, "fever"),
    ("sbp_89", [day_row(sbp_min_mmhg=89, **FEVER)], 2, "hypotension:no_pressor"),
    ("vasopressin_alone", [day_row(vasopressin=1, **FEVER)], 3, "hypotension:one_pressor"),
    ("one_pressor", [day_row(vasopressors=1, **FEVER)], 3, "hypotension:one_pressor"),
    ("one_pressor_plus_vasopressin", [day_row(vasopressors=1, vasopressin=1, **FEVER)], 4,
     "hypotension:multi_pressor"),
    ("two_pressors", [day_row(vasopressors=2, **FEVER)], 4, "hypotension:multi_pressor"),
    ("fio2_39", [day_row(oxygen="low_flow", o2_flow_l_min=4.0, fio2_pct=39.0, **FEVER)], 2,
     "hypoxia:fio2_low"),
    ("fio2_40", [day_row(oxygen="low_flow", o2_flow_l_min=4.0, fio2_pct=40.0, **FEVER)], 3,
     "hypoxia:fio2_high"),
    ("high_flow_fio2_60", [day_row(oxygen="high_flow", fio2_pct=60.0, **FEVER)], 3, "hypoxia:fio2_high"),
    ("mechanical_ventilation", [day_row(oxygen="mechanical_ventilation", **FEVER)], 4,
     "hypoxia:ventilator"),
    ("masked_after_tocilizumab", [day_row(1, tocilizumab=1, **FEVER), day_row(2, vasopressors=1)], 3,
     "hypotension:one_pressor"),
]


@pytest.mark.parametrize("rows, grade, driver", [c[1:] for c in CTCAE_CASES],
                         ids=[c[0] for c in CTCAE_CASES])
def test_ctcae5_boundaries(rows, grade, driver):
    assert last_grade(rows, "ctcae5") == (grade, driver)


def test_ctcae5_ignores_organ_toxicity():
    # CTCAE grades organ toxicity under its own terms: creatinine grade 4 leaves CRS grade 1
    assert last_grade([day_row(**FEVER)], "ctcae5", labs_for(1, creatinine=700)) == (1, "fever")


# ----------------------------------------------------------------------------------- Penn

PENN_CASES = [
    ("37.9C_no_fever", [day_row(temp_max_c=37.9)], {}, None, 0, "none"),
    ("38.0C_fever", [day_row(temp_max_c=38.0)], {}, None, 1, "fever"),
    ("sbp_90", [day_row(sbp_min_mmhg=90, **FEVER)], {}, None, 1, "fever"),
    ("sbp_89_boluses_unknown", [day_row(sbp_min_mmhg=89, **FEVER)], {}, None, 2, "hypotension:no_pressor"),
    ("sbp_89_one_bolus", [day_row(sbp_min_mmhg=89, fluid_boluses=1, **FEVER)], {}, None, 2,
     "hypotension:no_pressor"),
    ("sbp_89_two_boluses", [day_row(sbp_min_mmhg=89, fluid_boluses=2, **FEVER)], {}, None, 3,
     "hypotension:fluid_boluses"),
    ("sbp_89_boluses_assumed", [day_row(sbp_min_mmhg=89, **FEVER)],
     {"penn_assume_multiple_boluses": True}, None, 3, "hypotension:fluid_boluses"),
    ("vasopressin_alone", [day_row(vasopressin=1, **FEVER)], {}, None, 3, "hypotension:low_dose_pressor"),
    ("one_pressor", [day_row(vasopressors=1, **FEVER)], {}, None, 3, "hypotension:low_dose_pressor"),
    ("one_pressor_high_dose", [day_row(vasopressors=1, vasopressor_high_dose=1, **FEVER)], {}, None, 4,
     "hypotension:high_dose_pressor"),
    ("one_pressor_plus_vasopressin", [day_row(vasopressors=1, vasopressin=1, **FEVER)], {}, None, 4,
     "hypotension:high_dose_pressor"),
    ("two_pressors", [day_row(vasopressors=2, **FEVER)], {}, None, 4, "hypotension:high_dose_pressor"),
    ("two_pressors_not_read_as_high", [day_row(vasopressors=2, **FEVER)],
     {"penn_multiple_pressors_high_dose": False}, None, 3, "hypotension:low_dose_pressor"),
    ("low_flow_2L", [day_row(oxygen="low_flow", o2_flow_l_min=2.0, **FEVER)], {}, None, 3,
     "hypoxia:supplemental_o2"),
    ("bipap", [day_row(oxygen="bipap", **FEVER)], {}, None, 3, "hypoxia:supplemental_o2"),
    ("mechanical_ventilation", [day_row(oxygen="mechanical_ventilation", **FEVER)], {}, None, 4,
     "hypoxia:ventilator"),
    ("coagulopathy_replacement", [day_row(coag_replacement=1, **FEVER)], {}, None, 3,
     "coagulopathy:replacement"),
    # creatinine 160 / 106 = 1.51 -> CTCAE 2 -> Penn 2
    ("creatinine_ctcae2", [day_row(**FEVER)], {}, {"creatinine": 160}, 2, "organ:creatinine_ctcae2"),
    # 319 / 106 = 3.01 -> CTCAE 3 -> Penn 3
    ("creatinine_ctcae3", [day_row(**FEVER)], {}, {"creatinine": 319}, 3, "organ:creatinine_ctcae3+"),
    # ALT 200 / 40 = 5.0 -> CTCAE 2 (not > 5) -> below Penn's grade-3 LFT threshold
    ("alt_ctcae2", [day_row(**FEVER)], {}, {"alt": 200}, 1, "fever"),
    # ALT 201 / 40 = 5.03 -> CTCAE 3 -> Penn 2
    ("alt_ctcae3", [day_row(**FEVER)], {}, {"alt": 201}, 2, "organ:alt_ctcae3"),
    # AST 801 / 40 = 20.03 -> CTCAE 4 -> Penn 3
    ("ast_ctcae4", [day_row(**FEVER)], {}, {"ast": 801}, 3, "organ:ast_ctcae4"),
    # bilirubin 64 / 21 = 3.05 -> CTCAE 3 -> Penn 2 (bilirubin counted as an LFT)
    ("bilirubin_ctcae3", [day_row(**FEVER)], {}, {"bilirubin": 64}, 2, "organ:bilirubin_ctcae3"),
    ("bilirubin_not_lft_by_option", [day_row(**FEVER)], {"penn_lft_analytes": ("alt", "ast")},
     {"bilirubin": 64}, 1, "fever"),
]


@pytest.mark.parametrize("rows, opts, lab_values, grade, driver", [c[1:] for c in PENN_CASES],
                         ids=[c[0] for c in PENN_CASES])
def test_penn_boundaries(rows, opts, lab_values, grade, driver):
    labs = labs_for(1, **lab_values) if lab_values else None
    assert last_grade(rows, "penn", labs, **opts) == (grade, driver)


# ----------------------------------------------------------------------- CTCAE lab grading

LAB_CASES = [
    # analyte, value, baseline (day -1) or None, expected CTCAE v5.0 grade; ULNs 106/40/40/21
    ("creatinine", 106, None, 0),   # = ULN, not above
    ("creatinine", 107, None, 1),   # 1.01 x ULN
    ("creatinine", 160, None, 2),   # 1.51 x ULN
    ("creatinine", 318, None, 2),   # 3.0 x ULN, not above
    ("creatinine", 319, None, 3),   # 3.01 x ULN
    ("creatinine", 637, None, 4),   # 6.01 x ULN
    ("creatinine", 100, 50, 2),     # 0.94 x ULN (0) but 2.0 x baseline -> 2
    ("creatinine", 151, 50, 3),     # 1.42 x ULN (1) but 3.02 x baseline -> 3
    ("alt", 120, None, 1),          # 3.0 x ULN
    ("alt", 121, None, 2),          # 3.03 x ULN
    ("alt", 801, None, 4),          # 20.03 x ULN
    ("alt", 119, 80, 0),            # abnormal baseline 80: 1.49 x baseline (ULN grading ignored)
    ("alt", 121, 80, 1),            # 1.51 x baseline
    ("alt", 241, 80, 2),            # 3.01 x baseline
    ("ast", 401, 20, 3),            # normal baseline -> ULN: 10.0 x ULN
    ("bilirubin", 22, None, 1),     # 1.05 x ULN
    ("bilirubin", 32, None, 2),     # 1.52 x ULN
    ("bilirubin", 64, None, 3),     # 3.05 x ULN
    ("bilirubin", 211, None, 4),    # 10.05 x ULN
    ("bilirubin", 64, 30, 2),       # abnormal baseline 30: 2.13 x baseline
]


@pytest.mark.parametrize("analyte, value, baseline, grade", LAB_CASES)
def test_organ_grades_ctcae5(analyte, value, baseline, grade):
    labs = labs_for(5, **{analyte: value})
    if baseline is not None:
        labs = pd.concat([labs_for(-1, **{analyte: baseline}), labs], ignore_index=True)
    g = crs.organ_grades(labs)
    assert g.loc[g["day"] == 5, analyte].item() == grade


def test_organ_grades_without_baseline_option():
    # creatinine 100 with baseline 50: with baselines off only ULN counts -> 0.94 x ULN -> 0
    labs = pd.concat([labs_for(-1, creatinine=50), labs_for(5, creatinine=100)], ignore_index=True)
    g = crs.organ_grades(labs, GradingOptions(use_lab_baseline=False))
    assert g.loc[g["day"] == 5, "creatinine"].item() == 0


# --------------------------------------------------------------------------- summaries

def _summary_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hand-built daily table: P01 and P02 over days 1-5, P04 afebrile, P03 and P05 no rows."""
    rows = [
        # P01 grades 0,1,3,0,1: onset 2, last CRS day 5, unresolved, duration 5-2+1 = 4, 3 CRS days
        day_row(1, "P01"), day_row(2, "P01", **FEVER), day_row(3, "P01", oxygen="facemask", **FEVER),
        day_row(4, "P01"), day_row(5, "P01", **FEVER),
        # P02 grades 0,1,2,2,0: onset 2, resolved day 5, duration 4-2+1 = 3, max 2 first on day 3
        day_row(1, "P02"), day_row(2, "P02", **FEVER), day_row(3, "P02", sbp_min_mmhg=85, **FEVER),
        day_row(4, "P02", sbp_min_mmhg=80, **FEVER), day_row(5, "P02"),
        day_row(1, "P04"), day_row(2, "P04", temp_max_c=37.9),
    ]
    patients = pd.DataFrame({"patient_id": ["P01", "P02", "P03", "P04", "P05"],
                             "death_cause": [pd.NA, pd.NA, pd.NA, pd.NA, "crs"],
                             "os_days": [300.0, 250.0, 200.0, 150.0, 9.0]})
    return frame(rows), patients


def test_summarise_patients_hand_example():
    daily, patients = _summary_cohort()
    s = crs.crs_table(daily, patients, "astct").set_index("patient_id")
    assert s.loc["P01", ["max_grade", "onset_day", "duration_days", "crs_days", "day_of_max"]].tolist() \
        == [3, 2.0, 4.0, 3, 3.0]
    assert np.isnan(s.loc["P01", "resolution_day"])
    assert s.loc["P02", ["max_grade", "onset_day", "resolution_day", "duration_days", "crs_days",
                         "day_of_max"]].tolist() == [2, 2.0, 5.0, 3.0, 3, 3.0]
    assert bool(s.loc["P01", "crs_any"]) and bool(s.loc["P02", "crs_any"])


@pytest.mark.parametrize("pid", ["P03", "P04"])  # P03: no daily rows; P04: afebrile rows
def test_summarise_patients_no_crs(pid):
    daily, patients = _summary_cohort()
    s = crs.crs_table(daily, patients, "astct").set_index("patient_id")
    assert not s.loc[pid, "crs_any"]
    assert s.loc[pid, "max_grade"] == 0
    assert np.isnan(s.loc[pid, "onset_day"]) and np.isnan(s.loc[pid, "duration_days"])


def test_summarise_patients_death_due_to_crs_is_grade_5():
    daily, patients = _summary_cohort()
    s = crs.crs_table(daily, patients, "astct").set_index("patient_id")
    assert s.loc["P05", "max_grade"] == 5 and bool(s.loc["P05", "crs_any"])
    assert s.loc["P05", "day_of_max"] == 9.0  # os_days of the CRS death
    assert s["max_grade"].dtype == np.int64
    assert s.index.tolist() == ["P01", "P02", "P03", "P04", "P05"]


# ---------------------------------------------------------------------- agreement tables

def _agreement_cohort() -> pd.DataFrame:
    """One febrile day per patient; grades (astct, lee2014, ctcae5, penn) worked out by hand."""
    return frame([
        day_row(1, "A", vasopressors=1, **FEVER),                                # 3, 2, 3, 3
        day_row(1, "B", oxygen="low_flow", o2_flow_l_min=2.0, fio2_pct=28.0, **FEVER),  # 2, 2, 2, 3
        day_row(1, "C", vasopressin=1, **FEVER),                                 # 3, 2, 3, 3
        day_row(1, "D", **FEVER),                                                # 1, 1, 1, 1
        day_row(1, "E", vasopressors=2, **FEVER),                                # 4, 3, 4, 4
    ])


def test_agreement_table_hand_grades():
    a = crs.agreement_table(_agreement_cohort(), None)
    assert a.columns.tolist() == ["patient_id", *crs.SYSTEMS, "severe_agree"]
    assert a[list(crs.SYSTEMS)].to_numpy().tolist() == [
        [3, 2, 3, 3], [2, 2, 2, 3], [3, 2, 3, 3], [1, 1, 1, 1], [4, 3, 4, 4]]
    assert a["severe_agree"].tolist() == [False, False, False, True, True]


def test_severe_switches_hand_counts():
    # severe (>= 3): astct {A,C,E}; lee2014 {E}; ctcae5 {A,C,E}; penn {A,B,C,E}
    s = crs.severe_switches(crs.agreement_table(_agreement_cohort(), None))
    got = s.set_index(["system_a", "system_b"])[
        ["n_severe_a", "n_severe_b", "n_both_severe", "n_severe_a_only", "n_severe_b_only", "n_switch"]]
    assert got.loc[("astct", "lee2014")].tolist() == [3, 1, 1, 2, 0, 2]
    assert got.loc[("astct", "ctcae5")].tolist() == [3, 3, 3, 0, 0, 0]
    assert got.loc[("astct", "penn")].tolist() == [3, 4, 3, 0, 1, 1]
    assert got.loc[("lee2014", "ctcae5")].tolist() == [1, 3, 1, 0, 2, 2]
    assert got.loc[("lee2014", "penn")].tolist() == [1, 4, 1, 0, 3, 3]
    assert got.loc[("ctcae5", "penn")].tolist() == [3, 4, 3, 0, 1, 1]
    assert len(s) == 6 and (s["n_patients"] == 5).all()


def test_severe_switches_threshold_2():
    # severe >= 2: astct {A,B,C,E}; lee2014 {A,B,C,E} -> no switches
    s = crs.severe_switches(crs.agreement_table(_agreement_cohort(), None), severe_grade=2)
    row = s[(s["system_a"] == "astct") & (s["system_b"] == "lee2014")].iloc[0]
    assert (row["n_both_severe"], row["n_switch"]) == (4, 0)


# ------------------------------------------------------------------------ checks and plot

@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.drop(columns="day"), "lacks the column"),
    (lambda d: pd.concat([d, d], ignore_index=True), "more than one row"),
    (lambda d: d.assign(oxygen="nasal"), "unknown oxygen device"),
])
def test_check_daily_rejects_bad_tables(mutate, message):
    with pytest.raises(ValueError, match=message):
        crs.grade_daily(mutate(frame([day_row()])))


def test_unknown_system_and_lab_unit_rejected():
    with pytest.raises(ValueError, match="unknown CRS grading system"):
        crs.grade_daily(frame([day_row()]), "carTox")
    labs = labs_for(1, creatinine=1.2).assign(unit="mg/dL")
    with pytest.raises(ValueError, match="expected umol/L"):
        crs.grade_daily(frame([day_row(**FEVER)]), "lee2014", labs)


def test_summarise_rejects_mixed_systems_and_handles_empty():
    daily, _ = _summary_cohort()
    mixed = pd.concat([crs.grade_daily(daily, "astct"), crs.grade_daily(daily, "penn")])
    with pytest.raises(ValueError, match="mixes grading systems"):
        crs.summarise_patients(mixed)
    empty = crs.summarise_patients(crs.grade_daily(daily).iloc[:0])
    assert len(empty) == 0 and "max_grade" in empty.columns


def test_options_are_frozen_with_documented_defaults():
    o = GradingOptions()
    assert (o.fever_c, o.sbp_hypotension_mmhg, o.low_flow_max_l_min, o.fio2_high_pct) == (38.0, 90.0, 6.0, 40.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.fever_c = 39.0  # type: ignore[misc]


def test_plot_crs_timeline_draws_lanes_and_markers():
    daily, _ = _summary_cohort()
    daily.loc[(daily["patient_id"] == "P02") & (daily["day"] == 3), "tocilizumab"] = 1
    graded = crs.grade_daily(daily)
    fig, ax = plt.subplots()
    out = crs.plot_crs_timeline(graded, daily, ax=ax)
    assert out is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["P01", "P02", "P04"]
    assert len(ax.collections[0].get_paths()) == len(graded)  # one cell per graded day, one collection
    toci = ax.collections[1].get_offsets()
    assert toci.tolist() == [[3.0, 1.25]]  # P02 lane 1, marker drawn 0.25 below the lane centre
    assert ax.get_title() == ""  # every patient shown
    plt.close(fig)


def test_plot_crs_timeline_caps_lanes_at_first_pseudonyms():
    daily, _ = _summary_cohort()
    graded = crs.grade_daily(daily)
    n_p02 = int((graded["patient_id"] == "P02").sum())
    fig, ax = plt.subplots()
    crs.plot_crs_timeline(graded, daily, ax=ax, max_patients=2)
    # P01, P02, P04 graded: the first two pseudonyms are shown, the title says 2 of 3.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["P01", "P02"]
    n_p01 = int((graded["patient_id"] == "P01").sum())
    assert len(ax.collections[0].get_paths()) == n_p01 + n_p02
    assert ax.get_title() == "Showing the first 2 of 3 patients (pseudonym order)"
    plt.close(fig)


# ------------------------------------------------------- vectorised code vs the reference loops


def _reference_summary(g: pd.DataFrame) -> dict:
    """The former per-patient loop of summarise_patients (reference implementation)."""
    g = g.sort_values("day")
    days, grades = g["day"].to_numpy(dtype=float), g["grade"].to_numpy()
    hit = grades >= 1
    if not hit.any():
        return {"crs_any": False, "max_grade": 0, "onset_day": np.nan, "resolution_day": np.nan,
                "duration_days": np.nan, "crs_days": 0, "day_of_max": np.nan}
    onset, last = days[hit][0], days[hit][-1]
    after = days[days > last]
    return {"crs_any": True, "max_grade": int(grades.max()), "onset_day": onset,
            "resolution_day": after[0] if len(after) else np.nan,
            "duration_days": last - onset + 1.0, "crs_days": int(hit.sum()),
            "day_of_max": days[np.argmax(grades)]}


def _random_daily(n_patients: int, seed: int) -> pd.DataFrame:
    """Random patient-days (gaps, shuffled rows) exercising every grading branch."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        days = np.sort(rng.choice(np.arange(-2, 20), size=rng.integers(1, 15), replace=False))
        for d in days:
            rows.append({"patient_id": f"P{i:03d}", "day": float(d),
                         "temp_max_c": rng.choice([37.0, 38.2, 39.5, np.nan]),
                         "sbp_min_mmhg": rng.choice([120.0, 85.0, np.nan]),
                         "vasopressors": rng.choice([0, 0, 1, 2]), "vasopressin": rng.choice([0, 0, 1]),
                         "oxygen": rng.choice(list(crs.OXYGEN_DEVICES)),
                         "o2_flow_l_min": rng.choice([2.0, 8.0, np.nan]),
                         "fio2_pct": rng.choice([30.0, 50.0, np.nan]),
                         "tocilizumab": rng.choice([0, 0, 1]), "steroids": rng.choice([0, 0, 1]),
                         "fever_other_cause": rng.choice([0, 0, 0, 1])})
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return df.astype({c: "Int64" for c in ("vasopressors", "vasopressin", "tocilizumab", "steroids",
                                           "fever_other_cause")})


def _random_labs(daily: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Organ labs on a random half of the patient-days (values spanning CTCAE grades 0-4)."""
    rng = np.random.default_rng(seed)
    pd_rows = daily[["patient_id", "day"]].sample(frac=0.5, random_state=seed)
    parts = [pd_rows.assign(analyte=a, unit=u, value=rng.uniform(5, 1200 if a == "creatinine" else 900,
                                                                  len(pd_rows)))
             for a, u in crs.ORGAN_ANALYTES.items()]
    return pd.concat(parts, ignore_index=True)


def test_summarise_patients_equals_reference_loop_on_random_data():
    daily = _random_daily(80, seed=11)
    patients = pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(85)],
                             "death_cause": [("crs" if i % 17 == 0 else pd.NA) for i in range(85)],
                             "os_days": np.arange(85, dtype=float) + 3.0})
    for system in crs.SYSTEMS:
        graded = crs.grade_daily(daily, system)
        graded = graded.sample(frac=1.0, random_state=3)  # row order must not matter
        got = crs.summarise_patients(graded, patients)
        ref = {pid: _reference_summary(g) for pid, g in graded.groupby("patient_id", sort=True)}
        empty = _reference_summary(pd.DataFrame({"day": [], "grade": []}))
        exp = pd.DataFrame([{"patient_id": p, **ref.get(p, empty)} for p in sorted(patients["patient_id"])])
        died = (patients.set_index("patient_id")["death_cause"] == "crs").fillna(False).to_numpy(dtype=bool)
        exp.loc[died, ["max_grade", "crs_any"]] = [5, True]
        exp.loc[died, "day_of_max"] = patients["os_days"].to_numpy()[died]
        exp = exp.astype({"crs_any": bool, "max_grade": "int64", "crs_days": "int64"})
        pd.testing.assert_frame_equal(got, exp, check_exact=True)
        assert got["max_grade"].max() >= 2  # the random data reach real grades


def test_grade_systems_equals_grade_daily_per_scale():
    daily = _random_daily(40, seed=5)
    labs = _random_labs(daily, seed=6)
    together = crs.grade_systems(daily, crs.SYSTEMS, labs)
    assert list(together) == list(crs.SYSTEMS)
    for system in crs.SYSTEMS:
        alone = crs.grade_daily(daily, system, labs)
        pd.testing.assert_frame_equal(together[system], alone, check_exact=True)
    # ties between parts are '+'-joined in part order, e.g. a fever-only day stays 'fever' (grade 1)
    assert together["astct"]["driver"].str.contains(r"\+").any() or together["lee2014"]["driver"].str.contains(
        r"\+").any()
    with pytest.raises(ValueError, match="unknown CRS grading system 'bogus'"):
        crs.grade_systems(daily, ("astct", "bogus"))


def test_worst_joins_every_part_at_the_maximum():
    # row 0: grades (1, 3, 3) -> 3, labels of parts 2 and 3; row 1: all 0 -> ''; row 2: (2, 2, '') -> 'a+b'
    parts = [(np.array([1, 0, 2]), np.array(["a", "x", "a"], dtype=object)),
             (np.array([3, 0, 2]), np.array(["b", "y", "b"], dtype=object)),
             (np.array([3, 0, 2]), np.array(["c", "z", ""], dtype=object))]
    g, lab = crs._worst(parts)
    assert g.tolist() == [3, 0, 2]
    assert lab.tolist() == ["b+c", "", "a+b"]
