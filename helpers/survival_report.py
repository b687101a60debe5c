"""The survival chapter: its analyses as tidy frames and its sections as `(page) -> Shown | Skipped`.

The statistics are in `helpers.survival`; the published models in `helpers.published` (one definition).
The corrected analyses are plain functions over a cohort returning tidy frames, so other pages (the
"Does it hold up?" page) read the same numbers: `corrected_remission_hr`, `landmark_sensitivity`,
`severe_crs_sensitivity`, `expansion_adjustment`, `firth_published`, `response_endpoints`, `nrm_by_cause`.
Every estimate carries `estimable` and `reason`: a fit that did not converge or is not identified is shown
as "not estimable" with its reason, never as a number.

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
ABBREV = {"os": "OS", "pfs": "PFS", "efs": "EFS", "dor": "DoR"}
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
    return add_endpoints(d, landmark_day)


def add_endpoints(d: pd.DataFrame, landmark_day: float) -> pd.DataFrame:
    """Add EFS, duration of response and the relapse/NRM coding among responders (all from the contract's columns).

    - efs_days/efs_event: event-free survival as the CAR-T trials define it (death, relapse, or treatment
      failure): responders as the contract's PFS; a patient without remission fails at the response
      assessment (`landmark_day`) or at an earlier recorded event; censored only if lost before assessment.
    - dor_days/dor_event: duration of response, from the remission day to relapse or death from any
      cause (responders only; NaN otherwise).
    - cir_type: among responders from the remission day, 1 relapse after remission, 2 death without
      relapse (non-relapse mortality), 0 censored; refractory progression never enters (not a relapse).
    """
    d = d.copy()
    if not {"pfs_days", "pfs_event"} <= set(d.columns):
        return d
    resp = d["remission"] == 1
    pfs, ev = d["pfs_days"].astype(float), d["pfs_event"].astype(float)
    fail_day = np.minimum(pfs, float(landmark_day))
    assessed = (ev == 1) | (pfs >= float(landmark_day))
    d["efs_days"] = np.where(resp, pfs, np.where(assessed, fail_day, pfs))
    d["efs_event"] = np.where(resp, ev, np.where(assessed, 1.0, 0.0))
    d.loc[pfs.isna() | ev.isna(), ["efs_days", "efs_event"]] = np.nan
    start = d[REMISSION_DAY]
    d["dor_days"] = np.where(resp, np.maximum(pfs - start, 0.0), np.nan)
    d["dor_event"] = np.where(resp, ev, np.nan)
    etype = d["event_type"].astype("Float64").astype(float) if "event_type" in d else ev
    d["cir_type"] = np.where(resp, etype, np.nan)
    return d


def available_candidates(pt: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(candidates present with at least two distinct values, candidates absent or constant)."""
    have = [c for c in CANDIDATES if c in pt and pt[c].dropna().nunique() >= 2]
    return have, [c for c in CANDIDATES if c not in have]


def label(table: pd.DataFrame) -> pd.DataFrame:
    """Add a `label` column naming each term in words."""
    from helpers import labels as registry

    return table.assign(label=[registry.label(t) for t in table["term"]])


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
                 "CIs too narrow at this size (Peduzzi et al. 1995; 5 to 9 is often adequate, Vittinghoff & McCulloch 2007); read the Firth estimates beside them")
    return text


# --------------------------------------------------------------------------------------------
# Sentences the prose quotes (every number computed)
# --------------------------------------------------------------------------------------------

def epv_paragraph(mv: pd.DataFrame) -> str:
    """epv_sentence for every endpoint's model, bold endpoint names."""
    return " ".join(f"**{e}**: {epv_sentence(rows)}." for e, rows in mv.groupby("endpoint", sort=False))


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
    """'p = 0.012' or 'p < 0.001' (the book's one p-value style, helpers.fmt)."""
    text = fmt.p_value(p, missing="")
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


# ============================================================================================
# Corrected analyses over a cohort (tidy frames; the "Does it hold up?" page reads these)
# ============================================================================================

MONTH = 365.25 / 12
LANDMARK_RANGE = (14.0, 60.0)
ALL_ENDPOINTS = {"os": "Overall survival", "pfs": "Progression-free survival", "efs": "Event-free survival"}


def frame(cohort, landmark_day: float | None = None) -> pd.DataFrame:
    """model_frame of the cohort's derived patient table at `landmark_day` (default: the cohort's setting)."""
    from helpers import derive

    lm = float(cohort.settings.landmark_day if landmark_day is None else landmark_day)
    return model_frame(derive.patient_table(cohort), lm)


def _lm(cohort, landmark_day: float | None) -> float:
    return float(cohort.settings.landmark_day if landmark_day is None else landmark_day)


def corrected_remission_hr(cohort, endpoint: str = "os", landmark_day: float | None = None,
                           d: pd.DataFrame | None = None) -> pd.DataFrame:
    """Remission HR naive, at the landmark and time-varying (the primary corrected estimate), with estimability.

    Tidy: endpoint, analysis (naive / landmark / time-varying), primary (time-varying), hr, ci_low, ci_high,
    p_value, n, events, landmark_day, late (responders documented after the landmark, counted as not in
    remission there), estimable, reason.
    """
    L = _lm(cohort, landmark_day)
    d = frame(cohort, L) if d is None else d
    dur, ev = f"{endpoint}_days", f"{endpoint}_event"
    naive = survival.safe_cox(d, dur, ev, ["remission"]).assign(analysis="naive")
    lm_d = landmark_frame(d, endpoint, L)
    lm = survival.safe_cox(lm_d, dur, ev, ["remission"]).assign(analysis="landmark")
    tv = survival.safe_time_varying_cox(d, dur, ev, "remission", REMISSION_DAY).assign(analysis="time-varying")
    out = pd.concat([naive, lm, tv], ignore_index=True)
    late = int((lm_d[REMISSION_DAY] > L).sum())
    out = out.assign(endpoint=endpoint, primary=out["analysis"] == "time-varying", landmark_day=L,
                     late=np.where(out["analysis"] == "landmark", late, 0))
    return out[["endpoint", "analysis", "primary", "hr", "ci_low", "ci_high", "p_value", "n", "events",
                "landmark_day", "late", "estimable", "reason"]]


def landmark_days(d: pd.DataFrame, landmark_day: float) -> list[float]:
    """Landmarks from day 14 to day 60 by weeks, extended to cover the latest remission day, plus the setting."""
    latest = float(np.nanmax(d[REMISSION_DAY])) if d[REMISSION_DAY].notna().any() else LANDMARK_RANGE[0]
    hi = max(LANDMARK_RANGE[1], latest)
    days = set(np.arange(LANDMARK_RANGE[0], hi + 1e-9, 7.0).tolist()) | {hi, float(landmark_day), latest}
    return sorted(x for x in days if x >= 1)


def landmark_sensitivity(cohort, endpoint: str = "os", landmark_day: float | None = None,
                         d: pd.DataFrame | None = None) -> pd.DataFrame:
    """Landmark remission HR over a range of landmark days (survival.landmark_series), beside the time-varying HR."""
    L = _lm(cohort, landmark_day)
    d = frame(cohort, L) if d is None else d
    out = survival.landmark_series(d, f"{endpoint}_days", f"{endpoint}_event", REMISSION_DAY, landmark_days(d, L))
    return out.assign(endpoint=endpoint, chosen=out["landmark_day"] == L)


def _crs_deaths(d: pd.DataFrame) -> pd.Series:
    """Deaths from CRS (death_cause 'crs'); all False without the column."""
    return d["death_cause"].eq("crs").fillna(False) if "death_cause" in d else pd.Series(False, index=d.index)


def severe_crs_sensitivity(cohort, endpoint: str = "os", landmark_day: float | None = None,
                           d: pd.DataFrame | None = None) -> pd.DataFrame:
    """Severe-CRS HR as published (from infusion), excluding deaths from CRS, time-varying from the onset of
    severe CRS, and both; plus the published model excluding deaths from CRS. Tidy with estimability."""
    d = frame(cohort, landmark_day) if d is None else d
    dur, ev = f"{endpoint}_days", f"{endpoint}_event"
    no_crs_death = d[~_crs_deaths(d)]
    parts = [survival.safe_cox(d, dur, ev, ["severe_crs"]).assign(analysis="from infusion"),
             survival.safe_cox(no_crs_death, dur, ev, ["severe_crs"]).assign(analysis="excluding deaths from CRS")]
    if "severe_crs_onset_day" in d and d["severe_crs_onset_day"].notna().any():
        tv = d.assign(severe_crs_onset_day=d["severe_crs_onset_day"].where(d["severe_crs"] == 1))
        parts += [survival.safe_time_varying_cox(tv, dur, ev, "severe_crs", "severe_crs_onset_day")
                  .assign(analysis="time-varying from onset"),
                  survival.safe_time_varying_cox(tv[~_crs_deaths(tv)], dur, ev, "severe_crs", "severe_crs_onset_day")
                  .assign(analysis="time-varying from onset, excluding deaths from CRS")]
    out = pd.concat(parts, ignore_index=True).assign(model="severe CRS alone")
    covs = [c for c in published.COX_COVARIATES if c in d and d[c].dropna().nunique() >= 2]
    if "severe_crs" in covs:
        pub = survival.safe_cox(no_crs_death, dur, ev, covs).assign(analysis="excluding deaths from CRS",
                                                                     model="published model")
        out = pd.concat([out, pub], ignore_index=True)
        if "time-varying from onset" in set(out["analysis"]):
            others = [c for c in covs if c != "severe_crs"]
            tvp = survival.safe_time_varying_cox(tv, dur, ev, "severe_crs", "severe_crs_onset_day", others)
            tvp = tvp.set_index("term").loc[covs].reset_index()
            out = pd.concat([out, tvp.assign(analysis="time-varying from onset", model="published model")],
                            ignore_index=True)
    out = out.assign(endpoint=endpoint, n_crs_deaths=int(_crs_deaths(d).sum()))
    return out[["endpoint", "model", "analysis", "term", "hr", "ci_low", "ci_high", "p_value", "n", "events",
                "n_crs_deaths", "estimable", "reason"]]


EXPANSION_MODELS = {"alone": [], "with baseline effector-memory share": ["product_em_pct"],
                    "as published (adds severe CRS, downstream)": ["severe_crs", "product_em_pct"]}


def expansion_adjustment(cohort, endpoint: str = "os", landmark_day: float | None = None,
                         d: pd.DataFrame | None = None) -> pd.DataFrame:
    """Peak-expansion HR alone, adjusted for the baseline effector-memory share, and adjusted also for severe
    CRS (downstream of expansion), on all patients and without those whose peak was not observed."""
    d = frame(cohort, landmark_day) if d is None else d
    dur, ev = f"{endpoint}_days", f"{endpoint}_event"
    observed = d[~d["peak_not_observed"].astype("boolean").fillna(False).astype(bool)] if "peak_not_observed" in d else d
    rows = []
    for cohort_name, sub in (("all patients", d), ("peak observed", observed)):
        for model, extra in EXPANSION_MODELS.items():
            covs = ["log10_peak", *[c for c in extra if c in sub and sub[c].dropna().nunique() >= 2]]
            if len(covs) < 1 + len(extra):
                continue
            fit = survival.safe_cox(sub, dur, ev, covs).iloc[[0]]
            rows.append(fit.assign(patients=cohort_name, model=model, adjusted_for=", ".join(extra)))
    out = pd.concat(rows, ignore_index=True).assign(endpoint=endpoint,
                                                    n_not_observed=len(d) - len(observed))
    return out[["endpoint", "patients", "model", "adjusted_for", "hr", "ci_low", "ci_high", "p_value", "n",
                "events", "n_not_observed", "estimable", "reason"]]


def response_endpoints(cohort, landmark_day: float | None = None, d: pd.DataFrame | None = None,
                       times: Sequence[float] = (365.0, 730.0)) -> pd.DataFrame:
    """Duration of response (KM) and, among responders from the remission day, the cumulative incidence of relapse
    and of non-relapse mortality (Aalen-Johansen). Tidy: quantity, time, estimate, ci_low, ci_high, n, events."""
    d = frame(cohort, landmark_day) if d is None else d
    resp = d[d["remission"] == 1]
    km = survival.km_estimates(resp, "dor_days", "dor_event", None, times).assign(quantity_group="dor")
    cif = survival.cumulative_incidence(resp, "dor_days", "cir_type", times)
    cif = cif.assign(quantity_group=cif["cause"].map({1: "cir", 2: "nrm"}),
                     quantity=[f"F({t:g})" for t in cif["time"]])
    km = km.assign(time=[math.nan if q == "median" else float(q[2:-1]) for q in km["quantity"]])
    cols = ["quantity_group", "quantity", "time", "estimate", "ci_low", "ci_high", "n", "events"]
    return pd.concat([km[cols], cif[cols]], ignore_index=True).rename(columns={"quantity_group": "endpoint"})


NRM_CAUSE_ORDER = ["crs", "icans", "infection", "other"]


def nrm_by_cause(cohort, times: Sequence[float] = (100.0, 365.0), landmark_day: float | None = None,
                 d: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cumulative incidence from infusion of each cause of death without prior relapse or progression, with
    relapse/progression as the competing event (Aalen-Johansen). Tidy: cause, time, estimate, CI, n, events."""
    d = frame(cohort, landmark_day) if d is None else d
    coded = nrm_cause_coding(d)
    out = survival.cumulative_incidence(coded, "pfs_days", "cause_code", times)
    names = {i + 2: c for i, c in enumerate(_nrm_causes(d))} | {1: "relapse"}
    return out.assign(cause=out["cause"].map(names))


def _nrm_causes(d: pd.DataFrame) -> list[str]:
    """The causes of non-relapse death present, in a fixed order (unknown codes after the known ones)."""
    nrm = d.loc[d["event_type"].eq(2).fillna(False), "death_cause"].fillna("other").astype(str)
    present = set(nrm)
    return [c for c in NRM_CAUSE_ORDER if c in present] + sorted(present - set(NRM_CAUSE_ORDER))


def nrm_cause_coding(d: pd.DataFrame) -> pd.DataFrame:
    """pfs_days with cause_code: 0 censored, 1 relapse or progression, 2.. each cause of non-relapse death."""
    causes = _nrm_causes(d)
    code = d["event_type"].astype("Float64").astype(float).copy()
    nrm = code == 2
    cause = d["death_cause"].fillna("other").astype(str) if "death_cause" in d else pd.Series("other", index=d.index)
    code[nrm] = cause[nrm].map({c: i + 2 for i, c in enumerate(causes)})
    return d.assign(cause_code=code)


# ============================================================================================
# The chapter's sections: (page) -> Shown | Skipped, built from the tidy frames above
# ============================================================================================

from helpers import display, fmt, labels  # noqa: E402  (page layer below the analyses)
from helpers.sections import Shown, Skipped, needs  # noqa: E402

NE = fmt.NOT_ESTIMABLE
ANALYSIS_WORDS = {"naive": "Naive: remission counted from infusion",
                  "landmark": "Landmark at day {L:g}: in remission by then",
                  "time-varying": "Time-varying: in remission from the day documented (primary)"}
NAMES = {"os": "Overall survival", "pfs": "Progression-free survival", "efs": "Event-free survival"}


def open_chapter(cohort: str, tables_dir: str, landmark_day: float | None = None, **params):
    """open_page for this chapter; a `landmark_day` given here replaces the cohort's setting everywhere on the page."""
    import dataclasses

    from helpers.page import open_page

    page = open_page(cohort, tables_dir, **params)
    if landmark_day is not None:
        settings = dataclasses.replace(page.data.settings, landmark_day=float(landmark_day))
        page.data = dataclasses.replace(page.data, settings=settings)
    return page


def _d(page) -> pd.DataFrame:
    """The chapter's model frame, computed once per page."""
    return page.once("model_frame", lambda: model_frame(page.pt, landmark(page)))


def landmark(page) -> float:
    """The landmark day the page uses (the cohort's setting, or the chapter parameter that replaced it)."""
    return float(page.settings.landmark_day)


def _times(page) -> list[float]:
    return [float(t) for t in page.params.get("survival_times_days", (365, 730))]


def _ends(page, efs: bool = False) -> dict[str, str]:
    ends = endpoints(_d(page))
    if efs and "pfs" in ends:
        ends["efs"] = NAMES["efs"]
    return ends


def hr_cell(row: pd.Series, notes: list[str] | None = None) -> str:
    """'0.27 (0.09–0.80)' or 'not estimable' (its reason collected once into `notes`)."""
    if bool(row.get("estimable", fmt.is_finite(row["hr"]))) and fmt.is_finite(row["hr"]):
        return fmt.est_ci(row["hr"], row["ci_low"], row["ci_high"], 2)
    if notes is not None and row.get("reason"):
        note = f"Not estimable: {row['reason']}."
        if note not in notes:
            notes.append(note)
    return NE


def p_cell(row: pd.Series) -> str:
    """The p-value of an estimable term; an em dash otherwise (the reason is under the table)."""
    ok = bool(row.get("estimable", True))
    return fmt.p_value(row["p_value"]) if ok else fmt.MISSING


def hr_words(row: pd.Series) -> str:
    """'HR 0.27 (95% CI 0.09–0.80; p = 0.006)' or 'not estimable (reason)'."""
    if not (bool(row.get("estimable", True)) and fmt.is_finite(row["hr"])):
        return f"not estimable ({row.get('reason') or 'no finite estimate'})"
    p = fmt.p_value(row["p_value"])
    p_part = f"; p {p[0]} {p[1:]}" if p.startswith(("<", ">")) else (f"; p = {p}" if p != fmt.MISSING else "")
    return f"HR {fmt.number(row['hr'], 2)} (95% CI {fmt.ci(row['ci_low'], row['ci_high'])}{p_part})"


def logrank_words(d: pd.DataFrame, end: str, group: str) -> str:
    """'log-rank p = 0.012', or why there is no test (one group, no events)."""
    sub = d.dropna(subset=[f"{end}_days", f"{end}_event", group])
    if sub[group].nunique() < 2:
        return "log-rank test not possible (only one group)"
    if sub[f"{end}_event"].sum() == 0:
        return "log-rank test not possible (no events)"
    p = fmt.p_value(survival.logrank(sub, f"{end}_days", f"{end}_event", group)["p_value"])
    return f"log-rank p {p[0]} {p[1:]}" if p[:1] in "<>" else f"log-rank p = {p}"


def _median_cells(sub: pd.DataFrame, end: str, est: pd.DataFrame) -> str:
    """Median in months with its CI; an unreachable lower limit or an upper limit beyond a curve that fell to
    zero is 'not estimable' (undefined), an upper limit the CI curve never reaches is 'not reached'."""
    med = est.set_index("quantity").loc["median"]
    curve = survival.km_curve(sub, f"{end}_days", f"{end}_event")
    lo, hi = med["ci_low"], med["ci_high"]
    lo = math.nan if not fmt.is_finite(lo) else lo
    if not fmt.is_finite(hi) and float(curve["surv"].min()) <= 0:
        hi = math.nan
    return fmt.months_ci(med["estimate"], lo, hi)


def _surv_cell(est: float, lo: float, hi: float) -> str:
    """'45% (24–64)'; beyond follow-up 'not estimable'; an undefined CI (S = 0 or 1) is said so."""
    if not fmt.is_finite(est):
        return NE
    if not (fmt.is_finite(lo) and fmt.is_finite(hi)):
        return f"{fmt.number(100 * est, 0)}% (CI not estimable)"
    return f"{fmt.number(100 * est, 0)}% ({fmt.ci(100 * lo, 100 * hi, 0)})"


def km_display(d: pd.DataFrame, ends: dict[str, str], group: str | None, times: Sequence[float],
               names: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy KM estimates, display frame: endpoint, group, events/N, median months (CI), S(t) per time)."""
    tidy, rows = [], []
    for e, name in ends.items():
        est = survival.km_estimates(d, f"{e}_days", f"{e}_event", group, times).assign(endpoint=e)
        tidy.append(est)
        for label, sub in survival._groups(d, group):
            g = est[est["group"] == label]
            row = {"Endpoint": name, "Group": (names or {}).get(label, label),
                   "Events/N": f"{int(g['events'].iloc[0])}/{int(g['n'].iloc[0])}",
                   "Median, months (95% CI)": _median_cells(sub, e, g)}
            floor = float(survival.km_curve(sub, f"{e}_days", f"{e}_event")["surv"].min())
            for t in times:
                q = g.set_index("quantity").loc[f"S({float(t):g})"]
                cell = _surv_cell(q["estimate"], q["ci_low"], q["ci_high"])
                row[f"At {fmt.number(t / MONTH, 0)} months"] = "0%" if cell == NE and floor <= 0 else cell
            rows.append(row)
    shown = pd.DataFrame(rows)
    return pd.concat(tidy, ignore_index=True), (shown.drop(columns="Group") if group is None else shown)


KM_NOTE = ("Kaplan-Meier estimates; 95% CIs on the log(-log) scale (R survfit conf.type = \"log-log\"). "
           "A median the curve never reaches is \"not reached\"; a limit that does not exist is \"not estimable\".")


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

def followup(page) -> Shown:
    """Median follow-up by reverse Kaplan-Meier, what the PFS event counts, and which endpoints this cohort has."""
    d = _d(page)
    fu = survival.median_followup(d, "os_days", "os_event")
    ends = _ends(page)
    if fu["n_censored"] == 0:
        text = "Every patient died during follow-up, so median follow-up (reverse Kaplan-Meier) is not estimable."
    else:
        text = (f"Median follow-up is {fmt.months_ci(fu['median'], fu['ci_low'], fu['ci_high'])} months by the reverse "
                f"Kaplan-Meier method; the {fmt.plural(fu['n_censored'], 'patient')} alive at last contact "
                f"{'was' if fu['n_censored'] == 1 else 'were'} followed for {fmt.months(fu['min'])} to "
                f"{fmt.months(fu['max'])} months.")
    if "pfs" not in ends:
        return Shown(text, Skipped("progression-free, event-free survival and duration of response",
                                   "this cohort has no values for `pfs_days` and `pfs_event` in the patients table."),
                     data=pd.DataFrame([fu]))
    return Shown(text, data=pd.DataFrame([fu]))


def overall_curves(page) -> Shown:
    """KM curves (months, medians, KMunicate table) for OS, PFS as published and EFS, with the estimate table."""
    d, ends, times = _d(page), _ends(page, efs=True), _times(page)
    figs = [survival.km_figure(d, f"{e}_days", f"{e}_event", ylabel=name) for e, name in ends.items()]
    tidy, shown = km_display(d, ends, None, times)
    tab = display.table(shown, "survival-km-overall", stub="Endpoint", notes=[KM_NOTE])
    return Shown(*figs, tab, page.download(tidy, "survival_km_estimates"), data=tidy)


def ci_methods(page) -> Shown:
    """The same KM estimates with log(-log) and log CIs, side by side."""
    d, ends, times = _d(page), _ends(page), _times(page)
    tidy = ci_method_comparison(d, ends, times)
    rows = []
    for _, r in tidy.iterrows():
        what = "Median, months" if r["quantity"] == "median" else f"Survival at {fmt.number(float(r['quantity'][2:-1]) / MONTH, 0)} months"
        conv = (lambda x: fmt.months(x)) if r["quantity"] == "median" else (lambda x: fmt.pct(x, 0) if fmt.is_finite(x) else NE)
        rows.append({"Endpoint": r["endpoint"], "Estimate": what + ": " + conv(r["estimate"]),
                     "log(-log) CI (this book)": f"{conv(r['ci_low_loglog'])} to {conv(r['ci_high_loglog'])}",
                     "log CI (R default)": f"{conv(r['ci_low_log'])} to {conv(r['ci_high_log'])}"})
    tab = display.table(pd.DataFrame(rows), "survival-ci-methods", stub="Endpoint")
    return Shown(tab, data=tidy)


def by_remission_naive(page) -> Shown:
    """KM by best response from infusion (the published comparison), with log-rank p; biased by design."""
    d, ends, times = _d(page), _ends(page), _times(page)
    if d["remission_group"].nunique() < 2:
        return Skipped("survival by remission", "every patient is in the same remission group.")
    figs = [survival.km_figure(d, f"{e}_days", f"{e}_event", "remission_group", ylabel=name,
                               legend_title="Best response", p_text=logrank_words(d, e, "remission_group"))
            for e, name in ends.items()]
    tidy, shown = km_display(d, ends, "remission_group", times)
    tab = display.table(shown, "survival-km-by-remission", stub="Endpoint", notes=[KM_NOTE])
    return Shown(*figs, tab, data=tidy)


def remission_timing(page) -> Shown:
    """When responders were documented in remission, and the warning when the landmark leaves some behind."""
    d, L = _d(page), landmark(page)
    resp = d[d["remission"] == 1]
    if resp.empty:
        return Skipped("remission timing", "no patient reached remission.")
    recorded = resp[~resp.get("remission_day_assumed", pd.Series(False, index=resp.index)).astype(bool)]
    counts = resp[REMISSION_DAY].value_counts().sort_index()
    table = pd.DataFrame({"Day documented": [fmt.number(x, 0) for x in counts.index],
                          "Responders": [fmt.count_pct(k, len(resp)) for k in counts.to_numpy()],
                          "At the landmark": ["in remission" if x <= L else "counted as not in remission"
                                              for x in counts.index]})
    tab = display.table(table, "survival-remission-days", stub="Day documented",
                        notes=[f"Landmark day {fmt.number(L, 0)}."])
    return Shown(remission_timing_text(resp, recorded, L), tab, data=counts.rename_axis("remission_day").reset_index(name="n"))


def remission_timing_text(resp: pd.DataFrame, recorded: pd.DataFrame, L: float) -> str:
    """The generated paragraph on remission days: recorded or assumed, and the late-responder warning."""
    n, k = len(resp), len(recorded)
    if k == 0:
        return (f"This cohort does not record the day remission was documented, so each of the "
                f"{fmt.plural(n, 'responder')} is assumed in remission from the landmark, day {fmt.number(L, 0)}. "
                "Under that assumption the landmark and time-varying estimates coincide.")
    late = resp[resp[REMISSION_DAY] > L]
    share = f"all {fmt.plural(n, 'responder')}" if k == n else f"{k} of the {fmt.plural(n, 'responder')}"
    text = (f"The day remission was documented is recorded for {share}"
            + (f" (the other {n - k} are assumed in remission from day {fmt.number(L, 0)})" if n > k else "")
            + f"; it ranges from day {fmt.number(resp[REMISSION_DAY].min(), 0)} to day "
              f"{fmt.number(resp[REMISSION_DAY].max(), 0)}.")
    if len(late):
        days_ = fmt.join_words(sorted({fmt.number(x, 0) for x in late[REMISSION_DAY]}, key=float))
        text += (f"\n\n> **Warning: the landmark leaves responders behind.** With the landmark at day "
                 f"{fmt.number(L, 0)}, {len(late)} of the {fmt.plural(n, 'responder')} "
                 f"{'was' if len(late) == 1 else 'were'} documented in remission after it (day {days_}); the "
                 f"landmark analysis counts {'this patient' if len(late) == 1 else 'them'} as not in remission "
                 "by the landmark, which dilutes the comparison. The time-varying model, which does not depend on "
                 f"the landmark, is the primary estimate; a landmark at day {fmt.number(late[REMISSION_DAY].max(), 0)} "
                 "or later leaves no responder behind.")
    else:
        text += f" Every responder was documented by the day-{fmt.number(L, 0)} landmark."
    return text


def landmark_curves(page) -> Shown:
    """KM from the landmark by remission status known then ('In remission by day X'), with log-rank p."""
    d, L, ends = _d(page), landmark(page), _ends(page)
    figs, notes = [], []
    for e, name in ends.items():
        lm = landmark_frame(d, e, L)
        groups = {REMISSION_LABELS[1]: f"In remission by day {fmt.number(L, 0)}",
                  REMISSION_LABELS[0]: f"Not in remission by day {fmt.number(L, 0)}"}
        lm = lm.assign(remission_group=lm["remission_group"].map(groups))
        figs.append(survival.km_figure(lm, f"{e}_days", f"{e}_event", "remission_group", ylabel=name,
                                       xlabel=f"Months since the day-{fmt.number(L, 0)} landmark",
                                       legend_title=f"Status at day {fmt.number(L, 0)}",
                                       p_text=logrank_words(lm, e, "remission_group")))
        late = int((lm[REMISSION_DAY] > L).sum())
        notes.append(f"**{name}**: {fmt.plural(len(lm), 'patient')} event-free after day {fmt.number(L, 0)} enter"
                     + (f"; {late} of them {'was' if late == 1 else 'were'} documented in remission later and "
                        f"{'is' if late == 1 else 'are'} counted as not in remission by day {fmt.number(L, 0)}."
                        if late else "; every responder among them was documented by the landmark."))
    return Shown(*notes, *figs)


def _remission_rows(tidy: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    rows = []
    for _, r in tidy.iterrows():
        what = ANALYSIS_WORDS[r["analysis"]].format(L=r["landmark_day"])
        rows.append({"Endpoint": NAMES[r["endpoint"]], "Analysis": what, "Patients": fmt.integer(r["n"]),
                     "Events": fmt.integer(r["events"]), "HR (95% CI)": hr_cell(r, notes), "p-value": p_cell(r)})
    return pd.DataFrame(rows)


def remission_corrected(page) -> Shown:
    """Remission HR naive, at the landmark and time-varying (primary), per endpoint, with a generated summary."""
    d, L, ends = _d(page), landmark(page), _ends(page)
    if d["remission"].nunique() < 2:
        return Skipped("remission hazard ratios", "every patient is in the same remission group.")
    tidy = pd.concat([corrected_remission_hr(page.data, e, L, d) for e in ends], ignore_index=True)
    notes: list[str] = []
    shown = _remission_rows(tidy, notes)
    tab = display.table(shown, "survival-remission-bias", stub="Endpoint", notes=[
        "Cox models, Efron ties, Wald 95% CI and p. Naive: remission from day 0 (guarantee-time bias). "
        "Landmark: patients event-free at the landmark, time from the landmark. Time-varying: remission switches on "
        "the day it was documented.", *notes])
    sentences = []
    for e, rows in tidy.groupby("endpoint", sort=False):
        r = rows.set_index("analysis")
        sentences.append(f"**{NAMES[e]}**: time-varying {hr_words(r.loc['time-varying'])}; naive "
                         f"{hr_words(r.loc['naive'])}; landmark at day {fmt.number(L, 0)} {hr_words(r.loc['landmark'])}.")
    return Shown("\n\n".join(sentences), tab, page.download(tidy, "survival_remission_bias"), data=tidy)


def landmark_figure(series: pd.DataFrame, tv: pd.DataFrame, L: float):
    """HR (95% CI) of remission against the landmark day per endpoint, the time-varying HR as a band."""
    import matplotlib.pyplot as plt

    ends = list(dict.fromkeys(series["endpoint"]))
    fig, axes = plt.subplots(1, len(ends), figsize=(3.8 * len(ends) + 0.6, 3.6), squeeze=False, sharey=True)
    for ax, e in zip(axes[0], ends):
        s = series[(series["endpoint"] == e) & series["estimable"]]
        ax.errorbar(s["landmark_day"], s["hr"], yerr=[s["hr"] - s["ci_low"], s["ci_high"] - s["hr"]], fmt="o",
                    color="C0", capsize=3, label="Landmark HR (95% CI)")
        t = tv[(tv["endpoint"] == e) & (tv["analysis"] == "time-varying")].iloc[0]
        if t["estimable"]:
            ax.axhspan(t["ci_low"], t["ci_high"], color="C1", alpha=0.15, linewidth=0)
            ax.axhline(t["hr"], color="C1", label="Time-varying HR (95% CI)")
        ax.axhline(1, color="grey", linestyle="--", linewidth=1)
        ax.axvline(L, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set(title=NAMES[e], xlabel="Landmark day")
        days_ = series["landmark_day"]
        ax.set_xlim(days_.min() - 3, days_.max() + 3)
        for x in series[(series["endpoint"] == e) & ~series["estimable"]]["landmark_day"]:
            ax.annotate("not estimable", (x, 0.5), xycoords=("data", "axes fraction"), rotation=90, ha="center",
                        va="center", fontsize=7, color="grey")
        ax.spines[["top", "right"]].set_visible(False)
        for _, r in series[series["endpoint"] == e].iterrows():
            if r["late_all"]:
                ax.annotate(f"{int(r['late_all'])}", (r["landmark_day"], 0.99), xycoords=("data", "axes fraction"),
                            ha="center", va="top", fontsize=7, color="C3")
    axes[0][0].set_ylabel("Hazard ratio, remission vs none")
    axes[0][0].legend(frameon=False, fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def landmark_table(page) -> Shown:
    """The landmark remission HR for landmark days 14 to 60 (and to the latest remission day), table and figure."""
    d, L, ends = _d(page), landmark(page), _ends(page)
    if d["remission"].nunique() < 2:
        return Skipped("landmark sensitivity", "every patient is in the same remission group.")
    series = pd.concat([landmark_sensitivity(page.data, e, L, d) for e in ends], ignore_index=True)
    tv = pd.concat([corrected_remission_hr(page.data, e, L, d) for e in ends], ignore_index=True)
    rows, notes = [], []
    for _, r in series.iterrows():
        r = r.copy()
        r["reason"] = {"nobody event-free at this landmark was exposed by it":
                       "no responder was documented in remission by this landmark",
                       "everybody event-free at this landmark was exposed by it":
                       "every patient event-free at this landmark was in remission"}.get(r["reason"], r["reason"])
        rows.append({"Landmark day": fmt.number(r["landmark_day"], 0) + (" (setting)" if r["chosen"] else ""),
                     "Endpoint": NAMES[r["endpoint"]], "Patients": fmt.integer(r["n"]), "Events": fmt.integer(r["events"]),
                     "Responders documented later": fmt.integer(r["late_all"]),
                     "HR (95% CI)": hr_cell(r, notes), "p-value": p_cell(r)})
    shown = pd.DataFrame(rows).sort_values(["Endpoint", "Landmark day"], key=lambda c: c.map(_sort_key), kind="stable")
    tab = display.table(shown, "survival-landmark-sensitivity", stub="Landmark day", groups="Endpoint", notes=[
        "Cox model of remission documented by the landmark, among patients event-free after it; time from the "
        "landmark. Responders documented later count as not in remission at that landmark.", *notes])
    fig = landmark_figure(series, tv, L)
    caption = ("Figure: landmark hazard ratio of remission (points, 95% CI) by landmark day; the band is the "
               "time-varying estimate, the dotted line the landmark in use, and the red numbers at the top the "
               "responders documented after each landmark.")
    return Shown(tab, fig, caption, page.download(series, "survival_landmark_sensitivity"), data=series)


def _sort_key(x: str):
    """Sort landmark-day labels numerically and endpoint names as given."""
    head = str(x).split(" ")[0]
    return float(head) if head.replace(".", "").isdigit() else list(NAMES.values()).index(x) if x in NAMES.values() else 0


def _cox_rows(tidy: pd.DataFrame, notes: list[str], extra: Sequence[str] = ()) -> pd.DataFrame:
    """Display rows of a Cox table: endpoint, variable label, HR (95% CI), p, N, events (+ extra columns named)."""
    rows = []
    for _, r in tidy.iterrows():
        row = {"Endpoint": NAMES.get(r["endpoint"], r["endpoint"]), **{k: r[k] for k in extra},
               "Variable": labels.label(r["term"]), "Patients": fmt.integer(r["n"]), "Events": fmt.integer(r["events"]),
               "HR (95% CI)": hr_cell(r, notes), "p-value": p_cell(r)}
        rows.append(row)
    return pd.DataFrame(rows)


def _endpoint_code(name: str) -> str:
    return {v: k for k, v in {**ENDPOINTS, **NAMES}.items()}.get(name, name)


def univariable(page) -> Shown:
    """Every candidate factor alone in a Cox model (remission naively, from infusion)."""
    d, ends = _d(page), _ends(page)
    have, absent = available_candidates(d)
    tidy = pd.concat([survival.estimability(survival.univariable_cox(d, f"{e}_days", f"{e}_event", have)).assign(endpoint=e)
                      for e in ends], ignore_index=True)
    notes: list[str] = []
    tab = display.table(_cox_rows(tidy, notes), "survival-cox-univariable", stub="Variable", groups="Endpoint", notes=[
        "One Cox model per variable (Efron ties; Wald 95% CI and p), on the patients with it recorded. Peak "
        "expansion per tenfold; remission naive, from infusion.", *notes])
    skipped = (Skipped("univariable models of " + fmt.join_words(labels.label(c) for c in absent),
                       "these variables are absent from this cohort or do not vary.") if absent else None)
    return Shown(tab, skipped, page.download(tidy, "survival_cox_univariable"), data=tidy)


def epv_note(tidy: pd.DataFrame) -> str:
    """'Events per variable: OS 19/3 = 6.3, ...' with Peduzzi's rule and the relaxed rule when below 10."""
    parts, low = [], False
    for e, rows in tidy.groupby("endpoint", sort=False):
        events, k = int(rows["events"].iloc[0]), len(rows)
        parts.append(f"{NAMES[e]} {events}/{k} = {fmt.number(events / k, 1)}")
        low |= events / k < survival.EPV_MIN
    text = "Events per variable (EPV): " + "; ".join(parts) + "."
    if low:
        text += (" Below 10, Cox coefficients are biased away from zero and their CIs too narrow (Peduzzi et al. 1995); "
                 "5 to 9 is often adequate (Vittinghoff & McCulloch 2007), fewer is not; read the Firth estimates.")
    return text


def multivariable(page) -> Shown:
    """The published multivariable Cox models (as in published.multivariable_cox), forest plot and EPV."""
    d, ends = _d(page), _ends(page)
    tidy = pd.concat([survival.estimability(published_model(d, e)).assign(endpoint=e) for e in ends], ignore_index=True)
    if tidy.empty:
        return Skipped("the published multivariable models", "none of their covariates varies in this cohort.")
    notes: list[str] = []
    shown = _cox_rows(tidy.assign(model=tidy["model"]), notes)
    tab = display.table(shown, "survival-cox-multivariable", stub="Variable", groups="Endpoint",
                        notes=[f"Model: {model_words(tidy['model'].iloc[0])}; Cox, Efron ties, Wald 95% CI.", epv_note(tidy),
                               *notes])
    fig = forest(tidy)
    return Shown(tab, fig, page.download(tidy, "survival_cox_multivariable"), data=tidy)


def model_words(model: str) -> str:
    """'as published without log10_peak' -> 'as published, without peak CAR-T expansion (absent or constant here)'."""
    head, _, missing = model.partition(" without ")
    if not missing:
        return head
    names = (labels.in_sentence(labels.label(c).split(",")[0]) for c in missing.split(", "))
    return f"{head}, without " + fmt.join_words(names) + " (absent or constant in this cohort)"


def forest(tidy: pd.DataFrame):
    """Forest plot of a tidy Cox table with clinical labels."""
    import matplotlib.pyplot as plt

    lab = tidy.assign(label=[f"{ABBREV.get(e, e)}: {labels.label(t)}" for e, t in zip(tidy["endpoint"], tidy["term"])])
    lab.loc[~lab["estimable"], "hr"] = math.nan
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(lab) + 1.2))
    survival.forest_plot(lab, ax=ax, label_col="label")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def published_landmark(page) -> Shown:
    """The published model from infusion and among patients event-free at the landmark."""
    d, L, ends = _d(page), landmark(page), _ends(page)
    parts = []
    for e in ends:
        for name, frame_ in (("From infusion", d), (f"From the day-{fmt.number(L, 0)} landmark", landmark_frame(d, e, L))):
            parts.append(survival.estimability(published_model(frame_, e)).assign(endpoint=e, analysis=name))
    tidy = pd.concat(parts, ignore_index=True)
    if tidy.empty:
        return Skipped("the published model from the landmark", "none of its covariates varies in this cohort.")
    notes: list[str] = []
    shown = _cox_rows(tidy, notes, extra=["analysis"]).rename(columns={"analysis": "Time origin"})
    shown["Endpoint"] = shown["Endpoint"] + ", " + shown.pop("Time origin").str.lower()
    tab = display.table(shown, "survival-published-landmark", stub="Variable", groups="Endpoint",
                        notes=["Cox, Efron ties, Wald 95% CI.", *notes])
    late = peaks_after(page.data.kinetics, L) if page.data.has("kinetics") else 0
    text = (f"In {fmt.plural(late, 'patient')} the highest expansion sample lay after the landmark, so the landmark "
            "model uses a value not yet known at the landmark for them." if late else "")
    return Shown(text or None, tab, data=tidy)


@needs(columns={"patients": ("death_cause",)}, what="severe CRS without deaths from CRS")
def severe_crs(page) -> Shown:
    """Severe-CRS HR from infusion, excluding deaths from CRS, and time-varying from its onset day."""
    d, ends = _d(page), _ends(page)
    if d["severe_crs"].dropna().nunique() < 2:
        return Skipped("the severe-CRS sensitivity analyses", "severe CRS does not vary in this cohort.")
    tidy = pd.concat([severe_crs_sensitivity(page.data, e, landmark(page), d) for e in ends], ignore_index=True)
    notes: list[str] = []
    alone = tidy[tidy["model"] == "severe CRS alone"]
    shown = pd.DataFrame([{"Endpoint": NAMES[r["endpoint"]], "Analysis": r["analysis"][:1].upper() + r["analysis"][1:],
                           "Patients": fmt.integer(r["n"]), "Events": fmt.integer(r["events"]),
                           "HR (95% CI)": hr_cell(r, notes), "p-value": p_cell(r)} for _, r in alone.iterrows()])
    tab = display.table(shown, "survival-severe-crs", stub="Analysis", groups="Endpoint", notes=[
        "Cox models of severe CRS (Efron ties; Wald 95% CI). Time-varying: severe from the first day graded at the "
        "severe grade.", *notes])
    pub = tidy[tidy["model"] == "published model"]
    pub_rows = _cox_rows(pub, notes, extra=["analysis"])
    if len(pub):
        pub_rows["Endpoint"] = pub_rows["Endpoint"] + ", " + pub_rows.pop("analysis")
    pub_tab = (display.table(pub_rows, "survival-published-no-crs-deaths", stub="Variable", groups="Endpoint",
                             notes=["The published model without the deaths from CRS, and with severe CRS as a "
                                    "time-varying covariate from its onset (Cox, Efron ties, Wald 95% CI)."])
               if len(pub) else None)
    return Shown(severe_crs_text(tidy), tab, pub_tab, page.download(tidy, "survival_severe_crs_sensitivity"), data=tidy)


def severe_crs_text(tidy: pd.DataFrame) -> str:
    """What excluding the CRS deaths and the time-varying onset do to the severe-CRS HR (generated)."""
    n = int(tidy["n_crs_deaths"].iloc[0])
    out = [f"{fmt.plural(n, 'patient')} died of CRS; a death from CRS is by definition a severe case, so it makes "
           "the severe-CRS hazard ratio partly tautological." if n else
           "No patient died of CRS, so the analysis excluding CRS deaths repeats the main one."]
    for e, rows in tidy[tidy["model"] == "severe CRS alone"].groupby("endpoint", sort=False):
        r = rows.set_index("analysis")
        text = f"**{NAMES[e]}**: from infusion {hr_words(r.loc['from infusion'])}; excluding deaths from CRS " \
               f"{hr_words(r.loc['excluding deaths from CRS'])}"
        if "time-varying from onset" in r.index:
            tv, naive = r.loc["time-varying from onset"], r.loc["from infusion"]
            text += f"; time-varying from onset {hr_words(tv)}"
            if fmt.is_finite(tv["hr"]) and math.isclose(tv["hr"], naive["hr"], rel_tol=1e-6):
                text += (" (every onset of severe CRS came before the first event, so the time-varying and the "
                         "from-infusion models coincide)")
        out.append(text + ".")
    return "\n\n".join(out)


@needs(tables=("kinetics",), what="peak expansion adjusted and unadjusted")
def expansion(page) -> Shown:
    """Peak-expansion HR alone, with a baseline covariate and with severe CRS (downstream); without unobserved peaks."""
    d, ends = _d(page), _ends(page)
    tidy = pd.concat([expansion_adjustment(page.data, e, landmark(page), d) for e in ends], ignore_index=True)
    notes: list[str] = []
    shown = pd.DataFrame([{"Endpoint": NAMES[r["endpoint"]], "Model": r["model"][:1].upper() + r["model"][1:],
                           "Patients included": r["patients"][:1].upper() + r["patients"][1:],
                           "Patients": fmt.integer(r["n"]), "Events": fmt.integer(r["events"]),
                           "HR per tenfold (95% CI)": hr_cell(r, notes), "p-value": p_cell(r)}
                          for _, r in tidy.iterrows()])
    shown["Endpoint"] = shown["Endpoint"] + ", " + shown.pop("Patients included").str.lower()
    tab = display.table(shown, "survival-expansion-adjustment", stub="Model", groups="Endpoint", notes=[
        "Hazard ratio of peak CAR-T expansion per tenfold higher peak (Cox, Efron ties, Wald 95% CI).", *notes])
    return Shown(expansion_text(tidy), tab, page.download(tidy, "survival_expansion_adjustment"), data=tidy)


def expansion_text(tidy: pd.DataFrame) -> str:
    """The plain statement on adjusting for a downstream variable, with this cohort's estimates."""
    n = int(tidy["n_not_observed"].iloc[0])
    out = []
    published = list(EXPANSION_MODELS)[-1]
    for e, rows in tidy[tidy["patients"] == "all patients"].groupby("endpoint", sort=False):
        r = rows.set_index("model")
        adjusted = (f"adjusted for severe CRS as published {hr_words(r.loc[published])}" if published in r.index else
                    "the published model, adjusted for severe CRS and the effector-memory share, is not fitted: "
                    "one of them is absent or does not vary in this cohort")
        out.append(f"**{NAMES[e]}**: peak expansion alone {hr_words(r.iloc[0])}; {adjusted}.")
    if published in set(tidy["model"]):
        out.append("Severe CRS lies downstream of expansion: expansion drives cytokine release. Adjusting for it "
                   "removes the part of the effect that runs through CRS and can open a biased path between expansion "
                   "and survival, so the adjusted hazard ratio is not the effect of expansion; the unadjusted (or "
                   "baseline-adjusted) one is the answer to \"do patients with higher expansion live longer?\".")
    out.append(f"{fmt.plural(n, 'patient')} reached {'his or her' if n == 1 else 'their'} highest value at the last "
               "sample before dying inside the expansion window (\"peak not observed\": expansion was cut short, "
               "not seen to its maximum); the rows \"peak observed\" leave them out." if n else
               "No patient's peak was cut short by an early death.")
    return "\n\n".join(out)


def proportional_hazards(page) -> Shown:
    """R cox.zph score test of the published model and the scaled Schoenfeld residual plots."""
    import matplotlib.pyplot as plt

    d, ends = _d(page), _ends(page)
    mv = pd.concat([published_model(d, e).assign(endpoint=e) for e in ends], ignore_index=True)
    if mv.empty or not survival.estimability(mv)["estimable"].all():
        return Skipped("the proportional-hazards checks", "the published model is not estimable in this cohort.")
    terms = mv["term"].unique().tolist()
    tidy = pd.concat([survival.ph_test(d, f"{e}_days", f"{e}_event", terms).assign(endpoint=e) for e in ends],
                     ignore_index=True)
    shown = pd.DataFrame([{"Endpoint": NAMES[r["endpoint"]],
                           "Variable": "Global test" if r["term"] == "GLOBAL" else labels.label(r["term"]),
                           "Chi-square (df)": f"{fmt.number(r['statistic'], 2)} ({int(r['df'])})",
                           "p-value": fmt.p_value(r["p_value"])} for _, r in tidy.iterrows()])
    tab = display.table(shown, "survival-ph-test", stub="Variable", groups="Endpoint",
                        notes=["Score test for covariate x g(t), g the Kaplan-Meier transform of time (R cox.zph)."])
    fig, axes = plt.subplots(len(ends), len(terms), figsize=(3.3 * len(terms), 3 * len(ends)), squeeze=False)
    for row, e in zip(axes, ends):
        plot_schoenfeld_panels(d, e, terms, row)
        for ax, t in zip(row, terms):
            ax.set_title(f"{ABBREV[e]}: {labels.label(t)}", fontsize=8)
            ax.set_xlabel("Days since infusion (event times)", fontsize=8)
    fig.tight_layout()
    bad = tidy[(tidy["term"] != "GLOBAL") & (tidy["p_value"] < 0.05)]
    text = ("No term shows evidence against proportional hazards at the 5% level (a weak reassurance with few events)."
            if bad.empty else "Evidence against proportional hazards (p < 0.05): " + fmt.join_words(
                f"{labels.label(t)} ({ABBREV[e]})" for t, e in zip(bad["term"], bad["endpoint"])) + ".")
    return Shown(text, tab, fig, data=tidy)


def firth_published(cohort, endpoint: str = "os", landmark_day: float | None = None,
                    d: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published model by ordinary Cox (Efron) and Firth-penalised Cox (Breslow, profile-likelihood CI),
    stacked with `method` 'cox' / 'firth' and estimability; empty when no published covariate varies."""
    d = frame(cohort, landmark_day) if d is None else d
    std = survival.estimability(published_model(d, endpoint))
    if std.empty:
        return std
    fr = survival.estimability(survival.firth_cox_table(d, f"{endpoint}_days", f"{endpoint}_event", std["term"].tolist()))
    return pd.concat([std.assign(method="cox"), fr.assign(method="firth")], ignore_index=True).assign(endpoint=endpoint)


def firth(page) -> Shown:
    """The published model by ordinary (Efron) and Firth-penalised (Breslow) Cox, side by side, per term."""
    d, ends = _d(page), _ends(page)
    parts = [t for t in (firth_published(page.data, e, landmark(page), d) for e in ends) if len(t)]
    if not parts:
        return Skipped("the Firth-penalised models", "none of the published covariates varies in this cohort.")
    tidy = pd.concat(parts, ignore_index=True)
    notes: list[str] = []
    rows = []
    for (e, term), g in tidy.groupby(["endpoint", "term"], sort=False):
        c, f = g[g["method"] == "cox"].iloc[0], g[g["method"] == "firth"].iloc[0]
        rows.append({"Endpoint": NAMES[e], "Variable": labels.label(term), "Cox HR (95% CI)": hr_cell(c, notes),
                     "Cox p": p_cell(c), "Firth HR (95% CI)": hr_cell(f, notes), "Firth p": p_cell(f)})
    tab = display.table(pd.DataFrame(rows), "survival-firth", stub="Variable", groups="Endpoint", notes=[
        "Cox: Efron ties, Wald CI and p. Firth: penalised partial likelihood (Heinze & Schemper 2001), Breslow ties, "
        "profile-likelihood CI, penalised likelihood-ratio p.", *notes])
    cols = ["endpoint", "method", "term", "hr", "ci_low", "ci_high", "p_value", "n", "events", "estimable", "reason"]
    return Shown(tab, page.download(tidy[cols], "survival_firth"), data=tidy[cols])


@needs(columns={"patients": ("hsct_day",)}, what="censoring at allogeneic HSCT")
def hsct(page) -> Shown:
    """Remission HR (naive) and the published model with and without censoring at allo-HSCT."""
    d, ends = _d(page), _ends(page)
    tidy = survival.estimability(hsct_table(d, ends).assign(term=lambda t: t["label"]))
    notes: list[str] = []
    shown = pd.DataFrame([{"Endpoint": r["endpoint"] + ", " + r["analysis"], "Variable": r["label"],
                           "Patients": fmt.integer(r["n"]), "Events": fmt.integer(r["events"]),
                           "HR (95% CI)": hr_cell(r, notes), "p-value": p_cell(r)} for _, r in tidy.iterrows()])
    tab = display.table(shown, "survival-hsct", stub="Variable", groups="Endpoint",
                        notes=["Cox, Efron ties, Wald 95% CI; remission naive (from infusion).", *notes])
    n = int(d["hsct_day"].notna().sum())
    return Shown(f"{fmt.plural(n, 'patient')} proceeded to allogeneic HSCT after infusion.", tab, data=tidy)


def cif_figure(df: pd.DataFrame, duration: str, event_type: str, names: dict[int, str], xlabel: str,
               ylabel: str = "Cumulative incidence"):
    """Aalen-Johansen cumulative incidence per cause in months with 95% CI bands, and the numbers at risk under it."""
    import matplotlib.pyplot as plt

    time, etype = survival._cr_data(df, duration, event_type)
    fig = plt.figure(figsize=(7.2, 4.6))
    grid = fig.add_gridspec(2, 1, height_ratios=[4.2, 0.7], hspace=0.35)
    ax, tab = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    tmax = float(time.max()) / MONTH if len(time) else 1.0
    ticks = survival.month_ticks(tmax)
    for i, cause in enumerate(sorted(set(etype) - {0})):
        curve = survival._aalen_johansen(time, etype, int(cause))
        if time.max() > curve["time"].max():
            curve = pd.concat([curve, curve.iloc[[-1]].assign(time=time.max(), n_event=0)], ignore_index=True)
        survival._draw_step(ax, curve.assign(time=curve["time"] / MONTH), "cif", "ci_low", "ci_high", f"C{i}",
                            names.get(int(cause), f"Cause {cause}"))
    ax.set(xlim=(0, max(tmax, ticks[-1]) * 1.02), ylim=(0, 1.0), xlabel=xlabel, ylabel=ylabel, xticks=ticks)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    tab.axis("off")
    tab.set(xlim=ax.get_xlim(), ylim=(-0.6, 0.6))
    tab.text(ax.get_xlim()[0] - 0.02 * ax.get_xlim()[1], 0, "At risk", ha="right", va="center", fontsize=8)
    for t in ticks:
        tab.text(t, 0, str(int((time >= t * MONTH).sum())), ha="center", va="center", fontsize=8)
    return fig


def _cif_rows(tidy: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    rows = []
    for _, r in tidy.iterrows():
        rows.append({"Outcome": names.get(r["endpoint"], r["endpoint"]),
                     "At": f"{fmt.number(r['time'] / MONTH, 0)} months",
                     "Estimate (95% CI)": _surv_cell(r["estimate"], r["ci_low"], r["ci_high"]),
                     "Events": fmt.integer(r["events"])})
    return pd.DataFrame(rows)


@needs(columns={"patients": ("pfs_days", "pfs_event")}, what="duration of response and relapse incidence")
def response_duration(page) -> Shown:
    """Duration of response (KM from the remission day) and, among responders, the cumulative incidence of relapse
    with non-relapse mortality as the competing risk (Aalen-Johansen)."""
    d, times = _d(page), _times(page)
    resp = d[d["remission"] == 1]
    if resp.empty or resp["dor_event"].sum() == 0:
        return Skipped("duration of response", "no responder relapsed or died." if len(resp) else "no patient reached remission.")
    tidy = response_endpoints(page.data, landmark(page), d, times)
    fig1 = survival.km_figure(resp, "dor_days", "dor_event", ylabel="In remission and alive",
                              xlabel="Months since remission was documented", everyone="All responders")
    fig2 = cif_figure(resp, "dor_days", "cir_type", {1: "Relapse", 2: "Death without relapse"},
                      xlabel="Months since remission was documented")
    km = tidy[tidy["endpoint"] == "dor"]
    med = km[km["quantity"] == "median"].iloc[0]
    curve = survival.km_curve(resp, "dor_days", "dor_event")
    hi = med["ci_high"] if fmt.is_finite(med["ci_high"]) or float(curve["surv"].min()) > 0 else math.nan
    text = (f"Among the {fmt.plural(len(resp), 'responder')}, median duration of response is "
            f"{fmt.months_ci(med['estimate'], med['ci_low'] if fmt.is_finite(med['ci_low']) else math.nan, hi)} months "
            f"({fmt.plural(int(med['events']), 'relapse or death', 'relapses or deaths')}). "
            + "The cumulative incidence of relapse is " + fmt.join_words(
                f"{_surv_cell(r['estimate'], r['ci_low'], r['ci_high'])} at {fmt.number(r['time'] / MONTH, 0)} months"
                for _, r in tidy[tidy["endpoint"] == "cir"].iterrows()) + ".")
    shown = _cif_rows(tidy[tidy["endpoint"] != "dor"], {"cir": "Relapse after remission",
                                                        "nrm": "Death without relapse (non-relapse mortality)"})
    tab = display.table(shown, "survival-relapse-incidence", stub="Outcome", notes=[
        "Among responders, time from the day remission was documented. Aalen-Johansen estimates; delta-method "
        "variance, log(-log) 95% CI. Refractory progression of non-responders is not a relapse and does not enter."])
    return Shown(text, fig1, fig2, tab, page.download(tidy, "survival_response_duration"), data=tidy)


NRM_NAMES = {"relapse": "Relapse or progression"}


@needs(columns={"patients": ("pfs_days", "pfs_event", "death_cause")}, what="non-relapse mortality by cause")
def nrm_causes(page) -> Shown:
    """Cumulative incidence from infusion of non-relapse death by cause, relapse or progression competing."""
    d = _d(page)
    if not d["event_type"].eq(2).any():
        return Skipped("non-relapse mortality by cause", "no patient died without relapse or progression.")
    times = [3 * MONTH, *_times(page)]
    tidy = nrm_by_cause(page.data, times, landmark(page), d)
    coded = nrm_cause_coding(d)
    causes = _nrm_causes(d)
    names = {1: NRM_NAMES["relapse"]} | {i + 2: labels.value("death_cause", c) for i, c in enumerate(causes)}
    fig = cif_figure(coded, "pfs_days", "cause_code", names, xlabel="Months since infusion")
    rows = []
    for _, r in tidy.iterrows():
        rows.append({"Outcome": NRM_NAMES.get(r["cause"]) or labels.value("death_cause", r["cause"]),
                     "At": f"{fmt.number(r['time'] / MONTH, 0)} months",
                     "Cumulative incidence (95% CI)": _surv_cell(r["estimate"], r["ci_low"], r["ci_high"]),
                     "Events": fmt.integer(r["events"])})
    tab = display.table(pd.DataFrame(rows), "survival-nrm-causes", stub="Outcome", notes=[
        "All infused patients, time from infusion; Aalen-Johansen estimates per cause with relapse or progression "
        "as the competing event; delta-method variance, log(-log) 95% CI."])
    n = int(d["event_type"].eq(2).sum())
    text = (f"{fmt.plural(n, 'patient')} died without relapse or progression: "
            + fmt.join_words(f"{int((coded['cause_code'] == i + 2).sum())} of {labels.value('death_cause', c).lower()}"
                             for i, c in enumerate(causes)) + ".")
    return Shown(text, fig, tab, page.download(tidy.drop(columns="ci_method"), "survival_nrm_by_cause"), data=tidy)


def _conclusion_crs_expansion(page, d: pd.DataFrame) -> list[str]:
    """Sentences on the severe-CRS HR without CRS deaths and on expansion unadjusted vs adjusted (overall survival)."""
    out = []
    if "death_cause" in d and d["severe_crs"].dropna().nunique() == 2 and _crs_deaths(d).any():
        r = severe_crs_sensitivity(page.data, "os", landmark(page), d)
        r = r[r["model"] == "severe CRS alone"].set_index("analysis")
        out.append(f"Severe CRS goes with shorter overall survival, {hr_words(r.loc['from infusion'])}, partly because "
                   f"deaths from CRS are severe cases by definition; without them, {hr_words(r.loc['excluding deaths from CRS'])}.")
    if page.data.has("kinetics") and d["log10_peak"].notna().any():
        e = expansion_adjustment(page.data, "os", landmark(page), d)
        e = e[e["patients"] == "all patients"].set_index("model")
        if len(e) == len(EXPANSION_MODELS):
            out.append(f"Peak expansion alone gives {hr_words(e.iloc[0])} for overall survival and "
                       f"{hr_words(e.iloc[-1])} once severe CRS, a consequence of expansion, is adjusted for; the "
                       "adjusted figure is not the effect of expansion.")
    return out


def conclusions(page) -> Shown:
    """The closing paragraph: how precise the estimates are and what the corrections changed (generated)."""
    d, ends, L = _d(page), _ends(page), landmark(page)
    n, deaths = len(d), int(d["os_event"].sum())
    out = [f"With {fmt.plural(n, 'patient')} and {fmt.plural(deaths, 'death')}, every hazard ratio here has a wide "
           "interval: read them as directions with a plausible range, not as sizes."]
    if d["remission"].nunique() == 2:
        r = corrected_remission_hr(page.data, "os", L, d).set_index("analysis")
        out.append(f"For overall survival, the remission hazard ratio is {hr_words(r.loc['time-varying'])} when "
                   f"remission counts from the day it was documented, against {hr_words(r.loc['naive'])} when it counts "
                   "from infusion (guarantee-time bias)."
                   + (f" The day-{fmt.number(L, 0)} landmark gives {hr_words(r.loc['landmark'])}, with "
                      f"{fmt.plural(int(r.loc['landmark', 'late']), 'responder')} documented after it counted as not in "
                      "remission; the landmark-sensitivity table shows how this moves with the landmark day."
                      if r.loc["landmark", "late"] else ""))
    out += _conclusion_crs_expansion(page, d)
    mv = pd.concat([published_model(d, e).assign(endpoint=e) for e in ends], ignore_index=True)
    if len(mv):
        epv = mv.groupby("endpoint")["events"].first() / mv.groupby("endpoint").size()
        span = fmt.number(epv.min(), 1) + ("" if round(epv.min(), 1) == round(epv.max(), 1) else f" to {fmt.number(epv.max(), 1)}")
        out.append(f"The published models have {span} events per "
                   "estimated coefficient" + (": below the usual ten, so their estimates are biased away from one."
                                              if epv.min() < survival.EPV_MIN else "."))
    return Shown(" ".join(out[:1]) + "\n\n" + "\n\n".join(out[1:]), data=None)
