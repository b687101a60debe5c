"""Tests for helpers.describe: groupings, Table 1 as displayed, flow counts and diagram, product panels, follow-up."""
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
    assert "Philadelphia chromosome positive" in absent and "LDH, U/L" in absent


def test_baseline_table_values_by_hand():
    pt = _pt()
    t = describe.baseline_table(pt, describe.remission_groups(pt))
    assert list(t.columns) == ["Characteristic", "Overall (N=5)", "No remission (N=2)",
                               "Remission (CR/CRi) (N=3)", "p-value", "Test"]
    row = t.set_index("Characteristic")
    # dose in 10^6/kg: 1, 2, 1, 0.5, 1 -> sorted 0.5 1 1 1 2; median 1; type-7 Q1 = 1, Q3 = 1; 1 decimal (median >= 1)
    assert row.loc["CAR-T dose, x10^6 cells/kg", "Overall (N=5)"] == "1.0 (IQR 1.0-1.0), range 0.5-2.0"
    # no remission: 0.5, 1 -> median 0.75 (0.75 is exact in binary; round-half-even prints 0.8); Q1 0.625 -> 0.6, Q3 0.875 -> 0.9
    assert row.loc["CAR-T dose, x10^6 cells/kg", "No remission (N=2)"] == "0.8 (IQR 0.6-0.9), range 0.5-1.0"
    assert row.loc["CAR-T dose, x10^6 cells/kg", "Test"].startswith("Wilcoxon rank-sum")
    # age: 30, 40, NaN, 20, 50 -> overall median of 20 30 40 50 = 35; one Missing row with the count
    assert row.loc["Age, years", "Overall (N=5)"] == "35 (IQR 28-42), range 20-50"
    missing = t[t["Characteristic"].str.strip() == "Missing"]
    assert missing["Overall (N=5)"].tolist() == ["1", "1"]  # age and naive share each miss one value
    # sex F: 2 of 5 = 40.0%; remission group F: P01, P03 = 2 of 3
    assert row.loc["    F", "Overall (N=5)"] == "2 (40.0%)"
    assert row.loc["    F", "Remission (CR/CRi) (N=3)"] == "2 (66.7%)"
    assert row.loc["Sex", "Test"] == "Fisher's exact"
    # sex 2x2: remission (F2, M1) vs no remission (F0, M2): Fisher p = P(table) + more extreme
    # hypergeometric over a = F in remission: P(a=2) = C(2,2)C(3,1)/C(5,3) = 3/10, P(a=0) = 1/10 (C(3,3)=1),
    # P(a=1) = 6/10; two-sided p = 3/10 + 1/10 = 0.4 -> '0.40'
    assert row.loc["Sex", "p-value"] == "0.40"


def test_baseline_table_overall_only():
    t = describe.baseline_table(_pt())
    assert list(t.columns) == ["Characteristic", "Overall (N=5)"]


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


def test_plot_flow_boxes_and_side_notes():
    fig, ax = plt.subplots()
    out = describe.plot_flow(describe.flow_counts(_pt()), ax=ax)
    texts = [t.get_text() for t in ax.texts]
    assert out is ax
    assert "Remission (CR/CRi)\nn = 3" in texts and "Infused\nn = 5" in texts
    assert "2 without remission" in texts and "1 MRD-positive or not tested" in texts
    assert not any(t.startswith("0 ") for t in texts)  # nobody lost between infusion and evaluation: no note
    plt.close(fig)


def test_product_panels_and_long_form():
    pt = _pt()
    assert describe.product_panels(pt) == ["dose", "subsets"]  # no CD4/CD8 -> no ratio panel
    assert describe.product_panels(pt.drop(columns=["car_dose_per_kg", "product_naive_pct", "product_em_pct"])) == []
    long = describe.product_subsets_long(pt)
    assert len(long) == 9  # 5 EM + 4 naive (one missing dropped)
    assert list(long["subset"].cat.categories) == ["Naive", "Effector memory"]
    assert long.loc[long["patient_id"] == "P04", "pct"].tolist() == [30.0, 20.0]


def test_plot_product_draws_one_axes_per_panel():
    pt = _pt()
    panels = describe.product_panels(pt)
    fig, axes = plt.subplots(1, len(panels))
    out = describe.plot_product(pt, panels, axes, describe.remission_groups(pt))
    assert out[0].get_ylabel() == "CAR-T dose, x10^6 cells/kg" and out[0].get_yscale() == "log"
    assert out[1].get_ylabel() == "Share of product T cells, %"
    assert [t.get_text() for t in out[1].get_xticklabels()] == ["Naive\n(n=4)", "Effector memory\n(n=5)"]
    plt.close(fig)


def test_followup_reverse_km_by_hand():
    # times 10 20 30 40 50, deaths at 10 and 30. Reverse KM: 'events' = censorings at 20, 40, 50.
    # at 20: 4 at risk (10 left) -> S = 3/4; at 40: 2 at risk -> 3/4 * 1/2 = 0.375 <= 0.5 -> median 40
    fu = describe.followup(_pt())
    assert fu["median"] == 40.0
    assert fu["n_censored"] == 3 and fu["min"] == 20.0 and fu["max"] == 50.0
    assert fu["formatted"].startswith("40 days (95% CI ")


def test_followup_without_censoring_says_so():
    pt = _pt().assign(os_event=pd.array([1] * 5, dtype="Int64"))
    fu = describe.followup(pt)
    assert fu["n_censored"] == 0 and fu["formatted"] == "not estimable: no patient was censored"
    assert math.isinf(fu["median"])
