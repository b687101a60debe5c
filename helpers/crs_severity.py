"""Severe versus mild CRS: incidence, vital-sign and laboratory comparison, time courses, peak heatmap,
and predictors of severe CRS (univariable and multivariable logistic models, ROC of disease burden).

The published comparison (ASH 2020 abstract, Blood 136 Suppl 1: 9; fact F9) is severe versus mild
CRS among patients who had CRS; `severity_frame` also carries severe versus mild-or-none (all
patients), the grouping the predictor models use. Per-patient extremes are taken over days 0-28
(helpers.derive.vital_extremes / lab_extremes via helpers.published.severity_markers), so the
chapter and the "Does it reproduce?" page compare the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from helpers import crs, derive, labels, published, stats
from helpers.cohort import Cohort

NONE, MILD, SEVERE, MILD_OR_NONE = "none", "mild", "severe", "mild/none"
GROUP_COLOURS = {NONE: "#7f7f7f", MILD: "#e08214", SEVERE: "#a50026"}
WINDOW = (0.0, 28.0)
C, B = stats.CONTINUOUS, stats.BINARY
# column -> (kind, domain); labels come from helpers.labels.marker. CTCAE organ grades are ordinal, so
# they enter as "grade >= 3" (binary, Fisher) beside the continuous highest values.
MARKERS: dict[str, tuple[str, str]] = {
    "temp_max_c": (C, "vital signs"), "sbp_min_mmhg": (C, "vital signs"),
    "any_vasopressor": (B, "vital signs"), "any_oxygen": (B, "vital signs"),
    "anc_min": (C, "blood counts"), "hemoglobin_min": (C, "blood counts"),
    "platelets_min": (C, "blood counts"), "pancytopenia": (B, "blood counts"),
    "fibrinogen_min": (C, "coagulation"), "d_dimer_max": (C, "coagulation"),
    "pt_max": (C, "coagulation"), "aptt_max": (C, "coagulation"),
    "alt_max": (C, "organ function"), "ast_max": (C, "organ function"),
    "bilirubin_max": (C, "organ function"), "creatinine_max": (C, "organ function"),
    "alt_ctcae_ge3": (B, "organ function"), "ast_ctcae_ge3": (B, "organ function"),
    "bilirubin_ctcae_ge3": (B, "organ function"), "creatinine_ctcae_ge3": (B, "organ function"),
    "procalcitonin_max": (C, "inflammation"), "crp_max": (C, "inflammation"), "ferritin_max": (C, "inflammation"),
    "il6_max": (C, "cytokines"), "ifng_max": (C, "cytokines"), "il10_max": (C, "cytokines"),
    "tnfa_max": (C, "cytokines"),
}
# Markers that define the grade under each scale (helpers.crs): comparing them between severe and mild CRS
# would test the definition, so they are described, not tested, and stay out of the BH family.
# Hypotension (lowest SBP), vasopressors and oxygen set grades 2-4 on every scale; Lee 2014 and Penn also
# grade organ toxicity from creatinine, ALT, AST and bilirubin (CTCAE v5.0 grades).
_VITAL_DEFINING = ("sbp_min_mmhg", "any_vasopressor", "any_oxygen")
_ORGAN_DEFINING = tuple(f"{a}_{k}" for a in crs.ORGAN_ANALYTES for k in ("max", "ctcae_ge3"))
DEFINING: dict[str, tuple[str, ...]] = {
    "astct": _VITAL_DEFINING, "ctcae5": _VITAL_DEFINING,
    "lee2014": _VITAL_DEFINING + _ORGAN_DEFINING, "penn": _VITAL_DEFINING + _ORGAN_DEFINING,
}
# Nadirs and lowest values: cut short when a patient dies inside the window (flagged, not imputed).
NADIRS = tuple(c for c in MARKERS if c.endswith("_min"))
HEATMAP_ANALYTES = ("il6", "ifng", "il10", "tnfa", "crp", "ferritin", "procalcitonin", "d_dimer",
                    "alt", "ast", "bilirubin", "creatinine")
LOG_ANALYTES = frozenset({"il6", "ifng", "il10", "tnfa", "crp", "ferritin", "procalcitonin", "d_dimer"})
# baseline factor -> label; product phenotype = effector-memory share and CD4:CD8 ratio
PREDICTORS: dict[str, str] = {
    "bm_blasts_pct": "Marrow blasts (%, per point)", "age_years": "Age (years)",
    "log10_dose": "log10 CAR-T dose (cells/kg)", "product_em_pct": "Effector-memory share of product (%)",
    "cd4_cd8_ratio": "CD4:CD8 ratio of product", "ph_positive": "Ph-positive",
    "prior_allo_hsct": "Prior allogeneic HSCT", "ldh_u_per_l": "LDH (U/L)",
}


@dataclass(frozen=True)
class PancytopeniaRule:
    """Pancytopenia = all three lineages at CTCAE v5.0 grade >= 3 on the same day (the book's choice).

    CTCAE v5.0 grade 3: neutrophil count < 1.0 x 10^9/L, haemoglobin < 80 g/L (8.0 g/dL), platelets
    < 50 x 10^9/L. The abstract does not define pancytopenia; a same-day rule avoids calling three
    nadirs on different days pancytopenia. Change the thresholds for a milder definition.
    """

    anc_below: float = 1.0
    hemoglobin_below: float = 80.0
    platelets_below: float = 50.0


# ------------------------------------------------------------------------------- groups, incidence


def crs_group(grade: pd.Series, severe_grade: int = 3) -> pd.Series:
    """'none' (grade 0), 'mild' (1 to severe_grade - 1) or 'severe' (>= severe_grade); NA stays NA."""
    g = pd.to_numeric(grade, errors="coerce").astype("float64").to_numpy()
    out = np.select([g >= severe_grade, g >= 1, g == 0], [SEVERE, MILD, NONE], default="")
    return pd.Series(out, index=grade.index, dtype=object).replace("", pd.NA)


def incidence(pt: pd.DataFrame, severe_grade: int = 3) -> pd.DataFrame:
    """Any CRS and severe CRS among all graded patients, and severe among those with CRS (exact CIs)."""
    g = pd.to_numeric(pt["crs_grade"], errors="coerce").dropna()
    n_crs = int((g >= 1).sum())
    parts = [(int((g >= 1).sum()), len(g), "any CRS, of all patients"),
             (int((g >= severe_grade).sum()), len(g), f"severe CRS (grade >= {severe_grade}), of all patients")]
    if n_crs:
        parts.append((int((g >= severe_grade).sum()), n_crs, "severe CRS, of patients with CRS"))
    rows = [stats.proportion(k, n, label) for k, n, label in parts if n]
    return pd.DataFrame(rows)[["label", "k", "n", "estimate", "ci_low", "ci_high", "method", "formatted"]]


# ----------------------------------------------------------------------------- per-patient markers


def pancytopenia(labs: pd.DataFrame, rule: PancytopeniaRule = PancytopeniaRule(),
                 window: tuple[float, float] = WINDOW) -> pd.DataFrame:
    """Per patient: pancytopenia (bool) and its first day under `rule`, days in `window` (NaN day if never)."""
    d = labs[labs["analyte"].isin(["anc", "hemoglobin", "platelets"]) & labs["day"].between(*window)]
    wide = d.pivot_table(index=["patient_id", "day"], columns="analyte", values="value", aggfunc="min")
    wide = wide.reindex(columns=["anc", "hemoglobin", "platelets"])
    hit = ((wide["anc"] < rule.anc_below) & (wide["hemoglobin"] < rule.hemoglobin_below)
           & (wide["platelets"] < rule.platelets_below)).rename("hit").reset_index()
    first = hit[hit["hit"]].groupby("patient_id")["day"].min()
    ids = pd.Index(sorted(labs["patient_id"].unique()))
    return pd.DataFrame({"patient_id": list(ids), "pancytopenia": ids.isin(first.index),
                         "pancytopenia_day": first.reindex(ids).to_numpy(dtype=float)})


def organ_grade_max(labs: pd.DataFrame, window: tuple[float, float] = WINDOW,
                    options: crs.GradingOptions = crs.GradingOptions()) -> pd.DataFrame:
    """Worst CTCAE v5.0 grade of ALT, AST, bilirubin and creatinine per patient over `window`
    (ULNs and baseline rule from crs.GradingOptions; crs.organ_grades does the grading)."""
    g = crs.organ_grades(labs, options)
    g = g[g["day"].between(*window)]
    out = g.groupby("patient_id")[list(crs.ORGAN_ANALYTES)].max()
    return out.add_suffix("_ctcae").reset_index()


def severity_frame(pt: pd.DataFrame, cohort: Cohort, severe_grade: int = 3,
                   rule: PancytopeniaRule = PancytopeniaRule()) -> pd.DataFrame:
    """One row per patient: CRS group, the two comparison groupings, every available marker (CTCAE organ
    grades also as `{analyte}_ctcae_ge3`), and `died_in_window` (death by the end of the marker window,
    so the patient's extremes and nadirs cover fewer days)."""
    d = published.severity_markers(pt, cohort).copy()
    if cohort.has("labs"):
        d = d.merge(pancytopenia(cohort.labs, rule), on="patient_id", how="left")
        d = d.merge(organ_grade_max(cohort.labs), on="patient_id", how="left")
        for a in crs.ORGAN_ANALYTES:
            d[f"{a}_ctcae_ge3"] = (d[f"{a}_ctcae"] >= 3).astype("boolean").where(d[f"{a}_ctcae"].notna())
    d["crs_group"] = crs_group(d["crs_grade"], severe_grade)
    d["severe_vs_mild"] = d["crs_group"].where(d["crs_group"] != NONE)
    d["severe_vs_rest"] = d["crs_group"].replace({NONE: MILD_OR_NONE, MILD: MILD_OR_NONE})
    d["died_in_window"] = died_in_window(pt).reindex(d["patient_id"]).fillna(False).to_numpy(dtype=bool)
    return d


def died_in_window(pt: pd.DataFrame, window: tuple[float, float] = WINDOW) -> pd.Series:
    """Per patient_id: died on or before the last day of the marker window (os_event 1, os_days <= end)."""
    if not {"os_days", "os_event"} <= set(pt.columns):
        return pd.Series(False, index=pt["patient_id"])
    died = pt["os_event"].astype("Float64").eq(1) & pt["os_days"].le(window[1])
    return pd.Series(died.fillna(False).to_numpy(dtype=bool), index=pt["patient_id"])


def available_markers(frame: pd.DataFrame) -> dict[str, str]:
    """MARKERS present in `frame` with at least one value, as {column: kind} in MARKERS order."""
    return {c: k for c, (k, _) in MARKERS.items() if c in frame.columns and frame[c].notna().any()}


def compare_severity(frame: pd.DataFrame, group: str, system: str = "astct", described: bool = False) -> pd.DataFrame:
    """Every available marker between the two levels of `group` ('severe_vs_mild' or 'severe_vs_rest').

    Markers that define the grade under `system` (DEFINING) get their group summaries only (`role`
    'defining', no effect or p-value), as do markers without variation among the compared patients (`role`
    'constant', nothing to test); the others (`role` 'tested') get stats.compare_two_groups, with the
    Benjamini-Hochberg adjustment over the tested family alone. Only the tested rows unless `described`
    (the chapter shows all three). Empty when a group is empty or nothing is available (the chapter
    then says so).
    """
    variables = available_markers(frame)
    levels = frame[group].dropna().unique()
    if not variables or len(levels) < 2:
        return pd.DataFrame()
    sub = frame.assign(**{c: frame[c].astype("boolean") for c, k in variables.items() if k == B})
    defining = {c: k for c, k in variables.items() if c in DEFINING.get(system, ())}
    compared = sub[sub[group].notna()]
    constant = {c: k for c, k in variables.items() if c not in defining and compared[c].dropna().nunique() < 2}
    tested = {c: k for c, k in variables.items() if c not in defining and c not in constant}
    parts = []
    if tested:
        parts.append(stats.compare_two_groups(sub, tested, group).assign(role="tested"))
    for role, chosen in (("constant", constant), ("defining", defining)):
        if chosen and described:
            parts.append(stats.compare_two_groups(sub, chosen, group, test=False).assign(role=role))
    if not parts:
        return pd.DataFrame()
    order = {c: i for i, c in enumerate(MARKERS)}
    out = pd.concat(parts, ignore_index=True)
    out = out.iloc[np.argsort(out["variable"].map(order).to_numpy(), kind="stable")].reset_index(drop=True)
    out.insert(1, "label", out["variable"].map(labels.marker))
    out.insert(2, "domain", out["variable"].map(lambda v: MARKERS[v][1]))
    out["kind"] = out["variable"].map(lambda v: MARKERS[v][0])
    return out


def page_frame(page) -> pd.DataFrame:
    """severity_frame of a page's patients under the cohort's severe grade: a function of the cohort alone, so
    computed once per page and build (derive.shared)."""
    return page.once("severity", lambda: derive.shared(page.data, "severity-frame", lambda: severity_frame(
        page.pt, page.data, page.settings.severe_crs_grade)))


def page_comparison(page, group: str) -> pd.DataFrame:
    """compare_severity of a page's patients by `group`, every marker (described ones too), under the cohort's
    scale and severe grade: a function of the cohort alone, so computed once per build (derive.shared) for
    the CRS chapter and the findings page that both report it."""
    return derive.shared(page.data, f"severity-comparison-{group}", lambda: compare_severity(
        page_frame(page), group, page.settings.crs_system, described=True))


def worse_with_severe(comparison: pd.DataFrame) -> tuple[int, int]:
    """(how many, of how many) tested continuous F9 markers move in the published direction (severe worse)
    by the Hodges-Lehmann shift; markers that define the grade are not counted."""
    tested = comparison["role"].eq("tested") if "role" in comparison else pd.Series(True, index=comparison.index)
    c = comparison[comparison["variable"].isin(list(published.F9_MARKERS)) & tested & comparison["effect"].notna()]
    sign = c["variable"].map(lambda v: 1 if published.F9_MARKERS[v] == "higher" else -1)
    return int(((c["effect"] * sign) > 0).sum()), len(c)


# ----------------------------------------------------------------------------- time courses, heatmap


def time_course(labs: pd.DataFrame, groups: pd.DataFrame, analytes: tuple[str, ...],
                window: tuple[float, float] = (-3.0, 28.0), values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Median and IQR (R type 7 quantiles) per analyte, CRS group and sampling day: tidy, one row each,
    with `group_n`, the patients of the group (a group of fewer than MIN_SUMMARISED is drawn as points).

    `groups` has patient_id and crs_group; days with a single patient in a group keep n = 1. `values`:
    course_values of the same arguments when the caller already has them (not selected again).
    """
    d = course_values(labs, groups, analytes, window) if values is None else values
    g = d.groupby(["analyte", "crs_group", "day"])["value"]
    out = pd.DataFrame({"n": g.size(), "median": g.median(), "q1": g.quantile(0.25), "q3": g.quantile(0.75)})
    sizes = groups[["patient_id", "crs_group"]].dropna().groupby("crs_group")["patient_id"].nunique()
    out = out.reset_index()
    return out.assign(group_n=out["crs_group"].map(sizes).astype("int64"))


def course_values(labs: pd.DataFrame, groups: pd.DataFrame, analytes: tuple[str, ...],
                  window: tuple[float, float] = (-3.0, 28.0)) -> pd.DataFrame:
    """The lab values of `analytes` inside `window` with each patient's CRS group (long, one row per sample)."""
    d = labs[labs["analyte"].isin(analytes) & labs["day"].between(*window)]
    return d.merge(groups[["patient_id", "crs_group"]].dropna(), on="patient_id")


MIN_SUMMARISED = 5  # groups of fewer patients are drawn as their individual values, not as median and IQR


def plot_time_course(tc: pd.DataFrame, analyte: str, ax: Axes | None = None,
                     values: pd.DataFrame | None = None) -> Axes:
    """Median line and IQR band per CRS group over days for one analyte (log axis for cytokines); a group
    of fewer than MIN_SUMMARISED patients is drawn as each patient's values (points joined per patient)
    when `values` (course_values) is given. One colour per CRS group; the panel is titled with name and unit."""
    ax = ax if ax is not None else plt.subplots(figsize=(5, 3))[1]
    for grp in (NONE, MILD, SEVERE):
        t = tc[(tc["analyte"] == analyte) & (tc["crs_group"] == grp)].sort_values("day")
        if t.empty:
            continue
        colour, name = GROUP_COLOURS[grp], labels.crs_group(grp)
        if values is not None and int(t["group_n"].iat[0]) < MIN_SUMMARISED:
            v = values[(values["analyte"] == analyte) & (values["crs_group"] == grp)].sort_values("day")
            for i, (_, one) in enumerate(v.groupby("patient_id")):
                ax.plot(one["day"], one["value"], color=colour, lw=0.8, ls="--", marker="o", ms=3,
                        label=f"{name} (each patient)" if i == 0 else None)
            continue
        ax.plot(t["day"], t["median"], color=colour, marker="o", ms=3, label=f"{name} (median, IQR)")
        ax.fill_between(t["day"], t["q1"], t["q3"], color=colour, alpha=0.2, linewidth=0)
    if analyte in LOG_ANALYTES:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        if hi / lo < 100:  # under two decades: label 1-2-5 steps, not a single power of ten
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.2g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(labels.analyte(analyte), fontsize="medium")
    ax.set_xlabel("Day after infusion")
    return ax


def plot_time_courses(tc: pd.DataFrame, analytes: tuple[str, ...], axes: np.ndarray,
                      values: pd.DataFrame | None = None) -> np.ndarray:
    """plot_time_course on each of `axes` (flattened, one analyte each); one legend for the figure."""
    flat = np.asarray(axes).ravel()
    for ax, analyte in zip(flat, analytes):
        plot_time_course(tc, analyte, ax=ax, values=values)
    for ax in flat[len(analytes):]:
        ax.set_visible(False)
    handles, names = {}, []
    for ax in flat[:len(analytes)]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in handles:
                handles[n] = h
                names.append(n)
    flat[0].figure.legend([handles[n] for n in names], names, loc="outside lower center",
                          ncol=len(names), frameon=False)
    return axes


def peak_matrix(frame: pd.DataFrame, analytes: tuple[str, ...] = HEATMAP_ANALYTES) -> pd.DataFrame:
    """log10 of each patient's peak (days 0-28) per analyte; rows 'P03 (grade 2)' ordered by grade, highest first."""
    cols = [f"{a}_max" for a in analytes if f"{a}_max" in frame.columns]
    d = frame.dropna(subset=["crs_grade"]).sort_values(["crs_grade", "patient_id"], ascending=[False, True])
    m = np.log10(d[cols].astype(float).where(d[cols] > 0))
    m.index = [f"{p} (grade {int(g)})" for p, g in zip(d["patient_id"], d["crs_grade"])]
    m.columns = [c[:-4] for c in cols]
    return m


def plot_peak_heatmap(matrix: pd.DataFrame, ax: Axes | None = None, max_patients: int = crs.MAX_LANES) -> Axes:
    """Heatmap of log10 peaks standardised per analyte (z-score across all patients) so colours compare.

    Rows are peak_matrix's ('P03 (grade 2)', grade order); at most `max_patients` are drawn, the first
    pseudonyms (crs.shown_patients; the title says so), still in grade order. z-scores use every row.
    """
    z = (matrix - matrix.mean()) / matrix.std(ddof=1).replace(0, np.nan)
    ids = pd.Series(matrix.index, index=matrix.index).str.split(" ").str[0]
    keep, note = crs.shown_patients(ids, max_patients)
    z = z[ids.isin(keep).to_numpy()]
    ax = ax if ax is not None else plt.subplots(figsize=(7, 0.25 * len(z) + 1.5))[1]
    im = ax.imshow(z.to_numpy(dtype=float), aspect="auto", cmap="RdBu_r", vmin=-2.5, vmax=2.5)
    ax.set_xticks(range(z.shape[1]), [labels.analyte(a, unit=False) for a in z.columns], rotation=45, ha="right")
    ax.set_yticks(range(z.shape[0]), z.index, fontsize="small")
    ax.figure.colorbar(im, ax=ax, label="Peak, standard deviations from the cohort mean (log\u2081\u2080 scale)")
    ax.set_xlabel("Highest value over days 0\u201328")
    ax.set_ylabel("Patient (maximum CRS grade)")
    if note:
        ax.set_title(f"Showing the {note}", fontsize="small")
    return ax


def plot_timeline(graded: pd.DataFrame, daily: pd.DataFrame, patients: pd.DataFrame | None = None,
                  ax: Axes | None = None, max_patients: int = crs.MAX_LANES) -> Axes:
    """One lane per patient: the daily CRS grade as coloured cells, grade 5 (black) on the day of death for a
    death from CRS (`death_cause` 'crs', day `os_days`), tocilizumab and corticosteroid days marked.

    At most `max_patients` lanes (crs.shown_patients: the first pseudonyms; the title says so)."""
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ids, note = crs.shown_patients(graded["patient_id"], max_patients)
    ax = ax if ax is not None else plt.subplots(figsize=(8, 0.3 * len(ids) + 1.2))[1]
    lane = {p: i for i, p in enumerate(ids)}
    cells = fatal_cells(graded[graded["patient_id"].isin(lane)], patients)
    x, y = cells["day"].to_numpy(dtype=float) - 0.5, cells["patient_id"].map(lane).to_numpy(dtype=float) - 0.4
    verts = np.stack([np.column_stack([x, y]), np.column_stack([x, y + 0.8]),
                      np.column_stack([x + 1, y + 0.8]), np.column_stack([x + 1, y])], axis=1)
    ax.add_collection(PolyCollection(verts, facecolors=[crs.GRADE_COLOURS[int(k)] for k in cells["grade"]],
                                     edgecolors="white", linewidths=0.3))
    ax.autoscale_view()
    d = daily[daily["patient_id"].isin(lane) & (daily["day"] >= 0)]
    marks = (("tocilizumab", "v", "Tocilizumab"), ("steroids", "x", "Corticosteroid"))
    for col, marker, _ in marks:
        if col in d.columns:
            given = d[pd.to_numeric(d[col], errors="coerce").fillna(0) == 1]
            offset = 0.2 if col == "tocilizumab" else -0.2
            ax.scatter(given["day"].astype(float), given["patient_id"].map(lane) + offset, marker=marker,
                       color="black", s=16, zorder=3)
    shown = sorted(set(cells["grade"].astype(int)) | {0, 1, 2, 3, 4})
    handles = [Patch(color=crs.GRADE_COLOURS[k], label=labels.CRS_GRADES[k]) for k in shown]
    handles += [Line2D([], [], ls="", marker=m, color="black", label=name) for c, m, name in marks if c in d.columns]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    ax.set_yticks(range(len(ids)), ids, fontsize="small")
    ax.set_ylim(len(ids) - 0.5, -0.5)
    ax.set_title(f"Showing the {note}" if note else "", fontsize="small")
    ax.set_xlabel("Day after infusion")
    ax.set_ylabel("Patient")
    return ax


def fatal_cells(graded: pd.DataFrame, patients: pd.DataFrame | None) -> pd.DataFrame:
    """The graded days (grades 0-4) plus a grade-5 cell on the day of death of each death from CRS
    (patients' death_cause 'crs' at os_days), replacing a graded row of that day: what the timeline draws."""
    cells = graded.loc[graded["grade"].between(0, 4), ["patient_id", "day", "grade"]]
    if patients is None or not {"death_cause", "os_days"} <= set(patients.columns):
        return cells.reset_index(drop=True)
    dead = patients.loc[patients["death_cause"].eq("crs").fillna(False)
                        & patients["patient_id"].isin(graded["patient_id"]), ["patient_id", "os_days"]]
    five = pd.DataFrame({"patient_id": dead["patient_id"], "day": dead["os_days"].astype(float), "grade": 5})
    keep = ~cells.set_index(["patient_id", "day"]).index.isin(five.set_index(["patient_id", "day"]).index)
    return pd.concat([cells[keep], five], ignore_index=True)


# ------------------------------------------------------------------------------------- predictors


def available_predictors(pt: pd.DataFrame) -> list[str]:
    """PREDICTORS present in `pt` with at least two distinct values (a constant cannot be modelled)."""
    return [c for c in PREDICTORS if c in pt.columns and pt[c].dropna().nunique() > 1]


def _model_data(pt: pd.DataFrame) -> pd.DataFrame:
    """Patients with a known severe-CRS flag, outcome coded 0/1."""
    d = pt[pt["severe_crs"].notna()].copy()
    d["severe_crs"] = d["severe_crs"].astype(int)
    return d


def univariable_models(pt: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """One logistic model per baseline factor for severe CRS: Firth (primary) and ordinary ML, stacked."""
    d = _model_data(pt)
    both = [stats.univariable_logistic(d, "severe_crs", covariates, m) for m in ("firth", "ml")]
    out = pd.concat(both, ignore_index=True)
    out.insert(1, "label", out["term"].map(lambda t: PREDICTORS.get(t.split("[")[0], t)))
    return out


def multivariable_models(pt: pd.DataFrame) -> pd.DataFrame:
    """The published multivariable model (published.multivariable_logistic, Firth) with ordinary ML beside it."""
    d = _model_data(pt).dropna(subset=published.LOGISTIC_COVARIATES)
    firth = published.multivariable_logistic(pt)
    ml = stats.ml_logistic_table(d, "severe_crs", published.LOGISTIC_COVARIATES)
    out = pd.concat([firth, ml], ignore_index=True)
    out.insert(1, "label", out["term"].map(lambda t: PREDICTORS.get(t, t)))
    return out


def roc_table(pt: pd.DataFrame, score: str = "bm_blasts_pct", n_boot: int = 2000,
              seed: int = 20200101) -> pd.DataFrame:
    """stats.roc_auc of `score` for severe CRS as a tidy table (measure, estimate, ci_low, ci_high)."""
    d = _model_data(pt).dropna(subset=[score])
    r = stats.roc_auc(d["severe_crs"], d[score], n_boot=n_boot, seed=seed)
    rows = [("AUC", r["auc"], r["ci_low"], r["ci_high"]),
            (f"Youden cut-off ({score} > cut-off)", r["cutoff"], np.nan, np.nan),
            ("sensitivity at cut-off", r["sensitivity"], np.nan, np.nan),
            ("specificity at cut-off", r["specificity"], np.nan, np.nan),
            ("balanced accuracy of cut-off rule, apparent", r["cutoff_auc_apparent"], np.nan, np.nan),
            ("optimism (bootstrap, cut-off re-chosen)", r["optimism"], np.nan, np.nan),
            ("balanced accuracy of cut-off rule, optimism-corrected", r["cutoff_auc_corrected"], np.nan, np.nan)]
    out = pd.DataFrame(rows, columns=["measure", "estimate", "ci_low", "ci_high"])
    return out.assign(n=r["n"], events=r["events"], n_boot=n_boot, seed=seed, method=r["method"])


def plot_roc(pt: pd.DataFrame, roc: pd.DataFrame, score: str = "bm_blasts_pct", ax: Axes | None = None) -> Axes:
    """Empirical ROC curve of `score` for severe CRS with the Youden point from `roc` (roc_table output)."""
    from sklearn.metrics import roc_curve

    ax = ax if ax is not None else plt.subplots(figsize=(4.5, 4.5))[1]
    d = _model_data(pt).dropna(subset=[score])
    fpr, tpr, _ = roc_curve(d["severe_crs"], d[score])
    r = roc.set_index("measure")["estimate"]
    name = labels.label(score).split(",")[0]
    ax.plot(fpr, tpr, drawstyle="steps-post", color="#a50026", label=f"AUC {r['AUC']:.2f}")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="Chance")
    sens, spec = r["sensitivity at cut-off"], r["specificity at cut-off"]
    ax.scatter([1 - spec], [sens], color="black", zorder=3, label="Youden cut-off (chosen in-sample)")
    ax.set_xlabel("1 \u2212 specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_title(f"{name}, for severe CRS", fontsize="small")
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    return ax
