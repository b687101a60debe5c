"""Templates and the data-dictionary page come from the contract, and a filled template validates."""
from __future__ import annotations

import pandas as pd
import yaml

from helpers import contract, templates
from helpers.cohort import load_cohort, validate


def test_templates_follow_the_contract(tmp_path):
    written = templates.write_templates(tmp_path)
    assert sorted(p.name for p in written) == ["cohort.yml", "cohort_template.xlsx", "daily.csv", "kinetics.csv",
                                               "labs.csv", "patients.csv"]
    for name, table in contract.TABLES.items():
        assert (tmp_path / f"{name}.csv").read_text(encoding="utf-8") == ",".join(table.names) + "\n"
    sheets = pd.read_excel(tmp_path / "cohort_template.xlsx", sheet_name=None)
    assert list(sheets) == ["patients", "kinetics", "daily", "labs", "cohort", "dictionary"]
    assert len(sheets["dictionary"]) == sum(len(t.columns) for t in contract.TABLES.values())
    assert yaml.safe_load((tmp_path / "cohort.yml").read_text())["severe_crs_grade"] == 3


def test_a_filled_template_validates(tmp_path):
    templates.write_templates(tmp_path)
    for name in ("kinetics", "daily", "labs"):
        (tmp_path / f"{name}.csv").unlink()
    with open(tmp_path / "patients.csv", "a", encoding="utf-8") as f:
        f.write("X-1,CR" + "," * 0 + ",365,0" + "," * (len(contract.PATIENTS.columns) - 4) + "\n")
    report, cohort = validate(tmp_path)
    assert report.ok, report.text()
    assert cohort.patients[["patient_id", "best_response", "os_days"]].values.tolist() == [["P01", "CR", 365.0]]
    assert load_cohort(tmp_path).settings.landmark_day == 28


def test_blank_workbook_template_filled_loads(tmp_path):
    templates.write_templates(tmp_path)
    book = tmp_path / "cohort_template.xlsx"
    sheets = pd.read_excel(book, sheet_name=None, dtype=str)
    sheets["patients"] = pd.DataFrame([{"patient_id": "X-1", "best_response": "NR", "os_days": "40",
                                        "os_event": "1"}], columns=sheets["patients"].columns)
    sheets["cohort"].loc[sheets["cohort"]["key"] == "name", "value"] = "Centre A"
    with pd.ExcelWriter(book) as xl:
        for name, df in sheets.items():
            df.to_excel(xl, sheet_name=name, index=False)
    report, cohort = validate(book)
    assert report.ok, report.text()
    assert cohort.name == "Centre A" and cohort.simulated is False


def test_data_contract_page_is_generated_and_current():
    assert templates.DICTIONARY_PAGE.read_text(encoding="utf-8") == templates.dictionary_markdown(), \
        "book/data_contract.md is stale: run `python -m helpers dictionary`"
