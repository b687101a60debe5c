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


def _day_states(keys: np.ndarray, below: np.ndarray, owner: np.ndarray, grid_keys: np.ndarray,
                grid_owner: np.ndarray) -> np.ndarray:
    """Per grid day: 1 at/below the threshold, 0 above, NaN undetermined (neighbours disagree or are absent).

    `keys` are the patients' sample days as one sorted key (patient code * span + day, one sample per day),
    `below` whether each sample is at/below the threshold, `owner` its patient code; the grid days are keyed
    the same way, so one search finds each grid day's sample and its neighbours within the same patient."""
    n = len(keys)
    pos = np.searchsorted(keys, grid_keys)  # first sample on or after each grid day
    at = np.minimum(pos, n - 1)
    hit = (pos < n) & (keys[at] == grid_keys)
    before = np.maximum(pos - 1, 0)
    left = np.where((pos > 0) & (owner[before] == grid_owner), below[before], np.nan)
    right_pos = np.where(hit, pos + 1, pos)
    after = np.minimum(right_pos, n - 1)
    right = np.where((right_pos < n) & (owner[after] == grid_owner), below[after], np.nan)
    between = np.where(left == right, left, np.nan)
    return np.where(hit, below[at], between)


def _fill_transient(state: np.ndarray, stable_days: int) -> np.ndarray:
    """Recoveries (0) shorter than `stable_days` between two neutropenic days (1) count as neutropenic;
    one row per patient, days along the columns."""
    idx = np.broadcast_to(np.arange(state.shape[1]), state.shape)
    ones = state == 1
    prev = np.maximum.accumulate(np.where(ones, idx, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(ones, idx, state.shape[1])[:, ::-1], axis=1)[:, ::-1]
    gap = nxt - prev - 1
    short = (state == 0) & (prev >= 0) & (nxt < state.shape[1]) & (gap > 0) & (gap < stable_days)
    return np.where(short, 1.0, state)


def _icaht_grades(days_severe: np.ndarray, days_profound: np.ndarray, o: "IcahtOptions") -> np.ndarray:
    """Early ICAHT grades from arrays of day counts at/below 0.5 and 0.1 x 10^9/L (Rejeski 2023)."""
    g = sum((days_severe >= k).astype(int) for k in o.severe_days)
    g3, g4 = o.profound_days
    return np.maximum(g, np.where(days_profound >= g4, 4, np.where(days_profound >= g3, 3, 0)))


def icaht_grade(days_severe: int, days_profound: int, o: "IcahtOptions" = IcahtOptions()) -> int:
    """Early ICAHT grade from the day counts at/below 0.5 and 0.1 x 10^9/L (Rejeski 2023)."""
    return int(_icaht_grades(np.array([days_severe]), np.array([days_profound]), o)[0])


def _counts(state: np.ndarray, in_window: np.ndarray, fill: float, o: IcahtOptions) -> np.ndarray:
    """Neutropenic days per patient with undetermined days read as `fill`, after the transient-recovery
    rule (days outside the patient's window are 0, and come after it, so they neither count nor bridge)."""
    s = np.where(in_window, np.where(np.isnan(state), fill, state), 0.0)
    return _fill_transient(s, o.stable_recovery_days).sum(axis=1).astype(int)


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


def _anc_samples(anc: pd.DataFrame, codes: pd.Index,
                 o: IcahtOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The lowest ANC of each patient-day, sorted by patient (code in `codes`) and day: (owner code, day,
    value, span), where code * span + day orders the samples and the grid days alike."""
    lowest = anc.groupby(["patient_id", "day"], observed=True, sort=True)["value"].min().reset_index()
    owner = codes.get_indexer(lowest["patient_id"])
    lowest = lowest[owner >= 0]
    owner, day = owner[owner >= 0], lowest["day"].to_numpy(dtype=float)
    span = 2.0 * (max(np.abs(day).max(initial=0.0), abs(o.first_day), abs(o.last_day)) + 1.0)
    order = np.argsort(owner * span + day, kind="stable")
    return owner[order], day[order], lowest["value"].to_numpy(dtype=float)[order], span


def _windows(patients: pd.DataFrame, o: IcahtOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The days first_day..last_day, which of them each patient's window holds (those before
    min(last_day, _window_end) + 1, as np.arange counts them), and each window's last day (NaN if none)."""
    last = np.minimum(float(o.last_day), _window_end(patients, o).to_numpy(dtype=float))
    days = np.arange(o.first_day, o.last_day + 1, dtype=float)
    in_window = days[None, :] < last[:, None] + 1
    held = np.where(in_window, days[None, :], -np.inf).max(axis=1, initial=-np.inf)
    return days, in_window, np.where(np.isfinite(held), held, np.nan)


def early_icaht(labs: pd.DataFrame | None, patients: pd.DataFrame, options: IcahtOptions = IcahtOptions()) -> pd.DataFrame:
    """Per patient: window_end, n_anc (ANC values in the window), days_le_0_5_min/max, days_le_0_1_min/max,
    grade_low, grade_high, grade (Int64; missing unless both bounds agree) and status ('graded',
    'too sparse to grade', 'no ANC in days 0-30'). All patients at once: one row per patient, one column per
    day of the window."""
    o = options
    cols = ["patient_id", "window_end", "n_anc", "days_le_0_5_min", "days_le_0_5_max", "days_le_0_1_min",
            "days_le_0_1_max", "grade_low", "grade_high", "grade", "status"]
    if patients.empty:
        return pd.DataFrame([]).reindex(columns=cols).astype({"grade": "Int64", "grade_low": "Int64",
                                                              "grade_high": "Int64"})
    anc = labs[labs["analyte"] == "anc"].dropna(subset=["value"]) if labs is not None and "analyte" in labs.columns \
        else pd.DataFrame({"patient_id": [], "day": [], "value": []})
    ids = pd.Index(patients["patient_id"].drop_duplicates())
    owner, day, value, span = _anc_samples(anc, ids, o)
    code = ids.get_indexer(patients["patient_id"])
    days, in_window, window_end = _windows(patients, o)
    has_grid = ~np.isnan(window_end)
    sample_key = owner * span + day
    lo_key, hi_key = code * span + o.first_day, code * span + window_end
    n_anc = np.where(has_grid, np.searchsorted(sample_key, hi_key, "right") - np.searchsorted(sample_key, lo_key),
                     0)
    grid_keys = (code[:, None] * span + days[None, :]).ravel()
    grid_owner = np.repeat(code, len(days))
    counts = {}
    for name, threshold in (("0_5", o.severe_anc), ("0_1", o.profound_anc)):
        state = _day_states(sample_key, (value <= threshold).astype(float), owner, grid_keys, grid_owner) \
            if len(day) else np.full(len(grid_keys), np.nan)
        state = state.reshape(len(code), len(days))
        counts[f"days_le_{name}_min"] = _counts(state, in_window, 0, o)
        counts[f"days_le_{name}_max"] = _counts(state, in_window, 1, o)
    g_lo = _icaht_grades(counts["days_le_0_5_min"], counts["days_le_0_1_min"], o)
    g_hi = _icaht_grades(counts["days_le_0_5_max"], counts["days_le_0_1_max"], o)
    return _icaht_frame(patients, window_end, n_anc, counts, g_lo, g_hi)[cols]


def _icaht_frame(patients: pd.DataFrame, window_end: np.ndarray, n_anc: np.ndarray, counts: dict,
                 g_lo: np.ndarray, g_hi: np.ndarray) -> pd.DataFrame:
    """early_icaht's frame: patients without an ANC in their window get only window_end, n_anc and status
    (the day counts are then float with NaN, as a column with a gap is)."""
    found = n_anc > 0
    status = np.where(~found, "no ANC in days 0-30", np.where(g_lo == g_hi, "graded", "too sparse to grade"))
    out = pd.DataFrame({"patient_id": patients["patient_id"].to_numpy(), "window_end": window_end,
                        "n_anc": n_anc.astype(int)})
    for name, values in {**counts, "grade_low": g_lo, "grade_high": g_hi}.items():
        out[name] = values if found.all() else np.where(found, values, np.nan)
    grade = pd.array(np.where(found & (g_lo == g_hi), g_lo, 0), dtype="Int64")
    grade[~(found & (g_lo == g_hi))] = pd.NA
    out["grade"] = grade
    out["status"] = status.astype(object)
    return out.astype({"grade_low": "Int64", "grade_high": "Int64"})


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
