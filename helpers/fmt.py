"""Single values as a clinical report prints them: p-values, estimates with CIs, counts, medians, months.

Every number a reader sees goes through this module, so the whole book follows one style (close to
gtsummary's `theme_gtsummary_journal("jama")`): p-values with two significant digits, "<0.001" and
">0.99"; "HR 0.27 (0.09-0.80)" with an en dash; "16/24 (66.7%)"; thousands separators; never
e-notation, `nan`, `inf`, True or False. An estimate that does not exist is "not estimable", an
unreached median "not reached", and a value that is absent is an em dash.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

MISSING = "\u2014"          # em dash: no value
DASH = "\u2013"             # en dash between CI bounds
NOT_ESTIMABLE = "not estimable"
NOT_REACHED = "not reached"
DAYS_PER_MONTH = 365.25 / 12


def is_finite(x: object) -> bool:
    """True for a real, finite number (not None, NaN, pd.NA or +/-inf)."""
    try:
        return x is not None and math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def finite_values(values: Iterable[object]) -> np.ndarray:
    """The real, finite numbers among `values` (those `is_finite` accepts), as floats, in order; a numeric
    array or Series is filtered at once (a 5,000-patient column is not tested value by value)."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        v = np.asarray(values, dtype=float)
        return v[np.isfinite(v)]
    return np.asarray([float(x) for x in values if is_finite(x)])


def number(x: object, digits: int = 1, missing: str = MISSING) -> str:
    """Fixed decimals with thousands separators; infinities are 'not estimable', absent values `missing`."""
    if x is None or (not isinstance(x, str) and _isna(x)):
        return missing
    if not is_finite(x):
        return NOT_ESTIMABLE
    value = round(float(x), digits)
    return f"{0.0 if value == 0 else value:,.{digits}f}"


def integer(x: object, missing: str = MISSING) -> str:
    """A count: '1,263'."""
    return number(x, 0, missing)


def _isna(x: object) -> bool:
    try:
        return bool(np.isnan(float(x)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return x is None or str(x) in ("<NA>", "NaT")


def p_value(p: object, missing: str = MISSING) -> str:
    """A p-value with two significant digits; '<0.001' and '>0.99' at the ends (JAMA style)."""
    if not is_finite(p) or float(p) < 0:  # type: ignore[arg-type]
        return missing
    p = float(p)  # type: ignore[arg-type]
    if p < 0.001:
        return "<0.001"
    if p > 0.99:
        return ">0.99"
    rounded = float(f"{p:.2g}")
    decimals = min(3, max(2, 1 - math.floor(math.log10(rounded))))  # 0.001-0.009: three decimals
    return f"{rounded:.{decimals}f}"


def ci(lo: object, hi: object, digits: int = 2) -> str:
    """'0.09-0.80' (en dash); ' to ' when a bound is negative; an undefined bound is 'not estimable'."""
    a, b = number(lo, digits, NOT_ESTIMABLE), number(hi, digits, NOT_ESTIMABLE)
    negative = any(is_finite(v) and float(v) < 0 for v in (lo, hi))  # type: ignore[arg-type]
    sep = " to " if negative or NOT_ESTIMABLE in (a, b) else DASH
    return f"{a}{sep}{b}"


def est_ci(est: object, lo: object, hi: object, digits: int = 2, prefix: str = "") -> str:
    """'HR 0.27 (0.09-0.80)' (with `prefix='HR '`); 'not estimable' when the estimate is not a finite number."""
    if not is_finite(est):
        return NOT_ESTIMABLE
    return f"{prefix}{number(est, digits)} ({ci(lo, hi, digits)})"


def pct(x: object, digits: int = 1) -> str:
    """A proportion (0-1) as a percentage: '66.7%'."""
    return MISSING if not is_finite(x) else f"{100 * float(x):.{digits}f}%"  # type: ignore[arg-type]


def count_pct(k: int, n: int, digits: int = 1) -> str:
    """'16/24 (66.7%)'; '0/0' when there is no denominator."""
    return f"{int(k)}/{int(n)} ({100 * k / n:.{digits}f}%)" if n else f"{int(k)}/{int(n)}"


def n_pct(k: int, n: int, digits: int = 1) -> str:
    """'16 (66.7%)' as gtsummary prints a categorical level; an em dash when there is no denominator."""
    return f"{int(k)} ({100 * k / n:.{digits}f}%)" if n else MISSING


def prop_ci(k: int, n: int, lo: float, hi: float, digits: int = 1) -> str:
    """'16/24 (66.7%; 95% CI 44.7-84.4)' for a proportion with its interval (bounds 0-1)."""
    if not n:
        return f"{int(k)}/{int(n)}"
    return (f"{int(k)}/{int(n)} ({100 * k / n:.{digits}f}%; 95% CI "
            f"{ci(100 * lo, 100 * hi, digits)})")


def guess_digits(values: Iterable[float]) -> int:
    """Decimals for a continuous variable: 0 for whole numbers or |median| >= 100, 1 if >= 1, else 2."""
    v = finite_values(values)
    if v.size == 0 or np.all(v == np.round(v)):
        return 0
    med = abs(float(np.median(v)))
    return 0 if med >= 100 else 1 if med >= 1 else 2


def median_iqr(values: Iterable[float], digits: int | None = None) -> str:
    """'35 (20, 50)': median (Q1, Q3) with R type-7 quantiles, as gtsummary's default continuous statistic."""
    v = finite_values(values)
    if v.size == 0:
        return MISSING
    d = guess_digits(v) if digits is None else digits
    q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    return f"{number(med, d)} ({number(q1, d)}, {number(q3, d)})"


def median_range(values: Iterable[float], digits: int | None = None) -> str:
    """'35 (18-70)': median (minimum-maximum)."""
    v = finite_values(values)
    if v.size == 0:
        return MISSING
    d = guess_digits(v) if digits is None else digits
    return f"{number(np.median(v), d)} ({ci(v.min(), v.max(), d)})"


def months(days: object, digits: int = 1) -> str:
    """Days as months (365.25/12 days each): '12.3'; an infinite time (unreached median) is 'not reached'."""
    if is_finite(days):
        return number(float(days) / DAYS_PER_MONTH, digits)  # type: ignore[arg-type]
    return NOT_REACHED if days is not None and not _isna(days) else MISSING


def months_ci(est: object, lo: object, hi: object, digits: int = 1) -> str:
    """A median survival time with its CI in months: '12.3 (6.1 to not reached)'; 'not reached' when unreached."""
    if not is_finite(est):
        return NOT_REACHED if est is not None and not _isna(est) else NOT_ESTIMABLE
    lo_txt = months(lo, digits) if is_finite(lo) else NOT_ESTIMABLE
    hi_txt = months(hi, digits) if is_finite(hi) else (NOT_REACHED if hi is not None and not _isna(hi)
                                                       else NOT_ESTIMABLE)
    sep = DASH if is_finite(lo) and is_finite(hi) else " to "
    return f"{months(est, digits)} ({lo_txt}{sep}{hi_txt})"


def join_words(items: Iterable[str], last: str = "and") -> str:
    """'a, b and c' (Oxford-comma free, as British clinical journals print it)."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 patient', '3 patients' (with a thousands separator)."""
    return f"{integer(n)} {word if int(n) == 1 else (many or word + 's')}"
