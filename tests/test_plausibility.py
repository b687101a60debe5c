"""Plausibility checks on slips that pass type and range checks, each seeded into the shipped cohort."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers.cohort import validate
from helpers.paths import SHIPPED_COHORT


def seeded(tmp_path: Path, change) -> list[str]:
    """Copy the shipped cohort, apply `change` to its text tables, validate; the grouped report lines."""
    folder = tmp_path / "c"
    shutil.copytree(SHIPPED_COHORT, folder)
    tables = {n: pd.read_csv(folder / f"{n}.csv", dtype=str, keep_default_na=False)
              for n in ("patients", "daily", "labs", "kinetics")}
    change(tables)
    for n, df in tables.items():
        df.to_csv(folder / f"{n}.csv", index=False)
    report, _ = validate(folder)
    return report.text().splitlines()


def divide(tables, analyte: str, ids: list[str], by: float) -> None:
    labs = tables["labs"]
    rows = labs["analyte"].eq(analyte) & labs["patient_id"].isin(ids)
    labs.loc[rows, "value"] = (labs.loc[rows, "value"].astype(float) / by).round(3).astype(str)


def test_the_shipped_cohort_raises_no_plausibility_finding(tmp_path):
    assert seeded(tmp_path, lambda t: None)[1:] == ["0 error(s), 0 warning(s): buildable."]


def test_crp_in_mg_dl_labelled_mg_l_for_five_patients_is_named(tmp_path):
    """Five patients' CRP divided by 10: one line names them (a patient with a raised CRP even at baseline may,
    divided by 10, look ordinary and go unnamed), and no patient whose values are untouched is named."""
    ids = [f"SIM-000{i}" for i in range(1, 6)]
    lines = seeded(tmp_path, lambda t: divide(t, "crp", ids, 10))
    hits = [line for line in lines if "looks like mg/dL labelled mg/L" in line]
    assert len(hits) == 1
    assert hits[0].startswith("WARNING: labs.csv, rows ") and "column 'value': crp values of " in hits[0]
    named = set(re.findall(r"'(SIM-\d+)'", hits[0]))
    assert len(named) >= 4 and named <= set(ids)
    assert "sit about 10x below the cohort's" in hits[0]


def test_haemoglobin_in_g_dl_is_an_error_and_named_as_such(tmp_path):
    lines = seeded(tmp_path, lambda t: divide(t, "hemoglobin", ["SIM-0007"], 10))
    assert any(line.startswith("ERROR: labs.csv, rows ") and "hemoglobin below the physiologically possible 20 g/L"
               in line for line in lines)
    assert any("looks like g/dL labelled g/L" in line and "'SIM-0007'" in line for line in lines)


def test_a_single_low_nadir_is_not_a_unit_slip(tmp_path):
    def nadir(t):
        labs = t["labs"]
        row = labs.index[labs["analyte"].eq("crp") & labs["patient_id"].eq("SIM-0009")][0]
        labs.loc[row, "value"] = "0.3"
    assert not any("looks like" in line for line in seeded(tmp_path, nadir))


def test_age_and_blasts_swapped_is_warned(tmp_path):
    def swap(t):
        p = t["patients"]
        p[["age_years", "bm_blasts_pct"]] = p[["bm_blasts_pct", "age_years"]].values
    lines = seeded(tmp_path, swap)
    assert any(line.startswith("WARNING: patients.csv, column 'age_years': age_years and bm_blasts_pct look swapped")
               for line in lines)


def test_os_and_pfs_swapped_is_warned_once_beside_the_grouped_errors(tmp_path):
    def swap(t):
        p = t["patients"]
        p[["os_days", "pfs_days"]] = p[["pfs_days", "os_days"]].values
    lines = seeded(tmp_path, swap)
    assert "WARNING: patients.csv, column 'pfs_days': pfs_days exceeds os_days for 12 of the 12 patients whose two " \
           "times differ: the two columns look swapped." in lines
    assert sum("pfs_days is after os_days" in line for line in lines) == 1


@pytest.mark.parametrize("column, value, fragment", [
    ("car_dose_per_kg", "3", "This looks like a dose in 10^6 cells/kg"),
    ("car_dose_per_kg", "5000", "below the plausible 10,000 cells/kg"),
    ("age_years", "0.5", "below the plausible 1 years"),
    ("car_dose_per_kg", "250000000", "This looks like the total number of cells infused"),
])
def test_patient_columns_outside_plausible(tmp_path, column, value, fragment):
    def change(t):
        t["patients"].loc[0, column] = value
    assert any(fragment in line and "row 2" in line for line in seeded(tmp_path, change))


def test_ages_with_decimals_alone_are_not_called_swapped(tmp_path):
    """Ages computed from dates of birth have decimals; with plausible ages there is no swap warning."""
    def decimals(t):
        p = t["patients"]
        p["age_years"] = (p["age_years"].astype(float) + 0.4).astype(str)
        p["bm_blasts_pct"] = p["bm_blasts_pct"].astype(float).round().astype(int).astype(str)
    assert not any("look swapped" in line for line in seeded(tmp_path, decimals))
