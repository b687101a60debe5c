"""The toxicity chapter's sections on the shipped seed and on a cohort unlike it (other n, not simulated,
optional inputs absent): the shown text follows the results, and absent inputs give a Skipped note."""
from __future__ import annotations

import pandas as pd
import pytest

from helpers import bcell, haematotox, icans, simulate
from helpers import persistence_report, toxicity_report as report
from helpers.page import open_page
from helpers.sections import Shown, Skipped

SECTIONS = (report.icans_incidence, report.icans_course, report.icans_links, report.early_icaht,
            report.hematotox_score, report.causes_of_death, persistence_report.bcell_aplasia, report.conclusions)


def _write(tmp, spec: simulate.SimulationSpec, simulated: bool = True, edit=None):
    tables = simulate.simulate_cohort(spec)
    if edit:
        tables = edit(tables)
    meta = simulate.cohort_meta(spec) | {"simulated": simulated}
    simulate.write_cohort(tables, tmp, meta)
    return open_page(tmp, tmp / "tables")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("shipped"), simulate.SimulationSpec(seed=simulate.SHIPPED_SEED))


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("other"), simulate.SimulationSpec(n=40, seed=7), simulated=False)


def test_every_section_shows_on_both_cohorts(shipped, other):
    for page in (shipped, other):
        for section in SECTIONS:
            out = section(page)
            assert isinstance(out, Shown), (section.__name__, out)
            assert "simulated" not in out.text().lower()


def test_icans_text_follows_the_results(shipped, other):
    for page in (shipped, other):
        s = report.icans_summary(page)
        inc = icans.incidence(s).set_index("outcome")
        k, n = int(inc.loc["any ICANS", "k"]), int(inc.loc["any ICANS", "n"])
        text = report.icans_incidence(page).text()
        assert f"{k}/{n} (" in text
    assert "/40 (" in report.icans_incidence(other).text() and "/24 (" not in report.icans_incidence(other).text()


def test_icaht_and_deaths_tables_hold_the_tidy_counts(other):
    res = haematotox.early_icaht(other.data.labs, other.data.patients)
    shown = report.early_icaht(other)
    frame = shown.tables()[0].frame.set_index("Early ICAHT")
    graded = int((res["status"] == "graded").sum())
    assert frame.loc["Grade 1", "Patients"].startswith(f"{int((res['grade'] == 1).sum())}/{graded} (")
    deaths = report.causes_of_death(other).tables()[0].frame.set_index("Cause")
    n_died = int(other.data.patients["os_event"].sum())
    assert deaths.loc["All causes", "Deaths"] == f"{n_died} (100.0%)"


def test_bcell_section_counts(other):
    course = bcell.aplasia_course(other.data.labs)
    frame = persistence_report.bcell_aplasia(other).tables()[0].frame.set_index("Measure")
    assert frame.loc["Patients with B-cell counts", "Value"] == str(len(course))


def _drop(tables: dict, table: str, columns: list[str]) -> dict:
    return {**tables, table: tables[table].drop(columns=columns)}


def test_sections_skip_without_their_inputs(tmp_path):
    spec = simulate.SimulationSpec(n=30, seed=3)
    no_icans = _write(tmp_path / "a", spec, edit=lambda t: _drop(t, "daily", list(icans.ICANS_COLUMNS)))
    for section in (report.icans_incidence, report.icans_course, report.icans_links):
        out = section(no_icans)
        assert isinstance(out, Skipped) and "ice_score" in out.reason
    no_labs = _write(tmp_path / "b", simulate.SimulationSpec(n=30, seed=3, tables=("patients", "kinetics", "daily")))
    for section in (report.early_icaht, report.hematotox_score, persistence_report.bcell_aplasia):
        assert isinstance(section(no_labs), Skipped)
    assert isinstance(report.causes_of_death(no_labs), Shown)


@pytest.mark.parametrize("table, column", [
    ("daily", c) for c in ("ice_score", "capd_score", "consciousness", "seizure", "motor_weakness", "cerebral_edema",
                           "temp_max_c", "fever_other_cause", "tocilizumab", "steroids", "oxygen", "fio2_pct",
                           "vasopressors", "sbp_min_mmhg")
] + [("patients", c) for c in ("death_cause", "age_years", "pfs_days", "hsct_day")])
def test_each_optional_column_may_be_absent(tmp_path, table, column):
    """Issue 13 item 2: drop one optional column; every toxicity section still returns Shown or Skipped."""
    def edit(t):
        out = _drop(t, table, [column])
        if column == "pfs_days":
            out = _drop(out, "patients", ["pfs_event"])
        return out
    page = _write(tmp_path, simulate.SimulationSpec(n=20, seed=5), edit=edit)
    for section in (*SECTIONS, persistence_report.pre_infusion_kinetics):
        assert isinstance(section(page), (Shown, Skipped)), section.__name__


def test_pre_infusion_kinetics_flags_a_prior_product(tmp_path):
    def edit(t):
        k = t["kinetics"]
        first = k["patient_id"].iat[0]
        extra = pd.DataFrame({"patient_id": [first, first], "day": [-7.0, -3.0], "car_copies_per_ug_dna": [0.0, 5000.0]})
        return {**t, "kinetics": pd.concat([extra, k], ignore_index=True)}
    page = _write(tmp_path, simulate.SimulationSpec(n=12, seed=2), edit=edit)
    out = persistence_report.pre_infusion_kinetics(page)
    assert isinstance(out, Shown) and out.text().startswith("1 patient had CAR transgene detected before")
    row = out.tables()[0].frame.iloc[0]
    assert (row["First positive day"], row["Highest value, copies/\u00b5g DNA"]) == ("-3", "5,000")
    assert isinstance(persistence_report.pre_infusion_kinetics(_write(tmp_path / "b", simulate.SimulationSpec(n=12, seed=2))),
                      Skipped)
