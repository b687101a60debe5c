"""Tests for helpers.describe: groupings, variables available, flow counts and exits, product panels, follow-up."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from helpers import describe

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")


def _pt() -> pd.DataFrame:
    """Five hand-built patients: 3 remissions (2 MRD-negative, 1 MRD unknown), one unknown CRS grade, one missing age."""
    return pd.DataFrame({
        "patient_id": ["P01", "P02", "P03", "P04", "P05"],
        "best_response": ["CR", "CRi", "CR", "PR", "NR"],
        "remission": [True, True, True, False, False],
        "mrd_negative": pd.array([True, True, None, None, None], dtype="boolean"),
        "severe_crs": pd.array([True, False, None, False, True], dtype="boolean"),
        "age_years": [30.0, 40.0, np.nan, 20.0, 50.0],
        "sex": ["F", "M", "F", "M", "M"],
        "car_dose_per_kg": [1e6, 2e6, 1e6, 5e5, 1e6],
        "product_naive_pct": [10.0, 20.0, np.nan, 30.0, 40.0],
        "product_em_pct": [50.0, 40.0, 30.0, 20.0, 10.0],
        "os_days": [10.0, 20.0, 30.0, 40.0, 50.0],
        "os_event": pd.array([1, 0, 1, 0, 0], dtype="Int64"),
    })


def test_remission_groups_labels_and_order():
    g = describe.remission_groups(_pt())
    assert list(g.astype(str)) == ["Remission (CR/CRi)"] * 3 + ["No remission"] * 2
    assert list(g.cat.categories) == ["No remission", "Remission (CR/CRi)"]
    assert g.name == "remission_group"


def test_severe_crs_groups_missing_grade_stays_missing():
    g = describe.severe_crs_groups(_pt(), severe_grade=3)
    assert g.isna().tolist() == [False, False, True, False, False]
    assert g.iloc[0] == "Severe CRS (grade >= 3)" and g.iloc[1] == "No severe CRS"


def test_has_two_groups():
    pt = _pt()
    assert describe.has_two_groups(describe.remission_groups(pt))
    assert not describe.has_two_groups(describe.remission_groups(pt.iloc[:3]))  # remissions only


def test_available_variables_lists_absent_labels():
    kinds, labels, absent = describe.available_variables(_pt())
    assert list(kinds) == ["age_years", "sex", "car_dose_per_kg", "product_naive_pct", "product_em_pct"]
    assert kinds["sex"] == "categorical" and labels["age_years"] == "Age, years"
    assert labels["car_dose_per_kg"] == "CAR-T dose, \u00d710\u2076 cells/kg"
    assert "Philadelphia chromosome positive" in absent and "LDH, U/L" in absent


def test_flow_counts_by_hand():
    f = describe.flow_counts(_pt())
    assert f["stage"].tolist() == ["Infused", "Evaluable for response", "Remission (CR/CRi)", "MRD-negative remission"]
    assert f["n"].tolist() == [5, 5, 3, 2]
    assert f["not_next"].tolist() == [0, 0, 2, 1]  # 5-5, 5-3, 3-2
    assert f["not_next_reason"].tolist()[2:] == ["without remission", "MRD-positive or not tested"]


def test_flow_counts_enrolled_and_no_mrd():
    f = describe.flow_counts(_pt().drop(columns="mrd_negative"), enrolled=8)
    assert f["stage"].tolist() == ["Enrolled", "Infused", "Evaluable for response", "Remission (CR/CRi)"]
    assert f["not_next"].tolist() == [0, 3, 0, 2]
    assert f.loc[1, "not_next_reason"] == "not infused"


def test_product_panels_and_long_form():
    pt = _pt()
    assert describe.product_panels(pt) == ["dose", "subsets"]  # no CD4/CD8 -> no ratio panel
    assert describe.product_panels(pt.drop(columns=["car_dose_per_kg", "product_naive_pct", "product_em_pct"])) == []
    long = describe.product_subsets_long(pt)
    assert len(long) == 9  # 5 EM + 4 naive (one missing dropped)
    assert list(long["subset"].cat.categories) == ["Naive", "Effector memory"]
    assert long.loc[long["patient_id"] == "P04", "pct"].tolist() == [30.0, 20.0]


def test_followup_reverse_km_by_hand():
    # times 10 20 30 40 50, deaths at 10 and 30. Reverse KM: 'events' = censorings at 20, 40, 50.
    # at 20: 4 at risk (10 left) -> S = 3/4; at 40: 2 at risk -> 3/4 * 1/2 = 0.375 <= 0.5 -> median 40
    fu = describe.followup(_pt())
    assert fu["median"] == 40.0
    assert fu["n_censored"] == 3 and fu["min"] == 20.0 and fu["max"] == 50.0


def test_followup_without_censoring_says_so():
    pt = _pt().assign(os_event=pd.array([1] * 5, dtype="Int64"))
    fu = describe.followup(pt)
    assert fu["n_censored"] == 0
    assert math.isinf(fu["median"])


def _ne_fixture() -> pd.DataFrame:
    """Nine hand-built patients for the flow with NE: assessment (landmark) day 28.

    P01 CR MRD-neg, P02 CR MRD-neg, P03 CR MRD-pos, P04 CRi MRD not tested, P05 PR, P06 NR, P07 NE died day 12,
    P08 NE alive, last seen day 20 (left before assessment), P09 NE died day 40 (not an early death).
    """
    return pd.DataFrame({
        "patient_id": [f"P0{i}" for i in range(1, 10)],
        "best_response": ["CR", "CR", "CR", "CRi", "PR", "NR", "NE", "NE", "NE"],
        "remission": [True] * 4 + [False] * 5,
        "mrd_negative": pd.array([True, True, False, None, None, None, None, None, None], dtype="boolean"),
        "os_days": [400.0, 300.0, 200.0, 100.0, 90.0, 60.0, 12.0, 20.0, 40.0],
        "os_event": pd.array([0, 0, 1, 1, 1, 1, 1, 0, 1], dtype="Int64"),
    })


def test_ne_patients_are_not_evaluable():
    pt = _ne_fixture()
    assert describe.evaluable(pt).tolist() == [True] * 6 + [False] * 3
    f = describe.flow_counts(pt)
    assert f["n"].tolist() == [9, 6, 4, 2]  # infused, evaluable (9 - 3 NE), remission, MRD-negative
    assert f["not_next"].tolist() == [0, 3, 2, 2]


def test_flow_exits_give_the_reason_at_each_step():
    ex = describe.flow_exits(_ne_fixture(), assessment_day=28, enrolled=11).set_index(["stage", "reason"])["n"]
    assert ex[("Infused", "not infused")] == 2
    # NE: P07 died on day 12 <= 28; P08 alive (left) and P09 died on day 40 after the assessment day
    assert ex[("Evaluable for response", "died before response assessment")] == 1
    assert ex[("Evaluable for response", "not assessed for another reason")] == 2
    assert ex[("Remission", "PR")] == 1 and ex[("Remission", "NR")] == 1
    assert ex[("MRD-negative remission", "MRD-positive")] == 1 and ex[("MRD-negative remission", "MRD not tested")] == 1
    # a stricter remission definition (CR only) moves the CRi patient into the exits of the remission step
    strict = describe.flow_exits(_ne_fixture(), 28, remission_responses=("CR",)).set_index(["stage", "reason"])["n"]
    assert strict[("Remission", "CRi")] == 1
