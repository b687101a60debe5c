"""Tests for helpers.tables: Table 1 numbers by hand, scipy and tableone; formatting; deterministic CSV."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
from tableone import TableOne

from helpers import tables as tb

pytestmark = pytest.mark.filterwarnings("error")

VARIABLES = {"age": "continuous", "sex": "categorical", "ph": "binary", "stage": "categorical"}


def _frame() -> pd.DataFrame:
    """Seven hand-built patients, group A (3) and B (4); one missing age, one missing ph, one missing stage."""
    return pd.DataFrame({
        "g": ["A", "A", "A", "B", "B", "B", "B"],
        "age": [31.5, 42.0, 55.5, 20.5, 25.0, 36.0, np.nan],
        "sex": ["F", "M", "F", "M", "M", "M", "F"],
        "ph": pd.array([True, False, True, False, False, None, False], dtype="boolean"),
        "stage": pd.Categorical(["III", "I", "II", "I", None, "III", "I"], categories=["I", "II", "III"]),
    })


@pytest.fixture(scope="module")
def t1() -> pd.DataFrame:
    return tb.table_one(_frame(), VARIABLES, by="g", labels={"age": "Age, years"})


def _cell(t: pd.DataFrame, var: str, level: str, col: str):
    hit = t[(t["variable"] == var) & (t["level"] == level)]
    assert len(hit) == 1
    return hit.iloc[0][col]


def test_layout_and_headers(t1):
    assert list(t1.columns) == ["variable", "level", "Characteristic", "Overall (N=7)", "A (N=3)", "B (N=4)",
                                "p-value", "p_value", "Test"]
    assert t1["Characteristic"].tolist() == [
        "Age, years", "    Missing", "sex", "    F", "    M", "ph", "    Missing",
        "stage", "    I", "    II", "    III", "    Missing"]


def test_continuous_median_iqr_range(t1):
    # Overall ages sorted 20.5, 25, 31.5, 36, 42, 55.5 (n=6). Linear quantiles (pandas default = R type 7):
    # median = (31.5+36)/2 = 33.75; Q1 at h = 5*0.25 = 1.25 -> 25 + 0.25*6.5 = 26.625;
    # Q3 at h = 3.75 -> 36 + 0.75*6 = 40.5 (R 4.2 quantile(): 26.625 33.750 40.500).
    # One decimal (non-integer data, |median| in [1, 100)).
    assert _cell(t1, "age", "", "Overall (N=7)") == "33.8 (IQR 26.6-40.5), range 20.5-55.5"
    # A: 31.5, 42, 55.5 -> median 42, Q1 = 31.5 + 0.5*10.5 = 36.75, Q3 = 42 + 0.5*13.5 = 48.75.
    assert _cell(t1, "age", "", "A (N=3)") == "42.0 (IQR 36.8-48.8), range 31.5-55.5"
    # B (age missing for one): 20.5, 25, 36 -> median 25, Q1 22.75, Q3 30.5.
    assert _cell(t1, "age", "", "B (N=4)") == "25.0 (IQR 22.8-30.5), range 20.5-36.0"
    assert tb.summarise_continuous(_frame()["age"], 3) == "33.750 (IQR 26.625-40.500), range 20.500-55.500"
    assert [_cell(t1, "age", "Missing", c) for c in ("Overall (N=7)", "A (N=3)", "B (N=4)")] == ["1", "0", "1"]


def test_continuous_agrees_with_tableone():
    ref = TableOne(_frame(), columns=["age"], nonnormal=["age"], groupby="g", decimals=3, pval=False).tableone
    row = ref.loc[("age, median [Q1,Q3]", "")]
    assert row[("Grouped by g", "Overall")] == "33.750 [26.625,40.500]"
    assert row[("Grouped by g", "A")] == "42.000 [36.750,48.750]"
    assert row[("Grouped by g", "B")] == "25.000 [22.750,30.500]"


def test_categorical_and_binary_counts(t1):
    assert _cell(t1, "sex", "F", "Overall (N=7)") == "3 (42.9%)"
    assert _cell(t1, "sex", "M", "B (N=4)") == "3 (75.0%)"
    # ph: A 2 of 3 True; B 0 of 3 non-missing; overall 2/6 = 33.3% (percent of non-missing, as gtsummary).
    assert [_cell(t1, "ph", "", c) for c in ("Overall (N=7)", "A (N=3)", "B (N=4)")] == [
        "2 (33.3%)", "2 (66.7%)", "0 (0.0%)"]
    assert _cell(t1, "ph", "Missing", "B (N=4)") == "1"
    # stage keeps the categorical order I, II, III; the empty level II in B is shown as 0.
    assert [_cell(t1, "stage", lv, "B (N=4)") for lv in ("I", "II", "III")] == ["2 (66.7%)", "0 (0.0%)", "1 (33.3%)"]
    assert _cell(t1, "stage", "Missing", "Overall (N=7)") == "1"


def test_p_values_hand_and_scipy(t1):
    # age: A = 31.5, 42, 55.5 vs B = 20.5, 25, 36, no ties -> exact. U(A) = 2 + 3 + 3 = 8 of 9;
    # null counts for m=n=3: 1,1,2,3,3,3,3,2,1,1 (/20) -> P(U >= 8) = 2/20, two-sided 0.2.
    p_age = _cell(t1, "age", "", "p_value")
    assert p_age == pytest.approx(0.2, abs=1e-12)
    assert p_age == pytest.approx(ss.mannwhitneyu([31.5, 42, 55.5], [20.5, 25, 36], method="exact").pvalue)
    assert _cell(t1, "age", "", "Test") == "Wilcoxon rank-sum (exact)"
    # sex: A F2 M1, B F1 M3; margins 3/4, F 3, N 7: P(x F in A) = C(3,x)C(4,3-x)/35 = 4,18,12,1 /35;
    # observed x=2 (12/35) -> 4+12+1 = 17/35 = 0.4857.
    assert _cell(t1, "sex", "", "p_value") == pytest.approx(17 / 35, abs=1e-12)
    assert _cell(t1, "sex", "", "p_value") == pytest.approx(ss.fisher_exact([[2, 1], [1, 3]]).pvalue)
    assert _cell(t1, "sex", "", "p-value") == "0.49" and _cell(t1, "sex", "", "Test") == "Fisher's exact"
    # ph (missing excluded): A 2 yes/1 no, B 0/3: P(x) = C(2,x)C(4,3-x)/20 = 4,12,4 -> x=2: (4+4)/20 = 0.4.
    assert _cell(t1, "ph", "", "p_value") == pytest.approx(0.4, abs=1e-12)
    # stage 2 x 3 exact: A I1 II1 III1, B I2 II0 III1 -> checked by exhaustive permutation in scipy;
    # R 4.2 fisher.test(matrix(c(1,2,1,0,1,1), 2))$p.value = 1 (the observed table is the most probable).
    ref = ss.fisher_exact([[1, 1, 1], [2, 0, 1]], method=ss.PermutationMethod(n_resamples=np.inf)).pvalue
    assert _cell(t1, "stage", "", "p_value") == pytest.approx(ref, abs=1e-10)
    assert _cell(t1, "stage", "", "p_value") == pytest.approx(1.0, abs=1e-10)
    assert math.isnan(_cell(t1, "stage", "I", "p_value")) and _cell(t1, "stage", "I", "p-value") == ""


def test_overall_only_and_missing_by():
    df = _frame()
    df.loc[6, "g"] = None  # the seventh patient counts in Overall only
    t = tb.table_one(df, {"sex": "categorical"}, by="g")
    assert list(t.columns)[3:6] == ["Overall (N=7)", "A (N=3)", "B (N=3)"]
    assert _cell(t, "sex", "F", "Overall (N=7)") == "3 (42.9%)" and _cell(t, "sex", "F", "B (N=3)") == "0 (0.0%)"
    plain = tb.table_one(_frame(), {"age": "continuous"})
    assert list(plain.columns) == ["variable", "level", "Characteristic", "Overall (N=7)"]


def test_three_groups_use_kruskal():
    df = _frame().assign(g=["A", "A", "B", "B", "C", "C", "C"])
    t = tb.table_one(df, {"age": "continuous"}, by="g")
    ref = ss.kruskal([31.5, 42.0], [55.5, 20.5], [25.0, 36.0]).pvalue
    assert _cell(t, "age", "", "p_value") == pytest.approx(ref) and _cell(t, "age", "", "Test") == "Kruskal-Wallis"


def test_integer_variable_gets_no_decimals_and_bad_kind_rejected():
    df = pd.DataFrame({"lines": [1, 2, 2, 3, 5]})
    # median 2, Q1 2, Q3 3 (type 7: h = 1 and 3 exactly).
    assert tb.table_one(df, {"lines": "continuous"}).iloc[0, 3] == "2 (IQR 2-3), range 1-5"
    with pytest.raises(ValueError, match="kind"):
        tb.table_one(df, {"lines": "ordinal"})


@pytest.mark.parametrize(
    "p, text",
    [(0.0004, "<0.001"), (0.001, "0.001"), (0.012, "0.012"), (0.0499, "0.050"), (0.1, "0.10"),
     (0.434, "0.43"), (0.99, "0.99"), (0.995, ">0.99"), (float("nan"), "")],
)
def test_format_p_gtsummary_style(p, text):
    assert tb.format_p(p) == text


def test_format_ci():
    assert tb.format_ci(1.2345, 0.5, 3.25) == "1.23 (0.50-3.25)"
    assert tb.format_ci(16 / 24, 0.4467804, 0.8436977, digits=1, pct=True) == "66.7% (44.7-84.4)"
    assert tb.format_ci(-0.5, -1.2, 0.3) == "-0.50 (-1.20 to 0.30)"
    assert tb.format_ci(5.0, 1.0, float("inf")) == "5.00 (1.00-Inf)"


def test_to_csv_bytes_exact_and_deterministic(t1):
    small = pd.DataFrame({"a": [1.0, 1 / 3], "b": ["x", None]})
    assert tb.to_csv_bytes(small) == b"a,b\n1,x\n0.333333,\n"
    again = tb.table_one(_frame(), VARIABLES, by="g", labels={"age": "Age, years"})
    assert tb.to_csv_bytes(again) == tb.to_csv_bytes(t1)
    assert b"\r" not in tb.to_csv_bytes(t1)
