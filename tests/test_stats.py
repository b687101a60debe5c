"""Tests for helpers.stats against hand calculations, closed forms and reference implementations (scipy, R values)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
from sklearn.metrics import roc_auc_score

from helpers import stats as st

pytestmark = pytest.mark.filterwarnings("error")
Z975 = 1.959963984540054


# ---------------------------------------------------------------- exact_ci / proportion
@pytest.mark.parametrize(
    "k, n, lo_pct, hi_pct",
    [
        # Published exact CIs for this cohort (shared/reference/definitions.md), percent to 1 decimal.
        (16, 24, 44.7, 84.4),
        (13, 24, 32.8, 74.4),
        (13, 16, 54.4, 96.0),
        (19, 24, 57.8, 92.9),
        (6, 24, 9.8, 46.7),
        (6, 19, 12.6, 56.6),
    ],
)
def test_exact_ci_matches_published(k, n, lo_pct, hi_pct):
    lo, hi = st.exact_ci(k, n)
    assert (round(100 * lo, 1), round(100 * hi, 1)) == (lo_pct, hi_pct)
    # Defining property of Clopper-Pearson (R binom.test): P(X >= k | p=lo) = 0.025 and P(X <= k | p=hi) = 0.025.
    assert ss.binom.sf(k - 1, n, lo) == pytest.approx(0.025, abs=1e-9)
    assert ss.binom.cdf(k, n, hi) == pytest.approx(0.025, abs=1e-9)


def test_exact_ci_brief_values():
    # To 4 decimals (R binom.test): 16/24 -> (0.4468, 0.8437), 13/24 -> (0.3282, 0.7445), 13/16 -> (0.5435, 0.9595).
    # (The brief's 0.4470 and 0.7444 are the 1-decimal percentages and a truncation of 0.74447.)
    assert st.exact_ci(16, 24) == pytest.approx((0.4468, 0.8437), abs=5e-5)
    assert st.exact_ci(13, 24) == pytest.approx((0.3282, 0.7445), abs=5e-5)
    assert st.exact_ci(13, 16) == pytest.approx((0.5435, 0.9595), abs=5e-5)


def test_exact_ci_edges_closed_form():
    # k = 0: lower 0, upper solves (1-p)^5 = 0.025 -> 1 - 0.025**(1/5) = 1 - 0.478176 = 0.521824.
    assert st.exact_ci(0, 5) == pytest.approx((0.0, 1 - 0.025 ** 0.2), abs=1e-10)
    # k = n: upper 1, lower solves p^5 = 0.025 -> 0.025**(1/5) = 0.478176.
    assert st.exact_ci(5, 5) == pytest.approx((0.025 ** 0.2, 1.0), abs=1e-10)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        st.exact_ci(6, 5)


def test_proportion_record_and_text():
    rec = st.proportion(16, 24, "CR")
    assert rec["estimate"] == pytest.approx(16 / 24)
    assert rec["formatted"] == "16/24 (66.7%, 95% CI 44.7-84.4)"
    assert rec["method"] == "Clopper-Pearson exact"
    assert (rec["k"], rec["n"], rec["label"]) == (16, 24, "CR")


# ---------------------------------------------------------------- Wilcoxon + Hodges-Lehmann
def test_mann_whitney_null_counts_small():
    # m=2, n=2: the 6 arrangements give U = 0,1,2,2,3,4 -> counts [1,1,2,1,1].
    assert st._mann_whitney_null_counts(2, 2) == [1, 1, 2, 1, 1]
    c = st._mann_whitney_null_counts(12, 12)
    assert sum(c) == math.comb(24, 12) and c == c[::-1]


def test_wilcoxon_exact_hand_value():
    # x1 = 4..7 all above x0 = 1..3: U = 12 = max; P(U = 12) = 1/C(7,3) = 1/35; two-sided p = 2/35.
    p, test = st.wilcoxon_rank_sum(np.array([1, 2, 3.0]), np.array([4, 5, 6, 7.0]))
    assert p == pytest.approx(2 / 35, abs=1e-12)
    assert test == "Wilcoxon rank-sum (exact)"


def test_wilcoxon_ties_use_corrected_normal_approximation():
    x0, x1 = np.array([1, 2, 2, 3.0]), np.array([2, 4, 5, 6.0])
    p, test = st.wilcoxon_rank_sum(x0, x1)
    ref = ss.mannwhitneyu(x1, x0, method="asymptotic", use_continuity=True).pvalue
    # By hand: U(x1) counts x1 > x0 pairs (+1/2 per tie): 2 -> 1 + 2*0.5 = 2; 4, 5, 6 -> 4 each; U = 14.
    # mean 8, tie-corrected var = 16/12 * (9 - (3^3-3)/(8*7)) = 1.3333*(9 - 0.428571) = 11.428571;
    # z = (14 - 8 - 0.5)/sqrt(11.428571) = 1.626926; p = 2*(1 - Phi(z)) = 0.103749.
    assert p == pytest.approx(ref, abs=1e-12)
    assert p == pytest.approx(2 * ss.norm.sf(5.5 / math.sqrt(11.428571428571429)), abs=1e-12)
    assert "continuity" in test


def test_hodges_lehmann_exact_ci_hand():
    # diffs x1 - x0 sorted: 1,2,2,3,3,3,4,4,4,5,5,6 -> median (3+4)/2 = 3.5.
    # qwilcox(0.025, 4, 3): P(U=0) = 1/35 = 0.0286 >= 0.025 -> qu = 0 -> 1 (R): CI = (diffs[1], diffs[12]) = (1, 6).
    est, lo, hi, kind = st.hodges_lehmann(np.array([1, 2, 3.0]), np.array([4, 5, 6, 7.0]))
    assert (est, lo, hi, kind) == (3.5, 1.0, 6.0, "exact")


def test_hodges_lehmann_exact_ci_larger_rank():
    # m = n = 6, no ties: qwilcox(0.025, 6, 6) = 6 (P(U<=5)=0.0206 < 0.025 <= P(U<=6)=0.0325), so the CI is
    # the 6th and (36-6+1) = 31st ordered differences, as R's wilcox.test(conf.int=TRUE).
    counts = st._mann_whitney_null_counts(6, 6)
    cdf = np.cumsum(counts) / math.comb(12, 6)
    assert cdf[5] == pytest.approx(19 / 924) and cdf[6] == pytest.approx(30 / 924)
    x0 = np.array([1.1, 2.3, 3.7, 4.2, 5.9, 6.4])
    x1 = np.array([2.9, 4.8, 6.1, 7.3, 8.6, 9.5])
    d = np.sort(np.subtract.outer(x1, x0).ravel())
    est, lo, hi, _ = st.hodges_lehmann(x0, x1)
    assert (lo, hi) == (d[5], d[30]) and est == pytest.approx(np.median(d))
    # R 4.2: wilcox.test(x1, x0, conf.int=TRUE) -> estimate 2.6, CI -0.8 to 5.8, p 0.093073593.
    assert (est, lo, hi) == pytest.approx((2.6, -0.8, 5.8), abs=1e-12)
    assert st.wilcoxon_rank_sum(x0, x1)[0] == pytest.approx(0.093073593, abs=1e-9)


def test_hodges_lehmann_with_ties_close_to_r():
    # Ties -> normal-approximation rank: mn = 16, k = floor(8 - 1.959964*sqrt(16*9/12)) = floor(1.21) = 1,
    # so CI = (smallest, largest) of the 16 differences = (-1, 5); HL = median = (2+3)/2 = 2.5.
    # R 4.2 root-finds instead: estimate 2.50781318, CI -0.99993392 to 4.99993392, p 0.10375368.
    est, lo, hi, kind = st.hodges_lehmann(np.array([1, 2, 2, 3.0]), np.array([2, 4, 5, 6.0]))
    assert (est, lo, hi, kind) == (2.5, -1.0, 5.0, "normal approx.")
    assert (est, lo, hi) == pytest.approx((2.50781318, -0.99993392, 4.99993392), abs=0.01)


def test_hodges_lehmann_from_repeated_values_by_hand():
    # x1 = 3 (x4), 4 (x4); x0 = 1 (x4), 2 (x4): 64 differences, 16 of 1, 32 of 2, 16 of 3 (4 distinct pairs:
    # counted, not listed). Median = ranks 32 and 33 = 2; normal rank k = floor(32 - 1.959964 sqrt(64*17/12))
    # = floor(13.34) = 13, so the CI is the 13th and 52nd differences = (1, 3).
    est, lo, hi, kind = st.hodges_lehmann(np.array([1.0] * 4 + [2.0] * 4), np.array([3.0] * 4 + [4.0] * 4))
    assert (est, lo, hi, kind) == (2.0, 1.0, 3.0, "normal approx.")


@pytest.mark.parametrize("decimals", [0, 1, None])
def test_difference_order_statistics_equal_a_full_sort(decimals):
    rng = np.random.default_rng(7)
    x1, x0 = rng.normal(1, 2, 700), rng.gamma(2, 1.5, 900)
    if decimals is not None:  # rounded measurements: the distinct values are counted
        x1, x0 = np.round(x1, decimals), np.round(x0, decimals)
    d = np.sort(np.subtract.outer(x1, x0).ravel())
    ranks = [0, 1, 62_999, 315_000, 629_999]
    assert np.array_equal(st._difference_order_statistics(x1, x0, ranks), d[ranks])


def test_a_difference_selected_in_the_sorted_matrix_is_the_one_a_full_sort_gives(monkeypatch):
    """Every rank of small samples, ties and one-element samples included, with the selection's rounds run down
    to one candidate (PARTITIONED 1) and with its default."""
    rng = np.random.default_rng(11)
    for trial in range(120):
        m, n = (int(v) for v in rng.integers(1, 16, 2))
        draw = [lambda k: rng.normal(size=k), lambda k: rng.integers(0, 4, k).astype(float),
                lambda k: np.round(rng.lognormal(size=k), 1)][trial % 3]
        x1, x0 = draw(m), draw(n)
        d = np.sort(np.subtract.outer(x1, x0).ravel())
        monkeypatch.setattr(st, "PARTITIONED", [1, 7, 4096][trial % 3 if trial % 2 else 0])
        rows, columns = np.sort(x1), np.sort(x0)[::-1]
        assert [st._select_difference(rows, columns, k) for k in range(m * n)] == list(d)


# ---------------------------------------------------------------- Fisher
def test_fisher_rxc_two_by_three_against_exact_permutation():
    table = np.array([[2, 0, 1], [0, 3, 2]])
    # Independent reference: scipy's exhaustive permutation over the 8 labelled observations.
    ref = ss.fisher_exact(table, method=ss.PermutationMethod(n_resamples=np.inf)).pvalue
    assert st.fisher_exact_rxc(table) == pytest.approx(ref, abs=1e-10)
    # R 4.2: fisher.test(matrix(c(2,0,0,3,1,2), 2))$p.value = 0.1428571429 (= 1/7).
    assert st.fisher_exact_rxc(table) == pytest.approx(1 / 7, abs=1e-10)


def test_fisher_rxc_two_by_two_hypergeometric_sum():
    # [[2,1],[1,3]]: margins 3/4 rows, 3/4 cols, N=7; P(x) = C(3,x) C(4,3-x)/35 = 4,18,12,1 /35 for x=0..3.
    # Observed x=2 (12/35); as or less probable: x=0,2,3 -> (4+12+1)/35 = 17/35 = 0.485714.
    assert st.fisher_exact_rxc(np.array([[2, 1], [1, 3]])) == pytest.approx(17 / 35, abs=1e-12)
    assert st.fisher_exact_rxc(np.array([[2, 0], [3, 0]])) == 1.0  # one non-empty column: nothing to test


def test_fisher_or_matches_r_tea_tasting():
    # R: fisher.test(matrix(c(3,1,1,3), 2)) -> OR 6.408309, 95% CI 0.2117329-621.9337, p 0.4857.
    # scipy (conditional MLE, exact CI) agrees to R's uniroot tolerance: the upper bound 626.24 vs 621.93
    # (0.7%: R stops its root search early on that flat tail).
    est, lo, hi, p = st.fisher_or(np.array([[3, 1], [1, 3]]))
    assert est == pytest.approx(6.408309, rel=1e-5)
    assert lo == pytest.approx(0.2117329, rel=1e-4)
    assert hi == pytest.approx(621.9337, rel=0.01)
    # p by hypergeometric sum: P(x) = C(4,x)C(4,4-x)/70 = 1,16,36,16,1 /70; observed x=3 (16/70):
    # tables with P <= 16/70 -> x=0,1,3,4 -> 34/70 = 0.485714.
    assert p == pytest.approx(34 / 70, abs=1e-12)


# ---------------------------------------------------------------- compare_two_groups / BH
def _two_group_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "grp": [False, False, False, True, True, True, True],
        "burden": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
        "ph": [True, False, False, True, True, True, np.nan],
        "sex": ["F", "M", "F", "M", "M", "F", "M"],
    })


def test_compare_two_groups_values():
    out = st.compare_two_groups(_two_group_frame(), {"burden": "continuous", "ph": "binary", "sex": "categorical"},
                                "grp").set_index("variable")
    b = out.loc["burden"]
    # Complete separation 3 vs 4, no ties: exact p = 2/C(7,3) = 2/35. Differences x1 - x0 sorted:
    # 10,20,20,30,30,30,40,40,40,50,50,60 -> HL = (30+40)/2 = 35; qu = 1 (1/35 >= 0.025) -> CI (10, 60).
    assert b["p_value"] == pytest.approx(2 / 35) and b["test"] == "Wilcoxon rank-sum (exact)"
    assert (b["effect"], b["effect_ci_low"], b["effect_ci_high"]) == (35.0, 10.0, 60.0)
    assert (b["n_group0"], b["n_group1"]) == (3, 4)
    assert b["summary_group0"] == "20 (15-25)"  # type 7 quartiles of 10,20,30: 15, 25
    ph = out.loc["ph"]
    # ph (NaN dropped): True group 3/3 yes, False group 1/3 yes -> table [[3,0],[1,2]];
    # margins rows 3/3, yes 4, N 6: P(x) = C(3,x)C(3,4-x)/15 = 3,9,3 /15 for x=1..3; observed x=3 -> 3/15, two-sided 6/15.
    assert ph["p_value"] == pytest.approx(6 / 15, abs=1e-12)
    ref = ss.contingency.odds_ratio([[3, 0], [1, 2]], kind="conditional")
    assert ph["effect"] == pytest.approx(ref.statistic) and math.isinf(ph["effect_ci_high"])
    assert (ph["summary_group0"], ph["summary_group1"]) == ("1/3 (33.3%)", "3/3 (100.0%)")
    sx = out.loc["sex"]
    # sex: False F2 M1, True F1 M3 -> 17/35 as in the hand sum above; Cramer's V = sqrt(chi2 / N).
    assert sx["p_value"] == pytest.approx(17 / 35)
    chi2 = ss.chi2_contingency([[2, 1], [1, 3]], correction=False).statistic
    assert sx["effect"] == pytest.approx(math.sqrt(chi2 / 7))
    assert out["p_adj_bh"].tolist() == pytest.approx(st.bh_adjust(out["p_value"]).tolist())


def test_compare_two_groups_rejects_three_levels():
    df = _two_group_frame().assign(grp=list("AABBCCC"))
    with pytest.raises(ValueError, match="exactly two"):
        st.compare_two_groups(df, {"burden": "continuous"}, "grp")


def test_bh_adjust_hand():
    # sorted 0.01,0.03,0.04,0.20 (m=4): p*m/rank = 0.04, 0.06, 0.05333, 0.20; cumulative min from the top
    # -> 0.04, 0.05333, 0.05333, 0.20; NaN is left out of m and stays NaN.
    p = pd.Series([0.01, 0.04, 0.03, 0.20, np.nan], index=list("abcde"))
    out = st.bh_adjust(p)
    assert out.iloc[:4].tolist() == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert np.isnan(out["e"]) and list(out.index) == list("abcde")


# ---------------------------------------------------------------- logistic regression
def _separated() -> pd.DataFrame:
    return pd.DataFrame({"y": [0, 0, 0, 1, 1, 1], "x": [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]})


def test_firth_separated_finite_and_flagged():
    out = st.firth_logistic_table(_separated(), "y", ["x"])
    row = out.iloc[0]
    # Firth with one binary covariate = adding 1/2 to each cell (Haldane): OR = (3.5*3.5)/(0.5*0.5) = 49.
    assert row["or"] == pytest.approx(49.0, rel=1e-6)
    assert row["coef"] == pytest.approx(math.log(49), abs=1e-6)
    assert 1 < row["ci_low"] < row["or"] < row["ci_high"] < np.inf
    assert 0 < row["p_value"] < 0.05
    assert bool(row["separation"]) and bool(row["converged"])
    assert (row["n"], row["events"], row["epv"], row["method"]) == (6, 3, 3.0, "Firth")
    assert "EPV 3.0 < 10" in row["warning"]
    assert list(out.columns) == st.LOGISTIC_COLUMNS


def test_ml_separated_not_converged_without_warnings():
    # pytestmark turns any warning into an error, so this also proves nothing reaches stderr.
    row = st.ml_logistic_table(_separated(), "y", ["x"]).iloc[0]
    assert not bool(row["converged"]) and bool(row["separation"])
    assert np.isnan(row["or"]) and np.isnan(row["ci_low"]) and np.isnan(row["p_value"])
    assert "separation" in row["warning"]


def _two_by_two(a: int, b: int, c: int, d: int) -> pd.DataFrame:
    """Exposed: a events, b non-events; unexposed: c events, d non-events."""
    x = [1] * (a + b) + [0] * (c + d)
    y = [1] * a + [0] * b + [1] * c + [0] * d
    return pd.DataFrame({"x": x, "y": y})


def test_ml_two_by_two_closed_form():
    # a=3,b=1,c=1,d=3: OR = ad/bc = 9; Wald SE = sqrt(1/3+1+1+1/3) = 1.632993;
    # CI = exp(2.197225 +- 1.959964*1.632993) = (0.366649, 220.928); Wald p = 2*Phi(-1.345531) = 0.178452.
    row = st.ml_logistic_table(_two_by_two(3, 1, 1, 3), "y", ["x"]).iloc[0]
    se = math.sqrt(1 / 3 + 1 + 1 + 1 / 3)
    assert bool(row["converged"]) and not bool(row["separation"]) and row["warning"] == "EPV 4.0 < 10"
    assert row["or"] == pytest.approx(9.0, rel=1e-6)
    assert row["ci_low"] == pytest.approx(math.exp(math.log(9) - Z975 * se), rel=1e-5)
    assert row["ci_high"] == pytest.approx(math.exp(math.log(9) + Z975 * se), rel=1e-5)
    assert row["p_value"] == pytest.approx(2 * ss.norm.sf(math.log(9) / se), rel=1e-5)


def test_firth_two_by_two_haldane_and_univariable_stack():
    df = _two_by_two(3, 1, 1, 3).assign(z=[5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 2.5, 0.5])
    out = st.univariable_logistic(df, "y", ["x", "z"], method="firth")
    assert out["term"].tolist() == ["x", "z"]
    # Haldane: (3.5 * 3.5) / (1.5 * 1.5) = 5.444444.
    assert out.loc[0, "or"] == pytest.approx(3.5 * 3.5 / (1.5 * 1.5), rel=1e-6)
    ml = st.univariable_logistic(df, "y", ["x"], method="ml")
    assert ml.loc[0, "or"] == pytest.approx(9.0, rel=1e-6)
    with pytest.raises(ValueError, match="firth"):
        st.univariable_logistic(df, "y", ["x"], method="bayes")


def test_design_matrix_dummies_and_complete_cases():
    df = pd.DataFrame({"y": [1, 0, 1, 0], "sex": ["M", "F", "F", None], "ph": [True, False, True, True]})
    X, y = st.design_matrix(df, "y", ["sex", "ph"])
    assert list(X.columns) == ["sex[T.M]", "ph"]
    assert X["sex[T.M]"].tolist() == [1.0, 0.0, 0.0] and y.tolist() == [1.0, 0.0, 1.0]


# ---------------------------------------------------------------- odds_ratio_table
def test_odds_ratio_table_conditional_and_zero_cell():
    df = pd.DataFrame({
        "resp": [1, 1, 1, 0, 1, 0, 0, 0],
        "ph": [True, True, True, True, False, False, False, False],
        "blasts": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    })
    out = st.odds_ratio_table(df, "resp", {"ph": "binary", "blasts": "continuous"}).set_index("factor")
    ph = out.loc["ph"]
    # exposed (ph True): 3/4 events; unexposed 1/4 -> the tea-tasting table: R OR 6.408309, p 34/70.
    assert (ph["events_exposed"], ph["n_exposed"], ph["events_unexposed"], ph["n_unexposed"]) == (3, 4, 1, 4)
    assert ph["or"] == pytest.approx(6.408309, rel=1e-5) and ph["p_value"] == pytest.approx(34 / 70)
    assert ph["level_desc"] == "yes vs no" and ph["method"].startswith("conditional MLE")
    bl = out.loc["blasts"]
    # median 4.5; > median: 5,6,7,8 -> events 1/4; <= median: 3/4 -> no zero cell, OR = 1/6.408309.
    assert bl["level_desc"] == "> median (4.5) vs <= median"
    assert bl["or"] == pytest.approx(1 / 6.408309, rel=1e-5)


def test_odds_ratio_table_zero_cell_uses_firth():
    df = _two_by_two(4, 0, 1, 3).rename(columns={"y": "resp"})
    row = st.odds_ratio_table(df, "resp", {"x": "binary"}).iloc[0]
    # Zero cell -> Firth = Haldane: (4.5 * 3.5) / (0.5 * 1.5) = 21.
    assert row["or"] == pytest.approx(21.0, rel=1e-6)
    assert row["method"].startswith("zero cell: Firth")
    # Fisher p kept: [[4,0],[1,3]], rows 4/4, event column 5, N 8: P(x) = C(5,x) C(3,4-x)/C(8,4)
    # = 5, 30, 30, 5 /70 for x = 1..4; observed x=4 (5/70): as or less probable x=1,4 -> 10/70.
    assert row["p_value"] == pytest.approx(ss.fisher_exact([[4, 0], [1, 3]]).pvalue)
    assert row["p_value"] == pytest.approx(10 / 70)


# ---------------------------------------------------------------- ROC
def test_roc_auc_small_known_example():
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.35, 0.9]
    # Pairs (event vs non-event): 0.8 beats 3, 0.9 beats 3, 0.35 beats 0.1 and ties 0.35 -> 7.5/9 = 0.8333.
    # Youden over midpoints 0.225, 0.375, 0.6, 0.85: J = 1/3, 1/3, 2/3, 1/3 -> cut 0.6, sens 2/3, spec 1.
    # R pROC 1.x: auc 0.8333; coords(best, youden): threshold 0.6, specificity 1, sensitivity 0.6666667.
    r = st.roc_auc(y, s, n_boot=300)
    assert r["auc"] == pytest.approx(7.5 / 9) and r["auc"] == pytest.approx(roc_auc_score(y, s))
    assert (r["cutoff"], r["sensitivity"], r["specificity"]) == pytest.approx((0.6, 2 / 3, 1.0))
    assert r["cutoff_auc_apparent"] == pytest.approx(5 / 6)
    assert r["cutoff_auc_corrected"] == pytest.approx(5 / 6 - r["optimism"])
    assert 0 <= r["ci_low"] <= r["auc"] <= r["ci_high"] <= 1


def test_roc_auc_bootstrap_is_stratified_percentile_and_deterministic():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    s = np.array([0.2, 0.5, 0.1, 0.7, 0.6, 0.9, 0.3, 0.8, 0.75])
    r = st.roc_auc(y, s, n_boot=400, seed=7)
    # Reference: same RNG stream, events then non-events resampled with replacement, sklearn AUC, percentiles.
    rng = np.random.default_rng(7)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    aucs = []
    for _ in range(400):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        aucs.append(roc_auc_score(y[idx], s[idx]))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(np.quantile(aucs, [0.025, 0.975])))
    assert st.roc_auc(y, s, n_boot=400, seed=7) == r


def test_roc_auc_vectorised_bootstrap_matches_one_resample_at_a_time():
    # Reference implementation: the plain loop (one resample at a time, pair-counting AUC, Youden by
    # scanning every midpoint, sens/spec of that cut on the original data). Ties, and resamples holding
    # a single distinct score (0.0 and -0.0 are equal), must give the same numbers exactly.
    y = np.array([0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1])
    s = np.array([-0.0, 0.0, -1.0, 1.0, 2.0, -0.0, 0.5, 0.5, 0.0, 0.0, 1.0])
    r = st.roc_auc(y, s, n_boot=500, seed=31)
    rng = np.random.default_rng(31)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    aucs, optimism = [], []
    for _ in range(500):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        aucs.append(st._concordance(y[idx], s[idx]))
        cut_b, se_b, sp_b = st._youden(y[idx], s[idx])
        se_o, sp_o = st._sens_spec(y, s, cut_b)
        optimism.append((se_b + sp_b) / 2 - (se_o + sp_o) / 2)
    assert r["optimism"] == float(np.mean(optimism))
    assert (r["ci_low"], r["ci_high"]) == tuple(float(q) for q in np.quantile(aucs, [0.025, 0.975]))


def test_roc_auc_perfect_separation():
    y = [0, 0, 0, 1, 1, 1]
    s = [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]
    r = st.roc_auc(y, s, n_boot=300)
    assert (r["auc"], r["ci_low"], r["ci_high"]) == (1.0, 1.0, 1.0)
    assert (r["cutoff"], r["sensitivity"], r["specificity"]) == (4.0, 1.0, 1.0)  # midpoint of 3 and 5 (pROC: 4)
    # Every resample is separable, so its own cut-off scores J = 1 there and at most 1 on the full data.
    assert r["optimism"] >= 0
    # One event, one non-event: every resample is the original data, so the optimism is exactly 0.
    r2 = st.roc_auc([0, 1], [0.0, 1.0], n_boot=50)
    assert (r2["optimism"], r2["cutoff_auc_corrected"]) == (0.0, 1.0)


def test_logistic_refuses_constant_covariate():
    df = pd.DataFrame({"y": [0, 1, 0, 1, 1, 0], "c": [1.0] * 6})
    with pytest.raises(ValueError, match=r"constant: \['c'\]"):
        st.firth_logistic_table(df, "y", ["c"])
    with pytest.raises(ValueError, match="single value"):
        st.ml_logistic_table(df.assign(y=1), "y", ["c"])


def test_fisher_rxc_falls_back_to_seeded_monte_carlo_for_large_tables():
    """A 2 x 6 table with 300 patients is too large to enumerate; the Monte Carlo p is seeded and named."""
    from helpers.stats import fisher_rxc

    table = np.array([[30, 25, 20, 15, 10, 5], [20, 25, 30, 35, 40, 45]])
    p1, name = fisher_rxc(table, n_resamples=2000)
    p2, _ = fisher_rxc(table, n_resamples=2000)
    assert name == "Fisher's exact (Monte Carlo, 2,000 resamples)"
    assert p1 == p2  # same seed, same p
    # chi-squared on the same table gives ~1e-8; the Monte Carlo p is bounded below by 1/(B+1)
    assert p1 <= 1 / 2001 + 1e-12
    small, name_small = fisher_rxc(np.array([[3, 1, 0], [0, 2, 4]]))
    assert name_small == "Fisher's exact"
