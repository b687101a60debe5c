"""Early haematotoxicity after CAR-T: early ICAHT grade (days 0-30) and the CAR-HEMATOTOX baseline score.

Early ICAHT, EHA/EBMT consensus grading table (Rejeski K et al., Blood 2023;142:865-877), from the days with
ANC <= 0.5 and <= 0.1 x 10^9/L in days 0-30 (thresholds and counts: `IcahtOptions`):

    ANC <= 500/uL: 1-6 days grade 1; 7-13 days grade 2; 14-30 days grade 3; > 30 days (the whole window) grade 4
    ANC <= 100/uL: >= 7 days grade 3; >= 14 days grade 4; the higher of the two rows is the grade.

From the consensus: days are cumulative below the threshold (not necessarily consecutive); a recovery above
it lasting fewer than 3 days (non-stable) counts to the total; the count is censored at disease progression,
a subsequent line of therapy, or death. Here the count runs through the day of death or last contact
(`os_days`) and of a documented relapse or progression (`pfs_days` with `pfs_event` 1; absent columns: not
censored), and up to the day before allo-HSCT (`hsct_day`, the subsequent therapy the contract records).

The book's choice, not the consensus's (which grades daily counts): an unmeasured day takes the state of the
measurements on both sides when they agree (both at/below or both above the threshold); otherwise, and before
the first or after the last measurement, the day is undetermined. The grade is computed with every
undetermined day read as neutropenic and as not neutropenic; when the two grades differ the patient is "too
sparse to grade" (both bounds are kept).

CAR-HEMATOTOX (Rejeski K et al., Blood 2021;138:2499-2513), baseline before lymphodepletion: platelets
< 75 x 10^9/L 2 points, 75-175 1, > 175 0; ANC < 1.2 x 10^9/L 1; haemoglobin < 90 g/L (9.0 g/dL) 1;
CRP >= 30 mg/L (3.0 mg/dL) 1; ferritin > 2000 ng/mL 2, 650-2000 1, < 650 0. Score 0-7; 0-1 low risk,
>= 2 high risk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

HEMATOTOX_ANALYTES: tuple[str, ...] = ("platelets", "anc", "hemoglobin", "crp", "ferritin")
DEFAULT_LYMPHODEPLETION_DAY = -5.0  # Rejeski 2021: baseline at day -5, before fludarabine/cyclophosphamide


@dataclass(frozen=True)
class IcahtOptions:
    """Early ICAHT thresholds (Rejeski et al., Blood 2023) and the book's gap rule."""

    first_day: int = 0
    last_day: int = 30
    severe_anc: float = 0.5  # x 10^9/L, ANC <= 500/uL
    profound_anc: float = 0.1  # x 10^9/L, ANC <= 100/uL
    severe_days: tuple[int, int, int, int] = (1, 7, 14, 31)  # grades 1-4 from days <= 0.5 (> 30 days = 31)
    profound_days: tuple[int, int] = (7, 14)  # grades 3 and 4 from days <= 0.1
    stable_recovery_days: int = 3  # a recovery shorter than this counts as neutropenic
    severe_grade: int = 3  # severe early ICAHT = grade 3-4 (Rejeski 2023)


def _day_states(days: np.ndarray, values: np.ndarray, grid: np.ndarray, threshold: float) -> np.ndarray:
    """Per grid day: 1 at/below threshold, 0 above, NaN undetermined (neighbours disagree or are absent).

    `days` are sorted and unique (one value per day, the lowest of that day)."""
    below = (values <= threshold).astype(float)
    pos = np.searchsorted(days, grid)  # first sample on or after each grid day
    hit = (pos < len(days)) & (days[np.minimum(pos, len(days) - 1)] == grid)
    left = np.where(pos > 0, below[np.maximum(pos - 1, 0)], np.nan)
    right_pos = np.where(hit, pos + 1, pos)
    right = np.where(right_pos < len(days), below[np.minimum(right_pos, len(days) - 1)], np.nan)
    between = np.where(left == right, left, np.nan)
    return np.where(hit, below[np.minimum(pos, len(days) - 1)], between)


def _fill_transient(state: np.ndarray, stable_days: int) -> np.ndarray:
    """Recoveries (0) shorter than `stable_days` between two neutropenic days (1) count as neutropenic."""
    s = state.copy()
    idx = np.flatnonzero(s == 1)
    for a, b in zip(idx[:-1], idx[1:]):
        if 0 < b - a - 1 < stable_days:
            s[a + 1:b] = 1
    return s


def icaht_grade(days_severe: int, days_profound: int, o: "IcahtOptions" = IcahtOptions()) -> int:
    """Early ICAHT grade from the day counts at/below 0.5 and 0.1 x 10^9/L (Rejeski 2023)."""
    g = sum(days_severe >= k for k in o.severe_days)
    g3, g4 = o.profound_days
    return int(max(g, 4 if days_profound >= g4 else (3 if days_profound >= g3 else 0)))


def _counts(state: np.ndarray, fill: float, o: IcahtOptions) -> int:
    """Neutropenic days with undetermined days read as `fill`, after the transient-recovery rule."""
    s = np.where(np.isnan(state), fill, state)
    return int(_fill_transient(s, o.stable_recovery_days).sum())


def _window_end(patients: pd.DataFrame, o: IcahtOptions) -> pd.Series:
    """Last day counted per patient: day 30, death or last contact, a documented relapse or progression
    (a PFS event: pfs_event 1 on pfs_days), or the day before allo-HSCT."""
    p = patients.set_index("patient_id")
    end = pd.Series(float(o.last_day), index=p.index)
    if "os_days" in p.columns:
        end = np.minimum(end, p["os_days"].astype(float).fillna(np.inf))
    if {"pfs_days", "pfs_event"} <= set(p.columns):
        failed = p["pfs_event"].astype("Int64").eq(1).fillna(False).to_numpy(dtype=bool)
        end = np.minimum(end, p["pfs_days"].astype(float).where(failed, np.inf).fillna(np.inf))
    if "hsct_day" in p.columns:
        end = np.minimum(end, p["hsct_day"].astype(float).fillna(np.inf) - 1)
    return end


def _anc_by_patient(anc: pd.DataFrame) -> dict:
    """{patient: (sorted days, the lowest ANC of each day)} with one sort and split (no per-patient pandas)."""
    lowest = anc.groupby(["patient_id", "day"], observed=True, sort=True)["value"].min().reset_index()
    pid = lowest["patient_id"].to_numpy()
    cut = np.flatnonzero(pid[1:] != pid[:-1]) + 1
    days = np.split(lowest["day"].to_numpy(dtype=float), cut)
    values = np.split(lowest["value"].to_numpy(dtype=float), cut)
    starts = np.r_[0, cut] if len(pid) else np.array([], dtype=int)
    return {pid[i]: (d, v) for i, d, v in zip(starts, days, values)}


def early_icaht(labs: pd.DataFrame | None, patients: pd.DataFrame, options: IcahtOptions = IcahtOptions()) -> pd.DataFrame:
    """Per patient: window_end, n_anc (ANC values in the window), days_le_0_5_min/max, days_le_0_1_min/max,
    grade_low, grade_high, grade (Int64; missing unless both bounds agree) and status ('graded',
    'too sparse to grade', 'no ANC in days 0-30')."""
    o = options
    anc = labs[labs["analyte"] == "anc"].dropna(subset=["value"]) if labs is not None and "analyte" in labs.columns \
        else pd.DataFrame({"patient_id": [], "day": [], "value": []})
    by_patient = _anc_by_patient(anc)
    end = _window_end(patients, o).to_dict()
    rows = []
    empty = (np.array([]), np.array([]))
    for pid in patients["patient_id"]:
        d, v = by_patient.get(pid, empty)
        grid = np.arange(o.first_day, min(o.last_day, end[pid]) + 1, dtype=float)
        n_in = int(((d >= o.first_day) & (d <= grid.max())).sum()) if len(grid) else 0
        row = {"patient_id": pid, "window_end": float(grid.max()) if len(grid) else np.nan, "n_anc": n_in}
        if n_in == 0:
            rows.append({**row, "status": "no ANC in days 0-30"})
            continue
        s5, s1 = (_day_states(d, v, grid, t) for t in (o.severe_anc, o.profound_anc))
        lo5, hi5, lo1, hi1 = _counts(s5, 0, o), _counts(s5, 1, o), _counts(s1, 0, o), _counts(s1, 1, o)
        g_lo, g_hi = icaht_grade(lo5, lo1, o), icaht_grade(hi5, hi1, o)
        rows.append({**row, "days_le_0_5_min": lo5, "days_le_0_5_max": hi5, "days_le_0_1_min": lo1,
                     "days_le_0_1_max": hi1, "grade_low": g_lo, "grade_high": g_hi,
                     "grade": g_lo if g_lo == g_hi else pd.NA,
                     "status": "graded" if g_lo == g_hi else "too sparse to grade"})
    cols = ["patient_id", "window_end", "n_anc", "days_le_0_5_min", "days_le_0_5_max", "days_le_0_1_min",
            "days_le_0_1_max", "grade_low", "grade_high", "grade", "status"]
    out = pd.DataFrame(rows).reindex(columns=cols)
    return out.astype({"grade": "Int64", "grade_low": "Int64", "grade_high": "Int64"})


def icaht_distribution(icaht: pd.DataFrame, options: IcahtOptions = IcahtOptions()) -> pd.DataFrame:
    """Graded patients by early ICAHT grade 0-4 and severe (grade >= 3) with a Clopper-Pearson exact CI:
    what, k, n, estimate, ci_low, ci_high; plus the counts too sparse to grade and without ANC (k only)."""
    from helpers.stats import proportion

    g = icaht.loc[icaht["status"] == "graded", "grade"].astype(int)
    rows = []
    for what, k in [*((f"grade {i}", int((g == i).sum())) for i in range(5)),
                    (f"severe (grade >= {options.severe_grade})", int((g >= options.severe_grade).sum()))]:
        p = proportion(k, len(g), what) if len(g) else {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan}
        rows.append({"what": what, "k": k, "n": len(g), "estimate": p["estimate"], "ci_low": p["ci_low"],
                     "ci_high": p["ci_high"]})
    for status in ("too sparse to grade", "no ANC in days 0-30"):
        rows.append({"what": status, "k": int((icaht["status"] == status).sum()), "n": len(icaht),
                     "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan})
    return pd.DataFrame(rows)


def _baseline_values(labs: pd.DataFrame, patients: pd.DataFrame, lookback_days: float) -> pd.DataFrame:
    """Last value of each CAR-HEMATOTOX analyte on or before the lymphodepletion day (within lookback)."""
    ld = pd.Series(DEFAULT_LYMPHODEPLETION_DAY, index=patients["patient_id"])
    if "lymphodepletion_day" in patients.columns:
        ld = patients.set_index("patient_id")["lymphodepletion_day"].astype(float).fillna(DEFAULT_LYMPHODEPLETION_DAY)
    lab = labs[labs["analyte"].isin(HEMATOTOX_ANALYTES)].copy()
    lab["ld"] = lab["patient_id"].map(ld)
    lab = lab[(lab["day"] <= lab["ld"]) & (lab["day"] >= lab["ld"] - lookback_days)].dropna(subset=["value"])
    last = lab.sort_values("day").groupby(["patient_id", "analyte"], observed=True)["value"].last()
    wide = last.unstack("analyte").reindex(index=patients["patient_id"], columns=list(HEMATOTOX_ANALYTES))
    return wide.assign(lymphodepletion_day=ld.reindex(wide.index).to_numpy())


def hematotox_points(platelets, anc, hemoglobin, crp, ferritin) -> np.ndarray:
    """CAR-HEMATOTOX score (Rejeski 2021) from values in contract units; NaN when an input is missing."""
    plt_, anc, hb, crp, fer = (np.asarray(x, dtype=float) for x in (platelets, anc, hemoglobin, crp, ferritin))
    score = (np.select([plt_ < 75, plt_ <= 175], [2, 1], 0) + (anc < 1.2) + (hb < 90) + (crp >= 30)
             + np.select([fer > 2000, fer >= 650], [2, 1], 0)).astype(float)
    missing = np.isnan(plt_) | np.isnan(anc) | np.isnan(hb) | np.isnan(crp) | np.isnan(fer)
    return np.where(missing, np.nan, score)


def hematotox(labs: pd.DataFrame | None, patients: pd.DataFrame, lookback_days: float = 7.0) -> pd.DataFrame:
    """Per patient: the five baseline values, lymphodepletion_day, score (0-7, NaN when an input is missing),
    risk ('low' 0-1, 'high' >= 2, 'inputs incomplete')."""
    if labs is None or labs.empty:
        labs = pd.DataFrame({"patient_id": [], "day": [], "analyte": [], "value": []})
    b = _baseline_values(labs, patients, lookback_days)
    score = hematotox_points(*(b[a].to_numpy() for a in HEMATOTOX_ANALYTES))
    risk = np.where(np.isnan(score), "inputs incomplete", np.where(score >= 2, "high", "low"))
    return b.assign(score=score, risk=risk).rename_axis("patient_id").reset_index().rename_axis(columns=None)


def icaht_by_risk(icaht: pd.DataFrame, risk: pd.DataFrame, options: IcahtOptions = IcahtOptions()) -> pd.DataFrame:
    """Severe early ICAHT by CAR-HEMATOTOX risk group among graded patients (Fisher exact test):
    risk, n, k_severe, p_value (same on every row)."""
    from helpers.stats import fisher_or

    m = icaht[icaht["status"] == "graded"].merge(risk[["patient_id", "risk"]], on="patient_id")
    m = m[m["risk"].isin(["low", "high"])]
    sev = m["grade"].astype(int) >= options.severe_grade
    rows = [{"risk": r, "n": int((m["risk"] == r).sum()), "k_severe": int(sev[m["risk"] == r].sum())}
            for r in ("low", "high")]
    t = np.array([[rows[1]["k_severe"], rows[1]["n"] - rows[1]["k_severe"]],
                  [rows[0]["k_severe"], rows[0]["n"] - rows[0]["k_severe"]]])
    p = fisher_or(t)[3] if (t.sum(axis=1) > 0).all() else np.nan
    return pd.DataFrame(rows).assign(p_value=p, test="Fisher exact, severe ICAHT by CAR-HEMATOTOX risk")
