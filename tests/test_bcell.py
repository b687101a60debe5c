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
