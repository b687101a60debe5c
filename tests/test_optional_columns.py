"""Optional means optional (issue 13, item 2): each optional column of every contract table is dropped in
turn (pfs_days with pfs_event, which go together), the cohort still loads, and the graders and analyses run,
treating the column as not recorded."""
from __future__ import annotations

import pytest

from helpers import bcell, contract, crs, deaths, derive, haematotox, icans, kinetics, simulate
from helpers.cohort import load_cohort

SPEC = simulate.SimulationSpec(n=16, seed=5)
TOGETHER = {"pfs_days": ("pfs_days", "pfs_event"), "pfs_event": ("pfs_days", "pfs_event")}
OPTIONAL = [(t.name, c.name) for t in contract.TABLES.values() for c in t.columns if not c.required
            and c.name != "pfs_event"]


@pytest.fixture(scope="module")
def tables():
    return simulate.simulate_cohort(SPEC)


def run_analyses(c) -> None:
    pt = derive.patient_table(c)
    graded = crs.grade_systems(c.daily, labs=c.labs)
    derive.vital_extremes(c.daily)
    derive.lab_extremes(c.labs)
    kinetics.nca(c.kinetics)
    kinetics.pre_infusion_findings(c.kinetics)
    s = icans.summarise_patients(icans.grade_daily(c.daily, c.patients),
                                 crs.summarise_patients(graded["astct"], c.patients), c.patients)
    icans.incidence(s)
    haematotox.early_icaht(c.labs, c.patients)
    haematotox.hematotox(c.labs, c.patients)
    deaths.causes_of_death(c.patients)
    deaths.nrm_counts(c.patients)
    if {"pfs_days", "pfs_event"} <= set(c.patients.columns):
        bcell.landmark_relapse(bcell.aplasia_course(c.labs), c.patients, pt.set_index("patient_id")["remission"])


@pytest.mark.parametrize("table, column", OPTIONAL, ids=[f"{t}.{c}" for t, c in OPTIONAL])
def test_drop_each_optional_column(tmp_path, tables, table, column):
    if column not in tables[table].columns:
        pytest.skip(f"the simulator does not write {table}.{column}")
    t = {**tables, table: tables[table].drop(columns=list(TOGETHER.get(column, (column,))))}
    simulate.write_cohort(t, tmp_path, simulate.cohort_meta(SPEC))
    run_analyses(load_cohort(tmp_path, cache=False))
