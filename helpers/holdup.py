"""Does it hold up? Each published fact (F1-F10) under the naive analysis and under a corrected one.

The naive verdict is the published reading (`helpers.published.check_facts`). The corrected one removes
what a referee objects to: guarantee-time bias (remission as a time-varying covariate from the day it
was documented), deaths from CRS inside the severe-CRS group (tautology), few events (Firth-penalised
Cox), circular severity markers (the features that define grade >= 3 are left out), and, for the CRS
counts, dependence on the grading scale (every scale is graded from the daily record).

The corrected analyses are reached through the small adapter functions below (`remission_time_varying`,
`cox_corrected`, `crs_counts_by_scale`, `markers_corrected`), so a better estimator from the survival
or CRS chapters replaces one line here. `assess` returns one tidy frame; the page (holdup_report) and
the fragility runs (helpers.fragility) both use it, so the verdicts are defined once.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import crs, derive, fmt, labels, published, survival
from helpers.cohort import Cohort

REMISSION_DAY = "remission_day"
# ASTCT grade >= 3 is defined by hypotension needing vasopressors and by oxygen support (Lee et al. 2019):
# markers built from these cannot be evidence that severe CRS "came with" them.
DEFINING_FEATURES = ("sbp_min_mmhg", "vasopressors", "oxygen")
NON_DEFINING_MARKERS = {m: d for m, d in published.F9_MARKERS.items() if m not in DEFINING_FEATURES}

CORRECTIONS = {
    "F4": "Cox model with remission as a time-varying covariate from the day it was documented",
    "F5": "Firth-penalised Cox model of the same covariates, without the patients who died of CRS",
    "F8": "every grading scale, each graded from the daily record",
    "F9": "only markers that do not define the grade (lowest systolic pressure left out)",
}
for _f in ("F6", "F7"):
    CORRECTIONS[_f] = CORRECTIONS["F5"]
NO_CORRECTION = {
    "F1": "a count: no analysis choice to correct",
    "F2": "a count: no analysis choice to correct",
    "F3": "a count: no analysis choice to correct",
    "F10": "the book's check already uses Firth's penalised likelihood",
}
# Where each fact is analysed in full: (page, section heading).
WHERE = {
    "F1": ("notebooks/01_cohort", "Patient flow"),
    "F2": ("notebooks/02_response", "Remission and MRD negativity"),
    "F3": ("notebooks/02_response", "Remission and MRD negativity"),
    "F4": ("notebooks/03_survival", "Remission is known only after infusion"),
    "F5": ("notebooks/03_survival", "The published multivariable models"),
    "F6": ("notebooks/03_survival", "The published multivariable models"),
    "F7": ("notebooks/03_survival", "The published multivariable models"),
    "F8": ("notebooks/04_crs", "Does the scale matter?"),
    "F9": ("notebooks/04_crs", "What came with severe CRS"),
    "F10": ("notebooks/04_crs", "Predicting severe CRS before infusion"),
}


# ---------------------------------------------------------------- adapters to the corrected analyses

def analysis_frame(pt: pd.DataFrame) -> pd.DataFrame:
    """The patient table with 0/1 covariates and events as the Cox fitters take them."""
    d = pt.copy()
    for c in ("remission", "severe_crs"):
        d[c] = d[c].astype("boolean").astype("Float64").astype(float)
    for end in ("os", "pfs"):
        if f"{end}_event" in d:
            d[f"{end}_event"] = pd.to_numeric(d[f"{end}_event"]).astype(float)
    return d


def without_crs_deaths(pt: pd.DataFrame) -> pd.DataFrame:
    """The patients who did not die of CRS (their death is part of what makes CRS severe)."""
    cause = pt["death_cause"] if "death_cause" in pt else pd.Series(None, index=pt.index, dtype=object)
    return pt[~cause.eq("crs").fillna(False).astype(bool)]


def remission_time_varying(d: pd.DataFrame, end: str) -> pd.DataFrame:
    """Remission HR with remission switching on at `remission_day` (survival.time_varying_cox)."""
    return survival.time_varying_cox(d, f"{end}_days", f"{end}_event", "remission", REMISSION_DAY)


def cox_corrected(d: pd.DataFrame, end: str) -> pd.DataFrame:
    """The published Cox model, Firth-penalised, on the patients who did not die of CRS."""
    keep = without_crs_deaths(d).dropna(subset=[f"{end}_days", f"{end}_event", *published.COX_COVARIATES])
    return survival.firth_cox_table(keep, f"{end}_days", f"{end}_event", published.COX_COVARIATES)


def cox_corrected_pvalues(d: pd.DataFrame, end: str) -> pd.DataFrame:
    """cox_corrected without its profile-likelihood CIs (same fit and penalised LRT p; for the fragility runs)."""
    import warnings

    from firthmodels import FirthCoxPH

    keep = without_crs_deaths(d).dropna(subset=[f"{end}_days", f"{end}_event", *published.COX_COVARIATES])
    X = keep[published.COX_COVARIATES].to_numpy(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FirthCoxPH().fit(X, (keep[f"{end}_event"].to_numpy(bool), keep[f"{end}_days"].to_numpy(float)))
        model.lrt()
    return pd.DataFrame({"term": published.COX_COVARIATES, "hr": np.exp(model.coef_), "ci_low": np.nan,
                         "ci_high": np.nan, "p_value": model.lrt_pvalues_, "converged": bool(model.converged_),
                         "warning": ""})


def crs_counts_by_scale(cohort: Cohort) -> pd.DataFrame:
    """Any and severe CRS per scale, graded from the daily record: system, any_crs, severe_crs, n."""
    grades = crs.agreement_from_summaries({s: crs.summarise_patients(g, cohort.patients)
                                           for s, g in derive.graded_scales(cohort).items()})  # the CRS chapter's grading
    severe = cohort.settings.severe_crs_grade
    rows = [{"system": s, "any_crs": int((grades[s] >= 1).sum()), "severe_crs": int((grades[s] >= severe).sum()),
             "n": int(grades[s].notna().sum())} for s in crs.SYSTEMS]
    return pd.DataFrame(rows)


def markers_corrected(pt: pd.DataFrame, cohort: Cohort, memo: dict | None = None) -> tuple[str, bool | None]:
    """The F9 comparison over the markers that do not define the grade (the naive check's markers when in `memo`)."""
    markers = published.shared({} if memo is None else memo, "markers", lambda: published.severity_markers(pt, cohort))
    return published.markers_verdict(markers, NON_DEFINING_MARKERS)


# ---------------------------------------------------------------- corrected verdicts

def _corrected_f4(d: pd.DataFrame) -> tuple[str, bool | None]:
    if d[REMISSION_DAY].notna().sum() == 0 or d["remission"].nunique() < 2:
        return "everyone in the same remission group", None
    if "pfs_days" not in d or not d["pfs_days"].notna().any():
        return "no progression-free survival recorded", None
    models = {end: remission_time_varying(d, end) for end in ("os", "pfs")}
    return published.cox_term_verdict(models, "remission", False, ("os", "pfs"))


def _corrected_cox(d: pd.DataFrame, memo: dict, fact: str) -> tuple[str, bool | None]:
    why = published.cox_inputs_missing(without_crs_deaths(d))
    if why:
        return why, None
    if "firth" not in memo:
        fit = cox_corrected_pvalues if memo.get("quick") else cox_corrected
        memo["firth"] = {end: fit(d, end) for end in ("os", "pfs")}
    term, higher, ends, not_ends = {"F5": ("log10_peak", False, ("os", "pfs"), ()),
                                    "F6": ("severe_crs", True, ("os", "pfs"), ()),
                                    "F7": ("product_em_pct", True, ("pfs",), ("os",))}[fact]
    return published.cox_term_verdict(memo["firth"], term, higher, ends, not_ends)


def scale_verdicts(counts: pd.DataFrame) -> pd.DataFrame:
    """crs_counts_by_scale plus `reproduced` (both published counts, see published.crs_counts_agree, 'auto')."""
    ok = [published.crs_counts_agree(r.any_crs, r.severe_crs, r.n, "auto") for r in counts.itertuples()]
    return counts.assign(reproduced=ok)


def _corrected_f8(cohort: Cohort, memo: dict) -> tuple[str, bool | None]:
    if not cohort.grades_crs:
        return "no daily record with temperatures to grade under other scales", None
    v = scale_verdicts(published.shared(memo, "crs_counts", lambda: crs_counts_by_scale(cohort)))
    held = [labels.scale(s) for s in v.loc[v["reproduced"], "system"]]
    text = "; ".join(f"{labels.scale(r.system)}: {published.crs_count_text(r.any_crs, r.severe_crs, r.n)}"
                     for r in v.itertuples())
    return f"{text} (reproduced under {len(held)} of {len(v)} scales)", bool(v["reproduced"].all())


def corrected_facts(cohort: Cohort, pt: pd.DataFrame, naive: pd.DataFrame, quick: bool = False,
                    reuse: dict | None = None) -> pd.DataFrame:
    """The corrected result and verdict of every fact (fact, correction, corrected, corrected_reproduced);
    `quick` skips the profile-likelihood CIs no verdict needs; `reuse` holds what the naive checks computed."""
    d, memo, rows = analysis_frame(pt), {"quick": quick, "shared": {} if reuse is None else reuse}, []
    for fact, naive_ok in zip(naive["fact"], naive["reproduced"]):
        if fact in NO_CORRECTION:
            text, ok, how = fmt.MISSING, naive_ok if fact == "F10" else None, NO_CORRECTION[fact]
        else:
            how = CORRECTIONS[fact]
            check = {"F4": lambda: _corrected_f4(d), "F8": lambda: _corrected_f8(cohort, memo),
                     "F9": lambda: markers_corrected(pt, cohort, memo)}.get(fact, lambda: _corrected_cox(d, memo, fact))
            text, ok = published.guarded(check)
        rows.append({"fact": fact, "correction": how, "corrected": text,
                     "corrected_reproduced": None if ok is None else bool(ok)})
    return pd.DataFrame(rows)


def assess(cohort: Cohort, pt: pd.DataFrame | None = None, quick: bool = False,
           reuse: dict | None = None) -> pd.DataFrame:
    """Every fact: published statement, naive result and verdict, corrected result and verdict, where analysed.

    Counts are compared 'auto' (published.count_agrees): the same count at the published size, the
    published proportion inside this cohort's exact 95% CI at any other size. `quick` gives the same
    verdicts without the profile-likelihood CIs (the texts then say "not estimable" for those CIs). `reuse`
    (a dict) is filled with the results computed once for several facts (severity markers, CRS counts per
    scale), so a caller showing them again need not recompute them.
    """
    from helpers import derive

    pt = derive.patient_table(cohort) if pt is None else pt
    reuse = {} if reuse is None else reuse
    naive = published.check_facts(cohort, pt, counts="auto", quick=quick, reuse=reuse)
    out = naive.rename(columns={"computed": "naive", "reproduced": "naive_reproduced"})
    out = out.merge(corrected_facts(cohort, pt, naive, quick, reuse), on="fact")
    out["page"] = out["fact"].map(lambda f: WHERE[f][0])
    out["section"] = out["fact"].map(lambda f: WHERE[f][1])
    return out
