"""`prepare`: a dated export becomes a contract cohort with no calendar date, every change logged."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers.__main__ import main
from helpers.cohort import validate
from helpers.paths import PROJECT_ROOT, SHIPPED_COHORT
from helpers.prepare import parse_dates, parse_oxygen, prepare

EXAMPLE = PROJECT_ROOT / "data" / "examples" / "dated"
DATE = re.compile(r"\d{1,2}/\d{1,2}/\d{2,4}|\d{4}-\d{2}-\d{2}")


def test_the_worked_example_prepares_and_validates(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["prepare", str(EXAMPLE), str(out)]) == 0
    assert "next: python -m helpers validate" in capsys.readouterr().out
    report, cohort = validate(out)
    assert report.errors == [], report.text()
    assert sorted(p.name for p in out.iterdir()) == ["cohort.yml", "daily.csv", "kinetics.csv", "labs.csv",
                                                      "patients.csv"]
    for f in out.glob("*.csv"):
        assert not DATE.search(f.read_text(encoding="utf-8")), f"a calendar date is left in {f.name}"
    assert (tmp_path / "cohort_conversion_log.csv").exists()


def test_the_example_round_trips_to_the_simulated_patients_it_was_written_from(tmp_path):
    """The example is the first eight shipped patients written with dates from made-up infusion dates."""
    prepare(EXAMPLE, tmp_path / "c")
    got = pd.read_csv(tmp_path / "c" / "patients.csv")
    want = pd.read_csv(SHIPPED_COHORT / "patients.csv").head(8)
    for col in ("os_days", "pfs_days", "remission_day", "hsct_day", "age_years", "best_response", "os_event",
                "pfs_event", "sex", "death_cause", "car_dose_per_kg", "mrd_negative", "ph_positive"):
        pd.testing.assert_series_equal(got[col], want[col], check_dtype=False, check_names=False, obj=col)
    daily = pd.read_csv(tmp_path / "c" / "daily.csv")
    shipped = pd.read_csv(SHIPPED_COHORT / "daily.csv")
    shipped = shipped[shipped["patient_id"].isin(want["patient_id"])].reset_index(drop=True)
    for col in ("day", "oxygen", "tocilizumab", "steroids", "vasopressors", "fever_other_cause"):
        pd.testing.assert_series_equal(daily[col], shipped[col], check_dtype=False, check_names=False, obj=col)


def test_ambiguous_dates_are_refused_once_and_nothing_is_written(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(EXAMPLE, raw)
    mapping = (raw / "mapping.yml").read_text(encoding="utf-8").replace("date_format: day-first", "")
    (raw / "mapping.yml").write_text(mapping, encoding="utf-8")
    report, _ = prepare(raw, tmp_path / "out")
    assert not report.ok and not (tmp_path / "out").exists()
    lines = [line for line in report.text().splitlines() if line.startswith("ERROR") and "ambiguous" in line]
    assert len(lines) == 1 and len(report.errors) == 1
    assert lines[0].startswith("ERROR: mapping.yml: dates such as 03/04/2022 (3 April or 4 March?) are ambiguous "
                               "without a declared format: declare date_format: day-first or month-first in "
                               "mapping.yml, or write ISO 8601 dates (YYYY-MM-DD). Found in registry.csv, column "
                               "'infusion_date' (8 rows, first row 2: '19/02/2021');")
    assert "vitals.csv, column 'date' (162 rows" in lines[0]


@pytest.mark.parametrize("text, fmt, iso", [
    ("2022-04-03", "iso", "2022-04-03"), ("2022-04-03T10:30", "iso", "2022-04-03"),
    ("03/04/2022", "day-first", "2022-04-03"), ("03/04/2022", "month-first", "2022-03-04"),
    ("3.4.22", "day-first", "2022-04-03"), ("2022-04-03", "month-first", "2022-04-03"),
])
def test_date_formats(text, fmt, iso):
    dates, bad, ambiguous = parse_dates(pd.Series([text]), fmt)
    assert dates[0] == pd.Timestamp(iso) and not bad[0] and not ambiguous[0]


def test_undeclared_numeric_dates_are_ambiguous_and_nonsense_unreadable():
    dates, bad, ambiguous = parse_dates(pd.Series(["03/04/2022", "31/02/2022", "soon"]), "iso")
    assert ambiguous.tolist() == [True, True, False] and bad.tolist() == [False, False, True]
    _, bad, _ = parse_dates(pd.Series(["31/02/2022"]), "day-first")
    assert bad.tolist() == [True]  # 31 February does not exist


@pytest.mark.parametrize("text, expected", [
    ("room air", ("none", 0.0, 21.0)), ("RA", ("none", 0.0, 21.0)), ("NC 2L", ("low_flow", 2.0, None)),
    ("2 L/min nasal cannula", ("low_flow", 2.0, None)), ("HFNC 40L 50%", ("high_flow", 40.0, 50.0)),
    ("Optiflow 60 lpm FiO2 0.6", ("high_flow", 60.0, 60.0)), ("NRB", ("nonrebreather", None, None)),
    ("non-rebreather 15L", ("nonrebreather", 15.0, None)), ("Venturi 40%", ("venturi", None, 40.0)),
    ("CPAP", ("cpap", None, None)), ("BiPAP 50%", ("bipap", None, 50.0)), ("NIV", ("bipap", None, None)),
    ("intubated", ("mechanical_ventilation", None, None)), ("face mask 10L", ("facemask", 10.0, None)),
    ("helmet", (None, None, None)),
])
def test_oxygen_strings(text, expected):
    assert parse_oxygen(text) == expected


def test_vasopressor_doses_become_the_norepinephrine_equivalent(tmp_path):
    """Goradia et al. 2021: NE + epinephrine + phenylephrine/10 + dopamine/100 (per kg x weight)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "patients.csv").write_text(
        "patient_id,infusion_date,weight_kg,best_response,death_or_last_contact_date,os_event\n"
        "A,2022-01-10,70,CR,2022-06-30,0\n", encoding="utf-8")
    (raw / "daily.csv").write_text(
        "patient_id,date,norepinephrine_ug_kg_min,dopamine_ug_kg_min,phenylephrine_ug_min,vasopressin_u_min,"
        "medications\n"
        "A,2022-01-12,0.1,5,100,0.03,tocilizumab 8 mg/kg\n"
        "A,2022-01-13,,,,,dexamethasone 10 mg\n"
        "A,2022-01-14,,,,,norepinephrine 0.05 mcg/kg/min\n", encoding="utf-8")
    report, log = prepare(raw, tmp_path / "out")
    assert report.ok, report.text()
    d = pd.read_csv(tmp_path / "out" / "daily.csv")
    assert d["day"].tolist() == [2, 3, 4]
    # 0.1 x 70 = 7; 5 x 70 / 100 = 3.5; 100 / 10 = 10 -> 20.5 ug/min; vasopressin is its own flag
    assert d["norepi_equiv_ug_min"].tolist() == [20.5, 0.0, 3.5]
    assert d["vasopressors"].tolist() == [3, 0, 1] and d["vasopressin"].tolist() == [1, 0, 0]
    assert d["tocilizumab"].tolist() == [1, 0, 0] and d["steroids"].tolist() == [0, 1, 0]
    p = pd.read_csv(tmp_path / "out" / "patients.csv")
    assert p["os_days"].tolist() == [171] and "weight_kg" not in p


def test_a_per_kg_dose_without_weight_is_an_error(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "patients.csv").write_text("patient_id,infusion_date,best_response,death_or_last_contact_date,os_event\n"
                                      "A,2022-01-10,CR,2022-06-30,0\n", encoding="utf-8")
    (raw / "daily.csv").write_text("patient_id,date,norepinephrine_ug_kg_min\nA,2022-01-12,0.1\n", encoding="utf-8")
    report, _ = prepare(raw, tmp_path / "out")
    assert [str(p) for p in report.errors] == [
        "ERROR: daily.csv, row 2, column 'norepinephrine_ug_kg_min': a dose per kg needs the patient's weight_kg in "
        "patients."]


def test_vocabulary_synonyms_and_mrd_in_the_response(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "patients.csv").write_text(
        "Patient ID,Infusion Date,Best Response,Death or last contact date,OS event,Sex,Ph positive\n"
        "A,2022-01-10,MRD-negative CR,2022-06-30,No,female,Y\n"
        "B,2022-02-10,CR with incomplete count recovery,2022-03-30,Yes,M,n\n", encoding="utf-8")
    (raw / "labs.csv").write_text("patient_id,date,analyte,value,unit\nA,2022-01-11,IL-6,100,pg/ml\n"
                                  "A,2022-01-11,Interleukin 6,100,pg/mL\nA,2022-01-12,C-reactive protein,2.5,mg/dL\n",
                                  encoding="utf-8")
    report, log = prepare(raw, tmp_path / "out")
    p = pd.read_csv(tmp_path / "out" / "patients.csv")
    assert p[["best_response", "os_event", "sex", "ph_positive"]].values.tolist() == [
        ["CR", 0, "F", True], ["CRi", 1, "M", False]]
    assert p["mrd_negative"].iloc[0] == True and pd.isna(p["mrd_negative"].iloc[1])  # noqa: E712
    labs = pd.read_csv(tmp_path / "out" / "labs.csv")
    assert labs[["analyte", "value", "unit"]].values.tolist() == [["il6", 100, "pg/mL"], ["il6", 100, "pg/mL"],
                                                                  ["crp", 25, "mg/L"]]
    log_rules = set(log.frame()["rule"])
    assert {"response with MRD split", "analyte name", "crp 'mg/dL' -> 'mg/L' (x 10)"} <= log_rules


def test_a_workbook_export_prepares_like_the_folder(tmp_path):
    book = tmp_path / "export.xlsx"
    with pd.ExcelWriter(book) as xl:
        for file, sheet in (("registry.csv", "registry"), ("vitals.csv", "vitals"), ("lab_export.csv", "labs"),
                            ("qpcr.csv", "qpcr")):
            pd.read_csv(EXAMPLE / file, dtype=str, keep_default_na=False).to_excel(xl, sheet_name=sheet, index=False)
    report, _ = prepare(book, tmp_path / "from_book", EXAMPLE / "mapping.yml")
    assert report.ok, report.text()
    prepare(EXAMPLE, tmp_path / "from_folder")
    for name in ("patients", "daily", "labs", "kinetics"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "from_book" / f"{name}.csv"),
                                      pd.read_csv(tmp_path / "from_folder" / f"{name}.csv"), obj=name)


def test_an_export_without_patients_is_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    report, _ = prepare(tmp_path / "raw", tmp_path / "out")
    assert [str(p) for p in report.errors] == ["ERROR: patients.csv: required table is missing."]
