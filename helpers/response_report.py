"""Chapter 2 (response), section by section: best response, remission and MRD rates with exact intervals,
response by subgroup, each patient's course, time to remission, CRS and expansion by response, and what
can be concluded. Each function takes the chapter's `Page` and returns `Shown` or `Skipped`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import cohort_report, display, fmt, labels, response, stats
from helpers.sections import Shown, Skipped, needs

CLOPPER_PEARSON = "Exact (Clopper-Pearson) 95% confidence intervals."
RATE_NAMES = {"Remission": "Remission, of all infused patients",
              "Remission, of evaluable patients": "Remission, of patients evaluable for response",
              "MRD-negative remission, of all patients": "MRD-negative remission, of all infused patients",
              "MRD-negative, of remissions": "MRD-negative, of patients in remission"}


def _remission_words(page) -> str:
    """The cohort's remission responses in words: 'CR/CRi'."""
    return "/".join(page.settings.remission_responses)


def best_response(page) -> Shown:
    """The best-response distribution with exact intervals, all infused patients as denominator."""
    t = response.best_response_table(page.pt)
    frame = pd.DataFrame({
        "Best response": [labels.value("best_response", r) for r in t["response"]],
        "Patients, n (%)": [fmt.count_pct(k, n) for k, n in zip(t["n"], t["N"])],
        "95% CI, %": [fmt.ci(lo, hi, 1) for lo, hi in zip(t["ci_low_pct"], t["ci_high_pct"])],
    })
    notes = [CLOPPER_PEARSON + " Denominator: every infused patient."]
    if t["response"].eq("NE").any():
        notes.append("Not evaluable (NE): died or left the study before the response assessment.")
    table = display.table(frame, "best-response", stub="Best response", notes=notes)
    return Shown(table, page.download(t, "best_response"), data=t)


def rates(page) -> Shown:
    """Remission and MRD-negative remission rates with exact intervals, and how MRD unknowns are counted."""
    r = response.response_rates(page.pt)
    frame = pd.DataFrame({"Rate": [RATE_NAMES.get(x, x) for x in r["term"]],
                          "Patients, n/N (%; 95% CI)": [fmt.prop_ci(k, n, lo, hi) for k, n, lo, hi
                                                        in zip(r["k"], r["n"], r["ci_low"], r["ci_high"])]})
    by = dict(zip(r["term"], frame["Patients, n/N (%; 95% CI)"]))
    text = f"Remission ({_remission_words(page)}): {by['Remission']}."
    if "Remission, of evaluable patients" in by:
        text += f" Among the patients evaluable for response: {by['Remission, of evaluable patients']}."
    if "MRD-negative, of remissions" in by:
        unknown = int(r["mrd_unknown"].max())
        text += (f" MRD-negative remission: {by['MRD-negative remission, of all patients']} of all infused patients "
                 f"and {by['MRD-negative, of remissions']} of the patients in remission.")
        text += (f" {fmt.plural(unknown, 'remission')} without an MRD result {'counts' if unknown == 1 else 'count'} "
                 "as not MRD-negative." if unknown else " Every remission has an MRD result.")
    else:
        text += " This cohort records no MRD results, so MRD negativity is not reported."
    table = display.table(frame, "response-rates", stub="Rate", notes=[CLOPPER_PEARSON])
    return Shown(text, table, page.download(r, "response_rates"), data=r)


def subgroup_frame(t: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Display frame of the subgroup odds ratios and the notes (which estimates are Firth's)."""
    firth = t["method"].str.startswith("zero cell")
    frame = pd.DataFrame({
        "Subgroup": [f"{term}{' *' if f else ''}" for term, f in zip(t["term"], firth)],
        "Remission in subgroup": [fmt.count_pct(a, b) for a, b in zip(t["events_exposed"], t["n_exposed"])],
        "Remission in the rest": [fmt.count_pct(a, b) for a, b in zip(t["events_unexposed"], t["n_unexposed"])],
        "OR (95% CI)": [fmt.est_ci(e, lo, hi) for e, lo, hi in zip(t["or"], t["ci_low"], t["ci_high"])],
        "p-value": [fmt.p_value(p) for p in t["p_value"]],
    })
    notes = ["Odds ratio of remission, subgroup against the rest: conditional maximum-likelihood estimate with "
             "exact 95% CI; p from Fisher's exact test (as R's fisher.test). Continuous factors are split above "
             "against at or below their median. Not adjusted for multiplicity."]
    if firth.any():
        notes.append("* A cell of the 2 \u00d7 2 table is empty, so the conditional estimate is 0 or infinite: "
                     "Firth's penalised odds ratio with a profile-likelihood interval is shown instead.")
    return frame, notes


def subgroups(page) -> Shown | Skipped:
    """Odds ratios of remission by subgroup: table and forest plot (skipped when no factor varies)."""
    import matplotlib.pyplot as plt

    t = response.subgroup_table(page.pt)
    if not len(t):
        return Skipped("response by subgroup", "no subgroup factor (marrow blasts, Philadelphia chromosome, prior "
                       "allogeneic HSCT, CAR-T dose, effector-memory share) has two or more values in this cohort.")
    frame, notes = subgroup_frame(t)
    table = display.table(frame, "response-subgroups", stub="Subgroup", notes=notes)
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(t) + 1.4))
    response.plot_subgroups(t, ax=ax)
    return Shown(table, fig, page.download(t, "response_by_subgroup"), data=t)


def swimmer(page) -> Shown:
    """Each patient's course from infusion to last follow-up (pseudonyms only)."""
    ax = response.plot_swimmer(page.pt, page.settings.landmark_day)
    return Shown(ax.figure, data=response.swimmer_events(page.pt, page.settings.landmark_day))


def time_to_remission(page) -> Shown | Skipped:
    """Median (range) of the recorded days to remission among responders."""
    ttr = response.time_to_remission(page.pt)
    if not ttr["n_recorded"]:
        return Skipped("time to remission", "this cohort records no `remission_day` for its responders (days the "
                       "book assumes are not measurements).")
    text = (f"Remission was first documented at a median of day {fmt.number(ttr['median'], 0 if ttr['median'] % 1 == 0 else 1)} "
            f"(range {fmt.number(ttr['min'], 0)}{fmt.DASH}{fmt.number(ttr['max'], 0)}) among the "
            f"{fmt.integer(ttr['n_recorded'])} of {fmt.plural(ttr['n_responders'], 'responder')} with a recorded day.")
    late = page.pt["remission_day"].gt(page.settings.landmark_day) & ~page.pt["remission_day_assumed"].astype(bool)
    if late.any():
        text += (f" {fmt.plural(int(late.sum()), 'responder')} {'was' if late.sum() == 1 else 'were'} documented in "
                 f"remission after the landmark day (day {fmt.number(page.settings.landmark_day, 0)}).")
    return Shown(text, data=pd.DataFrame([ttr]))


def crs_peak_frame(pt: pd.DataFrame, groups: pd.Series) -> tuple[pd.DataFrame, list[int]]:
    """Maximum CRS grade (levels 0-5) and log10 peak expansion, overall and by remission, without tests."""
    variables = {c: k for c, k in (("crs_grade", stats.CATEGORICAL), ("log10_peak", stats.CONTINUOUS))
                 if c in pt and pt[c].notna().any()}
    grade = pd.Categorical(pt["crs_grade"].astype("Float64").astype(float).map(
        lambda g: np.nan if pd.isna(g) else str(int(g))), categories=[str(g) for g in range(6)])
    df = pt.assign(crs_grade=grade)
    cols = cohort_report.summary_columns(df, groups)
    rows, indent = [], []
    for var, kind in variables.items():
        for label, ind, cells in cohort_report.summary_cells(df, var, kind, cols):
            indent += [len(rows)] if ind else []
            rows.append({"Characteristic": label, **cells})
    return pd.DataFrame(rows), indent


def crs_and_expansion(page) -> Shown | Skipped:
    """For orientation: maximum CRS grade and peak expansion by remission (descriptive, no tests)."""
    pt = page.pt
    if not (pt["crs_grade"].notna().any() or pt["log10_peak"].notna().any()):
        return Skipped("CRS grade and peak expansion by response", "this cohort has neither CRS grades (daily "
                       "record or reported grades) nor a CAR-T kinetics table (kinetics.csv).")
    groups, spanner = cohort_report.groupings(page)["remission"]
    frame, indent = crs_peak_frame(pt, groups)
    cols = [c for c in frame.columns if c != "Characteristic"]
    table = display.table(frame, "response-crs-peak", stub="Characteristic", indent=indent,
                          spanners={spanner: cols[1:]}, footnotes={cohort_report.STATISTICS_NOTE: cols},
                          notes=["Descriptive only: the tests belong to the CRS and kinetics chapters."])
    tidy = pt[["patient_id", "remission", "crs_grade", "log10_peak"]]
    parts = [table]
    if not pt["log10_peak"].notna().any():
        parts.append(Skipped("peak expansion by response", "this cohort has no CAR-T kinetics table (kinetics.csv)."))
    if not pt["crs_grade"].notna().any():
        parts.append(Skipped("CRS grade by response", "this cohort has no CRS grades."))
    return Shown(*parts, data=tidy)


def conclusions(page) -> Shown:
    """How precisely this cohort can know its remission rate and subgroup effects (from the results)."""
    r = response.response_rates(page.pt).set_index("term").loc["Remission"]
    t = response.subgroup_table(page.pt)
    ok = t[np.isfinite(t["ci_low"]) & np.isfinite(t["ci_high"]) & (t["ci_low"] > 0)] if len(t) else t
    text = (f"With {fmt.plural(int(r['n']), 'patient')} the remission rate is known only to within an exact 95% "
            f"interval {fmt.number(100 * (r['ci_high'] - r['ci_low']), 0)} percentage points wide "
            f"({fmt.ci(100 * r['ci_low'], 100 * r['ci_high'], 1)}%), so it is compatible with quite different true "
            "rates and cannot rank this product against others.")
    if len(ok):
        widest = float((ok["ci_high"] / ok["ci_low"]).max())
        text += (f" The subgroup odds ratios are less precise still (the widest interval spans a "
                 f"{fmt.number(widest, 0)}-fold range): an interval that excludes 1 is a lead for a larger study, "
                 f"one that includes 1 is not evidence of no effect, and with {fmt.plural(len(t), 'subgroup')} "
                 "tested a nominal p < 0.05 can arise by chance.")
    text += (" Response is not randomised: a subgroup difference may reflect who was selected for which dose or "
             "product.")
    return Shown(text, data=pd.DataFrame([r]))
