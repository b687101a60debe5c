"""Cytokine release syndrome (CRS) grading from daily vital signs, support and labs.

Four scales, each applied day by day to the `daily` table of the data contract:

- ``astct``   Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638 (ASTCT consensus).
- ``lee2014`` Lee DW et al., Blood 2014;124:188-195 (Table 2 and its footnote).
- ``ctcae5``  NCI CTCAE v5.0, "Cytokine release syndrome" (2017).
- ``penn``    Porter D et al., J Hematol Oncol 2018;11:35 (Penn grading scale).

The same CRS-day gate is used for every scale, so the scales differ only in how a CRS day is
graded, never in which days count as CRS. CRS follows the infusion: only days >= 0 are graded
(earlier rows are baseline, grade 0). A day is a CRS day when it has a qualifying fever (>= 38.0 C,
not attributed to another cause), or (ASTCT 2019 rule: fever no longer required once anti-cytokine
therapy is given) when it lies in a CRS episode whose fever was followed, on the same day or later,
by tocilizumab or corticosteroids, and the day's signs are not attributed to another cause
(`fever_other_cause`). An episode ends after ``GradingOptions.episode_gap_days`` consecutive days
without fever, hypotension or hypoxia; fever masking ends with it (see `crs_days`).
Everything a source leaves open is a field of :class:`GradingOptions`.

Every column but patient_id and day is optional: an absent column and a missing value mean "not
recorded", read as "not present": no fever, no hypotension, no vasopressor, no oxygen, no
anti-cytokine therapy, fever not attributed to another cause. A missing low-flow rate counts as
<= 6 L/min. A recorded FiO2 above room air (21 %) is supplemental oxygen for the scales defined by
FiO2 or by "any supplemental oxygen" (Lee 2014, CTCAE v5.0, Penn) whatever the device field says; a
missing FiO2 on supplemental oxygen counts as < 40 % unless the device is listed in
``GradingOptions.fio2_ge40_devices_if_missing``.

Optional `daily` columns (absent -> the stated conservative default, i.e. no upgrade):
``vasopressor_high_dose`` (0/1, Lee 2014 footnote high dose met; absent -> low dose),
``norepi_equiv_ug_min`` (float, norepinephrine-equivalent dose; absent -> low dose),
``fluid_boluses`` (count of IV fluid boluses for blood pressure that day; absent -> fewer than
``penn_min_fluid_boluses`` unless ``penn_assume_multiple_boluses``),
``coag_replacement`` (0/1, FFP/cryoprecipitate/fibrinogen concentrate for coagulopathy; absent -> 0).
`labs` (optional) supplies creatinine, ALT, AST and bilirubin for organ toxicity (Lee 2014, Penn).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch

SYSTEMS: tuple[str, ...] = ("astct", "lee2014", "ctcae5", "penn")

REQUIRED_DAILY_COLUMNS: tuple[str, ...] = ("patient_id", "day")
# A daily record without any temperature cannot show CRS: fever is the entry sign of every scale's grade 1
# (and of CRS itself under ASTCT 2019), so grading it would report "no CRS" for what was never measured.
GRADING_NEEDS: tuple[str, ...] = ("temp_max_c",)
DAILY_COLUMNS: tuple[str, ...] = (  # the columns the graders read (all but the first two optional)
    "patient_id", "day", "temp_max_c", "sbp_min_mmhg", "vasopressors", "vasopressin", "oxygen",
    "o2_flow_l_min", "fio2_pct", "tocilizumab", "steroids", "fever_other_cause",
)
OXYGEN_DEVICES: tuple[str, ...] = (
    "none", "low_flow", "high_flow", "facemask", "nonrebreather", "venturi", "cpap", "bipap",
    "mechanical_ventilation",
)
ORGAN_ANALYTES: dict[str, str] = {
    "creatinine": "umol/L", "alt": "U/L", "ast": "U/L", "bilirubin": "umol/L",
}
ROOM_AIR_FIO2_PCT = 21.0  # FiO2 of room air: a recorded FiO2 above it is supplemental oxygen
REPORTED = "reported"  # column name of the centre's own grades in agreement tables
GRADE_COLOURS: tuple[str, ...] = ("#eeeeee", "#fee08b", "#fdae61", "#f46d43", "#a50026", "#000000")


@dataclass(frozen=True)
class GradingOptions:
    """Every choice the grading sources leave open, with its default and source."""

    # ASTCT 2019: fever is temperature >= 38.0 C; the same threshold is used for every scale.
    fever_c: float = 38.0
    # ASTCT 2019 gives no number for hypotension; SBP < 90 mmHg is the usual adult reading.
    sbp_hypotension_mmhg: float = 90.0
    # ASTCT 2019: after tocilizumab/steroids (given on/after the first febrile day) fever is no
    # longer needed; grading goes on from hypotension and hypoxia (antipyretics not recorded).
    fever_not_required_after_anticytokine: bool = True
    # ASTCT 2019: fever must not be attributable to another cause; True counts it anyway.
    other_cause_fever_counts: bool = False
    # ASTCT 2019: low-flow nasal cannula is <= 6 L/min (grade 2); above that it is high flow.
    low_flow_max_l_min: float = 6.0
    # Ambiguity: ASTCT 2019 names the device ("high-flow nasal cannula") and, for low flow, the rate
    # (<= 6 L/min). Default: the device decides, so high_flow at <= 6 L/min is still grade 3; False
    # grades a high_flow day with a recorded rate <= low_flow_max_l_min as low flow (grade 2).
    high_flow_by_device: bool = True
    # ASTCT 2019 does not say when a CRS episode (and with it fever masking) ends. Choice: after
    # this many consecutive days without fever, hypotension or hypoxia the episode is over; a later
    # afebrile sign needs a new qualifying fever. 3 days, the span that makes a recovery "stable" in
    # the EHA/EBMT haematotoxicity consensus (Rejeski et al., Blood 2023), is used for want of a
    # CRS-specific rule; the chapter states the choice.
    episode_gap_days: int = 3
    # Lee 2014 Table 2 / CTCAE v5.0: oxygen < 40 % FiO2 -> grade 2, >= 40 % -> grade 3.
    fio2_high_pct: float = 40.0
    # Devices assumed to give FiO2 >= 40 % when fio2_pct is missing (non-rebreather masks deliver
    # roughly 60-90 %, standard respiratory-care figure, verify); any other device -> < 40 %.
    fio2_ge40_devices_if_missing: tuple[str, ...] = ("nonrebreather",)
    # Lee 2014 grade 4 "ventilator support", Penn grade 4 "mechanical ventilation", CTCAE v5.0
    # grade 4 "urgent intervention": read as invasive ventilation; add "cpap", "bipap" for the
    # broader reading of non-invasive ventilation as ventilator support.
    ventilator_support_devices: tuple[str, ...] = ("mechanical_ventilation",)
    # ASTCT 2019 excludes vasopressin from the vasopressor count; Lee 2014, CTCAE v5.0 and Penn do
    # not, so by default vasopressin counts as one more pressor under those scales.
    vasopressin_counts_outside_astct: bool = True
    # Lee 2014 Table 2 footnote (verify): high dose = norepinephrine-equivalent >= 20 ug/min,
    # or >= 10 ug/min when vasopressin is also given. A recorded `norepi_equiv_ug_min` decides
    # "high dose" (then the flag and the multiple-pressor fallback are not used).
    high_dose_ne_ug_min: float = 20.0
    high_dose_ne_with_vasopressin_ug_min: float = 10.0
    # CTCAE v5.0 grade 4 is "life-threatening; urgent intervention": read as >= 2 pressors.
    ctcae_grade4_min_pressors: int = 2
    # Porter 2018 Penn grade 3: hypotension treated with "multiple fluid boluses".
    penn_min_fluid_boluses: int = 2
    # When `fluid_boluses` is absent: assume multiple boluses for hypotension without pressors?
    penn_assume_multiple_boluses: bool = False
    # Porter 2018 names only "high-dose vasopressors" for grade 4; True reads >= 2 concurrent
    # pressors as high dose on days without a recorded dose (no `norepi_equiv_ug_min` and no
    # `vasopressor_high_dose` flag); a recorded dose always decides.
    penn_multiple_pressors_high_dose: bool = True
    # Porter 2018 "LFTs": analytes graded as liver function tests for Penn.
    penn_lft_analytes: tuple[str, ...] = ("alt", "ast", "bilirubin")
    # ULNs for CTCAE v5.0 lab grading (typical adult ranges; replace by the site's own).
    uln_creatinine_umol_l: float = 106.0  # 1.2 mg/dL
    uln_alt_u_l: float = 40.0
    uln_ast_u_l: float = 40.0
    uln_bilirubin_umol_l: float = 21.0  # 1.2 mg/dL
    # CTCAE v5.0 also grades against baseline (creatinine x baseline; ALT/AST/bilirubin when the
    # baseline is abnormal). Baseline = last value on or before this day (day 0 = infusion).
    use_lab_baseline: bool = True
    baseline_max_day: float = 0.0
    # Ambiguity: Lee 2014/CTCAE v5.0/Penn do not make fever a requirement; True applies the ASTCT
    # CRS-day gate to every scale so that only grading differs (False: any graded sign on a day >= 0
    # is a CRS day).
    fever_gate_all_systems: bool = True


# ----------------------------------------------------------------------------------- inputs


def check_daily(daily: pd.DataFrame) -> None:
    """Raise ValueError naming what is wrong with a `daily` table (key columns, duplicates, devices);
    every other column is optional (absent = not recorded)."""
    missing = [c for c in REQUIRED_DAILY_COLUMNS if c not in daily.columns]
    if missing:
        raise ValueError(f"daily table lacks the column(s) {missing}")
    dup = daily.duplicated(["patient_id", "day"])
    if dup.any():
        first = daily.loc[dup, ["patient_id", "day"]].iloc[0].tolist()
        raise ValueError(f"daily table has more than one row for patient/day {first}")
    bad = set(_device(daily)) - set(OXYGEN_DEVICES) - {"none"} if "oxygen" in daily.columns else set()
    if bad:
        raise ValueError(f"unknown oxygen device(s) {sorted(bad)}; expected one of {OXYGEN_DEVICES}")


def _num(s: pd.Series, fill: float = np.nan) -> np.ndarray:
    """Column as a float array, missing -> `fill` (nullable dtypes included)."""
    return pd.to_numeric(s, errors="coerce").astype("float64").fillna(fill).to_numpy()


def _optional(d: pd.DataFrame, column: str, fill: float = np.nan) -> np.ndarray:
    """Optional column as a float array, or all `fill` when the column is absent."""
    return _num(d[column], fill) if column in d.columns else np.full(len(d), fill)


def _device(d: pd.DataFrame) -> np.ndarray:
    """Oxygen device per row ('none' when the column is absent or the value missing)."""
    if "oxygen" not in d.columns:
        return np.full(len(d), "none", dtype=object)
    return d["oxygen"].astype(object).where(d["oxygen"].notna(), "none").to_numpy()


def _features(d: pd.DataFrame, o: GradingOptions) -> np.ndarray:
    """Per-row CRS sign other than fever: hypotension (SBP below threshold or any pressor) or hypoxia
    (any oxygen device, or a recorded FiO2 above room air)."""
    hypo = (_optional(d, "sbp_min_mmhg") < o.sbp_hypotension_mmhg) | (_optional(d, "vasopressors", 0) > 0) \
        | (_optional(d, "vasopressin", 0) == 1)
    return hypo | (_device(d) != "none") | (_optional(d, "fio2_pct") > ROOM_AIR_FIO2_PCT)


def _crs_gate(d: pd.DataFrame, o: GradingOptions) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (fever, crs_day) booleans on rows sorted by patient and day (ASTCT 2019).

    fever: temperature >= fever_c on a day >= 0, not attributed to another cause. crs_day: a fever day,
    or a day of a masked episode (see crs_days) whose signs are not attributed to another cause.
    """
    other = _optional(d, "fever_other_cause", 0) == 1
    day = d["day"].to_numpy(dtype=float)
    post = day >= 0
    fever = (_optional(d, "temp_max_c") >= o.fever_c) & (o.other_cause_fever_counts | ~other) & post
    anti = (_optional(d, "tocilizumab", 0) == 1) | (_optional(d, "steroids", 0) == 1)
    feature = fever | (_features(d, o) & ~other)
    masked = crs_days(d["patient_id"].to_numpy(), day, fever, anti, feature, o)
    return fever, fever | (masked & ~other & post)


def crs_days(pid: np.ndarray, day: np.ndarray, fever: np.ndarray, anti: np.ndarray, feature: np.ndarray,
             o: GradingOptions) -> np.ndarray:
    """Rows in fever masking, rows sorted by patient and day (ASTCT 2019: fever not required after
    tocilizumab/steroids).

    An episode opens on a qualifying fever (day >= 0) and closes after `o.episode_gap_days` consecutive
    days without fever, hypotension or hypoxia (`feature`). Masking switches on at the first
    tocilizumab/steroid day inside an open episode (the fever day itself included) and ends with the
    episode, so a later afebrile sign is CRS only after a new fever. One pass over the rows.
    """
    out = np.zeros(len(day), dtype=bool)
    if not o.fever_not_required_after_anticytokine:
        return out
    open_, masking, last = False, False, -np.inf
    for i in range(len(day)):
        if i == 0 or pid[i] != pid[i - 1]:
            open_, masking, last = False, False, -np.inf
        if not day[i] >= 0:
            continue
        if open_ and day[i] - last - 1 >= o.episode_gap_days:
            open_, masking = False, False
        if fever[i]:
            open_ = True
        if open_ and anti[i]:
            masking = True
        out[i] = masking
        if open_ and feature[i]:
            last = day[i]
    return out


def cohort_options(settings) -> GradingOptions:
    """The grading options a cohort is graded with: the defaults, with its cohort.yml `episode_gap_days`."""
    return GradingOptions(episode_gap_days=int(settings.episode_gap_days))


# -------------------------------------------------------------------------------- organ labs


def _ctcae_lab_grade(ratio: np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    """CTCAE grade = number of cut-points strictly exceeded (CTCAE writes '>3.0-5.0 x ULN')."""
    r = np.nan_to_num(ratio, nan=0.0)
    return sum((r > c).astype(int) for c in cuts)


def organ_grades(labs: pd.DataFrame, options: GradingOptions = GradingOptions()) -> pd.DataFrame:
    """CTCAE v5.0 grades of creatinine, ALT, AST and bilirubin per patient-day (wide, 0 if absent).

    Creatinine: >1/1.5/3/6 x ULN -> 1-4, and >1.5/3 x baseline -> 2/3 (the worse wins).
    ALT/AST: >1/3/5/20 x ULN, or >1.5/3/5/20 x baseline when the baseline is above ULN.
    Bilirubin: >1/1.5/3/10 x ULN, or the same multiples of an above-ULN baseline.
    """
    o = options
    lab = labs[labs["analyte"].isin(list(ORGAN_ANALYTES))]
    for analyte, unit in ORGAN_ANALYTES.items():
        units = set(lab.loc[lab["analyte"] == analyte, "unit"].dropna().unique())
        if units - {unit}:
            raise ValueError(f"labs give {analyte} in {sorted(units)}; expected {unit}")
    if lab.empty:
        return pd.DataFrame({"patient_id": [], "day": [], **{a: [] for a in ORGAN_ANALYTES}})
    wide = lab.pivot_table(index=["patient_id", "day"], columns="analyte", values="value",
                           aggfunc="max", observed=True).reindex(columns=list(ORGAN_ANALYTES))
    wide = wide.reset_index().sort_values(["patient_id", "day"])
    pre = wide[wide["day"] <= o.baseline_max_day]
    base = pre.groupby("patient_id")[list(ORGAN_ANALYTES)].last()  # last non-missing value
    base = base.reindex(wide["patient_id"]).to_numpy() if o.use_lab_baseline else \
        np.full((len(wide), len(ORGAN_ANALYTES)), np.nan)
    uln = {"creatinine": o.uln_creatinine_umol_l, "alt": o.uln_alt_u_l, "ast": o.uln_ast_u_l,
           "bilirubin": o.uln_bilirubin_umol_l}
    cuts = {"creatinine": (1.0, 1.5, 3.0, 6.0), "alt": (1.0, 3.0, 5.0, 20.0),
            "ast": (1.0, 3.0, 5.0, 20.0), "bilirubin": (1.0, 1.5, 3.0, 10.0)}
    out = wide[["patient_id", "day"]].copy()
    for j, a in enumerate(ORGAN_ANALYTES):
        v, b = wide[a].to_numpy(dtype=float), base[:, j]
        g = _ctcae_lab_grade(v / uln[a], cuts[a])
        if a == "creatinine":
            g = np.maximum(g, _ctcae_lab_grade(v / b, (1.5, 1.5, 3.0)))  # >1.5 -> 2, >3 -> 3
        else:
            abnormal = b > uln[a]
            bcuts = (1.5,) + cuts[a][1:] if a in ("alt", "ast") else cuts[a]
            g = np.where(abnormal, _ctcae_lab_grade(v / b, bcuts), g)
        out[a] = g.astype(int)
    return out.reset_index(drop=True)


def _organ_for_days(d: pd.DataFrame, labs: pd.DataFrame | None, o: GradingOptions) -> pd.DataFrame:
    """Organ grades aligned to the rows of `d` (labs on days without a daily row are ignored)."""
    keys = d[["patient_id", "day"]].astype({"day": float})
    if labs is None or labs.empty:
        return keys.assign(**{a: 0 for a in ORGAN_ANALYTES})
    g = organ_grades(labs, o).astype({"day": float})
    m = keys.merge(g, on=["patient_id", "day"], how="left")
    return m.fillna({a: 0 for a in ORGAN_ANALYTES}).astype({a: int for a in ORGAN_ANALYTES})


# ------------------------------------------------------------------------------ components

Component = tuple[np.ndarray, np.ndarray]  # (grade per row, label per row)


def _pick(conds: list[np.ndarray], grades: list[int], labels: list[str]) -> Component:
    """First matching condition sets (grade, label); rows matching none get (0, '').

    Labels are written straight into an object array, later conditions first so the first match wins
    (np.select on strings builds a fixed-width text array that would then be converted back)."""
    g = np.select(conds, grades, default=0).astype(int)
    lab = np.full(len(g), "", dtype=object)
    for cond, name in reversed(list(zip(conds, labels))):
        hit = np.asarray(cond, dtype=bool)
        lab[hit] = name[hit] if isinstance(name, np.ndarray) else name
    return g, lab


def _pressors(d: pd.DataFrame, o: GradingOptions, astct: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pressor count, vasopressin flag, hypotension flag) under the scale's vasopressin rule."""
    n = _optional(d, "vasopressors", 0)
    vp = _optional(d, "vasopressin", 0) == 1
    hypo = (_optional(d, "sbp_min_mmhg") < o.sbp_hypotension_mmhg) | (n > 0) | vp
    count = n if astct or not o.vasopressin_counts_outside_astct else n + vp
    return count, vp, hypo


def _high_dose(d: pd.DataFrame, vp: np.ndarray, o: GradingOptions,
               fallback: np.ndarray | None = None) -> np.ndarray:
    """High-dose vasopressor day per the Lee 2014 footnote: a recorded norepinephrine-equivalent dose
    decides; without it the `vasopressor_high_dose` flag; without either, `fallback` (or low dose)."""
    ne = _optional(d, "norepi_equiv_ug_min")
    flag = _optional(d, "vasopressor_high_dose")
    limit = np.where(vp, o.high_dose_ne_with_vasopressin_ug_min, o.high_dose_ne_ug_min)
    rest = np.zeros(len(d), dtype=bool) if fallback is None else fallback
    return np.where(~np.isnan(ne), ne >= limit, np.where(~np.isnan(flag), flag == 1, rest))


def _fio2_high(d: pd.DataFrame, on_o2: np.ndarray, o: GradingOptions) -> np.ndarray:
    """Supplemental oxygen at FiO2 >= threshold (missing FiO2: by device, see options)."""
    fio2 = _optional(d, "fio2_pct")
    by_device = np.isin(_device(d), list(o.fio2_ge40_devices_if_missing))
    return on_o2 & np.where(np.isnan(fio2), by_device, fio2 >= o.fio2_high_pct)


def _astct_components(d: pd.DataFrame, organ: pd.DataFrame, o: GradingOptions) -> list[Component]:
    """ASTCT 2019 hypotension and hypoxia components (organ toxicity does not change the grade)."""
    n, vp, hypo = _pressors(d, o, astct=True)
    hypotension = _pick([n >= 2, n == 1, vp, hypo], [4, 3, 3, 2],
                        ["hypotension:multi_pressor", "hypotension:one_pressor",
                         "hypotension:vasopressin", "hypotension:no_pressor"])
    dev = _device(d)
    flow = _optional(d, "o2_flow_l_min")
    over = (dev == "low_flow") & (flow > o.low_flow_max_l_min)
    slow_high = (dev == "high_flow") & (flow <= o.low_flow_max_l_min) & (not o.high_flow_by_device)
    pos = np.isin(dev, ["cpap", "bipap", "mechanical_ventilation"])
    mask3 = np.isin(dev, ["high_flow", "facemask", "nonrebreather", "venturi"]) & ~slow_high
    hypoxia = _pick([pos, mask3, over, dev == "low_flow", slow_high], [4, 3, 3, 2, 2],
                    [np.char.add("hypoxia:", dev.astype(str)), np.char.add("hypoxia:", dev.astype(str)),
                     "hypoxia:low_flow_over_limit", "hypoxia:low_flow", "hypoxia:high_flow_low_rate"])
    return [hypotension, hypoxia]


def _oxygen_state(d: pd.DataFrame, o: GradingOptions) -> tuple[np.ndarray, np.ndarray]:
    """(on supplemental oxygen, on ventilator support) per row; a recorded FiO2 above room air is
    supplemental oxygen whatever the device field says (Lee 2014, CTCAE v5.0 and Penn grade oxygen by
    FiO2 or by any supplemental oxygen, not by device)."""
    dev = _device(d)
    on_o2 = (dev != "none") | (_optional(d, "fio2_pct") > ROOM_AIR_FIO2_PCT)
    return on_o2, np.isin(dev, list(o.ventilator_support_devices))


def _lee_organ(organ: pd.DataFrame) -> Component:
    """Lee 2014 organ rule: CTCAE grade 2/3/4 organ toxicity -> 2/3/4; transaminitis grade 4 -> 3."""
    parts = []
    for a in ORGAN_ANALYTES:
        g = organ[a].to_numpy()
        if a in ("alt", "ast"):
            parts.append(_pick([g >= 3, g == 2], [3, 2], [f"organ:{a}_ctcae3+", f"organ:{a}_ctcae2"]))
        else:
            parts.append(_pick([g >= 4, g == 3, g == 2], [4, 3, 2],
                               [f"organ:{a}_ctcae4", f"organ:{a}_ctcae3", f"organ:{a}_ctcae2"]))
    return _worst(parts)


def _lee_components(d: pd.DataFrame, organ: pd.DataFrame, o: GradingOptions) -> list[Component]:
    """Lee 2014 Table 2: FiO2 < / >= 40 %, ventilator, pressor number and dose, organ toxicity."""
    n, vp, hypo = _pressors(d, o, astct=False)
    high = _high_dose(d, vp, o)
    hypotension = _pick([n >= 2, (n == 1) & high, n == 1, hypo], [3, 3, 2, 2],
                        ["hypotension:multi_pressor", "hypotension:high_dose_pressor",
                         "hypotension:low_dose_pressor", "hypotension:no_pressor"])
    on_o2, vent = _oxygen_state(d, o)
    hypoxia = _pick([vent, _fio2_high(d, on_o2, o), on_o2], [4, 3, 2],
                    ["hypoxia:ventilator", "hypoxia:fio2_high", "hypoxia:fio2_low"])
    return [hypotension, hypoxia, _lee_organ(organ)]


def _ctcae_components(d: pd.DataFrame, organ: pd.DataFrame, o: GradingOptions) -> list[Component]:
    """CTCAE v5.0 CRS: fluids-responsive hypotension/ <40 % O2 -> 2; one pressor/ >=40 % O2 -> 3."""
    n, _, hypo = _pressors(d, o, astct=False)
    hypotension = _pick([n >= o.ctcae_grade4_min_pressors, n >= 1, hypo], [4, 3, 2],
                        ["hypotension:multi_pressor", "hypotension:one_pressor",
                         "hypotension:no_pressor"])
    on_o2, vent = _oxygen_state(d, o)
    hypoxia = _pick([vent, _fio2_high(d, on_o2, o), on_o2], [4, 3, 2],
                    ["hypoxia:ventilator", "hypoxia:fio2_high", "hypoxia:fio2_low"])
    return [hypotension, hypoxia]


def _penn_organ(organ: pd.DataFrame, o: GradingOptions) -> Component:
    """Porter 2018: creatinine grade 2 -> 2, >= 3 -> 3; LFT grade 3 -> 2, grade 4 -> 3."""
    cre = organ["creatinine"].to_numpy()
    parts = [_pick([cre >= 3, cre == 2], [3, 2], ["organ:creatinine_ctcae3+", "organ:creatinine_ctcae2"])]
    for a in o.penn_lft_analytes:
        g = organ[a].to_numpy()
        parts.append(_pick([g >= 4, g == 3], [3, 2], [f"organ:{a}_ctcae4", f"organ:{a}_ctcae3"]))
    return _worst(parts)


def _penn_components(d: pd.DataFrame, organ: pd.DataFrame, o: GradingOptions) -> list[Component]:
    """Porter 2018 Penn scale: hypotension, oxygen, coagulopathy, organ dysfunction."""
    n, vp, hypo = _pressors(d, o, astct=False)
    high = _high_dose(d, vp, o, fallback=(n >= 2) & o.penn_multiple_pressors_high_dose)
    boluses = _optional(d, "fluid_boluses", o.penn_min_fluid_boluses if o.penn_assume_multiple_boluses else 0)
    hypotension = _pick([(n >= 1) & high, n >= 1, hypo & (boluses >= o.penn_min_fluid_boluses), hypo],
                        [4, 3, 3, 2],
                        ["hypotension:high_dose_pressor", "hypotension:low_dose_pressor",
                         "hypotension:fluid_boluses", "hypotension:no_pressor"])
    on_o2, vent = _oxygen_state(d, o)
    hypoxia = _pick([vent, on_o2], [4, 3], ["hypoxia:ventilator", "hypoxia:supplemental_o2"])
    coag = _pick([_optional(d, "coag_replacement", 0) == 1], [3], ["coagulopathy:replacement"])
    return [hypotension, hypoxia, coag, _penn_organ(organ, o)]


def _worst(parts: list[Component]) -> Component:
    """Row-wise maximum grade; label joins (with '+') every part that reaches it (vectorised, part order)."""
    g = np.max(np.vstack([p[0] for p in parts]), axis=0).astype(int)
    labels = np.full(len(g), "", dtype=object)
    for grade, lab in parts:
        lab = np.asarray(lab, dtype=object)
        hit = (grade == g) & (g > 0) & (lab != "")
        if not hit.any():
            continue
        add = lab[hit].astype(str).astype(object)
        cur = labels[hit]
        labels[hit] = np.where(cur == "", add, cur + "+" + add)
    return g, labels


_COMPONENTS = {"astct": _astct_components, "lee2014": _lee_components,
               "ctcae5": _ctcae_components, "penn": _penn_components}


# ------------------------------------------------------------------------------ public API


def _prepare(daily: pd.DataFrame, labs: pd.DataFrame | None,
             options: GradingOptions) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame]:
    """Checked, sorted daily rows with their CRS-day gate and organ grades: the part every scale shares."""
    check_daily(daily)
    d = daily.sort_values(["patient_id", "day"]).reset_index(drop=True)
    fever, crs_day = _crs_gate(d, options)
    return d, fever, crs_day, _organ_for_days(d, labs, options)


def _grade_prepared(prep: tuple, system: str, options: GradingOptions) -> pd.DataFrame:
    """grade_daily for one scale on the output of _prepare (so several scales share one preparation)."""
    if system not in _COMPONENTS:
        raise ValueError(f"unknown CRS grading system {system!r}; choose one of {SYSTEMS}")
    d, fever, crs_day, organ = prep
    fever_part = (fever.astype(int), np.where(fever, "fever", "").astype(object))
    grade, driver = _worst([fever_part] + _COMPONENTS[system](d, organ, options))
    post = d["day"].to_numpy(dtype=float) >= 0  # CRS follows the infusion: earlier rows are baseline
    gated = crs_day if (system == "astct" or options.fever_gate_all_systems) else post
    grade = np.where(gated, grade, 0)
    driver = np.where(grade > 0, driver, "none")
    return pd.DataFrame({
        "patient_id": d["patient_id"].to_numpy(), "day": d["day"].to_numpy(dtype=float),
        "system": system, "fever": fever, "crs_day": crs_day,
        "grade": grade.astype("int64"), "driver": driver,  # every driver is already a str
    })


def grade_systems(daily: pd.DataFrame, systems: tuple[str, ...] = SYSTEMS, labs: pd.DataFrame | None = None,
                  options: GradingOptions = GradingOptions()) -> dict[str, pd.DataFrame]:
    """grade_daily under each scale in `systems`, {system: graded}; the checks, sort, CRS-day gate and
    organ grades are computed once and shared (same result as calling grade_daily per scale)."""
    unknown = [s for s in systems if s not in _COMPONENTS]
    if unknown:
        raise ValueError(f"unknown CRS grading system {unknown[0]!r}; choose one of {SYSTEMS}")
    prep = _prepare(daily, labs, options)
    return {s: _grade_prepared(prep, s, options) for s in systems}


def grade_daily(daily: pd.DataFrame, system: str = "astct", labs: pd.DataFrame | None = None,
                options: GradingOptions = GradingOptions()) -> pd.DataFrame:
    """Grade CRS per patient-day under one scale; returns patient_id, day, system, fever,
    crs_day, grade (int 0-4) and driver (the rule that set the grade, '+'-joined on ties).

    Grade 1 = CRS day with qualifying fever and nothing worse; a CRS day with neither fever nor
    any graded sign (fever masked after tocilizumab, signs resolved) is grade 0, driver 'none'.
    """
    if system not in _COMPONENTS:
        raise ValueError(f"unknown CRS grading system {system!r}; choose one of {SYSTEMS}")
    return _grade_prepared(_prepare(daily, labs, options), system, options)


SUMMARY_COLUMNS: tuple[str, ...] = ("crs_any", "max_grade", "onset_day", "resolution_day", "duration_days",
                                     "crs_days", "day_of_max")


def _summarise_all(graded: pd.DataFrame) -> pd.DataFrame:
    """Onset, resolution, duration and day of maximum of every patient's graded days (groupby
    aggregations; index = patient_id, sorted). Patients without a day graded >= 1: crs_any False,
    max_grade 0, crs_days 0, days NaN. A CRS day with a missing day makes the last CRS day unknown."""
    day = graded["day"].to_numpy(dtype=float)
    grade = graded["grade"].to_numpy()
    crs = grade >= 1
    f = pd.DataFrame({"pid": graded["patient_id"].to_numpy(), "day": day, "grade": grade, "crs": crs,
                      "crs_day": np.where(crs, day, np.nan), "crs_nan": crs & np.isnan(day)})
    g = f.groupby("pid", sort=True)
    code = g.ngroup().to_numpy()
    keep = code >= 0  # rows with a missing patient_id belong to no patient
    n_crs = g["crs"].sum().to_numpy()
    max_grade = g["grade"].max().to_numpy()
    last = g["crs_day"].max().to_numpy()
    last = np.where(g["crs_nan"].any().to_numpy(), np.nan, last)
    after = np.where(keep & (day > last[code]), day, np.nan)
    at_max = np.where(keep & (grade == max_grade[code]), day, np.nan)
    f = f.assign(after=after, at_max=at_max)
    g = f.groupby("pid", sort=True)
    any_crs = n_crs > 0
    onset = g["crs_day"].min().to_numpy()
    out = pd.DataFrame({
        "crs_any": any_crs, "max_grade": np.where(any_crs, max_grade, 0), "onset_day": onset,
        "resolution_day": np.where(any_crs, g["after"].min().to_numpy(), np.nan),
        "duration_days": np.where(any_crs, last - onset + 1.0, np.nan), "crs_days": n_crs,
        "day_of_max": np.where(any_crs, g["at_max"].min().to_numpy(), np.nan),
    }, index=g.size().index)
    return out


def summarise_patients(graded: pd.DataFrame, patients: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per patient: crs_any, max_grade (0-5), onset/resolution day, duration, day of max.

    onset_day = first day graded >= 1; resolution_day = first recorded day after the last CRS day
    (NaN if CRS lasts to the end of the records); duration_days = last CRS day - onset + 1
    (calendar days, one row per day assumed; intermittent grade-0 days inside are included);
    crs_days = number of days graded >= 1; day_of_max = first day at the maximum daily grade.
    Patients only in `patients` get grade 0. death_cause == 'crs' gives max_grade 5 (ASTCT 2019,
    Lee 2014, CTCAE v5.0, Porter 2018: grade 5 = death due to CRS), crs_any True and day_of_max =
    os_days when that column is present.
    """
    if "system" in graded.columns and graded["system"].nunique() > 1:
        raise ValueError("graded table mixes grading systems; summarise one system at a time")
    summary = _summarise_all(graded)
    ids = sorted(set(summary.index) | (set(patients["patient_id"]) if patients is not None else set()))
    if ids:
        pos = summary.index.get_indexer(ids)
        fill = {"crs_any": False, "max_grade": 0, "crs_days": 0}
        out = pd.DataFrame({"patient_id": ids, **{
            c: np.where(pos >= 0, summary[c].to_numpy()[pos], fill.get(c, np.nan)) for c in SUMMARY_COLUMNS}})
    else:
        out = pd.DataFrame([], columns=["patient_id", *SUMMARY_COLUMNS])
    if patients is not None and "death_cause" in patients.columns:
        p = patients.set_index("patient_id").reindex(out["patient_id"])
        died = (p["death_cause"] == "crs").fillna(False).to_numpy(dtype=bool)
        out.loc[died, "max_grade"] = 5
        out.loc[died, "crs_any"] = True
        if "os_days" in p.columns:
            out.loc[died, "day_of_max"] = p["os_days"].to_numpy(dtype=float)[died]
    return out.astype({"crs_any": bool, "max_grade": "int64", "crs_days": "int64"})


def crs_table(daily: pd.DataFrame, patients: pd.DataFrame | None, system: str = "astct",
              labs: pd.DataFrame | None = None,
              options: GradingOptions = GradingOptions()) -> pd.DataFrame:
    """Per-patient CRS summary under one scale (grade_daily then summarise_patients)."""
    out = summarise_patients(grade_daily(daily, system, labs, options), patients)
    return out.assign(system=system)


def agreement_table(daily: pd.DataFrame, patients: pd.DataFrame | None,
                    systems: tuple[str, ...] = SYSTEMS, labs: pd.DataFrame | None = None,
                    severe_grade: int = 3,
                    options: GradingOptions = GradingOptions()) -> pd.DataFrame:
    """Wide table of per-patient max grade under each scale, plus `severe_agree` (all scales put
    the patient on the same side of `severe_grade`); re-grading shows where scales disagree."""
    graded = grade_systems(daily, systems, labs, options)
    return agreement_from_summaries({s: summarise_patients(g, patients) for s, g in graded.items()}, severe_grade)


def agreement_from_summaries(summaries: dict[str, pd.DataFrame], severe_grade: int = 3) -> pd.DataFrame:
    """agreement_table from each scale's per-patient summary ({system: summarise_patients}), so a chapter
    that already summarised the scales does not grade or summarise them again."""
    systems = tuple(summaries)
    wide = None
    for s in systems:
        t = summaries[s][["patient_id", "max_grade"]]
        t = t.rename(columns={"max_grade": s})
        wide = t if wide is None else wide.merge(t, on="patient_id", how="outer")
    severe = wide[list(systems)] >= severe_grade
    wide["severe_agree"] = severe.all(axis=1) | (~severe).all(axis=1)
    return wide.sort_values("patient_id").reset_index(drop=True)


def with_reported(max_grades: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """agreement_table plus a `reported` column (crs_grade_reported, Int64) for comparing the graders
    with the centre's own grades; `severe_agree` is recomputed only by severe_switches, not here."""
    if "crs_grade_reported" not in patients.columns:
        raise ValueError("patients table has no crs_grade_reported column to compare with")
    rep = patients[["patient_id", "crs_grade_reported"]].rename(columns={"crs_grade_reported": REPORTED})
    return max_grades.merge(rep, on="patient_id", how="left")


def grade_crosstab(max_grades: pd.DataFrame, row: str, col: str) -> pd.DataFrame:
    """Cross-table of max grades (every grade 0-5 on both axes, missing grades dropped) for two scales."""
    d = max_grades[[row, col]].dropna().astype(int)
    levels = list(range(6))
    tab = pd.crosstab(d[row], d[col]).reindex(index=levels, columns=levels, fill_value=0)
    tab.index = [f"{row} {g}" for g in levels]
    tab.columns = [f"{col} {g}" for g in levels]
    return tab.rename_axis(index=None, columns=None)


def max_grade_drivers(daily: pd.DataFrame, systems: tuple[str, ...] = SYSTEMS,
                      labs: pd.DataFrame | None = None,
                      options: GradingOptions = GradingOptions()) -> pd.DataFrame:
    """Per patient and scale: max daily grade, its first day and the rule that set it (the driver),
    so that disagreements between scales can be explained sign by sign (CRS deaths not included)."""
    return drivers_from_graded(grade_systems(daily, systems, labs, options))


def drivers_from_graded(graded: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """max_grade_drivers from scales already graded ({system: graded}, as grade_systems returns them)."""
    rows = []
    for s, g in graded.items():
        g = g.sort_values(["patient_id", "day"], kind="stable")
        top = g.loc[g.groupby("patient_id")["grade"].idxmax()]
        rows.append(top[["patient_id", "system", "grade", "day", "driver"]])
    out = pd.concat(rows, ignore_index=True).rename(columns={"grade": "max_daily_grade", "day": "day_of_max"})
    return out.sort_values(["patient_id", "system"], kind="stable").reset_index(drop=True)


def severe_switches(max_grades: pd.DataFrame, severe_grade: int = 3) -> pd.DataFrame:
    """Per pair of scales: patients severe under each, under both, under one only, and switches.

    `max_grades` is the agreement_table output (optionally with_reported); scale columns are those
    named in SYSTEMS plus `reported`. Each pair is counted on the patients graded under both.
    """
    systems = [c for c in max_grades.columns if c in SYSTEMS or c == REPORTED]
    if len(systems) < 2:
        raise ValueError(f"need at least two scale columns among {SYSTEMS}; got {systems}")
    rows = []
    for a, b in combinations(systems, 2):
        both = max_grades[[a, b]].dropna().astype(int)
        sa, sb = both[a] >= severe_grade, both[b] >= severe_grade
        rows.append({"system_a": a, "system_b": b, "n_patients": len(both),
                     "n_severe_a": int(sa.sum()), "n_severe_b": int(sb.sum()),
                     "n_both_severe": int((sa & sb).sum()), "n_severe_a_only": int((sa & ~sb).sum()),
                     "n_severe_b_only": int((~sa & sb).sum()), "n_switch": int((sa != sb).sum()),
                     "severe_grade": severe_grade})
    return pd.DataFrame(rows)


def disagreements(drivers: pd.DataFrame, max_grades: pd.DataFrame) -> pd.DataFrame:
    """Patients the scales put on different sides of the severe threshold: one column per scale,
    'grade (driver)' at the day of that scale's maximum (from max_grade_drivers)."""
    ids = max_grades.loc[~max_grades["severe_agree"], "patient_id"]
    d = drivers[drivers["patient_id"].isin(ids)]
    text = d["max_daily_grade"].astype(str) + " (" + d["driver"] + ")"
    wide = d.assign(text=text).pivot(index="patient_id", columns="system", values="text")
    order = [s for s in SYSTEMS if s in wide.columns]
    return wide[order].reset_index().rename_axis(columns=None)


def incidence_by_system(max_grades: pd.DataFrame, severe_grade: int = 3) -> pd.DataFrame:
    """Any CRS (grade >= 1) and severe CRS (grade >= severe_grade) per scale, with Clopper-Pearson CIs."""
    from helpers.stats import proportion

    rows = []
    for s in [c for c in max_grades.columns if c in SYSTEMS or c == REPORTED]:
        g = max_grades[s].dropna().astype(int)
        for what, k in (("any CRS", int((g >= 1).sum())), (f"severe CRS (grade >= {severe_grade})",
                                                          int((g >= severe_grade).sum()))):
            p = proportion(k, len(g), what)
            rows.append({"system": s, "outcome": what, "k": k, "n": len(g), "estimate": p["estimate"],
                         "ci_low": p["ci_low"], "ci_high": p["ci_high"], "method": p["method"]})
    return pd.DataFrame(rows)


MAX_LANES = 60  # per-patient lane plots show at most this many patients (a readable figure)


def shown_patients(ids, max_patients: int = MAX_LANES) -> tuple[list[str], str]:
    """The lanes a per-patient figure shows: the first `max_patients` pseudonyms in sorted order (P01, P02, ...),
    and a title saying so when some are left out ('' when all are shown).

    Pseudonyms follow the order of the patients file, so this is a fixed, outcome-blind selection.
    """
    ids = sorted(pd.unique(pd.Series(ids, dtype=object)))
    if len(ids) <= max_patients:
        return ids, ""
    return ids[:max_patients], f"first {max_patients} of {len(ids)} patients (pseudonym order)"


def plot_crs_timeline(graded: pd.DataFrame, daily: pd.DataFrame, ax: Axes | None = None,
                      max_patients: int = MAX_LANES) -> Axes:
    """One lane per patient: daily CRS grade as coloured cells; tocilizumab (v) and steroid (x).

    At most `max_patients` lanes (shown_patients: the first pseudonyms; the title says so when
    patients are left out); cells are one PolyCollection, so drawing cost does not grow per artist.
    """
    ids, note = shown_patients(graded["patient_id"], max_patients)
    ax = ax if ax is not None else plt.subplots(figsize=(8, 0.3 * len(ids) + 1))[1]
    lane = {p: i for i, p in enumerate(ids)}
    g = graded[graded["patient_id"].isin(lane) & graded["grade"].between(0, len(GRADE_COLOURS) - 2)]
    x, y = g["day"].to_numpy(dtype=float) - 0.5, g["patient_id"].map(lane).to_numpy(dtype=float) - 0.4
    verts = np.stack([np.column_stack([x, y]), np.column_stack([x, y + 0.8]),
                      np.column_stack([x + 1, y + 0.8]), np.column_stack([x + 1, y])], axis=1)
    ax.add_collection(PolyCollection(verts, facecolors=[GRADE_COLOURS[int(k)] for k in g["grade"]],
                                     edgecolors="white", linewidths=0.3))
    ax.autoscale_view()
    d = daily[daily["patient_id"].isin(lane)]
    for col, marker, name in (("tocilizumab", "v", "tocilizumab"), ("steroids", "x", "steroids")):
        given = d[_optional(d, col, 0) == 1]
        ax.scatter(given["day"].astype(float), given["patient_id"].map(lane) + 0.25, marker=marker,
                   color="black", s=18, zorder=3, label=name)
    handles = [Patch(color=GRADE_COLOURS[k], label=f"grade {k}") for k in range(5)]
    handles += ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.set_yticks(range(len(ids)), ids)
    ax.set_ylim(len(ids) - 0.5, -0.5)
    ax.set_title(f"Showing the {note}" if note else "", fontsize="small")
    ax.set_xlabel("day after infusion")
    ax.set_ylabel("patient")
    return ax


# ------------------------------------------------------------------ CRS course and treatment

POSITIVE_PRESSURE: tuple[str, ...] = ("cpap", "bipap", "mechanical_ventilation")
# The book's episode rule: this many CRS-free days end an episode, the span that ends fever masking
# (the grader's GradingOptions.episode_gap_days, one setting for both; a cohort sets it in cohort.yml,
# `episode_gap_days`, read through `cohort_options`). This is the default.
COURSE_GAP_DAYS: int = GradingOptions().episode_gap_days


def episode_counts(graded: pd.DataFrame, gap_days: int = COURSE_GAP_DAYS) -> pd.Series:
    """CRS episodes per patient: runs of days graded >= 1; a CRS day after at least `gap_days`
    calendar days without CRS opens a new episode (0 for patients without a CRS day)."""
    d = graded.loc[graded["grade"] >= 1, ["patient_id", "day"]].dropna().sort_values(["patient_id", "day"])
    gap = d.groupby("patient_id")["day"].diff() - 1
    new = gap.isna() | (gap >= gap_days)
    counts = new.groupby(d["patient_id"]).sum().astype("int64")
    ids = pd.unique(graded["patient_id"].dropna())
    return counts.reindex(ids, fill_value=0).rename("episodes").rename_axis("patient_id")


def course_table(graded: pd.DataFrame, patients: pd.DataFrame | None = None,
                 gap_days: int = COURSE_GAP_DAYS, summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per patient under one scale: summarise_patients plus episodes, recurrence (a second episode)
    and days from onset to the maximum grade (a death from CRS is grade 5 on the day of death).
    `summary`: summarise_patients(graded, patients) when the caller already has it."""
    out = summarise_patients(graded, patients) if summary is None else summary.copy()
    ep = episode_counts(graded, gap_days).reindex(out["patient_id"]).fillna(0).astype("int64")
    out["episodes"] = ep.to_numpy()
    out["recurrence"] = out["episodes"] >= 2
    out["onset_to_max_days"] = out["day_of_max"] - out["onset_day"]
    return out


def course_by_scale(daily: pd.DataFrame, patients: pd.DataFrame | None, systems: tuple[str, ...] = SYSTEMS,
                    labs: pd.DataFrame | None = None, options: GradingOptions = GradingOptions(),
                    gap_days: int = COURSE_GAP_DAYS) -> pd.DataFrame:
    """course_table under every scale in `systems`, stacked with a `system` column (tidy)."""
    graded = grade_systems(daily, systems, labs, options)
    parts = [course_table(graded[s], patients, gap_days).assign(system=s) for s in systems]
    return pd.concat(parts, ignore_index=True)


def _first_day(daily: pd.DataFrame, mask: pd.Series) -> pd.Series:
    """First day >= 0 per patient on which `mask` holds (NaN when never)."""
    d = daily.loc[mask.fillna(False).astype(bool) & (daily["day"] >= 0), ["patient_id", "day"]]
    return d.groupby("patient_id")["day"].min().astype(float)


def _given(daily: pd.DataFrame, column: str) -> pd.Series | None:
    """The 0/1 column as a boolean mask (None when the daily record lacks the column or all values)."""
    if column not in daily.columns or not daily[column].notna().any():
        return None
    return pd.to_numeric(daily[column], errors="coerce").fillna(0) == 1


def treatment_table(daily: pd.DataFrame, course: pd.DataFrame, graded: pd.DataFrame) -> pd.DataFrame:
    """Per patient: tocilizumab and corticosteroids (any from day 0, first day, first day relative to
    CRS onset, days given) and ICU-level support on a CRS day (any vasopressor, positive-pressure
    ventilation). A treatment or support column absent from the record gives NA, not 'No'."""
    out = course[["patient_id", "max_grade", "onset_day"]].copy()
    ids = out["patient_id"]
    for name, col in (("tocilizumab", "tocilizumab"), ("steroids", "steroids")):
        mask = _given(daily, col)
        if mask is None:
            out[[name, f"{name}_first_day", f"{name}_from_onset", f"{name}_days"]] = pd.NA
            continue
        first = _first_day(daily, mask).reindex(ids).to_numpy()
        days = daily.loc[mask & (daily["day"] >= 0)].groupby("patient_id").size().reindex(ids).fillna(0)
        out[name] = ~np.isnan(first)
        out[f"{name}_first_day"] = first
        out[f"{name}_from_onset"] = first - out["onset_day"].to_numpy(dtype=float)
        out[f"{name}_days"] = days.to_numpy(dtype="int64")
    crs_rows = daily.merge(graded.loc[graded["grade"] >= 1, ["patient_id", "day"]], on=["patient_id", "day"])
    support = {"any_vasopressor": _pressor_mask(crs_rows),
               "positive_pressure": crs_rows["oxygen"].isin(POSITIVE_PRESSURE) if "oxygen" in crs_rows else None}
    for name, mask in support.items():
        out[name] = pd.NA if mask is None else ids.isin(crs_rows.loc[mask, "patient_id"]).to_numpy()
    return out


def _pressor_mask(d: pd.DataFrame) -> pd.Series | None:
    """Any vasopressor (vasopressin included) per row; None when neither column is recorded."""
    cols = [c for c in ("vasopressors", "vasopressin") if c in d.columns]
    if not cols:
        return None
    return (d[cols].apply(pd.to_numeric, errors="coerce").fillna(0) > 0).any(axis=1)
