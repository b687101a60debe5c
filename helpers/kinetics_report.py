"""Presentation glue for the kinetics chapter: group labels, the literature-style table, the comparison with
the tisagenlecleucel reference values, formatted associations and the numbers the prose quotes.

The analysis itself (NCA, summaries, Spearman intervals, plots) is in `helpers.kinetics`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import kinetics
from helpers.tables import format_p

PARAM_LABELS = {"cmax": "Cmax (copies/\u00b5g DNA)", "tmax": "Tmax (day)", "tlast": "Tlast (day)"}
REMISSION, NO_REMISSION = "Remission (CR/CRi)", "No remission"
RESPONSE_ORDER = ["CR", "CRi", "PR", "NR"]
# Covariates of the association table (derive.patient_table columns) and how the chapter names them.
ASSOCIATION_TERMS = {"bm_blasts_pct": "Disease burden (marrow blasts, %)", "car_dose_per_kg": "CAR-T dose (cells/kg)",
                     "product_em_pct": "Effector-memory share of product (%)",
                     "cd4_cd8_ratio": "CD4:CD8 ratio of product", "crs_grade": "CRS grade"}
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
    """Readable name of an NCA column, e.g. 'auc_0_28' -> 'AUC0-28d (copies/ug DNA x day)'."""
    if param.startswith("auc_0_"):
        return f"AUC0\u2013{param[len('auc_0_'):]}d (copies/\u00b5g DNA \u00d7 day)"
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


def literature_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Wide table as the literature prints it: a row per parameter, a column per group, 'value, n=k' cells.

    Cmax and AUC: geometric mean (geometric CV%), zeros excluded; Tmax and Tlast: median (range).
    """
    main = summary[summary["statistic"].isin(["geometric_mean", "median"])]
    cells = main.assign(cell=main["formatted"] + ", n=" + main["n"].astype(int).astype(str))
    params = list(dict.fromkeys(main["parameter"]))
    groups = list(dict.fromkeys(main["group"]))
    wide = cells.pivot(index="parameter", columns="group", values="cell").reindex(index=params, columns=groups)
    stat = {p: "geometric mean (CV%)" if s == "geometric_mean" else "median (range)"
            for p, s in zip(main["parameter"], main["statistic"])}
    wide.insert(0, "statistic", [stat[p] for p in params])
    wide.insert(0, "parameter", [param_label(p) for p in params])
    return wide.reset_index(drop=True).rename_axis(columns=None)


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


def format_associations(table: pd.DataFrame) -> pd.DataFrame:
    """Display form of kinetics.associations: labels, 'rho (95% CI)', p, n and any note."""
    rho = [f"{e:.2f} ({lo:.2f} to {hi:.2f})" if np.isfinite(lo) else ("NA" if not np.isfinite(e) else f"{e:.2f}")
           for e, lo, hi in zip(table["estimate"], table["ci_low"], table["ci_high"])]
    return pd.DataFrame({"parameter": table["outcome"].map(param_label),
                         "covariate": table["term"].map(lambda t: ASSOCIATION_TERMS.get(t, t)),
                         "Spearman rho (95% CI)": rho, "p": table["p_value"].map(format_p),
                         "n": table["n"], "note": table["message"]})


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
    half = 1.959964 * 1.06 / np.sqrt(n_max - 3) if n_max > 3 else np.nan
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


def glue_facts(facts: dict) -> None:
    """Glue every fact for the chapter's prose (myst_nb glue, not displayed)."""
    from myst_nb import glue

    for key, value in facts.items():
        glue(key, value, display=False)


def reference_sentence(comparison: pd.DataFrame) -> str:
    """One computed sentence: the cohort's geometric mean Cmax and median Tmax by remission vs the label's."""
    parts = []
    for group in (REMISSION, NO_REMISSION):
        sub = comparison[comparison["group"] == group].set_index("parameter")
        if sub["cohort"].isna().all():
            continue
        cm, tm = sub.loc["cmax"], sub.loc["tmax"]
        parts.append(f"{group}: geometric mean Cmax {kinetics.fmt_sig(cm['cohort'])} copies/\u00b5g "
                     f"(label {kinetics.fmt_sig(cm['reference'])}; ratio {cm['ratio']:.2f}) and median Tmax "
                     f"day {kinetics.fmt_day(tm['cohort'])} (label day {kinetics.fmt_day(tm['reference'])})")
    return "In this cohort \u2014 " + "; ".join(parts) + "." if parts else "No group of this cohort has kinetics data."


def settings_facts(auc_method: str, blq: kinetics.BLQRule, end: float) -> dict:
    """The chapter's declared choices as glue strings: AUC method, BLQ rule, AUC window end."""
    return {"kin_auc_method": auc_method, "kin_auc_end": f"{end:g}",
            "kin_blq_rule": f"leading BLQ {blq.first}, BLQ between quantifiable samples {blq.middle}, "
                            f"trailing BLQ {blq.last}"}


def params_display(params: pd.DataFrame) -> pd.DataFrame:
    """Per-patient NCA table for the page: concentrations to 3 significant figures, days to 0.1, R^2 to 0.01."""
    auc = [c for c in params.columns if c.startswith("auc_0_")]
    out = pd.DataFrame({"patient": params["patient_id"], "samples": params["n_samples"]})
    for col in ["cmax", *auc, "clast"]:
        out[param_label(col) if col != "clast" else "Clast (copies/\u00b5g DNA)"] = params[col].map(kinetics.fmt_sig)
    for col, name in (("tmax", "Tmax"), ("tlast", "Tlast"), ("doubling_time", "doubling time"),
                      ("half_life", "half-life")):
        out[f"{name} (day)"] = params[col].map(kinetics.fmt_day)
    out["doubling adj. R\u00b2"] = params["doubling_adj_r2"].map(lambda r: f"{r:.2f}" if np.isfinite(r) else "NA")
    out["half-life adj. R\u00b2 (points)"] = [f"{r:.2f} ({int(k)})" if np.isfinite(r) else "NA"
                                              for r, k in zip(params["half_life_adj_r2"], params["half_life_n"])]
    return out[["patient", "samples", param_label("cmax"), "Tmax (day)", *[param_label(c) for c in auc],
                "Tlast (day)", "Clast (copies/\u00b5g DNA)", "doubling time (day)", "doubling adj. R\u00b2",
                "half-life (day)", "half-life adj. R\u00b2 (points)"]]
