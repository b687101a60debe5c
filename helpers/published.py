"""The published study's facts (F1-F10) and the book's own analyses that test them on any cohort.

Source: ASH 2020 abstract, Blood 136 (Suppl 1): 9, trial NCT02349698 (see shared reference
`published_facts.md`). The facts are paraphrased here, not quoted. The same checks drive the
"Does it reproduce?" page and the simulator's calibration, so both use one definition.
The abstract does not list the covariates of its multivariable models; the models below are the
book's reading of it (the factors it names), stated on the methods page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from helpers import derive, stats, survival
from helpers.cohort import Cohort

ALPHA = 0.05
# The counts the abstract reports (F1-F3, F8): the one place the book holds them.
PUBLISHED_COUNTS = {"patients": 24, "remission": 16, "mrd_negative": 13, "crs": 19, "severe_crs": 6}
COX_COVARIATES = ["log10_peak", "severe_crs", "product_em_pct"]
LOGISTIC_COVARIATES = ["bm_blasts_pct", "log10_dose", "product_em_pct"]
F9_MARKERS = {  # per-patient extreme over days 0-28 -> direction expected with severe CRS
    "temp_max_c": "higher", "sbp_min_mmhg": "lower", "platelets_min": "lower", "anc_min": "lower",
    "fibrinogen_min": "lower", "d_dimer_max": "higher", "alt_max": "higher", "creatinine_max": "higher",
    "procalcitonin_max": "higher", "il6_max": "higher", "ifng_max": "higher",
}


@dataclass(frozen=True)
class Fact:
    """One published finding, in the book's words."""

    id: str
    published: str
    check: Callable[[pd.DataFrame, Cohort], tuple[str, bool | None]]


def _count(pt: pd.DataFrame, mask: pd.Series, of: pd.Series | None = None) -> tuple[int, int]:
    base = pt if of is None else pt[of.fillna(False).astype(bool)]
    m = mask.reindex(base.index).fillna(False).astype(bool)
    return int(m.sum()), len(base)


def _f1(pt, c):
    return f"{len(pt)} patients", len(pt) == PUBLISHED_COUNTS["patients"]


def _f2(pt, c):
    k, n = _count(pt, pt["remission"])
    expected = (PUBLISHED_COUNTS["remission"], PUBLISHED_COUNTS["patients"])
    return f"{k}/{n} in remission ({'/'.join(c.settings.remission_responses)})", (k, n) == expected


def _f3(pt, c):
    if "mrd_negative" not in pt:
        return "no mrd_negative column", None
    k, n = _count(pt, pt["mrd_negative"].eq(True), pt["remission"])
    return f"{k}/{n} remissions MRD-negative", (k, n) == (PUBLISHED_COUNTS["mrd_negative"], PUBLISHED_COUNTS["remission"])


def _logrank_both(pt, c):
    texts, ok = [], True
    for end in ("os", "pfs"):
        if f"{end}_days" not in pt:
            return "no PFS columns", None
        d = pt.dropna(subset=[f"{end}_days", f"{end}_event"]).assign(remission=lambda x: x["remission"].astype(int))
        d[f"{end}_event"] = d[f"{end}_event"].astype(int)
        res = survival.logrank(d, f"{end}_days", f"{end}_event", "remission")
        longer = _median_order(d, f"{end}_days", f"{end}_event")
        texts.append(f"{end.upper()} log-rank p = {res['p_value']:.3g}{'' if longer else ' (remission not longer)'}")
        ok &= res["p_value"] < ALPHA and longer
    return "; ".join(texts), ok


def _median_order(d, duration, event) -> bool:
    """True when the remission group's restricted mean survival time is longer (robust to unreached medians)."""
    from lifelines.utils import restricted_mean_survival_time
    from lifelines import KaplanMeierFitter

    horizon = d[duration].max()
    rmst = {}
    for g, sub in d.groupby("remission"):
        km = KaplanMeierFitter().fit(sub[duration], sub[event])
        rmst[g] = restricted_mean_survival_time(km, t=horizon)
    return rmst.get(1, 0) > rmst.get(0, 0)


def multivariable_cox(pt: pd.DataFrame, end: str) -> pd.DataFrame:
    """The book's reading of the published multivariable Cox model for OS or PFS (end = 'os' | 'pfs')."""
    d = pt.dropna(subset=[f"{end}_days", f"{end}_event"] + COX_COVARIATES).copy()
    d["severe_crs"] = d["severe_crs"].astype(int)
    d[f"{end}_event"] = d[f"{end}_event"].astype(int)
    return survival.cox_table(d, f"{end}_days", f"{end}_event", COX_COVARIATES)


def _cox_term(pt, term, expect_higher_risk, ends, not_ends=()):
    needed = set(COX_COVARIATES) | {"pfs_days"}
    if not needed <= set(pt.columns) or pt[COX_COVARIATES].isna().all().any():
        return "needed columns absent", None
    texts, ok = [], True
    for end in ("os", "pfs"):
        row = multivariable_cox(pt, end).set_index("term").loc[term]
        texts.append(f"{end.upper()} HR {row['hr']:.2f} (95% CI {row['ci_low']:.2f}-{row['ci_high']:.2f}), "
                     f"p = {row['p_value']:.3g}")
        significant = row["p_value"] < ALPHA and ((row["hr"] > 1) == expect_higher_risk)
        if end in ends:
            ok &= bool(significant)
        if end in not_ends:
            ok &= bool(row["p_value"] >= ALPHA)
    return "; ".join(texts), ok


def _f5(pt, c):
    return _cox_term(pt, "log10_peak", False, ("os", "pfs"))


def _f6(pt, c):
    return _cox_term(pt, "severe_crs", True, ("os", "pfs"))


def _f7(pt, c):
    return _cox_term(pt, "product_em_pct", True, ("pfs",), not_ends=("os",))


def _f8(pt, c):
    if pt["crs_grade"].isna().all():
        return "no CRS grades", None
    k_any, n = _count(pt, pt["crs_any"])
    k_sev, _ = _count(pt, pt["severe_crs"])
    return f"{k_any}/{n} any CRS, {k_sev} severe (grade >= {c.settings.severe_crs_grade}; " \
           f"{pt['crs_grade_source'].iat[0]})", \
        (k_any, k_sev, n) == (PUBLISHED_COUNTS["crs"], PUBLISHED_COUNTS["severe_crs"], PUBLISHED_COUNTS["patients"])


def severity_markers(pt: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """Per-patient vital-sign and lab extremes (days 0-28) for the F9 comparison, with the CRS group."""
    d = pt[["patient_id", "crs_grade", "severe_crs"]]
    if cohort.has("daily"):
        d = d.merge(derive.vital_extremes(cohort.daily), on="patient_id", how="left")
    if cohort.has("labs"):
        d = d.merge(derive.lab_extremes(cohort.labs), on="patient_id", how="left")
    return d


def _f9(pt, c):
    d = severity_markers(pt, c)
    d = d[d["crs_grade"].fillna(0) >= 1]
    markers = [m for m in F9_MARKERS if m in d]
    if not markers or d["severe_crs"].nunique() < 2:
        return "daily/labs tables or CRS groups absent", None
    agree = []
    for m in markers:
        med = d.groupby(d["severe_crs"].astype(bool))[m].median()
        agree.append((med[True] > med[False]) == (F9_MARKERS[m] == "higher"))
    return f"{sum(agree)}/{len(agree)} markers worse with severe than mild CRS (medians)", all(agree)


def multivariable_logistic(pt: pd.DataFrame) -> pd.DataFrame:
    """The book's reading of the published multivariable model for severe CRS (Firth-penalised)."""
    d = pt.dropna(subset=LOGISTIC_COVARIATES + ["severe_crs"]).copy()
    d["severe_crs"] = d["severe_crs"].astype(int)
    return stats.firth_logistic_table(d, "severe_crs", LOGISTIC_COVARIATES)


def _f10(pt, c):
    if not set(LOGISTIC_COVARIATES) <= set(pt.columns) or pt["severe_crs"].isna().all():
        return "needed columns absent", None
    t = multivariable_logistic(pt).set_index("term")
    row = t.loc["bm_blasts_pct"]
    others = t.drop(index=[i for i in t.index if i in ("bm_blasts_pct", "const", "Intercept", "intercept")])
    ok = row["or"] > 1 and row["p_value"] < ALPHA and bool((others["p_value"] >= ALPHA).all())
    return f"blasts OR {row['or']:.3f} per percentage point, p = {row['p_value']:.3g}; other terms p >= " \
           f"{others['p_value'].min():.2f}", bool(ok)


FACTS: tuple[Fact, ...] = (
    Fact("F1", "24 patients with relapsed/refractory B-ALL received CD19 CAR-T cells", _f1),
    Fact("F2", "16 of the 24 reached complete remission", _f2),
    Fact("F3", "13 of those 16 remissions were MRD-negative", _f3),
    Fact("F4", "Patients in remission lived longer overall and without progression (significant)", _logrank_both),
    Fact("F5", "In multivariable Cox models a lower expansion peak meant worse OS and PFS (significant)", _f5),
    Fact("F6", "In the same models severe CRS meant worse OS and PFS (significant)", _f6),
    Fact("F7", "A larger effector-memory share of the product meant worse PFS (significant), not OS", _f7),
    Fact("F8", "19 of 24 patients had CRS, 6 of them severe", _f8),
    Fact("F9", "Severe CRS came with worse vital signs, cytopenias, coagulation and organ function, "
               "higher procalcitonin and cytokines than mild CRS", _f9),
    Fact("F10", "In multivariable logistic regression only pretreatment disease burden predicted severe CRS", _f10),
)


def check_facts(cohort: Cohort, pt: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each published fact beside the book's computed result on this cohort; reproduced True/False/None (not testable)."""
    pt = derive.patient_table(cohort) if pt is None else pt
    rows = []
    for fact in FACTS:
        computed, ok = fact.check(pt, cohort)
        rows.append({"fact": fact.id, "published": fact.published, "computed": computed, "reproduced": ok})
    return pd.DataFrame(rows)


def facts_table(facts: pd.DataFrame, simulated: bool) -> pd.DataFrame:
    """Reader-facing version of check_facts: a mark per fact ('reproduced' / 'not reproduced' / 'not testable')."""
    mark = facts["reproduced"].map({True: "reproduced", False: "not reproduced"}).fillna("not testable here")
    if not simulated:
        mark = facts["reproduced"].map({True: "same as published", False: "differs from published"}).fillna(
            "not testable here")
    head = "This cohort" if not simulated else "This book, on the simulated cohort"
    return pd.DataFrame({"Fact": facts["fact"], "Published": facts["published"], head: facts["computed"],
                         "Verdict": mark})
