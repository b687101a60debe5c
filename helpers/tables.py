"""Presentation tables: a gtsummary-style Table 1, deterministic CSV and number formatting.

Built on pandas + scipy rather than the ``tableone`` package: tableone 0.9.6 tests non-normal
variables with Kruskal-Wallis (not the Wilcoxon rank-sum gtsummary uses, whose exact p differs in
small samples), categorical ones with chi-squared, prints no range, and reports missing values in
a column rather than as a row. The tests use tableone as an independent check of the medians
and quartiles.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats as ss

from helpers.stats import BINARY, CONTINUOUS, KINDS, binary_codes, fisher_rxc
from helpers.stats import group_levels, wilcoxon_rank_sum

FISHER = "Fisher's exact"
KRUSKAL = "Kruskal-Wallis"
CSV_FLOAT_FORMAT = "%.6g"


def format_p(p: float) -> str:
    """p-value as gtsummary ``style_pvalue(digits=2)``: '<0.001', 3 decimals below 0.1, 2 decimals up to 0.99, '>0.99'."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p < 0.001:
        return "<0.001"
    if p < 0.1:
        return f"{p:.3f}"
    return ">0.99" if p > 0.99 else f"{p:.2f}"


def _num(x: float, digits: int) -> str:
    """Fixed-decimals number; infinities as 'Inf'/'-Inf', NaN as 'NA' (R's spelling)."""
    if isinstance(x, (float, np.floating)) and math.isnan(x):
        return "NA"
    if isinstance(x, (float, np.floating)) and math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    return f"{x:.{digits}f}"


def format_ci(est: float, lo: float, hi: float, digits: int = 2, pct: bool = False) -> str:
    """'est (lo-hi)', or 'est% (lo-hi)' with pct (proportions x 100); ' to ' separates bounds when one is negative."""
    scale = 100.0 if pct else 1.0
    e, a, b = (v * scale for v in (est, lo, hi))
    sep = " to " if (a < 0 or b < 0) else "-"
    unit = "%" if pct else ""
    return f"{_num(e, digits)}{unit} ({_num(a, digits)}{sep}{_num(b, digits)})"


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """Deterministic CSV: UTF-8, '\\n' line ends, no index, floats as '%.6g', NaN as empty."""
    text = table.to_csv(index=False, lineterminator="\n", float_format=CSV_FLOAT_FORMAT, na_rep="")
    return text.encode("utf-8")


def guess_digits(x: pd.Series) -> int:
    """Decimals for a continuous variable: 0 if whole numbers or |median| >= 100, 1 if >= 1, else 2 (close to gtsummary's guess)."""
    v = x.dropna().astype(float)
    if v.empty or np.all(v == np.round(v)):
        return 0
    med = abs(float(v.median()))
    return 0 if med >= 100 else 1 if med >= 1 else 2


def summarise_continuous(x: pd.Series, digits: int) -> str:
    """'median (IQR Q1-Q3), range min-max' with linear quantiles (pandas default = R ``quantile`` type 7)."""
    v = x.dropna().astype(float)
    if v.empty:
        return ""
    q1, med, q3 = v.quantile([0.25, 0.5, 0.75])
    f = lambda z: _num(float(z), digits)  # noqa: E731
    return f"{f(med)} (IQR {f(q1)}-{f(q3)}), range {f(v.min())}-{f(v.max())}"


def n_pct(k: int, n: int) -> str:
    """'k (p%)' with one decimal; percent of non-missing values, as gtsummary."""
    return f"{k} ({100 * k / n:.1f}%)" if n else "0 (NA)"


def _levels(s: pd.Series) -> list:
    """Levels of a categorical variable: category order if pandas Categorical, else sorted as text."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return list(s.cat.categories)
    return sorted(pd.unique(s.dropna()), key=str)


def _column_frames(df: pd.DataFrame, by: str | None) -> dict[str, pd.DataFrame]:
    """Header -> rows: 'Overall (N=..)' (all rows) and one per level of `by` (rows with missing `by` only in Overall)."""
    cols = {f"Overall (N={len(df)})": df}
    if by is not None:
        for lv in group_levels(df, by):
            part = df[df[by] == lv]
            cols[f"{lv} (N={len(part)})"] = part
    return cols


def _test(df: pd.DataFrame, var: str, kind: str, by: str) -> tuple[float, str]:
    """p-value and test name for one variable across the levels of `by` (missing values excluded)."""
    sub = df.loc[df[var].notna() & df[by].notna(), [var, by]]
    levels = group_levels(df, by)
    if kind == CONTINUOUS:
        groups = [sub.loc[sub[by] == lv, var].astype(float).to_numpy() for lv in levels]
        if len(groups) == 2:
            return wilcoxon_rank_sum(groups[0], groups[1])
        groups = [g for g in groups if len(g)]
        if len(groups) < 2 or len(np.unique(np.concatenate(groups))) < 2:
            return float("nan"), KRUSKAL
        return float(ss.kruskal(*groups).pvalue), KRUSKAL
    values = binary_codes(sub[var])[0] if kind == BINARY else sub[var].astype(str)
    tab = pd.crosstab(sub[by], values).reindex(index=levels, fill_value=0).to_numpy()
    if min(tab.shape) < 2 or (tab.sum(axis=0) > 0).sum() < 2:
        return float("nan"), FISHER
    return fisher_rxc(tab)


def _variable_rows(df: pd.DataFrame, var: str, kind: str, label: str, cols: dict) -> list[dict]:
    """Display rows of one variable: a label row (with the statistic for continuous/binary), level rows, a Missing row."""
    if kind not in KINDS:
        raise ValueError(f"kind of '{var}' must be one of {KINDS}, got '{kind}'")
    head = {"variable": var, "level": "", "Characteristic": label}
    rows = [head]
    if kind == CONTINUOUS:
        digits = guess_digits(df[var])
        head.update({h: summarise_continuous(part[var], digits) for h, part in cols.items()})
    elif kind == BINARY:
        for h, part in cols.items():
            codes = binary_codes(part[var])[0].dropna()
            head[h] = n_pct(int(codes.sum()), len(codes))
    else:
        head.update({h: "" for h in cols})
        for lv in _levels(df[var]):
            row = {"variable": var, "level": str(lv), "Characteristic": f"    {lv}"}
            for h, part in cols.items():
                row[h] = n_pct(int((part[var] == lv).sum()), int(part[var].notna().sum()))
            rows.append(row)
    if df[var].isna().any():
        miss = {"variable": var, "level": "Missing", "Characteristic": "    Missing"}
        miss.update({h: str(int(part[var].isna().sum())) for h, part in cols.items()})
        rows.append(miss)
    return rows


def table_one(df: pd.DataFrame, variables: dict[str, str], by: str | None = None,
              labels: dict[str, str] | None = None) -> pd.DataFrame:
    """gtsummary-style Table 1: one row per variable (plus level and Missing rows), Overall and per-`by` columns, p and test.

    Continuous: 'median (IQR Q1-Q3), range min-max' (quantiles: pandas linear = R type 7; gtsummary's
    documentation names type 2, its printed output has been reported to follow type 7). Binary:
    'n (%)' of True/1 on one row. Categorical: 'n (%)' per level. Percentages of non-missing values;
    a 'Missing' row (count) when any value is missing. With `by`: Wilcoxon rank-sum (2 groups; R's
    exact/asymptotic rule) or Kruskal-Wallis (> 2) for continuous, exact Fisher for binary and
    categorical; columns 'p-value' (formatted), 'p_value' (number), 'Test'. Rows with a missing
    `by` are counted in Overall only. Row order follows `variables`.
    """
    labels = labels or {}
    cols = _column_frames(df, by)
    rows = []
    for var, kind in variables.items():
        block = _variable_rows(df, var, kind, labels.get(var, var), cols)
        if by is not None:
            p, test = _test(df, var, kind, by)
            block[0].update({"p-value": format_p(p), "p_value": p, "Test": test})
        rows.extend(block)
    out = pd.DataFrame(rows, columns=["variable", "level", "Characteristic", *cols]
                       + (["p-value", "p_value", "Test"] if by is not None else []))
    text_cols = [c for c in out.columns if c != "p_value"]
    out[text_cols] = out[text_cols].fillna("")
    return out
