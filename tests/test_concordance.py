"""Harrell's C counted without lifelines' loop: by hand, and against lifelines' own counts and fitters."""
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.utils.concordance import _concordance_summary_statistics

from helpers.concordance import concordance_index, summary_statistics
from helpers.efron import FastCoxPHFitter


def test_hand_counted_pairs_with_a_censoring_at_a_death_time():
    # deaths at 1 (score 1) and 2 (score 3), censored at 2 (score 2), death at 3 (score 4).
    # The death at 1 is outlived by all three (3 pairs, all with a higher score: correct); the death at 2 by the
    # death at 3 (correct) and by the censoring at 2 (a censoring at the same time counts as later: score 2 < 3,
    # discordant). 5 pairs, 4 correct, none tied: C = 0.8.
    t, e, s = [1, 2, 2, 3], [1, 1, 0, 1], [1, 3, 2, 4]
    assert summary_statistics(t, s, e) == (4, 0, 5)
    assert concordance_index(t, s, e) == 0.8


def test_tied_scores_count_half():
    # the death at 1 and the subject at 2 have the same score: 1 pair, tied -> C = 0.5
    assert summary_statistics([1, 2], [7, 7], [1, 0]) == (0, 1, 1)
    assert concordance_index([1, 2], [7, 7], [1, 0]) == 0.5


@pytest.mark.parametrize("n", [1, 2, 17, 64, 65, 200, 3000])
def test_counts_equal_lifelines(n):
    rng = np.random.default_rng(n)
    for times_range, decimals in ((10, 0), (10**6, 3)):
        t = rng.integers(1, times_range, n).astype(float)
        e = (rng.random(n) < 0.6).astype(float)
        s = np.round(rng.normal(size=n), decimals)
        assert summary_statistics(t, s, e) == tuple(int(v) for v in _concordance_summary_statistics(t, s, e))


def test_no_pair_and_missing_values_fail_as_in_lifelines():
    with pytest.raises(ZeroDivisionError):
        concordance_index([1, 2], [1, 2], [0, 0])
    with pytest.raises(ValueError, match="NaNs"):
        concordance_index([1, 2], [np.nan, 2], [1, 0])


@pytest.mark.parametrize("strata", [None, ["arm"]])
def test_cox_fit_concordance_equals_lifelines(strata):
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({"x": rng.normal(size=n), "arm": rng.integers(0, 3, n),
                       "T": rng.integers(1, 60, n).astype(float), "E": (rng.random(n) < 0.7).astype(int)})
    df.loc[df.index[:1], "arm"] = 9  # a stratum of one subject: left out of the pairs, as lifelines does
    ours = FastCoxPHFitter().fit(df, "T", "E", strata=strata).concordance_index_
    ref = CoxPHFitter().fit(df, "T", "E", strata=strata).concordance_index_
    assert ours == ref
