"""Efron partial-likelihood derivatives for all event times at once, for lifelines' Cox fitters.

lifelines (0.30) computes the Hessian, gradient and log partial likelihood of a Cox model under
Efron's ties in a Python loop over observations (CoxPHFitter) or over event times with a mask over
every row (CoxTimeVaryingFitter): at 5,000 patients a fit takes 0.5-2 s. The same sums, formed
with cumulative sums over the rows sorted by time, cost milliseconds. The fitters below are
lifelines' own (its Newton-Raphson with step halving, convergence checks and warnings, standard
errors, summary); only the function that returns the derivatives at a given beta is replaced, the
"baseline observation" partial-effect plots use is computed when first read, not at every fit, and the
concordance index is counted without lifelines' loop over the subjects (`helpers.concordance`).
tests/test_efron.py checks it against lifelines' own functions, with ties, weights, strata and
delayed entry.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, CoxTimeVaryingFitter, utils
from lifelines.fitters.coxph_fitter import SemiParametricPHFitter

from helpers import concordance


def _at_least(sorted_values: np.ndarray, cumulative: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sums of the rows whose value is >= t, from suffix sums over the rows sorted by that value."""
    return cumulative[np.searchsorted(sorted_values, t, side="left")]


def _suffix_sums(values: np.ndarray, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values sorted, and the sums of terms over rows from each sorted position to the end (plus a zero row)."""
    order = np.argsort(values, kind="stable")
    suffix = np.cumsum(terms[order][::-1], axis=0)[::-1]
    return values[order], np.vstack([suffix, np.zeros((1, terms.shape[1]))])


def _sum_from_last(per_time: np.ndarray) -> np.ndarray:
    """The per-event-time terms added one by one from the last time to the first, as lifelines adds them."""
    return np.cumsum(per_time[::-1], axis=0)[-1] if len(per_time) else np.zeros(per_time.shape[1:])


def derivatives(X: np.ndarray, stop: np.ndarray, events: np.ndarray, weights: np.ndarray, beta: np.ndarray,
                start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Hessian, gradient and log partial likelihood at beta, Efron's ties, as lifelines defines them.

    The risk set at event time t holds the rows with stop >= t (and start < t when entry times are
    given, as lifelines' counting-process form); rows need not be sorted.
    """
    X = np.asarray(X, float)
    stop, weights = np.asarray(stop, float), np.asarray(weights, float)
    events = np.asarray(events).astype(bool)
    n, d = X.shape
    phi = weights * np.exp(X @ beta)
    phi_x = phi[:, None] * X
    terms = np.hstack([phi[:, None], phi_x, (X[:, :, None] * phi_x[:, None, :]).reshape(n, d * d)])

    death_times, group = np.unique(stop[events], return_inverse=True)
    sorted_stop, suffix = _suffix_sums(stop, terms)
    risk = _at_least(sorted_stop, suffix, death_times)
    if start is not None:
        sorted_start, start_suffix = _suffix_sums(np.asarray(start, float), terms)
        risk = risk - _at_least(sorted_start, start_suffix, death_times)

    n_groups = len(death_times)
    tie, x_death_sum = np.zeros((n_groups, terms.shape[1])), np.zeros((n_groups, d))
    np.add.at(tie, group, terms[events])
    w_dead = weights[events]
    np.add.at(x_death_sum, group, w_dead[:, None] * X[events])
    tied = np.bincount(group, minlength=n_groups).astype(float)
    weighted_average = np.bincount(group, weights=w_dead, minlength=n_groups) / tied

    # One term per death: the l-th of d tied deaths removes l/d of the tied deaths' sums (Efron).
    g = np.sort(group, kind="stable")
    proportion = (np.arange(len(g)) - np.searchsorted(g, g, side="left")) / tied[g]
    risk_phi, risk_phi_x, risk_phi_xx = risk[:, 0], risk[:, 1:1 + d], risk[:, 1 + d:].reshape(-1, d, d)
    tie_phi, tie_phi_x, tie_phi_xx = tie[:, 0], tie[:, 1:1 + d], tie[:, 1 + d:].reshape(-1, d, d)
    denom = 1.0 / (risk_phi[g] - proportion * tie_phi[g])
    summand = (risk_phi_x[g] - proportion[:, None] * tie_phi_x[g]) * denom[:, None]

    # Per event time, then summed over times from the last to the first, as lifelines accumulates them.
    a1 = (np.bincount(g, weights=denom, minlength=n_groups)[:, None, None] * risk_phi_xx
          - np.bincount(g, weights=proportion * denom, minlength=n_groups)[:, None, None] * tie_phi_xx)
    a2 = np.zeros((n_groups, d, d))
    np.add.at(a2, g, summand[:, :, None] * summand[:, None, :])
    per_time_summand = np.zeros((n_groups, d))
    np.add.at(per_time_summand, g, summand)
    log_denom = np.bincount(g, weights=np.log(denom), minlength=n_groups)

    hessian = _sum_from_last(weighted_average[:, None, None] * (a2 - a1))
    gradient = _sum_from_last(x_death_sum - weighted_average[:, None] * per_time_summand)
    log_lik = float(_sum_from_last(x_death_sum @ beta + weighted_average * log_denom))
    return hessian, gradient, log_lik


def death_moments(X: np.ndarray, time: np.ndarray, events: np.ndarray,
                  beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per death, Efron's step: the weighted mean and covariance of X over the risk set at its time.

    The l-th of d deaths tied at t weighs each of them by 1 - l/d (Efron); deaths come in the order of
    `order`, returned first (the rows of X[events] sorted by time, stable), as R's cox.zph uses them.
    """
    X, time = np.asarray(X, float), np.asarray(time, float)
    events = np.asarray(events).astype(bool)
    n, d = X.shape
    eta = X @ beta
    w = np.exp(eta - eta.max())  # moments are ratios: shifting the linear predictor changes nothing
    wx = w[:, None] * X
    terms = np.hstack([w[:, None], wx, (X[:, :, None] * wx[:, None, :]).reshape(n, d * d)])
    death_times, group = np.unique(time[events], return_inverse=True)
    sorted_time, suffix = _suffix_sums(time, terms)
    risk = _at_least(sorted_time, suffix, death_times)
    tie = np.zeros_like(risk)
    np.add.at(tie, group, terms[events])
    order = np.argsort(group, kind="stable")
    g = group[order]
    tied = np.bincount(group, minlength=len(death_times)).astype(float)
    proportion = (np.arange(len(g)) - np.searchsorted(g, g, side="left")) / tied[g]
    sums = risk[g] - proportion[:, None] * tie[g]
    mean = sums[:, 1:1 + d] / sums[:, :1]
    cov = sums[:, 1 + d:].reshape(-1, d, d) / sums[:, 0, None, None] - mean[:, :, None] * mean[:, None, :]
    return order, mean, cov


class _EagerCentralValues:
    """lifelines' own computation of a fit's "baseline" observation (its recursion over strata included)."""

    _compute_central_values_of_raw_training_data = SemiParametricPHFitter._compute_central_values_of_raw_training_data


class _FastSemiParametricPHFitter(SemiParametricPHFitter):
    """The model CoxPHFitter fits with a Breslow baseline, its Efron derivatives from `derivatives`, its
    baseline observation computed when first read."""

    def _compute_central_values_of_raw_training_data(self, df: pd.DataFrame, strata=None, name: str = "baseline"):
        """What `_central_values` computes when read: lifelines' medians and modes of the training data come from
        `describe()` over every column, a fifth of a small fit, and only partial-effect plots and predictions
        for the typical patient read them."""
        return df.copy(), strata, name

    @property
    def _central_values(self) -> pd.DataFrame:
        if "_deferred_central_values" not in self.__dict__:
            raise AttributeError("_central_values")  # not fitted yet, as lifelines' own attribute
        value = self.__dict__["_deferred_central_values"]
        if isinstance(value, tuple):
            value = self.__dict__["_deferred_central_values"] = (
                _EagerCentralValues()._compute_central_values_of_raw_training_data(*value))
        return value

    @_central_values.setter
    def _central_values(self, value) -> None:
        self.__dict__["_deferred_central_values"] = value

    @property
    def concordance_index_(self) -> float:
        """lifelines' concordance of the fit (summed over strata, single-subject strata left out), its pairs
        counted by `helpers.concordance` instead of lifelines' loop over the subjects."""
        if not hasattr(self, "_concordance_index_"):
            df = self._predicted_partial_hazards_
            groups = [g for _, g in df.groupby(self.strata) if g.shape[0] > 1] if self.strata else [df]
            counts = [concordance.summary_statistics(g["T"].values, -g["P"].values, g["E"].values) for g in groups]
            self._concordance_index_ = concordance.ratio(*(sum(c) for c in zip(*counts))) if counts else \
                concordance.ratio(0, 0, 0)
        return self._concordance_index_

    def _choose_gradient_calculator(self, T: pd.Series, X: pd.DataFrame, entries: pd.Series | None):
        """Every fit, with or without entry times, takes the derivatives from `derivatives`."""
        def gradients(X, T, E, weights, entries, beta):
            return derivatives(X.to_numpy(), T.to_numpy(), E.to_numpy(), weights.to_numpy(), beta,
                               None if entries is None else entries.to_numpy())
        return gradients


class FastCoxPHFitter(CoxPHFitter):
    """lifelines' CoxPHFitter (Breslow baseline) whose Efron derivatives are computed at once."""

    def __getattr__(self, attr: str):
        """The fitted model's attribute, read once: lifelines' delegation (hasattr, then getattr) computes
        a property such as `summary` twice."""
        if attr == "_model":
            raise AttributeError("Must call `fit` first.")
        try:
            return getattr(self._model, attr)
        except AttributeError:
            raise AttributeError(f"{self._class_name} has no attribute '{attr}'") from None

    def _fit_model_breslow(self, *args, **kwargs):
        """As lifelines' own, with the fast semi-parametric model."""
        if not utils.CensoringType.is_right_censoring(self):
            raise ValueError("Left or interval censoring is not supported for the semi-parametric Cox model.")
        model = _FastSemiParametricPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio, strata=self.strata,
                                            alpha=self.alpha, label=self._label)
        model.fit(*args, **kwargs)
        return model


class FastCoxTimeVaryingFitter(CoxTimeVaryingFitter):
    """lifelines' CoxTimeVaryingFitter whose Efron derivatives and baseline hazard are computed at once."""

    @staticmethod
    def _get_gradients(X, events, start, stop, weights, beta):
        """lifelines' counting-process derivatives (risk set: start < t <= stop), from `derivatives`."""
        return derivatives(X, stop, events, weights, beta, start)

    def _compute_cumulative_baseline_hazard(self, tv_data, events, start, stop, weights) -> pd.DataFrame:
        """Breslow's cumulative baseline hazard at each event time, as lifelines computes it."""
        hazards = np.asarray(self.predict_partial_hazard(tv_data), float).ravel()
        stop_v, start_v = stop.to_numpy(float), start.to_numpy(float)
        dead = events.to_numpy(bool)
        times, group = np.unique(stop_v[dead], return_inverse=True)
        deaths = np.bincount(group, weights=weights.to_numpy(float)[dead], minlength=len(times))
        sorted_stop, at_stop = _suffix_sums(stop_v, hazards[:, None])
        sorted_start, at_start = _suffix_sums(start_v, hazards[:, None])
        at_risk = _at_least(sorted_stop, at_stop, times)[:, 0] - _at_least(sorted_start, at_start, times)[:, 0]
        return pd.DataFrame({"baseline hazard": deaths / at_risk}, index=times).cumsum()
