"""Tests of helpers.survival_report (chapter composition) on small hand-built data with known answers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from helpers import survival as sv
from helpers import survival_report as sr

pytestmark = pytest.mark.filterwarnings("error")

# Eight patients: four responders (R) and four non-responders (N); P08 (a responder) dies on day 10,
# before the day-28 landmark.
PT = pd.DataFrame({
    "patient_id": [f"P0{i}" for i in range(1, 9)],
    "remission": [True, True, True, False, False, False, False, True],
    "os_days": [400.0, 300, 150, 60, 90, 250, 20, 10],
    "os_event": pd.array([0, 1, 1, 1, 1, 0, 1, 1], dtype="Int64"),
    "severe_crs": pd.array([False, True, False, True, False, False, True, False], dtype="boolean"),
    "product_em_pct": [30.0, 35, 32, 40, 45, 38, 50, 33],
    "hsct_day": [100.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
})


def test_model_frame_codes_binaries_and_the_assumed_remission_day():
    d = sr.model_frame(PT, 28)
    assert d["remission"].tolist() == [1.0, 1, 1, 0, 0, 0, 0, 1]
    assert d["severe_crs"].tolist() == [0.0, 1, 0, 1, 0, 0, 1, 0]
    # assumption: every responder in remission from the landmark (28), others never
    assert d["remission_day"].notna().sum() == 4 and (d.loc[d["remission"] == 1, "remission_day"] == 28).all()
    assert d["remission_group"].tolist()[:4] == ["Remission (CR/CRi)"] * 3 + ["No remission"]


def test_endpoints_and_candidates_follow_the_columns():
    assert sr.endpoints(PT) == {"os": "Overall survival"}
    have, absent = sr.available_candidates(sr.model_frame(PT, 28))
    assert have == ["severe_crs", "product_em_pct", "remission"]
    assert "log10_peak" in absent and "age_years" in absent


def test_remission_bias_landmark_drops_early_deaths_and_equals_time_varying():
    d = sr.model_frame(PT, 28)
    bias = sr.remission_bias(d, "os", 28)
    naive, lm, tv = (bias.iloc[i] for i in range(3))
    # naive: all 8 patients, 6 deaths
    assert (naive["n"], naive["events"]) == (8, 6)
    # landmark: P07 (day 20) and P08 (day 10) died before day 28 -> 6 patients, 4 deaths (P02-P05)
    assert (lm["n"], lm["events"]) == (6, 4)
    # every patient unexposed before day 28: the time-varying partial likelihood equals the landmark one
    assert tv["hr"] == pytest.approx(lm["hr"], rel=1e-6)
    assert tv["ci_high"] == pytest.approx(lm["ci_high"], rel=1e-6)
    # P08, a responder who died at day 10, counts as exposed in the naive model only: naive HR lower
    assert naive["hr"] != pytest.approx(lm["hr"], rel=1e-3)


def test_published_model_drops_absent_covariates_and_names_them():
    d = sr.model_frame(PT, 28)  # no log10_peak column (no kinetics)
    mv = sr.published_model(d, "os")
    assert mv["term"].tolist() == ["severe_crs", "product_em_pct"]
    assert (mv["model"] == "as published without log10_peak").all()
    direct = sv.cox_table(d, "os_days", "os_event", ["severe_crs", "product_em_pct"])
    np.testing.assert_allclose(mv["coef"], direct["coef"], rtol=0, atol=1e-12)
    empty = sr.published_model(d.drop(columns=["severe_crs", "product_em_pct"]), "os")
    assert empty.empty and "hr" in empty.columns


def test_hsct_censoring_changes_only_the_transplanted_patient():
    d = sr.model_frame(PT, 28)
    c = sr.hsct_censored(d, "os")
    # P01 alive at 400 with HSCT on day 100 -> censored at 100; everyone else unchanged
    assert c["os_days"].tolist() == [100.0, 300, 150, 60, 90, 250, 20, 10]
    assert c["os_event"].tolist() == d["os_event"].tolist()


def test_epv_sentence_warns_below_ten():
    d = sr.model_frame(PT, 28)
    text = sr.epv_sentence(sr.published_model(d, "os"))
    # 6 deaths / 2 parameters = 3.0
    assert "6 events / 2 parameters = 3.0" in text and "Warning: EPV below 10" in text
    big = pd.DataFrame({"events": [40, 40]})
    assert "Warning" not in sr.epv_sentence(big)  # 40 / 2 = 20


def test_texts_format_limits_and_p_values():
    assert sr.days(math.inf) == "not reached" and sr.days(182.4) == "182 days"
    assert sr.p_text(0.0004) == "p < 0.001" and sr.p_text(0.0123) == "p = 0.012"
    assert sr.pct_ci(0.5, 0.29, 0.68) == "50% (95% CI 29-68%)"
    row = pd.Series({"hr": 0.2108, "ci_low": 0.0628, "ci_high": 0.708, "p_value": 0.0118})
    assert sr.hr_text(row) == "HR 0.21 (95% CI 0.06-0.71), p = 0.012"


def test_km_sentence_by_hand():
    # OS of PT: deaths at 10, 20, 60, 90, 150, 300; censored at 250, 400.
    # t=10 7/8, t=20 6/8, t=60 5/8, t=90 4/8 = 0.5, flat until 150 -> median = (90 + 150) / 2 = 120
    km = sr.km_table(sr.model_frame(PT, 28), {"os": "Overall survival"}, None, (100,))
    text = sr.km_sentence(km, (100,))
    assert text.startswith("**Overall survival**: 6 events in 8 patients; median 120 days")
    assert "at day 100 50%" in text


def test_peaks_after_landmark_counts_first_maximum_day():
    kin = pd.DataFrame({"patient_id": ["P01"] * 3 + ["P02"] * 3, "day": [7.0, 14, 35, 7, 14, 35],
                        "car_copies_per_ug_dna": [10.0, 100, 50, 10, 20, 30]})
    # P01 peaks on day 14, P02 on day 35 (> 28)
    assert sr.peaks_after(kin, 28) == 1 and sr.peaks_after(None, 28) == 0


def test_r_reference_frame_hash_is_deterministic_and_sensitive():
    d = sr.r_reference_frame(PT, 28)
    assert sr.sha256(d) == sr.sha256(sr.r_reference_frame(PT.copy(), 28))
    changed = PT.assign(os_days=PT["os_days"].where(PT.index != 0, 401.0))
    assert sr.sha256(sr.r_reference_frame(changed, 28)) != sr.sha256(d)
    assert sr.csv_bytes(d).splitlines()[0].startswith(b"patient_id,os_days,os_event")


def test_recorded_remission_day_is_used_and_late_remission_counts_as_none_at_the_landmark():
    """P01 documented in remission on day 14, P02 on day 35 (after the day-28 landmark), P03 not recorded."""
    pt = PT.assign(remission_day=[14.0, 35.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan])
    d = sr.model_frame(pt, 28)
    # recorded days kept; the unrecorded responders (P03, P08) get the landmark day
    assert d["remission_day"].tolist()[:3] == [14.0, 35.0, 28.0] and d["remission_day"].iat[7] == 28.0
    lm = sr.landmark_frame(d, "os", 28)
    # P07 (day 20) and P08 (day 10) died before the landmark and drop out; P02 is alive at 28 but its
    # remission was documented on day 35, so at the landmark it counts as no remission.
    assert lm["patient_id"].tolist() == ["P01", "P02", "P03", "P04", "P05", "P06"]
    assert lm["remission"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert lm["remission_group"].iat[1] == "No remission"
    # time-varying model: P02 contributes (0, 35] unexposed and (35, 300] exposed
    cp = sv.counting_process(d, "os_days", "os_event", "remission", "remission_day")
    p02 = cp[cp["patient_id"] == "P02"][["start", "stop", "remission"]].values.tolist()
    assert p02 == [[0.0, 35.0, 0.0], [35.0, 300.0, 1.0]]


def test_remission_timing_sentence_says_recorded_or_assumed():
    assumed = sr.model_frame(PT.assign(remission_day_assumed=PT["remission"]), 28)
    assert sr.remission_timing_sentence(assumed, 28).startswith(
        "**Remission day.** This cohort does not record the day remission was documented, so every responder "
        "is assumed to be in remission from the landmark, day 28")
    rec = PT.assign(remission_day=[14.0, 35.0, 21, np.nan, np.nan, np.nan, np.nan, 7],
                    remission_day_assumed=[False] * 8)
    assert sr.remission_timing_sentence(sr.model_frame(rec, 28), 28) == (
        "**Remission day.** The day remission was documented is recorded for 4 of the 4 responders. 1 responder "
        "was documented after the day-28 landmark and counts as not (yet) in remission in the landmark analysis, "
        "while the time-varying model moves each patient to the remission group on the recorded day, so the two "
        "estimates differ.")
