"""Templates and the data-dictionary page come from the contract, and a filled template validates."""
from __future__ import annotations

import re

import pandas as pd
import yaml

from helpers import contract, templates
from helpers.cohort import load_cohort, validate


def test_templates_follow_the_contract(tmp_path):
    written = templates.write_templates(tmp_path)
    assert sorted(p.name for p in written) == ["cohort.yml", "cohort_template.xlsx", "daily.csv", "data_dictionary.csv",
                                               "kinetics.csv", "labs.csv", "patients.csv", "redcap_data_dictionary.csv",
                                               "redcap_mapping.yml"]
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


def test_redcap_dictionary_is_in_redcap_import_format():
    rc = templates.redcap_dictionary()
    assert list(rc.columns)[:6] == ["Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
                                    "Choices, Calculations, OR Slider Labels"]
    assert len(rc.columns) == 18
    names = rc["Variable / Field Name"]
    assert names.iloc[0] == "patient_id" and names.is_unique  # REDCap: the record ID first, names unique
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    assert set(rc["Form Name"]) == set(contract.TABLES)
    row = rc.set_index("Variable / Field Name")
    assert row.loc["best_response", "Field Type"] == "dropdown"
    assert row.loc["best_response", "Choices, Calculations, OR Slider Labels"].startswith("CR, CR | CRi, CRi")
    assert row.loc["os_event", "Field Type"] == "yesno" and row.loc["mrd_negative", "Field Type"] == "truefalse"
    assert row.loc["os_days", ["Text Validation Type OR Show Slider Number", "Text Validation Min"]].tolist() == \
        ["number", "0"]
    assert row.loc["daily_day", "Form Name"] == "daily" and "day" not in names.values


def test_a_redcap_export_prepares_into_the_cohort(tmp_path):
    """A REDCap raw export of the shipped cohort (one file, repeating instruments) comes back through prepare."""
    from helpers.paths import SHIPPED_COHORT
    from helpers.prepare import prepare

    parts = []
    for name, table in contract.TABLES.items():
        df = pd.read_csv(SHIPPED_COHORT / f"{name}.csv", dtype=str, keep_default_na=False)
        df = df.rename(columns={c: templates.redcap_name(name, c) for c in df.columns})
        df.insert(1, "redcap_repeat_instrument", "" if name == "patients" else name)
        df.insert(2, "redcap_repeat_instance", "" if name == "patients" else
                  (df.groupby("patient_id").cumcount() + 1).astype(str))
        parts.append(df)
    export = tmp_path / "export"
    export.mkdir()
    pd.concat(parts, ignore_index=True).fillna("").to_csv(export / "redcap_export.csv", index=False)
    (export / "mapping.yml").write_text(yaml.safe_dump(templates.redcap_mapping()), encoding="utf-8")
    report, _ = prepare(export, tmp_path / "out")
    assert report.ok, report.text()
    for name in contract.TABLES:
        got = pd.read_csv(tmp_path / "out" / f"{name}.csv")
        want = pd.read_csv(SHIPPED_COHORT / f"{name}.csv")
        pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=False, obj=name)


def test_site_downloads_are_current():
    folder = templates.DOWNLOADS
    for name in ("data_dictionary.csv", "redcap_data_dictionary.csv"):
        assert (folder / name).exists(), "run `python -m helpers dictionary`"
    assert (folder / "redcap_data_dictionary.csv").read_text(encoding="utf-8") == \
        templates.redcap_dictionary().to_csv(index=False, lineterminator="\n")
    assert (folder / "data_dictionary.csv").read_text(encoding="utf-8") == \
        pd.DataFrame(contract.dictionary_rows()).to_csv(index=False, lineterminator="\n")
    sheets = pd.read_excel(folder / "cohort_template.xlsx", sheet_name=None)
    assert list(sheets) == ["patients", "kinetics", "daily", "labs", "cohort", "dictionary"]
    assert list(sheets["patients"].columns) == list(contract.PATIENTS.names)
