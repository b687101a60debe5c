"""The published study's facts (F1-F10) and the book's own analyses that test them on any cohort.

Source: ASH 2020 abstract, Blood 136 (Suppl 1): 9, trial NCT02349698 (see shared reference
`published_facts.md`). The facts are paraphrased here, not quoted. The same checks drive the
"Does it hold up?" page, the fragility runs and the simulator's calibration, so all three use one definition.
The abstract does not list the covariates of its multivariable models; the models below are the
book's reading of it (the factors it names), stated on the methods page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from helpers import derive, fmt, stats, survival
from helpers.cohort import Cohort

ALPHA = 0.05
# The counts the abstract reports (F1-F3, F8): the one place the book holds them.
PUBLISHED_COUNTS = {"patients": 24, "remission": 16, "mrd_negative": 13, "crs": 19, "severe_crs": 6}
PUBLISHED_N = PUBLISHED_COUNTS["patients"]
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
    check: Callable[[pd.DataFrame, Cohort, dict], tuple[str, bool | None]]
    kind: str = "association"  # count | association (direction and significance) | direction


def p_phrase(p: float) -> str:
    """'p = 0.017', 'p < 0.001' or 'p > 0.99' (fmt.p_value inside a sentence); 'p not available' when absent."""
    text = fmt.p_value(p)
    if text == fmt.MISSING:
        return "p not available"
    return f"p {text[0]} {text[1:]}" if text[0] in "<>" else f"p = {text}"


def _count(pt: pd.DataFrame, mask: pd.Series, of: pd.Series | None = None) -> tuple[int, int]:
    base = pt if of is None else pt[of.fillna(False).astype(bool)]
    m = mask.reindex(base.index).fillna(False).astype(bool)
    return int(m.sum()), len(base)


def count_agrees(k: int, n: int, published_k: int, published_n: int, counts: str = "exact") -> bool:
    """Whether k/n reproduces a published count: the same count ('exact'), or, for `counts='consistent'`,
    the published proportion inside this cohort's Clopper-Pearson 95% CI (the comparison at another n);
    'auto' is 'exact' at the published cohort size and 'consistent' at any other."""
    if counts == "auto":
        counts = "exact" if n == published_n else "consistent"
    if counts == "exact":
        return (k, n) == (published_k, published_n)
    if n == 0:
        return False
    lo, hi = stats.exact_ci(k, n)
    return lo <= published_k / published_n <= hi


def _f1(pt, c, memo):
    n, size = len(pt), PUBLISHED_COUNTS["patients"]
    if memo["counts"] == "exact" or (memo["counts"] == "auto" and n == size):
        return fmt.plural(n, "patient"), n == size
    return f"{fmt.plural(n, 'patient')} (the size of a cohort is chosen, not estimated)", None


def _f2(pt, c, memo):
    k, n = _count(pt, pt["remission"])
    ok = count_agrees(k, n, PUBLISHED_COUNTS["remission"], PUBLISHED_N, memo["counts"])
    return f"{fmt.count_pct(k, n)} in remission ({'/'.join(c.settings.remission_responses)})", ok


def _f3(pt, c, memo):
    if "mrd_negative" not in pt or not pt["mrd_negative"].notna().any():
        return "no MRD results", None
    k, n = _count(pt, pt["mrd_negative"].eq(True), pt["remission"])
    ok = count_agrees(k, n, PUBLISHED_COUNTS["mrd_negative"], PUBLISHED_COUNTS["remission"], memo["counts"])
    return f"{fmt.count_pct(k, n)} of remissions MRD-negative", ok


def _logrank_both(pt, c, memo):
    texts, ok = [], True
    for end in ("os", "pfs"):
        if f"{end}_days" not in pt or not pt[f"{end}_days"].notna().any():
            return "no progression-free survival recorded", None
        d = pt.dropna(subset=[f"{end}_days", f"{end}_event"]).assign(remission=lambda x: x["remission"].astype(int))
        d[f"{end}_event"] = d[f"{end}_event"].astype(int)
        if d["remission"].nunique() < 2:
            return "everyone in the same remission group", None
        res = survival.logrank(d, f"{end}_days", f"{end}_event", "remission")
        longer = _median_order(d, f"{end}_days", f"{end}_event")
        texts.append(f"{end.upper()} log-rank {p_phrase(res['p_value'])}"
                     f"{'' if longer else ' (remission not longer)'}")
        ok &= bool(res["p_value"] < ALPHA and longer)
    return "; ".join(texts), ok


def _median_order(d, duration, event) -> bool:
    """True when the remission group's restricted mean survival time is longer (robust to unreached medians)."""
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

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


def cox_term_verdict(models: dict[str, pd.DataFrame], term: str, expect_higher_risk: bool, ends: tuple,
                     not_ends: tuple = ()) -> tuple[str, bool | None]:
    """One term of the published Cox models ({'os': table, 'pfs': table}) as text and a verdict: significant in
    the expected direction for `ends`, not significant for `not_ends`; None when a fit did not converge."""
    texts, ok = [], True
    for end in ("os", "pfs"):
        row = models[end].set_index("term").loc[term]
        if not bool(row["converged"]) or not fmt.is_finite(row["hr"]):
            texts.append(f"{end.upper()} HR not estimable ({row['warning'] or 'the fit did not converge'})")
            ok = None
            continue
        hr = fmt.est_ci(row["hr"], row["ci_low"], row["ci_high"], prefix="HR ")
        texts.append(f"{end.upper()} {hr}, {p_phrase(row['p_value'])}")
        significant = row["p_value"] < ALPHA and ((row["hr"] > 1) == expect_higher_risk)
        if ok is not None and end in ends:
            ok &= bool(significant)
        if ok is not None and end in not_ends:
            ok &= bool(row["p_value"] >= ALPHA)
    return "; ".join(texts), ok


def cox_inputs_missing(pt: pd.DataFrame) -> str | None:
    """Why the published Cox models cannot be fitted on this patient table, or None."""
    needed = set(COX_COVARIATES) | {"pfs_days", "pfs_event"}
    if not needed <= set(pt.columns) or pt[list(needed)].isna().all().any():
        return "peak expansion, severe CRS, the product's effector-memory share or PFS absent"
    if any(pt[c].dropna().nunique() < 2 for c in COX_COVARIATES):
        return "a covariate of the model takes a single value"
    return None


def _models(pt, memo) -> dict[str, pd.DataFrame]:
    if "cox" not in memo:
        memo["cox"] = {end: multivariable_cox(pt, end) for end in ("os", "pfs")}
    return memo["cox"]


def _cox_term(pt, memo, term, expect_higher_risk, ends, not_ends=()):
    why = cox_inputs_missing(pt)
    if why:
        return why, None
    return cox_term_verdict(_models(pt, memo), term, expect_higher_risk, ends, not_ends)


def _f5(pt, c, memo):
    return _cox_term(pt, memo, "log10_peak", False, ("os", "pfs"))


def _f6(pt, c, memo):
    return _cox_term(pt, memo, "severe_crs", True, ("os", "pfs"))


def _f7(pt, c, memo):
    return _cox_term(pt, memo, "product_em_pct", True, ("pfs",), not_ends=("os",))


def crs_count_text(k_any: int, k_sev: int, n: int) -> str:
    """'19/24 (79.2%) any CRS, 6 severe' for a CRS count under one scale."""
    return f"{fmt.count_pct(k_any, n)} any CRS, {k_sev} severe"


def crs_counts_agree(k_any: int, k_sev: int, n: int, counts: str = "exact") -> bool:
    """Both published CRS counts (any, severe) reproduced (see count_agrees)."""
    return (count_agrees(k_any, n, PUBLISHED_COUNTS["crs"], PUBLISHED_N, counts)
            and count_agrees(k_sev, n, PUBLISHED_COUNTS["severe_crs"], PUBLISHED_N, counts))


def _f8(pt, c, memo):
    if pt["crs_grade"].isna().all():
        return "no CRS grades", None
    k_any, n = _count(pt, pt["crs_any"])
    k_sev, _ = _count(pt, pt["severe_crs"])
    text = (f"{crs_count_text(k_any, k_sev, n)} (grade {c.settings.severe_crs_grade} or higher; "
            f"{pt['crs_grade_source'].iat[0]})")
    return text, crs_counts_agree(k_any, k_sev, n, memo["counts"])


def severity_markers(pt: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """Per-patient vital-sign and lab extremes (days 0-28) for the F9 comparison, with the CRS group."""
    d = pt[["patient_id", "crs_grade", "severe_crs"]]
    if cohort.has("daily"):  # the extremes depend on the cohort alone: once per build (derive.shared)
        d = d.merge(derive.shared(cohort, "vital-extremes", lambda: derive.vital_extremes(cohort.daily)),
                    on="patient_id", how="left")
    if cohort.has("labs"):
        d = d.merge(derive.shared(cohort, "lab-extremes", lambda: derive.lab_extremes(cohort.labs)),
                    on="patient_id", how="left")
    return d


def markers_verdict(d: pd.DataFrame, markers: dict[str, str]) -> tuple[str, bool | None]:
    """Median of each marker in severe vs mild CRS (patients with any CRS) against its expected direction."""
    d = d[d["crs_grade"].fillna(0) >= 1]
    present = [m for m in markers if m in d and d[m].notna().any()]
    if not present or d["severe_crs"].nunique() < 2:
        return "vital signs or laboratory values, or one of the CRS groups, absent", None
    agree = []
    for m in present:
        med = d.groupby(d["severe_crs"].astype(bool))[m].median()
        agree.append(bool((med[True] > med[False]) == (markers[m] == "higher")))
    return f"{sum(agree)} of {len(agree)} markers worse with severe than with mild CRS (medians)", all(agree)


def shared(memo: dict, key: str, compute: Callable[[], object]) -> object:
    """`compute()` once per assessment: the naive and the corrected checks reuse what both need (memo["shared"])."""
    store = memo.setdefault("shared", {})
    if key not in store:
        store[key] = compute()
    return store[key]


def _f9(pt, c, memo):
    return markers_verdict(shared(memo, "markers", lambda: severity_markers(pt, c)), F9_MARKERS)


def multivariable_logistic(pt: pd.DataFrame) -> pd.DataFrame:
    """The book's reading of the published multivariable model for severe CRS (Firth-penalised)."""
    d = pt.dropna(subset=LOGISTIC_COVARIATES + ["severe_crs"]).copy()
    d["severe_crs"] = d["severe_crs"].astype(int)
    return stats.firth_logistic_table(d, "severe_crs", LOGISTIC_COVARIATES)


def firth_logistic_pvalues(pt: pd.DataFrame) -> pd.DataFrame:
    """The fit of multivariable_logistic without its profile-likelihood CIs (a verdict needs only OR and p).

    Same design, centring and penalised likelihood-ratio p-values as stats.fit_firth; for the fragility
    runs, where the profile CIs would cost most of the time. CI columns are NaN.
    """
    import warnings

    from firthmodels import FirthLogisticRegression

    d = pt.dropna(subset=LOGISTIC_COVARIATES + ["severe_crs"]).copy()
    d["severe_crs"] = d["severe_crs"].astype(int)
    X, y = stats.design_matrix(d, "severe_crs", LOGISTIC_COVARIATES)
    centre, scale = X.mean(), X.std(ddof=0).replace(0, 1.0)
    model = FirthLogisticRegression(max_iter=200, gtol=1e-7, xtol=1e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(((X - centre) / scale).to_numpy(float), y)
        model.lrt()
    k = X.shape[1]
    return pd.DataFrame({"term": list(X.columns), "or": np.exp(model.coef_[:k] / scale.to_numpy(float)),
                         "ci_low": np.nan, "ci_high": np.nan, "p_value": model.lrt_pvalues_[:k],
                         "converged": bool(model.converged_)})


def logistic_verdict(table: pd.DataFrame) -> tuple[str, bool | None]:
    """Disease burden significant with OR > 1 and no other term significant, from a tidy logistic table."""
    t = table.set_index("term")
    row = t.loc["bm_blasts_pct"]
    if not bool(row["converged"]) or not fmt.is_finite(row["or"]):
        return "not estimable: the fit did not converge", None
    others = t.drop(index=[i for i in t.index if i in ("bm_blasts_pct", "const", "Intercept", "intercept")])
    ok = row["or"] > 1 and row["p_value"] < ALPHA and bool((others["p_value"] >= ALPHA).all())
    return (f"blasts {fmt.est_ci(row['or'], row['ci_low'], row['ci_high'], 3, prefix='OR ')} per percentage "
            f"point, {p_phrase(row['p_value'])}; smallest p among the other terms: "
            f"{fmt.p_value(others['p_value'].min())}"), bool(ok)


def logistic_inputs_missing(pt: pd.DataFrame) -> str | None:
    """Why the published logistic model cannot be fitted on this patient table, or None."""
    if not set(LOGISTIC_COVARIATES) <= set(pt.columns) or pt["severe_crs"].isna().all():
        return "disease burden, dose, the product's effector-memory share or CRS grades absent"
    if pt["severe_crs"].dropna().nunique() < 2:
        return "no patient, or every patient, had severe CRS"
    return None


def _f10(pt, c, memo):
    why = logistic_inputs_missing(pt)
    if why:
        return why, None
    fit = firth_logistic_pvalues if memo.get("quick") else multivariable_logistic
    return logistic_verdict(fit(pt))


FACTS: tuple[Fact, ...] = (
    Fact("F1", "24 patients with relapsed/refractory B-ALL received CD19 CAR-T cells", _f1, "count"),
    Fact("F2", "16 of the 24 reached complete remission", _f2, "count"),
    Fact("F3", "13 of those 16 remissions were MRD-negative", _f3, "count"),
    Fact("F4", "Patients in remission lived longer overall and without progression (significant)", _logrank_both,
         "association"),
    Fact("F5", "In multivariable Cox models a lower expansion peak meant worse OS and PFS (significant)", _f5,
         "association"),
    Fact("F6", "In the same models severe CRS meant worse OS and PFS (significant)", _f6, "association"),
    Fact("F7", "A larger effector-memory share of the product meant worse PFS (significant), not OS", _f7,
         "association"),
    Fact("F8", "19 of 24 patients had CRS, 6 of them severe", _f8, "count"),
    Fact("F9", "Severe CRS came with worse vital signs, cytopenias, coagulation and organ function, "
               "higher procalcitonin and cytokines than mild CRS", _f9, "direction"),
    Fact("F10", "In multivariable logistic regression only pretreatment disease burden predicted severe CRS", _f10,
         "association"),
)
FACT_IDS = tuple(f.id for f in FACTS)


FIT_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)  # lifelines' ConvergenceError is a ValueError


def guarded(check: Callable[[], tuple[str, bool | None]]) -> tuple[str, bool | None]:
    """Run one check; a model that cannot be fitted makes the fact not estimable (with the reason), not a crash."""
    try:
        return check()
    except FIT_ERRORS as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"not estimable: the model could not be fitted ({survival.fit_failure(reason)})", None


def check_facts(cohort: Cohort, pt: pd.DataFrame | None = None, counts: str = "exact",
                quick: bool = False, reuse: dict | None = None) -> pd.DataFrame:
    """Each published fact beside the book's computed result on this cohort; reproduced True/False/None (not testable).

    `counts` says how F1-F3 and F8 are compared (see count_agrees): 'exact' (the calibration's rule),
    'consistent' or 'auto' (exact at the published size, consistent at any other). `quick` skips the
    profile-likelihood CIs that no verdict needs (the fragility runs). `reuse` (a dict, see `shared`) keeps
    the results a later corrected analysis of the same cohort needs again.
    """
    pt = derive.patient_table(cohort) if pt is None else pt
    memo: dict = {"counts": counts, "quick": quick, "shared": {} if reuse is None else reuse}
    rows = []
    for fact in FACTS:
        computed, ok = guarded(lambda: fact.check(pt, cohort, memo))
        rows.append({"fact": fact.id, "published": fact.published, "computed": computed,
                     "reproduced": None if ok is None else bool(ok)})
    return pd.DataFrame(rows)
