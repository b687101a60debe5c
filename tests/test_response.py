"""Tests for helpers.response: response distribution and rates (exact CIs), subgroup odds ratios, swimmer events."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss

from helpers import describe, response

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")


def _rates_fixture() -> pd.DataFrame:
    """24 hand-built patients: 15 CR + 1 CRi (16 remissions, 13 MRD-negative, 3 MRD-positive), 4 PR, 4 NR."""
    resp = ["CR"] * 15 + ["CRi"] + ["PR"] * 4 + ["NR"] * 4
    mrd = [True] * 13 + [False] * 3 + [None] * 8
    return pd.DataFrame({"patient_id": [f"P{i:02d}" for i in range(1, 25)], "best_response": resp,
                         "remission": [r in ("CR", "CRi") for r in resp],
                         "mrd_negative": pd.array(mrd, dtype="boolean")})


def test_best_response_table_counts_and_exact_ci():
    t = response.best_response_table(_rates_fixture()).set_index("response")
    assert t["n"].tolist() == [15, 1, 4, 4] and (t["N"] == 24).all()
    assert t.loc["CR", "percent"] == pytest.approx(62.5)  # 15/24
    # reference implementation: scipy binomtest exact (Clopper-Pearson) interval
    ref = ss.binomtest(1, 24).proportion_ci(method="exact")
    assert t.loc["CRi", "ci_low_pct"] == pytest.approx(100 * ref.low, rel=1e-9)
    assert t.loc["CRi", "ci_high_pct"] == pytest.approx(100 * ref.high, rel=1e-9)


def test_response_rates_match_published_exact_cis():
    # exact 95% CIs from the reference definitions: 16/24 44.7-84.4; 13/24 32.8-74.4; 13/16 54.4-96.0
    t = response.response_rates(_rates_fixture())
    assert t["term"].tolist() == ["Remission", "MRD-negative remission, of all patients", "MRD-negative, of remissions"]
    assert t[["k", "n"]].to_numpy().tolist() == [[16, 24], [13, 24], [13, 16]]
    got = (100 * t[["ci_low", "ci_high"]]).round(1).to_numpy().tolist()
    assert got == [[44.7, 84.4], [32.8, 74.4], [54.4, 96.0]]
    assert t["mrd_unknown"].tolist()[1:] == [0, 0]


def test_response_rates_unknown_mrd_counted_and_no_mrd_column():
    pt = _rates_fixture()
    pt.loc[0, "mrd_negative"] = pd.NA  # one MRD-negative remission loses its result: 12 left
    t = response.response_rates(pt)
    assert t["k"].tolist() == [16, 12, 12] and t["mrd_unknown"].tolist()[1:] == [1, 1]
    only = response.response_rates(pt.drop(columns="mrd_negative"))
    assert only["term"].tolist() == ["Remission"]


def _subgroup_fixture() -> pd.DataFrame:
    """8 patients: Fisher's tea-tasting table for Ph+ (3/4 vs 1/4 remission); blasts 10..80; one constant factor."""
    return pd.DataFrame({
        "patient_id": [f"P{i:02d}" for i in range(1, 9)],
        "remission": [True, True, True, False, True, False, False, False],
        "ph_positive": pd.array([True, True, True, True, False, False, False, False], dtype="boolean"),
        "bm_blasts_pct": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
        "prior_allo_hsct": pd.array([False] * 8, dtype="boolean"),
    })


def test_subgroup_factors_skip_constant_and_absent():
    assert response.subgroup_factors(_subgroup_fixture()) == {"bm_blasts_pct": "continuous", "ph_positive": "binary"}


def test_subgroup_table_matches_r_fisher_test():
    t = response.subgroup_table(_subgroup_fixture()).set_index("factor")
    ph = t.loc["ph_positive"]
    # R: fisher.test(matrix(c(3, 1, 1, 3), 2)) -> conditional MLE odds ratio 6.408309 (R's own example)
    assert ph["or"] == pytest.approx(6.408309, rel=1e-5) and ph["estimate"] == ph["or"]
    # two-sided p by hand: hypergeometric P(a=3) = C(4,3)C(4,1)/C(8,4) = 16/70, P(a=4) = 1/70,
    # both tails: (16 + 1 + 16 + 1) / 70 = 34/70
    assert ph["p_value"] == pytest.approx(34 / 70)
    assert ph["term"] == "Ph-positive" and ph["remission_exposed"] == "3/4" and ph["remission_unexposed"] == "1/4"
    # blasts: median 45; above = 50, 60, 70, 80 -> 1 remission of 4; at/below -> 3 of 4: OR = 1/6.408309
    bl = t.loc["bm_blasts_pct"]
    assert bl["remission_exposed"] == "1/4" and bl["or"] == pytest.approx(1 / 6.408309, rel=1e-5)
    assert bl["term"] == "Marrow blasts above median"


def test_subgroup_table_zero_cell_uses_firth():
    pt = _subgroup_fixture()
    pt["ph_positive"] = pd.array([True, True, True, False, False, False, False, False], dtype="boolean")
    ph = response.subgroup_table(pt).set_index("factor").loc["ph_positive"]
    # exposed 3/3 remission: the conditional MLE is infinite, so the Firth OR (finite) is reported
    assert ph["remission_exposed"] == "3/3" and "Firth" in ph["method"]
    assert np.isfinite(ph["estimate"]) and ph["estimate"] > 1


def test_subgroup_table_empty_when_no_factor():
    t = response.subgroup_table(_subgroup_fixture()[["patient_id", "remission"]])
    assert t.empty and "estimate" in t.columns


def test_plot_subgroups_labels():
    fig, ax = plt.subplots()
    out = response.plot_subgroups(response.subgroup_table(_subgroup_fixture()), ax=ax)
    assert out is ax and ax.get_xscale() == "log"
    assert ax.get_xlabel() == "Odds ratio of remission, subgroup vs rest (95% CI)"
    assert {t.get_text() for t in ax.get_yticklabels()} == {"Marrow blasts above median", "Ph-positive"}
    plt.close(fig)


def _swimmer_fixture() -> pd.DataFrame:
    """Four patients with every kind of lane event (hand-built)."""
    return pd.DataFrame({
        "patient_id": ["P01", "P02", "P03", "P04"],
        "best_response": ["CR", "NR", "CRi", "PR"],
        "remission": [True, False, True, False],
        "mrd_negative": pd.array([True, None, None, None], dtype="boolean"),
        "os_days": [100.0, 50.0, 15.0, 200.0],
        "os_event": pd.array([0, 1, 1, 0], dtype="Int64"),
        "pfs_days": [100.0, 20.0, 15.0, 90.0],
        "pfs_event": pd.array([0, 1, 1, 1], dtype="Int64"),
        "hsct_day": [60.0, np.nan, np.nan, np.nan],
    })


def test_swimmer_events_by_hand():
    ev = response.swimmer_events(_swimmer_fixture(), landmark_day=28)
    got = list(ev.itertuples(index=False, name=None))
    assert got == [
        ("P01", "remission", 28.0), ("P01", "mrd_negative", 28.0), ("P01", "allo_hsct", 60.0),
        ("P01", "censored", 100.0),
        ("P02", "relapse_progression", 20.0), ("P02", "death", 50.0),
        # P03 died on day 15, before the day-28 assessment: remission placed at last follow-up, no relapse mark
        ("P03", "remission", 15.0), ("P03", "death", 15.0),
        ("P04", "relapse_progression", 90.0), ("P04", "censored", 200.0),
    ]


def test_swimmer_lanes_longest_on_top():
    lanes = response.swimmer_lanes(_swimmer_fixture())
    assert lanes["patient_id"].tolist() == ["P03", "P02", "P01", "P04"]  # y = 0 (bottom) is the shortest
    assert lanes["end"].tolist() == [15.0, 50.0, 100.0, 200.0]


def test_plot_swimmer_lanes_are_pseudonyms():
    fig, ax = plt.subplots()
    out = response.plot_swimmer(_swimmer_fixture(), 28, ax=ax)
    assert out is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["P03", "P02", "P01", "P04"]
    assert [p.get_width() for p in ax.patches] == [15.0, 50.0, 100.0, 200.0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Allo-HSCT" in labels and "Death" in labels and "Best response: PR" in labels
    assert ax.get_title() == ""
    plt.close(fig)


def test_plot_swimmer_caps_lanes_at_first_pseudonyms():
    fig, ax = plt.subplots()
    response.plot_swimmer(_swimmer_fixture(), 28, ax=ax, max_patients=2)
    # P01 (end 100) and P02 (end 50) are the first two pseudonyms; shortest lane at the bottom.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["P02", "P01"]
    assert [p.get_width() for p in ax.patches] == [50.0, 100.0]
    assert ax.get_title() == "Showing the first 2 of 4 patients (pseudonym order)"
    plt.close(fig)
    ax = response.plot_swimmer(_swimmer_fixture(), 28, max_patients=2)  # own figure, sized by lanes shown
    assert tuple(ax.figure.get_size_inches()) == pytest.approx((8, 0.28 * 2 + 1.5))
    plt.close(ax.figure)


def test_crs_peak_by_response_counts():
    from helpers import response_report

    pt = _swimmer_fixture().assign(crs_grade=pd.array([0, 3, 1, 3], dtype="Int64"),
                                   log10_peak=[4.1, 3.2, 5.3, 2.4])
    groups = pd.Series(pd.Categorical(["Remission", "No remission", "Remission", "No remission"],
                                      categories=["No remission", "Remission"]), index=pt.index)
    frame, indent = response_report.crs_peak_frame(pt, groups)
    t = frame.set_index("Characteristic")
    assert list(t.columns) == ["Overall, N = 4", "No remission, N = 2", "Remission, N = 2"]
    assert t.loc["3", "No remission, N = 2"] == "2 (100.0%)" and t.loc["3", "Remission, N = 2"] == "0 (0.0%)"
    assert indent == [1, 2, 3, 4, 5, 6]  # grades 0-5 indented under 'Maximum CRS grade'
    # remission peaks 4.1 and 5.3: median 4.7, type-7 Q1 = 4.1 + 0.25 * 1.2 = 4.4, Q3 = 5.0; 1 decimal (median >= 1)
    assert t.loc["Peak CAR-T expansion, log\u2081\u2080 copies/\u00b5g DNA", "Remission, N = 2"] == "4.7 (4.4, 5.0)"


def test_time_to_remission_summarises_recorded_days_only():
    pt = pd.DataFrame({"remission": [True, True, True, False],
                       "remission_day": [14.0, 35.0, 28.0, np.nan],
                       "remission_day_assumed": [False, False, True, False]})
    # recorded: 14 and 35 -> median 24.5, range 14-35; the assumed 28 is not a measurement
    assert response.time_to_remission(pt) == {"n_responders": 3, "n_recorded": 2, "median": 24.5,
                                              "min": 14.0, "max": 35.0}


def test_ne_row_and_rate_among_evaluable():
    resp = ["CR"] * 15 + ["CRi"] + ["PR"] * 3 + ["NR"] * 3 + ["NE"] * 2
    pt = pd.DataFrame({"best_response": resp, "remission": [r in ("CR", "CRi") for r in resp]})
    t = response.best_response_table(pt).set_index("response")
    assert t.index.tolist() == ["CR", "CRi", "PR", "NR", "NE"] and t.loc["NE", "n"] == 2 and (t["N"] == 24).all()
    r = response.response_rates(pt).set_index("term")
    assert (r.loc["Remission", "k"], r.loc["Remission", "n"]) == (16, 24)
    # 16 of the 22 evaluable: exact CI as scipy's Clopper-Pearson
    ref = ss.binomtest(16, 22).proportion_ci(method="exact")
    row = r.loc["Remission, of evaluable patients"]
    assert (row["k"], row["n"]) == (16, 22)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ref.low, ref.high), rel=1e-9)
    assert "Remission, of evaluable patients" not in response.response_rates(pt[pt["best_response"] != "NE"])["term"].tolist()
