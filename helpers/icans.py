"""Immune effector cell-associated neurotoxicity syndrome (ICANS) graded from the daily record.

ASTCT 2019 consensus (Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638, Tables 4-6): the
grade of a day is the most severe of five domains not attributable to another cause.

- ICE score (age >= 12): 10 -> 0, 7-9 -> 1, 3-6 -> 2, 0-2 -> 3. ICE 0 in an awake patient with global
  aphasia is grade 3; ICE 0 because the patient is unarousable is grade 4, which the consciousness
  domain (unarousable -> 4) gives, so a recorded ICE 0 alone is grade 3.
- CAPD (children < 12): 1-8 -> 1 (grades 1 and 2 share the CAPD range; consciousness separates them),
  >= 9 -> 3; unable to perform CAPD because unarousable -> 4 through the consciousness domain.
- Depressed level of consciousness: awakens spontaneously 1, to voice 2, only to tactile stimulus 3,
  unarousable / stupor / coma 4.
- Seizure: any clinical seizure resolving rapidly, or non-convulsive on EEG resolving with
  intervention 3; prolonged (> 5 min) or repetitive without return to baseline 4.
- Motor findings: deep focal motor weakness 4. Raised ICP / cerebral oedema: focal 3, diffuse 4.

Every ICANS column is optional; a day with no domain recorded is "not assessed". ICANS follows the
infusion: only days >= 0 are graded. `icans_other_cause` = 1 sets the day to 0 (not ICANS).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.contract import CEREBRAL_EDEMA_KINDS, CONSCIOUSNESS_LEVELS, SEIZURE_KINDS

ICANS_COLUMNS: tuple[str, ...] = ("ice_score", "capd_score", "consciousness", "seizure", "motor_weakness",
                                  "cerebral_edema")
CONSCIOUSNESS_GRADE = dict(zip(CONSCIOUSNESS_LEVELS, (0, 1, 2, 3, 4)))
SEIZURE_GRADE = dict(zip(SEIZURE_KINDS, (0, 3, 4)))
EDEMA_GRADE = dict(zip(CEREBRAL_EDEMA_KINDS, (0, 3, 4)))


@dataclass(frozen=True)
class IcansOptions:
    """Choices the consensus leaves to the user, with their defaults and sources."""

    # ASTCT 2019: ICE for adults and children >= 12 years, CAPD for children under 12.
    capd_below_age: float = 12.0
    # Severe ICANS = grade >= 3 (ASTCT 2019 reports grade >= 3 as severe, as for CRS).
    severe_grade: int = 3


def _optional(d: pd.DataFrame, column: str) -> np.ndarray:
    """Optional numeric column as floats (absent -> all missing)."""
    if column not in d.columns:
        return np.full(len(d), np.nan)
    return pd.to_numeric(d[column], errors="coerce").astype("float64").to_numpy()


def _mapped(d: pd.DataFrame, column: str, grades: dict[str, int]) -> np.ndarray:
    """Optional category column mapped to grades (absent or unknown -> missing)."""
    if column not in d.columns:
        return np.full(len(d), np.nan)
    return d[column].astype(object).map(grades).astype("float64").to_numpy()


def ice_grade(score: np.ndarray) -> np.ndarray:
    """ASTCT 2019 ICE domain: 10 -> 0, 7-9 -> 1, 3-6 -> 2, 0-2 -> 3; missing stays missing."""
    s = np.asarray(score, dtype=float)
    return np.select([s >= 10, s >= 7, s >= 3, s >= 0], [0, 1, 2, 3], default=np.nan)


def capd_grade(score: np.ndarray) -> np.ndarray:
    """ASTCT 2019 paediatric domain: CAPD 0 -> 0, 1-8 -> 1, >= 9 -> 3; missing stays missing."""
    s = np.asarray(score, dtype=float)
    return np.select([s >= 9, s >= 1, s >= 0], [3, 1, 0], default=np.nan)


def _ages(d: pd.DataFrame, patients: pd.DataFrame | None) -> np.ndarray:
    """Age at infusion per daily row (missing when unknown)."""
    if patients is None or "age_years" not in patients.columns:
        return np.full(len(d), np.nan)
    age = patients.set_index("patient_id")["age_years"].astype("float64")
    return d["patient_id"].map(age).astype("float64").to_numpy()


def grade_daily(daily: pd.DataFrame, patients: pd.DataFrame | None = None,
                options: IcansOptions = IcansOptions()) -> pd.DataFrame:
    """ICANS grade per patient-day: patient_id, day, assessed, grade (0-4, 0 when not assessed) and
    driver (the domains that set the grade, '+'-joined; 'none', 'not assessed' or 'other cause').

    The encephalopathy score is CAPD for children under `options.capd_below_age` and ICE otherwise (age
    unknown: ICE); when only the other score is recorded it is used.
    """
    d = daily.sort_values(["patient_id", "day"], kind="stable").reset_index(drop=True)
    child = _ages(d, patients) < options.capd_below_age
    ice, capd = ice_grade(_optional(d, "ice_score")), capd_grade(_optional(d, "capd_score"))
    primary, backup = np.where(child, capd, ice), np.where(child, ice, capd)
    enceph = np.where(np.isnan(primary), backup, primary)
    domains = {"encephalopathy": enceph,
               "consciousness": _mapped(d, "consciousness", CONSCIOUSNESS_GRADE),
               "seizure": _mapped(d, "seizure", SEIZURE_GRADE),
               "motor_weakness": np.where(_optional(d, "motor_weakness") == 1, 4.0,
                                          np.where(np.isnan(_optional(d, "motor_weakness")), np.nan, 0.0)),
               "cerebral_edema": _mapped(d, "cerebral_edema", EDEMA_GRADE)}
    stack = np.vstack(list(domains.values()))
    assessed = ~np.isnan(stack).all(axis=0) & (d["day"].to_numpy(dtype=float) >= 0)
    grade = np.where(assessed, np.nan_to_num(np.nanmax(np.where(np.isnan(stack), -1, stack), axis=0), nan=0), 0)
    grade = np.clip(grade, 0, 4)
    other = _optional(d, "icans_other_cause") == 1
    driver = np.full(len(d), "none", dtype=object)
    for name, g in domains.items():
        hit = (g == grade) & (grade > 0)
        driver[hit] = np.where(driver[hit] == "none", name, driver[hit] + "+" + name)
    grade = np.where(other, 0, grade).astype("int64")
    driver = np.where(~assessed, "not assessed", np.where(other & assessed, "other cause", driver))
    return pd.DataFrame({"patient_id": d["patient_id"].to_numpy(), "day": d["day"].to_numpy(dtype=float),
                         "assessed": assessed, "grade": grade, "driver": driver.astype(str)})


def summarise_patients(graded: pd.DataFrame, crs_summary: pd.DataFrame | None = None,
                       patients: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per patient: assessed, icans_any, max_grade (5 = death due to ICANS, `death_cause` 'icans'),
    onset_day, last_day, duration_days
    (last - onset + 1, calendar days), icans_days, day_of_max; with `crs_summary`
    (crs.summarise_patients): onset_vs_crs_days (ICANS onset - CRS onset) and timing ('no CRS',
    'before CRS', 'during CRS', 'after CRS resolved'); with `patients`: icans_grade_reported."""
    g = graded.assign(icans=graded["grade"] >= 1)
    g = g.assign(icans_day=g["day"].where(g["icans"]))
    by = g.groupby("patient_id", sort=True)
    out = pd.DataFrame({"assessed": by["assessed"].any(), "icans_days": by["icans"].sum().astype("int64"),
                        "max_grade": by["grade"].max().astype("int64"), "onset_day": by["icans_day"].min(),
                        "last_day": by["icans_day"].max()})
    top = g[g["icans"] & (g["grade"] == g["patient_id"].map(out["max_grade"]))]
    out["day_of_max"] = top.groupby("patient_id")["day"].min().reindex(out.index)
    out["icans_any"] = out["icans_days"] > 0
    out["duration_days"] = out["last_day"] - out["onset_day"] + 1.0
    out = out.reset_index()
    if patients is not None:
        out = patients[["patient_id"]].merge(out, on="patient_id", how="left")
        out = out.fillna({"assessed": False, "icans_any": False, "icans_days": 0, "max_grade": 0})
    out = out.astype({"assessed": bool, "icans_any": bool, "icans_days": "int64", "max_grade": "int64"})
    if patients is not None and "death_cause" in patients.columns:  # ASTCT 2019: grade 5 = death due to ICANS
        p = patients.set_index("patient_id")
        died = out["patient_id"].map(p["death_cause"].eq("icans")).fillna(False).to_numpy(dtype=bool)
        out.loc[died, ["max_grade", "icans_any", "assessed"]] = [5, True, True]
        if "os_days" in p.columns:
            out.loc[died, "day_of_max"] = out.loc[died, "patient_id"].map(p["os_days"]).astype(float).to_numpy()
    if crs_summary is not None:
        out = _with_crs_timing(out, crs_summary)
    if patients is not None and "icans_grade_reported" in patients.columns:
        out = out.merge(patients[["patient_id", "icans_grade_reported"]], on="patient_id", how="left")
    return out


def _with_crs_timing(out: pd.DataFrame, crs_summary: pd.DataFrame) -> pd.DataFrame:
    """ICANS onset relative to the CRS episode of the same patient."""
    c = crs_summary.set_index("patient_id").reindex(out["patient_id"])
    crs_on, crs_res = c["onset_day"].to_numpy(dtype=float), c["resolution_day"].to_numpy(dtype=float)
    on = out["onset_day"].to_numpy(dtype=float)
    has_crs = c["crs_any"].fillna(False).to_numpy(dtype=bool) & ~np.isnan(crs_on)
    timing = np.select([~out["icans_any"].to_numpy(), ~has_crs, on < crs_on, np.isnan(crs_res) | (on < crs_res)],
                       ["", "no CRS", "before CRS", "during CRS"], default="after CRS resolved")
    return out.assign(onset_vs_crs_days=np.where(out["icans_any"] & has_crs, on - crs_on, np.nan), timing=timing)


def incidence(summary: pd.DataFrame, severe_grade: int = 3) -> pd.DataFrame:
    """Any ICANS (grade >= 1) and severe ICANS (>= severe_grade) among assessed patients, graded and (when
    present) as reported, with Clopper-Pearson exact 95% CIs: source, outcome, k, n, estimate, ci_low, ci_high."""
    from helpers.stats import proportion

    rows = []
    sources = [("graded", summary.loc[summary["assessed"], "max_grade"])]
    if "icans_grade_reported" in summary.columns:
        sources.append(("reported", summary["icans_grade_reported"].dropna()))
    for source, g in sources:
        g = g.astype(int)
        if len(g) == 0:
            continue
        for outcome, k in (("any ICANS", int((g >= 1).sum())), ("severe ICANS", int((g >= severe_grade).sum()))):
            p = proportion(k, len(g), outcome)
            rows.append({"source": source, "outcome": outcome, "k": k, "n": len(g), "estimate": p["estimate"],
                         "ci_low": p["ci_low"], "ci_high": p["ci_high"], "severe_grade": severe_grade,
                         "method": p["method"]})
    return pd.DataFrame(rows, columns=["source", "outcome", "k", "n", "estimate", "ci_low", "ci_high",
                                       "severe_grade", "method"])


def by_crs(summary: pd.DataFrame, crs_grade: pd.Series, severe_crs_grade: int = 3) -> pd.DataFrame:
    """ICANS among patients with no, non-severe and severe CRS (counts; Fisher exact test of any ICANS
    by severe vs not severe CRS): group, n, k_icans, k_severe_icans, p_value (same on every row)."""
    from helpers.stats import fisher_or

    s = summary[summary["assessed"]].set_index("patient_id")
    grade = crs_grade.reindex(s.index)
    group = np.select([grade >= severe_crs_grade, grade >= 1, grade == 0], ["severe CRS", "non-severe CRS", "no CRS"],
                      default="CRS not graded")
    rows = [{"group": lvl, "n": int((group == lvl).sum()), "k_icans": int(s["icans_any"][group == lvl].sum()),
             "k_severe_icans": int((s["max_grade"][group == lvl] >= 3).sum())}
            for lvl in ("no CRS", "non-severe CRS", "severe CRS") if (group == lvl).any()]
    sev = group == "severe CRS"
    known = group != "CRS not graded"
    t = np.array([[int((s["icans_any"] & sev).sum()), int((~s["icans_any"] & sev).sum())],
                  [int((s["icans_any"] & ~sev & known).sum()), int((~s["icans_any"] & ~sev & known).sum())]])
    p = fisher_or(t)[3] if t.sum() else np.nan
    return pd.DataFrame(rows, columns=["group", "n", "k_icans", "k_severe_icans"]).assign(
        p_value=p, test="Fisher exact, any ICANS by severe vs not severe CRS")
