"""Tests of helpers.survival: hand calculations and R's survival package (fixture made by
tests/r_reference/survival_reference.R on tests/fixtures/survival_small.csv; see its README)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import survival as sv  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")  # helpers must not emit any warning

FIXTURES = Path(__file__).parent / "fixtures"
TOL = 1e-6
Z = 1.959963984540054


def _decode(x):
    """R's JSON writes Inf/NA as strings; turn them into floats."""
    if isinstance(x, dict):
        return {k: _decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode(v) for v in x]
    return {"Inf": math.inf, "-Inf": -math.inf, "NA": math.nan}.get(x, x) if isinstance(x, str) else x


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "survival_small.csv")


@pytest.fixture(scope="module")
def r_ref() -> dict:
    with open(FIXTURES / "survival_small_R.json", encoding="utf-8") as f:
        return _decode(json.load(f))


def close(a, b, tol=TOL) -> None:
    """Elementwise equality to tol; inf equals inf and NaN equals NaN (R's NA)."""
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=0, atol=tol, equal_nan=True)


# --------------------------------------------------------------------------------------------
# Kaplan-Meier by hand
# --------------------------------------------------------------------------------------------

FIVE = pd.DataFrame({"t": [2.0, 3, 3, 5, 8], "e": [1, 1, 0, 1, 0]})


def test_km_five_patients_by_hand():
    # t=2: n=5, d=1 -> S = 4/5 = 0.8
    # t=3: n=4, d=1, c=1 -> S = 0.8 * 3/4 = 0.6
    # t=5: n=2, d=1 -> S = 0.6 * 1/2 = 0.3
    # t=8: n=1, c=1 -> S stays 0.3
    # Greenwood SE of the cumulative hazard at t=3: sqrt(1/(5*4) + 1/(4*3)) = sqrt(0.05 + 0.083333)
    curve = sv.km_curve(FIVE, "t", "e")
    close(curve["time"], [2, 3, 5, 8])
    close(curve["n_risk"], [5, 4, 2, 1])
    close(curve["n_event"], [1, 1, 1, 0])
    close(curve["n_censor"], [0, 1, 0, 1])
    close(curve["surv"], [0.8, 0.6, 0.3, 0.3])
    close(curve["std_err"][1], math.sqrt(1 / 20 + 1 / 12))
    # log-log CI at t=2: se = sqrt(1/20); exp(-exp(log(-log 0.8) -/+ z se / log 0.8))
    se, ls = math.sqrt(1 / 20), math.log(0.8)
    close(curve["ci_low"][0], math.exp(-math.exp(math.log(-ls) - Z * se / ls)))
    close(curve["ci_high"][0], math.exp(-math.exp(math.log(-ls) + Z * se / ls)))
    assert 0 < curve["ci_low"][0] < 0.8 < curve["ci_high"][0] < 1


def test_km_estimates_median_and_survival_by_hand():
    est = sv.km_estimates(FIVE, "t", "e", times=(4.0, 9.0)).set_index("quantity")
    # S first falls to <= 0.5 at t=5 (0.6 -> 0.3): median 5
    assert est.loc["median", "estimate"] == 5.0
    # S(4) = S at the last step <= 4, i.e. 0.6; t=9 is after the last follow-up (8): not estimable
    assert est.loc["S(4)", "estimate"] == pytest.approx(0.6)
    assert math.isnan(est.loc["S(9)", "estimate"])
    assert (est["n"] == 5).all() and (est["events"] == 3).all()
    assert est["ci_method"].str.contains("log-log").all()


def test_median_on_flat_half_is_midpoint_like_r():
    # four deaths at 1..4: S = .75, .5, .25, 0; S == 0.5 on [2, 3) -> R's median is (2 + 3) / 2
    df = pd.DataFrame({"t": [1.0, 2, 3, 4], "e": [1, 1, 1, 1]})
    est = sv.km_estimates(df, "t", "e", times=()).set_index("quantity")
    assert est.loc["median", "estimate"] == 2.5


def test_unreached_median_is_inf():
    # one death in four: S never reaches 0.5
    df = pd.DataFrame({"t": [1.0, 2, 3, 4], "e": [1, 0, 0, 0]})
    est = sv.km_estimates(df, "t", "e", times=()).set_index("quantity")
    assert est.loc["median", "estimate"] == math.inf
    assert est.loc["median", "ci_high"] == math.inf


def test_at_risk_table_by_hand():
    # at risk at t = number with duration >= t: t=0 -> 5; t=3 -> {3,3,5,8} = 4; t=6 -> {8} = 1; t=9 -> 0
    tab = sv.at_risk_table(FIVE, "t", "e", None, [0, 3, 6, 9])
    assert tab["n_risk"].tolist() == [5, 4, 1, 0]
    assert tab["group"].unique().tolist() == ["all"]


def test_median_followup_reverse_km_by_hand():
    # deaths at 2 and 8; censored at 4, 6, 10. Reverse KM (censoring is the event):
    # t=4: n=4 -> 3/4; t=6: n=3 -> 0.75*2/3 = 0.5; t=10: n=1 -> 0. S == 0.5 on [6, 10) -> median 8
    df = pd.DataFrame({"t": [2.0, 4, 6, 8, 10], "e": [1, 0, 0, 1, 0]})
    fu = sv.median_followup(df, "t", "e")
    assert fu["median"] == 8.0
    assert (fu["min"], fu["max"], fu["n_censored"]) == (4.0, 10.0, 3)
    assert "reverse Kaplan-Meier" in fu["method"]


# --------------------------------------------------------------------------------------------
# Against R's survival package (tests/fixtures/survival_small_R.json)
# --------------------------------------------------------------------------------------------

def test_km_steps_equal_r(small, r_ref):
    for name, group in (("overall", None), ("by_grp", "grp")):
        for label, sub in ([("all", small)] if group is None else small.groupby(group)):
            ref = r_ref["km"][name][label]["steps"]
            curve = sv.km_curve(sub, "time", "status")
            for col in ("time", "n_risk", "n_event", "n_censor", "surv", "std_err", "ci_low", "ci_high"):
                close(curve[col], ref[col])


def test_km_estimates_equal_r(small, r_ref):
    est = sv.km_estimates(small, "time", "status", "grp", times=(20, 45, 80))
    for label in ("A", "B"):
        ref = r_ref["km"]["by_grp"][label]
        rows = est[est["group"] == label].set_index("quantity")
        med = rows.loc["median"]
        # R reports an unreached limit as NA; we report inf
        close([med["estimate"], med["ci_low"], med["ci_high"]],
              [ref["median"][k] if not math.isnan(ref["median"][k]) else math.inf
               for k in ("estimate", "ci_low", "ci_high")])
        for i, t in enumerate(ref["at_times"]["time"]):
            row = rows.loc[f"S({t:g})"]
            close([row["estimate"], row["ci_low"], row["ci_high"]],
                  [ref["at_times"][k][i] for k in ("surv", "ci_low", "ci_high")])
        # t=80 is beyond the last follow-up: R's summary(extend=FALSE) drops it, we give NaN
        assert 80 not in ref["at_times"]["time"] and math.isnan(rows.loc["S(80)", "estimate"])
        assert (rows["n"] == ref["n"]).all() and (rows["events"] == ref["events"]).all()


def test_km_log_ci_equals_r_default(small, r_ref):
    # R's default conf.type = "log": S exp(-/+ z se), upper limit capped at 1
    for label, sub in small.groupby("grp"):
        ref = r_ref["km"]["by_grp_log"][label]
        curve = sv.km_curve(sub, "time", "status", conf_type="log")
        for col in ("surv", "std_err", "ci_low", "ci_high"):
            close(curve[col], ref["steps"][col])
        est = sv.km_estimates(sub, "time", "status", times=ref["at_times"]["time"], conf_type="log")
        med = est.set_index("quantity").loc["median"]
        close([med["estimate"], med["ci_low"], med["ci_high"]],
              [ref["median"][k] if not math.isnan(ref["median"][k]) else math.inf
               for k in ("estimate", "ci_low", "ci_high")])
        close(est["estimate"].iloc[1:], ref["at_times"]["surv"])
        close(est["ci_high"].iloc[1:], ref["at_times"]["ci_high"])
        assert est["ci_method"].str.startswith("log (Greenwood").all()


def test_km_log_ci_by_hand():
    # FIVE at t=2: S = 0.8, se = sqrt(1/20); log CI = 0.8 exp(-/+ z se); the upper limit exceeds 1 -> 1
    curve = sv.km_curve(FIVE, "t", "e", conf_type="log")
    se = math.sqrt(1 / 20)
    close(curve["ci_low"][0], 0.8 * math.exp(-Z * se))
    assert 0.8 * math.exp(Z * se) > 1 and curve["ci_high"][0] == 1.0
    with pytest.raises(ValueError, match="conf_type"):
        sv.km_curve(FIVE, "t", "e", conf_type="plain")


def test_median_followup_equals_r(small, r_ref):
    fu = sv.median_followup(small, "time", "status")
    ref = r_ref["reverse_km"]["followup"]
    close([fu["median"], fu["ci_low"]], [ref["median"], ref["ci_low"]])
    assert math.isnan(ref["ci_high"]) and fu["ci_high"] == math.inf


def test_logrank_equals_r_survdiff(small, r_ref):
    res = sv.logrank(small, "time", "status", "grp")
    ref = r_ref["logrank"]["grp"]
    close([res["statistic"], res["p_value"]], [ref["chisq"], ref["p_value"]], tol=1e-9)
    assert res["df"] == ref["df"] == 1 and res["test"] == "log-rank"


def test_cox_table_equals_r_coxph_efron(small, r_ref):
    tab = sv.cox_table(small, "time", "status", ["x1", "x2"])
    ref = r_ref["cox"]["x1_x2"]
    assert tab["term"].tolist() == ref["term"]
    close(tab["coef"], ref["coef"])
    close(tab["se"], ref["se"])
    close(tab["p_value"], ref["p_value"])
    close(tab["hr"], np.exp(ref["coef"]))
    close(tab["ci_low"], np.exp(np.array(ref["coef"]) - Z * np.array(ref["se"])))
    close(tab["concordance"], [ref["concordance"]] * 2)
    assert (tab["n"] == ref["n"]).all() and (tab["events"] == ref["events"]).all()
    # 10 events / 2 covariates = 5 events per variable
    assert (tab["epv"] == 5.0).all() and tab["warning"].str.contains("EPV 5.0 < 10").all()
    assert tab["converged"].all()


def test_stratified_cox_equals_r(small, r_ref):
    tab = sv.cox_table(small, "time", "status", ["x1", "x2"], strata="grp")
    ref = r_ref["cox"]["x1_x2_strata_grp"]
    close(tab["coef"], ref["coef"])
    close(tab["se"], ref["se"])


def test_univariable_cox_equals_r(small, r_ref):
    tab = sv.univariable_cox(small, "time", "status", ["x1", "x2"])
    assert tab["model"].tolist() == ["univariable: x1", "univariable: x2"]
    row = tab.iloc[0]
    close([row["coef"], row["se"], row["concordance"]],
          [r_ref["cox"]["x1"]["coef"], r_ref["cox"]["x1"]["se"], r_ref["cox"]["x1"]["concordance"]])


@pytest.mark.parametrize("transform", ["km", "rank"])
def test_ph_test_equals_r_cox_zph(small, r_ref, transform):
    tab = sv.ph_test(small, "time", "status", ["x1", "x2"], transform=transform)
    ref = r_ref["cox"]["x1_x2"][f"zph_{transform}"]
    assert tab["term"].tolist() == ref["term"]
    close(tab["statistic"], ref["statistic"])
    close(tab["p_value"], ref["p_value"])
    assert tab["df"].tolist() == [1, 1, 2]


def test_scaled_schoenfeld_equals_r(small, r_ref):
    res = sv.scaled_schoenfeld(small, "time", "status", ["x1", "x2"])
    ref = r_ref["cox"]["x1_x2"]
    for j, term in enumerate(["x1", "x2"]):
        mine = res[res["term"] == term]
        close(mine["time"], ref["scaledsch"]["time"])
        # R: one row per event (sorted by time), one column per term; ties between events (t=5, t=20)
        # keep the data order in both
        close(mine["residual"], [row[j] for row in ref["scaledsch"]["value"]])
        close(mine["coef"], [ref["coef"][j]] * len(mine))
    fig, ax = plt.subplots()
    assert sv.plot_schoenfeld(res, "x1", ax=ax) is ax
    assert len(ax.lines) == 3  # points, LOWESS, coefficient line
    plt.close(fig)
    with pytest.raises(KeyError, match="x3"):
        sv.plot_schoenfeld(res, "x3")


def test_lifelines_ph_test_is_the_older_approximation(small, r_ref):
    # Why ph_test does not call lifelines: proportional_hazard_test implements the Grambsch &
    # Therneau (1994) approximation (R survival < 3.0), which the R script replicates; R 3.x's
    # cox.zph (the score test ph_test reproduces) gives different values (1.17 vs 0.13 for x1).
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    data = small[["time", "status", "x1", "x2"]].astype(float)
    cph = CoxPHFitter().fit(data, "time", "status")
    res = proportional_hazard_test(cph, data, time_transform="km")
    ref = r_ref["cox"]["x1_x2"]
    close(res.summary["test_statistic"], ref["zph_gt1994"]["km"]["statistic"][:2], tol=1e-5)
    assert abs(res.summary["test_statistic"].iloc[0] - ref["zph_km"]["statistic"][0]) > 0.5


def test_time_varying_cox_equals_r_tmerge(small, r_ref):
    tab = sv.time_varying_cox(small, "time", "status", "tv", "cov_day", ["x1"])
    ref = r_ref["tv_cox"]["tv_x1"]
    assert tab["term"].tolist() == ref["term"]
    close(tab["coef"], ref["coef"])
    close(tab["se"], ref["se"])
    assert (tab["n"] == 16).all() and (tab["events"] == 10).all()


def test_counting_process_rows_equal_r_tmerge(small, r_ref):
    cp = sv.counting_process(small, "time", "status", "tv", "cov_day")
    ref = pd.DataFrame(r_ref["tv_cox"]["tv_x1"]["rows"])
    assert cp["patient_id"].tolist() == ref["id"].tolist()
    close(cp["start"], ref["start"])
    close(cp["stop"], ref["stop"])
    assert cp["status"].tolist() == ref["event"].tolist()
    assert cp["tv"].tolist() == ref["value"].tolist()


def test_counting_process_rows_by_hand():
    df = pd.DataFrame({"patient_id": ["P01", "P02", "P03", "P04", "P05"],
                       "t": [10.0, 20, 30, 40, 50], "e": [1, 0, 1, 1, 0],
                       "cr_day": [4.0, np.nan, 0.0, 40.0, 60.0]})
    cp = sv.counting_process(df, "t", "e", "cr", "cr_day")
    # P01 switches at 4: (0,4] cr=0 no event, (4,10] cr=1 event; P02 never: (0,20] cr=0;
    # P03 at day 0: (0,30] cr=1; P04 on its event day: never exposed before the event, (0,40] cr=0;
    # P05 after its follow-up: (0,50] cr=0
    expected = [("P01", 0, 4, 0, 0), ("P01", 4, 10, 1, 1), ("P02", 0, 20, 0, 0), ("P03", 0, 30, 1, 1),
                ("P04", 0, 40, 1, 0), ("P05", 0, 50, 0, 0)]
    got = list(cp[["patient_id", "start", "stop", "e", "cr"]].itertuples(index=False, name=None))
    assert got == expected


def test_cumulative_incidence_equals_r_aalen_johansen(small, r_ref):
    cif = sv.cumulative_incidence(small, "time", "etype", times=(10, 20, 45))
    ref = r_ref["cif"]["etype"]
    for cause in (1, 2):
        close(cif.loc[cif["cause"] == cause, "estimate"], ref[f"cause_{cause}"])
    # hand check, cause 1 at t=10: t=5 (n=16): one relapse, S(5-)=1 -> 1/16; t=10 (n=14): one
    # relapse, S(10-) = 14/16 -> 1/16 + 14/16 * 1/14 = 0.125
    assert cif.loc[(cif["cause"] == 1) & (cif["time"] == 10), "estimate"].item() == pytest.approx(0.125)


def test_cumulative_incidence_ci_equals_lifelines_without_ties(small):
    # Without tied times of different causes lifelines does not jitter; then its estimate and
    # delta-method log(-log) CI must equal ours at every event time (P01 makes the only such tie).
    from lifelines import AalenJohansenFitter

    data = small[small["patient_id"] != "P01"]
    ajf = AalenJohansenFitter(calculate_variance=True).fit(data["time"], data["etype"], event_of_interest=1)
    event_times = sorted(data.loc[data["etype"] > 0, "time"].unique())
    ours = sv.cumulative_incidence(data, "time", "etype", times=event_times)
    ours = ours[ours["cause"] == 1]
    ci = ajf.confidence_interval_.loc[event_times]
    close(ours["estimate"], ajf.cumulative_density_.loc[event_times].iloc[:, 0], tol=1e-12)
    # lifelines 0.30.3 swaps the labels: its "upper" column holds the lower limit (0.0043 < 1/15
    # at t=5) and "lower" the upper one; the numbers themselves agree with ours.
    close(ours["ci_low"], ci.filter(like="upper").iloc[:, 0], tol=1e-10)
    close(ours["ci_high"], ci.filter(like="lower").iloc[:, 0], tol=1e-10)
    assert (ours["ci_low"].to_numpy() < ours["estimate"].to_numpy()).all()


def test_firth_cox_equals_r_penalised_likelihood(small, r_ref):
    tab = sv.firth_cox_table(small, "time", "status", ["x1", "x2"])
    ref = r_ref["firth"]["x1_x2"]
    # R maximises l(b) + 0.5 log|I(b)| with optim() (BFGS then Nelder-Mead, reltol 1e-15): the
    # coefficients agree to about 4e-7. firthmodels uses Breslow ties, the R reference too.
    close(tab["coef"], ref["coef"])
    close(tab["p_value"], ref["lrt_p_value"])
    assert (tab["ci_low"] < tab["hr"]).all() and (tab["hr"] < tab["ci_high"]).all()
    assert tab["method"].str.contains("profile-likelihood").all()


# --------------------------------------------------------------------------------------------
# Separation, missing data
# --------------------------------------------------------------------------------------------

SEPARATED = pd.DataFrame({"t": [1.0, 2, 3, 4, 10, 11, 12, 13], "e": [1, 1, 1, 1, 1, 0, 1, 0],
                          "x": [1.0, 1, 1, 1, 0, 0, 0, 0]})


def test_cox_separation_is_flagged_not_printed():
    # x = 1 patients all die before any x = 0 patient: the partial likelihood has no maximum
    tab = sv.cox_table(SEPARATED, "t", "e", ["x"])
    assert not tab["converged"].item()
    assert "separation/non-convergence" in tab["warning"].item()


def test_firth_gives_finite_estimate_under_separation():
    tab = sv.firth_cox_table(SEPARATED, "t", "e", ["x"])
    assert tab["converged"].item() and 0 < tab["coef"].item() < 10
    assert np.isfinite(tab["ci_high"].item()) and tab["p_value"].item() < 0.05


def test_cox_drops_missing_covariates_and_reports_n(small, r_ref):
    df = small.copy()
    df.loc[[0, 5], "x2"] = np.nan  # P01 (event) and P06 (event) lose x2
    tab = sv.cox_table(df, "time", "status", ["x1", "x2"])
    assert (tab["n"] == 14).all() and (tab["events"] == 8).all()
    assert tab["epv"].iloc[0] == 4.0


# --------------------------------------------------------------------------------------------
# Data manipulation: censor_at, landmark
# --------------------------------------------------------------------------------------------

def test_censor_at_hsct():
    df = pd.DataFrame({"os_days": [100.0, 200, 300, 50], "os_event": pd.array([1, 1, 0, 1], dtype="Int64"),
                       "hsct_day": [60.0, np.nan, 300.0, 50.0]})
    out = sv.censor_at(df, "os_days", "os_event", "hsct_day")
    # row 0: HSCT at 60 precedes death at 100 -> censored at 60; row 1: no HSCT -> unchanged;
    # row 2: HSCT on the censoring day -> unchanged; row 3: HSCT on the death day does not precede it
    assert out["os_days_cens"].tolist() == [60.0, 200.0, 300.0, 50.0]
    assert out["os_event_cens"].tolist() == [0, 1, 0, 1]
    assert out["os_days"].tolist() == df["os_days"].tolist()  # originals kept


def test_landmark_keeps_only_patients_event_free_after_landmark():
    df = pd.DataFrame({"patient_id": ["P01", "P02", "P03", "P04", "P05"],
                       "os_days": [10.0, 28, 20, 100, 40], "os_event": [1, 1, 0, 0, 1],
                       "cr_day": [np.nan, 14, np.nan, 21, 35]})
    lm = sv.landmark(df, "os_days", "os_event", 28, covariate_day_col="cr_day")
    # P01 died at 10 and P02 on day 28, P03 was censored at 20 (not known event-free at 28): out
    assert lm["patient_id"].tolist() == ["P04", "P05"]
    # time origin moved to the landmark: 100 - 28, 40 - 28
    assert lm["os_days"].tolist() == [72.0, 12.0]
    # P04 in CR by day 21 (known at 28) -> 1; P05's CR on day 35 is after the landmark -> 0
    assert lm["cr_day_by_landmark"].tolist() == [1, 0]
    assert lm.attrs["landmark_day"] == 28.0 and (lm["landmark_day"] == 28.0).all()


def test_landmark_dataset_feeds_km(small):
    lm = sv.landmark(small, "time", "status", 12)
    # patients with time > 12: P01-P04 (times 5, 5, 10, 10) leave, 12 of 16 stay; P05 (14) -> 2
    assert len(lm) == 12 and lm["time"].min() == 2.0
    est = sv.km_estimates(lm, "time", "status", times=(10,))
    assert est["n"].iloc[0] == 12


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="os_days"):
        sv.km_curve(FIVE, "os_days", "e")


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

def test_plot_km_draws_curves_censor_marks_and_risk_table(small):
    fig, ax = plt.subplots()
    out = sv.plot_km(small, "time", "status", group="grp", ax=ax, times=[0, 20, 40, 60])
    assert out is ax
    texts = [t.get_text() for t in ax.texts]
    # group A at risk: t=0 -> 8, t=20 -> {20,25,30,45,52,60} = 6, t=40 -> {45,52,60} = 3, t=60 -> 1
    assert "Number at risk" in texts and ["8", "6", "3", "1"] == texts[texts.index("A") + 1:texts.index("A") + 5]
    markers = [ln for ln in ax.lines if ln.get_marker() == "+"]
    assert len(markers) == 2
    assert list(ax.get_xticks()) == [0, 20, 40, 60]
    plt.close(fig)


def test_plot_cif_and_forest_plot(small):
    fig, (ax1, ax2) = plt.subplots(1, 2)
    assert sv.plot_cif(small, "time", "etype", ax=ax1) is ax1
    assert [t.get_text() for t in ax1.get_legend().get_texts()] == ["relapse", "non-relapse mortality"]
    table = sv.cox_table(small, "time", "status", ["x1", "x2"])
    table = pd.concat([table, pd.DataFrame({"term": ["sep"], "hr": [np.inf], "ci_low": [0.0],
                                            "ci_high": [np.inf]})], ignore_index=True)
    assert sv.forest_plot(table, ax=ax2) is ax2
    texts = [t.get_text() for t in ax2.texts]
    assert texts[0] == f"{table['hr'][0]:.2f} ({table['ci_low'][0]:.2f}-{table['ci_high'][0]:.2f})"
    assert texts[-1] == "not estimable" and ax2.get_xscale() == "log"
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# The shipped cohort against R (fixture made by tests/r_reference/make_cohort_fixture.py)
# --------------------------------------------------------------------------------------------

def test_shipped_cohort_matches_R():
    # Explicitly about the shipped cohort: helpers' KM, log-rank and Cox (Efron) on data/simulated
    # equal R's survival package to 1e-6, and the fixture is not stale.
    from helpers import derive, published
    from helpers import survival_report as sr
    from helpers.cohort import load_cohort
    from helpers.paths import resolve

    with open(FIXTURES / "shipped_cohort_R.json", encoding="utf-8") as f:
        ref = _decode(json.load(f))
    data = load_cohort(resolve("data/simulated"))
    frame = sr.r_reference_frame(derive.patient_table(data), float(data.settings.landmark_day))
    assert sr.sha256(frame) == ref["meta"]["derived_csv_sha256"], (
        "tests/fixtures/shipped_cohort_R.json is stale (data/simulated or the derivation changed); "
        f"regenerate it from the project root with: {ref['meta']['regenerate']}")
    assert ref["meta"]["landmark_day"] == data.settings.landmark_day
    pt = derive.patient_table(data)
    d = sr.model_frame(pt, data.settings.landmark_day)
    for end in ("os", "pfs"):
        dur, ev = f"{end}_days", f"{end}_event"
        for label, sub in [("all", d)]:
            curve = sv.km_curve(sub, dur, ev)
            for col in ("time", "n_risk", "n_event", "surv", "std_err", "ci_low", "ci_high"):
                close(curve[col], ref["km"][f"{end}_all"][label]["steps"][col])
        for g, sub in d.groupby("remission"):
            r = ref["km"][f"{end}_by_remission"][str(int(g))]
            close(sv.km_curve(sub, dur, ev)["surv"], r["steps"]["surv"])
            est = sv.km_estimates(sub, dur, ev, times=(365, 730)).set_index("quantity")
            close(est.loc["median", "estimate"], r["median"]["estimate"]
                  if not math.isnan(r["median"]["estimate"]) else math.inf)
            for i, t in enumerate(r["at_times"]["time"]):
                close(est.loc[f"S({t:g})", ["estimate", "ci_low", "ci_high"]].to_numpy(float),
                      [r["at_times"][k][i] for k in ("surv", "ci_low", "ci_high")])
        lr = sv.logrank(d, dur, ev, "remission")
        close(lr["statistic"], ref["logrank"][f"{end}_remission"]["chisq"])
        cox = published.multivariable_cox(pt, end)
        rc = ref["cox"][f"{end}_multivariable"]
        assert cox["term"].tolist() == rc["term"]
        close(cox["coef"], rc["coef"])
        close(cox["se"], rc["se"])
        close(cox["concordance"].iloc[0], rc["concordance"])
        naive = sv.cox_table(d, dur, ev, ["remission"])
        close(naive[["coef", "se"]].to_numpy(float)[0], [ref["cox"][f"{end}_remission"]["coef"],
                                                          ref["cox"][f"{end}_remission"]["se"]])
        tv = sv.time_varying_cox(d, dur, ev, "remission", sr.REMISSION_DAY)
        close(tv[["coef", "se"]].to_numpy(float)[0], [ref["tv_cox"][f"{end}_remission_tv"]["coef"],
                                                       ref["tv_cox"][f"{end}_remission_tv"]["se"]])


def test_plot_km_legend_title(small):
    fig, ax = plt.subplots()
    sv.plot_km(small, "time", "status", group="grp", ax=ax, legend_title="Arm")
    assert ax.get_legend().get_title().get_text() == "Arm"
    sv.plot_km(small, "time", "status", group="grp", ax=ax)
    assert ax.get_legend().get_title().get_text() == "grp"  # default: the column name
    plt.close(fig)
