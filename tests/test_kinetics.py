"""Tests for helpers.kinetics: hand-computed NCA answers (worked in the comments) and PKNCA cross-checks."""
from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import kinetics_report as kr  # noqa: E402
from helpers.kinetics import (  # noqa: E402
    CONC,
    BLQRule,
    apply_blq,
    associations,
    auc_interval,
    doubling_time,
    geometric_summary,
    nca,
    nca_summary,
    peak_expansion,
    plot_points_box,
    plot_spaghetti,
    spearman_ci,
    terminal_half_life,
)

LN2 = math.log(2)


def _kin(profiles: dict[str, tuple[list[float], list[float]]]) -> pd.DataFrame:
    """Long kinetics table from {patient_id: (days, conc)}."""
    rows = [{"patient_id": pid, "day": float(d), CONC: float(c)}
            for pid, (days, conc) in profiles.items() for d, c in zip(days, conc)]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- AUC rules
def test_linear_vs_log_down_three_points():
    # days 0, 2, 4; conc 0, 8, 2.
    # linear:   2*(0+8)/2 + 2*(8+2)/2 = 8 + 10 = 18
    # log-down: rising 0->8 linear = 8; falling 8->2 log = 2*(2-8)/ln(2/8) = -12/-1.386294 = 8.656170
    #           total 16.656170
    days, conc = [0, 2, 4], [0, 8, 2]
    assert auc_interval(days, conc, 0, 4, method="linear") == pytest.approx(18.0)
    assert auc_interval(days, conc, 0, 4) == pytest.approx(16.656170245, rel=1e-9)


def test_two_zeros_integrate_to_zero():
    # days 0,2,4,6,8; conc 0,0,6,0,0: 0->2 two zeros = 0; 2->4 rising linear 2*6/2 = 6;
    # 4->6 falling to 0 -> linear 6; 6->8 two zeros = 0. Total 12; [0, 2] alone is 0.
    days, conc = [0, 2, 4, 6, 8], [0, 0, 6, 0, 0]
    assert auc_interval(days, conc, 0, 2) == 0.0
    assert auc_interval(days, conc, 0, 8) == pytest.approx(12.0)
    assert auc_interval(days, conc, 6, 8) == 0.0


def test_falling_segment_to_zero_is_linear():
    # days 0,2,4; conc 0,6,0. The fall 6->0 cannot use the log rule (ln 0): linear 2*6/2 = 6.
    # Total 6 + 6 = 12, the same as the all-linear method.
    assert auc_interval([0, 2, 4], [0, 6, 0], 0, 4) == pytest.approx(12.0)
    assert auc_interval([0, 2, 4], [0, 6, 0], 0, 4, method="linear") == pytest.approx(12.0)


def test_all_blq_profile_has_zero_auc_and_empty_has_nan():
    # PKNCA pk.calc.aucint returns 0 for an all-BLQ profile, even past the last sample.
    assert auc_interval([0, 7, 14], [0, 0, 0], 0, 28) == 0.0
    assert math.isnan(auc_interval([], [], 0, 28))


def test_interval_end_interpolated_between_samples():
    # days 0, 14, 35; conc 0, 1000, 100; no sample on day 28 (between 14 and 35).
    # log-down: C28 = exp(ln1000 + (14/21)(ln100 - ln1000)) = 1000 * 0.1^(2/3) = 215.443469
    #   0->14 linear 14*1000/2 = 7000; 14->28 log 14*(215.443469-1000)/ln(0.215443469) = 7155.300015
    #   total 14155.300015
    # linear: C28 = 1000 - 900*14/21 = 400; 14->28 = 14*(1000+400)/2 = 9800; total 16800
    days, conc = [0, 14, 35], [0, 1000, 100]
    assert auc_interval(days, conc, 0, 28) == pytest.approx(14155.300015, rel=1e-9)
    assert auc_interval(days, conc, 0, 28, method="linear") == pytest.approx(16800.0)


def test_extrapolation_past_last_sample_uses_half_life():
    # days 0,4,7,14,21; conc 0,2000,1600,800,400. Tmax = 4; points after Tmax (7,14,21) halve every
    # 7 days -> lambda_z = ln2/7 exactly. AUC 0-28 (lin-up/log-down):
    #   0->4 linear 4*2000/2 = 4000
    #   4->7 log 3*(1600-2000)/ln(0.8) = 5377.70;  7->14 log 7*800/ln2 = 8079.09;  14->21 log 7*400/ln2 = 4039.55
    #   21->28 extrapolated: Clast*(1 - exp(-lambda_z*7))/lambda_z = 400*0.5*7/ln2 = 2019.77
    #   total 23516.1155
    # linear method: 4000 + 3*3600/2 + 7*2400/2 + 7*1200/2 + 2019.77 = 24019.7731 (extrapolation stays exponential)
    days, conc = [0, 4, 7, 14, 21], [0, 2000, 1600, 800, 400]
    assert auc_interval(days, conc, 0, 28) == pytest.approx(23516.1155419813, rel=1e-9)
    assert auc_interval(days, conc, 0, 28, method="linear") == pytest.approx(24019.77305724455, rel=1e-9)


def test_no_half_life_means_nan_past_last_quantifiable_sample():
    # days 0,7,14; conc 0,1000,500: only 1 point after Tmax -> no lambda_z -> AUC 0-28 is NaN (PKNCA NA).
    # Up to day 14 no extrapolation is needed: 7*1000/2 + 7*(500-1000)/ln(0.5) = 3500 + 5049.43 = 8549.43
    assert math.isnan(auc_interval([0, 7, 14], [0, 1000, 500], 0, 28))
    assert auc_interval([0, 7, 14], [0, 1000, 500], 0, 14) == pytest.approx(8549.432643, rel=1e-9)


def test_trailing_blq_sample_ends_the_curve_without_half_life():
    # days 0,7,14,21; conc 0,1000,500,0: last sample is BLQ, so the curve is 0 after day 21.
    # 3500 + 5049.43 + 14->21 linear 7*500/2 = 1750 -> 10299.43 (no half-life needed)
    assert auc_interval([0, 7, 14, 21], [0, 1000, 500, 0], 0, 28) == pytest.approx(10299.432643, rel=1e-9)


def test_start_before_first_sample_starts_from_zero():
    # single sample on day 14 (1000): PKNCA conc.origin = 0 at day 0, linear rise: 14*1000/2 = 7000
    assert auc_interval([14], [1000], 0, 14) == pytest.approx(7000.0)


def test_pknca_aucint_inf_traced_cross_check():
    # PKNCA tests/testthat/test-aucint.R, "AUCinf is traced": conc 8,4,2,1 at times 0..3, interval (0, 4),
    # lambda.z = ln2, clast = 1 equals pk.calc.auc of conc 8,4,2,1,0.5 at 0..4 (lin up/log down), i.e.
    # sum over falling segments of (t2-t1)(c2-c1)/ln(c2/c1) = (4 + 2 + 1 + 0.5)/ln2 = 7.5/ln2 = 10.820213.
    # Here lambda_z comes from our own fit of (1,4), (2,2), (3,1): exactly ln2.
    assert auc_interval([0, 1, 2, 3], [8, 4, 2, 1], 0, 4) == pytest.approx(7.5 / LN2, rel=1e-12)


def test_pknca_log_extrapolation_issue_203_cross_check():
    # PKNCA test-aucint.R (#203): conc 0,1,2,0.75,0.5,0.2 at 0..5; AUC(0,6) - AUC(0,5)
    # = (6-5)(clast - c6)/ln(clast/c6), c6 = clast*exp(-lambda_z), with either interpolation method.
    days, conc = [0, 1, 2, 3, 4, 5], [0, 1, 2, 0.75, 0.5, 0.2]
    lam = terminal_half_life(days, conc, tmax=2)["lambda_z"]
    c6 = 0.2 * math.exp(-lam)
    expected = (0.2 - c6) / math.log(0.2 / c6)
    for method in ("lin-up/log-down", "linear"):
        diff = auc_interval(days, conc, 0, 6, method) - auc_interval(days, conc, 0, 5, method)
        assert diff == pytest.approx(expected, rel=1e-10)


def test_auc_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        auc_interval([0, 1], [1, 2], method="log")
    with pytest.raises(ValueError, match="same day"):
        auc_interval([0, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="after start"):
        auc_interval([0, 1], [1, 2], start=5, end=5)


# ----------------------------------------------------------------------------- BLQ rule
BLQ_PROFILE = pd.DataFrame({"day": [0, 1, 4, 7, 10, 14, 21], CONC: [0, 0, 100, 0, 50, 0, 0]})
# leading zeros: days 0, 1; middle zero: day 7; trailing zeros: days 14, 21


@pytest.mark.parametrize(
    ("rule", "kept_days"),
    [
        (BLQRule(), [0, 1, 4, 10, 14, 21]),  # PKNCA default: keep first, drop middle, keep last
        (BLQRule("keep", "keep", "keep"), [0, 1, 4, 7, 10, 14, 21]),
        (BLQRule("drop", "drop", "drop"), [4, 10]),
        (BLQRule("drop", "keep", "keep"), [4, 7, 10, 14, 21]),
        (BLQRule("keep", "drop", "drop"), [0, 1, 4, 10]),
    ],
)
def test_blq_rule_first_middle_last(rule, kept_days):
    assert apply_blq(BLQ_PROFILE, rule)["day"].tolist() == kept_days


def test_blq_all_zero_profile_counts_as_leading_zeros():
    # PKNCA clean.conc.blq: with no quantifiable sample every BLQ is a "first" one.
    zeros = pd.DataFrame({"day": [0, 7, 14], CONC: [0, 0, 0]})
    assert len(apply_blq(zeros)) == 3
    assert len(apply_blq(zeros, BLQRule(last="drop"))) == 3
    assert len(apply_blq(zeros, BLQRule(first="drop"))) == 0


def test_blq_per_patient_and_missing_dropped():
    df = pd.DataFrame({"patient_id": ["P02", "P02", "P02", "P01", "P01", "P01"],
                       "day": [0, 7, 14, 14, 7, 0], CONC: [5, 0, 5, np.nan, 0, 3]})
    out = apply_blq(df)
    # P01: day 14 missing -> dropped; day 7 is then trailing -> kept. P02: day 7 is middle -> dropped.
    assert list(zip(out["patient_id"], out["day"])) == [("P01", 0), ("P01", 7), ("P02", 0), ("P02", 14)]


def test_blq_rule_validates():
    with pytest.raises(ValueError, match="middle"):
        BLQRule(middle="impute")


def test_middle_zero_is_dropped_before_auc_in_nca():
    # days 0,7,10,14,21,28; conc 0,1000,0,800,400,200 (day 10 is a middle BLQ).
    # default rule drops day 10: 3500 + 7*(800-1000)/ln(0.8) + 7*400/ln2 + 7*200/ln2
    #   = 3500 + 6273.99 + 4039.55 + 2019.77 = 15833.31
    # keeping it: 3500 + 3*1000/2 + 4*800/2 + 4039.55 + 2019.77 = 12659.32
    kin = _kin({"P01": ([0, 7, 10, 14, 21, 28], [0, 1000, 0, 800, 400, 200])})
    expected_drop = 3500 + 7 * -200 / math.log(0.8) + 7 * 400 / LN2 + 7 * 200 / LN2
    assert expected_drop == pytest.approx(15833.31, abs=0.01)
    assert nca(kin)["auc_0_28"].iloc[0] == pytest.approx(expected_drop, rel=1e-12)
    kept = nca(kin, blq=BLQRule(middle="keep"))["auc_0_28"].iloc[0]
    assert kept == pytest.approx(3500 + 1500 + 1600 + 7 * 400 / LN2 + 7 * 200 / LN2, rel=1e-12)


# ----------------------------------------------------------------------------- half-life, doubling
def test_half_life_exact_exponential():
    # C = 100 exp(-0.3 t) at t = 0..5; Tmax = 0, points strictly after it: t = 1..5 (5 points).
    # Every fit is exact (adj R^2 = 1), so the one with most points wins: lambda_z = 0.3,
    # half-life = ln2/0.3 = 2.310491
    t = np.arange(6.0)
    res = terminal_half_life(t, 100 * np.exp(-0.3 * t), tmax=0.0)
    assert res["lambda_z"] == pytest.approx(0.3, rel=1e-12)
    assert res["half_life"] == pytest.approx(LN2 / 0.3, rel=1e-12)
    assert (res["n_points"], res["first_day"], res["last_day"]) == (5, 1.0, 5.0)
    assert res["adj_r2"] == pytest.approx(1.0)


def test_half_life_prefers_better_adjusted_r2_over_more_points():
    # Tail days 3,4,5 = 400,200,100 is exact (adj R^2 = 1, lambda = ln2); adding day 2 (300, off the line)
    # lowers adj R^2 by far more than 1e-4, so PKNCA keeps the 3-point fit: half-life 1 day.
    res = terminal_half_life([0, 1, 2, 3, 4, 5], [1000, 500, 300, 400, 200, 100], tmax=0)
    assert res["n_points"] == 3
    assert res["half_life"] == pytest.approx(1.0, rel=1e-12)


def test_half_life_none_with_too_few_points_or_rising_tail():
    few = terminal_half_life([0, 7, 14], [1000, 500, 250], tmax=0)  # 2 points after Tmax
    rising = terminal_half_life([0, 7, 14, 21, 28], [1000, 100, 200, 400, 800], tmax=0)
    for res in (few, rising):
        assert math.isnan(res["half_life"]) and math.isnan(res["lambda_z"]) and res["n_points"] == 0
    with pytest.raises(ValueError):
        terminal_half_life([0, 1, 2], [3, 2, 1], tmax=0, min_points=2)


def test_doubling_time_exact_growth():
    # days 0,1,4,7; conc 0,100,800,6400: x8 every 3 days -> slope ln8/3 = ln2 -> doubling time 1 day.
    # Window: first quantifiable (day 1) to Tmax (day 7): 3 points.
    res = doubling_time([0, 1, 4, 7, 14], [0, 100, 800, 6400, 1000], tmax=7)
    assert res["doubling_time"] == pytest.approx(1.0, rel=1e-12)
    assert res["n_points"] == 3 and res["adj_r2"] == pytest.approx(1.0)
    short = doubling_time([0, 4, 7], [0, 800, 6400], tmax=7)  # 2 points < 3
    assert math.isnan(short["doubling_time"]) and short["n_points"] == 0


# ----------------------------------------------------------------------------- nca per patient
def test_nca_tmax_first_on_ties_and_columns():
    # P01: 500 on days 7 and 14 -> Tmax = 7 (first); Tlast = 21, Clast = 100.
    kin = _kin({"P01": ([0, 7, 14, 21], [0, 500, 500, 100])})
    out = nca(kin)
    assert list(out.columns) == ["patient_id", "n_samples", "cmax", "tmax", "auc_0_28", "tlast", "clast",
                                 "persistence_day", "doubling_time", "doubling_adj_r2", "half_life",
                                 "half_life_adj_r2", "half_life_n"]
    row = out.iloc[0]
    assert (row["cmax"], row["tmax"], row["tlast"], row["clast"], row["persistence_day"]) == (500, 7, 21, 100, 21)
    assert "auc_0_21" in nca(kin, end=21).columns


def test_nca_single_sample_patient():
    # One sample, day 14 = 1000: Cmax 1000, Tmax = Tlast = 14. AUC 0-28 needs extrapolation past day 14
    # and no half-life exists -> NaN (by design, never truncated at Tlast). No doubling time.
    row = nca(_kin({"P01": ([14], [1000])})).iloc[0]
    assert (row["n_samples"], row["cmax"], row["tmax"], row["tlast"], row["clast"]) == (1, 1000, 14, 14, 1000)
    assert math.isnan(row["auc_0_28"]) and math.isnan(row["half_life"]) and row["half_life_n"] == 0
    assert math.isnan(row["doubling_time"])


def test_nca_patient_without_detectable_expansion():
    # All BLQ: Cmax 0, AUC 0, and Tmax/Tlast/Clast NaN (PKNCA: no peak time exists; a Tmax of day 0
    # would pull the cohort's median Tmax down).
    row = nca(_kin({"P01": ([0, 7, 14, 28], [0, 0, 0, 0])})).iloc[0]
    assert row["cmax"] == 0 and row["auc_0_28"] == 0 and row["n_samples"] == 4
    assert all(math.isnan(row[c]) for c in ("tmax", "tlast", "clast", "persistence_day", "half_life"))


def test_nca_full_profile_matches_hand_values():
    # P01 = the extrapolation profile above (AUC 23516.1155, half-life 7, 3 points);
    # P02 = exact doubling then exact halving: days 0,1,4,7,14,21,28 conc 0,100,800,6400,3200,1600,800
    #   Tmax 7; doubling time 1 day (3 points); half-life 7 days from days 14,21,28.
    kin = _kin({"P01": ([0, 4, 7, 14, 21], [0, 2000, 1600, 800, 400]),
                "P02": ([0, 1, 4, 7, 14, 21, 28], [0, 100, 800, 6400, 3200, 1600, 800])})
    out = nca(kin).set_index("patient_id")
    assert out.loc["P01", "auc_0_28"] == pytest.approx(23516.1155419813, rel=1e-9)
    assert out.loc["P01", "half_life"] == pytest.approx(7.0) and out.loc["P01", "half_life_n"] == 3
    assert out.loc["P02", "doubling_time"] == pytest.approx(1.0)
    assert out.loc["P02", "half_life"] == pytest.approx(7.0)
    # P02 AUC, segment by segment:
    #   0->1 linear 50; 1->4 linear 3*900/2 = 1350; 4->7 linear 3*7200/2 = 10800;
    #   7->14 log 7*3200/ln2; 14->21 log 7*1600/ln2; 21->28 log 7*800/ln2 -> 12200 + 7*5600/ln2 = 68753.65
    assert out.loc["P02", "auc_0_28"] == pytest.approx(12200 + 7 * 5600 / LN2, rel=1e-12)


# ----------------------------------------------------------------------------- peak expansion
def test_peak_expansion_zero_goes_to_half_lowest_quantifiable():
    # lowest positive value in the data = 20 -> floor 10 -> log10 = 1 for the patient with Cmax 0.
    kin = _kin({"P01": ([0, 7], [0, 5000]), "P02": ([0, 7], [0, 0]), "P03": ([7, 14], [40, 20])})
    out = peak_expansion(kin).set_index("patient_id")
    assert out["peak_copies"].tolist() == [5000, 0, 40]
    assert out["log10_peak"].tolist() == pytest.approx([math.log10(5000), 1.0, math.log10(40)])
    assert out["peak_imputed"].tolist() == [False, True, False]


# ----------------------------------------------------------------------------- summaries
def test_geometric_summary_known_numbers():
    # 1, 10, 100 (+ one zero, one missing): GM = 10; sd(ln x) = ln10 * sd(0,1,2) = ln10;
    # CV% = 100*sqrt(exp(ln10^2) - 1) = 100*sqrt(200.7158 - 1) = 1413.2142
    g = geometric_summary(pd.Series([1, 10, 100, 0, np.nan]))
    assert (g["n"], g["n_zero"]) == (3, 1)
    assert g["geometric_mean"] == pytest.approx(10.0)
    assert g["geometric_cv_pct"] == pytest.approx(1413.214182, rel=1e-9)
    # 2, 8: GM 4; sd(ln) = ln4/sqrt2 = 0.980258; CV% = 100*sqrt(exp(0.960906) - 1) = 127.0458
    assert geometric_summary(pd.Series([2, 8]))["geometric_cv_pct"] == pytest.approx(127.045811, rel=1e-8)


def test_nca_summary_table():
    # Overall Cmax 1000, 10000 (0 excluded): GM sqrt(1e7) = 3162.28 -> "3,160";
    # CV% = 100*sqrt(exp((ln10/sqrt2)^2) - 1) = 362.87 -> "3,160 (362.9%)". Tmax 7, 14 -> "10.5 (7–14)".
    params = pd.DataFrame({"patient_id": ["P01", "P02", "P03"], "cmax": [1000.0, 10000.0, 0.0],
                           "auc_0_28": [5000.0, 20000.0, 0.0], "tmax": [7.0, 14.0, np.nan],
                           "tlast": [28.0, 90.0, np.nan]})
    by = pd.Series({"P01": "CR", "P02": "CR", "P03": "NR"})
    tab = nca_summary(params, by)
    assert list(tab.columns) == ["parameter", "group", "n", "statistic", "value", "formatted"]
    gm = tab.query("parameter == 'cmax' and group == 'Overall' and statistic == 'geometric_mean'").iloc[0]
    assert gm["n"] == 2 and gm["value"] == pytest.approx(3162.2777) and gm["formatted"] == "3,160 (362.9%)"
    med = tab.query("parameter == 'tmax' and group == 'Overall' and statistic == 'median'").iloc[0]
    assert med["formatted"] == "10.5 (7\u201314)"
    nz = tab.query("parameter == 'cmax' and group == 'NR' and statistic == 'n_zero_excluded'").iloc[0]
    assert nz["value"] == 1 and nz["n"] == 0
    assert set(tab["group"]) == {"Overall", "CR", "NR"}


def test_spearman_ci_hand_value():
    # x = 1..5, y = 2,1,4,3,5: d = -1,1,-1,1,0, sum d^2 = 4, rho = 1 - 6*4/(5*24) = 0.8.
    # z = atanh(0.8) = 1.098612; var(z) = 1.06/(n - 3) (Fieller, Hartley & Pearson 1957), SE = sqrt(1.06/2) = 0.728011;
    # z +- 1.959964*SE -> (-0.328263, 2.525488); CI = tanh(...) = (-0.316959, 0.987275). p: t = 0.8*sqrt(3/0.36) = 2.3094, df 3, two-sided 0.104088
    res = spearman_ci([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert res["rho"] == pytest.approx(0.8)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((-0.3169591696, 0.9872753053), rel=1e-8)
    assert res["p_value"] == pytest.approx(0.104088, rel=1e-4) and res["n"] == 5


def test_spearman_ci_degenerate_inputs_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        const = spearman_ci([1, 2, 3, 4], [5, 5, 5, 5])
        perfect = spearman_ci([1, 2, 3, 4], [2, 4, 6, 8])
    assert math.isnan(const["rho"]) and const["message"] == "a variable is constant"
    assert perfect["ci_low"] == perfect["ci_high"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- plots
def test_plots_draw_without_warnings():
    # floor = half the lowest positive value (10) = 5. CR median by day over P01, P03, P04 (BLQ at 5):
    # day 0: (5, 10, 5) -> 5; day 7: (5000, 400, 1000) -> 1000; day 14: (100, 5, 50) -> 50.
    # NR has one patient (< 3 sampled per day): no median line.
    kin = _kin({"P01": ([0, 7, 14], [0, 5000, 100]), "P02": ([0, 7, 14], [0, 0, 0]),
                "P03": ([0, 7, 14], [10, 400, 0]), "P04": ([0, 7, 14], [0, 1000, 50])})
    grp = pd.Series({"P01": "CR", "P02": "NR", "P03": "CR", "P04": "CR"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, (ax1, ax2) = plt.subplots(1, 2)
        out1 = plot_spaghetti(kin, grp, ax=ax1)
        cmax = peak_expansion(kin).set_index("patient_id")["peak_copies"]
        out2 = plot_points_box(cmax, grp, ax=ax2, ylabel="Cmax")
    assert out1 is ax1 and out2 is ax2
    assert ax1.get_yscale() == "log" and ax2.get_yscale() == "log"
    # one LineCollection per group (3 CR patients, 1 NR patient); lines: CR median + floor line
    assert [len(c.get_paths()) for c in ax1.collections] == [3, 1]
    assert ax1.collections[1].get_paths()[0].vertices.tolist() == [[0, 5.0], [7, 5.0], [14, 5.0]]  # P02 all BLQ
    assert ax1.collections[0].get_alpha() == 0.35  # 4 patients <= max_patients: lines not faded
    assert len(ax1.lines) == 2
    assert list(ax1.lines[0].get_ydata()) == [5.0, 1000.0, 50.0]
    assert ax1.lines[-1].get_ydata()[0] == 5.0
    assert "1 value(s) of 0" in ax2.get_xlabel()
    plt.close(fig)


def test_spaghetti_fades_lines_above_max_patients():
    # 4 patients, max_patients 2: alpha = 0.35 * 2 / 4 = 0.175; all 4 patients are still drawn.
    kin = _kin({"P01": ([0, 7], [0, 500]), "P02": ([0, 7], [10, 300]), "P03": ([0, 7], [20, 40]),
                "P04": ([0, 7], [0, 90])})
    fig, ax = plt.subplots()
    plot_spaghetti(kin, ax=ax, max_patients=2)
    assert len(ax.collections[0].get_paths()) == 4 and ax.collections[0].get_alpha() == pytest.approx(0.175)
    plt.close(fig)


def test_spaghetti_day_axis_linear_then_log():
    # last sample day 180, linear_to 28: weekly ticks 0..28, then the late ticks up to day 180 (90, 180).
    kin = _kin({"P01": ([0, 7, 28, 180], [0, 500, 100, 20]), "P02": ([0, 7, 28], [0, 300, 50])})
    fig, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_spaghetti(kin, ax=ax, linear_to=28)
    assert ax.get_xscale() == "symlog"
    assert list(ax.get_xticks()) == [0, 7, 14, 21, 28, 90, 180]
    assert ax.get_xlim() == pytest.approx((0, 189))
    plt.close(fig)


def test_patient_lines_draw_the_pixels_of_a_line_collection(monkeypatch):
    # PatientLines scales all vertices at once; a plain LineCollection scales them path by path: the same
    # figure (symlog days, log concentrations, two groups, the legend placed "best") to the byte.
    import io

    from matplotlib.collections import LineCollection

    from helpers import kinetics

    rng = np.random.default_rng(4)
    kin = _kin({f"P{i:02d}": ([0, 7, 14, 28, 90, 365], list(rng.lognormal(6, 2, 6) * (rng.random(6) > 0.2)))
                for i in range(40)})
    group = pd.Series(["yes", "no"] * 20, index=[f"P{i:02d}" for i in range(40)])

    def png() -> tuple[bytes, type]:
        fig, ax = plt.subplots(figsize=(5, 3))
        plot_spaghetti(kin, group, ax=ax, linear_to=28, max_patients=10)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue(), type(ax.collections[0])

    fast, kind = png()
    monkeypatch.setattr(kinetics, "PatientLines", LineCollection)
    plain, plain_kind = png()
    assert (kind.__name__, plain_kind) == ("PatientLines", LineCollection) and fast == plain


def test_plots_with_no_grouped_patient_say_so():
    # e.g. a cohort without any CRS grade: every group is missing, so nothing can be drawn by group.
    kin = _kin({"P01": ([0, 7], [0, 500]), "P02": ([0, 7], [0, 300])})
    none = pd.Series([None, None], index=["P01", "P02"], dtype=object)
    fig, (ax1, ax2) = plt.subplots(1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_spaghetti(kin, none, ax=ax1)
        plot_points_box(pd.Series([500.0, 300.0], index=["P01", "P02"]), none, ax=ax2)
    assert ax1.texts[0].get_text().startswith("Nothing to draw") and not ax1.lines
    assert ax2.texts[0].get_text().startswith("Nothing to draw")
    plt.close(fig)


# ----------------------------------------------------------------------------- associations
def test_associations_hand_values_missing_pairs_and_absent_term():
    params = pd.DataFrame({"patient_id": ["P01", "P02", "P03", "P04", "P05"], "cmax": [1.0, 2, 3, 4, 5],
                           "auc_0_28": [1.0, 2, 3, 4, np.nan]})
    cov = pd.DataFrame({"patient_id": ["P05", "P04", "P03", "P02", "P01"], "bm_blasts_pct": [5.0, 3, 4, 1, 2],
                        "crs_grade": pd.array([4, 3, 2, 1, 0], dtype="Int64")})
    tab = associations(params, cov, ["cmax", "auc_0_28"], ["bm_blasts_pct", "crs_grade", "product_em_pct"])
    assert list(tab.columns) == ["outcome", "term", "estimate", "ci_low", "ci_high", "p_value", "n", "method",
                                 "message"]
    row = tab.set_index(["outcome", "term"])
    # cmax vs blasts = the spearman_ci hand example (rho 0.8, CI -0.3170 to 0.9873), after the join on patient_id.
    assert row.loc[("cmax", "bm_blasts_pct"), "estimate"] == pytest.approx(0.8)
    assert row.loc[("cmax", "bm_blasts_pct"), "ci_low"] == pytest.approx(-0.3169591696, rel=1e-8)
    # auc vs blasts: P05 dropped (AUC NaN): x 1..4, y 2,1,4,3: sum d^2 = 4, rho = 1 - 24/60 = 0.6, n = 4.
    # z = atanh(0.6) = 0.693147, half-width 1.959964*sqrt(1.06/1) = 2.017906 -> tanh: (-0.867963, 0.991203).
    # p: t = 0.6*sqrt(2/0.64) = 1.06066, df 2: p = 1 - t/sqrt(2 + t^2) = 1 - 0.6 = 0.4
    auc = row.loc[("auc_0_28", "bm_blasts_pct")]
    assert (auc["estimate"], auc["n"]) == (pytest.approx(0.6), 4)
    assert (auc["ci_low"], auc["ci_high"]) == pytest.approx((-0.8679626139, 0.9912032077), rel=1e-8)
    assert auc["p_value"] == pytest.approx(0.4, rel=1e-9)
    # Int64 CRS grade 0..4 rises with cmax 1..5: rho 1 (scipy returns 1 - 1e-16), CI (1, 1) to rounding
    assert row.loc[("cmax", "crs_grade"), ["estimate", "ci_low", "ci_high"]].tolist() == pytest.approx([1.0] * 3)
    absent = row.loc[("cmax", "product_em_pct")]
    assert absent["message"] == "not in this cohort" and math.isnan(absent["estimate"]) and absent["n"] == 0


# ----------------------------------------------------------------------------- chapter presentation glue
def _pt(**cols) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": ["P01", "P02", "P03"], **cols})


def test_group_labels_keep_unknown_missing_and_order():
    pt = _pt(remission=[True, False, True], severe_crs=pd.array([True, False, pd.NA], dtype="boolean"),
             best_response=["NR", "CR", "CRi"], crs_grade=pd.array([3, 0, pd.NA], dtype="Int64"))
    sev = kr.severe_crs_groups(pt, 3)
    assert sev.tolist()[:2] == ["Severe CRS (grade \u22653)", "No severe CRS"] and pd.isna(sev["P03"])
    assert list(kr.remission_groups(pt).cat.categories) == [kr.REMISSION, kr.NO_REMISSION]
    assert list(kr.response_groups(pt).cat.categories) == ["CR", "CRi", "NR"]  # PR absent, order CR CRi PR NR
    assert kr.crs_grade_groups(pt).tolist()[:2] == ["Grade 3", "Grade 0"]


def test_literature_table_and_reference_comparison():
    # Remission: Cmax 16,350 and 65,400 -> GM sqrt(16350*65400) = 32,700 = the label's value -> ratio 1;
    #   CV% = 100*sqrt(exp(sd^2) - 1), sd(ln) = ln4/sqrt2 -> 127.0% (see test_geometric_summary_known_numbers).
    #   Tmax 7, 14 -> median 10.5; label 9.8 -> ratio 10.5/9.8 = 1.071429.
    # No remission: P03 alone, Cmax 1000 (CV NA with one value).
    params = pd.DataFrame({"patient_id": ["P01", "P02", "P03"], "cmax": [16350.0, 65400.0, 1000.0],
                           "auc_0_28": [1e5, 4e5, 1e4], "tmax": [7.0, 14.0, 10.0], "tlast": [28.0, 90.0, 14.0]})
    groups = {"remission": kr.remission_groups(_pt(remission=[True, True, False]))}
    summary = kr.summary_long(params, groups)
    wide = kr.literature_frame(summary, {"Overall": 3, kr.REMISSION: 2, kr.NO_REMISSION: 1}).set_index("Group")
    assert list(wide.columns) == ["Split", "Cmax, copies/\u00b5g DNA", "AUC\u2080\u208b\u2082\u2088, copies/\u00b5g DNA \u00d7 day",
                                  "Tmax, day", "Tlast, day"]
    assert wide.index.tolist() == ["Overall, N = 3", f"{kr.REMISSION}, N = 2", f"{kr.NO_REMISSION}, N = 1"]
    assert wide.loc[f"{kr.REMISSION}, N = 2", "Cmax, copies/\u00b5g DNA"] == "32,700 (127%)"
    assert wide.loc[f"{kr.REMISSION}, N = 2", "Tmax, day"] == "10.5 (7\u201314)"
    assert wide.loc[f"{kr.NO_REMISSION}, N = 1", "Cmax, copies/\u00b5g DNA"] == "1,000"  # one value: no geometric CV
    assert wide["Split"].tolist() == ["All patients", "By remission", "By remission"]
    fewer = kr.literature_frame(summary, {"Overall": 3, kr.REMISSION: 3, kr.NO_REMISSION: 1}).set_index("Group")
    assert fewer.loc[f"{kr.REMISSION}, N = 3", "Cmax, copies/\u00b5g DNA"] == "32,700 (127%); n = 2"  # fewer than N
    comp = kr.reference_comparison(summary, 28).set_index(["group", "parameter"])
    assert comp.loc[(kr.REMISSION, "cmax"), "ratio"] == pytest.approx(1.0)
    assert comp.loc[(kr.REMISSION, "tmax"), "ratio"] == pytest.approx(10.5 / 9.8)
    assert comp.loc[(kr.REMISSION, "auc_0_28"), "cohort"] == pytest.approx(2e5)  # sqrt(1e5 * 4e5)
    assert "auc_0_28" not in kr.reference_comparison(summary, 21)["parameter"].tolist()


def test_chapter_facts_counts_and_peak_source_check():
    # P01 one sample on day 14 -> AUC NaN (no half-life); P02 all BLQ -> no expansion; P03 full profile.
    # lowest positive value 40 -> floor 20.
    kin = _kin({"P01": ([14], [1000]), "P02": ([0, 7], [0, 0]), "P03": ([0, 7, 14, 28], [0, 400, 200, 40])})
    params = nca(kin)
    pt = _pt().merge(peak_expansion(kin), on="patient_id")
    assoc = associations(params, pt.assign(x=[1.0, 2, 3]), ["cmax"], ["x"])
    facts = kr.chapter_facts(kin, params, pt, assoc)
    assert (facts["kin_n_patients"], facts["kin_n_samples"], facts["kin_n_no_expansion"]) == (3, 7, 1)
    assert (facts["kin_n_auc_missing"], facts["kin_floor"], facts["kin_n_peak_imputed"]) == (1, 20.0, 1)
    assert (facts["kin_peak_same"], facts["kin_peak_mismatch"]) == ("yes", 0)
    assert facts["kin_early_days"] == "0, 7, 14, 28"
    assert facts["kin_n_assoc"] == 0  # 3 pairs < 4: no correlation estimated, none counted
    broken = kr.chapter_facts(kin, params, pt.assign(peak_copies=[1000.0, 0.0, 399.0]), assoc)
    assert (broken["kin_peak_same"], broken["kin_peak_mismatch"]) == ("no", 1)


def test_chapter_runs_on_an_empty_kinetics_table():
    # The chapter's stand-in when kinetics.csv is absent: every computation returns empty/NaN, nothing raises.
    params = nca(kr.empty_kinetics())
    assert len(params) == 0 and "auc_0_28" in params.columns
    facts = kr.chapter_facts(kr.empty_kinetics(), params, _pt(peak_copies=np.nan),
                             associations(params, _pt(x=[1.0, 2, 3]), ["cmax"], ["x"]))
    assert facts["kin_n_patients"] == 0 and facts["kin_peak_same"] == "no" and math.isnan(facts["kin_floor"])


def test_nca_equals_reference_groupby_loop_on_random_profiles():
    # reference: the former loop (groupby patient, apply_blq per profile, _nca_one); random profiles with
    # BLQ zeros, missing values and shuffled rows, under several BLQ rules and both AUC methods
    from helpers.kinetics import BLQRule, _nca_one, _profile_arrays, apply_blq

    rng = np.random.default_rng(42)
    rows = []
    for i in range(60):
        days = np.sort(rng.choice(np.arange(0, 60), size=rng.integers(1, 12), replace=False)).astype(float)
        conc = rng.choice([0.0, 0.0, np.nan, 10.0, 500.0, 20000.0, 3000.0], size=days.size)
        rows += [{"patient_id": f"P{i:02d}", "day": d, CONC: c} for d, c in zip(days, conc)]
    rows += [{"patient_id": "P98", "day": d, CONC: 0.0} for d in (1.0, 7.0)]  # never quantifiable
    rows += [{"patient_id": "P99", "day": 3.0, CONC: np.nan}]  # no usable sample: n_samples 0
    kin = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
    for blq in (BLQRule(), BLQRule("drop", "keep", "drop")):
        for method in ("lin-up/log-down", "linear"):
            got = nca(kin, end=21.0, method=method, blq=blq)
            ref = []
            for pid, raw in kin.groupby("patient_id", sort=True):
                clean = apply_blq(raw[["day", CONC]], blq)
                t, c = _profile_arrays(clean["day"], clean[CONC])
                ref.append({"patient_id": pid, "n_samples": int(raw[CONC].notna().sum()),
                            **_nca_one(t, c, 21.0, method)})
            pd.testing.assert_frame_equal(got, pd.DataFrame(ref, columns=got.columns), check_exact=True)
            assert got["half_life"].notna().any()
            p98 = got.set_index("patient_id").loc["P98", "cmax"]  # leading BLQ kept -> 0, dropped -> no sample
            assert p98 == 0 if blq.first == "keep" else np.isnan(p98)
            assert got.set_index("patient_id").loc["P99", "n_samples"] == 0


# ----------------------------------------------------------------------------- issue 13: pre-infusion samples
def _pre_profile() -> pd.DataFrame:
    """A positive sample on day -3 (prior product), then a post-infusion profile peaking at day 10."""
    return pd.DataFrame({"patient_id": "P01", "day": [-3.0, 0.0, 7.0, 10.0, 14.0, 28.0],
                         "car_copies_per_ug_dna": [90000.0, 0.0, 2000.0, 8000.0, 4000.0, 1000.0]})


def test_pre_infusion_sample_is_not_cmax_tmax_or_peak():
    from helpers.kinetics import nca, pre_infusion_findings

    kin = _pre_profile()
    p = nca(kin).iloc[0]
    assert (p["cmax"], p["tmax"], p["tlast"], p["n_samples"]) == (8000.0, 10.0, 28.0, 5)
    post = kin[kin["day"] >= 0]
    assert p["auc_0_28"] == pytest.approx(nca(post).iloc[0]["auc_0_28"])
    assert peak_expansion(kin).iloc[0]["peak_copies"] == 8000.0
    f = pre_infusion_findings(kin).iloc[0]
    assert bool(f["positive"]) and f["max_pre_copies"] == 90000.0 and f["first_positive_day"] == -3.0


def test_pre_infusion_findings_negative_and_empty():
    from helpers.kinetics import pre_infusion_findings

    kin = _pre_profile().assign(car_copies_per_ug_dna=lambda d: d["car_copies_per_ug_dna"].where(d["day"] >= 0, 0.0))
    f = pre_infusion_findings(kin)
    assert len(f) == 1 and not bool(f["positive"].iloc[0]) and np.isnan(f["first_positive_day"].iloc[0])
    assert pre_infusion_findings(kin[kin["day"] >= 0]).empty


def test_only_pre_infusion_samples_give_no_nca_row():
    from helpers.kinetics import nca

    kin = pd.DataFrame({"patient_id": ["P01", "P02"], "day": [-5.0, 3.0], "car_copies_per_ug_dna": [100.0, 50.0]})
    assert nca(kin)["patient_id"].tolist() == ["P02"]
    assert peak_expansion(kin)["patient_id"].tolist() == ["P02"]


# ----------------------------------------------------------------------------- speed: all patients at once
def test_nca_checks_each_profile_after_its_blq_rule():
    # two samples on day 5, one of them a BLQ zero between quantifiable ones: dropped by the default rule, so the
    # profile is valid; kept ('middle' = keep), the profile has two samples on one day
    kin = pd.DataFrame({"patient_id": "P1", "day": [1.0, 5.0, 5.0, 9.0], CONC: [5.0, 0.0, 6.0, 1.0]})
    assert nca(kin)["cmax"].tolist() == [6.0]
    with pytest.raises(ValueError, match="two samples on the same day"):
        nca(kin, blq=BLQRule(middle="keep"))
    neg = pd.concat([kin.assign(patient_id="P0", **{CONC: [-1.0, 2.0, 3.0, 4.0]}), kin])
    with pytest.raises(ValueError, match="must be >= 0"):  # the first faulty patient (P0) is the one reported
        nca(neg, blq=BLQRule(middle="keep"))
    with pytest.raises(ValueError, match="must be after start"):
        nca(kin, end=0.0)


def test_stacked_log_linear_fits_equal_one_fit_at_a_time():
    # the NCA fits every window of one length at once; each number must be the one-window fit's, bit for bit
    from helpers.kinetics import _loglinear_fit, _window_fits

    rng = np.random.default_rng(5)
    t = np.cumsum(rng.uniform(0.5, 30, 400))
    c = np.exp(rng.normal(8, 3, 400))
    ends = rng.integers(40, 401, 300)
    sizes = rng.integers(3, 41, 300)
    slope, adj = _window_fits(t, c, ends, sizes)
    for e, k, s, a in zip(ends, sizes, slope, adj):
        one = _loglinear_fit(t[e - k:e], c[e - k:e])
        assert (s, a) == (one["slope"], one["adj_r2"])


@pytest.mark.parametrize("end", [0.5, 7.0, 28.0, 400.0])
@pytest.mark.parametrize("method", ["lin-up/log-down", "linear"])
def test_nca_auc_of_all_patients_equals_auc_interval_of_each(end, method):
    # the NCA integrates every patient's pieces at once; each AUC must be auc_interval's, bit for bit: first sample
    # after day 0 (origin added), a sample on the window's end, trailing BLQ, extrapolation, no half-life (NaN)
    from helpers.kinetics import auc_interval

    rng = np.random.default_rng(11)
    rows = []
    for i in range(200):
        days = np.sort(rng.choice(np.arange(0, 120), size=rng.integers(1, 10), replace=False)).astype(float)
        conc = rng.choice([0.0, 5.0, 80.0, 700.0, 20000.0, 3000.0], size=days.size)
        rows += [{"patient_id": f"P{i:03d}", "day": d, CONC: c} for d, c in zip(days, conc)]
    kin = pd.DataFrame(rows)
    got = nca(kin, end=end, method=method, blq=BLQRule(middle="keep")).set_index("patient_id")[f"auc_0_{end:g}"]
    for pid, g in kin.groupby("patient_id"):
        want = auc_interval(g["day"], g[CONC], 0.0, end, method)
        assert got[pid] == want or (np.isnan(got[pid]) and np.isnan(want)), pid
    assert (got == 0).any() and (got > 0).any() and (got.isna().any() or end < 28)


def test_patient_lines_follow_a_change_of_scale_between_draws(monkeypatch):
    # the scaled vertices are kept between the passes of one figure: after a new scale they are not reused,
    # and the figure is the one a plain LineCollection draws after the same change, to the byte
    import io

    from matplotlib.collections import LineCollection

    from helpers import kinetics

    rng = np.random.default_rng(5)
    kin = _kin({f"P{i:02d}": ([0, 7, 14, 28, 90], list(rng.lognormal(6, 2, 5) + 1)) for i in range(12)})

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def drawn() -> tuple[bytes, bytes, type]:
        fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
        plot_spaghetti(kin, ax=ax, linear_to=28)
        before = png(fig)
        ax.set_yscale("linear")
        after = png(fig)
        plt.close(fig)
        return before, after, type(ax.collections[0])

    fast = drawn()
    monkeypatch.setattr(kinetics, "PatientLines", LineCollection)
    plain = drawn()
    assert fast[2] is not plain[2] and fast[:2] == plain[:2] and fast[0] != fast[1]
