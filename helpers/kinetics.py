"""Non-compartmental analysis (NCA) of CAR-T cellular kinetics, following PKNCA (R) conventions.

Conventions (PKNCA defaults unless said otherwise; Denney, Duvvuri & Buckeridge, PKNCA, CRAN):

* BLQ samples are coded 0. ``BLQRule`` default keeps leading zeros, drops zeros between the first and
  the last quantifiable sample, keeps trailing zeros (PKNCA ``conc.blq`` default, ``clean.conc.blq``).
  A profile with no quantifiable sample is all "leading" zeros. Missing concentrations are dropped.
* AUC "lin-up/log-down" (PKNCA ``auc.method = "lin up/log down"``): log trapezoid on a falling segment
  whose two ends are > 0, linear trapezoid otherwise, zero area between two zeros.
* Tmax is the first time of the maximum (PKNCA ``first.tmax = TRUE``); Tmax, Tlast and Clast are NaN
  when no sample is quantifiable (PKNCA returns NA); Cmax is then 0.
* Terminal half-life: log-linear least squares on the last k >= 3 quantifiable points strictly after
  Tmax, choosing among fits with lambda_z > 0 the best adjusted R^2 (adjusted R^2 within 1e-4 of the
  best of all fits -> the one with most points) (PKNCA ``pk.calc.half.life``, ``min.hl.points = 3``,
  ``adj.r.squared.factor = 1e-4``, ``allow.tmax.in.half.life = FALSE``).
* Interval AUC (``auc_interval``), see its docstring for the interpolation/extrapolation rule.
* Only post-infusion samples (day >= 0) enter NCA and `peak_expansion`: the kinetics of this infusion
  start at day 0 (PKNCA: time relative to dose). A quantifiable pre-infusion sample (e.g. persisting
  cells of a prior CAR-T product) is a baseline finding, listed by `pre_infusion_findings`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.path import Path
from scipy import stats

CONC = "car_copies_per_ug_dna"
METHODS = ("lin-up/log-down", "linear")
ADJ_R2_FACTOR = 1e-4  # PKNCA option adj.r.squared.factor
_RULE_VALUES = ("keep", "drop")
MEDIAN_MIN_N = 3  # plot_spaghetti: fewest patients sampled on a day for a median point


@dataclass(frozen=True)
class BLQRule:
    """What to do with BLQ (0) samples before, between and after the quantifiable ones (PKNCA conc.blq)."""

    first: str = "keep"
    middle: str = "drop"
    last: str = "keep"

    def __post_init__(self) -> None:
        for name in ("first", "middle", "last"):
            if getattr(self, name) not in _RULE_VALUES:
                raise ValueError(f"BLQRule.{name} must be 'keep' or 'drop', got {getattr(self, name)!r}")


# ----------------------------------------------------------------------------- input checks
def _check_method(method: str) -> None:
    """Refuse an AUC method other than the two PKNCA ones implemented here."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _check_kinetics(kinetics: pd.DataFrame) -> None:
    """Say which kinetics columns are missing, in the data contract's words."""
    missing = [c for c in ("patient_id", "day", CONC) if c not in kinetics.columns]
    if missing:
        raise ValueError(f"kinetics table lacks column(s) {missing}")


def post_infusion(kinetics: pd.DataFrame) -> pd.DataFrame:
    """The samples of days >= 0 (the kinetics of this infusion); earlier samples are baseline."""
    return kinetics[pd.to_numeric(kinetics["day"], errors="coerce") >= 0]


def pre_infusion_findings(kinetics: pd.DataFrame) -> pd.DataFrame:
    """Patients sampled before infusion: n_pre_samples, positive (any quantifiable pre-infusion sample,
    e.g. a prior CAR-T product), max_pre_copies and the first positive day; flagged, never in NCA."""
    _check_kinetics(kinetics)
    pre = kinetics[pd.to_numeric(kinetics["day"], errors="coerce") < 0].dropna(subset=[CONC])
    cols = ["patient_id", "n_pre_samples", "positive", "max_pre_copies", "first_positive_day"]
    if pre.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(cols, (object, "int64", bool, float, float))})
    g = pre.groupby("patient_id", sort=True)
    pos_day = pre[pre[CONC] > 0].groupby("patient_id")["day"].min()
    out = pd.DataFrame({"n_pre_samples": g.size(), "max_pre_copies": g[CONC].max().astype(float)})
    out["positive"] = out["max_pre_copies"] > 0
    out["first_positive_day"] = pos_day.reindex(out.index).astype(float)
    return out.reset_index()[cols]


def _profile_arrays(days, conc) -> tuple[np.ndarray, np.ndarray]:
    """One profile as sorted float arrays; missing concentrations dropped (PKNCA conc.na = 'drop')."""
    t = np.asarray(days, dtype=float).ravel()
    c = np.asarray(conc, dtype=float).ravel()
    if t.shape != c.shape:
        raise ValueError(f"days ({t.size}) and conc ({c.size}) must have the same length")
    if np.isnan(t).any():
        raise ValueError("sampling days must not be missing")
    keep = ~np.isnan(c)
    t, c = t[keep], c[keep]
    if (c < 0).any():
        raise ValueError("concentrations must be >= 0 (0 codes a sample below the limit of quantification)")
    order = np.argsort(t, kind="stable")
    t, c = t[order], c[order]
    if np.any(np.diff(t) == 0):
        raise ValueError("a profile has two samples on the same day")
    return t, c


def _align(groups: pd.Series, index: pd.Index, what: str) -> pd.Series:
    """Groups re-indexed on `index` (patient ids or row labels); say so when labels are missing."""
    missing = pd.Index(index).difference(groups.index)
    if len(missing):
        raise ValueError(f"{what} has no entry for {len(missing)} label(s), e.g. {list(missing[:3])}")
    return groups.reindex(index)


def _group_levels(groups: pd.Series) -> list:
    """Group levels in category order when categorical, sorted otherwise; missing groups left out."""
    if isinstance(groups.dtype, pd.CategoricalDtype):
        return [lvl for lvl in groups.cat.categories if (groups == lvl).any()]
    return sorted(groups.dropna().unique().tolist(), key=str)


# ----------------------------------------------------------------------------- BLQ handling
def _blq_keep(c: np.ndarray, rule: BLQRule) -> np.ndarray:
    """Boolean mask of samples kept by the BLQ rule (c sorted by time; PKNCA clean.conc.blq)."""
    idx = np.arange(c.size)
    zero = c == 0
    pos = np.flatnonzero(c > 0)
    if pos.size == 0:  # PKNCA: with no quantifiable sample every BLQ is a "first" one
        first, middle, last = zero, np.zeros_like(zero), np.zeros_like(zero)
    else:
        first = zero & (idx < pos[0])
        last = zero & (idx > pos[-1])
        middle = zero & ~first & ~last
    drop = (((rule.first == "drop") & first) | ((rule.middle == "drop") & middle)
            | ((rule.last == "drop") & last))
    return ~drop


def apply_blq(profile: pd.DataFrame, rule: BLQRule = BLQRule()) -> pd.DataFrame:
    """Apply the BLQ rule to one profile, or per patient when `patient_id` is a column (PKNCA clean.conc.blq).

    Rows with a missing concentration are dropped first; the result is sorted by (patient_id,) day.
    """
    keys = ["patient_id"] if "patient_id" in profile.columns else []
    if "day" not in profile.columns or CONC not in profile.columns:
        raise ValueError(f"profile needs columns 'day' and {CONC!r}")
    df = profile.dropna(subset=[CONC]).sort_values([*keys, "day"], kind="stable")
    parts = [g for _, g in df.groupby(keys, sort=True)] if keys else [df]
    kept = [g[_blq_keep(g[CONC].to_numpy(dtype=float), rule)] for g in parts]
    if not kept:
        return df.iloc[0:0].reset_index(drop=True)
    return pd.concat(kept).reset_index(drop=True)


# ----------------------------------------------------------------------------- AUC
def _segment_rule(c1: float, c2: float, method: str) -> str:
    """PKNCA choose_interval_method: 'zero' between two zeros, 'log' on a fall to a value > 0, else 'linear'."""
    if c1 == 0 and c2 == 0:
        return "zero"
    if method == "lin-up/log-down" and 0 < c2 < c1:
        return "log"
    return "linear"


def _interp(t1: float, t2: float, c1: float, c2: float, x: float, rule: str) -> float:
    """Concentration at x inside [t1, t2] on the segment's curve (PKNCA interpolate_conc_linear/_log)."""
    if rule == "zero":
        return 0.0
    f = (x - t1) / (t2 - t1)
    if rule == "log":
        return float(np.exp(np.log(c1) + f * (np.log(c2) - np.log(c1))))
    return float(c1 + f * (c2 - c1))


def _area(rule: str, a: float, b: float, ca: float, cb: float) -> float:
    """Area of one piece: linear, log (b-a)(cb-ca)/ln(cb/ca), or zero (PKNCA auc_integrate)."""
    if rule == "zero" or b == a:
        return 0.0
    if rule == "log":
        return (b - a) * (cb - ca) / np.log(cb / ca)
    return (b - a) * (ca + cb) / 2.0


def _piece_area(t: np.ndarray, c: np.ndarray, a: float, b: float, method: str, lam: float) -> float:
    """Area over [a, b], a piece lying inside one sampling segment or wholly after the last sample."""
    if a >= t[-1]:  # past the last sample: 0 after a trailing BLQ, else Clast exp(-lambda_z (t - tlast))
        if c[-1] == 0:
            return 0.0
        ca, cb = c[-1] * np.exp(-lam * (a - t[-1])), c[-1] * np.exp(-lam * (b - t[-1]))
        return float((ca - cb) / lam)  # exact integral of the exponential = log trapezoid of its two ends
    j = int(np.searchsorted(t, a, side="right")) - 1
    rule = _segment_rule(c[j], c[j + 1], method)
    ca = _interp(t[j], t[j + 1], c[j], c[j + 1], a, rule)
    cb = _interp(t[j], t[j + 1], c[j], c[j + 1], b, rule)
    return float(_area(rule, a, b, ca, cb))


def _first_tmax(t: np.ndarray, c: np.ndarray) -> float:
    """First time of the maximum; NaN when nothing is quantifiable (PKNCA pk.calc.tmax, first.tmax = TRUE)."""
    if c.size == 0 or not (c > 0).any():
        return float("nan")
    return float(t[int(np.argmax(c))])  # argmax returns the first index of the maximum


def auc_interval(days, conc, start: float = 0.0, end: float = 28.0, method: str = "lin-up/log-down") -> float:
    """AUC over [start, end] with PKNCA's interval rules (pk.calc.aucint), zeros read as BLQ.

    * Inside the data every segment is integrated by `method` (lin-up/log-down: log trapezoid on a
      falling segment with both ends > 0, linear otherwise, two zeros -> 0); an interval end falling
      between two samples gets the concentration interpolated on that segment's own curve (linear or
      log), and the partial segment is integrated with the same rule, so the area is exactly the
      integral of the interpolated curve.
    * Before the first sample the concentration is 0 at `start` (PKNCA conc.origin = 0: no CAR-T cells
      before infusion), rising linearly to the first sample.
    * After the last sample: if that sample is BLQ (a kept trailing zero) the concentration stays 0;
      if it is quantifiable (so it is Clast at Tlast) the curve is extrapolated as
      Clast * exp(-lambda_z (t - Tlast)) with lambda_z from `terminal_half_life` on these data
      (PKNCA aucint.inf.obs; the exponential is integrated exactly, as PKNCA's log extrapolation).
      When no half-life qualifies, the AUC is NaN (PKNCA returns NA): it is never truncated at Tlast.
    * All samples BLQ -> 0 (PKNCA). No sample at all -> NaN.

    Differences from PKNCA, both at an interval end between Tlast and a later BLQ sample (or inside a
    falling-to-zero segment): PKNCA aucint.inf.obs extrapolates there with lambda_z, whereas this
    function interpolates towards the observed BLQ sample (as PKNCA aucint.all does); and PKNCA
    integrates such a partial piece with the log rule although it interpolated it linearly.
    """
    _check_method(method)
    if not end > start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    t, c = _profile_arrays(days, conc)
    extrapolate = c.size > 0 and end > t[-1] and c[-1] > 0
    lam = _half_life(t, c, _first_tmax(t, c), 3)["lambda_z"] if extrapolate else float("nan")
    return _auc(t, c, start, end, method, lam)


def _auc(t: np.ndarray, c: np.ndarray, start: float, end: float, method: str, lam: float) -> float:
    """`auc_interval` of a sorted, cleaned profile; `lam` is its lambda_z (NaN when none qualifies), used only
    to extrapolate past a quantifiable last sample."""
    if c.size == 0:
        return float("nan")
    if not (c > 0).any():
        return 0.0
    if end > t[-1] and c[-1] > 0 and not np.isfinite(lam):
        return float("nan")
    if start < t[0]:
        t, c = np.concatenate(([start], t)), np.concatenate(([0.0], c))
    knots = np.unique(np.concatenate(([start, end], t[(t > start) & (t < end)])))
    return float(sum(_piece_area(t, c, a, b, method, lam) for a, b in zip(knots[:-1], knots[1:])))


# ----------------------------------------------------------------------------- log-linear fits
def _loglinear_fit(t: np.ndarray, c: np.ndarray) -> dict:
    """Least-squares fit of ln(c) on t: slope, R^2 and adjusted R^2 = 1 - (1 - R^2)(n - 1)/(n - 2)."""
    y = np.log(c)
    n = t.size
    tc, yc = t - t.sum() / n, y - y.sum() / n  # = t.mean(), y.mean() (numpy's mean is sum / n), without its overhead
    slope = float((tc * yc).sum() / (tc**2).sum())
    ss_res = float(((yc - slope * tc) ** 2).sum())
    ss_tot = float((yc**2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")  # PKNCA: 0/0 -> NaN for a flat line
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - 2) if n > 2 else float("nan")
    return {"slope": slope, "r2": r2, "adj_r2": adj, "n_points": n}


def terminal_half_life(days, conc, tmax: float, min_points: int = 3) -> dict:
    """Terminal half-life by PKNCA's automatic point selection (pk.calc.half.life defaults).

    Candidates are the quantifiable (> 0) samples strictly after `tmax`; fits use the last k of them,
    k = min_points..all. A fit qualifies when lambda_z > 0 and its adjusted R^2 exceeds
    (best adjusted R^2 over all fits, rising ones included) - 1e-4; among qualifying fits the one with
    most points wins. No qualifying fit (fewer than `min_points` candidates, rising or flat tail):
    half_life, lambda_z, adj_r2, first_day, last_day are NaN and n_points is 0.
    """
    if min_points < 3:
        raise ValueError("min_points must be >= 3 (adjusted R^2 needs n > 2)")
    return _half_life(*_profile_arrays(days, conc), tmax, min_points)


def _half_life(t: np.ndarray, c: np.ndarray, tmax: float, min_points: int) -> dict:
    """`terminal_half_life` of a sorted, cleaned profile (what `nca` has already made of its samples)."""
    out = {"half_life": np.nan, "lambda_z": np.nan, "adj_r2": np.nan, "n_points": 0,
           "first_day": np.nan, "last_day": np.nan}
    if not np.isfinite(tmax):
        return out
    mask = (t > tmax) & (c > 0)
    tt, cc = t[mask], c[mask]
    fits = [_loglinear_fit(tt[-k:], cc[-k:]) for k in range(min_points, tt.size + 1)]
    adj = np.array([f["adj_r2"] for f in fits], dtype=float)
    if not fits or np.isnan(adj).all():
        return out
    best = np.nanmax(adj)
    ok = [f for f, a in zip(fits, adj) if f["slope"] < 0 and a > best - ADJ_R2_FACTOR]
    if not ok:
        return out
    fit = max(ok, key=lambda f: f["n_points"])
    k = fit["n_points"]
    lam = -fit["slope"]
    return {"half_life": float(np.log(2) / lam), "lambda_z": lam, "adj_r2": fit["adj_r2"], "n_points": k,
            "first_day": float(tt[-k]), "last_day": float(tt[-1])}


def doubling_time(days, conc, tmax: float, min_points: int = 3) -> dict:
    """Expansion doubling time ln2/slope from one log-linear fit on every quantifiable sample up to Tmax.

    The window runs from the first quantifiable sample to Tmax inclusive (BLQ samples cannot enter a
    log fit). No point selection is made: the expansion phase has few samples. Fewer than
    `min_points` (>= 2) points or a non-rising fit -> doubling_time and adj_r2 NaN, n_points 0.
    adj_r2 is NaN for a 2-point fit. Not a PKNCA parameter; mirrors the half-life fit on the way up.
    """
    if min_points < 2:
        raise ValueError("min_points must be >= 2")
    return _doubling(*_profile_arrays(days, conc), tmax, min_points)


def _doubling(t: np.ndarray, c: np.ndarray, tmax: float, min_points: int) -> dict:
    """`doubling_time` of a sorted, cleaned profile."""
    out = {"doubling_time": np.nan, "adj_r2": np.nan, "n_points": 0}
    if not np.isfinite(tmax):
        return out
    mask = (c > 0) & (t <= tmax)
    if mask.sum() < min_points:
        return out
    fit = _loglinear_fit(t[mask], c[mask])
    if not fit["slope"] > 0:
        return out
    return {"doubling_time": float(np.log(2) / fit["slope"]), "adj_r2": fit["adj_r2"],
            "n_points": fit["n_points"]}


# ----------------------------------------------------------------------------- per-patient NCA
def _nca_one(t: np.ndarray, c: np.ndarray, end: float, method: str) -> dict:
    """NCA parameters of one BLQ-cleaned, sorted profile: the definition `nca` computes for all patients at once
    (tests/test_kinetics.py checks that both give the same numbers, bit for bit)."""
    quant = c > 0
    cmax = float(c.max()) if c.size else float("nan")
    tmax = _first_tmax(t, c)
    tlast = float(t[quant][-1]) if quant.any() else float("nan")
    clast = float(c[quant][-1]) if quant.any() else float("nan")
    hl = _half_life(t, c, tmax, 3)  # once: the AUC extrapolates with the same lambda_z
    dt = _doubling(t, c, tmax, 3)
    return {"cmax": cmax, "tmax": tmax, f"auc_0_{end:g}": _auc(t, c, 0.0, end, method, hl["lambda_z"]),
            "tlast": tlast, "clast": clast, "persistence_day": tlast,
            "doubling_time": dt["doubling_time"], "doubling_adj_r2": dt["adj_r2"],
            "half_life": hl["half_life"], "half_life_adj_r2": hl["adj_r2"], "half_life_n": hl["n_points"]}


def _sorted_samples(kinetics: pd.DataFrame) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
    """Patient ids (sorted) and, over all patients at once, each sample's patient code (position in the ids), day
    and concentration, sorted by patient then day (stable), missing concentrations dropped."""
    code = kinetics.groupby("patient_id", sort=True).ngroup().to_numpy()
    ids = kinetics.groupby("patient_id", sort=True).size().index
    ok = (code >= 0) & kinetics[CONC].notna().to_numpy()
    d = pd.DataFrame({"code": code[ok], "day": kinetics["day"].to_numpy()[ok],
                      "conc": kinetics[CONC].to_numpy()[ok]}).sort_values(["code", "day"], kind="stable")
    return ids, d["code"].to_numpy(), d["day"].to_numpy(dtype=float), d["conc"].to_numpy(dtype=float)


def _blq_keep_all(codes: np.ndarray, c: np.ndarray, rule: BLQRule) -> np.ndarray:
    """`_blq_keep` of every profile at once (samples sorted by patient code, then day)."""
    idx = np.arange(c.size)
    quantified = pd.Series(np.where(c > 0, idx, np.nan)).groupby(codes)
    first_pos, last_pos = quantified.transform("min").to_numpy(), quantified.transform("max").to_numpy()
    zero, none = c == 0, np.isnan(first_pos)  # a profile with no quantifiable sample: every BLQ is a "first" one
    first = zero & (none | (idx < first_pos))
    last = zero & ~none & (idx > last_pos)
    middle = zero & ~first & ~last
    drop = (((rule.first == "drop") & first) | ((rule.middle == "drop") & middle)
            | ((rule.last == "drop") & last))
    return ~drop


def _clean_samples(kinetics: pd.DataFrame, rule: BLQRule):
    """Patient ids (sorted), their numbers of non-missing samples, and every sample after the BLQ rule as arrays
    (patient code, day, concentration; sorted by patient then day); every profile checked at once."""
    ids, codes, day, conc = _sorted_samples(kinetics)
    n_samples = np.bincount(codes, minlength=len(ids))
    keep = _blq_keep_all(codes, conc, rule)
    codes, day, conc = codes[keep], day[keep], conc[keep]
    bad = (conc < 0) | np.r_[False, (codes[1:] == codes[:-1]) & (day[1:] == day[:-1])]
    bounds = np.searchsorted(codes, np.arange(len(ids) + 1))
    if bad.any():  # the first faulty profile's own check raises, with the message a single profile gets
        i = codes[bad][0]
        _profile_arrays(day[bounds[i]:bounds[i + 1]], conc[bounds[i]:bounds[i + 1]])
    return ids, n_samples, codes, day, conc


def _loglinear_rows(t: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and adjusted R^2 of `_loglinear_fit` for each row of t, c (windows of one length), all at once.

    numpy sums each row of a C-ordered array exactly as it sums that window alone, so every number is the one
    `_loglinear_fit` gives (tests/test_kinetics.py compares them bit for bit)."""
    y = np.log(c)
    n = t.shape[1]
    tc, yc = t - t.sum(axis=1, keepdims=True) / n, y - y.sum(axis=1, keepdims=True) / n
    slope = (tc * yc).sum(axis=1) / (tc**2).sum(axis=1)
    ss_res = ((yc - slope[:, None] * tc) ** 2).sum(axis=1)
    ss_tot = (yc**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - 2) if n > 2 else np.full(len(t), np.nan)
    return slope, adj


def _window_fits(t: np.ndarray, c: np.ndarray, ends: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and adjusted R^2 of the log-linear fit of each window t[end - size:end] (one per entry of ends, sizes)."""
    slope, adj = np.full(sizes.size, np.nan), np.full(sizes.size, np.nan)
    for k in np.unique(sizes):
        rows = np.flatnonzero(sizes == k)
        idx = ends[rows, None] - k + np.arange(k)
        slope[rows], adj[rows] = _loglinear_rows(t[idx], c[idx])
    return slope, adj


def _peak_params(codes: np.ndarray, t: np.ndarray, c: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per patient code 0..n-1: cmax, tmax (first day of the maximum), tlast and clast (last quantifiable sample);
    NaN where `_nca_one` gives NaN (no sample; tmax, tlast, clast also when nothing is quantifiable)."""
    conc = pd.Series(c)
    cmax = conc.groupby(codes).max().reindex(range(n)).to_numpy(dtype=float)
    first_max = conc.groupby(codes).idxmax().reindex(range(n))
    tmax = np.full(n, np.nan)
    peaked = cmax > 0
    tmax[peaked] = t[first_max[peaked].to_numpy(dtype=int)]
    last = pd.Series(np.flatnonzero(c > 0)).groupby(codes[c > 0]).last().reindex(range(n))
    tlast, clast = np.full(n, np.nan), np.full(n, np.nan)
    seen = last.notna().to_numpy()
    tlast[seen], clast[seen] = t[last[seen].to_numpy(dtype=int)], c[last[seen].to_numpy(dtype=int)]
    return {"cmax": cmax, "tmax": tmax, "tlast": tlast, "clast": clast}


def _half_lives(codes: np.ndarray, t: np.ndarray, c: np.ndarray, tmax: np.ndarray, n: int) -> pd.DataFrame:
    """`_half_life` (min_points 3) of every patient at once: half_life, lambda_z, adj_r2, n_points per code 0..n-1."""
    cand = (c > 0) & (t > tmax[codes])  # NaN tmax (nothing quantifiable): no candidate
    cc, ct, ccode = c[cand], t[cand], codes[cand]
    m = np.bincount(ccode, minlength=n)
    ends = np.cumsum(m)
    owner = np.repeat(np.arange(n), np.maximum(m - 2, 0))  # one fit per k = 3..m of each patient
    k = np.concatenate([np.arange(3, mi + 1) for mi in m]) if len(owner) else np.zeros(0, int)
    slope, adj = _window_fits(ct, cc, ends[owner], k)
    fits = pd.DataFrame({"code": owner, "k": k, "slope": slope, "adj": adj})
    best = fits.groupby("code")["adj"].transform("max")
    chosen = fits[(fits["slope"] < 0) & (fits["adj"] > best - ADJ_R2_FACTOR)].groupby("code").last()
    out = pd.DataFrame({"half_life": np.nan, "lambda_z": np.nan, "adj_r2": np.nan, "n_points": 0}, index=range(n))
    lam = -chosen["slope"].to_numpy(dtype=float)
    out.loc[chosen.index, ["half_life", "lambda_z", "adj_r2"]] = np.column_stack(
        [np.log(2) / lam, lam, chosen["adj"].to_numpy(dtype=float)])
    out.loc[chosen.index, "n_points"] = chosen["k"].to_numpy()
    return out


def _interp_all(t1: np.ndarray, t2: np.ndarray, c1: np.ndarray, c2: np.ndarray, x: np.ndarray, log: np.ndarray,
                zero: np.ndarray) -> np.ndarray:
    """`_interp` of many pieces at once (arrays; `log` and `zero` say each segment's rule)."""
    f = (x - t1) / (t2 - t1)
    out = c1 + f * (c2 - c1)
    out[log] = np.exp(np.log(c1[log]) + f[log] * (np.log(c2[log]) - np.log(c1[log])))
    out[zero] = 0.0
    return out


def _aucs(codes: np.ndarray, t: np.ndarray, c: np.ndarray, n: int, end: float, method: str,
          lam: np.ndarray) -> np.ndarray:
    """`_auc` over [0, end] of every patient at once: a piece per sampling segment up to `end`, plus the
    extrapolated piece after a last sample before `end`; each patient's pieces added in order, as `_auc` adds them."""
    first = np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, bool)
    origin = first & (t > 0)  # before the first sample the curve starts from 0 at day 0 (PKNCA conc.origin)
    where = np.flatnonzero(origin)
    at = np.insert(np.arange(len(t)), where, where)  # each point's sample (the origin's: the one after it)
    added = np.insert(np.zeros(len(t), bool), where, True)
    code, tt, cc = codes[at], np.where(added, 0.0, t[at]), np.where(added, 0.0, c[at])
    last = np.r_[code[1:] != code[:-1], True] if len(code) else np.zeros(0, bool)
    piece = tt < end  # the piece starting at each point before `end`
    nxt = np.minimum(np.arange(len(tt)) + 1, max(len(tt) - 1, 0))
    a, b = tt, np.where(last, end, np.minimum(tt[nxt], end))
    c1, c2, t2 = cc, cc[nxt], tt[nxt]
    inside = piece & ~last
    zero = (c1 == 0) & (c2 == 0)
    log = ~zero & (method == "lin-up/log-down") & (0 < c2) & (c2 < c1)
    area = np.zeros(len(tt))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        i = np.flatnonzero(inside)
        ca = _interp_all(a[i], t2[i], c1[i], c2[i], a[i], log[i], zero[i])
        cb = _interp_all(a[i], t2[i], c1[i], c2[i], b[i], log[i], zero[i])
        lin = (b[i] - a[i]) * (ca + cb) / 2.0
        lg = (b[i] - a[i]) * (cb - ca) / np.log(cb / ca)
        area[i] = np.where(zero[i], 0.0, np.where(log[i], lg, lin))
        p = np.flatnonzero(piece & last & (cc > 0))  # after the last sample: Clast exp(-lambda_z (t - tlast))
        lz = lam[code[p]]
        ea, eb = cc[p] * np.exp(-lz * (a[p] - tt[p])), cc[p] * np.exp(-lz * (b[p] - tt[p]))
        area[p] = (ea - eb) / lz
    total = _sum_in_order(code[piece], area[piece], n)
    quantified = np.bincount(codes[c > 0], minlength=n) > 0
    sampled = np.bincount(codes, minlength=n) > 0
    ends_quantified = np.zeros(n, bool)
    ends_quantified[code[last]] = (tt[last] < end) & (cc[last] > 0)
    total[~quantified] = 0.0
    total[~sampled | (ends_quantified & ~np.isfinite(lam))] = np.nan
    return total


def _sum_in_order(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per group 0..n-1, its values (sorted by group) added left to right from 0, as Python's sum() adds them."""
    count = np.bincount(groups, minlength=n)
    rank = np.arange(len(groups)) - np.repeat(np.cumsum(count) - count, count)
    table = np.zeros((n, count.max() if n and len(groups) else 0))
    table[groups, rank] = values
    total = np.zeros(n)
    for column in table.T:  # 0 + a0 + a1 + ...; the zeros after a short profile's last piece change nothing
        total = total + column
    return total


def _doublings(codes: np.ndarray, t: np.ndarray, c: np.ndarray, tmax: np.ndarray, n: int) -> pd.DataFrame:
    """`_doubling` (min_points 3) of every patient at once: doubling_time, adj_r2, n_points per code 0..n-1."""
    use = (c > 0) & (t <= tmax[codes])
    m = np.bincount(codes[use], minlength=n)
    fit = np.flatnonzero(m >= 3)
    slope, adj = _window_fits(t[use], c[use], np.cumsum(m)[fit], m[fit])
    rising = slope > 0
    out = pd.DataFrame({"doubling_time": np.nan, "adj_r2": np.nan, "n_points": 0}, index=range(n))
    out.loc[fit[rising], ["doubling_time", "adj_r2"]] = np.column_stack([np.log(2) / slope[rising], adj[rising]])
    out.loc[fit[rising], "n_points"] = m[fit][rising]
    return out


def nca(kinetics: pd.DataFrame, end: float = 28.0, method: str = "lin-up/log-down",
        blq: BLQRule = BLQRule()) -> pd.DataFrame:
    """One row per patient of NCA parameters after the BLQ rule (PKNCA conventions, see module docstring).

    Post-infusion samples only (day >= 0; see `pre_infusion_findings`). n_samples counts non-missing
    post-infusion samples before the BLQ rule; a patient with only pre-infusion samples is not listed. A patient with no quantifiable sample
    has cmax 0, AUC 0 and NaN tmax, tlast, clast, persistence_day (PKNCA: no peak time exists).
    persistence_day equals tlast (last quantifiable day). AUC column is f"auc_0_{end:g}".
    """
    _check_kinetics(kinetics)
    _check_method(method)
    if not end > 0:
        raise ValueError(f"end ({end}) must be after start (0.0)")
    cols = ["patient_id", "n_samples", "cmax", "tmax", f"auc_0_{end:g}", "tlast", "clast", "persistence_day",
            "doubling_time", "doubling_adj_r2", "half_life", "half_life_adj_r2", "half_life_n"]
    ids, n_samples, codes, t, c = _clean_samples(post_infusion(kinetics), blq)
    if not len(ids):
        return pd.DataFrame([], columns=cols)
    n = len(ids)  # every patient at once
    peak = _peak_params(codes, t, c, n)
    hl, dt = _half_lives(codes, t, c, peak["tmax"], n), _doublings(codes, t, c, peak["tmax"], n)
    auc = _aucs(codes, t, c, n, float(end), method, hl["lambda_z"].to_numpy(dtype=float))
    return pd.DataFrame({
        "patient_id": ids.to_numpy(), "n_samples": n_samples, "cmax": peak["cmax"], "tmax": peak["tmax"],
        f"auc_0_{end:g}": auc, "tlast": peak["tlast"], "clast": peak["clast"],
        "persistence_day": peak["tlast"], "doubling_time": dt["doubling_time"].to_numpy(dtype=float),
        "doubling_adj_r2": dt["adj_r2"].to_numpy(dtype=float), "half_life": hl["half_life"].to_numpy(dtype=float),
        "half_life_adj_r2": hl["adj_r2"].to_numpy(dtype=float), "half_life_n": hl["n_points"].to_numpy(dtype="int64"),
    }, columns=cols)


def _zero_floor(conc: pd.Series) -> float:
    """Half the lowest quantifiable value of the data set: the stand-in for LLOQ/2 on log scales."""
    positive = conc[conc > 0]
    return float(positive.min()) / 2.0 if len(positive) else float("nan")


def peak_expansion(kinetics: pd.DataFrame) -> pd.DataFrame:
    """THE peak-expansion covariate (one source of truth): patient_id, peak_copies, log10_peak, peak_imputed.

    A patient with Cmax = 0 (never quantifiable) gets log10_peak = log10(floor), floor = half the lowest
    quantifiable value anywhere in `kinetics` (the usual LLOQ/2 substitution; the LLOQ itself is not in
    the data contract, the lowest reported value is its closest observed proxy). Why not log10(Cmax + 1):
    it would put such a patient at 0, several log10 units below everyone else, an artificial high-leverage
    point in Cox/logistic models; LLOQ/2 says "below what the assay can see" and no more.
    peak_imputed flags these patients so chapters can report and vary the choice. Post-infusion samples
    only (day >= 0): a positive pre-infusion sample is a baseline finding (`pre_infusion_findings`).
    """
    _check_kinetics(kinetics)
    kinetics = post_infusion(kinetics)
    floor = _zero_floor(kinetics[CONC].dropna())
    peak = kinetics.dropna(subset=[CONC]).groupby("patient_id", sort=True)[CONC].max()
    out = pd.DataFrame({"patient_id": peak.index.to_numpy(), "peak_copies": peak.to_numpy(dtype=float)})
    out["peak_imputed"] = out["peak_copies"] <= 0
    out["log10_peak"] = np.log10(out["peak_copies"].where(~out["peak_imputed"], floor))
    return out[["patient_id", "peak_copies", "log10_peak", "peak_imputed"]]


# ----------------------------------------------------------------------------- summaries
def geometric_summary(values: pd.Series) -> dict:
    """n, n_zero, geometric mean and geometric CV% = 100 sqrt(exp(sd(ln x)^2) - 1) (PKNCA business.geocv).

    Zeros cannot enter a log: they are left out and counted in n_zero; missing values are ignored.
    sd uses n - 1 (R's sd); CV is NaN with fewer than 2 positive values.
    """
    x = pd.to_numeric(pd.Series(values), errors="raise").dropna().to_numpy(dtype=float)
    if (x < 0).any():
        raise ValueError("geometric summaries need values >= 0")
    pos = x[x > 0]
    logs = np.log(pos)
    gm = float(np.exp(logs.mean())) if pos.size else float("nan")
    cv = float(100.0 * np.sqrt(np.exp(logs.std(ddof=1) ** 2) - 1.0)) if pos.size >= 2 else float("nan")
    return {"n": int(pos.size), "n_zero": int((x == 0).sum()), "geometric_mean": gm, "geometric_cv_pct": cv}


def fmt_sig(x: float) -> str:
    """Three significant figures with thousands separators (32712 -> '32,700'); 'NA' when missing."""
    if not np.isfinite(x):
        return "NA"
    v = float(f"{x:.3g}")
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def fmt_day(x: float) -> str:
    """Days to one decimal without trailing zeros; 'NA' when missing."""
    return f"{round(float(x), 1):g}" if np.isfinite(x) else "NA"


def _summary_rows(param: str, group: str, x: pd.Series, geometric: bool) -> list[dict]:
    """Tidy rows for one parameter in one group: geometric mean (CV%) or median (range)."""
    base = {"parameter": param, "group": group}
    if geometric:
        g = geometric_summary(x)
        cell = f"{fmt_sig(g['geometric_mean'])} ({fmt_day(g['geometric_cv_pct'])}%)"
        return [{**base, "n": g["n"], "statistic": "geometric_mean", "value": g["geometric_mean"],
                 "formatted": cell},
                {**base, "n": g["n"], "statistic": "geometric_cv_pct", "value": g["geometric_cv_pct"],
                 "formatted": f"{fmt_day(g['geometric_cv_pct'])}%"},
                {**base, "n": g["n"], "statistic": "n_zero_excluded", "value": float(g["n_zero"]),
                 "formatted": str(g["n_zero"])}]
    v = pd.to_numeric(x, errors="raise").dropna()
    med, lo, hi = (float(f(v)) if len(v) else float("nan") for f in (np.median, np.min, np.max))
    cell = f"{fmt_day(med)} ({fmt_day(lo)}\u2013{fmt_day(hi)})"
    return [{**base, "n": len(v), "statistic": "median", "value": med, "formatted": cell},
            {**base, "n": len(v), "statistic": "min", "value": lo, "formatted": fmt_day(lo)},
            {**base, "n": len(v), "statistic": "max", "value": hi, "formatted": fmt_day(hi)}]


def nca_summary(params: pd.DataFrame, by: pd.Series | None = None) -> pd.DataFrame:
    """Literature-style NCA table, tidy: parameter, group, n, statistic, value, formatted.

    Geometric mean (CV%) for Cmax and AUC (zeros excluded, counted in 'n_zero_excluded' rows), median
    (range) for Tmax and Tlast, as in the Kymriah label and PKNCA's summary defaults. The literature
    cell is in `formatted` of the 'geometric_mean' / 'median' rows. Groups: 'Overall', then each level
    of `by` (a Series indexed by patient_id, or by params' row labels); patients with no group only
    count in 'Overall'.
    """
    auc_cols = [c for c in params.columns if c.startswith("auc_0_")]
    spec = [("cmax", True), *[(c, True) for c in auc_cols], ("tmax", False), ("tlast", False)]
    missing = [p for p, _ in spec if p not in params.columns]
    if missing or not auc_cols:
        raise ValueError(f"params lacks NCA column(s) {missing or ['auc_0_<end>']}: pass the output of nca()")
    subsets = [("Overall", params)]
    if by is not None:
        ids = pd.Index(params["patient_id"])
        grp = _align(by, ids, "by") if ids.isin(by.index).all() else _align(by, params.index, "by")
        grp_values = grp.to_numpy()
        subsets += [(str(lvl), params[grp_values == lvl]) for lvl in _group_levels(grp)]
    rows = [r for name, sub in subsets for p, geo in spec for r in _summary_rows(p, name, sub[p], geo)]
    return pd.DataFrame(rows, columns=["parameter", "group", "n", "statistic", "value", "formatted"])


def spearman_ci(x, y, conf: float = 0.95) -> dict:
    """Spearman rho with a Fisher-z CI, var(z) = 1.06/(n - 3) (Fieller, Hartley & Pearson, Biometrika 1957).

    p-value from scipy.stats.spearmanr (t approximation). Pairs with a missing value are dropped.
    Needs n >= 4; a constant variable gives NaN rho/CI/p with `message` saying so (no warning raised).
    |rho| = 1 gives the degenerate CI (rho, rho).
    """
    xs, ys = pd.Series(np.asarray(x, dtype=float)), pd.Series(np.asarray(y, dtype=float))
    if len(xs) != len(ys):
        raise ValueError("x and y must have the same length")
    ok = xs.notna().to_numpy() & ys.notna().to_numpy()
    xv, yv = xs.to_numpy()[ok], ys.to_numpy()[ok]
    n = int(ok.sum())
    out = {"rho": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": n, "conf": conf,
           "method": "Spearman; Fisher z CI with SE sqrt(1.06/(n-3))", "message": ""}
    if n < 4:
        return {**out, "message": "fewer than 4 complete pairs"}
    if np.ptp(xv) == 0 or np.ptp(yv) == 0:
        return {**out, "message": "a variable is constant"}
    res = stats.spearmanr(xv, yv)
    rho = float(res.statistic)
    if abs(rho) >= 1.0:
        return {**out, "rho": rho, "ci_low": rho, "ci_high": rho, "p_value": float(res.pvalue)}
    half = stats.norm.ppf(0.5 + conf / 2.0) * np.sqrt(1.06 / (n - 3))  # FHP 1957: 1.06/(n-3) is the variance
    z = np.arctanh(rho)
    return {**out, "rho": rho, "ci_low": float(np.tanh(z - half)), "ci_high": float(np.tanh(z + half)),
            "p_value": float(res.pvalue)}


def associations(params: pd.DataFrame, covariates: pd.DataFrame, outcomes: list[str], terms: list[str],
                 conf: float = 0.95) -> pd.DataFrame:
    """Spearman rho (Fisher-z CI, `spearman_ci`) of each NCA outcome with each covariate, one row per pair.

    `params` (from `nca`) and `covariates` (e.g. derive.patient_table) are joined on patient_id; pairs with a
    missing value are dropped per row (n says how many remain). A term absent from `covariates` (or without any
    value) gives a row of NaN with message 'not in this cohort' rather than silently vanishing. Columns: outcome,
    term, estimate, ci_low, ci_high, p_value, n, method, message. Booleans/Int64 are read as numbers (ranks).
    """
    missing = [c for c in ["patient_id", *outcomes] if c not in params.columns]
    if missing or "patient_id" not in covariates.columns:
        raise ValueError(f"params lacks {missing} or covariates lacks 'patient_id'")
    df = params[["patient_id", *outcomes]].merge(
        covariates[["patient_id", *[t for t in terms if t in covariates.columns]]], on="patient_id", how="left")
    rows = []
    for outcome in outcomes:
        for term in terms:
            if term not in df.columns or df[term].isna().all():
                res = {**spearman_ci([], [], conf), "message": "not in this cohort"}
            else:
                y = pd.to_numeric(df[term].astype("Float64"), errors="raise").to_numpy(dtype=float, na_value=np.nan)
                res = spearman_ci(df[outcome].to_numpy(dtype=float), y, conf)
            rows.append({"outcome": outcome, "term": term, "estimate": res["rho"], "ci_low": res["ci_low"],
                         "ci_high": res["ci_high"], "p_value": res["p_value"], "n": res["n"],
                         "method": res["method"], "message": res["message"]})
    return pd.DataFrame(rows, columns=["outcome", "term", "estimate", "ci_low", "ci_high", "p_value", "n",
                                       "method", "message"])


# ----------------------------------------------------------------------------- plots
def _get_ax(ax: Axes | None) -> Axes:
    """The given Axes, or a new one on a new figure."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))[1]


def _no_data(ax: Axes, why: str) -> Axes:
    """An empty panel that says why it is empty (a missing grouping, e.g. no CRS grade in the cohort)."""
    ax.text(0.5, 0.5, f"Nothing to draw: {why}", transform=ax.transAxes, ha="center", va="center")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _day_axis(ax: Axes, linear_to: float, last_day: float) -> None:
    """Day axis linear on [0, linear_to] (weekly ticks) and logarithmic after it (symlog), starting at day 0."""
    ax.set_xscale("symlog", linthresh=linear_to, linscale=2.0)
    late = [d for d in (90, 180, 365, 730, 1825) if d <= max(last_day, linear_to)]
    ticks = [*np.arange(0.0, linear_to + 1e-9, 7.0).tolist(), *late]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlim(0, max(last_day, linear_to) * 1.05)


class PatientLines(LineCollection):
    """Every patient's polyline, their vertices taken through the axes' scales in one call.

    On log or symlog axes matplotlib transforms a collection's paths one by one (a tenth of a millisecond
    each), when it draws the figure, when it measures it, and when the legend looks for its best place: most
    of a 5,000-patient figure's time. The same elementwise scales applied to all vertices at once give the
    same numbers, handed on with the affine rest of the transform, as matplotlib's own loop hands them on.
    The pixels are the same (tests/test_kinetics.py).
    """

    def _prepare_points(self):
        transform = self.get_transform()
        if transform.is_affine or not self._paths:
            return super()._prepare_points()
        paths = self._paths
        try:
            self._paths = self._scaled(transform)
            self._transform = transform.get_affine()
            return super()._prepare_points()
        finally:
            self._paths, self._transform = paths, transform

    def _scaled(self, transform) -> list[Path]:
        """The paths through the non-affine part of `transform`: on the axes' data transform, kept while the
        paths and the axes' scales stay the same (a figure is laid out, drawn and its legend placed with the
        same scaled vertices: three passes, one computation)."""
        axes = self.axes
        on_data = axes is not None and transform is axes.transData
        key = (self._paths, axes.xaxis.get_transform(), axes.yaxis.get_transform()) if on_data else None
        cached = getattr(self, "_scaled_paths", None)
        if key is not None and cached is not None and all(a is b for a, b in zip(cached[0], key)):
            return cached[1]
        paths = self._paths
        ends = np.cumsum([len(p.vertices) for p in paths])[:-1]
        scaled = transform.transform_non_affine(np.concatenate([p.vertices for p in paths]))
        out = [Path._fast_from_codes_and_verts(v, None, p)  # as Path(v), without its checks
               for v, p in zip(np.split(scaled, ends), paths)]
        if key is not None:
            self._scaled_paths = (key, out)
        return out


def _patient_lines(df: pd.DataFrame) -> list[np.ndarray]:
    """(day, y) polylines, one per patient, of a frame sorted by patient_id then day."""
    xy = df[["day", "y"]].to_numpy(dtype=float)
    ids = df["patient_id"].to_numpy()
    return np.split(xy, np.flatnonzero(ids[1:] != ids[:-1]) + 1) if len(xy) else []


def plot_spaghetti(kinetics: pd.DataFrame, group: pd.Series | None = None, ax: Axes | None = None,
                   linear_to: float | None = None, max_patients: int = 60) -> Axes:
    """Per-patient kinetics on a log axis (thin lines) with the per-group median by day (bold).

    Log y axis (not symlog): BLQ zeros are plotted at a floor = half the lowest quantifiable value
    (same floor as `peak_expansion`), drawn as a dotted line and stated in the legend. `group` is a
    Series indexed by patient_id; the median at a day is over the patients sampled that day, with
    BLQ at the floor, drawn only on days with >= MEDIAN_MIN_N (3) of the group's patients sampled
    (late days hold few survivors: their median would follow single patients). With `linear_to` (e.g. 28)
    the day axis is linear up to that day and logarithmic after it, so the first month and years of
    persistence both stay readable. Every patient is drawn (one LineCollection per group); above
    `max_patients` patients the lines fade (alpha 0.35 x max_patients / n, at least 0.03) so the
    medians stay visible.
    """
    _check_kinetics(kinetics)
    ax = _get_ax(ax)
    df = kinetics.dropna(subset=[CONC]).sort_values(["patient_id", "day"], kind="stable")
    floor = _zero_floor(df[CONC])
    df = df.assign(y=df[CONC].where(df[CONC] > 0, floor))
    pids = pd.Index(df["patient_id"].unique())
    grp = _align(group, pids, "group") if group is not None else pd.Series("All patients", index=pids)
    if not _group_levels(grp):
        return _no_data(ax, "no patient with kinetics has a group")
    alpha = 0.35 if len(pids) <= max_patients else max(0.03, 0.35 * max_patients / len(pids))
    for i, lvl in enumerate(_group_levels(grp)):
        color = f"C{i % 10}"
        members = grp.index[grp == lvl]
        sub = df[df["patient_id"].isin(members)]
        ax.add_collection(PatientLines(_patient_lines(sub), colors=color, linewidths=0.7, alpha=alpha))
        by_day = sub.groupby("day", sort=True)["y"]
        med = by_day.median()[by_day.count() >= MEDIAN_MIN_N]
        if len(med):
            ax.plot(med.index, med.to_numpy(), color=color, lw=2.5, label=f"{lvl} median (n={len(members)})")
    ax.axhline(floor, color="0.5", ls=":", lw=1, label="BLQ, plotted at \u00bd lowest quantified value")
    ax.set_yscale("log")
    if linear_to is not None and len(df):
        _day_axis(ax, float(linear_to), float(df["day"].max()))
    ax.set_xlabel("Day after infusion")
    ax.set_ylabel("CAR transgene copies/\u00b5g DNA")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_points_box(values: pd.Series, groups: pd.Series, ax: Axes | None = None, log: bool = True,
                    ylabel: str = "") -> Axes:
    """Box plot per group with every patient's value on top (deterministic spread, no seaborn palette).

    `groups` is aligned on `values`' index. On a log axis values <= 0 are drawn as open circles at a
    floor = half the lowest positive value (the LLOQ/2 convention of `peak_expansion`) and enter the
    box at that floor; the x label says how many. Missing values are left out.
    """
    ax = _get_ax(ax)
    v = pd.to_numeric(values, errors="raise")
    g = _align(groups, v.index, "groups")
    keep = v.notna().to_numpy() & g.notna().to_numpy()
    v, g = v[keep], g[keep]
    floor = _zero_floor(v) if log else float("nan")
    shown = v.where(v > 0, floor) if log else v
    levels = _group_levels(g)
    if not levels:
        return _no_data(ax, "no patient has both a value and a group")
    data = [shown[(g == lvl).to_numpy()].to_numpy(dtype=float) for lvl in levels]
    ax.boxplot(data, positions=range(len(levels)), widths=0.5, showfliers=False,
               medianprops={"color": "black"}, boxprops={"color": "0.3"})
    for i, (lvl, y) in enumerate(zip(levels, data)):
        x = i + (np.linspace(-0.15, 0.15, y.size) if y.size > 1 else np.zeros(y.size))
        imputed = (v[(g == lvl).to_numpy()] <= 0).to_numpy() if log else np.zeros(y.size, bool)
        ax.scatter(x[~imputed], y[~imputed], s=18, color=f"C{i % 10}", zorder=3)
        ax.scatter(x[imputed], y[imputed], s=18, facecolors="none", edgecolors=f"C{i % 10}", zorder=3)
    ax.set_xticks(range(len(levels)), [f"{lvl}\n(n={len(d)})" for lvl, d in zip(levels, data)])
    n_floor = int((v <= 0).sum()) if log else 0
    if n_floor:
        ax.set_xlabel(f"open circles: {n_floor} value(s) of 0 drawn at \u00bd lowest positive value")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    return ax
