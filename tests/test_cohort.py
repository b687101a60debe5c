"""Loading and validating cohorts: the happy path, and bad input named by file, row and column."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers import contract
from helpers.cohort import CohortError, load_cohort, validate
from helpers.paths import SHIPPED_COHORT

MINI = """patient_id,best_response,os_days,os_event,pfs_days,pfs_event,mrd_negative,bm_blasts_pct
A-17,CR,400,0,300,1,true,12.5
B-02,NR,90,1,30,1,,80
C-33,CRi,700,0,700,0,false,
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def messages(folder: Path, level: str = "error") -> list[str]:
    report, _ = validate(folder)
    return [str(p) for p in report.problems if p.level == level]


def test_minimal_cohort_loads_typed_and_pseudonymised(tmp_path):
    write(tmp_path, "patients.csv", MINI)
    c = load_cohort(tmp_path)
    p = c.patients
    assert list(p["patient_id"]) == ["P01", "P02", "P03"]
    assert p["os_event"].dtype == "Int64" and list(p["os_event"]) == [0, 1, 0]
    assert p["os_days"].dtype == "float64"
    assert list(p["mrd_negative"].astype(object)) == [True, pd.NA, False]
    assert c.kinetics is None and c.daily is None and c.labs is None
    assert c.settings.severe_crs_grade == 3 and c.settings.remission_responses == ("CR", "CRi")


def test_wrongly_typed_cell_names_file_row_and_column(tmp_path):
    write(tmp_path, "patients.csv", MINI.replace("B-02,NR,90,1", "B-02,NR,ninety,1"))
    with pytest.raises(CohortError) as err:
        load_cohort(tmp_path)
    # B-02 is the second data row: spreadsheet row 3 (the header is row 1).
    assert "ERROR: patients.csv, row 3, column 'os_days': found 'ninety', expected a number." in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path):
    bad = MINI.replace("A-17,CR,400,0", "A-17,CR,400,yes").replace("80", "180").replace("C-33,CRi", "C-33,CRX")
    write(tmp_path, "patients.csv", bad)
    found = messages(tmp_path)
    assert "ERROR: patients.csv, row 2, column 'os_event': found 'yes', expected 0 or 1 (true/false also accepted)." in found
    assert "ERROR: patients.csv, row 3, column 'bm_blasts_pct': found 180, expected at most 100%." in found
    assert "ERROR: patients.csv, row 4, column 'best_response': found 'CRX', expected one of CR, CRi, PR, NR, NE." in found


def test_missing_required_column_and_file(tmp_path):
    write(tmp_path / "a", "patients.csv", "patient_id,best_response,os_days\nX,CR,10\n")
    assert messages(tmp_path / "a") == ["ERROR: patients.csv, column 'os_event': required column is missing."]
    (tmp_path / "b").mkdir()
    assert messages(tmp_path / "b") == ["ERROR: patients.csv: required table is missing."]


def test_identifier_columns_are_refused_and_unknown_columns_dropped(tmp_path):
    text = MINI.replace("bm_blasts_pct\n", "bm_blasts_pct,date_of_birth,favourite_colour\n")
    text = "\n".join(line + (",1990-01-01,red" if i and line else "") for i, line in enumerate(text.split("\n")))
    write(tmp_path, "patients.csv", text)
    found = messages(tmp_path)
    assert ("ERROR: patients.csv, column 'date_of_birth': looks like a direct identifier or calendar date; the book "
            "never needs it and must not publish it. Remove the column (times are days from infusion).") in found
    assert messages(tmp_path, "warning")[0] == \
        "WARNING: patients.csv, column 'favourite_colour': unknown column: ignored, and never published."
    assert "WARNING: daily.csv: optional table absent; skipped: chapter 4 (CRS grading from the raw record)." \
        in messages(tmp_path, "warning")


def test_cross_table_rules(tmp_path):
    write(tmp_path, "patients.csv", MINI.replace("A-17,CR,400,0,300", "A-17,CR,400,0,500")
          .replace("B-02,NR,90,1,30,1,,", "B-02,NR,90,1,30,1,true,"))
    write(tmp_path, "kinetics.csv", "patient_id,day,car_copies_per_ug_dna\nA-17,7,1000\nZZZ,7,10\nB-02,120,5\n")
    found = messages(tmp_path)
    assert ("ERROR: patients.csv, row 2, column 'pfs_days': pfs_days (500) is after os_days (400); "
            "progression-free time cannot exceed overall time.") in found
    assert ("ERROR: patients.csv, row 3, column 'mrd_negative': mrd_negative is set but best_response is NR; "
            "leave it blank for patients not in remission.") in found
    assert "ERROR: kinetics.csv, row 3, column 'patient_id': patient_id 'ZZZ' is not in patients." in found
    assert ("ERROR: kinetics.csv, row 4, column 'day': day 120 is after the death of 'B-02' on day 90 "
            "(patients os_days, os_event = 1).") in found


def test_encoding_and_separator_errors_say_how_to_fix(tmp_path):
    write(tmp_path / "bom", "patients.csv", "\ufeff" + MINI)
    assert load_cohort(tmp_path / "bom").patients.shape[0] == 3
    write(tmp_path / "semi", "patients.csv", MINI.replace(",", ";"))
    assert messages(tmp_path / "semi") == [
        "ERROR: patients.csv: the file is separated by semicolons; the contract needs commas. Re-save it as "
        "'CSV UTF-8 (comma delimited)' or replace ';' by ','."]
    write(tmp_path / "latin", "patients.csv", MINI.replace("A-17", "Jos\u00e9").encode("latin-1"))
    assert messages(tmp_path / "latin")[0].startswith("ERROR: patients.csv, row 2: the file is not UTF-8")


def test_workbook_loads_like_the_folder(tmp_path):
    folder = tmp_path / "csv"
    shutil.copytree(SHIPPED_COHORT, folder)
    book = tmp_path / "cohort.xlsx"
    with pd.ExcelWriter(book) as xl:
        for name in contract.TABLES:
            pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False).to_excel(xl, sheet_name=name, index=False)
    a, b = load_cohort(folder), load_cohort(book)
    pd.testing.assert_frame_equal(a.patients, b.patients)
    pd.testing.assert_frame_equal(a.daily, b.daily)


def test_shipped_cohort_is_valid_and_simulated():
    report, cohort = validate(SHIPPED_COHORT)
    assert report.ok, report.text()
    assert cohort.simulated is True
    assert report.warnings == []


def test_loaded_cohort_is_cached_on_content_and_invalidated_by_a_change(tmp_path):
    write(tmp_path, "patients.csv", MINI)
    first = load_cohort(tmp_path)
    again = load_cohort(tmp_path)  # from the cache: equal content, a fresh object
    pd.testing.assert_frame_equal(first.patients, again.patients)
    assert again.patients is not first.patients
    write(tmp_path, "patients.csv", MINI.replace("A-17,CR,400", "A-17,CR,401"))
    assert load_cohort(tmp_path).patients["os_days"].iat[0] == 401.0
    write(tmp_path, "patients.csv", MINI.replace("A-17,CR,400", "A-17,CR,four"))
    with pytest.raises(CohortError):  # an invalid cohort is never served from the cache
        load_cohort(tmp_path)


def test_the_content_key_follows_every_edit_of_the_cohorts_files(tmp_path):
    """The key is remembered for a process while the files' size, time and inode are unchanged; a file
    changed within the file system's clock tick (same size, same time) is hashed again, not remembered."""
    import os
    import time

    from helpers.cohort import _content_key

    folder = tmp_path / "c"
    shutil.copytree(SHIPPED_COHORT, folder)
    labs = folder / "labs.csv"
    old = time.time_ns() - 3_600 * 10**9
    for f in folder.iterdir():
        os.utime(f, ns=(old, old))
    key = _content_key(folder)
    assert _content_key(folder) == key  # remembered
    text = labs.read_text(encoding="utf-8")
    labs.write_text(text.replace("pg/mL", "pg/ml", 1), encoding="utf-8")  # an edit: new time
    edited = _content_key(folder)
    assert edited != key
    now = labs.stat().st_mtime_ns
    labs.write_text(text.replace("pg/mL", "PG/mL", 1), encoding="utf-8")  # same size, in the same tick
    os.utime(labs, ns=(now, now))
    assert _content_key(folder) not in (key, edited)
    labs.write_text(text, encoding="utf-8")  # back to the original bytes
    assert _content_key(folder) == key


def test_a_cell_that_does_not_parse_is_reported_once_whatever_the_other_files_hold(tmp_path):
    # kinetics.csv and labs.csv both have a 'day' on spreadsheet row 2 that is not a number: each file's cell is
    # one "expected a number" error, not also "is empty" (a parse failure of the same row and column in an
    # earlier file must not hide this file's own)
    write(tmp_path, "patients.csv", MINI)
    write(tmp_path, "kinetics.csv", "patient_id,day,car_copies_per_ug_dna\nA-17,soon,100\n")
    write(tmp_path, "labs.csv", "patient_id,day,analyte,value,unit\nA-17,soon,crp,5,mg/L\n")
    found = [m for m in messages(tmp_path) if "row 2, column 'day'" in m]
    assert found == ["ERROR: kinetics.csv, row 2, column 'day': found 'soon', expected a number.",
                     "ERROR: labs.csv, row 2, column 'day': found 'soon', expected a number."]
