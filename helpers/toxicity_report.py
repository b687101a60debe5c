"""Sections of the toxicity chapter: ICANS, early haematotoxicity (ICAHT, CAR-HEMATOTOX), causes of death.

One function per section, `(page) -> Shown | Skipped`, built from the tidy frames of `helpers.icans`,
`helpers.haematotox` and `helpers.deaths`; sentences that state results are generated
here from those frames, so they change or disappear with the cohort.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import crs, deaths, derive, display, fmt, haematotox, icans, labels
from helpers.page import Page
from helpers.sections import Shown, Skipped, needs

GRADES = range(5)
TIMING_WORDS = {"during CRS": "During CRS", "after CRS resolved": "After CRS resolved", "before CRS": "Before CRS",
                "no CRS": "Without CRS"}


def p_text(p: float) -> str:
    """'p = 0.02', 'p < 0.001', 'p > 0.99' (the comparison sign once)."""
    text = fmt.p_value(p)
    return f"p {text}" if text[:1] in "<>" else f"p = {text}"


# ----------------------------------------------------------------------------- shared results
def _crs_summary(page: Page) -> pd.DataFrame:
    """Per-patient CRS course under the cohort's primary scale: the CRS chapter's own grading (derive.graded_scales,
    once per build)."""
    return crs.summarise_patients(derive.graded_scales(page.data)[page.settings.crs_system], page.data.patients)


def icans_summary(page: Page) -> pd.DataFrame:
    """Per-patient ICANS course with its timing against CRS and the reported grade beside it (once per page)."""
    def make() -> pd.DataFrame:
        graded = icans.grade_daily(page.data.daily, page.data.patients)
        return icans.summarise_patients(graded, _crs_summary(page), page.data.patients)
    return page.once("icans_summary", make).copy()


def _early_icaht(page: Page) -> pd.DataFrame:
    """Early ICAHT per patient (haematotox.early_icaht), computed once per page."""
    return page.once("early_icaht", lambda: haematotox.early_icaht(page.data.labs, page.data.patients)).copy()


def _no_icans_columns(page: Page, what: str) -> Skipped | None:
    """Skipped when the daily record holds no ICANS domain at all."""
    d = page.data.daily
    if any(c in d.columns and d[c].notna().any() for c in icans.ICANS_COLUMNS):
        return None
    names = fmt.join_words([f"`{c}`" for c in icans.ICANS_COLUMNS], "or")
    return Skipped(what, f"the daily clinical record (daily.csv) has no values for {names}.")


# ----------------------------------------------------------------------------- ICANS
def _icans_incidence_table(inc: pd.DataFrame, dist: pd.DataFrame) -> display.Table:
    """Any and severe ICANS (graded and reported) with exact CIs, then the maximum-grade distribution."""
    cols = {"graded": "Graded, ASTCT 2019", "reported": labels.label("icans_grade_reported")}
    rows = []
    for outcome in ("any ICANS", "severe ICANS"):
        row = {"ICANS": "Any grade" if outcome == "any ICANS" else f"Grade {inc['severe_grade'].iat[0]} or higher"}
        for src, name in cols.items():
            r = inc[(inc["source"] == src) & (inc["outcome"] == outcome)]
            row[name] = fmt.prop_ci(r["k"].iat[0], r["n"].iat[0], r["ci_low"].iat[0], r["ci_high"].iat[0]) \
                if len(r) else fmt.MISSING
        rows.append(row)
    for g in GRADES:
        row = {"ICANS": f"Maximum grade {g}"}
        for src, name in cols.items():
            d = dist[dist["source"] == src]
            row[name] = fmt.count_pct(int((d["grade"] == g).sum()), len(d)) if len(d) else fmt.MISSING
        rows.append(row)
    df = pd.DataFrame(rows)
    df = df[[c for c in df.columns if c == "ICANS" or (df[c] != fmt.MISSING).any()]]
    return display.table(df, "tbl-icans-incidence", stub="ICANS", indent=range(2, 2 + len(GRADES)),
                         notes=["Exact (Clopper-Pearson) 95% confidence intervals. Graded: patients with at least "
                                "one ICANS assessment after infusion."])


@needs(tables=("daily",), what="ICANS incidence")
def icans_incidence(page: Page) -> Shown | Skipped:
    """ICANS incidence graded from the daily record, beside the centre's reported grade."""
    if (skip := _no_icans_columns(page, "ICANS incidence")) is not None:
        return skip
    s = icans_summary(page)
    inc = icans.incidence(s, icans.IcansOptions().severe_grade)
    dist = pd.concat([pd.DataFrame({"source": "graded", "grade": s.loc[s["assessed"], "max_grade"]}),
                      pd.DataFrame({"source": "reported", "grade": s.get("icans_grade_reported", pd.Series(
                          dtype="Int64")).dropna().astype(int)})])
    g = inc[inc["source"] == "graded"].set_index("outcome")
    not_assessed = int((~s["assessed"]).sum())
    text = (f"ICANS of any grade occurred in {fmt.prop_ci(*g.loc['any ICANS', ['k', 'n', 'ci_low', 'ci_high']])} "
            f"of the assessed patients, and ICANS of grade {icans.IcansOptions().severe_grade} or higher in "
            f"{fmt.prop_ci(*g.loc['severe ICANS', ['k', 'n', 'ci_low', 'ci_high']])}.")
    if not_assessed:
        text += f" {fmt.plural(not_assessed, 'patient')} had no ICANS assessment after infusion and are not counted."
    return Shown(text, _icans_incidence_table(inc, dist), page.download(s, "icans_patients"), data=s)


@needs(tables=("daily",), what="ICANS onset, duration and timing against CRS")
def icans_course(page: Page) -> Shown | Skipped:
    """Onset, duration and timing of ICANS against the CRS episode (median and IQR, counts)."""
    if (skip := _no_icans_columns(page, "ICANS onset, duration and timing against CRS")) is not None:
        return skip
    s = icans_summary(page)
    ill = s[s["icans_any"]]
    if ill.empty:
        return Skipped("ICANS onset and duration", "no patient had ICANS.")
    rows = [{"Measure": "Onset, day after infusion", "Value": fmt.median_iqr(ill["onset_day"])},
            {"Measure": "Duration, days", "Value": fmt.median_iqr(ill["duration_days"])},
            {"Measure": "Day of maximum grade", "Value": fmt.median_iqr(ill["day_of_max"])},
            {"Measure": "Onset after CRS onset, days", "Value": fmt.median_iqr(ill["onset_vs_crs_days"])}]
    for timing in ("during CRS", "after CRS resolved", "before CRS", "no CRS"):
        k = int((ill["timing"] == timing).sum())
        rows.append({"Measure": f"Onset {timing}" if timing != "no CRS" else "Without CRS",
                     "Value": fmt.n_pct(k, len(ill))})
    tbl = display.table(pd.DataFrame(rows), "tbl-icans-course", stub="Measure",
                        notes=[f"Patients with ICANS, N = {len(ill)}. Median (Q1, Q3); n (%). CRS under "
                               f"{labels.scale(page.settings.crs_system)}."])
    after = int(ill["timing"].isin(["during CRS", "after CRS resolved"]).sum())
    text = (f"Of {fmt.plural(len(ill), 'patient')} with ICANS, {fmt.count_pct(after, len(ill))} developed it "
            f"during or after CRS, at a median (Q1, Q3) of {fmt.median_iqr(ill['onset_vs_crs_days'])} days after CRS onset.")
    return Shown(text, tbl, _icans_listing(ill), data=ill)


def _icans_listing(ill: pd.DataFrame) -> display.Table:
    """Per patient with ICANS: maximum grade, onset, duration and timing against CRS (folded beyond 12 rows)."""
    day = lambda x: fmt.number(x, 0)  # noqa: E731
    total, ill = len(ill), ill.head(display.MAX_LISTED)  # only the listed rows are formatted
    df = pd.DataFrame({"Patient": ill["patient_id"], "Maximum grade": ill["max_grade"].map(fmt.integer),
                       "Onset, day": ill["onset_day"].map(day), "Duration, days": ill["duration_days"].map(day),
                       "Onset after CRS onset, days": ill["onset_vs_crs_days"].map(day),
                       "Timing": ill["timing"].map(TIMING_WORDS)})
    return display.listing(df, "tbl-icans-patients", stub="Patient", title="Patients with ICANS", total=total,
                           full_list="the CSV download of the incidence section holds every patient")


@needs(tables=("daily",), what="ICANS by CRS severity and CAR-T expansion")
def icans_links(page: Page) -> Shown | Skipped:
    """ICANS among patients without, with non-severe and with severe CRS; its rank correlation with expansion."""
    from helpers.kinetics import spearman_ci

    if (skip := _no_icans_columns(page, "ICANS by CRS severity and CAR-T expansion")) is not None:
        return skip
    s = icans_summary(page)
    pt = page.pt.set_index("patient_id")
    t = icans.by_crs(s, pt["crs_grade"].astype("float64"), page.settings.severe_crs_grade)
    if t.empty:
        return Skipped("ICANS by CRS severity", "no assessed patient has a CRS grade.")
    names = {"no CRS": "No CRS", "non-severe CRS": "Non-severe CRS", "severe CRS": "Severe CRS"}
    df = pd.DataFrame({"CRS": t["group"].map(names),
                       "Patients": t["n"].map(fmt.integer),
                       "Any ICANS": [fmt.n_pct(k, n) for k, n in zip(t["k_icans"], t["n"])],
                       "Severe ICANS": [fmt.n_pct(k, n) for k, n in zip(t["k_severe_icans"], t["n"])]})
    tbl = display.table(df, "tbl-icans-by-crs", stub="CRS",
                        notes=[f"Fisher's exact test of any ICANS, severe vs not severe CRS: {p_text(t['p_value'].iat[0])}."])
    a = s[s["assessed"]].merge(page.pt[["patient_id", "log10_peak"]], on="patient_id")
    rho = spearman_ci(a["max_grade"].to_numpy(float), a["log10_peak"].to_numpy(float))
    text = (f"Maximum ICANS grade and peak CAR-T expansion: Spearman \u03c1 "
            f"{fmt.est_ci(rho['rho'], rho['ci_low'], rho['ci_high'])}, {p_text(rho['p_value'])} "
            f"(n = {rho['n']}).") if np.isfinite(rho["rho"]) else (
        f"The rank correlation of ICANS with peak expansion is not estimable ({rho['message']}).")
    return Shown(tbl, text, data=t)


# ----------------------------------------------------------------------------- early haematotoxicity
@needs(tables=("labs",), what="early ICAHT")
def early_icaht(page: Page) -> Shown | Skipped:
    """Early ICAHT grade (days 0-30) per patient and in the cohort, with the patients too sparse to grade."""
    res = _early_icaht(page)
    if (res["status"] == "no ANC in days 0-30").all():
        return Skipped("early ICAHT", "the laboratory table has no neutrophil count (`anc`) in days 0-30.")
    dist = haematotox.icaht_distribution(res)
    graded = dist[dist["what"].str.startswith(("grade", "severe"))]
    n = int(graded["n"].iat[0])
    names = {"too sparse to grade": "Too sparse to grade", "no ANC in days 0-30": "No neutrophil count in days 0-30"}
    rows = [{"Early ICAHT": w.capitalize() if not w.startswith("severe") else "Severe (grade 3-4)",
             "Patients": fmt.count_pct(k, n) if not w.startswith("severe") else fmt.prop_ci(k, n, lo, hi)}
            for w, k, lo, hi in graded[["what", "k", "ci_low", "ci_high"]].itertuples(index=False)]
    for w, k in dist.loc[~dist.index.isin(graded.index), ["what", "k"]].itertuples(index=False):
        rows.append({"Early ICAHT": names[w], "Patients": fmt.integer(k)})
    tbl = display.table(pd.DataFrame(rows), "tbl-icaht", stub="Early ICAHT",
                        notes=[f"Graded patients, N = {n}; severe with its exact (Clopper-Pearson) 95% CI."])
    sev = graded.iloc[-1]
    text = f"Severe early ICAHT (grade 3-4): {fmt.prop_ci(sev['k'], n, sev['ci_low'], sev['ci_high'])} of graded patients."
    sparse = res[res["status"] == "too sparse to grade"]
    parts = [text, tbl]
    if len(sparse):
        parts.append(display.listing(pd.DataFrame({
            "Patient": sparse["patient_id"], "ANC values": sparse["n_anc"].map(fmt.integer),
            "Days at or below 0.5": [f"{int(a)} to {int(b)}" for a, b in zip(sparse["days_le_0_5_min"], sparse["days_le_0_5_max"])],
            "Possible grades": [f"{int(a)} to {int(b)}" for a, b in zip(sparse["grade_low"], sparse["grade_high"])]}),
            "tbl-icaht-sparse", stub="Patient", title="Too sparse to grade",
            full_list="the CSV download holds every patient"))
    parts.append(_icaht_listing(res[res["status"] == "graded"]))
    return Shown(*parts, page.download(res, "early_icaht"), data=res)


def _icaht_listing(graded: pd.DataFrame) -> display.Table:
    """Per graded patient: days at or below 0.5 and 0.1 x 10^9/L in days 0-30, and the early ICAHT grade."""
    total, graded = len(graded), graded.head(display.MAX_LISTED)  # only the listed rows are formatted
    df = pd.DataFrame({"Patient": graded["patient_id"], "Days counted": (graded["window_end"] + 1).map(
                           lambda x: fmt.number(x, 0)),
                       "Days ANC \u2264 0.5 \u00d7 10\u2079/L": graded["days_le_0_5_min"].map(fmt.integer),
                       "Days ANC \u2264 0.1 \u00d7 10\u2079/L": graded["days_le_0_1_min"].map(fmt.integer),
                       "Early ICAHT grade": graded["grade"].map(fmt.integer)})
    return display.listing(df, "tbl-icaht-patients", stub="Patient", title="Graded patients", total=total,
                           full_list="the CSV download holds every patient")


@needs(tables=("labs",), what="CAR-HEMATOTOX baseline score")
def hematotox_score(page: Page) -> Shown | Skipped:
    """CAR-HEMATOTOX risk before lymphodepletion and severe early ICAHT by risk group."""
    h = haematotox.hematotox(page.data.labs, page.data.patients)
    if (h["risk"] == "inputs incomplete").all():
        return Skipped("CAR-HEMATOTOX score", "no patient has all five baseline values (platelets, ANC, "
                       "haemoglobin, CRP, ferritin) before lymphodepletion.")
    by = haematotox.icaht_by_risk(_early_icaht(page), h)
    n_all = len(h)
    df = pd.DataFrame({"CAR-HEMATOTOX": ["Low risk (score 0-1)", "High risk (score 2 or more)", "Inputs incomplete"],
                       "Patients": [fmt.count_pct(int((h["risk"] == r).sum()), n_all) for r in ("low", "high", "inputs incomplete")],
                       "Severe early ICAHT": [*(fmt.count_pct(k, n) for k, n in zip(by["k_severe"], by["n"])), fmt.MISSING]})
    tbl = display.table(df, "tbl-hematotox", stub="CAR-HEMATOTOX",
                        notes=[f"Severe early ICAHT among graded patients; Fisher's exact test, high vs low risk: "
                               f"{p_text(by['p_value'].iat[0])}."])
    ld = "the recorded first day of lymphodepletion" if "lymphodepletion_day" in page.data.patients.columns else \
        "day \u22125 (the first day of lymphodepletion is not recorded)"
    text = (f"Baseline values are the last on or before {ld}. Median (Q1, Q3) score "
            f"{fmt.median_iqr(h['score'].dropna(), 0)}.")
    return Shown(text, tbl, page.download(h, "car_hematotox"), data=h)


# ----------------------------------------------------------------------------- deaths
@needs(columns={"patients": ("os_days", "os_event")}, what="causes of death")
def causes_of_death(page: Page) -> Shown | Skipped:
    """Deaths by cause with their timing after infusion, and the non-relapse deaths by day 100 and 1 year."""
    t = deaths.causes_of_death(page.data.patients)
    total = int(t.loc[t["cause"] == "all causes", "n_deaths"].iat[0])
    if total == 0:
        return Skipped("causes of death", "no patient has died.")
    bins = [b[0] for b in deaths.TIMING_BINS]
    rows = []
    for _, r in t.iterrows():
        name = "All causes" if r["cause"] == "all causes" else (
            "Cause not recorded" if r["cause"] == deaths.NOT_RECORDED else labels.value("death_cause", r["cause"]))
        rows.append({"Cause": name, "Deaths": fmt.n_pct(r["n_deaths"], total),
                     "Day of death": f"{fmt.number(r['median_day'], 0)} ({fmt.ci(r['min_day'], r['max_day'], 0)})"
                     if r["n_deaths"] else fmt.MISSING, **{b.capitalize(): fmt.integer(r[b]) for b in bins}})
    tbl = display.table(pd.DataFrame(rows), "tbl-causes-of-death", stub="Cause",
                        spanners={"Deaths by time after infusion": [b.capitalize() for b in bins]},
                        notes=[f"Patients, N = {len(page.data.patients)}. Day of death: median (range); "
                               "deaths as n (% of deaths)."])
    nrm = deaths.nrm_counts(page.data.patients)
    if not (page.data.has_columns("death_cause") or page.data.has_columns("pfs_days", "pfs_event")):
        by_day = "; ".join(f"by day {fmt.number(r.day, 0)}, {fmt.integer(r.nrm_deaths + r.other_deaths)}"
                           for r in nrm.itertuples(index=False))
        note = ("This cohort records neither the cause of death (`death_cause`) nor relapse or progression "
                "(`pfs_days`, `pfs_event`), so non-relapse mortality is not reported. Deaths from any cause: "
                f"{by_day}.")
        return Shown(tbl, note, page.download(t, "causes_of_death"), data=t)
    sentences = [f"By day {fmt.number(r.day, 0)}, {fmt.plural(r.nrm_deaths, 'patient')} had died without "
                 f"relapse and {fmt.integer(r.other_deaths)} of or after relapse; {fmt.integer(r.followed_past)} "
                 f"were followed beyond it and {fmt.integer(r.censored_before)} were last seen alive before it."
                 for r in nrm.itertuples(index=False)]
    note = ("Non-relapse mortality is a death not due to relapse and not preceded by relapse or progression; its "
            "cumulative incidence, with relapse as the competing event, is in the survival chapter.")
    return Shown(tbl, " ".join(sentences), note, page.download(t, "causes_of_death"),
                 page.download(nrm, "nrm_counts", "Download the non-relapse death counts as CSV"), data=t)


# ----------------------------------------------------------------------------- close
def conclusions(page: Page) -> Shown:
    """What the toxicity results can and cannot support (method-level, with the cohort's size)."""
    n = len(page.data.patients)
    return Shown(
        f"These are descriptive rates from {fmt.plural(n, 'patient')} with exact confidence intervals; comparisons "
        "between subgroups (ICANS by CRS severity and expansion, severe ICAHT by CAR-HEMATOTOX risk) "
        "are exploratory and unadjusted. Grades computed from the daily record depend on what was recorded: a "
        "domain that was not assessed counts as normal, and a patient without ANC values close enough together "
        "is reported as too sparse to grade rather than given a grade.")
