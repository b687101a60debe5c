"""B-cell aplasia course and its landmark relation to relapse, on hand-built profiles."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import bcell


def labs() -> pd.DataFrame:
    rows = []
    profiles = {"P01": {-5: 200, 14: 2, 28: 1, 90: 3, 180: 5},      # aplastic from 14, ongoing at 180
                "P02": {14: 5, 28: 4, 60: 40, 90: 120},             # aplastic 14, recovered day 60
                "P03": {14: 80, 28: 150},                           # never aplastic
                "P04": {14: 9.9, 28: 10.0}}                         # 9.9 aplastic, 10.0 not (< 10 cells/uL)
    for pid, prof in profiles.items():
        rows += [{"patient_id": pid, "day": float(d), "analyte": "cd19_b_cells", "value": float(v), "unit": "cells/uL"}
                 for d, v in prof.items()]
    rows += [{"patient_id": "P01", "day": 90.0, "analyte": "igg", "value": 3.2, "unit": "g/L"}]
    return pd.DataFrame(rows)


def test_aplasia_course():
    c = bcell.aplasia_course(labs()).set_index("patient_id")
    assert c.loc["P01", ["aplasia_onset_day", "duration_days", "recovered"]].tolist() == [14.0, 180.0, False]
    assert np.isnan(c.loc["P01", "recovery_day"]) and bool(c.loc["P01", "hypogamma"])
    assert c.loc["P02", ["aplasia_onset_day", "recovery_day", "duration_days", "recovered"]].tolist() == [14.0, 60.0, 60.0, True]
    assert not c.loc["P03", "aplasia"] and np.isnan(c.loc["P03", "duration_days"])
    assert c.loc["P04", ["aplasia_onset_day", "recovery_day"]].tolist() == [14.0, 28.0]
    assert c.loc["P01", "first_sample_day"] == 14.0  # the day -5 sample is baseline


def test_landmark_groups_and_excludes():
    pts = pd.DataFrame({"patient_id": ["P01", "P02", "P03", "P04"], "pfs_days": [400.0, 200.0, 300.0, 80.0],
                        "pfs_event": [0, 1, 1, 1]})
    remission = pd.Series(True, index=pts["patient_id"])
    d, test = bcell.landmark_relapse(bcell.aplasia_course(labs()), pts, remission)
    g = d.set_index("patient_id")
    assert g["group"].to_dict() == {"P01": "ongoing aplasia", "P02": "B cells present", "P03": "B cells present"}
    assert g.loc["P02", "rfs_days"] == 110.0  # P04 relapsed before the landmark: excluded
    assert test["test"] == "log-rank" and test["n"] == 3
    t = bcell.relapse_by_group(d).set_index("group")
    assert t.loc["B cells present", "k_events"] == 2 and t.loc["ongoing aplasia", "k_events"] == 0


def test_no_bcell_analyte():
    c = bcell.aplasia_course(labs()[labs()["analyte"] == "igg"])
    assert c.empty


def _loop_course(labs: pd.DataFrame, below: float = 10.0) -> pd.DataFrame:
    """The definition, one patient at a time (the former loop): onset = first count below the cut-off, recovery =
    first later count at or above it, duration to recovery or, while ongoing, to the last count."""
    s = labs[(labs["analyte"] == "cd19_b_cells") & (labs["day"] >= 0)].dropna(subset=["value"])
    rows = []
    for pid, g in s.sort_values(["patient_id", "day"], kind="stable").groupby("patient_id", sort=True):
        day, low = g["day"].to_numpy(dtype=float), g["value"].to_numpy(dtype=float) < below
        onset = day[low][0] if low.any() else np.nan
        later = day[(day > onset) & ~low] if low.any() else np.array([])
        recovery = later[0] if len(later) else np.nan
        rows.append({"patient_id": pid, "n_samples": len(g), "first_sample_day": day[0], "aplasia": bool(low.any()),
                     "aplasia_onset_day": onset, "recovery_day": recovery, "last_sample_day": day[-1],
                     "duration_days": (recovery if len(later) else day[-1]) if low.any() else np.nan,
                     "recovered": bool(len(later))})
    return pd.DataFrame(rows)


def test_aplasia_course_equals_the_one_patient_at_a_time_definition_on_random_counts():
    # random counts around the cut-off (exactly 10 included), missing values, baseline samples, shuffled rows
    rng = np.random.default_rng(3)
    rows = []
    for i in range(300):
        days = rng.choice(np.arange(-10, 400), size=rng.integers(1, 9), replace=False).astype(float)
        values = rng.choice([0.0, 3.0, 9.99, 10.0, 10.01, 50.0, 300.0, np.nan], size=days.size)
        rows += [{"patient_id": f"R{i:03d}", "day": d, "analyte": "cd19_b_cells", "value": v, "unit": "cells/uL"}
                 for d, v in zip(days, values)]
    lab = pd.DataFrame(rows).sample(frac=1.0, random_state=2).reset_index(drop=True)
    got = bcell.aplasia_course(lab)
    want = _loop_course(lab)
    pd.testing.assert_frame_equal(got.drop(columns=["igg_min", "hypogamma"]), want, check_exact=True)
    assert got["recovered"].any() and (got["aplasia"] & ~got["recovered"]).any() and (~got["aplasia"]).any()
