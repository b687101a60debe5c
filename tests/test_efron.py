"""helpers.efron: Efron derivatives at once equal lifelines' own loops; fits equal lifelines' fits."""
import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, CoxTimeVaryingFitter
from lifelines.fitters.coxph_fitter import SemiParametricPHFitter

from helpers import efron, survival

OPTIONS = survival.FIT_OPTIONS


def _cohort(n: int, seed: int, tie_scale: float) -> pd.DataFrame:
    """Right-censored data with many ties (times rounded to tie_scale days), weights and a stratum."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    t = np.ceil(rng.exponential(200, n) * np.exp(-0.4 * x[:, 0]) / tie_scale) * tie_scale
    return pd.DataFrame({"t": t, "e": (rng.random(n) < 0.6).astype(int), "a": x[:, 0],
                         "b": (x[:, 1] > 0).astype(float), "s": rng.integers(0, 2, n),
                         "w": rng.uniform(0.5, 2.0, n)})


@pytest.mark.parametrize("n,tie_scale", [(12, 30.0), (60, 1.0), (400, 7.0)])
def test_derivatives_equal_lifelines_loop(n, tie_scale):
    d = _cohort(n, n, tie_scale).sort_values("t", kind="stable").reset_index(drop=True)
    X, T, E, W = d[["a", "b"]], d["t"], d["e"].astype(bool), d["w"]
    for beta in (np.zeros(2), np.array([0.7, -1.3]), np.array([-3.0, 2.0])):
        want = SemiParametricPHFitter()._get_efron_values_single(X, T, E, W, None, beta)
        got = efron.derivatives(X.to_numpy(), T.to_numpy(), E.to_numpy(), W.to_numpy(), beta)
        for w, g in zip(want, got):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_counting_process_derivatives_equal_lifelines():
    rng = np.random.default_rng(3)
    n = 150
    start = np.round(rng.uniform(0, 50, n))
    stop = start + np.ceil(rng.exponential(80, n))
    X = rng.normal(size=(n, 2))
    E = rng.random(n) < 0.5
    W = np.ones(n)
    beta = np.array([0.4, -0.8])
    want = CoxTimeVaryingFitter._get_gradients(X, E, start, stop, W, beta)
    got = efron.derivatives(X, stop, E, W, beta, start)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-11)


def test_a_single_event_and_no_event():
    X = np.array([[1.0], [0.0], [1.0]])
    stop, W, beta = np.array([5.0, 3.0, 8.0]), np.ones(3), np.array([0.2])
    h, g, ll = efron.derivatives(X, stop, np.array([False, True, False]), W, beta)
    # one death at t=3 among all three: ll = 0 - log(e^0.2 + 1 + e^0.2)
    assert ll == pytest.approx(-np.log(1 + 2 * np.exp(0.2)))
    assert g[0] == pytest.approx(0 - 2 * np.exp(0.2) / (1 + 2 * np.exp(0.2)))
    h, g, ll = efron.derivatives(X, stop, np.zeros(3, bool), W, beta)
    assert ll == 0 and not g.any() and not h.any()


@pytest.mark.parametrize("kwargs", [{}, {"strata": ["s"]}, {"weights_col": "w"}])
def test_fits_equal_lifelines_fits(kwargs):
    d = _cohort(300, 11, 5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines warns about non-integer weights
        want = CoxPHFitter().fit(d, "t", "e", fit_options=OPTIONS, **kwargs)
        got = efron.FastCoxPHFitter().fit(d, "t", "e", fit_options=OPTIONS, **kwargs)
    pd.testing.assert_frame_equal(got.summary, want.summary, rtol=1e-9)
    assert got.log_likelihood_ == pytest.approx(want.log_likelihood_, rel=1e-12)
    assert got.concordance_index_ == want.concordance_index_


@pytest.mark.parametrize("kwargs", [{}, {"strata": ["s"]}])
def test_the_baseline_observation_is_lifelines_own_computed_when_read(kwargs, monkeypatch):
    d = _cohort(80, 4, 3.0)[["t", "e", "a", "b", "s"]].assign(b=lambda x: x["b"].astype(bool))
    want = CoxPHFitter().fit(d, "t", "e", fit_options=OPTIONS, **kwargs)._central_values
    describe = pd.DataFrame.describe
    with monkeypatch.context() as m:
        m.setattr(pd.DataFrame, "describe", lambda *a, **k: pytest.fail("describe() ran during the fit"))
        fitted = efron.FastCoxPHFitter().fit(d, "t", "e", fit_options=OPTIONS, **kwargs)
    d.loc[:, "a"] = 0.0  # the caller's frame changed after the fit: the baseline is that of the data fitted
    assert pd.DataFrame.describe is describe
    pd.testing.assert_frame_equal(fitted._central_values, want)  # medians for numbers, the mode for the flag
    assert fitted._central_values is fitted._central_values  # computed once
    assert not hasattr(efron._FastSemiParametricPHFitter(), "_central_values")  # before a fit, as lifelines'


def test_time_varying_fit_equals_lifelines():
    rng = np.random.default_rng(5)
    rows = []
    for i in range(200):
        end, switch, a = float(np.ceil(rng.exponential(150))), float(np.round(rng.uniform(0, 100))), rng.normal()
        event = int(rng.random() < 0.6)
        if 0 < switch < end:
            rows += [(i, 0.0, switch, 0, 0, a), (i, switch, end, event, 1, a)]
        else:
            rows.append((i, 0.0, end, event, int(switch <= 0), a))
    cp = pd.DataFrame(rows, columns=["id", "start", "stop", "e", "x", "a"]).astype(float)
    args = dict(id_col="id", event_col="e", start_col="start", stop_col="stop", fit_options=OPTIONS)
    want = CoxTimeVaryingFitter().fit(cp, **args)
    got = efron.FastCoxTimeVaryingFitter().fit(cp, **args)
    pd.testing.assert_frame_equal(got.summary, want.summary, rtol=1e-9)
    pd.testing.assert_frame_equal(got.baseline_cumulative_hazard_, want.baseline_cumulative_hazard_, rtol=1e-10)


def test_a_failed_fit_is_told_in_a_readers_words():
    lifelines_text = ("separation/non-convergence: delta contains nan value(s). Convergence halted. Please see "
                      "https://lifelines.readthedocs.io; Column remission_day_by_landmark have very low variance")
    reason = survival.fit_failure(lifelines_text)
    assert "_" not in reason and "nan" not in reason.split() and "http" not in reason
    assert "did not converge" in reason
    assert survival.fit_failure("Singular matrix") == "singular matrix"


def test_death_moments_are_efron_steps_over_the_risk_set():
    d = _cohort(80, 2, 20.0)
    X, t, e, beta = d[["a", "b"]].to_numpy(), d["t"].to_numpy(), d["e"].to_numpy(bool), np.array([0.5, -0.7])
    order, mean, cov = efron.death_moments(X, t, e, beta)
    w = np.exp(X @ beta)
    want_mean, want_cov = [], []
    for time in np.unique(t[e]):  # the loop of R's cox.zph: the k-th of nd tied deaths removes k/nd of them
        risk, dead = t >= time, (t == time) & e
        for k in range(dead.sum()):
            wk = w * (risk - dead * k / dead.sum())
            m = wk @ X / wk.sum()
            want_mean.append(m)
            want_cov.append((X * wk[:, None]).T @ X / wk.sum() - np.outer(m, m))
    np.testing.assert_allclose(mean, want_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, want_cov, rtol=1e-9, atol=1e-12)
    assert (np.diff(t[e][order]) >= 0).all()
