"""'Findings at a glance': the main results of every chapter, one line each with its CI and a link to its section.

Every line is computed here from the analysis functions the chapters use (no display code of a chapter is
called), so the page changes with the cohort; a line whose inputs the cohort lacks says so instead.
The tidy frame behind the page (`finding`, `result`, `estimate`, `ci_low`, `ci_high`, `link`) is its CSV.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats as ss

from helpers import crs_severity, fmt, kinetics, labels, published, response, survival
from helpers.sections import Shown, Skipped

LINKS = {  # section anchors of the chapters (Sphinx ids of their headings), relative to book/findings.html
    "response": "../notebooks/02_response.html#remission-and-mrd-negativity",
    "survival": "../notebooks/03_survival.html#overall-progression-free-and-event-free-survival",
    "multivariable": "../notebooks/03_survival.html#the-published-multivariable-models",
    "crs": "../notebooks/04_crs.html#grading-crs-from-the-daily-record",
    "markers": "../notebooks/04_crs.html#what-came-with-severe-crs",
    "predictors": "../notebooks/04_crs.html#predicting-severe-crs-before-infusion",
    "kinetics": "../notebooks/05_kinetics.html#summary-as-the-literature-reports-it",
}
SECTION_NAMES = {"response": "Response", "survival": "Survival", "multivariable": "Survival: multivariable models",
                 "crs": "CRS", "markers": "CRS: what came with severe CRS", "predictors": "CRS: predictors",
                 "kinetics": "Cellular kinetics"}


def _row(finding: str, result: str, link: str, est=np.nan, lo=np.nan, hi=np.nan) -> dict:
    """One tidy row of the findings frame."""
    return {"finding": finding, "result": result, "estimate": est, "ci_low": lo, "ci_high": hi, "link": link}


def response_lines(page) -> list[dict]:
    """Remission among all infused patients, and MRD negativity among remissions, with exact CIs."""
    rates = response.response_rates(page.pt).set_index("term")
    rows = []
    for term, name in (("Remission", f"Remission ({'/'.join(page.settings.remission_responses)})"),
                       ("MRD-negative, of remissions", "MRD-negative, of patients in remission")):
        if term in rates.index:
            r = rates.loc[term]
            rows.append(_row(name, fmt.prop_ci(r["k"], r["n"], r["ci_low"], r["ci_high"]), "response",
                             r["estimate"], r["ci_low"], r["ci_high"]))
    return rows


def survival_lines(page) -> list[dict]:
    """Median OS and PFS (Kaplan-Meier, log-log 95% CI) in months."""
    rows = []
    for end, name in (("os", "Median overall survival"), ("pfs", "Median progression-free survival")):
        cols = [f"{end}_days", f"{end}_event"]
        if not set(cols) <= set(page.pt.columns) or page.pt[cols].isna().all().any():
            continue
        d = page.pt.dropna(subset=cols).astype({cols[1]: int})
        m = survival.km_estimates(d, *cols, times=()).iloc[0]
        text = fmt.months_ci(m["estimate"], m["ci_low"], m["ci_high"])
        text = text if text in (fmt.NOT_REACHED, fmt.NOT_ESTIMABLE) else text.replace(" (", " months (95% CI ", 1)
        rows.append(_row(name, text,
                         "survival", m["estimate"], m["ci_low"], m["ci_high"]))
    return rows


def _term_name(term: str) -> str:
    """'Peak CAR-T expansion (per log10)', 'Severe CRS', 'Product effector-memory T cells (per percentage point)'."""
    name, _, unit = labels.label(term).partition(", ")
    per = " (per log\u2081\u2080)" if "log" in unit else " (per percentage point)" if unit == "%" else ""
    return name + per


def _p(p: object) -> str:
    """'p = 0.006', 'p < 0.001'."""
    text = fmt.p_value(p)
    return f"p {text[0]} {text[1:]}" if text[:1] in "<>" else f"p = {text}"


def cox_lines(page) -> list[dict]:
    """The multivariable Cox models of OS and PFS (the book's reading of the published model): HR (95% CI), p."""
    pt = page.pt
    if not set(published.COX_COVARIATES + ["pfs_days"]) <= set(pt.columns) or \
            pt[published.COX_COVARIATES].isna().all().any():
        return []
    rows = []
    for end in ("os", "pfs"):
        t = published.multivariable_cox(pt, end)
        ok = bool(t["converged"].all())
        parts = [f"{_term_name(r.term)} {fmt.est_ci(r.hr if ok else np.nan, r.ci_low, r.ci_high, prefix='HR ')}"
                 + (f", {_p(r.p_value)}" if ok else "") for r in t.itertuples()]
        note = "" if ok else " (the fit did not converge)"
        rows.append(_row(f"Multivariable Cox model, {labels.ENDPOINTS[end].lower()}", "; ".join(parts) + note,
                         "multivariable"))
    return rows


def crs_lines(page) -> list[dict]:
    """Any and severe CRS with exact CIs, and the multivariable model of severe CRS (Firth)."""
    pt, s = page.pt, page.settings
    if pt["crs_grade"].isna().all():
        return []
    inc = crs_severity.incidence(pt, s.severe_crs_grade)
    from helpers.cohort_report import scale_words

    rows = [_row("Any CRS" if i == 0 else f"Severe CRS (grade \u2265{s.severe_crs_grade}, {scale_words(page)})",
                 fmt.prop_ci(r.k, r.n, r.ci_low, r.ci_high), "crs", r.estimate, r.ci_low, r.ci_high)
            for i, r in enumerate(inc.head(2).itertuples())]
    if set(published.LOGISTIC_COVARIATES) <= set(pt.columns) and pt["severe_crs"].dropna().nunique() == 2:
        t = published.multivariable_logistic(pt)
        t = t[t["term"].isin(published.LOGISTIC_COVARIATES)]
        parts = [f"{_term_name(r['term'])} {fmt.est_ci(r['or'], r['ci_low'], r['ci_high'], prefix='OR ')}, "
                 f"{_p(r['p_value'])}" for r in t.to_dict("records")]
        rows.append(_row("Multivariable model of severe CRS (Firth)", "; ".join(parts), "predictors"))
    return rows


def marker_lines(page) -> list[dict]:
    """How many severity markers differ between severe and mild CRS after Benjamini-Hochberg adjustment."""
    if page.pt["crs_grade"].isna().all() or not (page.data.has("daily") or page.data.has("labs")):
        return []
    c = crs_severity.page_comparison(page, "severe_vs_mild")  # the CRS chapter's comparison
    c = c[c["role"] == "tested"].reset_index(drop=True) if not c.empty else c
    if c.empty:
        return []
    k, q = int((c["p_adj_bh"] < 0.05).sum()), c["p_adj_bh"]
    result = (f"{k} of {fmt.plural(len(c), 'marker')} differ between severe and mild CRS at a "
              f"Benjamini-Hochberg q < 0.05 (smallest q {fmt.p_value(q.min())})")
    return [_row("Severity markers, severe against mild CRS", result, "markers", float(k))]


def expansion_lines(page) -> list[dict]:
    """Geometric mean Cmax with its t-based 95% CI on the log scale, and median Tmax (range)."""
    if not page.data.has("kinetics"):
        return []
    params = kinetics.nca(page.data.kinetics)
    pos = np.log(params.loc[params["cmax"] > 0, "cmax"].to_numpy(dtype=float))
    if pos.size < 2:
        return []
    half = ss.t.ppf(0.975, pos.size - 1) * pos.std(ddof=1) / np.sqrt(pos.size)
    gm, lo, hi = np.exp(pos.mean()), np.exp(pos.mean() - half), np.exp(pos.mean() + half)
    tmax = params["tmax"].dropna()
    from helpers.kinetics_report import day, sig3

    result = (f"geometric mean Cmax {sig3(gm)} copies/\u00b5g DNA (95% CI {sig3(lo)}{fmt.DASH}{sig3(hi)}; "
              f"n = {pos.size}); median Tmax day {day(tmax.median())} (range {day(tmax.min())}{fmt.DASH}{day(tmax.max())})")
    return [_row("Peak CAR-T expansion", result, "kinetics", gm, lo, hi)]


def findings_frame(page) -> pd.DataFrame:
    """Every finding of the page as a tidy frame (the CSV download)."""
    rows = [r for f in (response_lines, survival_lines, cox_lines, crs_lines, marker_lines, expansion_lines)
            for r in f(page)]
    return pd.DataFrame(rows, columns=["finding", "result", "estimate", "ci_low", "ci_high", "link"])


def at_a_glance(page) -> Shown | Skipped:
    """The findings as a list, one line each, each with a link to the section that shows it in full."""
    t = findings_frame(page)
    if t.empty:
        return Skipped("findings at a glance", "this cohort has none of the results the chapters report.")
    lines = [f"- **{r.finding}:** {r.result}. [{SECTION_NAMES[r.link]}]({LINKS[r.link]})" for r in t.itertuples()]
    absent = [SECTION_NAMES[k] for k in ("survival", "crs", "markers", "kinetics") if k not in set(t["link"])]
    parts = ["\n".join(lines)]
    if absent:
        parts.append(f"Not available for this cohort (its inputs are absent): {fmt.join_words(absent)}.")
    return Shown(*parts, page.download(t.assign(link=t["link"].map(LINKS)), "findings_at_a_glance"), data=t)
