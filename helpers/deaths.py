"""Causes of death with their timing, and counts of non-relapse mortality (NRM) at fixed days.

Cause comes from `death_cause` (relapse, crs, infection, other; blank on a death = not recorded), the day
from `os_days`. NRM death = a death not due to relapse and not preceded by relapse or progression (a
PFS event on the day of death, or no PFS columns), the competing-risk coding of `derive.patient_table`.
The NRM cumulative-incidence curve (Aalen-Johansen, relapse competing) is in the survival chapter; this
module gives the counts behind it: deaths by day, and patients still under follow-up.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.contract import DEATH_CAUSES

NOT_RECORDED = "not recorded"
TIMING_BINS: tuple[tuple[str, float, float], ...] = (
    ("days 0-30", 0, 30), ("days 31-100", 31, 100), ("days 101-365", 101, 365), ("after day 365", 366, np.inf))


def _deaths(patients: pd.DataFrame) -> pd.DataFrame:
    """The patients who died, with their cause ('not recorded' when blank) and day."""
    died = patients[patients["os_event"].astype("Int64").eq(1).fillna(False).to_numpy(dtype=bool)]
    cause = died["death_cause"].astype(object) if "death_cause" in died.columns else pd.Series(np.nan, index=died.index)
    return pd.DataFrame({"patient_id": died["patient_id"], "cause": cause.where(cause.notna(), NOT_RECORDED),
                         "day": died["os_days"].astype(float)})


def causes_of_death(patients: pd.DataFrame) -> pd.DataFrame:
    """One row per cause (the contract's, when any cause is recorded; then 'not recorded'; then 'all causes'):
    n_deaths, n_patients, median_day, min_day, max_day, and the deaths in each timing bin (`TIMING_BINS`)."""
    d = _deaths(patients)
    recorded = "death_cause" in patients.columns and patients["death_cause"].notna().any()
    causes = [*(DEATH_CAUSES if recorded else ()), *([NOT_RECORDED] if (d["cause"] == NOT_RECORDED).any() else [])]
    rows = []
    for cause in [*causes, "all causes"]:
        days = d["day"] if cause == "all causes" else d.loc[d["cause"] == cause, "day"]
        row = {"cause": cause, "n_deaths": len(days), "n_patients": len(patients),
               "median_day": float(days.median()) if len(days) else np.nan,
               "min_day": float(days.min()) if len(days) else np.nan,
               "max_day": float(days.max()) if len(days) else np.nan}
        for label, lo, hi in TIMING_BINS:
            row[label] = int(((days >= lo) & (days <= hi)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def nrm_deaths(patients: pd.DataFrame) -> pd.Series:
    """Boolean per patient: died without relapse as the cause and without a prior relapse/progression."""
    died = patients["os_event"].astype("Int64").eq(1).fillna(False).astype(bool)
    relapse = pd.Series(False, index=patients.index)
    if "death_cause" in patients.columns:
        relapse = patients["death_cause"].eq("relapse").fillna(False).astype(bool)
    prior = pd.Series(False, index=patients.index)
    if {"pfs_days", "pfs_event"} <= set(patients.columns):
        prior = patients["pfs_event"].astype("Int64").eq(1).fillna(False).astype(bool) & (
            patients["pfs_days"].astype(float) < patients["os_days"].astype(float))
    return (died & ~relapse & ~prior).astype(bool)


def nrm_counts(patients: pd.DataFrame, days: tuple[float, ...] = (100.0, 365.0)) -> pd.DataFrame:
    """Per day t: NRM deaths by day t, relapse-related deaths by t, patients alive and followed beyond t, and
    patients censored (alive, last contact) before t: day, n_patients, nrm_deaths, other_deaths, followed_past,
    censored_before. Counts only: the cumulative incidence with its CI is the survival chapter's."""
    nrm = nrm_deaths(patients).to_numpy()
    died = patients["os_event"].astype("Int64").eq(1).fillna(False).to_numpy(dtype=bool)
    t_os = patients["os_days"].astype(float).to_numpy()
    rows = []
    for t in days:
        by_t = died & (t_os <= t)
        rows.append({"day": float(t), "n_patients": len(patients), "nrm_deaths": int((by_t & nrm).sum()),
                     "other_deaths": int((by_t & ~nrm).sum()), "followed_past": int((t_os > t).sum()),
                     "censored_before": int((~died & (t_os <= t)).sum())})
    return pd.DataFrame(rows)
