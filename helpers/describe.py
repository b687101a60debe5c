"""Cohort description: which baseline and product variables a cohort has, and the patient flow."""
from __future__ import annotations

import math

import pandas as pd

from helpers import tables

# column -> (kind for tables.table_one, label shown to readers)
BASELINE_VARIABLES: dict[str, tuple[str, str]] = {
    "age_years": ("continuous", "Age, years"),
    "sex": ("categorical", "Sex"),
    "bm_blasts_pct": ("continuous", "Bone-marrow blasts before lymphodepletion, %"),
    "ph_positive": ("binary", "Philadelphia chromosome positive"),
    "prior_lines": ("continuous", "Prior lines of therapy"),
    "prior_allo_hsct": ("binary", "Prior allogeneic HSCT"),
    "extramedullary": ("binary", "Extramedullary disease"),
    "ldh_u_per_l": ("continuous", "LDH, U/L"),
    "car_dose_per_kg": ("continuous", "CAR-T dose, x10^6 cells/kg"),
    "cd4_cd8_ratio": ("continuous", "Product CD4:CD8 ratio"),
    "product_naive_pct": ("continuous", "Product naive T cells, %"),
    "product_cm_pct": ("continuous", "Product central-memory T cells, %"),
    "product_em_pct": ("continuous", "Product effector-memory T cells, %"),
    "product_eff_pct": ("continuous", "Product effector T cells, %"),
}


def available_variables(pt: pd.DataFrame) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Table 1 variables this cohort has: (kinds, labels, names of the absent ones)."""
    kinds, labels, absent = {}, {}, []
    for col, (kind, label) in BASELINE_VARIABLES.items():
        if col in pt and pt[col].notna().any():
            kinds[col], labels[col] = kind, label
        else:
            absent.append(label)
    return kinds, labels, absent


NOT_REACHED = {"Infused": "not infused", "Evaluable for response": "not evaluable",
               "Remission": "without remission", "MRD-negative remission": "MRD-positive or not tested"}


def flow_counts(pt: pd.DataFrame, enrolled: int | None = None, remission_label: str = "CR/CRi") -> pd.DataFrame:
    """Patient flow (enrolled) -> infused -> evaluable for response -> remission -> MRD-negative remission.

    The data contract holds infused patients only, so 'Enrolled' appears only when `enrolled` is given.
    Column `not_next` is how many of the stage above did not reach this one (0 for the first box).
    """
    rows = [] if enrolled is None else [("Enrolled", int(enrolled))]
    rows += [("Infused", len(pt)), ("Evaluable for response", int(pt["best_response"].notna().sum())),
             (f"Remission ({remission_label})", int(pt["remission"].sum()))]
    if "mrd_negative" in pt and pt["mrd_negative"].notna().any():
        rows.append(("MRD-negative remission", int((pt["mrd_negative"].eq(True) & pt["remission"]).sum())))
    out = pd.DataFrame(rows, columns=["stage", "n"])
    out["not_next"] = (out["n"].shift(1) - out["n"]).fillna(0).astype(int)
    out["not_next_reason"] = [NOT_REACHED.get(s.split(" (")[0], "") for s in out["stage"]]
    return out


def plot_flow(flow: pd.DataFrame, ax=None):
    """CONSORT-style flow diagram from flow_counts: one box per stage top to bottom, arrows, and side notes of who left."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 1.3 * len(flow)))
    k = len(flow)
    box = {"boxstyle": "round,pad=0.5", "facecolor": "white", "edgecolor": "0.2"}
    side = {"boxstyle": "round,pad=0.4", "facecolor": "0.95", "edgecolor": "0.6"}
    for i, row in enumerate(flow.itertuples(index=False)):
        y = k - 1 - i
        ax.text(0.35, y, f"{row.stage}\nn = {row.n}", ha="center", va="center", bbox=box, fontsize=10)
        if i > 0:
            ax.annotate("", xy=(0.35, y + 0.28), xytext=(0.35, y + 0.72),
                        arrowprops={"arrowstyle": "-|>", "color": "0.2"})
        if i > 0 and row.not_next > 0:
            ax.annotate(f"{row.not_next} {row.not_next_reason}", xy=(0.36, y + 0.5), xytext=(0.62, y + 0.5),
                        ha="left", va="center", fontsize=9, bbox=side,
                        arrowprops={"arrowstyle": "-", "color": "0.6"})
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, k - 0.4)
    ax.axis("off")
    return ax


# ------------------------------------------------------------------ groupings for Table 1
def remission_groups(pt: pd.DataFrame, responses: tuple[str, ...] = ("CR", "CRi")) -> pd.Series:
    """Remission label per patient ('Remission (CR/CRi)' / 'No remission'), ordered no-then-yes as gtsummary orders FALSE, TRUE."""
    yes, no = f"Remission ({'/'.join(responses)})", "No remission"
    lab = pt["remission"].map({True: yes, False: no})
    return pd.Series(pd.Categorical(lab, categories=[no, yes]), index=pt.index, name="remission_group")


def severe_crs_groups(pt: pd.DataFrame, severe_grade: int = 3) -> pd.Series:
    """Severe-CRS label per patient ('Severe CRS (grade >= g)' / 'No severe CRS'); missing when the grade is unknown."""
    yes, no = f"Severe CRS (grade >= {severe_grade})", "No severe CRS"
    lab = pt["severe_crs"].astype("object").map({True: yes, False: no})
    return pd.Series(pd.Categorical(lab, categories=[no, yes]), index=pt.index, name="severe_crs_group")


def has_two_groups(groups: pd.Series) -> bool:
    """True when a grouping has at least one patient in each of two levels (a split is possible)."""
    return int(groups.dropna().nunique()) >= 2


def baseline_table(pt: pd.DataFrame, groups: pd.Series | None = None) -> pd.DataFrame:
    """Table 1 as displayed: Characteristic, Overall and per-group columns, formatted p and the test named per row.

    Calls helpers.tables.table_one on the variables this cohort has (BASELINE_VARIABLES): continuous
    median (IQR) and range, categorical n (%), Missing rows; Wilcoxon rank-sum / Fisher's exact by group.
    The dose is shown in 10^6 cells/kg.
    """
    kinds, labels, _ = available_variables(pt)
    by = None if groups is None else groups.name
    df = pt if groups is None else pt.assign(**{by: groups})
    if "car_dose_per_kg" in kinds:  # shown in millions, as trial reports do
        df = df.assign(car_dose_per_kg=df["car_dose_per_kg"] / 1e6)
    table = tables.table_one(df, kinds, by=by, labels=labels)
    return table.drop(columns=[c for c in ("variable", "level", "p_value") if c in table])


# ------------------------------------------------------------------ infused product
PRODUCT_SUBSETS: dict[str, str] = {"product_naive_pct": "Naive", "product_cm_pct": "Central memory",
                                   "product_em_pct": "Effector memory", "product_eff_pct": "Effector"}


def product_panels(pt: pd.DataFrame) -> list[str]:
    """Which product panels this cohort can draw: 'dose', 'cd4_cd8_ratio', 'subsets' (each needs a non-missing value)."""
    has = lambda c: c in pt and pt[c].notna().any()  # noqa: E731
    panels = [p for p, col in (("dose", "car_dose_per_kg"), ("cd4_cd8_ratio", "cd4_cd8_ratio")) if has(col)]
    if any(has(c) for c in PRODUCT_SUBSETS):
        panels.append("subsets")
    return panels


def product_subsets_long(pt: pd.DataFrame) -> pd.DataFrame:
    """Product T-cell subset shares in long form: patient_id, subset (ordered naive -> effector), pct; missing rows dropped."""
    cols = [c for c in PRODUCT_SUBSETS if c in pt]
    long = pt.melt(id_vars="patient_id", value_vars=cols, var_name="column", value_name="pct").dropna(subset=["pct"])
    order = [PRODUCT_SUBSETS[c] for c in cols]
    long["subset"] = pd.Categorical(long["column"].map(PRODUCT_SUBSETS), categories=order)
    return long[["patient_id", "subset", "pct"]].reset_index(drop=True)


def plot_product(pt: pd.DataFrame, panels: list[str], axes, groups: pd.Series | None = None) -> list:
    """Infused product, per-patient points over box plots: dose (log axis) and CD4:CD8 ratio by `groups`, subset shares (%).

    `axes` holds one Axes per entry of `panels` (see product_panels); returns them.
    """
    from helpers.kinetics import plot_points_box

    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    grp = groups if groups is not None else pd.Series("All patients", index=pt.index)
    for ax, panel in zip(axes, panels):
        if panel == "dose":
            plot_points_box(pt["car_dose_per_kg"] / 1e6, grp, ax=ax, log=True, ylabel="CAR-T dose, x10^6 cells/kg")
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        elif panel == "cd4_cd8_ratio":
            plot_points_box(pt["cd4_cd8_ratio"], grp, ax=ax, log=False, ylabel="CD4:CD8 ratio")
        else:
            long = product_subsets_long(pt)
            plot_points_box(long["pct"], long["subset"], ax=ax, log=False, ylabel="Share of product T cells, %")
        ax.tick_params(axis="x", labelsize="small")
    return list(axes)


# ------------------------------------------------------------------ follow-up
def followup(pt: pd.DataFrame) -> dict:
    """Median follow-up for overall survival by reverse Kaplan-Meier (survival.median_followup) with a printable sentence."""
    from helpers.survival import median_followup

    fu = median_followup(pt, "os_days", "os_event")
    d = lambda x: "not reached" if math.isinf(x) else f"{x:.0f}"  # noqa: E731
    fu["formatted"] = (f"{d(fu['median'])} days (95% CI {d(fu['ci_low'])} to {d(fu['ci_high'])})"
                       if fu["n_censored"] else "not estimable: no patient was censored")
    return fu
