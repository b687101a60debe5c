"""Shared statistics: exact proportions, two-group comparisons, logistic models, odds ratios, ROC.

Every function returns plain numbers or a tidy DataFrame (one row per estimate) and emits no
warnings: numerical trouble (separation, non-convergence) is caught and recorded in the result.
The reference for each method is R as used by gtsummary (``binom.test``/``add_ci``, ``wilcox.test``,
``fisher.test``, ``glm``, ``logistf``, ``pROC``); deviations are stated in the docstrings.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import scipy.stats as ss
from scipy.stats.contingency import association
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from helpers.conditional_or import conditional_odds_ratio

CONTINUOUS, BINARY, CATEGORICAL = "continuous", "binary", "categorical"
KINDS = (CONTINUOUS, BINARY, CATEGORICAL)
EXACT_RXC_MAX_TABLES = 2_000_000
R_FISHER_REL_TOL = 1e-7  # fisher.test counts tables with p <= p_obs * (1 + 1e-7) as extreme
LOGISTIC_COLUMNS = ["term", "coef", "or", "ci_low", "ci_high", "p_value", "n", "events", "epv",
                    "method", "separation", "converged", "warning"]


# ---------------------------------------------------------------- proportions
def exact_ci(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson exact CI for k/n (statsmodels ``method='beta'``; R ``binom.test``, gtsummary ``add_ci(method='exact')``)."""
    _check_count(k, n)
    lo, hi = proportion_confint(k, n, alpha=1 - conf, method="beta")
    return float(lo), float(hi)


def proportion(k: int, n: int, label: str, conf: float = 0.95) -> dict:
    """Proportion k/n with its Clopper-Pearson exact CI and a printable '16/24 (66.7%, 95% CI 44.7-84.4)'."""
    lo, hi = exact_ci(k, n, conf)
    est = k / n
    text = f"{k}/{n} ({100 * est:.1f}%, {100 * conf:g}% CI {100 * lo:.1f}-{100 * hi:.1f})"
    return {"label": label, "k": int(k), "n": int(n), "estimate": est, "ci_low": lo, "ci_high": hi,
            "method": "Clopper-Pearson exact", "formatted": text}


def _check_count(k: int, n: int) -> None:
    """Refuse counts that cannot be a proportion, in the user's words."""
    if n <= 0 or k < 0 or k > n:
        raise ValueError(f"a proportion needs 0 <= k <= n and n > 0; got k={k}, n={n}")


# ---------------------------------------------------------------- continuous: Wilcoxon + Hodges-Lehmann
def wilcoxon_rank_sum(x0: np.ndarray, x1: np.ndarray) -> tuple[float, str]:
    """Two-sided Wilcoxon rank-sum p with R ``wilcox.test``'s rule: exact if no ties and both n < 50, else normal approx. with continuity correction."""
    x0, x1 = np.asarray(x0, float), np.asarray(x1, float)
    if len(x0) == 0 or len(x1) == 0:
        return float("nan"), "Wilcoxon rank-sum (not computed: empty group)"
    if _exact_wilcoxon(x0, x1):
        res = ss.mannwhitneyu(x1, x0, alternative="two-sided", method="exact")
        return float(res.pvalue), "Wilcoxon rank-sum (exact)"
    res = ss.mannwhitneyu(x1, x0, alternative="two-sided", method="asymptotic", use_continuity=True)
    return float(res.pvalue), "Wilcoxon rank-sum (normal approx., continuity corr.)"


def _exact_wilcoxon(x0: np.ndarray, x1: np.ndarray) -> bool:
    """R's choice of the exact null distribution: no ties in the pooled sample and both groups < 50."""
    pooled = np.concatenate([x0, x1])
    return len(np.unique(pooled)) == len(pooled) and len(x0) < 50 and len(x1) < 50


def _mann_whitney_null_counts(m: int, n: int) -> list[int]:
    """Number of arrangements giving U = 0..m*n under H0 (Gaussian binomial coefficient; R ``dwilcox`` times choose(m+n, m))."""
    poly = [1]
    for i in range(1, m + 1):  # prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), exact integer arithmetic
        degree = len(poly) - 1 + n
        poly = poly + [0] * (n + i)
        for k in range(len(poly) - 1, n + i - 1, -1):
            poly[k] -= poly[k - n - i]
        for k in range(i, len(poly)):
            poly[k] += poly[k - i]
        poly = poly[: degree + 1]
    return poly


def hodges_lehmann(x0: np.ndarray, x1: np.ndarray, conf: float = 0.95) -> tuple[float, float, float, str]:
    """Hodges-Lehmann shift (x1 - x0) with CI from order statistics of the pairwise differences (as R ``wilcox.test(conf.int=TRUE)``).

    Exact case (no ties, n < 50) follows R exactly: bounds ``diffs[qu]`` and ``diffs[mn - qu + 1]`` with
    ``qu = qwilcox(alpha/2, m, n)``. With ties the rank is taken from the normal approximation
    (Lehmann 1975; Hollander & Wolfe), whereas R root-finds on the tie-corrected statistic, so the
    bounds can differ slightly from R in that case.
    """
    x0, x1 = np.asarray(x0, float), np.asarray(x1, float)
    m, n, mn = len(x1), len(x0), len(x1) * len(x0)
    alpha = 1 - conf
    if _exact_wilcoxon(x0, x1):
        cdf = np.cumsum(_mann_whitney_null_counts(m, n)) / math.comb(m + n, m)
        qu = max(int(np.searchsorted(cdf, alpha / 2 - 1e-12)), 1)
        kind = "exact"
    else:
        z = ss.norm.ppf(1 - alpha / 2)
        qu = max(int(math.floor(mn / 2 - z * math.sqrt(mn * (m + n + 1) / 12))), 1)
        kind = "normal approx."
    middle = [(mn - 1) // 2, mn // 2]  # the median's order statistics (one when mn is odd)
    mid0, mid1, low, high = _difference_order_statistics(x1, x0, [*middle, qu - 1, mn - qu])
    return float(np.mean([mid0, mid1])), float(low), float(high), kind


def _difference_order_statistics(x1: np.ndarray, x0: np.ndarray, ranks: list[int]) -> np.ndarray:
    """The order statistics (0-based `ranks`) of the m x n differences x1_i - x0_j, without sorting them all.

    Rounded measurements repeat: when the distinct values make at most a quarter as many differences, those
    are sorted with their multiplicities (counts multiplied) and the ranks read off the cumulative counts;
    otherwise, up to SELECTED differences, the order statistics are taken from all of them by partition, and
    beyond it each is selected in the sorted matrix of differences (`_select_difference`) without forming
    them. The same values every way.
    """
    u1, c1 = np.unique(x1, return_counts=True)
    u0, c0 = np.unique(x0, return_counts=True)
    if 4 * len(u1) * len(u0) <= len(x1) * len(x0):
        diffs = np.subtract.outer(u1, u0).ravel()
        order = np.argsort(diffs, kind="stable")
        below = np.cumsum(np.multiply.outer(c1, c0).ravel()[order])  # differences up to each distinct one
        return diffs[order][np.searchsorted(below, np.asarray(ranks) + 1)]  # rank k: first with k + 1 at or below
    if len(x1) * len(x0) > SELECTED and np.isfinite(u1).all() and np.isfinite(u0).all():
        rows, columns = np.sort(x1), np.sort(x0)[::-1]
        return np.array([_select_difference(rows, columns, k) for k in ranks])
    diffs = np.subtract.outer(x1, x0).ravel()
    return np.partition(diffs, sorted(set(ranks)))[ranks]


SELECTED = 250_000  # differences beyond which an order statistic is selected, not partitioned out of all of them
PARTITIONED = 4096  # candidates left few enough to partition (`_select_difference`)


def _select_difference(rows: np.ndarray, columns: np.ndarray, rank: int) -> float:
    """The `rank`-th smallest (0-based) of the differences rows_i - columns_j, rows ascending and columns
    descending (finite): each row and each column of that matrix is non-decreasing, so it is selected in the
    sorted matrix (Johnson and Mizoguchi, SIAM J Comput 1978;7:147-153). Each row keeps the span of columns
    that may hold it; the weighted median of the rows' middle candidates cuts at least a quarter of what is
    left each round, until few enough are left to partition. Every candidate is computed as
    np.subtract.outer computes it, so the value is the one partitioning all m x n differences gives."""
    low = np.zeros(len(rows), dtype=np.int64)
    high = np.full(len(rows), len(columns), dtype=np.int64)
    while True:
        width = high - low
        left = int(width.sum())
        if left <= PARTITIONED:
            row = np.repeat(np.arange(len(rows)), width)
            column = np.arange(left) - np.repeat(np.cumsum(width) - width, width) + np.repeat(low, width)
            return float(np.partition(rows[row] - columns[column], rank - int(low.sum()))[rank - int(low.sum())])
        live = width > 0
        middles = rows[live] - columns[(low[live] + high[live] - 1) // 2]
        order = np.argsort(middles, kind="stable")
        weight = np.cumsum(width[live][order])
        pivot = middles[order][np.searchsorted(weight, weight[-1] / 2)]
        below, at_most = _row_prefix(rows, columns, pivot, True), _row_prefix(rows, columns, pivot, False)
        if below.sum() <= rank < at_most.sum():
            return float(pivot)
        if rank < below.sum():
            high = np.minimum(high, below)  # what is left lies below the pivot
        else:
            low = np.maximum(low, at_most)  # above it


def _row_prefix(rows: np.ndarray, columns: np.ndarray, value: float, strict: bool) -> np.ndarray:
    """Per row, how many of its differences are below `value` (strict) or at most it: a prefix of the row (it
    is non-decreasing), found by bisection in every row at once."""
    low = np.zeros(len(rows), dtype=np.int64)
    high = np.full(len(rows), len(columns), dtype=np.int64)
    while (open_ := low < high).any():
        middle = (low + high) // 2
        difference = rows - columns[np.minimum(middle, len(columns) - 1)]
        inside = open_ & ((difference < value) if strict else (difference <= value))
        low = np.where(inside, middle + 1, low)
        high = np.where(open_ & ~inside, middle, high)
    return low


# ---------------------------------------------------------------- contingency tables
def fisher_exact_rxc(table: np.ndarray) -> float:
    """Two-sided Fisher exact p for an r x c table by full enumeration of tables with the observed margins.

    Same definition as R ``fisher.test`` (sum of probabilities of tables no more probable than the
    observed one, relative tolerance 1e-7); 2 x 2 tables use scipy ``fisher_exact``. scipy's own r x c
    version is Monte Carlo by default, hence this exact enumeration.
    """
    t = np.asarray(table, dtype=np.int64)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.ndim != 2 or min(t.shape) < 2:
        return 1.0
    if t.shape == (2, 2):
        return float(ss.fisher_exact(t).pvalue)
    rows, cols = t.sum(axis=1), t.sum(axis=0)
    lf = np.array([math.lgamma(k + 1) for k in range(int(t.sum()) + 1)])
    const = lf[rows].sum() + lf[cols].sum() - lf[t.sum()]
    logps = np.array(list(_enumerate_table_logps(tuple(rows), tuple(cols), lf))) + const
    observed = const - lf[t].sum()
    extreme = logps <= observed + math.log1p(R_FISHER_REL_TOL)
    return float(min(1.0, np.exp(logps[extreme]).sum()))


def fisher_rxc(table: np.ndarray, n_resamples: int = 100_000, seed: int = 20200101) -> tuple[float, str]:
    """Fisher's exact p for an r x c table and the test's name: exact enumeration, or, when the table is too
    large to enumerate, a seeded Monte Carlo p (as R ``fisher.test(simulate.p.value = TRUE)``)."""
    t = np.asarray(table, dtype=np.int64)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    r = t.shape[0]
    # Upper bound on the tables to enumerate: compositions of each free column total into r parts.
    bound = math.prod(math.comb(int(c) + r - 1, r - 1) for c in t.sum(axis=0)[:-1]) if t.size else 0
    try:
        if bound <= 20 * EXACT_RXC_MAX_TABLES:
            return fisher_exact_rxc(t), "Fisher's exact"
    except ValueError:
        pass
    method = ss.PermutationMethod(n_resamples=n_resamples, rng=np.random.default_rng(seed))
    p = float(ss.fisher_exact(t, method=method).pvalue)
    return p, f"Fisher's exact (Monte Carlo, {n_resamples:,} resamples)"


def _enumerate_table_logps(rows: tuple, cols: tuple, lf: np.ndarray):
    """Yield -sum(log n_ij!) for every table with the given margins, filling one column at a time."""
    budget = [EXACT_RXC_MAX_TABLES]

    def walk(j: int, remaining: tuple, acc: float):
        """Fill column j from the remaining row totals; the last column is forced."""
        if j == len(cols) - 1:
            budget[0] -= 1
            if budget[0] < 0:
                raise ValueError("table too large for exact Fisher enumeration; use fewer levels")
            yield acc - lf[list(remaining)].sum()
            return
        for x in _compositions(cols[j], remaining):
            yield from walk(j + 1, tuple(r - v for r, v in zip(remaining, x)), acc - lf[list(x)].sum())

    yield from walk(0, rows, 0.0)


def _compositions(total: int, caps: tuple):
    """All vectors x with sum(x) == total and 0 <= x_i <= caps_i."""
    if len(caps) == 1:
        if total <= caps[0]:
            yield (total,)
        return
    rest = sum(caps[1:])
    for v in range(max(0, total - rest), min(caps[0], total) + 1):
        for tail in _compositions(total - v, caps[1:]):
            yield (v,) + tail


def fisher_or(table: np.ndarray, conf: float = 0.95) -> tuple[float, float, float, float]:
    """Conditional-MLE odds ratio, its exact CI and the two-sided Fisher p for a 2 x 2 table, as R ``fisher.test``."""
    t = np.asarray(table, dtype=np.int64)
    p = float(ss.fisher_exact(t).pvalue)
    if (t.sum(axis=0) == 0).any() or (t.sum(axis=1) == 0).any():
        return float("nan"), float("nan"), float("nan"), p
    return (*conditional_odds_ratio(t, conf), p)


# ---------------------------------------------------------------- two-group comparison
def binary_codes(s: pd.Series) -> tuple[pd.Series, tuple[str, str]]:
    """Code a two-valued column as 0/1 floats (NaN kept): True/1 or the later sorted label is 1; returns (codes, (label0, label1))."""
    vals = s.dropna()
    if pd.api.types.is_bool_dtype(s) or set(pd.unique(vals)) <= {0, 1, True, False}:
        return s.astype("Float64").astype(float), ("no", "yes")
    levels = sorted(map(str, pd.unique(vals)))
    if len(levels) != 2:
        raise ValueError(f"column '{s.name}' is not binary: levels {levels}")
    return s.map(lambda v: np.nan if pd.isna(v) else float(str(v) == levels[1])), (levels[0], levels[1])


def group_levels(df: pd.DataFrame, group: str) -> list:
    """Non-missing levels of a grouping column in deterministic order (categorical order, else sorted)."""
    col = df[group]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [c for c in col.cat.categories if (col == c).any()]
    return sorted(pd.unique(col.dropna()), key=lambda v: (str(type(v)), v))


def compare_two_groups(df: pd.DataFrame, variables: dict[str, str], group: str, test: bool = True) -> pd.DataFrame:
    """Compare variables between the two levels of `group` (group1 vs group0, sorted order); one tidy row per variable.

    Continuous: Wilcoxon rank-sum (R's exact/asymptotic rule) and Hodges-Lehmann shift group1 - group0
    with CI. Binary: Fisher exact and conditional-MLE odds ratio (odds in group1 / odds in group0)
    with exact CI, as R ``fisher.test``. Categorical: exact r x c Fisher and Cramer's V (no CI).
    BH-adjusted p across the rows (``p_adj_bh``). Rows with a missing value are dropped per variable.
    `test=False` gives the group summaries only (effect, test and p blank): variables that are described,
    not tested, pay for no test.
    """
    levels = group_levels(df, group)
    if len(levels) != 2:
        raise ValueError(f"'{group}' must have exactly two non-missing levels, found {levels}")
    rows = [_compare_one(df, var, kind, group, levels, test) for var, kind in variables.items()]
    out = pd.DataFrame(rows)
    out["p_adj_bh"] = bh_adjust(out["p_value"]).to_numpy()
    return out


def _compare_one(df: pd.DataFrame, var: str, kind: str, group: str, levels: list, tested: bool = True) -> dict:
    """One row of compare_two_groups for one variable (its summaries only, effect and p blank, when not `tested`)."""
    if kind not in KINDS:
        raise ValueError(f"kind of '{var}' must be one of {KINDS}, got '{kind}'")
    sub = df.loc[df[var].notna() & df[group].notna(), [var, group]]
    g0, g1 = (sub.loc[sub[group] == lv, var] for lv in levels)
    row = {"variable": var, "n_group0": len(g0), "n_group1": len(g1), **_summaries(sub, g0, g1, var, kind)}
    if not tested:
        return {**row, "effect": np.nan, "effect_ci_low": np.nan, "effect_ci_high": np.nan, "effect_measure": "",
                "test": "", "p_value": np.nan}
    if kind == CONTINUOUS:
        x0, x1 = g0.astype(float).to_numpy(), g1.astype(float).to_numpy()
        p, test = wilcoxon_rank_sum(x0, x1)
        est, lo, hi, ci_kind = hodges_lehmann(x0, x1) if len(x0) and len(x1) else (np.nan,) * 3 + ("",)
        row.update(effect=est, effect_ci_low=lo, effect_ci_high=hi,
                   effect_measure=f"Hodges-Lehmann shift ({levels[1]} - {levels[0]}), {ci_kind} CI")
    elif kind == BINARY:
        codes, _ = binary_codes(sub[var])
        tab = pd.crosstab(sub[group], codes).reindex(index=levels[::-1], columns=[1.0, 0.0], fill_value=0)
        est, lo, hi, p = fisher_or(tab.to_numpy())
        test = "Fisher's exact"
        row.update(effect=est, effect_ci_low=lo, effect_ci_high=hi,
                   effect_measure=f"odds ratio ({levels[1]} vs {levels[0]}), conditional MLE, exact CI")
    else:
        tab = pd.crosstab(sub[group], sub[var].astype(str)).reindex(index=levels, fill_value=0)
        p, test = fisher_rxc(tab.to_numpy())
        v = float(association(tab.to_numpy(), method="cramer")) if min(tab.shape) > 1 else np.nan
        row.update(effect=v, effect_ci_low=np.nan, effect_ci_high=np.nan, effect_measure="Cramer's V")
    row.update(test=test, p_value=p)
    return row


def _summaries(sub: pd.DataFrame, g0: pd.Series, g1: pd.Series, var: str, kind: str) -> dict:
    """summary_group0 and summary_group1 of one variable, as the tested rows of compare_two_groups show them."""
    if kind == CONTINUOUS:
        s0, s1 = (_median_iqr(g.astype(float).to_numpy()) for g in (g0, g1))
    elif kind == BINARY:
        codes, _ = binary_codes(sub[var])
        s0, s1 = _n_pct(codes[g0.index]), _n_pct(codes[g1.index])
    else:
        s0, s1 = _level_counts(g0), _level_counts(g1)
    return {"summary_group0": s0, "summary_group1": s1}


def _median_iqr(x: np.ndarray) -> str:
    """'median (Q1-Q3)' with linear quantiles (R type 7)."""
    if len(x) == 0:
        return ""
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    return f"{med:.3g} ({q1:.3g}-{q3:.3g})"


def _n_pct(codes: pd.Series) -> str:
    """'k/n (pct%)' of the 1-coded level."""
    n, k = len(codes), int(codes.sum())
    return f"{k}/{n} ({100 * k / n:.1f}%)" if n else ""


def _level_counts(s: pd.Series) -> str:
    """'level: n; ...' over the sorted levels of a categorical series."""
    counts = s.astype(str).value_counts().sort_index()
    return "; ".join(f"{lv}: {c}" for lv, c in counts.items())


def bh_adjust(p: pd.Series) -> pd.Series:
    """Benjamini-Hochberg adjusted p (statsmodels ``fdr_bh``; R ``p.adjust(method='BH')``); NaN stay NaN and are not counted."""
    p = pd.Series(p, dtype=float)
    out = pd.Series(np.nan, index=p.index, dtype=float)
    ok = p.notna()
    if ok.any():
        out[ok] = multipletests(p[ok].to_numpy(), method="fdr_bh")[1]
    return out


# ---------------------------------------------------------------- logistic regression
def design_matrix(df: pd.DataFrame, outcome: str, covariates: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Complete-case design (no intercept) and 0/1 outcome; booleans -> 0/1, text -> treatment dummies 'col[T.level]' vs first sorted level."""
    sub = df[[outcome, *covariates]].dropna()
    y, _ = binary_codes(sub[outcome])
    parts = []
    for c in covariates:
        col = sub[c]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            parts.append(col.astype("Float64").astype(float).rename(c))
        else:
            levels = sorted(map(str, pd.unique(col)))
            for lv in levels[1:]:
                parts.append((col.astype(str) == lv).astype(float).rename(f"{c}[T.{lv}]"))
    X = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=sub.index)
    _check_full_rank(X, y.to_numpy())
    return X, y.to_numpy()


def _check_full_rank(X: pd.DataFrame, y: np.ndarray) -> None:
    """Refuse designs a logistic model cannot estimate: one outcome class, constant or collinear covariates."""
    if len(np.unique(y)) < 2:
        raise ValueError(f"the outcome has a single value in the {len(y)} complete cases; no model can be fitted")
    design = np.column_stack([np.ones(len(X)), X.to_numpy(float)])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        constant = [c for c in X.columns if X[c].nunique() < 2]
        raise ValueError(f"covariates are constant or collinear in the complete cases (constant: {constant})")


def _model_frame(X: pd.DataFrame, y: np.ndarray, method: str) -> pd.DataFrame:
    """Tidy skeleton with n, events and events per variable (min(events, non-events) / parameters, Peduzzi 1996)."""
    events = int(y.sum())
    epv = min(events, len(y) - events) / max(X.shape[1], 1)
    return pd.DataFrame({"term": list(X.columns), "n": len(y), "events": events, "epv": epv, "method": method})


def _separation(X: pd.DataFrame, y: np.ndarray) -> bool:
    """Ordinary-ML (quasi-)complete separation by the linear-programming check of Konis 2007 (R ``detectseparation``)."""
    from firthmodels import detect_separation  # with scikit-learn, 0.3 s of import: only where a model is fitted

    return bool(detect_separation(X.to_numpy(float), y).separation)


def _epv_note(epv: float) -> str:
    """Flag fewer than 10 events per variable (Peduzzi 1996)."""
    return f"EPV {epv:.1f} < 10" if epv < 10 else ""


def _join(*msgs: str) -> str:
    """Join non-empty messages, de-duplicated, in order."""
    return "; ".join(dict.fromkeys(m for m in msgs if m))


def fit_firth(X: pd.DataFrame, y: np.ndarray, conf: float = 0.95) -> tuple[pd.DataFrame, bool, str]:
    """Firth logistic fit: coefficients, profile-likelihood CIs and penalised LR p (as R ``logistf``); returns (coef table, converged, messages).

    Covariates are centred and scaled before fitting and the estimates scaled back (the penalised
    likelihood is invariant to this; LR p-values are unchanged). Without it, a covariate on a
    0-100 scale leaves the gradient unable to reach a tight tolerance and step-halving fails.
    """
    from firthmodels import FirthLogisticRegression

    k = X.shape[1]
    centre, scale = X.mean(), X.std(ddof=0).replace(0, 1.0)
    model = FirthLogisticRegression(max_iter=200, gtol=1e-7, xtol=1e-7)  # tighter than logistf (1e-5, 1e-4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(((X - centre) / scale).to_numpy(float), y)
            model.lrt()
            ci = model.conf_int(alpha=1 - conf, method="pl", max_iter=100, tol=1e-8)
        except (np.linalg.LinAlgError, ValueError) as err:
            nan = pd.DataFrame(np.nan, index=range(k), columns=["coef", "ci_low", "ci_high", "p_value"])
            return nan, False, f"Firth fit failed: {err}"
    s = scale.to_numpy(float)
    coef = pd.DataFrame({"coef": model.coef_[:k] / s, "ci_low": ci[:k, 0] / s, "ci_high": ci[:k, 1] / s,
                         "p_value": model.lrt_pvalues_[:k]})
    return coef, bool(model.converged_), _join(*(str(w.message) for w in caught))


def firth_logistic_table(df: pd.DataFrame, outcome: str, covariates: list[str]) -> pd.DataFrame:
    """Firth penalised logistic regression (Firth 1993; Heinze & Schemper 2002) via firthmodels: ORs, profile CIs, penalised LR p; intercept omitted."""
    X, y = design_matrix(df, outcome, covariates)
    out = _model_frame(X, y, "Firth")
    coef, converged, msg = fit_firth(X, y)
    out[["coef", "ci_low", "ci_high", "p_value"]] = coef.to_numpy()
    out["or"] = np.exp(out["coef"])
    out[["ci_low", "ci_high"]] = np.exp(out[["ci_low", "ci_high"]])
    out["separation"] = _separation(X, y)
    out["converged"] = converged
    out["warning"] = _join(msg, _epv_note(out["epv"].iat[0]))
    return out[LOGISTIC_COLUMNS]


def ml_logistic_table(df: pd.DataFrame, outcome: str, covariates: list[str]) -> pd.DataFrame:
    """Ordinary maximum-likelihood logistic regression (statsmodels Logit = R ``glm``), Wald CIs and Wald p; NaN estimates when it fails.

    Separation (LP check) or any statsmodels warning/error (PerfectSeparationWarning, ConvergenceWarning,
    singular Hessian) marks the fit ``converged=False`` with the message in ``warning`` instead of stderr.
    """
    X, y = design_matrix(df, outcome, covariates)
    out = _model_frame(X, y, "ML")
    separated = _separation(X, y)
    est = np.full((X.shape[1], 4), np.nan)
    converged, msg = False, "ordinary ML estimates do not exist: (quasi-)complete separation" if separated else ""
    if not separated:
        est, converged, msg = _fit_ml(X, y)
    out[["coef", "ci_low", "ci_high", "p_value"]] = est
    out["or"] = np.exp(out["coef"])
    out[["ci_low", "ci_high"]] = np.exp(out[["ci_low", "ci_high"]])
    out["separation"], out["converged"] = separated, converged
    out["warning"] = _join(msg, _epv_note(out["epv"].iat[0]))
    return out[LOGISTIC_COLUMNS]


def _fit_ml(X: pd.DataFrame, y: np.ndarray) -> tuple[np.ndarray, bool, str]:
    """Fit statsmodels Logit catching every warning/error; returns ([coef, lo, hi, p] per term, converged, message)."""
    nan = np.full((X.shape[1], 4), np.nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            from statsmodels.discrete.discrete_model import Logit  # not statsmodels.api: 0.6 s less per kernel
            from statsmodels.tools.tools import add_constant

            res = Logit(y, add_constant(X.to_numpy(float), has_constant="add")).fit(disp=0, maxiter=100)
        except (np.linalg.LinAlgError, ValueError) as err:
            return nan, False, f"ML fit failed: {err}"
    msg = _join(*(f"{type(w.message).__name__}: {w.message}" for w in caught))
    if caught or not res.mle_retvals.get("converged", False):
        return nan, False, msg or "ML fit did not converge"
    ci = res.conf_int()
    return np.column_stack([res.params, ci[:, 0], ci[:, 1], res.pvalues])[1:], True, ""


def univariable_logistic(df: pd.DataFrame, outcome: str, covariates: list[str], method: str = "firth") -> pd.DataFrame:
    """One logistic model per covariate (each on its own complete cases), stacked; method 'firth' or 'ml'."""
    fitters = {"firth": firth_logistic_table, "ml": ml_logistic_table}
    if method not in fitters:
        raise ValueError(f"method must be 'firth' or 'ml', got '{method}'")
    tables = [fitters[method](df, outcome, [c]) for c in covariates]
    return pd.concat(tables, ignore_index=True)


# ---------------------------------------------------------------- odds ratios for the forest plot
def odds_ratio_table(df: pd.DataFrame, outcome: str, factors: dict[str, str]) -> pd.DataFrame:
    """Per-factor OR for `outcome` (exposed vs unexposed): conditional MLE with exact CI and Fisher p, as R ``fisher.test``.

    factors maps column -> 'binary' (exposed = True/1/later sorted label) or 'continuous' (exposed =
    value > median, said in ``level_desc``). When a cell is zero the conditional MLE is 0 or infinite,
    so the Firth penalised OR with profile-likelihood CI is reported instead (``method`` says so);
    the Fisher p is kept in both cases.
    """
    return pd.DataFrame([_or_row(df, outcome, f, kind) for f, kind in factors.items()])


def _exposure(s: pd.Series, kind: str) -> tuple[pd.Series, str]:
    """0/1 exposure and its description: binary as coded by binary_codes, continuous split above the median."""
    if kind == BINARY:
        codes, (lab0, lab1) = binary_codes(s)
        return codes, f"{lab1} vs {lab0}"
    if kind == CONTINUOUS:
        med = float(s.median())
        return s.map(lambda v: np.nan if pd.isna(v) else float(v > med)), f"> median ({med:.4g}) vs <= median"
    raise ValueError(f"factor '{s.name}' must be 'binary' or 'continuous', got '{kind}'")


def _or_row(df: pd.DataFrame, outcome: str, factor: str, kind: str) -> dict:
    """One row of odds_ratio_table."""
    sub = df[[outcome, factor]].dropna()
    y, _ = binary_codes(sub[outcome])
    x, desc = _exposure(sub[factor], kind)
    a, n1 = int(y[x == 1].sum()), int((x == 1).sum())
    c, n0 = int(y[x == 0].sum()), int((x == 0).sum())
    table = np.array([[a, n1 - a], [c, n0 - c]])
    est, lo, hi, p = fisher_or(table)
    method = "conditional MLE OR, exact CI; Fisher's exact p"
    if (table == 0).any() and n1 and n0:
        coef, _, msg = fit_firth(pd.DataFrame({factor: x.to_numpy()}), y.to_numpy())
        est, lo, hi = np.exp(coef[["coef", "ci_low", "ci_high"]].to_numpy()[0])
        method = _join("zero cell: Firth penalised OR, profile-likelihood CI; Fisher's exact p", msg)
    return {"factor": factor, "level_desc": desc, "n": len(sub), "events_exposed": a, "n_exposed": n1,
            "events_unexposed": c, "n_unexposed": n0, "or": float(est), "ci_low": float(lo),
            "ci_high": float(hi), "p_value": p, "method": method}


# ---------------------------------------------------------------- ROC
BOOT_CHUNK = 256  # resamples scored at once by roc_auc (bounds memory at ~ chunk x distinct scores)


def roc_auc(y, score, n_boot: int = 2000, seed: int = 20200101) -> dict:
    """AUC of `score` for binary `y` (higher score = event, fixed in advance) with stratified percentile-bootstrap CI and Youden cut-off.

    AUC: sklearn ``roc_auc_score`` (= Mann-Whitney concordance, ties count 1/2). CI: 2.5/97.5
    percentiles over `n_boot` resamples drawn separately within events and non-events (as pROC's
    stratified bootstrap). Cut-off: maximises Youden J = sens + spec - 1 over midpoints between
    adjacent distinct scores (pROC convention), ties to the lower cut-off; positive if score > cut-off.
    Optimism (Harrell 1996 bootstrap): the AUC of a pre-specified score has no fitted part, so what
    is corrected is the data-chosen cut-off: in each resample the cut-off is re-chosen, and the mean of
    its balanced accuracy (sens + spec)/2 in the resample minus that in the original data is subtracted
    from the apparent balanced accuracy ('cutoff_auc', the AUC of the dichotomised rule).
    Resamples are scored together from counts per distinct score (`_boot_scores`), O(n_boot x n).
    """
    from sklearn.metrics import roc_auc_score

    y = pd.Series(y).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    s = pd.Series(score).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    keep = ~(np.isnan(y) | np.isnan(s))
    y, s = y[keep].astype(int), s[keep]
    if y.min() == y.max():
        raise ValueError("roc_auc needs both events and non-events")
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    cut, sens, spec = _youden(y, s)
    rng = np.random.default_rng(seed)  # same stream as one resample at a time: events, then non-events
    draws = [(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(n_boot)]
    aucs, optimism = np.empty(n_boot), np.empty(n_boot)
    for start in range(0, n_boot, BOOT_CHUNK):
        part = draws[start:start + BOOT_CHUNK]
        ip, ineg = np.array([d[0] for d in part]), np.array([d[1] for d in part])
        aucs[start:start + len(part)], optimism[start:start + len(part)] = _boot_scores(y, s, ip, ineg)
    apparent = (sens + spec) / 2
    return {"auc": float(roc_auc_score(y, s)), "ci_low": float(np.quantile(aucs, 0.025)),
            "ci_high": float(np.quantile(aucs, 0.975)), "n": int(len(y)), "events": int(y.sum()),
            "cutoff": cut, "sensitivity": sens, "specificity": spec, "youden_j": sens + spec - 1,
            "cutoff_auc_apparent": apparent, "optimism": float(optimism.mean()),
            "cutoff_auc_corrected": apparent - float(optimism.mean()), "n_boot": n_boot, "seed": seed,
            "method": "AUC (Mann-Whitney); stratified percentile bootstrap CI; Youden cut-off; "
                      "Harrell optimism of the cut-off rule"}


def _score_counts(levels: np.ndarray, n_levels: int) -> np.ndarray:
    """Rows of `levels` (resamples x draws of distinct-score indices) -> counts per distinct score."""
    rows = np.arange(levels.shape[0])[:, None] * n_levels
    return np.bincount((rows + levels).ravel(), minlength=levels.shape[0] * n_levels).reshape(-1, n_levels)


def _boot_scores(y: np.ndarray, s: np.ndarray, ipos: np.ndarray, ineg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample (rows of event / non-event indices): AUC, and optimism of its re-chosen Youden cut-off.

    Same numbers as `_concordance`, `_youden` and `_sens_spec` on each resample (exact counts): with
    counts per distinct score u_0 < u_1 < ..., the cut between present scores u_i and the next present
    u_k calls positive exactly the scores > u_i, so sens, spec and J follow from cumulative counts.
    """
    u = np.unique(s)
    lev = np.searchsorted(u, s)
    cp, cn = _score_counts(lev[ipos], len(u)), _score_counts(lev[ineg], len(u))
    n1, n0 = ipos.shape[1], ineg.shape[1]
    below_n = np.cumsum(cn, axis=1) - cn  # non-events strictly below each score
    aucs = (cp * below_n + 0.5 * cp * cn).sum(axis=1) / (n1 * n0)
    le_p, le_n = np.cumsum(cp, axis=1), np.cumsum(cn, axis=1)  # counts <= each score
    sens, spec = (n1 - le_p) / n1, le_n / n0
    present = (cp + cn) > 0
    last = len(u) - 1 - np.argmax(present[:, ::-1], axis=1)  # highest present score: not a cut
    cand = present & (np.arange(len(u))[None, :] < last[:, None])
    j = np.where(cand, np.round(sens + spec, 12), -np.inf)
    single = ~cand.any(axis=1)  # one distinct score: the cut is that score, nobody positive
    best = np.where(single, last, np.argmax(j, axis=1))  # first maximum = lowest cut-off
    r = np.arange(len(best))
    nxt = np.where(single, best, _next_present(present, best))
    cut_b = np.where(single, u[best], (u[best] + u[nxt]) / 2)
    se_b, sp_b = np.where(single, 0.0, sens[r, best]), np.where(single, 1.0, spec[r, best])
    sp_sorted, sn_sorted = np.sort(s[y == 1]), np.sort(s[y == 0])
    se_o = (len(sp_sorted) - np.searchsorted(sp_sorted, cut_b, side="right")) / len(sp_sorted)
    sp_o = np.searchsorted(sn_sorted, cut_b, side="right") / len(sn_sorted)
    return aucs, (se_b + sp_b) / 2 - (se_o + sp_o) / 2


def _next_present(present: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per row, the index of the first present score after `at` (the row's last present one if none)."""
    after = present & (np.arange(present.shape[1])[None, :] > at[:, None])
    return np.where(after.any(axis=1), np.argmax(after, axis=1), at)


def _concordance(y: np.ndarray, s: np.ndarray) -> float:
    """P(score_event > score_non-event) + 0.5 P(tie): the AUC by counting pairs."""
    d = np.subtract.outer(s[y == 1], s[y == 0])
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size)


def _sens_spec(y: np.ndarray, s: np.ndarray, cut: float) -> tuple[float, float]:
    """Sensitivity and specificity of the rule 'score > cut'."""
    pred = s > cut
    return float(pred[y == 1].mean()), float((~pred[y == 0]).mean())


def _youden(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """Cut-off (midpoint between adjacent distinct scores) maximising sens + spec; ties -> lowest cut-off."""
    u = np.unique(s)
    cuts = (u[:-1] + u[1:]) / 2 if len(u) > 1 else u
    best = max(((*_sens_spec(y, s, c), c) for c in cuts), key=lambda t: (round(t[0] + t[1], 12), -t[2]))
    return float(best[2]), best[0], best[1]
