"""The published facts and their verdicts: count rules from the definition of an exact CI, p-value phrasing,
the shipped cohort's known verdicts, and the quick (CI-free) fits agreeing with the full ones."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from helpers import derive, published
from helpers.cohort import load_cohort
from helpers.paths import SHIPPED_COHORT


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The definition (Clopper & Pearson 1934): beta quantiles, 0 and 1 at the ends."""
    lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    return lo, hi


@pytest.fixture(scope="module")
def shipped():
    cohort = load_cohort(SHIPPED_COHORT)
    return cohort, derive.patient_table(cohort)


def test_exact_rule_needs_the_same_count_and_size():
    assert published.count_agrees(16, 24, 16, 24, "exact")
    assert not published.count_agrees(15, 24, 16, 24, "exact")
    assert not published.count_agrees(16, 25, 16, 24, "exact")


@pytest.mark.parametrize("k", range(15, 32))
def test_consistent_rule_is_the_published_proportion_inside_the_exact_interval(k):
    lo, hi = clopper_pearson(k, 40)
    assert published.count_agrees(k, 40, 16, 24, "consistent") == (lo <= 16 / 24 <= hi)


def test_consistent_rule_boundary_at_n40():
    # 2/3 is outside the interval of 20/40 (0.338-0.662) and inside that of 21/40 (0.361-0.684)
    assert not published.count_agrees(20, 40, 16, 24, "consistent")
    assert published.count_agrees(21, 40, 16, 24, "consistent")


def test_auto_rule_is_exact_at_the_published_size_and_consistent_elsewhere():
    assert not published.count_agrees(15, 24, 16, 24, "auto")  # consistent by CI, but not the same count
    assert published.count_agrees(15, 24, 16, 24, "consistent")
    assert published.count_agrees(25, 40, 16, 24, "auto")


@pytest.mark.parametrize("p, text", [(0.0004, "p < 0.001"), (0.017, "p = 0.017"), (0.0123, "p = 0.012"),
                                     (0.995, "p > 0.99"), (0.05, "p = 0.050"), (math.nan, "p not available"),
                                     (None, "p not available")])
def test_p_phrase_reads_as_a_sentence(p, text):
    assert published.p_phrase(p) == text


def test_shipped_cohort_reproduces_every_fact_as_published(shipped):
    cohort, pt = shipped
    facts = published.check_facts(cohort, pt)
    assert list(facts["fact"]) == list(published.FACT_IDS)
    assert facts["reproduced"].tolist() == [True] * 10
    assert facts.loc[facts["fact"] == "F2", "computed"].iat[0].startswith("16/24 (66.7%)")
    assert not facts["computed"].str.contains(r"\de[+-]?\d|nan|inf", regex=True).any()


def test_consistent_counts_leave_the_cohort_size_untested(shipped):
    cohort, pt = shipped
    facts = published.check_facts(cohort, pt, counts="consistent").set_index("fact")
    assert facts.loc["F1", "reproduced"] is None
    assert facts.loc["F2", "reproduced"] is True


def test_quick_logistic_fit_has_the_full_fits_odds_ratios_and_p_values(shipped):
    _, pt = shipped
    full = published.multivariable_logistic(pt).set_index("term")
    quick = published.firth_logistic_pvalues(pt).set_index("term")
    np.testing.assert_allclose(quick.loc[full.index, "or"], full["or"], rtol=1e-6)
    np.testing.assert_allclose(quick.loc[full.index, "p_value"], full["p_value"], rtol=1e-6)


def _cox_rows(hr_os, p_os, hr_pfs, p_pfs, converged=True):
    def table(hr, p):
        return pd.DataFrame({"term": ["x"], "hr": [hr], "ci_low": [hr / 2], "ci_high": [hr * 2], "p_value": [p],
                             "converged": [converged], "warning": ["" if converged else "did not converge"]})
    return {"os": table(hr_os, p_os), "pfs": table(hr_pfs, p_pfs)}


def test_cox_verdict_needs_significance_in_the_expected_direction():
    assert published.cox_term_verdict(_cox_rows(2.0, 0.01, 3.0, 0.04), "x", True, ("os", "pfs"))[1] is True
    assert published.cox_term_verdict(_cox_rows(2.0, 0.01, 3.0, 0.06), "x", True, ("os", "pfs"))[1] is False
    assert published.cox_term_verdict(_cox_rows(0.5, 0.01, 0.4, 0.01), "x", True, ("os", "pfs"))[1] is False
    # F7's shape: significant for PFS and NOT for OS
    assert published.cox_term_verdict(_cox_rows(1.1, 0.30, 1.2, 0.01), "x", True, ("pfs",), ("os",))[1] is True
    assert published.cox_term_verdict(_cox_rows(1.1, 0.01, 1.2, 0.01), "x", True, ("pfs",), ("os",))[1] is False


def test_a_fit_that_did_not_converge_is_not_estimable_and_not_testable():
    text, ok = published.cox_term_verdict(_cox_rows(1e9, 0.9, math.nan, math.nan, converged=False), "x", True,
                                          ("os", "pfs"))
    assert ok is None
    assert text.count("not estimable") == 2 and "inf" not in text and "nan" not in text


def test_marker_directions_from_group_medians():
    d = pd.DataFrame({"crs_grade": [1, 2, 3, 4, 0], "severe_crs": [False, False, True, True, False],
                      "a": [1.0, 2.0, 5.0, 6.0, 99.0], "b": [9.0, 8.0, 2.0, 1.0, -99.0]})
    assert published.markers_verdict(d, {"a": "higher", "b": "lower"}) == (
        "2 of 2 markers worse with severe than with mild CRS (medians)", True)
    assert published.markers_verdict(d, {"a": "lower", "b": "lower"})[1] is False
    assert published.markers_verdict(d[d["severe_crs"]], {"a": "higher"})[1] is None  # one group only


def test_a_model_that_cannot_be_fitted_is_not_estimable_with_its_reason():
    def failing():
        raise np.linalg.LinAlgError("singular matrix")
    text, ok = published.guarded(failing)
    assert ok is None and text == "not estimable: the model could not be fitted (singular matrix)"
    assert published.guarded(lambda: ("fine", True)) == ("fine", True)
