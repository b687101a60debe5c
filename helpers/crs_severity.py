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

from helpers import crs, published, stats
from helpers.cohort import Cohort

NONE, MILD, SEVERE, MILD_OR_NONE = "none", "mild", "severe", "mild/none"
GROUP_COLOURS = {NONE: "#7f7f7f", MILD: "#fdae61", SEVERE: "#a50026"}
WINDOW = (0.0, 28.0)
C, B = stats.CONTINUOUS, stats.BINARY
# column -> (kind, label, domain); the family over which BH adjustment is done is every row present
MARKERS: dict[str, tuple[str, str, str]] = {
    "temp_max_c": (C, "Peak temperature (C)", "vital signs"),
    "sbp_min_mmhg": (C, "Lowest systolic BP (mmHg)", "vital signs"),
    "any_vasopressor": (B, "Any vasopressor", "vital signs"),
    "any_oxygen": (B, "Any supplemental oxygen", "vital signs"),
    "anc_min": (C, "Nadir ANC (10^9/L)", "blood counts"),
    "hemoglobin_min": (C, "Nadir haemoglobin (g/L)", "blood counts"),
    "platelets_min": (C, "Nadir platelets (10^9/L)", "blood counts"),
    "pancytopenia": (B, "Pancytopenia (CTCAE grade >= 3 in all three lineages, same day)", "blood counts"),
    "fibrinogen_min": (C, "Lowest fibrinogen (g/L)", "coagulation"),
    "d_dimer_max": (C, "Highest D-dimer (mg/L FEU)", "coagulation"),
    "pt_max": (C, "Longest PT (s)", "coagulation"),
    "aptt_max": (C, "Longest APTT (s)", "coagulation"),
    "alt_max": (C, "Highest ALT (U/L)", "organ function"),
    "ast_max": (C, "Highest AST (U/L)", "organ function"),
    "bilirubin_max": (C, "Highest bilirubin (umol/L)", "organ function"),
    "creatinine_max": (C, "Highest creatinine (umol/L)", "organ function"),
    "alt_ctcae": (C, "Worst ALT CTCAE v5.0 grade", "organ function"),
    "ast_ctcae": (C, "Worst AST CTCAE v5.0 grade", "organ function"),
    "bilirubin_ctcae": (C, "Worst bilirubin CTCAE v5.0 grade", "organ function"),
    "creatinine_ctcae": (C, "Worst creatinine CTCAE v5.0 grade", "organ function"),
    "procalcitonin_max": (C, "Peak procalcitonin (ng/mL)", "inflammation"),
    "crp_max": (C, "Peak CRP (mg/L)", "inflammation"),
    "ferritin_max": (C, "Peak ferritin (ng/mL)", "inflammation"),
    "il6_max": (C, "Peak IL-6 (pg/mL)", "cytokines"),
    "ifng_max": (C, "Peak IFN-gamma (pg/mL)", "cytokines"),
    "il10_max": (C, "Peak IL-10 (pg/mL)", "cytokines"),
    "tnfa_max": (C, "Peak TNF-alpha (pg/mL)", "cytokines"),
}
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
    ids = sorted(labs["patient_id"].unique())
    return pd.DataFrame({"patient_id": ids, "pancytopenia": [p in first.index for p in ids],
                         "pancytopenia_day": [float(first.get(p, np.nan)) for p in ids]})


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
    """One row per patient: CRS group, the two comparison groupings and every available marker."""
    d = published.severity_markers(pt, cohort).copy()
    if cohort.has("labs"):
        d = d.merge(pancytopenia(cohort.labs, rule), on="patient_id", how="left")
        d = d.merge(organ_grade_max(cohort.labs), on="patient_id", how="left")
    d["crs_group"] = crs_group(d["crs_grade"], severe_grade)
    d["severe_vs_mild"] = d["crs_group"].where(d["crs_group"] != NONE)
    d["severe_vs_rest"] = d["crs_group"].replace({NONE: MILD_OR_NONE, MILD: MILD_OR_NONE})
    return d


def available_markers(frame: pd.DataFrame) -> dict[str, str]:
    """MARKERS present in `frame` with at least one value, as {column: kind} in MARKERS order."""
    return {c: k for c, (k, _, _) in MARKERS.items() if c in frame.columns and frame[c].notna().any()}


def compare_severity(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """stats.compare_two_groups of every available marker between the two levels of `group`
    ('severe_vs_mild' or 'severe_vs_rest'), BH-adjusted across the family, with label and domain.

    Empty frame when a group is empty or no marker is available (the chapter then says so).
    """
    variables = available_markers(frame)
    levels = frame[group].dropna().unique()
    if not variables or len(levels) < 2:
        return pd.DataFrame()
    sub = frame.assign(**{c: frame[c].astype("boolean") for c, k in variables.items() if k == B})
    out = stats.compare_two_groups(sub, variables, group)
    out.insert(1, "label", out["variable"].map(lambda v: MARKERS[v][1]))
    out.insert(2, "domain", out["variable"].map(lambda v: MARKERS[v][2]))
    return out


def worse_with_severe(comparison: pd.DataFrame) -> int:
    """How many continuous F9 markers move in the published direction (severe worse) by the HL shift."""
    c = comparison[comparison["variable"].isin(list(published.F9_MARKERS))]
    sign = c["variable"].map(lambda v: 1 if published.F9_MARKERS[v] == "higher" else -1)
    return int(((c["effect"] * sign) > 0).sum())


# ----------------------------------------------------------------------------- time courses, heatmap


def time_course(labs: pd.DataFrame, groups: pd.DataFrame, analytes: tuple[str, ...],
                window: tuple[float, float] = (-3.0, 28.0)) -> pd.DataFrame:
    """Median and IQR (R type 7 quantiles) per analyte, CRS group and sampling day: tidy, one row each.

    `groups` has patient_id and crs_group; days with a single patient in a group keep n = 1.
    """
    d = labs[labs["analyte"].isin(analytes) & labs["day"].between(*window)]
    d = d.merge(groups[["patient_id", "crs_group"]].dropna(), on="patient_id")
    g = d.groupby(["analyte", "crs_group", "day"])["value"]
    out = pd.DataFrame({"n": g.size(), "median": g.median(), "q1": g.quantile(0.25), "q3": g.quantile(0.75)})
    return out.reset_index()


def plot_time_course(tc: pd.DataFrame, analyte: str, ax: Axes | None = None) -> Axes:
    """Median line and IQR band per CRS group over days for one analyte (log axis for cytokines)."""
    ax = ax if ax is not None else plt.subplots(figsize=(5, 3))[1]
    for grp in (NONE, MILD, SEVERE):
        t = tc[(tc["analyte"] == analyte) & (tc["crs_group"] == grp)].sort_values("day")
        if t.empty:
            continue
        ax.plot(t["day"], t["median"], color=GROUP_COLOURS[grp], marker="o", ms=3, label=f"{grp} CRS")
        ax.fill_between(t["day"], t["q1"], t["q3"], color=GROUP_COLOURS[grp], alpha=0.2, linewidth=0)
    if analyte in LOG_ANALYTES:
        ax.set_yscale("log")
    ax.set_title(analyte)
    ax.set_xlabel("day after infusion")
    return ax


def plot_time_courses(tc: pd.DataFrame, analytes: tuple[str, ...], axes: np.ndarray) -> np.ndarray:
    """plot_time_course on each of `axes` (flattened, one analyte each); legend on the first panel."""
    flat = np.asarray(axes).ravel()
    for ax, analyte in zip(flat, analytes):
        plot_time_course(tc, analyte, ax=ax)
    flat[0].legend(fontsize="small")
    return axes


def peak_matrix(frame: pd.DataFrame, analytes: tuple[str, ...] = HEATMAP_ANALYTES) -> pd.DataFrame:
    """log10 of each patient's peak (days 0-28) per analyte; rows 'P03 (g2)' ordered by grade, highest first."""
    cols = [f"{a}_max" for a in analytes if f"{a}_max" in frame.columns]
    d = frame.dropna(subset=["crs_grade"]).sort_values(["crs_grade", "patient_id"], ascending=[False, True])
    m = np.log10(d[cols].astype(float).where(d[cols] > 0))
    m.index = [f"{p} (g{int(g)})" for p, g in zip(d["patient_id"], d["crs_grade"])]
    m.columns = [c[:-4] for c in cols]
    return m


def plot_peak_heatmap(matrix: pd.DataFrame, ax: Axes | None = None, max_patients: int = crs.MAX_LANES) -> Axes:
    """Heatmap of log10 peaks standardised per analyte (z-score across all patients) so colours compare.

    Rows are peak_matrix's ('P03 (g2)', grade order); at most `max_patients` are drawn, the first
    pseudonyms (crs.shown_patients; the title says so), still in grade order. z-scores use every row.
    """
    z = (matrix - matrix.mean()) / matrix.std(ddof=1).replace(0, np.nan)
    ids = pd.Series(matrix.index, index=matrix.index).str.split(" ").str[0]
    keep, note = crs.shown_patients(ids, max_patients)
    z = z[ids.isin(keep).to_numpy()]
    ax = ax if ax is not None else plt.subplots(figsize=(7, 0.25 * len(z) + 1.5))[1]
    im = ax.imshow(z.to_numpy(dtype=float), aspect="auto", cmap="RdBu_r", vmin=-2.5, vmax=2.5)
    ax.set_xticks(range(z.shape[1]), z.columns, rotation=45, ha="right")
    ax.set_yticks(range(z.shape[0]), z.index, fontsize="small")
    ax.figure.colorbar(im, ax=ax, label="z-score of log10 peak")
    ax.set_xlabel("analyte (peak over days 0-28)")
    if note:
        ax.set_title(f"Showing the {note}", fontsize="small")
    return ax


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
    ax.plot(fpr, tpr, drawstyle="steps-post", color="#a50026", label=f"AUC {r['AUC']:.2f}")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    sens, spec = r["sensitivity at cut-off"], r["specificity at cut-off"]
    ax.scatter([1 - spec], [sens], color="black", zorder=3, label="Youden cut-off (in-sample)")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.legend(loc="lower right", fontsize="small")
    return ax
