"""Chapter-level composition for the survival chapter: endpoints the cohort supports, the candidate
list, naive-versus-landmark comparisons, sensitivity analyses side by side, and the numbers its prose
quotes. The statistics themselves are in `helpers.survival`; the published models in
`helpers.published` (one definition).

Remission timing: the day each responder was known to be in remission comes from the optional
`remission_day` column; where a cohort does not record it, every responder (best response in the
cohort's remission set) is assumed to be known in remission at the response-assessment day
`landmark_day` (cohort setting, day 28 by default), not before (helpers.derive).
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from helpers import published, survival

ENDPOINTS = {"os": "Overall survival", "pfs": "Progression-free survival"}
ABBREV = {"os": "OS", "pfs": "PFS"}
# Univariable candidates (derive.patient_table columns) and how the chapter names them.
CANDIDATES = {
    "log10_peak": "Peak CAR-T expansion (log10 copies/\u00b5g)",
    "severe_crs": "Severe CRS",
    "product_em_pct": "Effector-memory share of product (%)",
    "bm_blasts_pct": "Disease burden (marrow blasts, %)",
    "age_years": "Age (years)",
    "ph_positive": "Ph-positive",
    "prior_allo_hsct": "Prior allo-HSCT",
    "log10_dose": "CAR-T dose (log10 cells/kg)",
    "cd4_cd8_ratio": "CD4:CD8 ratio of product",
    "remission": "Remission (CR/CRi)",
}
BINARY = ("severe_crs", "ph_positive", "prior_allo_hsct", "remission")
REMISSION_DAY = "remission_day"
REMISSION_LABELS = {0: "No remission", 1: "Remission (CR/CRi)"}
SHOW_COLS = ["label", "hr", "ci_low", "ci_high", "p_value", "n", "events"]


def endpoints(pt: pd.DataFrame) -> dict[str, str]:
    """The endpoints this cohort supports: OS always, PFS when pfs_days and pfs_event are present."""
    ok = {"os": True, "pfs": {"pfs_days", "pfs_event"} <= set(pt.columns) and pt["pfs_days"].notna().any()}
    return {k: v for k, v in ENDPOINTS.items() if ok[k]}


def model_frame(pt: pd.DataFrame, landmark_day: float) -> pd.DataFrame:
    """patient_table with binary covariates as 0/1 floats, events as int, and `remission_day`: derive's (recorded,
    else the landmark day) for responders, NaN otherwise; `landmark_day` is used only when the table lacks it."""
    d = pt.copy()
    for c in BINARY:
        if c in d:
            d[c] = d[c].astype("boolean").astype("Float64").astype(float)
    for end in ENDPOINTS:
        if f"{end}_event" in d:
            d[f"{end}_event"] = d[f"{end}_event"].astype("Float64").astype(float)
    if REMISSION_DAY not in d:
        d[REMISSION_DAY] = np.nan
    d[REMISSION_DAY] = np.where(d["remission"] == 1, d[REMISSION_DAY].fillna(float(landmark_day)), np.nan)
    d["remission_group"] = np.where(d["remission"] == 1, REMISSION_LABELS[1], REMISSION_LABELS[0])
    return d


def available_candidates(pt: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(candidates present with at least two distinct values, candidates absent or constant)."""
    have = [c for c in CANDIDATES if c in pt and pt[c].dropna().nunique() >= 2]
    return have, [c for c in CANDIDATES if c not in have]


def label(table: pd.DataFrame) -> pd.DataFrame:
    """Add a `label` column naming each term in words."""
    return table.assign(label=table["term"].map(CANDIDATES).fillna(table["term"]))


def km_table(d: pd.DataFrame, ends: dict[str, str], group: str | None = None,
             times: Sequence[float] = (365.0, 730.0), conf_type: str = "log-log") -> pd.DataFrame:
    """survival.km_estimates for every endpoint, stacked with an `endpoint` column."""
    parts = [survival.km_estimates(d, f"{e}_days", f"{e}_event", group, times, conf_type=conf_type)
             .assign(endpoint=name) for e, name in ends.items()]
    out = pd.concat(parts, ignore_index=True)
    return out[["endpoint", *[c for c in out.columns if c != "endpoint"]]]


def ci_method_comparison(d: pd.DataFrame, ends: dict[str, str], times: Sequence[float]) -> pd.DataFrame:
    """The same KM estimates with log-log (lifelines, this book) and log (R's default) CIs, side by side."""
    keys = ["endpoint", "group", "quantity", "estimate"]
    a = km_table(d, ends, None, times)[keys + ["ci_low", "ci_high"]]
    b = km_table(d, ends, None, times, conf_type="log")[keys + ["ci_low", "ci_high"]]
    out = a.merge(b, on=keys, suffixes=("_loglog", "_log"))
    return out.drop(columns="group")


def logrank_table(d: pd.DataFrame, ends: dict[str, str], group: str, analysis: str) -> pd.DataFrame:
    """Log-rank test per endpoint as a tidy table (one row per endpoint)."""
    rows = [{"endpoint": name, "analysis": analysis,
             **survival.logrank(d, f"{e}_days", f"{e}_event", group)} for e, name in ends.items()]
    return pd.DataFrame(rows)


def landmark_frame(d: pd.DataFrame, end: str, landmark_day: float) -> pd.DataFrame:
    """survival.landmark for one endpoint: patients event-free after the landmark, time from the landmark, and
    remission (with its group label) as known by the landmark: a remission documented later counts as none."""
    lm = survival.landmark(d, f"{end}_days", f"{end}_event", landmark_day, covariate_day_col=REMISSION_DAY)
    known = lm[f"{REMISSION_DAY}_by_landmark"].astype(float)
    return lm.assign(remission=known, remission_group=np.where(known == 1, REMISSION_LABELS[1], REMISSION_LABELS[0]))


def remission_bias(d: pd.DataFrame, end: str, landmark_day: float) -> pd.DataFrame:
    """Remission HR three ways: naive (time 0 = infusion), landmark, and time-varying from `landmark_day`.

    Naive counts responders as in remission from day 0 (guarantee-time bias, Anderson, Cain &
    Gelber 1983); the landmark and time-varying models do not (Giobbie-Hurder et al. 2013).
    """
    dur, ev = f"{end}_days", f"{end}_event"
    naive = survival.cox_table(d, dur, ev, ["remission"]).assign(analysis="naive: remission from day 0")
    lm = survival.cox_table(landmark_frame(d, end, landmark_day), dur, ev, ["remission"])
    lm = lm.assign(analysis=f"landmark at day {landmark_day:g} (remission known by then)")
    tv = survival.time_varying_cox(d, dur, ev, "remission", REMISSION_DAY)
    tv = tv.assign(analysis="time-varying: remission from the day it was known")
    out = pd.concat([naive, lm, tv], ignore_index=True).assign(endpoint=ENDPOINTS[end])
    return out[["endpoint", "analysis", "term", "hr", "ci_low", "ci_high", "p_value", "n", "events",
                "converged", "warning"]]


def published_model(d: pd.DataFrame, end: str) -> pd.DataFrame:
    """published.multivariable_cox when its covariates are all available, else the same model without the absent ones."""
    usable = [c for c in published.COX_COVARIATES if c in d and d[c].dropna().nunique() >= 2]
    if not usable:
        return pd.DataFrame(columns=["term", "coef", "se", "hr", "ci_low", "ci_high", "p_value", "n", "events", "epv",
                                     "concordance", "converged", "warning", "model", "label", "endpoint"])
    if usable == published.COX_COVARIATES:
        out = published.multivariable_cox(d, end).assign(model="as published")
    else:
        missing = sorted(set(published.COX_COVARIATES) - set(usable))
        out = survival.cox_table(d, f"{end}_days", f"{end}_event", usable)
        out = out.assign(model="as published without " + ", ".join(missing))
    return label(out).assign(endpoint=ENDPOINTS[end])


def published_model_landmark(d: pd.DataFrame, end: str, landmark_day: float) -> pd.DataFrame:
    """The published model fitted from infusion (naive) and from the landmark, stacked (`analysis` column)."""
    naive = published_model(d, end).assign(analysis="naive: from infusion")
    lm = published_model(landmark_frame(d, end, landmark_day), end)
    lm = lm.assign(analysis=f"landmark at day {landmark_day:g}")
    return pd.concat([naive, lm], ignore_index=True)


def firth_vs_standard(d: pd.DataFrame, end: str) -> pd.DataFrame:
    """The published model by ordinary (Efron) and Firth-penalised (Breslow) Cox, stacked (`method` column)."""
    std = published_model(d, end)
    covs = std["term"].tolist()
    firth = label(survival.firth_cox_table(d, f"{end}_days", f"{end}_event", covs)).assign(endpoint=ENDPOINTS[end])
    std = std.assign(method="Cox (Efron ties; Wald CI and p)")
    firth = firth.assign(method="Firth (Breslow ties; profile-likelihood CI, penalised LRT p)")
    cols = ["endpoint", "method", "label", "hr", "ci_low", "ci_high", "p_value", "n", "events"]
    return pd.concat([std[cols], firth[cols]], ignore_index=True)


def hsct_censored(d: pd.DataFrame, end: str) -> pd.DataFrame:
    """The frame with `{end}_days/_event` replaced by their values censored at allo-HSCT (survival.censor_at)."""
    c = survival.censor_at(d, f"{end}_days", f"{end}_event", "hsct_day")
    return c.assign(**{f"{end}_days": c[f"{end}_days_cens"], f"{end}_event": c[f"{end}_event_cens"].astype(float)})


def hsct_sensitivity(d: pd.DataFrame, end: str) -> pd.DataFrame:
    """Remission HR and the published model with and without censoring at allo-HSCT, stacked (`analysis`)."""
    parts = []
    for name, frame in (("as observed", d), ("censored at allo-HSCT", hsct_censored(d, end))):
        rem = label(survival.cox_table(frame, f"{end}_days", f"{end}_event", ["remission"]))
        parts += [rem.assign(analysis=name, model="remission (naive)"),
                  published_model(frame, end).assign(analysis=name)]
    out = pd.concat(parts, ignore_index=True).assign(endpoint=ENDPOINTS[end])
    return out[["endpoint", "analysis", "model", "label", "hr", "ci_low", "ci_high", "p_value", "n", "events"]]


def univariable_table(d: pd.DataFrame, ends: dict[str, str], candidates: Sequence[str]) -> pd.DataFrame:
    """survival.univariable_cox over the candidates, for every endpoint, labelled."""
    parts = [label(survival.univariable_cox(d, f"{e}_days", f"{e}_event", list(candidates))).assign(endpoint=name)
             for e, name in ends.items()]
    return pd.concat(parts, ignore_index=True)


def ph_table(d: pd.DataFrame, ends: dict[str, str], covariates: Sequence[str]) -> pd.DataFrame:
    """survival.ph_test (R cox.zph, KM transform) of the given model for every endpoint, labelled."""
    parts = [label(survival.ph_test(d, f"{e}_days", f"{e}_event", list(covariates))).assign(endpoint=name)
             for e, name in ends.items()]
    return pd.concat(parts, ignore_index=True)[["endpoint", "label", "statistic", "df", "p_value", "transform"]]


def peaks_after(kinetics: pd.DataFrame | None, landmark_day: float) -> int:
    """How many patients' highest kinetics sample lies after the landmark (first day of the maximum)."""
    if kinetics is None or kinetics.empty:
        return 0
    k = kinetics.dropna(subset=["car_copies_per_ug_dna"]).sort_values(["patient_id", "day"], kind="stable")
    tmax = k.loc[k.groupby("patient_id")["car_copies_per_ug_dna"].idxmax(), "day"]
    return int((tmax > landmark_day).sum())


def epv_sentence(table: pd.DataFrame) -> str:
    """'EPV = events / parameters = 19 / 3 = 6.3', with Peduzzi's warning when below 10."""
    events, k = int(table["events"].iloc[0]), len(table)
    epv = events / k
    text = f"events per variable (EPV) = {events} events / {k} parameters = {epv:.1f}"
    if epv < survival.EPV_MIN:
        text += (f". **Warning: EPV below {survival.EPV_MIN:g}**: coefficients are biased away from zero and their "
                 "CIs too narrow at this size (Peduzzi et al. 1996); read the Firth estimates beside them")
    return text


# --------------------------------------------------------------------------------------------
# Sentences the prose quotes (every number computed)
# --------------------------------------------------------------------------------------------

def epv_paragraph(mv: pd.DataFrame) -> str:
    """epv_sentence for every endpoint's model, bold endpoint names."""
    return " ".join(f"**{e}**: {epv_sentence(rows)}." for e, rows in mv.groupby("endpoint", sort=False))


def glue_facts(facts: dict, prefix: str = "sv_") -> None:
    """myst_nb.glue every fact (NumPy scalars as int/float, as glue needs) under `prefix + key`, not displayed."""
    from myst_nb import glue

    for key, value in facts.items():
        if isinstance(value, (bool, np.bool_)):
            value = str(value)
        elif isinstance(value, (int, np.integer)):
            value = int(value)
        elif isinstance(value, (float, np.floating)):
            value = float(value)
        glue(prefix + key, value, display=False)


def days(x: float) -> str:
    """'282 days', or 'not reached' for inf, 'not estimable' for NaN."""
    if isinstance(x, float) and math.isnan(x):
        return "not estimable"
    return "not reached" if math.isinf(x) else f"{x:.0f} days"


def pct_ci(est: float, lo: float, hi: float) -> str:
    """'45% (95% CI 24-64%)' for a probability; 'not estimable' when beyond follow-up."""
    if math.isnan(est):
        return "not estimable (beyond follow-up)"
    lims = "-".join("NA" if math.isnan(v) else f"{100 * v:.0f}" for v in (lo, hi))
    return f"{100 * est:.0f}% (95% CI {lims}%)"


def km_sentence(km: pd.DataFrame, times: Sequence[float]) -> str:
    """Median and S(t) with CIs per endpoint (one sentence each) from km_table(..., group=None)."""
    out = []
    for name, rows in km.groupby("endpoint", sort=False):
        r = rows.set_index("quantity")
        med = r.loc["median"]
        text = (f"**{name}**: {int(med['events'])} events in {int(med['n'])} patients; median "
                f"{days(med['estimate'])} (95% CI {days(med['ci_low'])} to {days(med['ci_high'])})")
        for t in times:
            q = r.loc[f"S({float(t):g})"]
            text += f"; at day {float(t):g} {pct_ci(q['estimate'], q['ci_low'], q['ci_high'])}"
        out.append(text + ".")
    return "\n\n".join(out)


def p_text(p: float) -> str:
    """'p = 0.012' or 'p < 0.001' (tables.format_p digits)."""
    from helpers.tables import format_p

    text = format_p(p)
    return f"p {text[0]} {text[1:]}" if text[:1] in "<>" and text else f"p = {text}"


def hr_text(row: pd.Series) -> str:
    """'HR 0.21 (95% CI 0.06-0.71), p = 0.012'."""
    if not np.isfinite(row["hr"]):
        return "HR not estimable"
    return f"HR {row['hr']:.2f} (95% CI {row['ci_low']:.2f}-{row['ci_high']:.2f}), {p_text(row['p_value'])}"


def bias_sentence(bias: pd.DataFrame, lr_naive: pd.DataFrame, lr_landmark: pd.DataFrame) -> str:
    """One paragraph per endpoint comparing the naive, landmark and time-varying remission estimates."""
    out = []
    for name, rows in bias.groupby("endpoint", sort=False):
        r = rows.reset_index(drop=True)
        p0 = lr_naive.set_index("endpoint").loc[name, "p_value"]
        p1 = lr_landmark.set_index("endpoint").loc[name, "p_value"]
        out.append(f"**{name}**: naive log-rank {p_text(p0)}, {hr_text(r.iloc[0])}; landmark "
                   f"(n = {int(r.loc[1, 'n'])}, {int(r.loc[1, 'events'])} events) log-rank {p_text(p1)}, "
                   f"{hr_text(r.iloc[1])}; time-varying {hr_text(r.iloc[2])}.")
    return "\n\n".join(out)


def ph_sentence(ph: pd.DataFrame, alpha: float = 0.05) -> str:
    """Which terms of which model show evidence against proportional hazards (cox.zph p < alpha)."""
    out = []
    for name, rows in ph.groupby("endpoint", sort=False):
        glob = rows[rows["label"] == "GLOBAL"]["p_value"].iloc[0]
        bad = rows[(rows["label"] != "GLOBAL") & (rows["p_value"] < alpha)]["label"].tolist()
        verdict = ("no term has p < %g" % alpha) if not bad else "p < %g for %s" % (alpha, ", ".join(bad))
        out.append(f"**{name}**: global test p = {glob:.2f}; {verdict}.")
    return "\n\n".join(out)


def fragility(mv: pd.DataFrame, km: pd.DataFrame, bias: pd.DataFrame) -> dict:
    """What the closing paragraph quotes: HR CI widths (ratio upper/lower), the median-OS CI, the remission HR shift."""
    ratio = (mv["ci_high"] / mv["ci_low"]).replace([np.inf, -np.inf], np.nan).dropna() if len(mv) else pd.Series()
    med = km[km["quantity"] == "median"].iloc[0]
    os_bias = bias[bias["endpoint"] == ENDPOINTS["os"]].reset_index(drop=True)
    return {"ci_ratio_max": float(ratio.max()) if len(ratio) else math.nan,
            "ci_ratio_min": float(ratio.min()) if len(ratio) else math.nan,
            "os_median_ci": f"{days(med['ci_low'])} to {days(med['ci_high'])}",
            "os_events": int(med["events"]),
            "os_epv": float(mv["epv"].iloc[0]) if len(mv) else math.nan,
            "remission_shift": f"{hr_text(os_bias.iloc[0])} naive, {hr_text(os_bias.iloc[1])} from the landmark"}


# --------------------------------------------------------------------------------------------
# The shipped cohort's R reference (tests/r_reference/make_cohort_fixture.py)
# --------------------------------------------------------------------------------------------

def r_reference_frame(pt: pd.DataFrame, landmark_day: float) -> pd.DataFrame:
    """The derived per-patient columns R's survival package is run on (0/1 binaries, remission_day per assumption)."""
    d = model_frame(pt, landmark_day)
    cols = ["patient_id", "os_days", "os_event", "pfs_days", "pfs_event", REMISSION_DAY, *CANDIDATES,
            "hsct_day", "event_type"]
    return d[[c for c in cols if c in d]].reset_index(drop=True)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic CSV bytes (shortest round-trip floats, '\\n' line ends, empty = missing)."""
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def sha256(frame: pd.DataFrame) -> str:
    """sha256 of csv_bytes(frame): what the R fixture records to detect a stale reference."""
    return hashlib.sha256(csv_bytes(frame)).hexdigest()


# --------------------------------------------------------------------------------------------
# Every endpoint at once (what the chapter displays)
# --------------------------------------------------------------------------------------------

def _each(ends: dict[str, str], fn) -> pd.DataFrame:
    """fn(endpoint code) for every endpoint, stacked."""
    return pd.concat([fn(e) for e in ends], ignore_index=True)


def landmark_logrank(d: pd.DataFrame, ends: dict[str, str], landmark_day: float) -> pd.DataFrame:
    """Log-rank by remission group among patients event-free after the landmark, per endpoint."""
    return _each(ends, lambda e: logrank_table(landmark_frame(d, e, landmark_day), {e: ends[e]}, "remission_group",
                                               f"landmark at day {landmark_day:g}"))


def remission_bias_table(d: pd.DataFrame, ends: dict[str, str], landmark_day: float) -> pd.DataFrame:
    """remission_bias for every endpoint."""
    return _each(ends, lambda e: remission_bias(d, e, landmark_day))


def published_models(d: pd.DataFrame, ends: dict[str, str]) -> pd.DataFrame:
    """published_model for every endpoint."""
    return _each(ends, lambda e: published_model(d, e))


def published_landmark_table(d: pd.DataFrame, ends: dict[str, str], landmark_day: float) -> pd.DataFrame:
    """published_model_landmark for every endpoint, in display columns."""
    out = _each(ends, lambda e: published_model_landmark(d, e, landmark_day))
    return out[["endpoint", "analysis", *SHOW_COLS, "concordance"]]


def firth_table(d: pd.DataFrame, ends: dict[str, str]) -> pd.DataFrame:
    """firth_vs_standard for every endpoint."""
    return _each(ends, lambda e: firth_vs_standard(d, e))


def hsct_table(d: pd.DataFrame, ends: dict[str, str]) -> pd.DataFrame:
    """hsct_sensitivity for every endpoint."""
    return _each(ends, lambda e: hsct_sensitivity(d, e))


def plot_schoenfeld_panels(d: pd.DataFrame, end: str, covariates: Sequence[str], axes) -> list:
    """survival.plot_schoenfeld for each covariate of the model on the given axes (one per covariate)."""
    resid = survival.scaled_schoenfeld(d, f"{end}_days", f"{end}_event", list(covariates))
    axes = list(np.atleast_1d(axes))
    for ax, term in zip(axes, covariates):
        survival.plot_schoenfeld(resid, term, ax=ax)
        ax.set_title(f"{ABBREV[end]}: {CANDIDATES.get(term, term)}", fontsize=8)
        ax.set_ylabel("Scaled Schoenfeld residual")
    return axes


def remission_timing_sentence(pt: pd.DataFrame, landmark_day: float) -> str:
    """How the remission day is known in this cohort (recorded or assumed), and what it does to the analyses."""
    rem = pt["remission"].astype(bool)
    assumed = int((pt["remission_day_assumed"].astype(bool) & rem).sum()) if "remission_day_assumed" in pt else int(rem.sum())
    recorded = int(rem.sum()) - assumed
    late = int((pt.loc[rem, "remission_day"] > landmark_day).sum()) if "remission_day" in pt else 0
    if recorded == 0:
        return (f"**Remission day.** This cohort does not record the day remission was documented, so every "
                f"responder is assumed to be in remission from the landmark, day {landmark_day:g}, and not before. "
                "Under that single-day assumption the landmark and time-varying estimates coincide: before the "
                "landmark every patient is unexposed, so the time-varying partial likelihood reduces to the "
                "landmark one.")
    text = (f"**Remission day.** The day remission was documented is recorded for {recorded} of the "
            f"{int(rem.sum())} responders" + (f" (the other {assumed} are assumed in remission from day "
                                               f"{landmark_day:g})" if assumed else "") + ". ")
    text += (f"{late} responder{'s were' if late != 1 else ' was'} documented after the day-{landmark_day:g} "
             f"landmark and {'count' if late != 1 else 'counts'} as not (yet) in remission in the landmark "
             "analysis, while the time-varying "
             "model moves each patient to the remission group on the recorded day, so the two estimates differ.")
    return text
