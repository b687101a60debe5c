"""Survival analysis: Kaplan-Meier, log-rank, Cox (standard, Firth, time-varying), landmark and
competing risks, returning tidy tables that equal R's survival package (tests/r_reference/).

Conventions (every table says which it used):
- Kaplan-Meier CIs are log-log ("exponential Greenwood", lifelines' default); R's `survfit`
  default is `conf.type="log"`, so R matches only with `conf.type="log-log"`.
- Medians and their CI limits follow R's `quantile.survfit` (a flat stretch at exactly 0.5 gives the
  midpoint); an unreached median or CI limit is reported as `inf`.
- Cox models use Efron's tie handling (R `coxph` default); Firth models use Breslow's (firthmodels,
  R `coxphf`).
- Warnings from fitting (lifelines ConvergenceWarning and others) never reach stderr: they are
  caught and written into the `warning` column, with `converged=False` when the fit failed.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

Z95 = stats.norm.ppf(0.975)
KM_CI_METHOD = "log-log (exponential Greenwood); R survfit conf.type='log-log'"
KM_LOG_CI_METHOD = "log (Greenwood, R survfit default conf.type='log')"
EPV_MIN = 10.0
# lifelines Newton-Raphson: a tight tolerance so coefficients equal R coxph to 1e-6 (1e-10 stops ~2e-6 short)
FIT_OPTIONS = {"precision": 1e-14, "max_steps": 500}
_TOL = math.sqrt(np.finfo(float).eps)  # R quantile.survfit tolerance


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

def _check_columns(df: pd.DataFrame, *columns: str | None) -> None:
    """Raise a KeyError naming every requested column that the table lacks."""
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not found; the table has {list(df.columns)}")


def _time_event(df: pd.DataFrame, duration: str, event: str, only: bool = False) -> pd.DataFrame:
    """Rows with a known duration and event, as float time and int event (0/1); with `only`, just those two
    columns (a curve needs no other: the patient table's sixty are not copied for each one)."""
    _check_columns(df, duration, event)
    if only:
        df = df[list(dict.fromkeys([duration, event]))]
    out = df.loc[df[duration].notna() & df[event].notna()].copy()
    out[duration] = out[duration].astype(float)
    out[event] = out[event].astype(float).astype(int)
    bad = ~out[event].isin([0, 1])
    if bad.any():
        raise ValueError(f"column '{event}' must be 0 (censored) or 1 (event); found {sorted(out[event][bad].unique())}")
    return out


# --------------------------------------------------------------------------------------------
# Kaplan-Meier
# --------------------------------------------------------------------------------------------

def km_curve(df: pd.DataFrame, duration: str, event: str, conf: float = 0.95,
             conf_type: str = "log-log") -> pd.DataFrame:
    """The Kaplan-Meier step table at every observed time (lifelines KaplanMeierFitter).

    Columns time, n_risk, n_event, n_censor, surv, std_err (Greenwood SE of the cumulative hazard,
    R's `std.err`), ci_low, ci_high. `conf_type` "log-log" (default; lifelines) or "log" (R's
    default, exp(log S -/+ z se), upper limit capped at 1). As in R, the log-log CI is NaN where
    surv is 0 or 1 and the log CI NaN where surv is 0 (undefined there).
    """
    if conf_type not in ("log-log", "log"):
        raise ValueError(f"conf_type must be 'log-log' or 'log', not {conf_type!r}")
    from lifelines import KaplanMeierFitter

    d = _time_event(df, duration, event, only=True)
    kmf = KaplanMeierFitter(alpha=1 - conf).fit(d[duration], d[event])
    tab = kmf.event_table
    tab = tab[tab["removed"] > 0]
    surv = kmf.survival_function_.iloc[:, 0].reindex(tab.index).to_numpy()
    n, dth = tab["at_risk"].to_numpy(float), tab["observed"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        std_err = np.sqrt(np.cumsum(np.where(dth > 0, dth / (n * (n - dth)), 0.0)))
        z = stats.norm.ppf(1 - (1 - conf) / 2)
        log_s = np.log(surv)
        if conf_type == "log":
            lo, hi = surv * np.exp(-z * std_err), np.minimum(surv * np.exp(z * std_err), 1.0)
            degenerate = surv <= 0
        else:
            lo = np.exp(-np.exp(np.log(-log_s) - z * std_err / log_s))
            hi = np.exp(-np.exp(np.log(-log_s) + z * std_err / log_s))
            degenerate = (surv <= 0) | (surv >= 1)
    return pd.DataFrame({
        "time": tab.index.to_numpy(float), "n_risk": n.astype(int), "n_event": dth.astype(int),
        "n_censor": tab["censored"].to_numpy(int), "surv": surv, "std_err": std_err,
        "ci_low": np.where(degenerate, np.nan, lo), "ci_high": np.where(degenerate, np.nan, hi),
    })


def _r_quantile(time: np.ndarray, surv: np.ndarray, p: float = 0.5) -> float:
    """Time where a survival curve reaches 1 - p, by R's survival:::findq; inf if not reached.

    The curve starts at (0, 1). Where it is flat at exactly 1 - p the answer is the midpoint of
    that stretch (the last observed time if the curve ends there). NaN points are dropped, as R's
    approx() does.
    """
    x = np.concatenate([[0.0], time])
    y = np.concatenate([[0.0], 1.0 - surv])
    xmax = x[-1]
    ok = ~np.isnan(y)
    last_y = y[-1]
    x, y = x[ok], y[ok]
    if y.size == 0 or y.max() < p:
        return math.inf
    _, first = np.unique(y, return_index=True)  # R: drop duplicated y, keep the first
    keep = np.sort(first)
    x, y = x[keep], y[keep]
    i1 = np.flatnonzero(y >= p - _TOL)
    i2 = np.flatnonzero(y >= p + _TOL)
    if i1.size == 0:
        return math.inf
    if not np.isnan(last_y) and abs(p - last_y) < _TOL:
        return float((x[i1[0]] + xmax) / 2)
    if i2.size == 0:
        return math.inf
    return float((x[i1[0]] + x[i2[0]]) / 2)


def _surv_at(curve: pd.DataFrame, t: float) -> tuple[float, float, float]:
    """S(t) with CI from a step table (right-continuous); NaN beyond the last observed time."""
    if t > curve["time"].max():
        return (math.nan, math.nan, math.nan)
    rows = curve[curve["time"] <= t]
    if rows.empty:
        return (1.0, math.nan, math.nan)
    last = rows.iloc[-1]
    return (float(last["surv"]), float(last["ci_low"]), float(last["ci_high"]))


def _groups(df: pd.DataFrame, group: str | None, *keep: str) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per group in sorted order; one group 'all' when group is None. With `keep`, the rows
    carry only those columns and the group's (checked first, as every column a caller names)."""
    if keep:
        _check_columns(df, *keep, *([group] if group else []))
        df = df[list(dict.fromkeys([*keep, *([group] if group else [])]))]
    if group is None:
        return [("all", df)]
    _check_columns(df, group)
    sub = df[df[group].notna()]
    return [(str(g), rows) for g, rows in sub.groupby(group, sort=True, observed=True)]


def km_estimates(df: pd.DataFrame, duration: str, event: str, group: str | None = None,
                 times: Sequence[float] = (365.0, 730.0), conf: float = 0.95,
                 conf_type: str = "log-log") -> pd.DataFrame:
    """Median survival and S(t) at `times` with CIs per group (Kaplan-Meier; log-log CIs unless `conf_type="log"`).

    An unreached median or CI limit is `inf`; S(t) beyond the last follow-up is NaN (R's
    summary(..., extend=FALSE) drops it).
    """
    rows = []
    for label, sub in _groups(df, group, duration, event):
        d = _time_event(sub, duration, event, only=True)
        curve = km_curve(d, duration, event, conf=conf, conf_type=conf_type)
        t, base = curve["time"].to_numpy(), {"group": label, "n": len(d), "events": int(d[event].sum())}
        rows.append({**base, "quantity": "median", "estimate": _r_quantile(t, curve["surv"].to_numpy()),
                     # the lower CI curve crosses 0.5 first: it gives the lower limit (R quantile.survfit)
                     "ci_low": _r_quantile(t, curve["ci_low"].to_numpy()),
                     "ci_high": _r_quantile(t, curve["ci_high"].to_numpy())})
        for tt in times:
            est, lo, hi = _surv_at(curve, float(tt))
            rows.append({**base, "quantity": f"S({float(tt):g})", "estimate": est, "ci_low": lo, "ci_high": hi})
    out = pd.DataFrame(rows)
    method = KM_CI_METHOD if conf_type == "log-log" else KM_LOG_CI_METHOD
    out["ci_method"] = method + "; unreached median or limit = inf"
    return out


def at_risk_table(df: pd.DataFrame, duration: str, event: str, group: str | None,
                  times: Sequence[float]) -> pd.DataFrame:
    """Numbers at risk (duration >= t) at each time per group, as survminer prints under a KM plot."""
    rows = []
    for label, sub in _groups(df, group, duration, event):
        d = _time_event(sub, duration, event, only=True)
        for t in times:
            rows.append({"group": label, "time": float(t), "n_risk": int((d[duration] >= t).sum())})
    return pd.DataFrame(rows, columns=["group", "time", "n_risk"])


def _nice_times(tmax: float) -> list[float]:
    """Evenly spaced round times from 0 to tmax for the at-risk table."""
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=6).tick_values(0, tmax)
    return [float(t) for t in ticks if 0 <= t <= tmax]


def _draw_step(ax, curve: pd.DataFrame, y: str, lo: str, hi: str, color: str, label: str) -> None:
    """A right-continuous step curve from (0, start) with a shaded CI band."""
    start = 1.0 if y == "surv" else 0.0
    t = np.concatenate([[0.0], curve["time"].to_numpy()])
    s = np.concatenate([[start], curve[y].to_numpy()])
    band_lo = np.concatenate([[start], curve[lo].fillna(curve[y]).to_numpy()])
    band_hi = np.concatenate([[start], curve[hi].fillna(curve[y]).to_numpy()])
    ax.step(t, s, where="post", color=color, label=label)
    ax.fill_between(t, band_lo, band_hi, step="post", color=color, alpha=0.2, linewidth=0)


def plot_km(df: pd.DataFrame, duration: str, event: str, group: str | None = None, ax=None,
            times: Sequence[float] | None = None, xlabel: str = "Days since infusion",
            ylabel: str = "Survival probability", legend_title: str | None = None):
    """survminer-style KM plot: steps, log-log CI bands, '+' censor marks, numbers at risk below.

    The legend is titled `legend_title`, else the group column's name.
    """
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 5))
        fig.subplots_adjust(bottom=0.3)
    groups = _groups(df, group)
    for i, (label, sub) in enumerate(groups):
        curve = km_curve(sub, duration, event)
        color = f"C{i}"
        _draw_step(ax, curve, "surv", "ci_low", "ci_high", color, label if group else "all patients")
        cens = curve[curve["n_censor"] > 0]
        ax.plot(cens["time"], cens["surv"], linestyle="none", marker="+", markersize=9, color=color)
    tmax = float(pd.to_numeric(df[duration], errors="coerce").max())
    times = list(times) if times is not None else _nice_times(tmax)
    ax.set(xlim=(0, max(tmax, max(times)) * 1.02), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel,
           xticks=times)
    if group:
        ax.legend(title=group if legend_title is None else legend_title, frameon=False)
    table = at_risk_table(df, duration, event, group, times)
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    ax.text(0, -0.2, "Number at risk", transform=ax.transAxes, ha="left", fontweight="bold", clip_on=False)
    for i, (label, _) in enumerate(groups):
        y = -0.28 - 0.07 * i
        ax.text(-0.02, y, label, transform=ax.transAxes, ha="right", color=f"C{i}", clip_on=False)
        for _, row in table[table["group"] == label].iterrows():
            ax.text(row["time"], y, str(row["n_risk"]), transform=trans, ha="center", clip_on=False)
    return ax


def logrank(df: pd.DataFrame, duration: str, event: str, group: str) -> dict:
    """Log-rank test across groups (lifelines multivariate_logrank_test; equals R survdiff rho=0)."""
    from lifelines.statistics import multivariate_logrank_test

    d = _time_event(df, duration, event)
    _check_columns(d, group)
    d = d[d[group].notna()]
    res = multivariate_logrank_test(d[duration], d[group], d[event])
    return {"statistic": float(res.test_statistic), "df": int(res.degrees_of_freedom),
            "p_value": float(res.p_value), "test": "log-rank", "n": len(d), "events": int(d[event].sum())}


def median_followup(df: pd.DataFrame, duration: str, event: str) -> dict:
    """Median follow-up by reverse Kaplan-Meier (Schemper & Smith 1996), with log-log 95% CI.

    Censoring is treated as the event; `min`/`max` are the range of follow-up among censored
    (alive/event-free) patients, the ones whose follow-up is not cut short by the event.
    """
    d = _time_event(df, duration, event, only=True)
    rev = d.assign(**{event: 1 - d[event]})
    curve = km_curve(rev, duration, event)
    t = curve["time"].to_numpy()
    censored = d.loc[d[event] == 0, duration]
    return {
        "median": _r_quantile(t, curve["surv"].to_numpy()),
        "ci_low": _r_quantile(t, curve["ci_low"].to_numpy()),
        "ci_high": _r_quantile(t, curve["ci_high"].to_numpy()),
        "min": float(censored.min()) if len(censored) else math.nan,
        "max": float(censored.max()) if len(censored) else math.nan,
        "n_censored": int(len(censored)),
        "method": "reverse Kaplan-Meier (Schemper & Smith 1996); " + KM_CI_METHOD + "; unreached = inf",
    }


# --------------------------------------------------------------------------------------------
# Cox models
# --------------------------------------------------------------------------------------------

def _fit_messages(caught: list) -> list[str]:
    """The first sentence of each distinct warning caught while fitting."""
    out: list[str] = []
    for w in caught:
        text = " ".join(str(w.message).split())
        msg = text.split(". ")[0].rstrip(".") if text else type(w.message).__name__
        if msg not in out:
            out.append(msg)
    return out


def _flags(events: int, n_params: int, messages: list[str], coef: np.ndarray) -> tuple[float, bool, str]:
    """EPV, converged flag and the warning text for a fitted model."""
    epv = events / n_params if n_params else math.nan
    notes = []
    if epv < EPV_MIN:
        notes.append(f"EPV {epv:.1f} < {EPV_MIN:g} (Peduzzi et al. 1995)")
    failed = [m for m in messages if any(k in m.lower() for k in ("converge", "delta", "separation", "singular"))]
    huge = bool(np.any(~np.isfinite(coef)) or np.any(np.abs(coef) > 15))
    converged = not failed and not huge
    if not converged:
        notes.append("separation/non-convergence" + (": " + "; ".join(failed) if failed else
                                                      ": |coef| > 15 or not finite"))
    notes += [m for m in messages if m not in failed]
    return epv, converged, "; ".join(notes)


def _tidy(terms, coef, se, lo, hi, p, base: dict) -> pd.DataFrame:
    """A tidy Cox table: one row per term, hazard ratios and their CIs on the HR scale."""
    coef, lo, hi = np.asarray(coef, float), np.asarray(lo, float), np.asarray(hi, float)
    terms = list(terms)
    with np.errstate(over="ignore"):
        columns = {"term": terms, "coef": coef, "se": np.asarray(se, float), "hr": np.exp(coef),
                   "ci_low": np.exp(lo), "ci_high": np.exp(hi), "p_value": np.asarray(p, float)}
    return pd.DataFrame({**columns, **{k: [v] * len(terms) for k, v in base.items()}})


def _model_data(df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str],
                extra: Sequence[str] = ()) -> pd.DataFrame:
    """Complete cases of duration, event, covariates (as float) and extra columns."""
    _check_columns(df, duration, event, *covariates, *extra)
    cols = list(dict.fromkeys([duration, event, *covariates, *extra]))
    d = df[cols].dropna()
    d = _time_event(d, duration, event)
    for c in covariates:
        d[c] = d[c].astype(float)
    return d


def cox_table(df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str], *,
              strata: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Multivariable Cox model (lifelines CoxPHFitter, Efron ties as R coxph; helpers.efron) as a tidy table.

    Rows with a missing covariate are dropped (n says how many were used). Wald 95% CIs and
    p-values as R's summary.coxph. Fitting warnings are caught and recorded in `warning`.
    """
    strata_cols = [strata] if isinstance(strata, str) else list(strata or [])
    d = _model_data(df, duration, event, covariates, strata_cols)
    key = _fit_key(d, duration, event, covariates, strata_cols)
    if key not in _COX_FITS:
        if len(_COX_FITS) > 1024:
            _COX_FITS.clear()
        _COX_FITS[key] = _fit_cox(d, duration, event, covariates, strata_cols)
    return _COX_FITS[key].copy()


# The same model is fitted by several sections of a chapter (a table, its sentence, the conclusions):
# fits are kept per process, keyed on the exact model data, so each is computed once.
_COX_FITS: dict[str, pd.DataFrame] = {}


def _fit_key(d: pd.DataFrame, *names) -> str:
    """A key over a model frame's values and column names and the model's arguments."""
    import hashlib

    digest = hashlib.sha256(pd.util.hash_pandas_object(d, index=False).to_numpy().tobytes())
    digest.update(repr((list(d.columns), names)).encode())
    return digest.hexdigest()


def _fit_cox(d: pd.DataFrame, duration: str, event: str, covariates: Sequence[str],
             strata_cols: list[str]) -> pd.DataFrame:
    """Fit one Cox model on prepared model data (see cox_table)."""
    from lifelines.exceptions import ConvergenceError

    from helpers.efron import FastCoxPHFitter

    events, k = int(d[event].sum()), len(covariates)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cph = FastCoxPHFitter(alpha=0.05)
        try:
            cph.fit(d, duration_col=duration, event_col=event, strata=strata_cols or None,
                    fit_options=FIT_OPTIONS)
            s = cph.summary
            failed = None
        except (ConvergenceError, np.linalg.LinAlgError) as exc:
            failed = str(exc).strip().splitlines()[0]
    messages = _fit_messages(caught) + ([failed] if failed else [])
    if failed:
        nan = [math.nan] * k
        epv, _, note = _flags(events, k, messages, np.array(nan))
        return _tidy(covariates, nan, nan, nan, nan, nan, {"n": len(d), "events": events, "epv": epv,
                     "concordance": math.nan, "converged": False, "warning": note})
    epv, converged, note = _flags(events, k, messages, s["coef"].to_numpy())
    return _tidy(s.index, s["coef"], s["se(coef)"], s["coef lower 95%"], s["coef upper 95%"], s["p"],
                 {"n": len(d), "events": events, "epv": epv, "concordance": float(cph.concordance_index_),
                  "converged": converged, "warning": note})


def univariable_cox(df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str]) -> pd.DataFrame:
    """One Cox model per covariate (each on its own complete cases), stacked; `model` names it."""
    tables = [cox_table(df, duration, event, [c]).assign(model=f"univariable: {c}") for c in covariates]
    return pd.concat(tables, ignore_index=True)


def firth_cox_table(df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str]) -> pd.DataFrame:
    """Firth-penalised Cox model (Heinze & Schemper 2001; firthmodels FirthCoxPH) as a tidy table.

    Finite estimates under separation; profile-likelihood 95% CIs and penalised likelihood-ratio
    p-values; `se` is the Wald SE. firthmodels handles ties by Breslow's method (as R coxphf).
    """
    from firthmodels import FirthCoxPH

    from helpers.concordance import concordance_index

    d = _model_data(df, duration, event, covariates)
    X = d[list(covariates)].to_numpy(float)
    events = int(d[event].sum())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = FirthCoxPH().fit(X, (d[event].to_numpy(bool), d[duration].to_numpy(float)))
        ci = model.conf_int(alpha=0.05, method="pl")
        model.lrt()
    messages = _fit_messages(caught) + ([] if model.converged_ else ["Firth fit did not converge"])
    epv, converged, note = _flags(events, len(covariates), messages, model.coef_)
    cindex = concordance_index(d[duration].to_numpy(float), -(X @ model.coef_), d[event].to_numpy(float))
    out = _tidy(covariates, model.coef_, model.bse_, ci[:, 0], ci[:, 1], model.lrt_pvalues_,
                {"n": len(d), "events": events, "epv": epv, "concordance": float(cindex),
                 "converged": converged and bool(model.converged_), "warning": note})
    out["method"] = ("Firth penalised partial likelihood (Heinze & Schemper 2001), Breslow ties; "
                     "profile-likelihood CI; penalised LRT p")
    return out


# --------------------------------------------------------------------------------------------
# Proportional hazards check
# --------------------------------------------------------------------------------------------

def _transform_times(time: np.ndarray, event: np.ndarray, transform: str) -> np.ndarray:
    """g(t) for every subject as R cox.zph: 'km' = 1 - KM(t-), 'rank' = rank(t), 'identity', 'log'."""
    if transform == "km":
        curve = km_curve(pd.DataFrame({"t": time, "e": event}), "t", "e")
        idx = np.searchsorted(curve["time"].to_numpy(), time, side="left")  # times strictly before t
        return 1 - np.concatenate([[1.0], curve["surv"].to_numpy()])[idx]
    if transform == "rank":
        return stats.rankdata(time)
    if transform == "identity":
        return time.astype(float)
    if transform == "log":
        return np.log(time)
    raise ValueError(f"transform must be 'km', 'rank', 'identity' or 'log', not {transform!r}")


def _zph_score(time, event, X, beta, g) -> tuple[np.ndarray, np.ndarray]:
    """Score U for the time interactions X*g(t) and the full information matrix at (beta, 0), Efron ties."""
    from helpers.efron import death_moments

    dead = event == 1
    order, mean, cov = death_moments(X, time, dead, beta)
    gt = g[dead][order]  # g(t) of each death, in the order of the moments
    u = (g[dead][:, None] * X[dead]).sum(axis=0) - (gt[:, None] * mean).sum(axis=0)
    c0, c1, c2 = cov.sum(axis=0), (gt[:, None, None] * cov).sum(axis=0), (gt[:, None, None] ** 2 * cov).sum(axis=0)
    return u, np.block([[c0, c1], [c1, c2]])


def ph_test(df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str],
            transform: str = "km") -> pd.DataFrame:
    """Proportional-hazards test per term and global, equal to R survival >= 3.0 `cox.zph`.

    R 3.x's test is the score test for adding X*g(t) to the Cox model (full information matrix,
    Efron ties), computed here with g from `transform` ('km' is R's default). lifelines'
    `proportional_hazard_test` uses the older Grambsch & Therneau (1994) approximation on scaled
    Schoenfeld residuals and gives different numbers in small samples, so it is not used.
    """
    fit = cox_table(df, duration, event, covariates)
    d = _model_data(df, duration, event, covariates)
    time, ev = d[duration].to_numpy(float), d[event].to_numpy(int)
    X = d[list(covariates)].to_numpy(float)
    g = _transform_times(time, ev, transform)
    g = g - g[ev == 1].mean()
    u, imat = _zph_score(time, ev, X, fit["coef"].to_numpy(float), g)
    p = len(covariates)
    ibb, ibg, igg = imat[:p, :p], imat[:p, p:], imat[p:, p:]
    schur = igg - ibg.T @ np.linalg.solve(ibb, ibg)
    terms = [u[j] ** 2 / schur[j, j] for j in range(p)]
    glob = float(u @ np.linalg.solve(schur, u))
    out = pd.DataFrame({"term": [*covariates, "GLOBAL"], "statistic": [*terms, glob], "df": [1] * p + [p]})
    out["p_value"] = stats.chi2.sf(out["statistic"], out["df"])
    out["transform"] = transform
    out["method"] = "score test for X*g(t) (R survival >= 3.0 cox.zph), Efron ties"
    return out


def scaled_schoenfeld(df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str]) -> pd.DataFrame:
    """Scaled Schoenfeld residuals beta_j + D (V r)_j per event and term (Grambsch & Therneau 1994).

    Equal to R `residuals(coxph(...), type = "scaledsch")` and `cox.zph(...)$y` (Efron ties):
    lifelines' "scaled_schoenfeld" residuals plus the coefficient. Tidy: time, term, residual, coef.
    A flat trend around `coef` supports proportional hazards; a slope says the log-HR drifts with time.
    """
    from helpers.efron import FastCoxPHFitter

    d = _model_data(df, duration, event, covariates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a failed fit shows in cox_table's flags; residuals still tidy
        cph = FastCoxPHFitter().fit(d, duration_col=duration, event_col=event,
                                fit_options=FIT_OPTIONS)
        res = cph.compute_residuals(d, kind="scaled_schoenfeld")
    res = res + cph.params_[res.columns]
    res["time"] = d.loc[res.index, duration].to_numpy(float)
    long = res.reset_index(drop=True).melt(id_vars="time", var_name="term", value_name="residual")
    long["coef"] = long["term"].map(cph.params_).astype(float)
    return long.sort_values(["term", "time"], kind="stable").reset_index(drop=True)[["time", "term", "residual", "coef"]]


def plot_schoenfeld(resid: pd.DataFrame, term: str, ax=None, frac: float = 2 / 3):
    """Scaled Schoenfeld residuals of one term against time, a LOWESS smoother and the Cox coefficient (dashed)."""
    import matplotlib.pyplot as plt
    from statsmodels.nonparametric.smoothers_lowess import lowess

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    r = resid[resid["term"] == term]
    if r.empty:
        raise KeyError(f"term {term!r} not in the residual table; it has {sorted(resid['term'].unique())}")
    ax.plot(r["time"], r["residual"], "o", color="C0", alpha=0.7, markersize=4)
    if len(r) >= 4:
        smooth = lowess(r["residual"].to_numpy(float), r["time"].to_numpy(float), frac=frac, it=0)
        ax.plot(smooth[:, 0], smooth[:, 1], color="C1", label="LOWESS")
    ax.axhline(float(r["coef"].iloc[0]), color="grey", linestyle="--", linewidth=1, label="Cox coefficient")
    ax.set(xlabel="Days since infusion (event times)", ylabel=f"Scaled Schoenfeld, {term}", title=term)
    return ax


# --------------------------------------------------------------------------------------------
# Guarantee-time bias: landmark and time-varying covariates; censoring at HSCT
# --------------------------------------------------------------------------------------------

def landmark(df: pd.DataFrame, duration: str, event: str, landmark_day: float,
             covariate_day_col: str | None = None) -> pd.DataFrame:
    """Landmark dataset (Anderson, Cain & Gelber 1983): patients still at risk after the landmark.

    Keeps rows with `duration > landmark_day` (an event or censoring on or before the landmark
    removes the patient: he is not known to be event-free after it) and resets the time origin
    (`duration` becomes time since the landmark). If `covariate_day_col` is given (the day the
    event defining a covariate happened, NaN if never), the new column
    `f"{covariate_day_col}_by_landmark"` is 1 only when that day is <= the landmark: status as
    known at the landmark, later changes count as 'no'. The landmark is kept in
    `.attrs["landmark_day"]` and in a `landmark_day` column.
    """
    d = _time_event(df, duration, event)
    d = d[d[duration] > landmark_day].copy()
    d[duration] = d[duration] - landmark_day
    if covariate_day_col is not None:
        _check_columns(df, covariate_day_col)
        day = pd.to_numeric(d[covariate_day_col], errors="coerce")
        d[f"{covariate_day_col}_by_landmark"] = (day.notna() & (day <= landmark_day)).astype("Int64")
    d["landmark_day"] = float(landmark_day)
    d.attrs["landmark_day"] = float(landmark_day)
    return d.reset_index(drop=True)


def counting_process(df: pd.DataFrame, duration: str, event: str, covariate: str,
                     covariate_day: str) -> pd.DataFrame:
    """(start, stop] rows with a binary covariate switching 0 -> 1 at `covariate_day`.

    A switch at day <= 0 means 1 from the start; a switch on or after the end of follow-up (or NaN)
    never happens (0 throughout), as R's tmerge(tdc()). The event sits on the last row only. Other
    columns are carried as baseline constants. Built directly (vectorised) rather than with lifelines'
    add_covariate_to_timeline, which works patient by patient and is slow for large cohorts.
    """
    d = _time_event(df, duration, event).reset_index(drop=True)
    day = pd.to_numeric(d[covariate_day], errors="coerce").to_numpy(float)
    stop = d[duration].to_numpy(float)
    base = d.drop(columns=[covariate_day, covariate, duration], errors="ignore")
    splits = (day > 0) & (day < stop)
    from_start = day <= 0
    whole = base.assign(start=0.0, stop=stop, **{covariate: from_start.astype(int)})
    whole = whole[~splits]
    before = base[splits].assign(start=0.0, stop=day[splits], **{covariate: 0})
    before[event] = 0
    after = base[splits].assign(start=day[splits], stop=stop[splits], **{covariate: 1})
    out = pd.concat([whole, before, after]).rename_axis("_row").reset_index()
    out = out.sort_values(["_row", "start"], kind="stable").drop(columns="_row").reset_index(drop=True)
    out[event] = out[event].astype(int)
    front = [c for c in ("patient_id",) if c in out.columns] + ["start", "stop", event, covariate]
    return out[front + [c for c in out.columns if c not in front]]


def time_varying_cox(df: pd.DataFrame, duration: str, event: str, covariate: str, covariate_day: str,
                     other_covariates: Sequence[str] = ()) -> pd.DataFrame:
    """Cox model with a time-varying binary covariate (lifelines CoxTimeVaryingFitter, Efron ties; helpers.efron).

    Removes guarantee-time bias: a patient counts as exposed only from `covariate_day` on
    (Giobbie-Hurder et al. 2013). Same tidy columns as cox_table.
    """
    from helpers.efron import FastCoxTimeVaryingFitter

    keep = [duration, event, covariate_day, *other_covariates]
    _check_columns(df, *keep)
    d = df[keep].dropna(subset=[duration, event, *other_covariates])
    cp = counting_process(d, duration, event, covariate, covariate_day)
    cp["_id"] = (cp["start"] == 0).cumsum()
    terms = [covariate, *other_covariates]
    events = int(cp[event].sum())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctv = FastCoxTimeVaryingFitter(alpha=0.05)
        ctv.fit(cp[["_id", "start", "stop", event, *terms]].astype(float), id_col="_id", event_col=event,
                start_col="start", stop_col="stop", fit_options=FIT_OPTIONS)
    s = ctv.summary.loc[terms]
    epv, converged, note = _flags(events, len(terms), _fit_messages(caught), s["coef"].to_numpy())
    return _tidy(terms, s["coef"], s["se(coef)"], s["coef lower 95%"], s["coef upper 95%"], s["p"],
                 {"n": len(d), "events": events, "epv": epv, "concordance": math.nan,
                  "converged": converged, "warning": note})


def censor_at(df: pd.DataFrame, duration: str, event: str, censor_day: str) -> pd.DataFrame:
    """Sensitivity analysis: censor at `censor_day` (e.g. hsct_day) when it strictly precedes the end of follow-up.

    Adds `f"{duration}_cens"` and `f"{event}_cens"`; rows without a censor day are unchanged.
    """
    _check_columns(df, duration, event, censor_day)
    out = df.copy()
    day = pd.to_numeric(out[censor_day], errors="coerce")
    cut = day.notna() & (day < out[duration])
    out[f"{duration}_cens"] = out[duration].where(~cut, day).astype(float)
    out[f"{event}_cens"] = out[event].where(~cut, 0).astype("Int64")
    return out


# --------------------------------------------------------------------------------------------
# Competing risks
# --------------------------------------------------------------------------------------------

CIF_CI_METHOD = ("Aalen-Johansen; delta-method variance (Collett 2015, as lifelines "
                 "AalenJohansenFitter), log(-log) CI")


def _aalen_johansen(time: np.ndarray, etype: np.ndarray, cause: int, conf: float = 0.95) -> pd.DataFrame:
    """CIF of one cause at every event time with its variance and log(-log) CI.

    The formula of lifelines' AalenJohansenFitter, but tied times of different causes are kept
    tied (exact Aalen-Johansen, as R survfit) instead of being randomly jittered.
    """
    ut = np.unique(time[etype > 0])
    n = np.array([(time >= t).sum() for t in ut], float)
    d_all = np.array([((time == t) & (etype > 0)).sum() for t in ut], float)
    d_k = np.array([((time == t) & (etype == cause)).sum() for t in ut], float)
    s = np.cumprod(1 - d_all / n)
    s_lag = np.concatenate([[1.0], s[:-1]])
    cif = np.cumsum(s_lag * d_k / n)
    var = np.empty_like(cif)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, f in enumerate(cif):
            a = (f - cif[: j + 1]) ** 2 * d_all[: j + 1] / (n[: j + 1] * (n[: j + 1] - d_all[: j + 1]))
            b = s_lag[: j + 1] ** 2 * d_k[: j + 1] * (n[: j + 1] - d_k[: j + 1]) / n[: j + 1] ** 3
            c = (f - cif[: j + 1]) * s_lag[: j + 1] * d_k[: j + 1] / n[: j + 1] ** 2
            var[j] = np.nansum(a) + b.sum() - 2 * c.sum()
        z = stats.norm.ppf(1 - (1 - conf) / 2)
        se_t = np.sqrt(var) / (cif * np.abs(np.log(cif)))
        lo = np.exp(-np.exp(np.log(-np.log(cif)) + z * se_t))
        hi = np.exp(-np.exp(np.log(-np.log(cif)) - z * se_t))
    undefined = (cif <= 0) | (cif >= 1)
    return pd.DataFrame({"time": ut, "n_risk": n.astype(int), "n_event": d_k.astype(int), "cif": cif,
                         "variance": var, "ci_low": np.where(undefined, np.nan, lo),
                         "ci_high": np.where(undefined, np.nan, hi)})


def _cr_data(df: pd.DataFrame, duration: str, event_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Durations and integer event types (0 censored, 1.. causes) of rows where both are known."""
    _check_columns(df, duration, event_type)
    d = df[[duration, event_type]].dropna()
    etype = d[event_type].astype(float).astype(int).to_numpy()
    if (etype < 0).any():
        raise ValueError(f"column '{event_type}' must be 0 (censored) or a positive cause code")
    return d[duration].to_numpy(float), etype


def cumulative_incidence(df: pd.DataFrame, duration: str, event_type: str,
                         times: Sequence[float] = (365.0, 730.0)) -> pd.DataFrame:
    """Cumulative incidence per cause at `times` (Aalen-Johansen; 0 censored, 1 relapse, 2 NRM).

    Estimates equal R survfit(Surv(time, factor(status))); CIs use lifelines' delta-method
    variance with a log(-log) transform (R reports an infinitesimal-jackknife SE instead). Tied
    times are handled exactly, so no random jitter is involved. Beyond the last follow-up: NaN.
    """
    time, etype = _cr_data(df, duration, event_type)
    rows = []
    for cause in sorted(set(etype) - {0}):
        curve = _aalen_johansen(time, etype, int(cause))
        for t in times:
            if t > time.max():
                est, lo, hi = math.nan, math.nan, math.nan
            else:
                past = curve[curve["time"] <= t]
                est, lo, hi = (0.0, math.nan, math.nan) if past.empty else tuple(
                    float(past.iloc[-1][c]) for c in ("cif", "ci_low", "ci_high"))
            rows.append({"cause": int(cause), "time": float(t), "estimate": est, "ci_low": lo, "ci_high": hi,
                         "n": len(time), "events": int((etype == cause).sum())})
    out = pd.DataFrame(rows)
    out["ci_method"] = CIF_CI_METHOD
    return out


def plot_cif(df: pd.DataFrame, duration: str, event_type: str, ax=None,
             labels: dict[int, str] | None = None, xlabel: str = "Days since infusion"):
    """Cumulative incidence curves per cause (Aalen-Johansen) with CI bands; 1 relapse, 2 NRM by default."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    labels = labels or {1: "relapse", 2: "non-relapse mortality"}
    time, etype = _cr_data(df, duration, event_type)
    for i, cause in enumerate(sorted(set(etype) - {0})):
        curve = _aalen_johansen(time, etype, int(cause))
        last = curve.iloc[[-1]].assign(time=time.max(), n_event=0)  # flat to the last follow-up
        curve = pd.concat([curve, last], ignore_index=True) if time.max() > curve["time"].max() else curve
        _draw_step(ax, curve, "cif", "ci_low", "ci_high", f"C{i}", labels.get(int(cause), f"cause {cause}"))
    ax.set(xlim=(0, time.max() * 1.02), ylim=(0, 1.0), xlabel=xlabel, ylabel="Cumulative incidence")
    ax.legend(frameon=False)
    return ax


def forest_plot(table: pd.DataFrame, ax=None, label_col: str = "term", log: bool = True):
    """Forest plot of HRs (column `hr`, else `estimate`, e.g. ORs) with CIs, a line at 1 and text."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    est_col = "hr" if "hr" in table.columns else "estimate"
    _check_columns(table, label_col, est_col, "ci_low", "ci_high")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.5 * len(table) + 1.2))
    y = np.arange(len(table))[::-1]
    est, lo, hi = (table[c].to_numpy(float) for c in (est_col, "ci_low", "ci_high"))
    ok = np.isfinite(est) & np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) | (not log))
    ax.errorbar(est[ok], y[ok], xerr=[est[ok] - lo[ok], hi[ok] - est[ok]], fmt="s", color="black", capsize=3)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    if log:
        from matplotlib.ticker import FormatStrFormatter, NullFormatter

        ax.set_xscale("log")
        left, right = np.nanmin(lo[ok], initial=1.0), np.nanmax(hi[ok], initial=1.0)
        ticks = [m * 10.0 ** e for e in range(-3, 4) for m in (1, 2, 5) if left / 1.5 <= m * 10.0 ** e <= right * 1.5]
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(y, table[label_col].astype(str))
    ax.set_xlabel("Hazard ratio (95% CI)" if est_col == "hr" else "Estimate (95% CI)")
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    for yi, e, l, h, good in zip(y, est, lo, hi, ok):
        text = f"{e:.2f} ({l:.2f}-{h:.2f})" if good else "not estimable"
        ax.text(1.02, yi, text, transform=trans, va="center", clip_on=False)
    ax.set_ylim(-0.7, len(table) - 0.3)
    return ax


# --------------------------------------------------------------------------------------------
# Estimability: what may be printed as a number
# --------------------------------------------------------------------------------------------

COEF_MAX = 15.0  # |log HR| beyond this: the likelihood has no finite maximum (monotone likelihood)


def _not_estimable_reason(row: pd.Series) -> str:
    """Why a fitted term has no estimate to print ('' when it has one), in a reader's words."""
    if "events" in row and is_zero(row["events"]):
        return "no events"
    coef = row["coef"] if "coef" in row else (math.log(row["hr"]) if fmt_pos(row.get("hr")) else math.nan)
    if not np.isfinite(coef):
        return "the model could not be fitted" + (f" ({fit_failure(row['warning'])})" if str(row.get("warning", "")) else "")
    if abs(coef) > COEF_MAX:
        return "the estimate diverges (monotone likelihood: separation of events by the covariate)"
    if row.get("converged") is False or (isinstance(row.get("converged"), (bool, np.bool_)) and not row["converged"]):
        return "the fit did not converge (separation or too few events)"
    if not (np.isfinite(row.get("ci_low", math.nan)) and np.isfinite(row.get("ci_high", math.nan))):
        return "the confidence interval is undefined"
    return ""


def fit_failure(message: str) -> str:
    """Why a fit failed, in a reader's words: the fitting software's own messages name columns and link to its docs."""
    text = str(message).lower()
    if "singular" in text:
        return "singular matrix"
    if "no variation" in text or "no events" in text:
        return str(message)
    if any(k in text for k in ("converge", "delta", "separation", "overflow", "nan", "invalid value")):
        return "the estimates did not converge: separation of events by a covariate, or too few events"
    return "no estimate was returned"


def fmt_pos(x: object) -> bool:
    """True for a finite positive number (a hazard ratio that has a logarithm)."""
    try:
        return math.isfinite(float(x)) and float(x) > 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def is_zero(x: object) -> bool:
    """True for a count equal to zero (missing counts are not zero)."""
    try:
        return float(x) == 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def estimability(table: pd.DataFrame) -> pd.DataFrame:
    """Add `estimable` and `reason` to a tidy Cox table: R would print NA/'not estimable' for these rows.

    A term is not estimable when the fit failed or did not converge (lifelines ConvergenceWarning,
    separation), when |coef| > 15 (the partial likelihood has no finite maximum) or when a CI limit
    is not finite; Firth's penalised fit is the remedy for separation (Heinze & Schemper 2001).
    """
    reasons = [_not_estimable_reason(r) for _, r in table.iterrows()]
    return table.assign(estimable=[not r for r in reasons], reason=reasons)


def safe_cox(df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str]) -> pd.DataFrame:
    """cox_table with estimability flags; a cohort with no events or no variation gives a not-estimable row."""
    d = _model_data(df, duration, event, covariates)
    flat = [c for c in covariates if d[c].nunique() < 2]
    if d.empty or d[event].sum() == 0 or flat:
        from helpers.labels import label

        why = ("no events" if d.empty or d[event].sum() == 0
               else "no variation in " + ", ".join(label(c).lower() for c in flat))
        nan = [math.nan] * len(covariates)
        out = _tidy(covariates, nan, nan, nan, nan, nan, {"n": len(d), "events": int(d[event].sum()),
                    "epv": math.nan, "concordance": math.nan, "converged": False, "warning": why})
        return out.assign(estimable=False, reason=why)
    return estimability(cox_table(df, duration, event, covariates))


# --------------------------------------------------------------------------------------------
# Landmark sensitivity; time-varying Cox that reports failures
# --------------------------------------------------------------------------------------------

def safe_time_varying_cox(df: pd.DataFrame, duration: str, event: str, covariate: str, covariate_day: str,
                          other_covariates: Sequence[str] = ()) -> pd.DataFrame:
    """time_varying_cox with estimability flags; a fit that raises (no events, singular) is a not-estimable row."""
    from lifelines.exceptions import ConvergenceError

    terms = [covariate, *other_covariates]
    try:
        out = time_varying_cox(df, duration, event, covariate, covariate_day, other_covariates)
    except (ConvergenceError, np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        nan = [math.nan] * len(terms)
        d = df.dropna(subset=[duration, event])
        out = _tidy(terms, nan, nan, nan, nan, nan, {"n": len(d), "events": int(d[event].sum()), "epv": math.nan,
                    "concordance": math.nan, "converged": False, "warning": why})
    return estimability(out)


def landmark_series(df: pd.DataFrame, duration: str, event: str, covariate_day: str,
                    days: Sequence[float]) -> pd.DataFrame:
    """The landmark HR of 'exposed by the landmark' (covariate_day <= L) at each landmark day L.

    One Cox model per landmark on the patients event-free after it (Anderson, Cain & Gelber 1983);
    `late` counts the patients exposed after L (counted as unexposed at that landmark). Tidy: one
    row per landmark with hr, ci_low, ci_high, p_value, n, events, n_exposed, late, estimable, reason.
    """
    rows = []
    _check_columns(df, duration, event, covariate_day)
    df = df[list(dict.fromkeys([duration, event, covariate_day]))]  # all a landmark model reads: no wide copies
    day_all = pd.to_numeric(df[covariate_day], errors="coerce")
    for L in days:
        lm = landmark(df, duration, event, float(L), covariate_day_col=covariate_day)
        x = f"{covariate_day}_by_landmark"
        lm[x] = lm[x].astype(float)
        fit = safe_cox(lm, duration, event, [x]).iloc[0].copy()
        day = pd.to_numeric(lm[covariate_day], errors="coerce")
        if len(lm) and lm[x].nunique() < 2:
            fit["reason"] = ("nobody event-free at this landmark was exposed by it" if lm[x].sum() == 0
                             else "everybody event-free at this landmark was exposed by it")
        rows.append({"landmark_day": float(L), "hr": fit["hr"], "ci_low": fit["ci_low"], "ci_high": fit["ci_high"],
                     "p_value": fit["p_value"], "n": int(fit["n"]), "events": int(fit["events"]),
                     "n_exposed": int(lm[x].sum()), "late": int((day > L).sum()),
                     "late_all": int((day_all > L).sum()),
                     "estimable": bool(fit["estimable"]), "reason": fit["reason"]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# KMunicate-style figures in months
# --------------------------------------------------------------------------------------------

def kmunicate_table(df: pd.DataFrame, duration: str, event: str, group: str | None,
                    times: Sequence[float]) -> pd.DataFrame:
    """At risk (duration >= t), events and censored up to t, per group at each time (Morris et al. 2019)."""
    rows = []
    for label, sub in _groups(df, group, duration, event):
        d = _time_event(sub, duration, event, only=True)
        t, e = d[duration].to_numpy(float), d[event].to_numpy(int)
        for tt in times:
            rows.append({"group": label, "time": float(tt), "n_risk": int((t >= tt).sum()),
                         "n_events": int(((t <= tt) & (e == 1)).sum()),
                         "n_censored": int(((t < tt) & (e == 0)).sum())})
    return pd.DataFrame(rows, columns=["group", "time", "n_risk", "n_events", "n_censored"])


def _median_mark(ax, curve: pd.DataFrame, median_days: float, color: str, scale: float) -> None:
    """Dotted guide lines from the 50% level to the median, where the curve reaches it."""
    if np.isfinite(median_days):
        x = median_days / scale
        ax.plot([0, x], [0.5, 0.5], linestyle=":", color=color, linewidth=1)
        ax.plot([x, x], [0, 0.5], linestyle=":", color=color, linewidth=1)


def month_ticks(tmax: float, step: float | None = None) -> list[float]:
    """Axis ticks in months: quarterly up to a year, half-yearly up to four years, then yearly."""
    step = step or (3.0 if tmax <= 12 else 6.0 if tmax <= 48 else 12.0)
    return [float(t) for t in np.arange(0, max(tmax, step) + 1e-9, step)]


def km_figure(df: pd.DataFrame, duration: str, event: str, group: str | None = None,
              names: dict[str, str] | None = None, ylabel: str = "Survival probability",
              xlabel: str = "Months since infusion", legend_title: str | None = None,
              p_text: str | None = None, scale: float = 365.25 / 12, step: float | None = None,
              everyone: str = "All patients"):
    """A KMunicate-style figure: curves with 95% CI bands and censor marks, dotted medians, an optional
    log-rank p, and under the axis a table of numbers at risk, events and censored per group (time in months)."""
    import matplotlib.pyplot as plt

    groups = _groups(df, group)
    names = names or {}
    tmax = float(pd.to_numeric(df[duration], errors="coerce").max()) / scale
    ticks = month_ticks(tmax, step)
    n_rows = 3 * len(groups)
    fig = plt.figure(figsize=(7.2, 4.2 + 0.24 * n_rows))
    grid = fig.add_gridspec(2, 1, height_ratios=[4.2, 0.24 * n_rows + 0.6], hspace=0.3)
    ax, tab = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    for i, (label, sub) in enumerate(groups):
        curve = km_curve(sub, duration, event)
        color = f"C{i}"
        m = curve.assign(time=curve["time"] / scale)
        _draw_step(ax, m, "surv", "ci_low", "ci_high", color, names.get(label, label if group else everyone))
        cens = m[m["n_censor"] > 0]
        ax.plot(cens["time"], cens["surv"], linestyle="none", marker="+", markersize=8, color=color)
        _median_mark(ax, m, _r_quantile(curve["time"].to_numpy(), curve["surv"].to_numpy()), color, scale)
    ax.set(xlim=(0, max(tmax, ticks[-1]) * 1.02), ylim=(0, 1.02), ylabel=ylabel, xticks=ticks)
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    if group:
        ax.legend(title=legend_title, frameon=False, loc="upper right", fontsize=8, title_fontsize=8)
    if p_text:
        ax.text(0.02, 0.04, p_text, transform=ax.transAxes, fontsize=9)
    _risk_rows(tab, kmunicate_table(df, duration, event, group, [t * scale for t in ticks]), groups,
               names if group else {"all": everyone}, ticks, ax.get_xlim(), scale)
    return fig


def _risk_rows(tab, table: pd.DataFrame, groups, names: dict, ticks, xlim, scale: float) -> None:
    """Draw the KMunicate rows (at risk, events, censored per group) on their own axes, aligned to the ticks."""
    tab.set(xlim=xlim, ylim=(-0.5 * 0 - 3 * len(groups) + 0.5, 0.8))
    tab.axis("off")
    y = 0.0
    for i, (label, _) in enumerate(groups):
        rows = table[table["group"] == label]
        title = names.get(label, label)
        tab.text(xlim[0], y + 0.75, title, color=f"C{i}", fontsize=8, fontweight="bold", ha="left")
        for what, col in (("At risk", "n_risk"), ("Events", "n_events"), ("Censored", "n_censored")):
            tab.text(xlim[0] - 0.02 * (xlim[1] - xlim[0]), y, what, ha="right", va="center", fontsize=8)
            for _, r in rows.iterrows():
                tab.text(r["time"] / scale, y, f"{int(r[col])}", ha="center", va="center", fontsize=8)
            y -= 0.8
        y -= 0.9
    tab.set_ylim(y + 0.6, 1.2)
