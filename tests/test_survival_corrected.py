"""Known answers for the corrected survival analyses: time-varying and landmark Cox against R's survival on a
hand-built cohort whose responders fall after the landmark; estimability; duration of response and relapse
incidence by hand; the chapter's sections on the shipped cohort and on a cohort unlike it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers import fmt  # noqa: E402
from helpers import survival as sv  # noqa: E402
from helpers import survival_report as sr  # noqa: E402

REF = Path(__file__).parent / "r_reference"
TOL = 1e-6


@pytest.fixture(scope="module")
def lm_data() -> pd.DataFrame:
    return pd.read_csv(REF / "landmark_small.csv")


@pytest.fixture(scope="module")
def lm_ref() -> dict:
    return json.loads((REF / "landmark_small_R.json").read_text())


def test_time_varying_cox_equals_r_when_responders_fall_after_the_landmark(lm_data, lm_ref):
    tv = sv.safe_time_varying_cox(lm_data, "time", "status", "rem", "rem_day").iloc[0]
    ref = lm_ref["time_varying"]
    assert tv["estimable"] and (tv["n"], tv["events"]) == (ref["n"], ref["events"])
    for ours, theirs in (("coef", "coef"), ("se", "se"), ("hr", "hr"), ("ci_low", "ci_low"),
                         ("ci_high", "ci_high"), ("p_value", "p")):
        assert tv[ours] == pytest.approx(ref[theirs], rel=TOL, abs=TOL)


def test_counting_process_rows_equal_r_tmerge(lm_data, lm_ref):
    cp = sv.counting_process(lm_data.rename(columns={"id": "patient_id"}), "time", "status", "rem", "rem_day")
    ref = lm_ref["counting_rows"]
    assert cp["start"].tolist() == ref["tstart"] and cp["stop"].tolist() == ref["tstop"]
    assert cp["status"].tolist() == ref["event"] and cp["rem"].tolist() == ref["rem"]


@pytest.mark.parametrize("day", ["21", "28", "35", "42", "60"])
def test_landmark_series_equals_r(lm_data, lm_ref, day):
    row = sv.landmark_series(lm_data, "time", "status", "rem_day", [float(day)]).iloc[0]
    ref = lm_ref["landmark"][day]
    assert (row["n"], row["events"], row["late"]) == (ref["n"], ref["events"], ref["late"])
    for ours, theirs in (("hr", "hr"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("p_value", "p")):
        assert row[ours] == pytest.approx(ref[theirs], rel=TOL, abs=TOL)
    lm = sv.landmark(lm_data, "time", "status", float(day), covariate_day_col="rem_day")
    lr = sv.logrank(lm, "time", "status", "rem_day_by_landmark")
    assert lr["p_value"] == pytest.approx(ref["logrank_p"], rel=TOL, abs=TOL)


def test_late_responders_by_hand(lm_data):
    # remission days 14, 21 x3, 28 x4, 35 x3, 42 x2: after day 28 -> 5 responders (35 x3, 42 x2)
    s = sv.landmark_series(lm_data, "time", "status", "rem_day", [28.0, 42.0]).set_index("landmark_day")
    assert s.loc[28.0, "late_all"] == 5 and s.loc[42.0, "late_all"] == 0
    # at the day-28 landmark, patient 19 (documented on 42, alive at 45) counts as not in remission
    lm = sv.landmark(lm_data, "time", "status", 28, covariate_day_col="rem_day")
    assert lm.loc[lm["id"] == 19, "rem_day_by_landmark"].item() == 0


# --------------------------------------------------------------------------------------------
# Estimability
# --------------------------------------------------------------------------------------------

SEPARATED = pd.DataFrame({"t": [1.0, 2, 3, 4, 10, 11, 12, 13], "e": [1, 1, 1, 1, 1, 0, 1, 0],
                          "x": [1.0, 1, 1, 1, 0, 0, 0, 0]})


def test_non_converged_fit_is_reported_as_not_estimable():
    fit = sv.safe_cox(SEPARATED, "t", "e", ["x"]).iloc[0]
    assert not fit["estimable"] and fit["reason"]
    assert sr.hr_cell(fit) == "not estimable" and sr.p_cell(fit) == fmt.MISSING
    words = sr.hr_words(fit)
    assert words.startswith("not estimable (") and not any(ch.isdigit() for ch in words.split("(")[0])


def test_time_varying_separation_is_not_estimable():
    # exposure from day 0.5 in the four early deaths only: separation in the counting-process data
    d = SEPARATED.assign(day=[0.5, 0.5, 0.5, 0.5, np.nan, np.nan, np.nan, np.nan])
    fit = sv.safe_time_varying_cox(d, "t", "e", "x", "day").iloc[0]
    assert not fit["estimable"] and sr.hr_cell(fit) == "not estimable"


def test_no_events_and_no_variation_are_not_estimable():
    none = SEPARATED.assign(e=0)
    assert sv.safe_cox(none, "t", "e", ["x"]).iloc[0]["reason"] == "no events"
    flat = SEPARATED.assign(x=1.0)
    assert "no variation" in sv.safe_cox(flat, "t", "e", ["x"]).iloc[0]["reason"]


def test_median_with_undefined_limits_prints_words_not_inf():
    # everyone fails by day 56: median 28 days; the log-log CI is undefined where S = 0
    d = pd.DataFrame({"pfs_days": [12.0, 28, 28, 56], "pfs_event": [1, 1, 1, 1]})
    est = sv.km_estimates(d, "pfs_days", "pfs_event", times=())
    cell = sr._median_cells(d, "pfs", est.assign(group="all"))
    # S: 0.75 at 12, 0.25 at 28, 0 at 56 -> median 28 days; the lower log-log curve crosses 0.5 at day 12;
    # the upper one stays above 0.5 until S = 0, where it is undefined: R prints NA, the book "not estimable"
    assert cell == f"{fmt.months(28)} ({fmt.months(12)} to not estimable)" == "0.9 (0.4 to not estimable)"


def test_logrank_words_never_end_empty():
    d = pd.DataFrame({"os_days": [1.0, 2, 3], "os_event": [1, 1, 0], "g": ["a", "a", "a"]})
    text = sr.logrank_words(d, "os", "g")
    assert text == "log-rank test not possible (only one group)"
    d2 = d.assign(g=["a", "b", "a"])
    assert sr.logrank_words(d2, "os", "g").startswith("log-rank p = ")


# --------------------------------------------------------------------------------------------
# Duration of response and relapse incidence by hand
# --------------------------------------------------------------------------------------------

RESP = pd.DataFrame({
    "patient_id": ["P1", "P2", "P3", "P4", "P5"],
    "remission": [1.0, 1, 1, 1, 0],
    "remission_day": [28.0, 28, 35, 21, np.nan],
    "pfs_days": [128.0, 228, 135, 421, 40],
    "pfs_event": [1.0, 1, 0, 0, 1],
    "event_type": pd.array([1, 2, 0, 0, 1], dtype="Int64"),
})


def test_duration_of_response_and_cumulative_incidence_by_hand():
    d = sr.add_endpoints(RESP, 28)
    # DoR from the remission day: P1 100 (relapse), P2 200 (death), P3 100 censored, P4 400 censored
    assert d["dor_days"].tolist()[:4] == [100.0, 200.0, 100.0, 400.0] and math.isnan(d["dor_days"].iat[4])
    resp = d[d["remission"] == 1]
    # KM: at t=100 one event of 4 at risk (the censoring at 100 comes after) -> 3/4; at 200 one of 2 -> 3/8
    curve = sv.km_curve(resp, "dor_days", "dor_event").set_index("time")
    assert curve.loc[100.0, "surv"] == pytest.approx(0.75) and curve.loc[200.0, "surv"] == pytest.approx(0.375)
    # Aalen-Johansen: relapse 1/4 at 100; death without relapse at 200: S(200-) = 3/4 times 1/2 -> 3/8
    cif = sv.cumulative_incidence(resp, "dor_days", "cir_type", times=(150.0, 300.0)).set_index(["cause", "time"])
    assert cif.loc[(1, 150.0), "estimate"] == pytest.approx(0.25) and cif.loc[(1, 300.0), "estimate"] == pytest.approx(0.25)
    assert cif.loc[(2, 300.0), "estimate"] == pytest.approx(0.375)
    # the non-responder's refractory progression never enters relapse incidence
    assert math.isnan(d["cir_type"].iat[4])


def test_efs_counts_treatment_failure_at_the_assessment():
    d = sr.add_endpoints(RESP, 28)
    # the non-responder progressed on day 40: treatment failure at the day-28 assessment
    assert (d["efs_days"].iat[4], d["efs_event"].iat[4]) == (28.0, 1.0)
    assert d["efs_days"].tolist()[:4] == RESP["pfs_days"].tolist()[:4]


# --------------------------------------------------------------------------------------------
# The chapter's sections on the shipped cohort and on another one
# --------------------------------------------------------------------------------------------

SECTIONS = ["followup", "overall_curves", "ci_methods", "by_remission_naive", "remission_timing", "landmark_curves",
            "remission_corrected", "landmark_table", "univariable", "multivariable", "published_landmark",
            "severe_crs", "expansion", "proportional_hazards", "firth", "hsct", "response_duration", "nrm_causes",
            "conclusions"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return sr.open_chapter("data/simulated", tmp_path_factory.mktemp("tables"))


def test_shipped_cohort_corrected_estimates(shipped):
    os_ = sr.corrected_remission_hr(shipped.data, "os").set_index("analysis")
    # four responders documented on day 35, after the day-28 landmark (issue: landmark HR 0.74, TV 0.17)
    assert os_.loc["landmark", "late"] == 4
    assert os_.loc["landmark", "hr"] == pytest.approx(0.743, abs=1e-3)
    assert os_.loc["time-varying", "hr"] == pytest.approx(0.171, abs=1e-3) and os_.loc["time-varying", "primary"]
    series = sr.landmark_sensitivity(shipped.data, "os").set_index("landmark_day")
    # at a day-35 landmark no responder is left behind and the landmark HR equals the time-varying one
    assert series.loc[35.0, "late_all"] == 0
    assert series.loc[35.0, "hr"] == pytest.approx(os_.loc["time-varying", "hr"], rel=1e-6)
    text = sr.remission_timing(shipped).text()
    assert "Warning: the landmark leaves responders behind" in text and "4 of the 16 responders" in text


def test_shipped_cohort_crs_deaths_and_peaks(shipped):
    crs = sr.severe_crs_sensitivity(shipped.data, "os")
    assert crs["n_crs_deaths"].iloc[0] == 2
    excl = crs[(crs["model"] == "severe CRS alone") & (crs["analysis"] == "excluding deaths from CRS")].iloc[0]
    assert (excl["n"], excl["events"]) == (22, 17)
    exp = sr.expansion_adjustment(shipped.data, "os")
    assert exp["n_not_observed"].iloc[0] == 2
    pt = shipped.pt.set_index("patient_id")
    # severe CRS from its first day at grade >= 3 in the ASTCT-graded daily record; never severe -> missing
    onset = pt.loc[pt["severe_crs"].fillna(False).astype(bool), "severe_crs_onset_day"]
    assert onset.notna().all() and pt.loc[~pt["severe_crs"].fillna(False).astype(bool), "severe_crs_onset_day"].isna().all()
    assert (onset <= pt.loc[onset.index, "os_days"]).all()
    # two early deaths peak at their last sample (days 10 and 7) before dying inside the window
    assert pt.loc[pt["peak_not_observed"].fillna(False).astype(bool), "peak_day"].tolist() == [10.0, 7.0]


@pytest.fixture(scope="module")
def rendered(shipped, other) -> dict:
    """Every section's page text (Markdown and table HTML text) on both cohorts, computed once."""
    out = {}
    for key, page in (("shipped", shipped), ("other", other)):
        for name in SECTIONS:
            out[key, name] = _page_text(getattr(sr, name)(page))
            plt.close("all")
    return out


def test_every_section_renders_on_the_shipped_cohort(rendered):
    for name in SECTIONS:
        text = rendered["shipped", name]
        assert "inf" not in text.replace("infusion", "").replace("infection", "").lower().split()
        assert "nan" not in text.split() and "p = ," not in text and "p = ." not in text


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    from helpers.__main__ import main

    out = tmp_path_factory.mktemp("other") / "cohort"
    assert main(["simulate", "--n", "40", "--seed", "7", "--out", str(out)]) == 0
    yml = out / "cohort.yml"
    yml.write_text(yml.read_text().replace("simulated: true", "simulated: false"))
    p = pd.read_csv(out / "patients.csv")
    p.drop(columns=["hsct_day"]).to_csv(out / "patients.csv", index=False)
    (out / "kinetics.csv").unlink()
    return sr.open_chapter(str(out), tmp_path_factory.mktemp("tables2"), landmark_day=21)


def test_sections_on_another_cohort_follow_its_data(other, rendered):
    texts = {name: rendered["other", name] for name in SECTIONS}
    joined = "\n".join(texts.values())
    assert "simulated" not in joined.lower()
    assert "24 patients" not in joined and "16 responders" not in joined
    assert texts["expansion"].lstrip().startswith("> **Skipped")
    assert texts["hsct"].lstrip().startswith("> **Skipped")
    n = len(other.data.patients)
    assert f"With {n} patients" in texts["conclusions"]
    assert sr.landmark(other) == 21.0


def test_peak_timing_by_hand():
    from helpers import derive

    kin = pd.DataFrame({"patient_id": ["A"] * 3 + ["B"] * 3 + ["C"] * 2,
                        "day": [0.0, 4, 7, 0, 7, 14, 0, 7],
                        "car_copies_per_ug_dna": [1.0, 10, 100, 1, 50, 20, 1, 30]})
    pt = pd.DataFrame({"patient_id": ["A", "B", "C"], "os_days": [8.0, 15, 400], "os_event": [1, 1, 0]})
    out = derive.peak_timing(kin, pt).set_index("patient_id")
    # A peaks at its last sample (7) and died on day 8: not observed; B peaked on 7, before its last sample;
    # C peaks at its last sample but is alive: its expansion was not cut short by death
    assert out["peak_day"].tolist() == [7.0, 7.0, 7.0]
    assert out["peak_not_observed"].tolist() == [True, False, False]


def test_cohort_without_remission_days_assumes_the_landmark(tmp_path):
    from helpers.__main__ import main

    out = tmp_path / "c"
    assert main(["simulate", "--n", "30", "--seed", "3", "--out", str(out)]) == 0
    p = pd.read_csv(out / "patients.csv")
    p.drop(columns=["remission_day"]).to_csv(out / "patients.csv", index=False)
    page = sr.open_chapter(str(out), tmp_path / "t")
    text = sr.remission_timing(page).text()
    assert "does not record the day remission was documented" in text and "Warning" not in text
    tidy = sr.corrected_remission_hr(page.data, "os")
    tidy = tidy.set_index("analysis")
    # every responder switches at the landmark: before it nobody is exposed, so time-varying = landmark
    assert tidy.loc["time-varying", "hr"] == pytest.approx(tidy.loc["landmark", "hr"], rel=1e-6)
    assert tidy.loc["landmark", "late"] == 0


def _page_text(out) -> str:
    import re

    text = out.text() if hasattr(out, "text") else out.markdown()
    for t in getattr(out, "tables", lambda: [])():
        body = re.sub(r"<style.*?</style>", "", t.html[t.html.find("<table"):], flags=re.S)
        text += " " + re.sub(r"<[^>]+>", " ", body)
    return text


def test_no_code_names_or_inf_reach_the_page(rendered):
    import re

    for (_, name), text in rendered.items():
        bad = set(re.findall(r"\b[a-z0-9]+_[a-z0-9_]+\b", text.replace("`", " ")))
        bad |= set(re.findall(r"\b(?:inf|nan|NaN|True|False|None)\b", text))
        # column names may appear only inside a skip note, quoted as code
        assert not bad or "Skipped" in text, (name, bad)
