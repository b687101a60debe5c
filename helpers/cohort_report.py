"""Chapter 1 (the cohort), section by section: patient flow, Table 1 as gtsummary prints it, the infused
product, follow-up and what can be concluded. Each function takes the chapter's `Page` and returns
`Shown` (sentences computed from the results, a display table or figure, the tidy CSV) or `Skipped`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import describe, display, fmt, labels, stats, tables
from helpers.group_plot import points_by_group
from helpers.sections import Shown, Skipped, needs

TEST_NAMES = {"Wilcoxon": "Wilcoxon rank-sum test", "Fisher": "Fisher's exact test",
              "Kruskal": "Kruskal-Wallis rank-sum test"}
STATISTICS_NOTE = "Median (Q1, Q3); n (%)"


# ------------------------------------------------------------------ flow
def _reasons(exits: pd.DataFrame, stage: str) -> str:
    """'3 PR, 5 NR': the non-zero reasons patients did not reach one stage."""
    part = exits[(exits["stage"] == stage) & (exits["n"] > 0)]
    return ", ".join(f"{fmt.integer(n)} {r}" for r, n in zip(part["reason"], part["n"]))


def flow_frames(page) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The flow counts and the reasons for leaving it, for this page's cohort and settings."""
    s, pt = page.settings, page.pt
    flow = describe.flow_counts(pt, enrolled=page.data.enrolled, remission_label="/".join(s.remission_responses))
    exits = describe.flow_exits(pt, s.landmark_day, page.data.enrolled, tuple(s.remission_responses))
    return flow, exits


HEADLINES = {"Infused": "not infused", "Evaluable for response": "not evaluable (NE)",
             "Remission": "without remission", "MRD-negative remission": "not MRD-negative"}


def _side_notes(flow: pd.DataFrame, exits: pd.DataFrame) -> list[tuple[str, str]]:
    """Per stage: (headline, reasons) of who of the stage above did not reach it; ('', '') when nobody."""
    notes = []
    for stage, lost in zip(flow["stage"], flow["not_next"]):
        key = stage.split(" (")[0]
        head, why = f"{fmt.integer(lost)} {HEADLINES.get(key, 'left')}", _reasons(exits, key)
        notes.append((head, "" if why == head else why) if lost > 0 else ("", ""))
    return notes


def plot_flow(flow: pd.DataFrame, exits: pd.DataFrame, ax=None):
    """CONSORT-style flow: one box per stage, arrows, and a side box per step with the reasons patients left."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 1.25 * len(flow)))
    k, notes = len(flow), _side_notes(flow, exits)
    box = {"boxstyle": "round,pad=0.5", "facecolor": "white", "edgecolor": "0.2"}
    side = {"boxstyle": "round,pad=0.4", "facecolor": "0.95", "edgecolor": "0.6"}
    for i, (stage, n, note) in enumerate(zip(flow["stage"], flow["n"], notes)):
        y = k - 1 - i
        ax.text(0.3, y, f"{stage}\nn = {fmt.integer(n)}", ha="center", va="center", bbox=box, fontsize=10)
        if i > 0:
            ax.annotate("", xy=(0.3, y + 0.28), xytext=(0.3, y + 0.72), arrowprops={"arrowstyle": "-|>", "color": "0.2"})
        if note[0]:
            ax.annotate("\n".join(t for t in note if t), xy=(0.31, y + 0.5), xytext=(0.56, y + 0.5), ha="left",
                        va="center", fontsize=9, bbox=side, arrowprops={"arrowstyle": "-", "color": "0.6"})
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, k - 0.4)
    ax.axis("off")
    return ax


def flow_sentence(flow: pd.DataFrame, exits: pd.DataFrame) -> str:
    """The flow in words, each step with its reasons, from the counts."""
    n = dict(zip(flow["stage"].str.split(" [(]").str[0], flow["n"]))
    why = dict(zip(flow["stage"].str.split(" [(]").str[0], _side_notes(flow, exits)))
    say = lambda key: f" ({why[key][0]}: {why[key][1]})" if why[key][1] else (f" ({why[key][0]})" if why[key][0] else "")  # noqa: E731
    text = (f"Of the {fmt.plural(n['Infused'], 'infused patient')}, {fmt.integer(n['Evaluable for response'])} "
            f"{'was' if n['Evaluable for response'] == 1 else 'were'} evaluable for response{say('Evaluable for response')}; "
            f"{fmt.integer(n['Remission'])} reached remission{say('Remission')}")
    if "MRD-negative remission" in n:
        text += f", and {fmt.integer(n['MRD-negative remission'])} of the remissions were MRD-negative{say('MRD-negative remission')}"
    else:
        text += "; this cohort records no MRD results"
    if "Enrolled" in n:
        text = f"{fmt.plural(n['Enrolled'], 'patient')} were enrolled{say('Infused')}. " + text
    return text + "."


def flow(page) -> Shown:
    """Patient flow from infusion (or enrolment) to MRD-negative remission, with the reasons at each step."""
    import matplotlib.pyplot as plt

    counts, exits = flow_frames(page)
    fig, ax = plt.subplots(figsize=(7.5, 1.25 * len(counts)))
    plot_flow(counts, exits, ax=ax)
    keyed = counts.assign(step=counts["stage"].str.split(" [(]").str[0])
    tidy = keyed.merge(exits.rename(columns={"stage": "step", "n": "reason_n"}), on="step", how="left")
    tidy = tidy.drop(columns="step").astype({"reason_n": "Int64"})
    return Shown(flow_sentence(counts, exits), fig, page.download(tidy, "patient_flow"), data=tidy)


# ------------------------------------------------------------------ Table 1
def scale_words(page) -> str:
    """The scale the CRS grades come from: the cohort's grading system, or 'reported by the centre'."""
    source = page.pt["crs_grade_source"].iat[0] if "crs_grade_source" in page.pt and len(page.pt) else ""
    return "as reported by the centre" if str(source).startswith("as reported") else labels.scale(page.settings.crs_system)


def groupings(page) -> dict[str, tuple[pd.Series, str]]:
    """Table 1 splits: name -> (group per patient, spanner label); levels 'No remission'/'Remission' etc."""
    s, pt = page.settings, page.pt
    rem = pd.Categorical(pt["remission"].map({True: "Remission", False: "No remission"}),
                         categories=["No remission", "Remission"])
    sev = pd.Categorical(pt["severe_crs"].astype("object").map({True: "Severe CRS", False: "No severe CRS"}),
                         categories=["No severe CRS", "Severe CRS"])
    return {"remission": (pd.Series(rem, index=pt.index, name="group"),
                          f"Remission ({'/'.join(s.remission_responses)})"),
            "severe_crs": (pd.Series(sev, index=pt.index, name="group"),
                           f"Severe CRS (grade \u2265{s.severe_crs_grade}, {scale_words(page)})")}


def summary_columns(df: pd.DataFrame, groups: pd.Series | None) -> dict[str, pd.DataFrame]:
    """Header -> rows: 'Overall, N = n' then 'level, N = k' per level (gtsummary's add_overall order)."""
    cols = {f"Overall, N = {fmt.integer(len(df))}": df}
    if groups is not None:
        for lv in groups.cat.categories:
            part = df[(groups == lv).to_numpy()]
            cols[f"{lv}, N = {fmt.integer(len(part))}"] = part
    return cols


def summary_cells(df: pd.DataFrame, var: str, kind: str, cols: dict) -> list[tuple[str, bool, dict]]:
    """(label, indented, {column: cell}) rows of one variable as gtsummary prints it, Unknown last."""
    head = {h: "" for h in cols}
    rows = [(labels.label(var), False, head)]
    if kind == stats.CONTINUOUS:
        digits = tables.guess_digits(df[var])
        head.update({h: fmt.median_iqr(part[var].dropna().astype(float), digits) for h, part in cols.items()})
    elif kind == stats.BINARY:
        for h, part in cols.items():
            codes = stats.binary_codes(part[var])[0].dropna()
            head[h] = fmt.n_pct(int(codes.sum()), len(codes))
    else:
        for lv in tables._levels(df[var]):
            rows.append((labels.value(var, lv), True,
                         {h: fmt.n_pct(int((p[var] == lv).sum()), int(p[var].notna().sum())) for h, p in cols.items()}))
    if df[var].isna().any():
        rows.append(("Unknown", True, {h: fmt.integer(int(p[var].isna().sum())) for h, p in cols.items()}))
    return rows


def _test_name(name: str) -> str:
    """The test's name as a footnote prints it: 'Wilcoxon rank-sum test', "Fisher's exact test", ..."""
    base = next((v for k, v in TEST_NAMES.items() if name.startswith(k)), name)
    return base + (" (Monte Carlo p-value)" if "Monte Carlo" in name else "")


def baseline_frames(pt: pd.DataFrame, groups: pd.Series | None = None) -> tuple[pd.DataFrame, list[int], list[str], pd.DataFrame]:
    """Table 1: (display frame of text, indented row positions, test names in order, tidy table_one frame).

    Numbers from tables.table_one (the tidy CSV, tests, R recomputation); cells as gtsummary's
    tbl_summary: median (Q1, Q3), n (%) of non-missing, an 'Unknown' count row, p from add_p.
    The CAR-T dose is shown in 10^6 cells/kg.
    """
    kinds, names, _ = describe.available_variables(pt)
    df = pt.assign(car_dose_per_kg=pt["car_dose_per_kg"] / 1e6) if "car_dose_per_kg" in kinds else pt
    by = None if groups is None else "group"
    if by:
        df = df.assign(group=groups.to_numpy())
    tidy = tables.table_one(df, kinds, by=by, labels=names)
    cols = summary_columns(df, None if groups is None else groups)
    rows, indent, tests = [], [], []
    for var, kind in kinds.items():
        block = summary_cells(df, var, kind, cols)
        if by:
            head = tidy[(tidy["variable"] == var) & (tidy["level"] == "")].iloc[0]
            block[0][2]["p-value"] = fmt.p_value(head["p_value"])
            tests.append(_test_name(head["Test"])) if fmt.is_finite(head["p_value"]) else None
        for label, ind, cells in block:
            indent += [len(rows)] if ind else []
            rows.append({"Characteristic": label, **{h: cells.get(h, "") for h in [*cols, *(["p-value"] if by else [])]}})
    return pd.DataFrame(rows), indent, list(dict.fromkeys(tests)), tidy


def baseline_table(pt: pd.DataFrame, groups: pd.Series | None, spanner: str, id: str) -> tuple[display.Table, pd.DataFrame]:
    """Table 1 for the page (stub, indented levels, spanner over the groups, footnotes) and its tidy frame."""
    frame, indent, tests, tidy = baseline_frames(pt, groups)
    stat_cols = [c for c in frame.columns if c not in ("Characteristic", "p-value")]
    footnotes = {STATISTICS_NOTE: stat_cols}
    if tests:
        footnotes["; ".join(tests)] = ["p-value"]
    spanners = {spanner: stat_cols[1:]} if groups is not None else {}
    notes = []
    if groups is not None and groups.isna().any():
        notes.append(f"{fmt.plural(int(groups.isna().sum()), 'patient')} without a value for the split "
                     "are counted in the Overall column only.")
    table = display.table(frame, id, stub="Characteristic", indent=indent, spanners=spanners,
                          footnotes=footnotes, notes=notes)
    return table, tidy


def _table_one(page, split: str, id: str) -> Shown | Skipped:
    """Table 1 split by one grouping (skipped when it does not have patients on both sides)."""
    groups, spanner = groupings(page)[split]
    kinds, _, absent = describe.available_variables(page.pt)
    if not kinds:
        return Skipped("Table 1", "this cohort has no values for any baseline or product characteristic ("
                       + "; ".join(absent) + ").")
    if groups.dropna().nunique() < 2:
        return Skipped(f"Table 1 by {spanner[0].lower()}{spanner[1:]}",
                       "the split needs patients on both sides, and this cohort has them on one side only.")
    table, tidy = baseline_table(page.pt, groups, spanner, id)
    parts = [table, page.download(tidy, f"table1_by_{split}")]
    if absent:
        parts.append(f"Not recorded in this cohort, so not in the table: {'; '.join(absent)}.")
    return Shown(*parts, data=tidy)


def table_one(page) -> Shown | Skipped:
    """Table 1: baseline and product characteristics overall and by remission."""
    return _table_one(page, "remission", "table1-remission")


def table_one_by_severe_crs(page) -> Shown | Skipped:
    """Table 1 by severe CRS (needs CRS grades with severe and non-severe cases)."""
    return _table_one(page, "severe_crs", "table1-severe-crs")


# ------------------------------------------------------------------ infused product
PANEL_WIDTHS = {"dose": 1.2, "cd4_cd8_ratio": 1.2, "subsets": 2.5}


def plot_product(pt: pd.DataFrame, panels: list[str], axes, groups: pd.Series) -> list:
    """Infused product patient by patient: dose (log axis) and CD4:CD8 ratio by remission, subset shares (%)."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    for ax, panel in zip(axes, panels):
        if panel == "dose":
            points_by_group(pt["car_dose_per_kg"] / 1e6, groups, ax, log=True, ylabel=labels.label("car_dose_per_kg"))
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        elif panel == "cd4_cd8_ratio":
            points_by_group(pt["cd4_cd8_ratio"], groups, ax, ylabel=labels.label("cd4_cd8_ratio"))
        else:
            long = describe.product_subsets_long(pt)
            points_by_group(long["pct"], long["subset"], ax, ylabel="Share of product T cells, %")
        ax.tick_params(axis="x", labelsize="small")
    return list(axes)


def product(page) -> Shown | Skipped:
    """The infused product: dose, CD4:CD8 ratio and T-cell subsets, every patient a point."""
    import matplotlib.pyplot as plt

    pt, panels = page.pt, describe.product_panels(page.pt)
    if not panels:
        return Skipped("the infused-product figure", "this cohort has no values for the product columns "
                       "(`car_dose_per_kg`, `product_cd4_pct`/`product_cd8_pct`, the T-cell subset shares).")
    fig, axes = plt.subplots(1, len(panels), figsize=(4 + 3 * len(panels), 4), squeeze=False,
                             width_ratios=[PANEL_WIDTHS[p] for p in panels], layout="constrained")
    plot_product(pt, panels, axes[0], groupings(page)["remission"][0])
    cols = ["patient_id", *[c for c in ("car_dose_per_kg", "cd4_cd8_ratio", *describe.PRODUCT_SUBSETS) if c in pt]]
    return Shown(fig, data=pt[cols])


# ------------------------------------------------------------------ follow-up
def followup(page) -> Shown:
    """Median follow-up for overall survival by reverse Kaplan-Meier, in months with its CI."""
    fu = describe.followup(page.pt)
    tidy = pd.DataFrame([fu])
    if not fu["n_censored"]:
        return Shown("Median follow-up is not estimable: every patient died, so no follow-up was cut short "
                     "by the end of observation.", data=tidy)
    lo = fmt.months(fu["ci_low"]) if fmt.is_finite(fu["ci_low"]) else fmt.NOT_ESTIMABLE
    hi = fmt.months(fu["ci_high"])
    sep = fmt.DASH if fmt.is_finite(fu["ci_low"]) and fmt.is_finite(fu["ci_high"]) else " to "
    text = (f"The median follow-up for overall survival is {fmt.months(fu['median'])} months (95% CI {lo}{sep}{hi}); {fmt.plural(fu['n_censored'], 'patient')} {'was' if fu['n_censored'] == 1 else 'were'} "
            f"alive at last contact, followed for {fmt.months(fu['min'])} to {fmt.months(fu['max'])} months.")
    return Shown(text, data=tidy)


# ------------------------------------------------------------------ conclusions
def conclusions(page) -> Shown:
    """How much a cohort of this size can say: the width of an exact interval around one half, the rows tested."""
    n = len(page.pt)
    half = n // 2
    lo, hi = stats.exact_ci(half, 2 * half) if half else (0.0, 1.0)
    kinds, _, _ = describe.available_variables(page.pt)
    text = (f"This chapter describes {fmt.plural(n, 'patient')}; it tests nothing about the population they came "
            f"from. At this size a proportion near one half is known only to within an exact 95% interval "
            f"{fmt.number(100 * (hi - lo), 0)} percentage points wide, and a comparison of two groups of "
            f"{fmt.integer(half)} has little power except for very large differences"
            + (", so a p-value above 0.05 in Table 1 does not show that the groups were alike, and a few small ones "
               f"are expected by chance among {fmt.plural(len(kinds), 'characteristic')}." if kinds else "."))
    return Shown(text, data=pd.DataFrame([{"n": n, "half_n": half, "ci_low": lo, "ci_high": hi,
                                           "n_characteristics": len(kinds)}]))
