"""Plausibility checks that catch the slips a type and range check lets through.

Run by `helpers.cohort.validate` on the parsed (not yet pseudonymised) tables, after unit conversion:

- values outside what is physiologically possible (error) or plausible (warning), per column and per
  analyte (`contract.COLUMN_RANGES`, `contract.ANALYTE_RANGES`), with a hint for a CAR-T dose entered
  in 10^6 cells/kg;
- an analyte whose values for some patients sit about 10x, 100x or 1000x off the cohort's for the same
  unit (`contract.LIKELY_UNIT_SLIPS`: "looks like mg/dL");
- columns that look swapped (age vs marrow blasts, OS vs PFS);
- contradictory support fields in `daily` (oxygen "none" with a flow or FiO2 above room air, low flow
  above 6 L/min, a norepinephrine-equivalent dose without a vasopressor);
- rules across tables: a death is a PFS event, HSCT within follow-up, a CRS death needs recorded CRS.

Each finding is one Problem per row with a message shared by identical findings, so the report groups them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import contract, units

_ROOM_AIR_FIO2 = 21.0
# ASTCT 2019 (Lee DW et al., Biol Blood Marrow Transplant 2019): low-flow nasal cannula is <= 6 L/min.
_LOW_FLOW_MAX = 6.0
# Flowmeters for nasal cannulae and simple devices stop at 15 L/min; more is a high-flow system.
_LOW_FLOW_DEVICE_MAX = 15.0


def check(tables: dict[str, pd.DataFrame], labels: dict[str, str], report) -> None:
    """Every plausibility check on the tables present; problems are added to `report`."""
    for name, df in tables.items():
        _column_ranges(df, name, labels[name], report)
    if "labs" in tables:
        _analyte_ranges(tables["labs"], labels["labs"], report)
        _unit_slips(tables["labs"], labels["labs"], report)
    if "daily" in tables:
        _support(tables["daily"], labels["daily"], report)
    if "patients" in tables:
        p = tables["patients"]
        _swapped(p, labels["patients"], report)
        _deaths(p, labels["patients"], report)
        _crs_deaths(p, tables.get("daily"), labels["patients"], report)


def _rows(mask: pd.Series) -> list[int]:
    """Spreadsheet rows (header = row 1) where mask is true."""
    return [int(i) + 2 for i in mask.index[mask.fillna(False).astype(bool)]]


def _add_rows(report, level: str, file: str, mask: pd.Series, column: str, message: str,
              values: pd.Series | None = None) -> None:
    """One problem per flagged row, with the same message (so the report groups them) and the value found."""
    for row in _rows(mask):
        value = None if values is None else values.get(row - 2)
        report.add(level, file, message, row, column, value=None if value is None or pd.isna(value) else float(value))


def _num(x: float) -> str:
    """A limit as people read it: 1,000 and 0.1, 1e+06 for large numbers."""
    return f"{x:,.6g}" if abs(x) < 1e6 else f"{x:.3g}"


def _column_ranges(df: pd.DataFrame, table: str, file: str, report) -> None:
    """Contract columns with physiological limits: error outside possible, warning outside plausible."""
    for (name, column), limits in contract.COLUMN_RANGES.items():
        if name != table or column not in df:
            continue
        spec = contract.TABLES[table].column(column)
        x = pd.to_numeric(df[column], errors="coerce")
        inside = x.between(-np.inf if spec.minimum is None else spec.minimum,
                           np.inf if spec.maximum is None else spec.maximum)  # else the contract already said so
        unit = f" {spec.unit}" if spec.unit and spec.unit != "%" else spec.unit
        for level, (lo, hi), what in (("error", limits.possible, "physiologically possible"),
                                      ("warning", limits.plausible, "plausible")):
            low = inside & (x < lo) if lo is not None else pd.Series(False, index=x.index)
            high = inside & (x > hi) if hi is not None else pd.Series(False, index=x.index)
            if level == "warning":  # a value already an error is not warned again
                plo, phi = limits.possible
                low &= x >= (plo if plo is not None else -np.inf)
                high &= x <= (phi if phi is not None else np.inf)
            hint = _dose_hint(column, level)
            if low.any():
                _add_rows(report, level, file, low, column, f"below the {what} {_num(lo)}{unit} "
                          f"({limits.source}).{hint}", x)
            if high.any():
                total = (" This looks like the total number of cells infused: divide by the body weight in kg."
                         if column == "car_dose_per_kg" else "")
                _add_rows(report, level, file, high, column, f"above the {what} {_num(hi)}{unit} "
                          f"({limits.source}).{total}", x)


def _dose_hint(column: str, level: str) -> str:
    """The hint for a CAR-T dose below 1,000 cells/kg: most likely typed in 10^6 cells/kg."""
    if column == "car_dose_per_kg" and level == "error":
        return (" This looks like a dose in 10^6 cells/kg: write the number of cells per kg (1.5 x 10^6/kg is "
                "1500000).")
    return ""


def _analyte_ranges(labs: pd.DataFrame, file: str, report) -> None:
    """Per-analyte limits in the canonical unit (after conversion); vectorised over analyte codes."""
    codes, analytes = pd.factorize(labs["analyte"])
    unit_ok = labs["unit"].to_numpy(dtype=object) == np.array(
        [contract.ANALYTES[a][0] for a in analytes] + [None], dtype=object)[codes]
    x = labs["value"].to_numpy(dtype=float)
    for k, analyte in enumerate(analytes):
        limits = contract.ANALYTE_RANGES.get(analyte)
        if limits is None:
            continue
        rows = (codes == k) & unit_ok
        if not rows.any():
            continue
        unit = contract.ANALYTES[analyte][0]
        plo = -np.inf if limits.possible[0] is None else limits.possible[0]
        phi = np.inf if limits.possible[1] is None else limits.possible[1]
        for level, (lo, hi), what in (("error", limits.possible, "physiologically possible"),
                                      ("warning", limits.plausible, "plausible")):
            low = rows & (x < lo) if lo is not None else np.zeros_like(rows)
            high = rows & (x > hi) if hi is not None else np.zeros_like(rows)
            if level == "warning":
                low &= x >= plo
                high &= x <= phi
            values = pd.Series(x, index=labs.index)
            if low.any():
                _add_rows(report, level, file, pd.Series(low, index=labs.index), "value", f"{analyte} below the "
                          f"{what} {_num(lo)} {unit} ({limits.source}); check the value and its unit.", values)
            if high.any():
                _add_rows(report, level, file, pd.Series(high, index=labs.index), "value", f"{analyte} above the "
                          f"{what} {_num(hi)} {unit} ({limits.source}); check the value and its unit.", values)


def _unit_slips(labs: pd.DataFrame, file: str, report, min_patients: int = 5) -> None:
    """Patients whose values of an analyte sit a unit factor (10x, 1000x...) off the cohort's, same unit.

    A unit slip moves all of a patient's values. The patient's second-lowest value (log10, near baseline,
    least moved by CRS, and not one odd value) must sit off the cohort's centre (the median of the patients' lowest values) by about the
    factor between the canonical unit and a unit commonly confused with it (within 10^(0.5 sqrt(k)) for a
    shift of k decades), by at least half a decade and by more than 3 scaled MADs; the patient's highest
    value must have moved the same way by at least a quarter of the shift (a single low nadir does not).
    """
    positive = labs.loc[labs["value"] > 0, ["patient_id", "analyte", "value"]]
    groups = positive.groupby("analyte", sort=False).indices
    for analyte, slips in contract.LIKELY_UNIT_SLIPS.items():
        if analyte not in groups:
            continue
        sub = positive.iloc[groups[analyte]]
        if sub.empty or sub["patient_id"].nunique() < min_patients:
            continue
        low, high = _second_lowest_and_highest(sub)
        low_dev, high_dev = low - low.median(), high - high.median()
        spread = 1.4826 * float(low_dev.abs().median())
        unit = contract.ANALYTES[analyte][0]
        if not (np.abs(low_dev) > max(0.5, 3 * spread)).any():
            continue  # nobody far from the cohort: no unit to suspect (and no need to build the unit registry)
        for slip in slips:
            f = units.factor(analyte, slip)
            if not f or f == 1:
                continue
            shift = -np.log10(f)  # a value in `slip` labelled in the canonical unit reads as value / f
            hit = ((np.abs(low_dev - shift) < 0.5 * abs(shift) ** 0.5) & (np.abs(low_dev) > max(0.5, 3 * spread))
                   & (high_dev * np.sign(shift) >= abs(shift) / 4))
            flagged = hit.index[hit]
            if len(flagged) == 0:
                continue
            ids = ", ".join(f"'{p}'" for p in flagged[:5]) + (f" and {len(flagged) - 5} more" if len(flagged) > 5 else "")
            direction = "below" if shift < 0 else "above"
            centre_all = float(np.log10(sub["value"].astype(float)).median())
            times = _num(10 ** abs(shift))
            rows = sub.index[sub["patient_id"].isin(flagged)]
            message = (f"{analyte} values of {len(flagged)} patient(s) ({ids}) sit about {times}x {direction} the "
                       f"cohort's (cohort median {float(10 ** centre_all):.3g} {unit}): looks like {slip} labelled {unit}; convert "
                       f"those values (x {_num(f)}) or correct their unit.")
            for row in rows:
                report.add("warning", file, message, int(row) + 2, "value")


def _second_lowest_and_highest(sub: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per patient, log10 of the second-lowest value (the lowest when there is one) and of the highest."""
    codes, ids = pd.factorize(sub["patient_id"])
    logs = np.log10(sub["value"].to_numpy(float))
    order = np.lexsort((logs, codes))
    codes, logs = codes[order], logs[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)] - 1
    second = np.where(ends > starts, starts + 1, starts)
    index = pd.Index(ids[codes[starts]], name="patient_id")
    return pd.Series(logs[second], index=index), pd.Series(logs[ends], index=index)


def _support(daily: pd.DataFrame, file: str, report) -> None:
    """Contradictory oxygen and vasopressor fields of one day."""
    oxygen = daily["oxygen"] if "oxygen" in daily else pd.Series(None, index=daily.index, dtype=object)
    flow = daily["o2_flow_l_min"] if "o2_flow_l_min" in daily else pd.Series(np.nan, index=daily.index)
    fio2 = daily["fio2_pct"] if "fio2_pct" in daily else pd.Series(np.nan, index=daily.index)
    none = oxygen.eq("none")
    _add_rows(report, "error", file, none & (flow > 0), "o2_flow_l_min",
              "oxygen is 'none' (room air) but an oxygen flow is recorded; correct the device or the flow.", flow)
    _add_rows(report, "error", file, none & (fio2 > _ROOM_AIR_FIO2), "fio2_pct",
              f"oxygen is 'none' (room air, FiO2 {_ROOM_AIR_FIO2:g}%) but a higher FiO2 is recorded; correct the "
              "device or the FiO2.", fio2)
    low = oxygen.eq("low_flow")
    _add_rows(report, "error", file, low & (flow > _LOW_FLOW_DEVICE_MAX), "o2_flow_l_min",
              f"low_flow above {_LOW_FLOW_DEVICE_MAX:g} L/min is not possible with a low-flow device; record "
              "high_flow or correct the flow.", flow)
    _add_rows(report, "warning", file, low & (flow > _LOW_FLOW_MAX) & (flow <= _LOW_FLOW_DEVICE_MAX),
              "o2_flow_l_min", f"low_flow above {_LOW_FLOW_MAX:g} L/min: ASTCT 2019 counts more than 6 L/min as "
              "high flow; record high_flow or check the flow.", flow)
    if "norepi_equiv_ug_min" in daily and "vasopressors" in daily:
        pressors = daily["vasopressors"].astype("Float64").fillna(0)
        _add_rows(report, "error", file, (daily["norepi_equiv_ug_min"] > 0) & pressors.eq(0),
                  "norepi_equiv_ug_min", "a norepinephrine-equivalent dose is recorded but vasopressors is 0; "
                  "correct the count or the dose.", daily["norepi_equiv_ug_min"])


def _swapped(p: pd.DataFrame, file: str, report, min_rows: int = 5) -> None:
    """Columns whose values look exchanged: ages shaped like blast percentages, PFS longer than OS."""
    if {"age_years", "bm_blasts_pct"} <= set(p):
        both = p[["age_years", "bm_blasts_pct"]].dropna()
        if len(both) >= min_rows:
            age_dec = float((both["age_years"] % 1 != 0).mean())
            blast_dec = float((both["bm_blasts_pct"] % 1 != 0).mean())
            lo, hi = contract.COLUMN_RANGES[("patients", "age_years")].plausible
            age_out = float(((both["age_years"] < lo) | (both["age_years"] > hi)).mean())
            blast_out = float(((both["bm_blasts_pct"] < lo) | (both["bm_blasts_pct"] > hi)).mean())
            # decimals alone are not enough (ages from dates of birth have them): some ages must also be
            # implausible while every blast value would be a plausible age
            if blast_dec <= 0.2 and blast_out == 0 and ((age_dec >= 0.5 and age_out > 0) or age_out >= 0.2):
                report.add("warning", file, f"age_years and bm_blasts_pct look swapped: {age_dec:.0%} of the ages "
                           f"have decimals and {age_out:.0%} lie outside {lo:g}-{hi:g} years, while the blast "
                           f"percentages are whole numbers ({1 - blast_dec:.0%}) within the age range; check the "
                           "column order.", column="age_years")
    if {"pfs_days", "os_days"} <= set(p):
        both = p[["pfs_days", "os_days"]].dropna()
        later = int((both["pfs_days"] > both["os_days"]).sum())
        differ = int((both["pfs_days"] != both["os_days"]).sum())
        if differ >= min_rows and later > differ / 2:
            report.add("warning", file, f"pfs_days exceeds os_days for {later} of the {differ} patients "
                       "whose two times differ: the two columns look swapped.", column="pfs_days")


def _deaths(p: pd.DataFrame, file: str, report) -> None:
    """A death is a PFS event (on or before the death day); HSCT falls within follow-up."""
    died = p["os_event"].eq(1).fillna(False)
    if "pfs_event" in p:
        _add_rows(report, "error", file, died & p["pfs_event"].eq(0).fillna(False), "pfs_event",
                  "os_event is 1 (died) but pfs_event is 0; a death is a PFS event: set pfs_event to 1, with "
                  "pfs_days on or before os_days.")
    if "hsct_day" in p:
        _add_rows(report, "error", file, p["hsct_day"] > p["os_days"], "hsct_day",
                  "hsct_day is after os_days; a transplant must fall within follow-up (before death or last "
                  "contact).", p["hsct_day"])


def _crs_deaths(p: pd.DataFrame, daily: pd.DataFrame | None, file: str, report, fever_c: float = 38.0) -> None:
    """death_cause = crs needs a CRS day (fever >= 38.0 C from day 0 to death) or a reported CRS grade >= 1."""
    if "death_cause" not in p:
        return
    crs = p["death_cause"].eq("crs").fillna(False) & p["os_event"].eq(1).fillna(False)
    if not crs.any():
        return
    reported = p["crs_grade_reported"] >= 1 if "crs_grade_reported" in p else pd.Series(False, index=p.index)
    recorded = p["crs_grade_reported"].notna() if "crs_grade_reported" in p else pd.Series(False, index=p.index)
    fever = pd.Series(False, index=p.index)
    in_daily = pd.Series(False, index=p.index)
    if daily is not None and "temp_max_c" in daily:
        death = daily["patient_id"].map(dict(zip(p["patient_id"], p["os_days"])))
        febrile = daily[(daily["day"] >= 0) & (daily["day"] <= death) & (daily["temp_max_c"] >= fever_c)]
        fever = p["patient_id"].isin(set(febrile["patient_id"]))
        in_daily = p["patient_id"].isin(set(daily["patient_id"]))
    evidence = reported.fillna(False) | fever
    checkable = recorded.fillna(False) | in_daily
    _add_rows(report, "error", file, crs & ~evidence & checkable, "death_cause",
              f"death_cause is crs but no CRS is recorded before death (no day from day 0 with a temperature of "
              f"at least {fever_c:g} C in daily, and no crs_grade_reported of 1 or more); correct the cause or the "
              "record.")
    _add_rows(report, "warning", file, crs & ~checkable, "death_cause",
              "death_cause is crs but neither daily records nor crs_grade_reported exist for this patient; the "
              "cause cannot be checked.")
