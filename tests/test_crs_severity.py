"""Hand-calculated tests for helpers.crs_severity and the agreement helpers added to helpers.crs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import crs, crs_severity as cs, published  # noqa: E402
from helpers.cohort import Cohort, Settings  # noqa: E402
from test_crs import FEVER, _agreement_cohort, day_row, frame  # noqa: E402


def labs_long(rows: list[tuple]) -> pd.DataFrame:
    """(patient_id, day, analyte, value) tuples -> labs table (units irrelevant to these helpers)."""
    unit = {**crs.ORGAN_ANALYTES, "anc": "10^9/L", "hemoglobin": "g/L", "platelets": "10^9/L", "il6": "pg/mL"}
    return pd.DataFrame([{"patient_id": p, "day": float(d), "analyte": a, "value": float(v), "unit": unit[a]}
                         for p, d, a, v in rows])


# ------------------------------------------------------------------------------ groups, incidence

@pytest.mark.parametrize("severe_grade, expected", [
    (3, ["none", "mild", "mild", "severe", "severe", pd.NA]),
    (2, ["none", "mild", "severe", "severe", "severe", pd.NA]),
])
def test_crs_group(severe_grade, expected):
    got = cs.crs_group(pd.Series([0, 1, 2, 3, 4, pd.NA], dtype="Int64"), severe_grade)
    assert [None if pd.isna(v) else v for v in got] == [None if v is pd.NA else v for v in expected]


def test_incidence_matches_published_exact_cis():
    # 5 without CRS, 13 mild, 6 severe: definitions.md gives 19/24 57.8-92.9, 6/24 9.8-46.7, 6/19 12.6-56.6
    pt = pd.DataFrame({"crs_grade": pd.array([0] * 5 + [1] * 7 + [2] * 6 + [3] * 4 + [4, 5], dtype="Int64")})
    t = cs.incidence(pt, 3)
    assert t["formatted"].tolist() == ["19/24 (79.2%, 95% CI 57.8-92.9)", "6/24 (25.0%, 95% CI 9.8-46.7)",
                                       "6/19 (31.6%, 95% CI 12.6-56.6)"]


def test_incidence_small_hand_values():
    # R binom.test(3, 5): 0.1466328-0.9472550; (1, 5): 0.005050763-0.716417936; (1, 3): 0.008403759-0.905700675
    t = cs.incidence(pd.DataFrame({"crs_grade": [0, 0, 1, 2, 3]}), 3)
    assert t[["k", "n"]].to_numpy().tolist() == [[3, 5], [1, 5], [1, 3]]
    np.testing.assert_allclose(t[["ci_low", "ci_high"]].to_numpy(),
                               [[0.1466328, 0.9472550], [0.005050763, 0.716417936],
                                [0.008403759, 0.905700675]], atol=1e-6)


# ----------------------------------------------------------------------------- per-patient markers

def _count_labs() -> pd.DataFrame:
    """Blood counts: P01 pancytopenic day 3; P02 never all three on one day; P03 at the thresholds; P04 day -1."""
    return labs_long([
        ("P01", 3, "anc", 0.5), ("P01", 3, "hemoglobin", 75), ("P01", 3, "platelets", 40),
        ("P02", 3, "anc", 0.5), ("P02", 3, "hemoglobin", 75), ("P02", 3, "platelets", 60),
        ("P02", 4, "anc", 0.5), ("P02", 4, "hemoglobin", 85), ("P02", 4, "platelets", 40),
        ("P03", 3, "anc", 1.0), ("P03", 3, "hemoglobin", 80), ("P03", 3, "platelets", 50),
        ("P04", -1, "anc", 0.1), ("P04", -1, "hemoglobin", 60), ("P04", -1, "platelets", 10),
    ])


def test_pancytopenia_same_day_strict_thresholds():
    p = cs.pancytopenia(_count_labs()).set_index("patient_id")
    assert p["pancytopenia"].tolist() == [True, False, False, False]
    assert p.loc["P01", "pancytopenia_day"] == 3.0 and np.isnan(p.loc["P02", "pancytopenia_day"])


def test_pancytopenia_rule_is_configurable():
    # platelets < 70: P02 day 3 (0.5, 75, 60) now qualifies
    p = cs.pancytopenia(_count_labs(), cs.PancytopeniaRule(platelets_below=70)).set_index("patient_id")
    assert p.loc["P02", "pancytopenia"] and p.loc["P02", "pancytopenia_day"] == 3.0


def test_organ_grade_max_inside_window():
    # creatinine 160/106 = 1.51 x ULN -> 2 on day 2; 700 on day 30 is outside days 0-28; ALT 121/40 -> 2
    labs = labs_long([("P01", 2, "creatinine", 160), ("P01", 30, "creatinine", 700), ("P01", 5, "alt", 121)])
    g = cs.organ_grade_max(labs).set_index("patient_id")
    assert g.loc["P01", ["creatinine_ctcae", "alt_ctcae", "ast_ctcae", "bilirubin_ctcae"]].tolist() == [2, 2, 0, 0]


def test_severity_frame_groups_and_markers():
    pids = ["P01", "P02", "P03"]
    patients = pd.DataFrame({"patient_id": pids, "best_response": ["CR"] * 3, "os_days": [100.0] * 3,
                             "os_event": pd.array([0] * 3, dtype="Int64")})
    daily = frame([day_row(1, "P01", **FEVER), day_row(1, "P02", vasopressors=1, **FEVER), day_row(1, "P03")])
    cohort = Cohort("t", True, "test", Settings(), patients, daily=daily, labs=_count_labs().iloc[:9])
    pt = patients.assign(crs_grade=pd.array([1, 3, 0], dtype="Int64"))
    pt["severe_crs"] = (pt["crs_grade"] >= 3).astype("boolean")
    f = cs.severity_frame(pt, cohort, 3).set_index("patient_id")
    assert f["crs_group"].tolist() == ["mild", "severe", "none"]
    assert [None if pd.isna(v) else v for v in f["severe_vs_mild"]] == ["mild", "severe", None]
    assert f["severe_vs_rest"].tolist() == ["mild/none", "severe", "mild/none"]
    assert f["any_vasopressor"].tolist() == [False, True, False]
    assert f.loc["P01", "pancytopenia"] and not f.loc["P02", "pancytopenia"]


# ------------------------------------------------------------------------------------ comparison

def _comparison_frame() -> pd.DataFrame:
    """Mild temperatures 1, 2, 3 and severe 4, 5 (only the order matters); pressors only in severe."""
    return pd.DataFrame({
        "patient_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
        "severe_vs_mild": ["mild", "mild", "mild", "severe", "severe", pd.NA],
        "temp_max_c": [1.0, 2.0, 3.0, 4.0, 5.0, 9.0],
        "any_vasopressor": [False, False, False, True, True, True],
        "il6_max": [np.nan] * 6,  # no values: left out of the family
    })


def test_compare_severity_hand_values():
    c = cs.compare_severity(_comparison_frame(), "severe_vs_mild").set_index("variable")
    assert c.index.tolist() == ["temp_max_c", "any_vasopressor"]  # P6 (no group) and il6 dropped
    # exact Wilcoxon: all severe above all mild, 1 of C(5,2) = 10 arrangements each tail -> p = 0.2
    assert c.loc["temp_max_c", "p_value"] == pytest.approx(0.2)
    # Hodges-Lehmann: differences 3,2,1,4,3,2 -> median 2.5
    assert c.loc["temp_max_c", "effect"] == pytest.approx(2.5)
    # Fisher: margins 2/3 x 2/3; P(a=2) = 1/10 is the only table as extreme -> p = 0.1
    assert c.loc["any_vasopressor", "p_value"] == pytest.approx(0.1)
    # BH over (0.2, 0.1): 0.1 * 2 / 1 = 0.2, 0.2 * 2 / 2 = 0.2
    assert c["p_adj_bh"].tolist() == pytest.approx([0.2, 0.2])
    assert c.loc["temp_max_c", "domain"] == "vital signs"
    assert c.loc["temp_max_c", "n_group0"] == 3 and c.loc["temp_max_c", "n_group1"] == 2


def test_compare_severity_empty_when_one_group():
    f = _comparison_frame().assign(severe_vs_mild="mild")
    assert cs.compare_severity(f, "severe_vs_mild").empty


def test_worse_with_severe_counts_published_directions():
    c = pd.DataFrame({"variable": ["temp_max_c", "sbp_min_mmhg", "il6_max", "pancytopenia"],
                      "effect": [2.5, 5.0, 100.0, 3.0]})
    # temp higher (worse), SBP higher (not worse: lower expected), IL-6 higher (worse); pancytopenia not an F9 marker
    assert cs.worse_with_severe(c) == 2


# ----------------------------------------------------------------------------- courses and heatmap

def test_time_course_median_iqr():
    # mild day 1: 10, 20, 40 -> median 20; type-7 Q1 = 10 + 0.5 * 10 = 15, Q3 = 20 + 0.5 * 20 = 30
    labs = labs_long([("P1", 1, "il6", 10), ("P2", 1, "il6", 20), ("P3", 1, "il6", 40), ("P4", 1, "il6", 500)])
    groups = pd.DataFrame({"patient_id": ["P1", "P2", "P3", "P4"], "crs_group": ["mild"] * 3 + ["severe"]})
    tc = cs.time_course(labs, groups, ("il6",)).set_index("crs_group")
    assert tc.loc["mild", ["n", "median", "q1", "q3"]].tolist() == [3, 20.0, 15.0, 30.0]
    assert tc.loc["severe", "median"] == 500.0
    fig, ax = plt.subplots()
    assert cs.plot_time_course(tc.reset_index(), "il6", ax=ax) is ax
    assert len(ax.get_lines()) == 2 and ax.get_yscale() == "log"
    plt.close(fig)


def test_peak_matrix_order_and_log():
    f = pd.DataFrame({"patient_id": ["P01", "P02", "P03", "P04"], "crs_grade": [1, 3, 0, 1],
                      "il6_max": [100.0, 1000.0, 10.0, 0.0], "crp_max": [1.0, 10.0, 100.0, 1.0]})
    m = cs.peak_matrix(f, ("il6", "crp", "ferritin"))
    assert m.index.tolist() == ["P02 (g3)", "P01 (g1)", "P04 (g1)", "P03 (g0)"]
    assert m.columns.tolist() == ["il6", "crp"]  # ferritin absent
    assert m["il6"].iloc[[0, 1, 3]].tolist() == [3.0, 2.0, 1.0] and np.isnan(m["il6"].iat[2])  # log10(0) -> NaN
    assert m["crp"].tolist() == [1.0, 0.0, 0.0, 2.0]
    fig, ax = plt.subplots()
    assert cs.plot_peak_heatmap(m, ax=ax) is ax and len(ax.get_images()) == 1
    assert ax.get_title() == ""
    plt.close(fig)
    fig, ax = plt.subplots()
    cs.plot_peak_heatmap(m, ax=ax, max_patients=2)
    # first two pseudonyms P01, P02, kept in grade order; z over all 4 rows: il6 log10 peaks 3, 2, (NaN), 1
    # -> mean 2, sd 1: P02 z = +1, P01 z = 0.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["P02 (g3)", "P01 (g1)"]
    assert ax.get_images()[0].get_array()[:, 0].tolist() == [1.0, 0.0]
    assert ax.get_title() == "Showing the first 2 of 4 patients (pseudonym order)"
    plt.close(fig)


# ------------------------------------------------------------------------------------ predictors

def _predictor_table() -> pd.DataFrame:
    """10 patients: prior HSCT in 4 (2 severe), not in 6 (1 severe); age constant (not modellable)."""
    return pd.DataFrame({
        "severe_crs": pd.array([True, True, False, False, True] + [False] * 5, dtype="boolean"),
        "prior_allo_hsct": pd.array([True] * 4 + [False] * 6, dtype="boolean"),
        "age_years": [30.0] * 10,
    })


def test_available_predictors_skips_constants():
    assert cs.available_predictors(_predictor_table()) == ["prior_allo_hsct"]


def test_univariable_models_hand_odds_ratios():
    u = cs.univariable_models(_predictor_table(), ["prior_allo_hsct"]).set_index("method")
    # ML: cross-product ratio (2/2) / (1/5) = 5
    assert u.loc["ML", "or"] == pytest.approx(5.0, rel=1e-6)
    # Firth in a saturated 2x2 model = Haldane 0.5 correction: (2.5/2.5) / (1.5/5.5) = 3.6667
    assert u.loc["Firth", "or"] == pytest.approx(5.5 / 1.5, rel=1e-4)
    assert (u["label"] == "Prior allogeneic HSCT").all() and (u["epv"] == 3.0).all()  # 3 events / 1 term


def test_multivariable_models_stack_published_firth_and_ml():
    rng = np.random.default_rng(1)
    n = 40
    pt = pd.DataFrame({"bm_blasts_pct": rng.uniform(0, 100, n), "log10_dose": rng.normal(6, 0.3, n),
                       "product_em_pct": rng.uniform(10, 60, n)})
    pt["severe_crs"] = pd.array(rng.uniform(size=n) < pt["bm_blasts_pct"] / 120, dtype="boolean")
    m = cs.multivariable_models(pt)
    assert m["method"].tolist() == ["Firth"] * 3 + ["ML"] * 3
    firth = published.multivariable_logistic(pt)
    np.testing.assert_allclose(m.loc[m["method"] == "Firth", "or"], firth["or"])


def test_roc_table_hand_auc_and_cutoff():
    # events 3, 5; non-events 1, 2, 4: concordant pairs 2 + 3 = 5 of 6 -> AUC 0.8333;
    # cut 2.5 (midpoint of 2 and 3): sens 2/2, spec 2/3 -> best Youden J 0.667
    pt = pd.DataFrame({"severe_crs": pd.array([True, True, False, False, False], dtype="boolean"),
                       "bm_blasts_pct": [3.0, 5.0, 1.0, 2.0, 4.0]})
    r = cs.roc_table(pt, n_boot=200).set_index("measure")["estimate"]
    assert r["AUC"] == pytest.approx(5 / 6)
    assert r["Youden cut-off (bm_blasts_pct > cut-off)"] == 2.5
    assert (r["sensitivity at cut-off"], r["specificity at cut-off"]) == (1.0, pytest.approx(2 / 3))
    fig, ax = plt.subplots()
    assert cs.plot_roc(pt, cs.roc_table(pt, n_boot=50), ax=ax) is ax
    assert ax.collections[0].get_offsets().tolist() == [[pytest.approx(1 / 3), 1.0]]
    plt.close(fig)


# ----------------------------------------------------------------- agreement helpers in crs.py

def test_grade_crosstab_hand_counts():
    # astct (3, 2, 3, 1, 4) vs lee2014 (2, 2, 2, 1, 3)
    t = crs.grade_crosstab(crs.agreement_table(_agreement_cohort(), None), "astct", "lee2014")
    assert t.shape == (6, 6) and int(t.to_numpy().sum()) == 5
    assert t.loc["astct 3", "lee2014 2"] == 2 and t.loc["astct 4", "lee2014 3"] == 1
    assert t.loc["astct 2", "lee2014 2"] == 1 and t.loc["astct 1", "lee2014 1"] == 1


def test_reported_grades_in_switches_and_incidence():
    a = crs.agreement_table(_agreement_cohort(), None)
    patients = pd.DataFrame({"patient_id": list("ABCDE"),
                             "crs_grade_reported": pd.array([3, pd.NA, 2, 1, 4], dtype="Int64")})
    a = crs.with_reported(a, patients)
    s = crs.severe_switches(a).set_index(["system_a", "system_b"])
    # astct vs reported on A, C, D, E (B missing): severe astct {A, C, E}, reported {A, E} -> 1 switch
    assert s.loc[("astct", "reported"), ["n_patients", "n_both_severe", "n_switch"]].tolist() == [4, 2, 1]
    inc = crs.incidence_by_system(a).set_index(["system", "outcome"])
    assert inc.loc[("penn", "severe CRS (grade >= 3)"), ["k", "n"]].tolist() == [4, 5]
    assert inc.loc[("reported", "any CRS"), ["k", "n"]].tolist() == [4, 4]
    with pytest.raises(ValueError, match="crs_grade_reported"):
        crs.with_reported(a, patients.drop(columns="crs_grade_reported"))


def test_max_grade_drivers_and_disagreements():
    daily = _agreement_cohort()
    drivers = crs.max_grade_drivers(daily)
    a = drivers.set_index(["patient_id", "system"])
    assert a.loc[("A", "astct"), ["max_daily_grade", "driver"]].tolist() == [3, "hypotension:one_pressor"]
    assert a.loc[("A", "lee2014"), ["max_daily_grade", "driver"]].tolist() == [2, "hypotension:low_dose_pressor"]
    d = crs.disagreements(drivers, crs.agreement_table(daily, None)).set_index("patient_id")
    assert d.index.tolist() == ["A", "B", "C"]  # severe_agree False in test_agreement_table_hand_grades
    assert d.loc["B", "penn"] == "3 (hypoxia:supplemental_o2)"
    assert d.columns.tolist() == list(crs.SYSTEMS)
