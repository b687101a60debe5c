"""Hand-calculated tests for helpers.crs_severity and the agreement helpers added to helpers.crs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import crs, crs_severity as cs, published, stats  # noqa: E402
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
    assert not f["died_in_window"].any()


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
    c = cs.compare_severity(_comparison_frame(), "severe_vs_mild", described=True).set_index("variable")
    assert c.index.tolist() == ["temp_max_c", "any_vasopressor"]  # P6 (no group) and il6 dropped
    # without `described`, only the tested family (any_vasopressor defines the ASTCT grade)
    assert cs.compare_severity(_comparison_frame(), "severe_vs_mild")["variable"].tolist() == ["temp_max_c"]
    # exact Wilcoxon: all severe above all mild, 1 of C(5,2) = 10 arrangements each tail -> p = 0.2
    assert c.loc["temp_max_c", "p_value"] == pytest.approx(0.2)
    # Hodges-Lehmann: differences 3,2,1,4,3,2 -> median 2.5
    assert c.loc["temp_max_c", "effect"] == pytest.approx(2.5)
    assert c.loc["temp_max_c", "domain"] == "vital signs"
    assert c.loc["temp_max_c", "n_group0"] == 3 and c.loc["temp_max_c", "n_group1"] == 2
    assert c.loc["temp_max_c", "label"] == "Highest temperature, \u00b0C"


def test_defining_features_are_described_not_tested():
    # Vasopressors define ASTCT grade >= 3: summaries only, no p-value, outside the BH family, so the
    # family is temperature alone and its q-value equals its p-value (BH over one test).
    c = cs.compare_severity(_comparison_frame(), "severe_vs_mild", "astct", described=True).set_index("variable")
    assert c.loc["any_vasopressor", "role"] == "defining" and np.isnan(c.loc["any_vasopressor", "p_value"])
    assert c.loc["any_vasopressor", "summary_group1"] == "2/2 (100.0%)"
    assert c.loc["temp_max_c", "role"] == "tested"
    assert c.loc["temp_max_c", "p_adj_bh"] == pytest.approx(0.2)


def test_bh_family_is_the_tested_markers_only():
    # Add IL-6 with the same perfect separation (p = 0.2) and a lowest SBP (defining): BH over (0.2, 0.2) only.
    f = _comparison_frame().assign(il6_max=[10.0, 20.0, 30.0, 400.0, 500.0, 1.0],
                                   sbp_min_mmhg=[110.0, 100.0, 105.0, 70.0, 60.0, 80.0])
    c = cs.compare_severity(f, "severe_vs_mild", "astct", described=True).set_index("variable")
    assert c.loc[c["role"] == "tested"].index.tolist() == ["temp_max_c", "il6_max"]
    assert c.loc[c["role"] == "tested", "p_adj_bh"].tolist() == pytest.approx([0.2, 0.2])
    assert c.loc["sbp_min_mmhg", "role"] == "defining"


def test_organ_grades_define_the_grade_under_lee_and_penn_only():
    assert "creatinine_ctcae_ge3" in cs.DEFINING["lee2014"] and "alt_max" in cs.DEFINING["penn"]
    assert "creatinine_max" not in cs.DEFINING["astct"] and "creatinine_ctcae_ge3" not in cs.DEFINING["ctcae5"]
    for system in crs.SYSTEMS:
        assert {"sbp_min_mmhg", "any_vasopressor", "any_oxygen"} <= set(cs.DEFINING[system])
        assert "temp_max_c" not in cs.DEFINING[system]  # fever makes CRS, not severe CRS


def test_ordinal_organ_grade_is_compared_at_grade_3_by_fisher():
    # ALT grade >= 3 in 2 of 2 severe, 0 of 3 mild: Fisher p = 1 / C(5, 2) = 0.1 (one table as extreme)
    f = _comparison_frame().assign(alt_ctcae_ge3=pd.array([False, False, False, True, True, True], dtype="boolean"))
    c = cs.compare_severity(f, "severe_vs_mild").set_index("variable")
    assert c.loc["alt_ctcae_ge3", "kind"] == cs.B and c.loc["alt_ctcae_ge3", "test"] == "Fisher's exact"
    assert c.loc["alt_ctcae_ge3", "p_value"] == pytest.approx(0.1)


def test_constant_marker_is_not_tested():
    f = _comparison_frame().assign(ast_ctcae_ge3=pd.array([False] * 6, dtype="boolean"))
    c = cs.compare_severity(f, "severe_vs_mild", described=True).set_index("variable")
    assert c.loc["ast_ctcae_ge3", "role"] == "constant" and np.isnan(c.loc["ast_ctcae_ge3", "p_value"])
    assert c.loc[c["role"] == "tested"].index.tolist() == ["temp_max_c"]


def test_compare_severity_empty_when_one_group():
    f = _comparison_frame().assign(severe_vs_mild="mild")
    assert cs.compare_severity(f, "severe_vs_mild").empty


def test_worse_with_severe_counts_published_directions():
    c = pd.DataFrame({"variable": ["temp_max_c", "sbp_min_mmhg", "il6_max", "pancytopenia", "platelets_min"],
                      "effect": [2.5, 5.0, 100.0, 3.0, -4.0],
                      "role": ["tested", "defining", "tested", "tested", "tested"]})
    # temp higher (worse), IL-6 higher (worse), platelets lower (worse); SBP defines the grade (not counted);
    # pancytopenia is not an F9 marker
    assert cs.worse_with_severe(c) == (3, 3)
    assert cs.worse_with_severe(c.assign(effect=[-1.0, 5.0, 100.0, 3.0, 4.0])) == (1, 3)


def test_died_in_window_flags_deaths_by_day_28():
    pt = pd.DataFrame({"patient_id": ["P1", "P2", "P3", "P4"], "os_days": [12.0, 28.0, 29.0, 10.0],
                       "os_event": pd.array([1, 1, 1, 0], dtype="Int64")})
    # died day 12 and day 28 (inside days 0-28); died day 29 (outside); censored day 10 (not a death)
    assert cs.died_in_window(pt).tolist() == [True, True, False, False]


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
    assert m.index.tolist() == ["P02 (grade 3)", "P01 (grade 1)", "P04 (grade 1)", "P03 (grade 0)"]
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
    assert [t.get_text() for t in ax.get_yticklabels()] == ["P02 (grade 3)", "P01 (grade 1)"]
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


# ------------------------------------------------------- course, treatment and timeline (helpers.crs, cs)

def _graded(rows: dict[str, list[tuple[float, int]]]) -> pd.DataFrame:
    """{patient: [(day, grade), ...]} -> a graded table as crs.grade_daily returns it (one scale)."""
    return pd.DataFrame([{"patient_id": p, "day": float(d), "system": "astct", "grade": g}
                         for p, days in rows.items() for d, g in days])


COURSE = {
    # A: CRS days 1-2, three CRS-free days (3, 4, 5), CRS again on day 6 -> two episodes (recurrence)
    "A": [(0, 0), (1, 1), (2, 3), (3, 0), (4, 0), (5, 0), (6, 2), (7, 0)],
    # B: CRS on days 1 and 4, only two CRS-free days between -> one episode of 4 calendar days
    "B": [(0, 0), (1, 2), (2, 0), (3, 0), (4, 1), (5, 0)],
    "C": [(0, 0), (1, 0), (2, 0)],  # no CRS
}


def test_episode_counts_gap_rule():
    assert crs.episode_counts(_graded(COURSE)).to_dict() == {"A": 2, "B": 1, "C": 0}
    # with a 4-day rule, A's three CRS-free days no longer end the first episode
    assert crs.episode_counts(_graded(COURSE), gap_days=4).to_dict() == {"A": 1, "B": 1, "C": 0}


def test_course_table_hand_values():
    c = crs.course_table(_graded(COURSE)).set_index("patient_id")
    assert c.loc["A", ["onset_day", "duration_days", "day_of_max", "onset_to_max_days"]].tolist() == [1, 6, 2, 1]
    assert c.loc["A", "recurrence"] and not c.loc["B", "recurrence"]
    assert c.loc["B", ["onset_day", "duration_days", "crs_days", "episodes"]].tolist() == [1, 4, 2, 1]
    assert not c.loc["C", "crs_any"] and c.loc["C", "episodes"] == 0 and np.isnan(c.loc["C", "onset_day"])


def test_course_table_death_from_crs_is_grade_5_on_the_day_of_death():
    patients = pd.DataFrame({"patient_id": ["A", "B", "C"], "os_days": [9.0, 400.0, 300.0],
                             "death_cause": ["crs", None, None]})
    c = crs.course_table(_graded(COURSE), patients).set_index("patient_id")
    assert c.loc["A", ["max_grade", "day_of_max", "onset_to_max_days"]].tolist() == [5, 9, 8]


def _treatment_daily() -> pd.DataFrame:
    """A: tocilizumab day 2, steroids day -1 (before infusion, ignored) and 3; B: a vasopressor on CRS day 4
    and on CRS-free day 2; C: CPAP on a CRS-free day."""
    return frame([
        day_row(-1, "A", steroids=1), day_row(1, "A"), day_row(2, "A", tocilizumab=1), day_row(3, "A", steroids=1),
        day_row(1, "B"), day_row(2, "B", vasopressors=1), day_row(4, "B", vasopressors=1),
        day_row(1, "C", oxygen="cpap"),
    ])


def test_treatment_table_hand_values():
    g = _graded(COURSE)
    t = crs.treatment_table(_treatment_daily(), crs.course_table(g), g).set_index("patient_id")
    assert t.loc["A", ["tocilizumab", "tocilizumab_first_day", "tocilizumab_from_onset"]].tolist() == [True, 2, 1]
    assert t.loc["A", ["steroids", "steroids_first_day", "steroids_from_onset", "steroids_days"]].tolist() == \
        [True, 3, 2, 1]
    assert not t.loc["B", "tocilizumab"] and np.isnan(t.loc["B", "tocilizumab_from_onset"])
    assert t["any_vasopressor"].tolist() == [False, True, False]   # B's day-4 pressor is on a CRS day
    assert t["positive_pressure"].tolist() == [False, False, False]  # C's CPAP day is not a CRS day


def test_treatment_table_absent_column_is_not_recorded():
    g = _graded(COURSE)
    daily = _treatment_daily().drop(columns=["steroids", "oxygen"])
    t = crs.treatment_table(daily, crs.course_table(g), g)
    assert t["steroids"].isna().all() and t["positive_pressure"].isna().all()
    assert t["tocilizumab"].tolist() == [True, False, False]


def test_fatal_cells_put_grade_5_on_the_day_of_death():
    patients = pd.DataFrame({"patient_id": ["A", "B", "C"], "os_days": [7.0, 12.0, 300.0],
                             "death_cause": ["crs", "crs", "relapse"]})
    cells = cs.fatal_cells(_graded(COURSE), patients)
    five = cells[cells["grade"] == 5].sort_values("patient_id")
    assert five[["patient_id", "day"]].to_numpy().tolist() == [["A", 7.0], ["B", 12.0]]
    assert len(cells[(cells["patient_id"] == "A") & (cells["day"] == 7.0)]) == 1  # replaces A's day-7 grade 0
    fig, ax = plt.subplots()
    cs.plot_timeline(_graded(COURSE), _treatment_daily(), patients, ax=ax)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Grade 5 (death from CRS)" in legend and "Tocilizumab" in legend and "No CRS (grade 0)" in legend
    assert "#000000" in {matplotlib.colors.to_hex(c) for c in ax.collections[0].get_facecolors()}
    plt.close(fig)


def test_small_groups_are_drawn_as_points():
    # two severe patients (< 5): drawn as each patient's values; five mild: median line and IQR band
    rows = [(f"M{i}", 1, "il6", 10.0 * i) for i in range(1, 6)] + [("S1", 1, "il6", 500.0), ("S2", 1, "il6", 900.0)]
    labs = labs_long(rows)
    groups = pd.DataFrame({"patient_id": [r[0] for r in rows], "crs_group": ["mild"] * 5 + ["severe"] * 2})
    tc = cs.time_course(labs, groups, ("il6",))
    assert tc.set_index("crs_group")["group_n"].to_dict() == {"mild": 5, "severe": 2}
    fig, axes = plt.subplots(1, 2, squeeze=False)
    cs.plot_time_courses(tc, ("il6",), axes, values=cs.course_values(labs, groups, ("il6",)))
    ax = axes[0, 0]
    assert ax.get_title() == "IL-6, pg/mL" and not axes[0, 1].get_visible()
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names == ["Mild CRS (median, IQR)", "Severe CRS (each patient)"]
    assert len(ax.get_lines()) == 3  # one median line + one line per severe patient
    plt.close(fig)


def test_labels_for_markers_and_drivers():
    from helpers import labels

    assert labels.marker("il6_max") == "Highest IL-6, pg/mL"
    assert labels.marker("platelets_min") == "Lowest platelets, \u00d710\u2079/L"
    assert labels.marker("aptt_max") == "Longest aPTT, s"
    assert labels.marker("creatinine_ctcae_ge3") == "Creatinine, CTCAE v5.0 grade \u22653"
    assert labels.crs_driver("hypotension:one_pressor") == "hypotension on one vasopressor"
    assert labels.crs_driver("organ:alt_ctcae3+") == "ALT CTCAE grade \u22653"
    assert labels.crs_driver("fever+hypoxia:nonrebreather") == "fever and non-rebreather mask"
    assert labels.crs_group("none") == "No CRS"


def test_described_markers_have_the_summaries_of_the_full_comparison_and_no_test():
    # compare_two_groups without the test: the same summaries and counts, blank effect and p.
    f = _comparison_frame().assign(any_vasopressor=lambda d: d["any_vasopressor"].astype("boolean"))
    chosen = {"temp_max_c": cs.C, "any_vasopressor": cs.B}
    full = stats.compare_two_groups(f, chosen, "severe_vs_mild")
    d = stats.compare_two_groups(f, chosen, "severe_vs_mild", test=False)
    assert d.columns.tolist() == full.columns.tolist()
    same = ["variable", "n_group0", "n_group1", "summary_group0", "summary_group1"]
    pd.testing.assert_frame_equal(d[same], full[same])
    assert d[["effect", "effect_ci_low", "effect_ci_high", "p_value", "p_adj_bh"]].isna().all().all()
    assert d["summary_group1"].tolist() == ["4.5 (4.25-4.75)", "2/2 (100.0%)"]  # R type-7 quartiles of 4, 5


def test_agreement_and_drivers_from_scales_graded_once_equal_the_regrading_functions():
    daily = _agreement_cohort()
    graded = crs.grade_systems(daily)
    summaries = {s: crs.summarise_patients(g, None) for s, g in graded.items()}
    pd.testing.assert_frame_equal(crs.agreement_from_summaries(summaries), crs.agreement_table(daily, None))
    course = crs.course_table(graded["astct"], None, summary=summaries["astct"])
    pd.testing.assert_frame_equal(course, crs.course_table(graded["astct"]))
    assert "episodes" not in summaries["astct"]  # the shared summary is not changed
    pd.testing.assert_frame_equal(crs.drivers_from_graded(graded), crs.max_grade_drivers(daily))
