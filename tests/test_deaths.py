"""Causes of death and NRM counts on a hand-built cohort."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import deaths


def cohort() -> pd.DataFrame:
    # P01 CRS death day 10; P02 infection day 80 in remission; P03 relapse day 50, died of relapse day 200;
    # P04 relapse day 60 then infection death day 90 (not NRM: prior relapse); P05 alive at 500;
    # P06 alive, last contact day 70; P07 died day 400, cause blank, no prior relapse (NRM)
    return pd.DataFrame({
        "patient_id": [f"P0{i}" for i in range(1, 8)],
        "os_days": [10, 80, 200, 90, 500, 70, 400.0], "os_event": [1, 1, 1, 1, 0, 0, 1],
        "pfs_days": [10, 80, 50, 60, 500, 70, 400.0], "pfs_event": [1, 1, 1, 1, 0, 0, 1],
        "death_cause": ["crs", "infection", "relapse", "infection", None, None, None]})


def test_causes_of_death_counts_and_timing():
    t = deaths.causes_of_death(cohort()).set_index("cause")
    assert t.index.tolist() == ["relapse", "crs", "infection", "other", "icans", "not recorded", "all causes"]
    assert t.loc["infection", "n_deaths"] == 2 and t.loc["infection", "median_day"] == 85.0
    assert t.loc["crs", "days 0-30"] == 1 and t.loc["infection", "days 31-100"] == 2
    assert t.loc["relapse", "days 101-365"] == 1 and t.loc["not recorded", "after day 365"] == 1
    assert t.loc["all causes", "n_deaths"] == 5 and t.loc["other", "n_deaths"] == 0
    assert np.isnan(t.loc["other", "median_day"])


def test_nrm_counts_at_day_100_and_1_year():
    n = deaths.nrm_counts(cohort()).set_index("day")
    assert n.loc[100.0, ["nrm_deaths", "other_deaths", "followed_past", "censored_before"]].tolist() == [2, 1, 3, 1]
    assert n.loc[365.0, ["nrm_deaths", "other_deaths", "followed_past", "censored_before"]].tolist() == [2, 2, 2, 1]
    assert deaths.nrm_deaths(cohort()).tolist() == [True, True, False, False, False, False, True]


def test_without_death_cause_column():
    p = cohort().drop(columns=["death_cause", "pfs_days", "pfs_event"])
    t = deaths.causes_of_death(p).set_index("cause")
    assert t.loc["not recorded", "n_deaths"] == 5
    assert deaths.nrm_counts(p)["nrm_deaths"].tolist() == [3, 4]
