"""Chapter 5 (cellular kinetics), section by section: per-patient NCA parameters with their estimability,
the literature-style summary, the comparison with tisagenlecleucel, profiles, Cmax by group, associations,
the peak-expansion check, judgement calls and conclusions. Each section takes the chapter's `Page` (its
parameters: auc_method, auc_end_day, blq_first, blq_middle, blq_last) and returns `Shown` or `Skipped`.

The analysis itself (NCA, summaries, Spearman intervals) is in `helpers.kinetics`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import display, fmt, kinetics, labels
from helpers.group_plot import points_by_group
from helpers.sections import Shown, Skipped, needs

PARAM_LABELS = {"cmax": "Cmax, copies/\u00b5g DNA", "tmax": "Tmax, day", "tlast": "Tlast, day",
                "clast": "Clast, copies/\u00b5g DNA", "doubling_time": "Expansion doubling time, days",
                "half_life": "Terminal half-life, days"}
REMISSION, NO_REMISSION = "Remission (CR/CRi)", "No remission"
RESPONSE_ORDER = ["CR", "CRi", "PR", "NR", "NE"]
SUBSCRIPT = str.maketrans("0123456789-", "\u2080\u2081\u2082\u2083\u2084\u2085\u2086\u2087\u2088\u2089\u208b")
# Covariates of the association table (derive.patient_table columns) and how the chapter names them.
ASSOCIATION_TERMS = {"bm_blasts_pct": "Bone-marrow blasts, %", "car_dose_per_kg": "CAR-T dose per kg",
                     "product_em_pct": "Product effector-memory T cells, %",
                     "cd4_cd8_ratio": "Product CD4:CD8 ratio", "crs_grade": "Maximum CRS grade"}
# Literature values, typed with their source (not computed): tisagenlecleucel in paediatric and young-adult
# B-ALL, Kymriah US prescribing information, Table 7 (geometric means for Cmax and AUC0-28d, median Tmax);
# responders = CR/CRi, non-responders otherwise. See /shared/reference/definitions.md, Cellular kinetics.
KYMRIAH_SOURCE = "Kymriah (tisagenlecleucel) US prescribing information, Table 7 (paediatric/young-adult B-ALL)"
KYMRIAH_REFERENCE = pd.DataFrame({
    "group": [REMISSION] * 3 + [NO_REMISSION] * 3,
    "parameter": ["cmax", "tmax", "auc_0_28"] * 2,
    "reference": [32700.0, 9.8, 300000.0, 19500.0, 20.0, 210000.0],
})


def param_label(param: str) -> str:
    """Readable name of an NCA column, e.g. 'auc_0_28' -> 'AUC0-28d, copies/ug DNA x day'."""
    if param.startswith("auc_0_"):
        return f"AUC{('0-' + param[len('auc_0_'):]).translate(SUBSCRIPT)}, copies/\u00b5g DNA \u00d7 day"
    return PARAM_LABELS.get(param, param)


def _categorical(values: pd.Series, index: pd.Series, order: list[str]) -> pd.Series:
    """Categorical Series indexed by patient_id with only the levels that occur, in `order`."""
    s = pd.Series(values.to_numpy(dtype=object), index=pd.Index(index, name="patient_id"))
    s = s.where(s.notna(), None)
    present = [lvl for lvl in order if (s == lvl).any()]
    return s.astype(pd.CategoricalDtype(present, ordered=True))


def remission_groups(pt: pd.DataFrame) -> pd.Series:
    """'Remission (CR/CRi)' / 'No remission' per patient_id (derive.patient_table's remission flag)."""
    labels = pt["remission"].map({True: REMISSION, False: NO_REMISSION})
    return _categorical(labels, pt["patient_id"], [REMISSION, NO_REMISSION])


def severe_crs_groups(pt: pd.DataFrame, severe_grade: int) -> pd.Series:
    """'Severe CRS (grade >= g)' / 'No severe CRS' per patient_id; missing when the CRS grade is unknown."""
    yes, no = f"Severe CRS (grade \u2265{severe_grade})", "No severe CRS"
    flag = pt["severe_crs"].astype("boolean")
    labels = pd.Series(np.where(flag.fillna(False), yes, no), index=pt.index).where(flag.notna())
    return _categorical(labels, pt["patient_id"], [yes, no])


def response_groups(pt: pd.DataFrame) -> pd.Series:
    """Best response per patient_id, ordered CR, CRi, PR, NR."""
    return _categorical(pt["best_response"], pt["patient_id"], RESPONSE_ORDER)


def crs_grade_groups(pt: pd.DataFrame) -> pd.Series:
    """'Grade k' per patient_id, ordered 0..5; missing when the grade is unknown."""
    grade = pt["crs_grade"].astype("Int64")
    labels = "Grade " + grade.astype("string")  # not .map: with a missing grade pandas maps Int64 as floats ('3.0')
    return _categorical(labels, pt["patient_id"], [f"Grade {g}" for g in range(6)])


def summary_long(params: pd.DataFrame, groupings: dict[str, pd.Series]) -> pd.DataFrame:
    """kinetics.nca_summary overall and by each grouping, stacked (tidy; 'split' names the grouping)."""
    parts = [kinetics.nca_summary(params).assign(split="Overall")]
    for name, grp in groupings.items():
        tab = kinetics.nca_summary(params, grp)
        parts.append(tab[tab["group"] != "Overall"].assign(split=name))
    out = pd.concat(parts, ignore_index=True)
    return out[["split", "group", "parameter", "statistic", "n", "value", "formatted"]]


def reference_comparison(summary: pd.DataFrame, end: float) -> pd.DataFrame:
    """The cohort's geometric mean Cmax/AUC and median Tmax by remission beside the Kymriah label values.

    Only when the AUC window is 28 days is the AUC row comparable; otherwise it is left out. `ratio` is
    cohort / reference.
    """
    ref = KYMRIAH_REFERENCE if end == 28 else KYMRIAH_REFERENCE[KYMRIAH_REFERENCE["parameter"] != "auc_0_28"]
    main = summary[summary["statistic"].isin(["geometric_mean", "median"])
                   & summary["group"].isin([REMISSION, NO_REMISSION])]
    out = ref.merge(main[["group", "parameter", "n", "value"]], on=["group", "parameter"], how="left")
    out = out.rename(columns={"value": "cohort"})
    out["ratio"] = out["cohort"] / out["reference"]
    out.insert(2, "label", out["parameter"].map(param_label))
    out["statistic"] = np.where(out["parameter"] == "tmax", "median", "geometric mean")
    return out[["group", "parameter", "label", "statistic", "n", "cohort", "reference", "ratio"]]


def fit_quality(params: pd.DataFrame) -> pd.DataFrame:
    """How many patients have a qualifying log-linear fit, its value median (range) and adjusted R^2 range."""
    rows = []
    for name, value, r2 in (("Expansion doubling time (day)", "doubling_time", "doubling_adj_r2"),
                            ("Terminal half-life (day)", "half_life", "half_life_adj_r2")):
        ok = params[value].notna()
        v, a = params.loc[ok, value], params.loc[ok, r2]
        rows.append({"parameter": name, "patients_with_fit": int(ok.sum()), "patients": len(params),
                     "median": float(v.median()) if ok.any() else np.nan,
                     "min": float(v.min()) if ok.any() else np.nan, "max": float(v.max()) if ok.any() else np.nan,
                     "adj_r2_min": float(a.min()) if a.notna().any() else np.nan,
                     "adj_r2_max": float(a.max()) if a.notna().any() else np.nan})
    return pd.DataFrame(rows)


def empty_kinetics() -> pd.DataFrame:
    """A kinetics table with the contract's columns and no rows: the chapter's stand-in when kinetics.csv is absent."""
    return pd.DataFrame({"patient_id": pd.Series(dtype=str), "day": pd.Series(dtype=float),
                         kinetics.CONC: pd.Series(dtype=float)})


def chapter_facts(kin: pd.DataFrame, params: pd.DataFrame, pt: pd.DataFrame, assoc: pd.DataFrame,
                  end: float = 28.0) -> dict:
    """The numbers the chapter's prose quotes (glue keys -> int/float/str); NaN or 0 when there are no data.

    Includes the check that derive.patient_table's peak_copies equals the NCA Cmax of every patient (the
    single source of truth of the survival chapter's covariate).
    """
    peak = pt.set_index("patient_id")["peak_copies"].reindex(params["patient_id"]).to_numpy(dtype=float)
    same = np.isclose(peak, params["cmax"].to_numpy(dtype=float), rtol=0, atol=0) | (
        np.isnan(peak) & params["cmax"].isna().to_numpy())
    width = (assoc["ci_high"] - assoc["ci_low"]).dropna()
    n_max = int(assoc["n"].max()) if len(assoc) else 0
    half = 1.959964 * np.sqrt(1.06 / (n_max - 3)) if n_max > 3 else np.nan
    pos = kin.loc[kin[kinetics.CONC] > 0, kinetics.CONC]
    auc_col = [c for c in params.columns if c.startswith("auc_0_")][0]
    return {
        "kin_n_patients": int(params["patient_id"].nunique()), "kin_n_samples": int(params["n_samples"].sum()),
        "kin_median_samples": float(params["n_samples"].median()) if len(params) else np.nan,
        "kin_n_no_expansion": int((params["cmax"] == 0).sum()),
        "kin_n_auc_missing": int(params[auc_col].isna().sum()),
        "kin_n_half_life": int(params["half_life"].notna().sum()),
        "kin_n_doubling": int(params["doubling_time"].notna().sum()),
        "kin_hl_r2_min": float(params["half_life_adj_r2"].min()) if params["half_life_adj_r2"].notna().any() else np.nan,
        "kin_floor": float(pos.min()) / 2 if len(pos) else np.nan,
        "kin_median_min_n": int(kinetics.MEDIAN_MIN_N),
        "kin_peak_mismatch": int((~same).sum()),
        "kin_peak_same": "yes" if len(params) and same.all() else "no",
        "kin_n_peak_imputed": int(pt["peak_imputed"].eq(True).sum()) if "peak_imputed" in pt else 0,
        "kin_ci_width_min": float(width.min()) if len(width) else np.nan,
        "kin_ci_width_max": float(width.max()) if len(width) else np.nan,
        "kin_assoc_n": n_max, "kin_ci_halfwidth_null": float(half),
        "kin_n_assoc": int(assoc["estimate"].notna().sum()),
        "kin_n_expected_chance": 0.05 * int(assoc["estimate"].notna().sum()),
        "kin_early_days": ", ".join(f"{d:g}" for d in sorted(kin.loc[kin["day"] <= end, "day"].unique())) or "none",
    }




# ------------------------------------------------------------------ formatting
def sig3(x: object) -> str:
    """A copies value to three significant figures with thousands separators: 32712 -> '32,700', 435.5 -> '436'."""
    if not fmt.is_finite(x):
        return fmt.MISSING
    v = float(f"{float(x):.3g}")
    digits = 0 if v == 0 or abs(v) >= 100 else 2 - int(np.floor(np.log10(abs(v))))
    return fmt.number(v, max(0, digits))


def day(x: object) -> str:
    """A day or duration: whole days without decimals, otherwise one decimal ('10.5')."""
    if not fmt.is_finite(x):
        return fmt.MISSING
    return fmt.number(x, 0 if float(x) == round(float(x)) else 1)


# ------------------------------------------------------------------ page state
def nca_params(page) -> pd.DataFrame:
    """The per-patient NCA of this page's cohort under the chapter's parameters (computed once per page)."""
    if "_kin_nca" not in page.__dict__:
        p = page.params
        blq = kinetics.BLQRule(first=p.get("blq_first", "keep"), middle=p.get("blq_middle", "drop"),
                               last=p.get("blq_last", "keep"))
        kin = page.data.kinetics if page.data.has("kinetics") else empty_kinetics()
        page.__dict__["_kin_nca"] = kinetics.nca(kin, end=auc_end(page), method=p.get("auc_method", "lin-up/log-down"),
                                                 blq=blq)
    return page.__dict__["_kin_nca"]


def association_table(page) -> pd.DataFrame:
    """kinetics.associations of Cmax and AUC with the chapter's covariates (computed once per page)."""
    if "_kin_assoc" not in page.__dict__:
        page.__dict__["_kin_assoc"] = kinetics.associations(nca_params(page), page.pt, ["cmax", auc_col(page)],
                                                            list(ASSOCIATION_TERMS))
    return page.__dict__["_kin_assoc"]


def auc_end(page) -> float:
    """The AUC window's end day (chapter parameter `auc_end_day`, default 28)."""
    return float(page.params.get("auc_end_day", 28.0))


def auc_col(page) -> str:
    """The NCA column of the AUC over the chapter's window, e.g. 'auc_0_28'."""
    return f"auc_0_{auc_end(page):g}"


def groupings(page) -> dict[str, pd.Series]:
    """Remission and severe-CRS groups per patient_id, for the summary and the profiles."""
    return {"remission": remission_groups(page.pt),
            "severe_crs": severe_crs_groups(page.pt, page.settings.severe_crs_grade)}


def blq_words(page) -> str:
    """The declared BLQ rule in words, from the chapter parameters."""
    p = page.params
    return (f"BLQ samples before the first quantifiable one {p.get('blq_first', 'keep')}, between quantifiable "
            f"samples {p.get('blq_middle', 'drop')}, after the last quantifiable one {p.get('blq_last', 'keep')}")


# ------------------------------------------------------------------ estimability
def half_life_reason(kin: pd.DataFrame, params: pd.DataFrame) -> pd.Series:
    """Why a terminal half-life is not estimable, per patient ('' when it is)."""
    pos = kin[kin[kinetics.CONC] > 0].merge(params[["patient_id", "tmax"]], on="patient_id")
    after = pos[pos["day"] > pos["tmax"]].groupby("patient_id").size()
    n_after = params["patient_id"].map(after).fillna(0).astype(int)
    why = np.where(params["cmax"].eq(0), "no quantifiable sample",
                   np.where(n_after < 3, "fewer than 3 quantifiable samples after the peak",
                            "no declining log-linear fit after the peak"))
    return pd.Series(np.where(params["half_life"].notna(), "", why), index=params.index)


def doubling_reason(params: pd.DataFrame) -> pd.Series:
    """Why an expansion doubling time is not estimable ('' when it is)."""
    why = np.where(params["cmax"].eq(0), "no quantifiable sample", "fewer than 3 rising samples up to the peak")
    return pd.Series(np.where(params["doubling_time"].notna(), "", why), index=params.index)


def auc_reason(params: pd.DataFrame, end: float) -> pd.Series:
    """Why the AUC is not estimable: sampling stopped before the window's end and no half-life to extrapolate."""
    col = f"auc_0_{end:g}"
    return pd.Series(np.where(params[col].isna(), f"sampling ended before day {end:g} without a half-life", ""),
                     index=params.index)


def _cell(value: str, reason: str) -> str:
    """The formatted value, or 'not estimable' when there is a reason it does not exist."""
    return value if not reason else fmt.NOT_ESTIMABLE


def _reason_note(what: str, reasons: pd.Series) -> str:
    """'half-life for 5 patients (3 with fewer than ..., 2 with no ...)'; '' when none."""
    r = reasons[reasons != ""]
    if r.empty:
        return ""
    parts = [f"{n} with {why}" if not why.startswith("sampling") else f"{n}: {why}" for why, n in r.value_counts().items()]
    return f"{what} for {fmt.plural(len(r), 'patient')} ({'; '.join(parts)})"


# ------------------------------------------------------------------ sections
MAX_LISTED = display.MAX_LISTED
NEEDS_KINETICS = {"tables": ("kinetics",)}


@needs(**NEEDS_KINETICS, what="per-patient kinetic parameters")
def per_patient(page) -> Shown:
    """Per-patient NCA parameters, with 'not estimable' (and the reason) where a fit or area does not exist."""
    params, kin, end = nca_params(page), page.data.kinetics, auc_end(page)
    hl_why, dt_why, auc_why = half_life_reason(kin, params), doubling_reason(params), auc_reason(params, end)
    shown = params.head(MAX_LISTED)
    idx = shown.index
    frame = pd.DataFrame({
        "Patient": shown["patient_id"], "Samples": shown["n_samples"].map(fmt.integer),
        param_label("cmax"): shown["cmax"].map(sig3), param_label("tmax"): shown["tmax"].map(day),
        param_label(auc_col(page)): [_cell(sig3(v), w) for v, w in zip(shown[auc_col(page)], auc_why[idx])],
        param_label("tlast"): shown["tlast"].map(day), param_label("clast"): shown["clast"].map(sig3),
        param_label("doubling_time"): [_cell(day(v), w) for v, w in zip(shown["doubling_time"], dt_why[idx])],
        param_label("half_life"): [_cell(f"{day(v)} (R\u00b2 {fmt.number(r, 2)}, {int(k)} points)", w) for v, r, k, w
                                   in zip(shown["half_life"], shown["half_life_adj_r2"], shown["half_life_n"], hl_why[idx])],
    })
    notes = [f"Non-compartmental analysis ({page.params.get('auc_method', 'lin-up/log-down')} AUC; {blq_words(page)}). "
             "R\u00b2 is the adjusted R\u00b2 of the terminal log-linear fit. \u2014: no quantifiable sample, so no peak "
             "time or last quantifiable sample."]
    gaps = [t for t in (_reason_note("AUC", auc_why), _reason_note("doubling time", dt_why),
                        _reason_note("half-life", hl_why)) if t]
    if gaps:
        notes.append("Not estimable: " + "; ".join(gaps) + ".")
    text = (f"The cohort has {fmt.plural(int(params['n_samples'].sum()), 'sample')} from "
            f"{fmt.plural(len(params), 'patient')}, a median of {day(params['n_samples'].median())} per patient; "
            f"{fmt.integer(int(params['doubling_time'].notna().sum()))} have an expansion doubling time and "
            f"{fmt.integer(int(params['half_life'].notna().sum()))} a terminal half-life.")
    tidy = params.assign(half_life_not_estimable=hl_why, doubling_not_estimable=dt_why, auc_not_estimable=auc_why)
    table = display.listing(frame, "kinetics-per-patient", stub="Patient", notes=notes, total=len(params),
                            full_list="the CSV download holds every patient")
    return Shown(text, table, page.download(tidy, "kinetics_nca_per_patient"), data=tidy)


@needs(**NEEDS_KINETICS, what="quality of the log-linear fits")
def fits(page) -> Shown:
    """How many patients have a doubling time and a half-life, their median (range) and adjusted R² range."""
    q = fit_quality(nca_params(page))
    frame = pd.DataFrame({
        "Parameter": q["parameter"].str.replace(" (day)", ", days", regex=False),
        "Patients with a fit": [fmt.count_pct(k, n) for k, n in zip(q["patients_with_fit"], q["patients"])],
        "Median (range), days": [f"{day(m)} ({day(lo)}{fmt.DASH}{day(hi)})" if fmt.is_finite(m) else fmt.NOT_ESTIMABLE
                                 for m, lo, hi in zip(q["median"], q["min"], q["max"])],
        "Adjusted R\u00b2, range": [fmt.ci(lo, hi, 2) if fmt.is_finite(lo) else fmt.MISSING
                                   for lo, hi in zip(q["adj_r2_min"], q["adj_r2_max"])],
    })
    table = display.table(frame, "kinetics-fit-quality", stub="Parameter",
                          notes=["Adjusted R\u00b2 is shown, not used to exclude patients."])
    return Shown(table, data=q)


def _summary_cell(row: pd.Series, n_group: int) -> str:
    """'32,700 (85%)' (geometric mean, CV) or '10.5 (7-14)' (median, range); n added when fewer than the group."""
    if row["statistic"] == "geometric_mean":
        cv = row["cv"]
        text = f"{sig3(row['value'])} ({fmt.number(cv, 0)}%)" if fmt.is_finite(cv) else sig3(row["value"])
    else:
        text = f"{day(row['value'])} ({day(row['min'])}{fmt.DASH}{day(row['max'])})"
    if not fmt.is_finite(row["value"]):
        return fmt.NOT_ESTIMABLE
    return text + (f"; n = {int(row['n'])}" if int(row["n"]) < n_group else "")


SPLIT_NAMES = {"Overall": "All patients", "remission": "By remission", "severe_crs": "By severe CRS"}


def literature_frame(summary: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """The literature table as text: a row per group ('Remission (CR/CRi), N = 16') under its split, a column
    per parameter (Cmax, AUC, Tmax, Tlast)."""
    wide = summary.pivot_table(index=["group", "parameter"], columns="statistic", values="value", aggfunc="first")
    main = summary[summary["statistic"].isin(["geometric_mean", "median"])]
    rows = []
    for (split, g), part in main.groupby(["split", "group"], sort=False):
        row = {"Split": SPLIT_NAMES.get(split, split), "Group": f"{g}, N = {sizes.get(g, 0)}"}
        for m in part.itertuples():
            w = wide.loc[(g, m.parameter)]
            cell = pd.Series({"statistic": m.statistic, "value": m.value, "n": m.n,
                              "cv": w.get("geometric_cv_pct", np.nan), "min": w.get("min", np.nan), "max": w.get("max", np.nan)})
            row[param_label(m.parameter)] = _summary_cell(cell, sizes.get(g, 0))
        rows.append(row)
    return pd.DataFrame(rows)


@needs(**NEEDS_KINETICS, what="summary of the kinetic parameters")
def summary(page) -> Shown:
    """Cmax and AUC as geometric mean (geometric CV%), Tmax and Tlast as median (range), overall and by group."""
    params, groups = nca_params(page), groupings(page)
    long = summary_long(params, groups)
    ids = params["patient_id"]
    sizes = {"Overall": len(params)}
    for g in groups.values():
        sizes.update({str(k): int(v) for k, v in g.reindex(ids).value_counts().items()})
    frame = literature_frame(long, sizes)
    zeros = int((params["cmax"] == 0).sum())
    notes = ["Cmax and AUC: geometric mean (geometric CV%), patients without a quantifiable sample left out; "
             "Tmax and Tlast: median (range). n is given where a value rests on fewer patients than its group's N."]
    if zeros:
        notes.append(f"{fmt.plural(zeros, 'patient')} without any quantifiable sample cannot enter a geometric mean.")
    table = display.table(frame, "kinetics-summary", stub="Group", groups="Split", notes=notes)
    return Shown(table, page.download(long, "kinetics_summary"), data=long)


@needs(**NEEDS_KINETICS, what="comparison with tisagenlecleucel")
def reference(page) -> Shown:
    """The cohort's geometric mean Cmax (and AUC for a 28-day window) and median Tmax by remission beside the label's."""
    params = nca_params(page)
    comp = reference_comparison(summary_long(params, {"remission": remission_groups(page.pt)}), auc_end(page))
    value = lambda p, v: day(v) if p == "tmax" else sig3(v)  # noqa: E731
    frame = pd.DataFrame({
        "Group": comp["group"], "Parameter": [f"{param_label(p)} ({s})" for p, s in zip(comp["parameter"], comp["statistic"])],
        "This cohort": [value(p, v) for p, v in zip(comp["parameter"], comp["cohort"])],
        "Tisagenlecleucel label": [value(p, v) for p, v in zip(comp["parameter"], comp["reference"])],
        "Ratio, cohort to label": [fmt.number(r, 2) for r in comp["ratio"]],
    })
    table = display.table(frame, "kinetics-reference", stub="Parameter", groups="Group",
                          notes=[f"Reference values: {KYMRIAH_SOURCE}; typed with their source, not computed."])
    parts = []
    for group in (REMISSION, NO_REMISSION):
        sub = comp[comp["group"] == group].set_index("parameter")
        if sub["cohort"].notna().any():
            cm, tm = sub.loc["cmax"], sub.loc["tmax"]
            parts.append(f"{group.lower() if group == NO_REMISSION else group}: geometric mean Cmax "
                         f"{sig3(cm['cohort'])} copies/\u00b5g against the label's {sig3(cm['reference'])} (ratio "
                         f"{fmt.number(cm['ratio'], 2)}), median Tmax day {day(tm['cohort'])} against day {day(tm['reference'])}")
    text = ("In this cohort, " + "; ".join(parts) + ".") if parts else "No remission group of this cohort has kinetics."
    return Shown(text, table, data=comp)


def _floor(kin: pd.DataFrame) -> float:
    """Half the lowest quantified value: where BLQ samples are drawn."""
    pos = kin.loc[kin[kinetics.CONC] > 0, kinetics.CONC]
    return float(pos.min()) / 2 if len(pos) else float("nan")


@needs(**NEEDS_KINETICS, what="kinetic profiles")
def profiles(page) -> Shown:
    """Every patient's profile on a log axis with the median by day (one figure, one colour)."""
    import matplotlib.pyplot as plt

    kin = page.data.kinetics
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    kinetics.plot_spaghetti(kin, ax=ax, linear_to=auc_end(page))
    ax.set_ylabel(labels.label("car_copies_per_ug_dna"))
    text = (f"Samples below quantification are drawn at half the lowest quantified value in the cohort "
            f"({sig3(_floor(kin))} copies/\u00b5g, the dotted line); the median is drawn on days with at least "
            f"{kinetics.MEDIAN_MIN_N} patients sampled.")
    return Shown(text, fig, data=kin)


@needs(**NEEDS_KINETICS, what="kinetic profiles by group")
def profiles_by_group(page) -> Shown:
    """Profiles by remission and by severe CRS: one figure per grouping, so a colour means one group only."""
    import matplotlib.pyplot as plt

    figs = []
    for name, g in groupings(page).items():
        fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
        kinetics.plot_spaghetti(page.data.kinetics, g, ax=ax, linear_to=auc_end(page))
        ax.set_ylabel(labels.label("car_copies_per_ug_dna"))
        ax.set_title("By remission" if name == "remission" else "By severe CRS", fontsize="medium")
        figs.append(fig)
    return Shown(*figs)


@needs(**NEEDS_KINETICS, what="Cmax by best response and CRS grade")
def cmax_by_group(page) -> Shown:
    """Cmax of every patient by best response and by maximum CRS grade (points; boxes only for groups of five or more)."""
    import matplotlib.pyplot as plt

    cmax = nca_params(page).set_index("patient_id")["cmax"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
    points_by_group(cmax, response_groups(page.pt), ax1, log=True, ylabel=param_label("cmax"))
    points_by_group(cmax, crs_grade_groups(page.pt), ax2, log=True)
    ax1.set_title("By best response", fontsize="medium")
    ax2.set_title("By maximum CRS grade", fontsize="medium")
    return Shown(fig, data=cmax.reset_index())


@needs(**NEEDS_KINETICS, what="associations of expansion")
def associations(page) -> Shown:
    """Spearman correlations of Cmax and AUC with burden, dose, product and CRS grade, Fisher-z 95% CIs."""
    a = association_table(page)
    frame = pd.DataFrame({
        "Parameter": a["outcome"].map(lambda p: param_label(p).split(",")[0]),
        "Correlated with": a["term"].map(lambda t: ASSOCIATION_TERMS.get(t, labels.label(t))),
        "Spearman \u03c1 (95% CI)": [fmt.est_ci(e, lo, hi) if fmt.is_finite(e) else f"{fmt.NOT_ESTIMABLE}: {m}"
                                     for e, lo, hi, m in zip(a["estimate"], a["ci_low"], a["ci_high"], a["message"])],
        "p-value": a["p_value"].map(fmt.p_value), "Patients": a["n"].map(fmt.integer),
    })
    table = display.table(frame, "kinetics-associations", stub="Correlated with", groups="Parameter",
                          notes=["Spearman rank correlation; 95% CI from Fisher's z with the Fieller-Hartley-Pearson "
                                 "standard error \u221a(1.06/(n \u2212 3)); p from the t approximation. Not adjusted for "
                                 "multiplicity."])
    return Shown(table, page.download(a, "kinetics_associations"), data=a)


def _facts(page) -> dict:
    """The chapter's counts (chapter_facts) for this page's NCA and associations."""
    if "_kin_facts" not in page.__dict__:
        page.__dict__["_kin_facts"] = chapter_facts(page.data.kinetics, nca_params(page), page.pt,
                                                    association_table(page), auc_end(page))
    return page.__dict__["_kin_facts"]


@needs(**NEEDS_KINETICS, what="the peak-expansion check")
def peak_source(page) -> Shown:
    """That the survival chapter's peak-expansion covariate equals every patient's NCA Cmax (checked, not assumed)."""
    f = _facts(page)
    text = ("Every patient's peak expansion equals the NCA Cmax." if f["kin_peak_same"] == "yes" else
            f"The peak expansion differs from the NCA Cmax for {fmt.plural(f['kin_peak_mismatch'], 'patient')}.")
    if f["kin_n_peak_imputed"]:
        text += (f" On the log\u2081\u2080 scale the models use, {fmt.plural(f['kin_n_peak_imputed'], 'patient')} "
                 "without a quantifiable sample get half the lowest quantified value instead of log\u2081\u2080(0).")
    return Shown(text, data=pd.DataFrame([f]))


@needs(**NEEDS_KINETICS, what="the judgement calls in numbers")
def judgement_calls(page) -> Shown:
    """The numbers behind the chapter's judgement calls: AUCs not estimable, lowest half-life R², zero peaks."""
    f, end = _facts(page), auc_end(page)
    items = [f"Patients with no AUC\u2080\u2013{end:g}d (sampling stopped early, no half-life): "
             f"{fmt.integer(f['kin_n_auc_missing'])}.",
             f"Patients without any quantifiable sample (Cmax 0, no Tmax): {fmt.integer(f['kin_n_no_expansion'])}."]
    if fmt.is_finite(f["kin_hl_r2_min"]):
        items.append(f"Lowest adjusted R\u00b2 of a half-life fit: {fmt.number(f['kin_hl_r2_min'], 2)}.")
    return Shown("\n".join(f"- {i}" for i in items), data=pd.DataFrame([f]))


@needs(**NEEDS_KINETICS, what="what the kinetics can resolve")
def conclusions(page) -> Shown:
    """How wide the correlation intervals are at this size and how many nominal p < 0.05 chance alone gives."""
    f = _facts(page)
    if not f["kin_n_assoc"]:
        return Shown("No correlation could be estimated in this cohort (a variable is absent, or fewer than four "
                     "patients have both values).",
                     data=pd.DataFrame([f]))
    text = (f"With {fmt.plural(f['kin_n_patients'], 'patient')} the 95% intervals of the correlations span between "
            f"{fmt.number(f['kin_ci_width_min'], 2)} and {fmt.number(f['kin_ci_width_max'], 2)} on the correlation "
            f"scale, and even a true correlation of zero would be estimated within about "
            f"\u00b1{fmt.number(f['kin_ci_halfwidth_null'], 2)} at n = {fmt.integer(f['kin_assoc_n'])}. If there were no "
            f"association at all, on average {fmt.number(f['kin_n_expected_chance'], 1)} of the "
            f"{fmt.integer(f['kin_n_assoc'])} correlations would still reach p < 0.05 by chance.")
    return Shown(text, data=pd.DataFrame([f]))
