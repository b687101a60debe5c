"""B-cell aplasia, the pharmacodynamic marker of CD19 CAR-T persistence, and its relation to relapse.

From the optional analytes `cd19_b_cells` (cells/uL) and `igg` (g/L) of `labs`. A post-infusion sample
below `BcellOptions.aplasia_below` is aplastic. There is no single published absolute cut-off: trials more
often use a share of lymphocytes (< 1-3 % CD19+ of lymphocytes, e.g. Maude et al., NEJM 2014 and 2018),
which needs the lymphocyte count the contract does not hold; the default < 10 cells/uL is the book's
stated choice. B-cell recovery (loss of aplasia) = the first sample at or above the cut-off after aplasia
began; duration of aplasia runs from day 0 to recovery, censored at the last sample when aplasia is ongoing.
Relation to relapse by landmark (Anderson, Cain & Gelber, J Clin Oncol 1983): patients in remission, alive
and relapse-free at the landmark day, grouped by whether B cells had recovered by then; relapse-free
survival after the landmark by Kaplan-Meier with a log-rank test. Hypogammaglobulinaemia: IgG below
`BcellOptions.hypogamma_below` (4 g/L, the usual threshold for IgG replacement; source beside it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BcellOptions:
    """The aplasia cut-off and the landmark day, both stated in the chapter."""

    aplasia_below: float = 10.0  # cells/uL
    landmark_day: float = 90.0  # B-cell recovery is typically assessed over the first months
    # g/L (400 mg/dL): below it IgG replacement is considered after CD19 CAR-T, with serious or recurrent
    # infections (Hill JA, Giralt S, Torgerson TR, Lazarus HM, Blood Rev 2019, as restated in reviews and the 2022
    # AAAAI work group report). The EBMT/JACIE/EHA recommendations (Hayden PJ et al., Ann Oncol 2022;33:259-275)
    # are commonly cited for the same cut-off; not read in the primary source.
    hypogamma_below: float = 4.0


def _samples(labs: pd.DataFrame | None, analytes: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """Post-infusion values of each analyte, sorted by patient and day (the labs table scanned once for all)."""
    empty = pd.DataFrame({"patient_id": [], "day": [], "value": []})
    if labs is None or "analyte" not in labs.columns:
        return {a: empty for a in analytes}
    s = labs[labs["analyte"].isin(analytes) & (labs["day"] >= 0)].dropna(subset=["value"])
    s = s.sort_values(["patient_id", "day"], kind="stable")
    return {a: s.loc[s["analyte"] == a, ["patient_id", "day", "value"]] for a in analytes}


def _first_day(s: pd.DataFrame, mask: pd.Series, ids: pd.Index) -> pd.Series:
    """Per patient (`ids`), the first day among the samples in `mask` (s sorted by day); NaN when none."""
    return s.loc[mask].groupby("patient_id", sort=True)["day"].first().reindex(ids).astype(float)


def _course(s: pd.DataFrame, below: float) -> pd.DataFrame:
    """The per-patient course of `aplasia_course` from its sorted B-cell samples (non-empty), all patients at once."""
    by = s.groupby("patient_id", sort=True)["day"]
    out = pd.DataFrame({"n_samples": by.size(), "first_sample_day": by.first().astype(float),
                        "last_sample_day": by.last().astype(float)})
    low = s["value"] < below
    out["aplasia_onset_day"] = _first_day(s, low, out.index)
    onset = s["patient_id"].map(out["aplasia_onset_day"])
    out["recovery_day"] = _first_day(s, ~low & (s["day"] > onset), out.index)  # first count back above, after onset
    out["aplasia"] = out["aplasia_onset_day"].notna()
    out["recovered"] = out["recovery_day"].notna()
    out["duration_days"] = out["recovery_day"].where(out["recovered"], out["last_sample_day"]).where(out["aplasia"])
    return out.rename_axis("patient_id").reset_index()


def aplasia_course(labs: pd.DataFrame | None, options: BcellOptions = BcellOptions()) -> pd.DataFrame:
    """Per patient with B-cell counts: n_samples, first_sample_day, aplasia (any aplastic sample), aplasia_onset_day,
    recovery_day (NaN while ongoing), last_sample_day, duration_days (to recovery or last sample),
    recovered (event flag of the duration), igg_min and hypogamma (IgG below the cut-off after day 0)."""
    samples = _samples(labs, ("cd19_b_cells", "igg"))
    s = samples["cd19_b_cells"]
    cols = ["patient_id", "n_samples", "first_sample_day", "aplasia", "aplasia_onset_day", "recovery_day",
            "last_sample_day", "duration_days", "recovered"]
    out = _course(s, options.aplasia_below)[cols] if len(s) else pd.DataFrame([], columns=cols)
    igg = samples["igg"].groupby("patient_id")["value"].min().rename("igg_min")
    out = out.merge(igg, on="patient_id", how="left")
    out["hypogamma"] = out["igg_min"] < options.hypogamma_below
    return out


def landmark_relapse(course: pd.DataFrame, patients: pd.DataFrame, remission: pd.Series,
                     options: BcellOptions = BcellOptions()) -> tuple[pd.DataFrame, dict]:
    """Landmark data and test: patients in remission (boolean Series on patient_id), alive and relapse-free beyond
    the landmark, with a B-cell count on or before it; 'ongoing aplasia' when aplasia began and had not ended by
    the landmark, 'B cells present' otherwise (recovered, or never aplastic: early loss of CAR-T function).

    Returns (frame with patient_id, group, rfs_days since the landmark, rfs_event; the log-rank result dict,
    or an empty dict when a group is empty). Relapse-free survival = the PFS columns.
    """
    from helpers.survival import logrank

    lm = options.landmark_day
    p = patients[["patient_id", "pfs_days", "pfs_event"]].merge(course, on="patient_id", how="inner")
    first = _samples_first_day(course)
    p = p[p["patient_id"].map(remission).fillna(False).astype(bool).to_numpy()]
    p = p[(p["pfs_days"] > lm) & (p["patient_id"].map(first) <= lm)]
    ongoing = p["aplasia"] & (p["aplasia_onset_day"] <= lm) & ~(p["recovered"] & (p["recovery_day"] <= lm))
    d = pd.DataFrame({"patient_id": p["patient_id"], "group": np.where(ongoing, "ongoing aplasia", "B cells present"),
                      "rfs_days": p["pfs_days"].astype(float) - lm, "rfs_event": p["pfs_event"].astype(int)})
    d = d.reset_index(drop=True)
    test = logrank(d, "rfs_days", "rfs_event", "group") if d["group"].nunique() == 2 else {}
    return d, test


def _samples_first_day(course: pd.DataFrame) -> pd.Series:
    """First post-infusion B-cell sample day per patient (kept by aplasia_course)."""
    return course.set_index("patient_id")["first_sample_day"]


def relapse_by_group(landmarked: pd.DataFrame) -> pd.DataFrame:
    """Per landmark group: n, relapses or deaths after the landmark (k_events), median follow-up days after it."""
    g = landmarked.groupby("group", sort=True)
    return pd.DataFrame({"n": g.size(), "k_events": g["rfs_event"].sum().astype(int),
                         "median_days_after_landmark": g["rfs_days"].median()}).reset_index()
