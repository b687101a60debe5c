"""The CRS chapter's sections: incidence, the four scales side by side, the course and treatment of CRS,
what came with severe CRS, and its pretreatment predictors. One function per section, `(page) -> Shown |
Skipped`; every sentence that states a result is built here from the result it states.

The analyses are in `helpers.crs` (grading, course, treatment) and `helpers.crs_severity` (groups,
markers, models); this module only turns their tidy frames into display tables, figures and sentences.
"""
from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers import crs, derive, display, fmt, labels
from helpers import crs_severity as cs
from helpers.sections import Shown, Skipped, needs

GRADED = {"daily": crs.GRADING_NEEDS}  # a daily record CRS can be graded from (it has temperatures)

GE = "\u2265"


# ------------------------------------------------------------------------------------ shared results


def _severe(page) -> int:
    return int(page.settings.severe_crs_grade)


def _primary(page) -> str:
    return page.settings.crs_system


def _options(page) -> crs.GradingOptions:
    return crs.cohort_options(page.settings)


def _gap(page) -> int:
    return int(page.settings.episode_gap_days)


def episode_rule(page) -> str:
    """The episode rule with the number of days this page was graded with (cohort.yml `episode_gap_days`)."""
    gap = _gap(page)
    default = ", the default" if gap == crs.COURSE_GAP_DAYS else ""
    return (f"A CRS episode, and the fever masking that goes with it, ends after {fmt.plural(gap, 'consecutive day')} "
            f"without fever, hypotension or hypoxia (`episode_gap_days` in cohort.yml{default}).")


def _graded(page) -> dict[str, pd.DataFrame]:
    return page.once("graded", lambda: derive.graded_scales(page.data))


def _summaries(page) -> dict[str, pd.DataFrame]:
    """Each scale's per-patient summary (crs.summarise_patients), shared by the agreement and course tables."""
    d = page.data
    return page.once("summaries", lambda: {s: crs.summarise_patients(g, d.patients)
                                               for s, g in _graded(page).items()})


def _agreement(page) -> pd.DataFrame:
    """Per-patient maximum grade under each scale (and the centre's own grades when recorded)."""
    def make():
        d = page.data
        a = crs.agreement_from_summaries(_summaries(page), _severe(page))
        if "crs_grade_reported" in d.patients.columns and d.patients["crs_grade_reported"].notna().any():
            a = crs.with_reported(a, d.patients)
        return a
    return page.once("agreement", make)


def _scales(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c in crs.SYSTEMS or c == crs.REPORTED]


def _course(page) -> pd.DataFrame:
    d = page.data
    return page.once("course", lambda: pd.concat(
        [crs.course_table(g, d.patients, _gap(page), _summaries(page)[s]).assign(system=s)
         for s, g in _graded(page).items()],
        ignore_index=True))


def _severity(page) -> pd.DataFrame:
    return cs.page_frame(page)


def _patients(k: int) -> str:
    return "no patient" if int(k) == 0 else fmt.plural(int(k), "patient")


def _grade_words(grade: int) -> str:
    return f"grade {grade} or higher"


# ------------------------------------------------------------------------------------------- incidence


def incidence(page) -> Shown | Skipped:
    """Any and severe CRS under the cohort's scale, with exact (Clopper-Pearson) intervals."""
    pt = page.pt
    if pt["crs_grade"].isna().all():
        return Skipped("CRS incidence", "this cohort has neither a daily clinical record (daily.csv) with "
                       "temperatures (`temp_max_c`) to grade nor CRS grades reported by the centre "
                       "(`crs_grade_reported`).")
    inc = cs.incidence(pt, _severe(page))
    names = [labels.label("crs_any"), f"Severe CRS ({_grade_words(_severe(page))})",
             "Severe CRS, among patients with CRS"][:len(inc)]
    cells = [fmt.prop_ci(k, n, lo, hi) for k, n, lo, hi in inc[["k", "n", "ci_low", "ci_high"]].to_numpy()]
    shown = pd.DataFrame({"Outcome": names, "n/N (%; 95% CI)": cells})
    table = display.table(shown, "crs-incidence", align_left=["Outcome"],
                          notes=["Exact (Clopper-Pearson) 95% confidence intervals."])
    source = (f"Under {labels.scale(_primary(page))} (graded from the daily clinical record)" if page.data.grades_crs
              else "By the grades the centre reported")
    text = (f"{source}, {_of(inc.iloc[0])} patients had CRS and {_of(inc.iloc[1])} had severe CRS"
            + (f"; {_of(inc.iloc[2])} of the patients with CRS had severe CRS." if len(inc) > 2 else "."))
    if page.data.grades_crs:
        text += " " + episode_rule(page)
    return Shown(text, table, page.download(inc.drop(columns="formatted"), "crs_incidence"), data=inc)


def _of(row: pd.Series) -> str:
    return f"{int(row['k'])} of {int(row['n'])} ({fmt.pct(row['estimate'])}; 95% CI " \
           f"{fmt.ci(100 * row['ci_low'], 100 * row['ci_high'], 1)}%)"


# ------------------------------------------------------------------------------------ scale agreement


@needs(tables=("daily",), columns=GRADED, what="re-grading under four scales")
def scale_incidence(page) -> Shown:
    """Any and severe CRS under each scale (and as reported), with exact CIs; the range of severe counts."""
    a = _agreement(page)
    inc = crs.incidence_by_system(a, _severe(page))
    rows = []
    for s in _scales(a):
        one = inc[inc["system"] == s]
        rows.append([labels.scale(s), *[fmt.prop_ci(k, n, lo, hi) for k, n, lo, hi in
                                         one[["k", "n", "ci_low", "ci_high"]].to_numpy()]])
    shown = pd.DataFrame(rows, columns=["Scale", "Any CRS", f"Severe CRS (grade {GE}{_severe(page)})"])
    table = display.table(shown, "crs-incidence-by-scale", align_left=["Scale"],
                          notes=["n/N (%; exact Clopper-Pearson 95% CI)."])
    severe = inc[inc["outcome"] != "any CRS"].set_index("system")["k"].astype(int)
    graders = severe[[s for s in severe.index if s in crs.SYSTEMS]]
    lo, hi = graders.min(), graders.max()
    if lo == hi:
        text = f"All four scales count the same number of patients with severe CRS ({lo})."
    else:
        fewest = fmt.join_words(labels.scale(s) for s in graders.index[graders == lo])
        most = fmt.join_words(labels.scale(s) for s in graders.index[graders == hi])
        text = (f"The same daily record gives between {lo} ({fewest}) and {hi} ({most}) patients with severe CRS, "
                "depending only on the scale.")
    return Shown(text, table, page.download(a, "crs_max_grade_by_scale", "Download every patient's maximum grade "
                                            "under each scale as CSV"), data=inc)


@needs(tables=("daily",), columns=GRADED, what="cross-tables of the scales")
def scale_crosstabs(page) -> Shown:
    """The primary scale's maximum grade (rows) against each other scale's (columns), grade 0-5."""
    a, primary = _agreement(page), _primary(page)
    parts, frames = [], []
    for other in [s for s in _scales(a) if s != primary]:
        tab = crs.grade_crosstab(a, primary, other)
        long = pd.DataFrame([(primary, r, other, c, int(tab.iat[r, c])) for r in range(6) for c in range(6)],
                            columns=["row_scale", "row_grade", "column_scale", "column_grade", "patients"])
        frames.append(long)
        shown = pd.DataFrame(tab.to_numpy().astype(int).astype(str), columns=[str(g) for g in range(6)])
        stub = f"{labels.scale(primary)} grade"
        shown.insert(0, stub, [str(g) for g in range(6)])
        agree = int(np.trace(tab.to_numpy()))
        parts.append(display.table(
            shown, f"crs-crosstab-{primary}-{other}", align_left=[stub],
            spanners={f"{labels.scale(other)} grade": [str(g) for g in range(6)]},
            title=f"{labels.scale(primary)} (rows) against {labels.scale(other)} (columns)",
            notes=[f"Patients by maximum grade; the diagonal holds the {agree} of {int(tab.to_numpy().sum())} "
                   "patients graded alike."]))
    return Shown(*parts, data=pd.concat(frames, ignore_index=True))


@needs(tables=("daily",), columns=GRADED, what="severe-CRS switches between scales")
def severe_switches(page) -> Shown:
    """Per pair of scales: severe under each, under both, under one only (counted on patients graded by both)."""
    a = _agreement(page)
    sw = crs.severe_switches(a, _severe(page))
    shown = pd.DataFrame({
        "Scales compared": [f"{labels.scale(x)} and {labels.scale(y)}"
                            for x, y in sw[["system_a", "system_b"]].to_numpy()],
        "Patients": sw["n_patients"].map(fmt.integer),
        "Severe under the first": sw["n_severe_a"].map(fmt.integer),
        "Severe under the second": sw["n_severe_b"].map(fmt.integer),
        "Severe under both": sw["n_both_severe"].map(fmt.integer),
        "Severe under the first only": sw["n_severe_a_only"].map(fmt.integer),
        "Severe under the second only": sw["n_severe_b_only"].map(fmt.integer),
    })
    table = display.table(shown, "crs-severe-switches", align_left=["Scales compared"],
                          notes=[f"Severe = maximum grade {GE}{_severe(page)}; each pair counted on the patients "
                                 "graded under both."])
    primary = sw[(sw["system_a"] == _primary(page)) | (sw["system_b"] == _primary(page))]
    words = [f"{labels.scale(y if x == _primary(page) else x)} on {_patients(k)}"
             for x, y, k in primary[["system_a", "system_b", "n_switch"]].to_numpy()]
    text = f"{labels.scale(_primary(page))} and the other scales disagree about severe CRS: " \
           f"{fmt.join_words(words)}." if primary["n_switch"].sum() else \
        f"{labels.scale(_primary(page))} and every other scale agree on who had severe CRS."
    return Shown(text, table, data=sw)


@needs(tables=("daily",), columns=GRADED, what="what drives the disagreements")
def disagreement_drivers(page) -> Shown | Skipped:
    """For each patient the scales put on different sides of the severe threshold: the rule behind each maximum."""
    d = page.data
    a = _agreement(page)
    drivers = page.once("drivers", lambda: crs.drivers_from_graded(_graded(page)))
    wide = crs.disagreements(drivers, a)
    record = record_note(d.daily)
    if wide.empty:
        return Shown("Every patient is on the same side of the severe threshold under all four scales. " + record,
                     data=wide)
    cells = drivers[drivers["patient_id"].isin(wide["patient_id"])]
    cells = cells.assign(text=[f"{int(g)}: {labels.crs_driver(r)}" if g else "0: no CRS"
                               for g, r in cells[["max_daily_grade", "driver"]].to_numpy()])
    shown = cells.pivot(index="patient_id", columns="system", values="text")[list(crs.SYSTEMS)]
    shown.columns = [labels.scale(s) for s in shown.columns]
    shown = shown.reset_index().rename(columns={"patient_id": "Patient"})
    table = display.listing(shown, "crs-disagreements", align_left=list(shown.columns),
                            notes=["Highest daily grade under each scale and the rule that set it, on that "
                                   "scale's worst day (a death from CRS, grade 5, is not a daily grade)."])
    return Shown(driver_sentences(drivers, a, _primary(page), _severe(page)) + " " + record, table,
                 data=drivers[drivers["patient_id"].isin(wide["patient_id"])])


def driver_sentences(drivers: pd.DataFrame, agreement: pd.DataFrame, primary: str, severe: int) -> str:
    """Why patients switch: per other scale, the rules that made them severe there but not under the primary
    scale, or not severe there but severe under it, counted from the drivers."""
    top = drivers.set_index(["patient_id", "system"])
    out = []
    for other in [s for s in crs.SYSTEMS if s != primary]:
        for up, side in ((True, "severe only under"), (False, "severe only under")):
            a, b = (other, primary) if up else (primary, other)
            ids = agreement.loc[(agreement[a] >= severe) & (agreement[b] < severe), "patient_id"]
            if ids.empty:
                continue
            found = top["driver"].reindex(pd.MultiIndex.from_arrays([ids, [a] * len(ids)]))  # in the order of ids
            rules = pd.Series([labels.crs_driver(r) for r in found]).value_counts()
            why = fmt.join_words(f"{r} ({n})" for r, n in rules.items())
            out.append(f"{fmt.plural(len(ids), 'patient')} {'is' if len(ids) == 1 else 'are'} {side} "
                       f"{labels.scale(a)}, not {labels.scale(b)}, through {why}.")
    return " ".join(out)


def record_note(daily: pd.DataFrame) -> str:
    """What the record holds for the two rules it may leave open: the vasopressor dose (Lee 2014, Penn
    'high dose') and fluid boluses (Penn grade 3), decided from the columns and values present."""
    pressor = crs._pressor_mask(daily)
    n_days = int(pressor.sum()) if pressor is not None else 0
    dose_cols = [c for c in ("norepi_equiv_ug_min", "vasopressor_high_dose") if c in daily.columns]
    has_dose = bool(dose_cols)
    n_dose = int(daily.loc[pressor, dose_cols].notna().any(axis=1).sum()) if n_days and has_dose else 0
    assume = ("the graders assume a low dose under Lee 2014 and read two or more vasopressors as high dose under "
              "Penn")
    if pressor is None:
        first = "This daily record does not record vasopressors, so no day is graded by them."
    elif not n_days:
        first = "No patient-day in this record has a vasopressor, so the vasopressor-dose rules do not arise."
    elif not has_dose:
        first = f"This daily record has no vasopressor dose (norepinephrine equivalent), so on its {n_days} " \
                f"vasopressor days {assume}."
    elif n_dose == n_days:
        first = (f"A vasopressor dose (norepinephrine equivalent or a high-dose flag) is recorded on all {n_days} "
                 "vasopressor days, so Lee 2014 and Penn grade 'high dose' from the record.")
    else:
        first = f"A vasopressor dose (norepinephrine equivalent or a high-dose flag) is recorded on {n_dose} of " \
                f"{n_days} vasopressor days; on the " \
                f"others {assume}."
    boluses = "fluid_boluses" in daily.columns and daily["fluid_boluses"].notna().any()
    second = ("Fluid boluses are recorded, so Penn's 'multiple fluid boluses' (grade 3) is graded from them."
              if boluses else "This daily record has no fluid-bolus count, so under Penn hypotension without "
                              "vasopressors stays grade 2.")
    return f"{first} {second}"


# ---------------------------------------------------------------------------------- course, treatment


@needs(tables=("daily",), columns=GRADED, what="the CRS timeline")
def timeline(page) -> Shown:
    """One lane per patient under the primary scale, grade 5 on the day of a death from CRS."""
    d = page.data
    graded = _graded(page)[_primary(page)]
    n = graded["patient_id"].nunique()
    fig, ax = plt.subplots(figsize=(9, 0.28 * min(n, crs.MAX_LANES) + 1.4), layout="constrained")
    cs.plot_timeline(graded, d.daily, d.patients, ax=ax)
    ax.set_xlabel(f"Day after infusion (CRS grade under {labels.scale(_primary(page))})")
    return Shown(fig, data=cs.fatal_cells(graded, d.patients))


COURSE_ROWS = ("onset_day", "duration_days", "day_of_max", "onset_to_max_days", "crs_days")


@needs(tables=("daily",), columns=GRADED, what="the course of CRS")
def course(page) -> Shown | Skipped:
    """Onset, duration, day of maximum grade and recurrence: cohort medians (IQR) under each scale, and the
    per-patient course under the primary scale."""
    c = _course(page)
    with_crs = c[c["crs_any"]]
    if with_crs.empty:
        return Skipped("the course of CRS", "no patient had CRS under any scale.")
    cols, rows = {}, [labels.label(k) for k in COURSE_ROWS] + [labels.label("recurrence")]
    for s in crs.SYSTEMS:
        one = with_crs[with_crs["system"] == s]
        cells = [fmt.median_iqr(one[k]) for k in COURSE_ROWS] + [fmt.n_pct(int(one["recurrence"].sum()), len(one))]
        cols[f"{labels.scale(s)}, N = {len(one)}"] = cells
    shown = pd.DataFrame({"Characteristic": rows, **cols})
    table = display.table(shown, "crs-course-by-scale", align_left=["Characteristic"], notes=[
        "Patients with CRS under each scale; median (Q1, Q3) or n (%). A death from CRS is grade 5 on the day of "
        f"death. {episode_rule(page)} Recurrence is a second episode."])
    return Shown(course_sentence(with_crs, _primary(page)), table, _course_listing(page, c),
                 page.download(c, "crs_course_by_scale"), data=c)


def course_sentence(with_crs: pd.DataFrame, primary: str) -> str:
    """Median onset and duration under the primary scale, recurrences, and how many patients another scale
    gives a different onset or duration."""
    one = with_crs[with_crs["system"] == primary]
    k = int(one["recurrence"].sum())
    text = (f"Under {labels.scale(primary)}, CRS began a median of {fmt.number(one['onset_day'].median(), 1)} days "
            f"after infusion and lasted a median of {fmt.number(one['duration_days'].median(), 1)} days; "
            f"{_patients(k)} had a second episode.")
    base = one.set_index("patient_id")[["onset_day", "duration_days"]]
    differ = set()
    for s in [s for s in crs.SYSTEMS if s != primary]:
        other = with_crs[with_crs["system"] == s].set_index("patient_id")[["onset_day", "duration_days"]]
        both = base.join(other, how="outer", rsuffix="_other")
        changed = ~((both["onset_day"] == both["onset_day_other"])
                    & (both["duration_days"] == both["duration_days_other"]))
        differ |= set(both.index[changed])
    return text + (" Onset and duration are the same under every scale: the scales share the rule for a CRS day "
                   "and differ in the grade." if not differ else
                   f" Another scale gives a different onset or duration for {_patients(len(differ))}.")


def _course_listing(page, c: pd.DataFrame) -> display.Table:
    """Per-patient course under the primary scale (patients with CRS), folded beyond 12 rows."""
    one = c[(c["system"] == _primary(page)) & c["crs_any"]]
    total, one = len(one), one.head(display.MAX_LISTED)  # only the listed rows are formatted
    shown = pd.DataFrame({
        "Patient": one["patient_id"], "Maximum grade": one["max_grade"].map(fmt.integer),
        "Onset, day": one["onset_day"].map(lambda v: fmt.number(v, 0)),
        "Duration, days": one["duration_days"].map(lambda v: fmt.number(v, 0)),
        "Day of maximum grade": one["day_of_max"].map(lambda v: fmt.number(v, 0)),
        "Episodes": one["episodes"].map(fmt.integer)})
    return display.listing(shown, "crs-course-patients", align_left=["Patient"], total=total,
                           title=f"Course of CRS per patient ({labels.scale(_primary(page))})",
                           full_list="the CSV download holds every patient")


@needs(tables=("daily",), columns=GRADED, what="CRS treatment and ICU-level support")
def treatment(page) -> Shown:
    """Tocilizumab and corticosteroids (n (%), first dose relative to CRS onset) and ICU-level support on a CRS
    day, overall and by maximum grade under the primary scale."""
    d = page.data
    graded = _graded(page)[_primary(page)]
    course_ = _course(page)
    t = crs.treatment_table(d.daily, course_[course_["system"] == _primary(page)], graded)
    groups = [("Overall", t)] + [(("No CRS" if g == 0 else f"Grade {g}"), t[t["max_grade"] == g])
                                 for g in sorted(t["max_grade"].unique())]
    rows = _treatment_rows(t)
    shown = pd.DataFrame({"Characteristic": [r[0] for r in rows]})
    for name, sub in groups:
        shown[f"{name}, N = {len(sub)}"] = [r[1](sub) for r in rows]
    indent = [i for i, r in enumerate(rows) if r[2]]
    table = display.table(shown, "crs-treatment", stub="Characteristic", indent=indent, spanners={
        f"Maximum CRS grade ({labels.scale(_primary(page))})": list(shown.columns[2:])}, notes=[
        "n (%) of all patients in the column; first dose: median (Q1, Q3) days from CRS onset among treated "
        "patients with CRS (negative: before onset). Support counted on days graded as CRS."])
    return Shown(treatment_sentence(t), table, page.download(t, "crs_treatment"), data=t)


def _treatment_rows(t: pd.DataFrame) -> list[tuple[str, Callable[[pd.DataFrame], str], bool]]:
    """(label, cell function, indented) for the treatment table; a column absent from the record is 'not recorded'."""
    def share(col):
        return lambda s: "not recorded" if t[col].isna().all() else fmt.n_pct(int(s[col].fillna(False).sum()), len(s))

    def timing(col):
        return lambda s: fmt.median_iqr(s.loc[s[col.replace("_from_onset", "")].fillna(False).astype(bool), col])
    return [(labels.label("tocilizumab"), share("tocilizumab"), False),
            ("First dose, days from CRS onset", timing("tocilizumab_from_onset"), True),
            (labels.label("steroids"), share("steroids"), False),
            ("First dose, days from CRS onset", timing("steroids_from_onset"), True),
            (labels.label("any_vasopressor"), share("any_vasopressor"), False),
            (labels.label("positive_pressure"), share("positive_pressure"), False)]


def treatment_sentence(t: pd.DataFrame) -> str:
    """Tocilizumab and corticosteroid use in words, from the treatment table (one sentence per drug)."""
    out = []
    for col in ("tocilizumab", "steroids"):
        name = labels.label(col)
        if t[col].isna().all():
            out.append(f"{name} {'is' if col == 'tocilizumab' else 'are'} not recorded.")
            continue
        given = t[col].fillna(False).astype(bool)
        timing = t.loc[given, f"{col}_from_onset"].dropna()
        when = (f"; the first dose came a median of {fmt.number(timing.median(), 1)} days after CRS onset"
                if len(timing) else "")
        out.append(f"{int(given.sum())} of {len(t)} patients received {name.lower()}{when}.")
    return " ".join(out)


# ---------------------------------------------------------------------------------- severe versus mild


def severe_vs_mild(page) -> Shown | Skipped:
    """Severe against mild CRS among patients with CRS (the published comparison): grade-defining features
    described, the other markers tested (Wilcoxon/Hodges-Lehmann, Fisher), BH over the tested family."""
    return _comparison(page, "severe_vs_mild", "crs-severe-vs-mild", "crs_severe_vs_mild")


def severe_vs_rest(page) -> Shown | Skipped:
    """The same markers, severe CRS against mild or no CRS (all patients)."""
    return _comparison(page, "severe_vs_rest", "crs-severe-vs-rest", "crs_severe_vs_mild_or_none")


def _comparison(page, group: str, id: str, csv: str) -> Shown | Skipped:
    """One comparison section: the defining-features table, the markers table, and sentences."""
    if not (page.data.has("daily") or page.data.has("labs")):
        return Skipped("the comparison of markers", "this cohort has no daily clinical record (daily.csv) and no "
                       "laboratory table (labs.csv).")
    if page.pt["crs_grade"].isna().all():
        return Skipped("the comparison of markers", "this cohort has no CRS grades.")
    frame = _severity(page)
    comp = cs.page_comparison(page, group)
    if comp.empty:
        return Skipped("the comparison of markers", "one of the two CRS groups has no patient, or no marker "
                       "has a value.")
    levels = sorted(frame[group].dropna().unique())  # compare_two_groups: group0 = first, group1 = second
    heads = {lv: f"{labels.crs_group(lv)}, N = {int((frame[group] == lv).sum())}" for lv in levels}
    parts = [comparison_sentence(comp)]
    defining = comp[comp["role"] == "defining"]
    if len(defining):
        parts.append(display.table(_marker_rows(defining, frame, group, heads, tested=False), f"{id}-defining",
                                   align_left=["Feature"], groups="Domain",
                                   title=f"Features that define the grade under {labels.scale(_primary(page))}",
                                   notes=["Described, not tested: severe and mild CRS differ in these by "
                                          "definition. Median (Q1, Q3) or n (%)."]))
    shown = comp[comp["role"].isin(["tested", "constant"])]
    if len(shown):
        parts.append(display.table(_marker_rows(shown, frame, group, heads, tested=True), id, align_left=["Marker"],
                                   groups="Domain", title="Markers compared", notes=_marker_notes(comp, frame, group)))
    parts.append(page.download(comp, csv))
    return Shown(*parts, data=comp)


def _marker_notes(comp: pd.DataFrame, frame: pd.DataFrame, group: str) -> list[str]:
    """The method once, the BH family's size, untested markers and deaths inside the window."""
    notes = ["Median (Q1, Q3) or n (%). Effect: Hodges-Lehmann shift (severe minus the other group, in the marker's "
             "unit) with its 95% CI and the Wilcoxon rank-sum test for continuous markers; odds ratio (conditional "
             "maximum likelihood, exact 95% CI) and Fisher's exact test for binary ones. q-value: Benjamini-Hochberg "
             f"over the {int((comp['role'] == 'tested').sum())} tested markers."]
    if (comp["role"] == "constant").any():
        notes.append("Not tested: no variation among the compared patients.")
    return notes + [n for n in [window_note(frame, group)] if n]


def _marker_rows(comp: pd.DataFrame, frame: pd.DataFrame, group: str, heads: dict, tested: bool) -> pd.DataFrame:
    """Display rows of compare_severity: summaries per group (n shown when values are missing), effect, p, q."""
    rows = []
    for _, r in comp.iterrows():
        v = r["variable"]
        row = {"Domain": r["domain"][:1].upper() + r["domain"][1:], ("Marker" if tested else "Feature"): r["label"]}
        digits = fmt.guess_digits(frame[v].dropna()) if r["kind"] == cs.C else 0
        for lv, head in heads.items():
            row[head] = _summary(frame.loc[frame[group] == lv, v], r["kind"], digits)
        if tested and r["role"] == "constant":
            row.update({"Effect (95% CI)": "not tested", "p-value": fmt.MISSING, "q-value": fmt.MISSING})
        elif tested and r["kind"] == cs.B and not (fmt.is_finite(r["effect"]) and r["effect"] > 0):
            row["Effect (95% CI)"] = "OR not estimable (a zero cell)"
            row["p-value"], row["q-value"] = fmt.p_value(r["p_value"]), fmt.p_value(r["p_adj_bh"])
        elif tested:
            binary = r["kind"] == cs.B
            row["Effect (95% CI)"] = fmt.est_ci(r["effect"], r["effect_ci_low"], r["effect_ci_high"],
                                                2 if binary else digits, prefix="OR " if binary else "")
            row["p-value"] = fmt.p_value(r["p_value"])
            row["q-value"] = fmt.p_value(r["p_adj_bh"])
        rows.append(row)
    return pd.DataFrame(rows)


def _summary(x: pd.Series, kind: str, digits: int) -> str:
    """'35 (20, 50)' or '4 (66.7%)'; ', n = k' appended when some patients of the group have no value."""
    ok = x.dropna()
    if ok.empty:
        return fmt.MISSING
    text = fmt.median_iqr(ok.astype(float), digits) if kind == cs.C else fmt.n_pct(int(ok.astype(bool).sum()), len(ok))
    return text if len(ok) == len(x) else f"{text}, n = {len(ok)}"


def window_note(frame: pd.DataFrame, group: str) -> str:
    """Which compared patients died inside the marker window (their nadirs cover fewer days), or ''."""
    sub = frame[frame[group].notna()]
    dead = sub[sub["died_in_window"]]
    if dead.empty:
        return ""
    by = fmt.join_words(f"{int((dead[group] == lv).sum())} with {_in_sentence(labels.crs_group(lv))}"
                        for lv in sorted(sub[group].dropna().unique()) if (dead[group] == lv).any())
    return (f"{fmt.plural(len(dead), 'patient')} ({by}) died by day {int(cs.WINDOW[1])}: their extremes, nadirs "
            "above all, cover only the days they lived (died_in_window in the CSV).")


def _in_sentence(label: str) -> str:
    """'Highest ALT, U/L' -> 'highest ALT' (the unit dropped, the first word in lower case)."""
    name = label.rsplit(", ", 1)[0] if ", " in label else label
    return name[:1].lower() + name[1:]


def comparison_sentence(comp: pd.DataFrame) -> str:
    """How many tested markers differ at q < 0.05 (named), and how many F9 markers moved the published way."""
    tested = comp[comp["role"] == "tested"]
    hits = tested[tested["p_adj_bh"] < 0.05]
    n_def = int((comp["role"] == "defining").sum())
    text = (f"{fmt.plural(n_def, 'feature')} that define{'s' if n_def == 1 else ''} the grade "
            f"{'is' if n_def == 1 else 'are'} described apart and not tested. " if n_def else "")
    if hits.empty:
        text += f"None of the {len(tested)} tested markers differs at a Benjamini-Hochberg q-value below 0.05."
    else:
        names = fmt.join_words(_in_sentence(labels.marker(v)) for v in hits["variable"])
        text += (f"{len(hits)} of the {len(tested)} tested markers differ at a Benjamini-Hochberg q-value below "
                 f"0.05: {names}.")
    worse, of = cs.worse_with_severe(comp)
    if of:
        text += (f" Of the {of} tested continuous markers the published comparison names, {worse} "
                 f"{'was' if worse == 1 else 'were'} worse with severe CRS (by the direction of the shift).")
    return text


# ------------------------------------------------------------------------------- time courses, peaks


COURSE_ANALYTES = ("il6", "ifng", "il10", "tnfa", "crp", "ferritin", "platelets", "fibrinogen")


@needs(tables=("labs",), what="time courses by CRS group")
def time_courses(page) -> Shown | Skipped:
    """Median (IQR) per sampling day by CRS group; groups of fewer than five patients as their own values."""
    frame = _severity(page)
    present = set(page.data.labs["analyte"].unique())
    have = [a for a in COURSE_ANALYTES if a in present]
    if frame["crs_group"].isna().all() or not have:
        return Skipped("time courses by CRS group", "no CRS grades, or none of the course analytes in labs.csv.")
    groups = frame[["patient_id", "crs_group"]]
    values = cs.course_values(page.data.labs, groups, tuple(have))
    tc = cs.time_course(page.data.labs, groups, tuple(have), values=values)
    ncol = min(4, len(have))
    nrow = -(-len(have) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.1 * ncol, 2.6 * nrow + 0.6), sharex=True, layout="constrained",
                             squeeze=False)
    cs.plot_time_courses(tc, tuple(have), axes, values=values)
    small = [labels.crs_group(g) for g in (cs.NONE, cs.MILD, cs.SEVERE)
             if (tc.loc[tc["crs_group"] == g, "group_n"] < cs.MIN_SUMMARISED).any()]
    text = (f"Groups of fewer than {cs.MIN_SUMMARISED} patients ({fmt.join_words(small)}) are drawn as each "
            "patient's values (dashed lines), not as a median and interquartile range." if small else None)
    return Shown(text, fig, page.download(tc, "crs_time_courses"), data=tc)


@needs(tables=("labs",), what="the peak heatmap")
def peak_heatmap(page) -> Shown | Skipped:
    """Each patient's peaks (days 0-28) standardised per analyte, patients in order of maximum grade."""
    m = cs.peak_matrix(_severity(page))
    if m.empty or m.shape[1] == 0:
        return Skipped("the peak heatmap", "no CRS grades or no peak values.")
    fig, ax = plt.subplots(figsize=(7.5, 0.24 * min(len(m), crs.MAX_LANES) + 2.2), layout="constrained")
    cs.plot_peak_heatmap(m, ax=ax)
    return Shown(fig, data=m)


# ------------------------------------------------------------------------------------------ predictors


def _model_ready(page) -> str | None:
    """Why the predictor models cannot be fitted on this cohort, or None."""
    pt = page.pt
    if pt["severe_crs"].isna().all():
        return "this cohort has no CRS grades"
    if pt["severe_crs"].dropna().nunique() < 2:
        return "the cohort does not have both patients with and without severe CRS"
    if not cs.available_predictors(pt):
        return "no baseline factor with at least two distinct values is recorded"
    return None


def _univariable(page) -> pd.DataFrame:
    return page.once("univariable", lambda: cs.univariable_models(page.pt, cs.available_predictors(page.pt)))


def predictors_univariable(page) -> Shown | Skipped:
    """One logistic model per baseline factor for severe CRS: Firth (primary) beside ordinary ML."""
    why = _model_ready(page)
    if why:
        return Skipped("predictor models", why + ".")
    u = _univariable(page)
    table = display.table(_model_rows(u, "Baseline factor"), "crs-univariable", align_left=["Baseline factor"],
                          notes=[model_note(u, "one factor per model")])
    return Shown(table, page.download(u, "crs_predictors_univariable"), data=u)


def predictors_multivariable(page) -> Shown | Skipped:
    """The book's reading of the published multivariable model (Firth), ordinary ML beside it."""
    from helpers import published

    why = _model_ready(page)
    missing = [c for c in published.LOGISTIC_COVARIATES if c not in cs.available_predictors(page.pt)]
    if why or missing:
        return Skipped("the multivariable model", why + "." if why else
                       f"it needs {fmt.join_words(labels.label(c).lower() for c in missing)}, absent or constant here.")
    m = cs.multivariable_models(page.pt)
    k = len(published.LOGISTIC_COVARIATES)
    table = display.table(_model_rows(m, "Factor"), "crs-multivariable", align_left=["Factor"],
                          notes=[model_note(m, f"{k} factors in one model")])
    return Shown(table, page.download(m, "crs_predictors_multivariable"), data=m)


def _model_rows(models: pd.DataFrame, stub: str) -> pd.DataFrame:
    """Firth OR (95% CI) and p per term, ordinary ML's 'OR (CI); p' or 'not estimable' beside it."""
    firth = models[models["method"] == "Firth"].set_index("term")
    ml = models[models["method"] == "ML"].set_index("term")
    rows = []
    for term, r in firth.iterrows():
        m = ml.loc[term] if term in ml.index else None
        ordinary = fmt.NOT_ESTIMABLE if m is None or not bool(m["converged"]) or not fmt.is_finite(m["or"]) else \
            f"{fmt.est_ci(m['or'], m['ci_low'], m['ci_high'], _digits(m))}; {_p_words(m['p_value'])}"
        primary = fmt.est_ci(r["or"], r["ci_low"], r["ci_high"], _digits(r))
        rows.append({stub: predictor_label(term), "OR (95% CI)": primary, "p-value": fmt.p_value(r["p_value"]),
                     "Ordinary ML: OR (95% CI); p-value": ordinary})
    return pd.DataFrame(rows)


def _digits(row: pd.Series) -> int:
    """Three decimals for ORs per small unit with a narrow interval (blasts per point, LDH per U/L), two otherwise."""
    narrow = fmt.is_finite(row["ci_high"]) and fmt.is_finite(row["ci_low"]) and row["ci_high"] - row["ci_low"] < 0.2
    return 3 if narrow else 2


def _p_words(p: object) -> str:
    """'p = 0.030', 'p < 0.001', 'p > 0.99'."""
    text = fmt.p_value(p)
    return f"p {text[0]} {text[1:]}" if text[:1] in "<>" else f"p = {text}"


def predictor_label(term: str) -> str:
    """'Bone-marrow blasts before lymphodepletion, % (per percentage point)' from the label registry."""
    base = term.split("[")[0]
    unit = labels.EFFECT_UNITS.get(base)
    return f"{labels.label(base)} ({unit})" if unit else labels.label(base)


def model_note(models: pd.DataFrame, what: str) -> str:
    """The per-model facts once: N, events, EPV against the rules, separation and convergence."""
    f = models[models["method"] == "Firth"]
    n, events, epv = int(f["n"].max()), int(f["events"].max()), float(f["epv"].min())
    rule = ("at least the 10 of Peduzzi et al. (1996)" if epv >= 10 else
            "below the 10 of Peduzzi et al. (1996) but within the 5 to 9 that Vittinghoff and McCulloch (2007) "
            "found often adequate" if epv >= 5 else
            "below both the 10 of Peduzzi et al. (1996) and the relaxed 5 of Vittinghoff and McCulloch (2007)")
    sep = models.loc[models["separation"].astype(bool), "term"].unique()
    ml_fail = models.loc[(models["method"] == "ML") & ~models["converged"].astype(bool), "term"].unique()
    firth_fail = f.loc[~f["converged"].astype(bool), "term"].unique()
    parts = ["Firth's penalised likelihood (profile-likelihood 95% CI, penalised likelihood-ratio p) is primary; "
             f"ordinary maximum likelihood (Wald CI and p) beside it. {n} patients, {events} with severe CRS, "
             f"{what}: {fmt.number(epv, 1)} events per estimated coefficient, {rule}."]
    parts.append("Separation (linear-programming check): " + fmt.join_words(predictor_label(t) for t in sep) + "."
                 if len(sep) else "No separation found.")
    if len(ml_fail):
        why = "separation" if set(ml_fail) <= set(sep) else "the fit did not converge"
        parts.append("Ordinary ML estimates do not exist for " + fmt.join_words(predictor_label(t) for t in ml_fail)
                     + f" ({why}): not estimable.")
    parts.append("Every Firth fit converged." if not len(firth_fail) else
                 "The Firth fit reported a numerical problem for "
                 + fmt.join_words(predictor_label(t) for t in firth_fail) + ".")
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------- ROC


def roc(page, score: str = "bm_blasts_pct") -> Shown | Skipped:
    """AUC of a pretreatment score for severe CRS with its bootstrap CI, the Youden cut-off and its optimism."""
    pt = page.pt
    if score not in pt.columns or pt.loc[pt[score].notna(), "severe_crs"].dropna().nunique() < 2:
        return Skipped("the ROC analysis", f"it needs {labels.label(score).split(',')[0].lower()} and patients with "
                       "and without severe CRS.")
    n_boot, seed = int(page.params.get("n_boot", 2000)), int(page.params.get("boot_seed", 20200101))
    r = page.once(f"roc-{score}", lambda: cs.roc_table(pt, score, n_boot, seed))
    rows = [{"Measure": labels.ROC_MEASURES.get(m, m), "Estimate (95% CI)": c} for m, c in _roc_cells(r, score)]
    n, events = int(r["n"].iat[0]), int(r["events"].iat[0])
    table = display.table(pd.DataFrame(rows), "crs-roc", align_left=["Measure"], notes=[
        f"{n} patients, {events} with severe CRS. AUC: Mann-Whitney estimate with a stratified percentile bootstrap "
        f"95% CI; {fmt.integer(n_boot)} resamples, seed {seed}; the optimism is Harrell's bootstrap estimate with the "
        "cut-off re-chosen in each resample."])
    fig, ax = plt.subplots(figsize=(4.6, 4.6), layout="constrained")
    cs.plot_roc(pt, r, score, ax=ax)
    auc = r.set_index("measure").loc["AUC"]
    return Shown(auc_sentence(auc, labels.label(score).split(",")[0]), table, fig, page.download(r, "crs_roc"), data=r)


def _roc_cells(r: pd.DataFrame, score: str) -> list[tuple[str, str]]:
    """(measure, formatted cell) per roc_table row."""
    out = []
    for measure, est, lo, hi in r[["measure", "estimate", "ci_low", "ci_high"]].to_numpy():
        if measure == "AUC":
            out.append((measure, fmt.est_ci(est, lo, hi)))
        elif measure.startswith("Youden"):
            out.append((f"Cut-off maximising Youden's J: {labels.label(score)}", f"above {fmt.number(est, 1)}"))
        elif measure.startswith("optimism"):
            out.append((measure, f"{fmt.number(100 * est, 1)} percentage points"))
        else:
            out.append((measure, fmt.pct(est)))
    return out


def auc_sentence(auc: pd.Series, name: str) -> str:
    """The AUC in words, its strength read from the estimate and whether its interval excludes chance."""
    a, lo, hi = float(auc["estimate"]), float(auc["ci_low"]), float(auc["ci_high"])
    strength = ("a near-perfect in-sample separation" if a >= 0.95 else "a strong in-sample separation" if a >= 0.8
                else "a moderate in-sample separation" if a >= 0.7 else "a weak in-sample separation" if a > 0.55
                else "no better than chance")
    chance = "the interval excludes chance (0.5)" if lo > 0.5 else "the interval includes chance (0.5)"
    return (f"{name} alone gives an AUC of {fmt.est_ci(a, lo, hi)} for severe CRS, {strength}; {chance}. "
            "A cut-off chosen on these patients is a hypothesis for another cohort, not a rule.")


# ------------------------------------------------------------------------------------------ conclusions


def conclusions(page) -> Shown:
    """What the results support, in sentences built from them (each part only when its result exists)."""
    pt = page.pt
    if pt["crs_grade"].isna().all():
        return Shown("This cohort has no CRS grades, so nothing can be said about CRS.")
    row = cs.incidence(pt, _severe(page)).iloc[1]
    parts = [f"Severe CRS is estimated at {fmt.pct(row['estimate'])}, with a 95% interval "
             f"{fmt.number(100 * (row['ci_high'] - row['ci_low']), 0)} percentage points wide "
             f"({fmt.ci(100 * row['ci_low'], 100 * row['ci_high'], 1)}%)."]
    if page.data.grades_crs:
        inc = crs.incidence_by_system(_agreement(page), _severe(page))
        k = inc[(inc["outcome"] != "any CRS") & inc["system"].isin(crs.SYSTEMS)]["k"]
        parts.append(f"Depending on the scale alone, between {int(k.min())} and {int(k.max())} of "
                     f"{int(inc['n'].max())} patients had severe CRS." if k.nunique() > 1 else
                     "The four scales agree on the severe count.")
    if not _model_ready(page):
        epv = float(_univariable(page).query("method == 'Firth'")["epv"].min())
        if epv < 10:
            parts.append(f"With {fmt.number(epv, 1)} events per coefficient even in one-factor models, the predictor "
                         "models show the direction of an association more reliably than its size.")
    parts.append("The marker comparisons describe what accompanied severe CRS; they cannot separate cause from "
                 "consequence (a high IL-6 is part of CRS, not a predictor of it).")
    return Shown(" ".join(parts))
