"""The presentation layer: value formatting, display-table guards, the needs/Skipped mechanism."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from helpers import display, fmt, labels
from helpers.sections import Shown, Skipped, missing, needs


@pytest.mark.parametrize("p, text", [
    (0.0004, "<0.001"), (0.001, "0.001"), (0.00449, "0.004"), (0.0123, "0.012"), (0.04951, "0.050"), (0.0996, "0.10"),
    (0.1, "0.10"), (0.55, "0.55"), (0.994, ">0.99"), (1.0, ">0.99"), (float("nan"), "\u2014"),
    (None, "\u2014"), (math.inf, "\u2014"),
])
def test_p_value_two_significant_digits(p, text):
    assert fmt.p_value(p) == text


def test_estimates_and_intervals():
    assert fmt.est_ci(0.2712, 0.0911, 0.8049, prefix="HR ") == "HR 0.27 (0.09\u20130.80)"
    assert fmt.est_ci(float("nan"), 0.1, 2.0) == "not estimable"
    assert fmt.est_ci(0.03, float("nan"), float("nan")) == "0.03 (not estimable to not estimable)"
    assert fmt.est_ci(-0.5, -1.2, 0.3) == "-0.50 (-1.20 to 0.30)"
    assert fmt.number(1680.0, 0) == "1,680" and fmt.number(-0.0001, 2) == "0.00"
    assert fmt.number(math.inf) == "not estimable" and fmt.number(None) == "\u2014"


def test_counts_and_medians():
    assert fmt.count_pct(16, 24) == "16/24 (66.7%)"
    assert fmt.n_pct(13, 24) == "13 (54.2%)"
    assert fmt.prop_ci(16, 24, 0.4468, 0.8437) == "16/24 (66.7%; 95% CI 44.7\u201384.4)"
    # R: quantile(c(1, 2, 3, 4, 10), c(.25, .5, .75)) -> 2, 3, 4
    assert fmt.median_iqr([1, 2, 3, 4, 10]) == "3 (2, 4)"


def test_months_and_unreached_medians():
    assert fmt.months(365.25) == "12.0"
    assert fmt.months(math.inf) == "not reached"
    assert fmt.months_ci(200.0, 100.0, math.inf) == "6.6 (3.3 to not reached)"
    assert fmt.months_ci(math.inf, 100.0, math.inf) == "not reached"


def test_labels_cover_every_contract_column_and_analyte():
    from helpers import contract

    for table in (contract.PATIENTS, contract.KINETICS, contract.DAILY, contract.LABS):
        for col in table.columns:
            assert labels.label(col.name) != col.name, col.name
    assert labels.analyte("il6") == "IL-6, pg/mL"
    assert labels.scale("lee2014") == "Lee 2014"
    assert labels.value("mrd_negative", True) == "Yes"


@pytest.mark.parametrize("cell", [True, np.nan, "nan", "inf", "1.68e+03", "False", 0.5])
def test_display_table_refuses_what_readers_must_not_see(cell):
    with pytest.raises(ValueError, match="display table 'tbl'"):
        display.table(pd.DataFrame({"Characteristic": ["Age"], "Overall": [cell]}), "tbl")


def test_display_table_refuses_code_headers():
    with pytest.raises(ValueError, match="looks like a code name"):
        display.table(pd.DataFrame({"n_group0": ["1"]}), "tbl")


def test_display_table_is_deterministic_and_framed():
    df = pd.DataFrame({"Characteristic": ["Age, years", "Sex", "Female"],
                       "Overall, N = 24": ["35 (20, 50)", "", "10 (41.7%)"]})
    a = display.table(df, "tbl-one", stub="Characteristic", indent=[2], notes=["Median (Q1, Q3); n (%)"])
    b = display.table(df, "tbl-one", stub="Characteristic", indent=[2], notes=["Median (Q1, Q3); n (%)"])
    assert a.html == b.html
    assert 'id="tbl-one"' in a.html and "overflow-x: auto" in a.html and "position: sticky" in a.html
    assert "Median (Q1, Q3); n (%)" in a.html


def _cohort(**tables):
    return SimpleNamespace(has=lambda t: tables.get(t) is not None and len(tables[t]) > 0, **tables)


def test_needs_skips_with_the_reason_and_runs_when_present():
    @needs(tables=("daily",), columns={"daily": ("ice_score",)}, what="ICANS grading")
    def icans(page):
        return Shown("ran")

    daily = pd.DataFrame({"patient_id": ["P01"], "day": [0]})
    skipped = icans(SimpleNamespace(data=_cohort(daily=daily)))
    assert isinstance(skipped, Skipped) and skipped.what == "ICANS grading"
    assert "`ice_score`" in skipped.reason and "daily.csv" in skipped.reason
    assert "no daily clinical record" in missing(_cohort(daily=None), ("daily",))
    ran = icans(SimpleNamespace(data=_cohort(daily=daily.assign(ice_score=[10]))))
    assert ran.text() == "ran"


def test_a_page_computes_a_result_several_sections_share_once(tmp_path):
    from helpers.page import Page

    page, calls = Page(data=None, tables_dir=tmp_path), []
    make = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert page.once("graded", make) == 1 and page.once("graded", make) == 1 and calls == [1]
    assert page.once("other", make) == 2  # another key is another result
    assert Page(data=None, tables_dir=tmp_path).once("graded", make) == 3  # nothing shared between pages


def test_a_figure_is_shown_as_the_inline_backend_shows_it_laid_out_ones_without_a_crop(monkeypatch):
    import base64
    import struct

    import IPython.display
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure

    from helpers.sections import show_figure

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100, layout="constrained")
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("Days after infusion")
    monkeypatch.setattr(fig, "get_tightbbox", lambda *a, **k: pytest.fail("a laid-out figure needs no crop"))
    show_figure(fig)
    (bundle, raw), = shown
    assert raw and bundle["text/plain"] == "<Figure size 400x300 with 1 Axes>"  # what nbval compares
    png = base64.b64decode(bundle["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (400, 300)  # the whole canvas
    assert not plt.fignum_exists(fig.number)

    plain, ax = plt.subplots(figsize=(4, 3), dpi=100)  # no layout engine: cropped to its tight bounding box
    ax.plot([0, 1], [0, 1])
    expected = print_figure(plain, "png", bbox_inches="tight", base64=True)
    show_figure(plain)
    assert shown[-1][0]["image/png"] == expected and struct.unpack(">II", base64.b64decode(expected)[16:24]) != (400, 300)


def test_finite_values_keeps_what_is_finite_accepts_in_order():
    import numpy as np

    from helpers import fmt

    cases = [np.array([1.0, np.nan, np.inf, -np.inf, 2.5]), pd.Series([3, 1, 2]), pd.Series([True, False]),
             pd.Series([1.5, None]), pd.Series([1, None], dtype="Int64"), [1, "2", None, float("nan")],
             pd.Series(["1.5", "x"]), np.array([], dtype=float), pd.Series([1.0, pd.NA], dtype="Float64")]
    for values in cases:
        one_by_one = np.asarray([float(x) for x in values if fmt.is_finite(x)])
        got = fmt.finite_values(values)
        assert got.dtype == one_by_one.dtype and np.array_equal(got, one_by_one), values
    assert fmt.median_iqr(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, np.inf, np.nan])) == "3 (2, 4)"  # type 7, finite only
