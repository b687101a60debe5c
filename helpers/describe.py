"""Cohort description: which baseline and product variables a cohort has, and the patient flow with its reasons.

Tidy results only (counts and frames); the page's tables and figures are drawn by `helpers.cohort_report`.
"""
from __future__ import annotations

import pandas as pd

from helpers import labels

# column -> kind for tables.table_one (its reader's name comes from helpers.labels)
BASELINE_VARIABLES: dict[str, str] = {
    "age_years": "continuous", "sex": "categorical", "bm_blasts_pct": "continuous",
    "ph_positive": "binary", "prior_lines": "continuous", "prior_allo_hsct": "binary",
    "extramedullary": "binary", "ldh_u_per_l": "continuous", "car_dose_per_kg": "continuous",
    "cd4_cd8_ratio": "continuous", "product_naive_pct": "continuous", "product_cm_pct": "continuous",
    "product_em_pct": "continuous", "product_eff_pct": "continuous",
}
NOT_EVALUABLE = "NE"


def available_variables(pt: pd.DataFrame) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Table 1 variables this cohort has: (kinds, reader's labels, labels of the absent ones)."""
    kinds, names, absent = {}, {}, []
    for col, kind in BASELINE_VARIABLES.items():
        if col in pt and pt[col].notna().any():
            kinds[col], names[col] = kind, labels.label(col)
        else:
            absent.append(labels.label(col))
    return kinds, names, absent


def evaluable(pt: pd.DataFrame) -> pd.Series:
    """Evaluable for response: a best response other than NE (not evaluable: died or left before assessment)."""
    return pt["best_response"].notna() & pt["best_response"].ne(NOT_EVALUABLE)


NOT_REACHED = {"Infused": "not infused", "Evaluable for response": "not evaluable",
               "Remission": "without remission", "MRD-negative remission": "MRD-positive or not tested"}


def flow_counts(pt: pd.DataFrame, enrolled: int | None = None, remission_label: str = "CR/CRi") -> pd.DataFrame:
    """Patient flow (enrolled) -> infused -> evaluable for response -> remission -> MRD-negative remission.

    The data contract holds infused patients only, so 'Enrolled' appears only when `enrolled` is given.
    Column `not_next` is how many of the stage above did not reach this one (0 for the first box).
    """
    rows = [] if enrolled is None else [("Enrolled", int(enrolled))]
    rows += [("Infused", len(pt)), ("Evaluable for response", int(evaluable(pt).sum())),
             (f"Remission ({remission_label})", int(pt["remission"].sum()))]
    if "mrd_negative" in pt and pt["mrd_negative"].notna().any():
        rows.append(("MRD-negative remission", int((pt["mrd_negative"].eq(True) & pt["remission"]).sum())))
    out = pd.DataFrame(rows, columns=["stage", "n"])
    out["not_next"] = (out["n"].shift(1) - out["n"]).fillna(0).astype(int)
    out["not_next_reason"] = [NOT_REACHED.get(s.split(" (")[0], "") for s in out["stage"]]
    return out


def flow_exits(pt: pd.DataFrame, assessment_day: float, enrolled: int | None = None,
               remission_responses: tuple[str, ...] = ("CR", "CRi")) -> pd.DataFrame:
    """Why patients left the flow at each stage (tidy: stage, reason, n; reasons with n = 0 kept).

    Infused: not infused (only with `enrolled`). Evaluable: NE split into deaths before the
    assessment day and other reasons. Remission: each other best response among the evaluable (PR,
    NR, ...). MRD-negative remission: MRD-positive and not tested among remissions (only with MRD data).
    """
    rows = [] if enrolled is None else [("Infused", "not infused", int(enrolled) - len(pt))]
    ne = pt["best_response"].eq(NOT_EVALUABLE)
    early_death = ne & pt["os_event"].eq(1) & (pt["os_days"].astype(float) <= float(assessment_day))
    rows += [("Evaluable for response", "died before response assessment", int(early_death.sum())),
             ("Evaluable for response", "not assessed for another reason", int((ne & ~early_death).sum()))]
    rest = pt.loc[evaluable(pt) & ~pt["best_response"].isin(remission_responses), "best_response"]
    order = [r for r in ("CR", "CRi", "PR", "NR") if r not in remission_responses]
    order += sorted(set(rest) - set(order))
    rows += [("Remission", r, int(rest.eq(r).sum())) for r in order]
    if "mrd_negative" in pt and pt["mrd_negative"].notna().any():
        rem, mrd = pt["remission"].astype(bool), pt["mrd_negative"].astype("boolean")
        rows += [("MRD-negative remission", "MRD-positive", int((rem & mrd.eq(False).fillna(False)).sum())),
                 ("MRD-negative remission", "MRD not tested", int((rem & mrd.isna()).sum()))]
    return pd.DataFrame(rows, columns=["stage", "reason", "n"])


# ------------------------------------------------------------------ groupings for Table 1
def remission_groups(pt: pd.DataFrame, responses: tuple[str, ...] = ("CR", "CRi")) -> pd.Series:
    """Remission label per patient ('Remission (CR/CRi)' / 'No remission'), ordered no-then-yes as gtsummary orders FALSE, TRUE."""
    yes, no = f"Remission ({'/'.join(responses)})", "No remission"
    lab = pt["remission"].map({True: yes, False: no})
    return pd.Series(pd.Categorical(lab, categories=[no, yes]), index=pt.index, name="remission_group")


def severe_crs_groups(pt: pd.DataFrame, severe_grade: int = 3) -> pd.Series:
    """Severe-CRS label per patient ('Severe CRS (grade >= g)' / 'No severe CRS'); missing when the grade is unknown."""
    yes, no = f"Severe CRS (grade >= {severe_grade})", "No severe CRS"
    lab = pt["severe_crs"].astype("object").map({True: yes, False: no})
    return pd.Series(pd.Categorical(lab, categories=[no, yes]), index=pt.index, name="severe_crs_group")


def has_two_groups(groups: pd.Series) -> bool:
    """True when a grouping has at least one patient in each of two levels (a split is possible)."""
    return int(groups.dropna().nunique()) >= 2


# ------------------------------------------------------------------ infused product
PRODUCT_SUBSETS: dict[str, str] = {"product_naive_pct": "Naive", "product_cm_pct": "Central memory",
                                   "product_em_pct": "Effector memory", "product_eff_pct": "Effector"}


def product_panels(pt: pd.DataFrame) -> list[str]:
    """Which product panels this cohort can draw: 'dose', 'cd4_cd8_ratio', 'subsets' (each needs a non-missing value)."""
    has = lambda c: c in pt and pt[c].notna().any()  # noqa: E731
    panels = [p for p, col in (("dose", "car_dose_per_kg"), ("cd4_cd8_ratio", "cd4_cd8_ratio")) if has(col)]
    if any(has(c) for c in PRODUCT_SUBSETS):
        panels.append("subsets")
    return panels


def product_subsets_long(pt: pd.DataFrame) -> pd.DataFrame:
    """Product T-cell subset shares in long form: patient_id, subset (ordered naive -> effector), pct; missing rows dropped."""
    cols = [c for c in PRODUCT_SUBSETS if c in pt]
    long = pt.melt(id_vars="patient_id", value_vars=cols, var_name="column", value_name="pct").dropna(subset=["pct"])
    order = [PRODUCT_SUBSETS[c] for c in cols]
    long["subset"] = pd.Categorical(long["column"].map(PRODUCT_SUBSETS), categories=order)
    return long[["patient_id", "subset", "pct"]].reset_index(drop=True)


# ------------------------------------------------------------------ follow-up
def followup(pt: pd.DataFrame) -> dict:
    """Median follow-up for overall survival by reverse Kaplan-Meier (survival.median_followup); unreached = inf."""
    from helpers.survival import median_followup

    return median_followup(pt, "os_days", "os_event")
