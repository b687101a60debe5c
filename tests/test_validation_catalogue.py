"""The validation catalogue: each kind of bad input, and the exact message a centre sees.

Each case starts from a small valid cohort (three patients, one row in each optional table),
changes one thing, and asserts the full message naming file, row (spreadsheet numbering:
header = row 1) and column. Cases marked "accept" check that tolerable variants load.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers import contract
from helpers.cohort import load_cohort, validate

PATIENTS = """patient_id,best_response,os_days,os_event,pfs_days,pfs_event,mrd_negative,age_years,bm_blasts_pct
A1,CR,400,0,300,1,true,34,12.5
B2,NR,90,1,30,1,,51,80
C3,CRi,700,0,700,0,false,8,40
"""
KINETICS = "patient_id,day,car_copies_per_ug_dna\nA1,7,15000\nB2,14,300\n"
DAILY = ("patient_id,day,temp_max_c,sbp_min_mmhg,vasopressors,vasopressin,oxygen,o2_flow_l_min,fio2_pct,"
         "tocilizumab,steroids,fever_other_cause\n"
         "A1,1,38.5,110,0,0,none,0,21,0,0,0\n"
         "A1,2,39.0,85,1,0,high_flow,20,50,1,0,0\n")
LABS = "patient_id,day,analyte,value,unit\nA1,2,il6,350,pg/mL\nA1,2,crp,8.5,mg/dL\n"
VALID = {"patients.csv": PATIENTS, "kinetics.csv": KINETICS, "daily.csv": DAILY, "labs.csv": LABS}


def cohort(tmp_path: Path, **changes: str | bytes) -> Path:
    """Write the valid cohort with some files replaced (name with '.' as '_': patients_csv=...)."""
    files = dict(VALID)
    for key, text in changes.items():
        name = key.replace("_csv", ".csv").replace("_yml", ".yml")
        if text is None:
            files.pop(name)
        else:
            files[name] = text
    for name, text in files.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return tmp_path


def problems(folder: Path, level: str = "error") -> list[str]:
    report, _ = validate(folder)
    return [str(p) for p in report.problems if p.level == level]


def test_the_base_cohort_is_valid(tmp_path):
    report, c = validate(cohort(tmp_path))
    assert report.ok, report.text()
    # crp 8.5 mg/dL was converted to 85 mg/L with a warning naming the row
    assert c.labs.loc[c.labs["analyte"] == "crp", "value"].tolist() == [85.0]
    assert [str(p) for p in report.warnings] == [
        "WARNING: labs.csv, row 3, column 'unit': crp in 'mg/dL' converted to 'mg/L' (x 10)."]


CASES = [
    # (name, file changes, expected error message)
    ("missing required file", {"patients_csv": None},
     "ERROR: patients.csv: required table is missing."),
    ("missing required column", {"patients_csv": PATIENTS.replace(",os_event", "").replace(",400,0,", ",400,")
                                 .replace(",90,1,", ",90,").replace(",700,0,", ",700,")},
     "ERROR: patients.csv, column 'os_event': required column is missing."),
    ("text in a number column", {"kinetics_csv": KINETICS.replace("15000", "lots")},
     "ERROR: kinetics.csv, row 2, column 'car_copies_per_ug_dna': found 'lots', expected a number."),
    ("yes in a 0/1 column", {"daily_csv": DAILY.replace("0,0,none", "0,yes,none")},
     "ERROR: daily.csv, row 2, column 'vasopressin': found 'yes', expected 0 or 1 (true/false also accepted)."),
    ("negative days", {"patients_csv": PATIENTS.replace("B2,NR,90", "B2,NR,-90").replace(",30,1,", ",0,1,")},
     "ERROR: patients.csv, row 3, column 'os_days': found -90, expected at least 0 days."),
    ("blasts above 100", {"patients_csv": PATIENTS.replace("51,80", "51,180")},
     "ERROR: patients.csv, row 3, column 'bm_blasts_pct': found 180, expected at most 100%."),
    ("age above 120", {"patients_csv": PATIENTS.replace(",34,12.5", ",134,12.5")},
     "ERROR: patients.csv, row 2, column 'age_years': found 134, expected at most 120 years."),
    ("event not 0/1", {"patients_csv": PATIENTS.replace("B2,NR,90,1", "B2,NR,90,2")},
     "ERROR: patients.csv, row 3, column 'os_event': found '2', expected 0 or 1 (true/false also accepted)."),
    ("duplicate patient_id", {"patients_csv": PATIENTS.replace("C3,CRi", "A1,CRi")},
     "ERROR: patients.csv, row 4, column 'patient_id': duplicate row for patient_id=A1; each patient_id may "
     "appear once."),
    ("pfs after os", {"patients_csv": PATIENTS.replace("A1,CR,400,0,300", "A1,CR,400,0,450")},
     "ERROR: patients.csv, row 2, column 'pfs_days': pfs_days (450) is after os_days (400); progression-free "
     "time cannot exceed overall time."),
    ("follow-up after death in another table", {"kinetics_csv": KINETICS.replace("B2,14,", "B2,120,")},
     "ERROR: kinetics.csv, row 3, column 'day': day 120 is after the death of 'B2' on day 90 (patients os_days, "
     "os_event = 1)."),
    ("mrd set for a non-remission patient", {"patients_csv": PATIENTS.replace("30,1,,51", "30,1,true,51")},
     "ERROR: patients.csv, row 3, column 'mrd_negative': mrd_negative is set but best_response is NR; leave it "
     "blank for patients not in remission."),
    ("remission_day for a non-remission patient", {"patients_csv": PATIENTS.replace(
        "pfs_event,mrd_negative", "pfs_event,remission_day,mrd_negative").replace("300,1,true", "300,1,28,true")
        .replace("30,1,,51", "30,1,20,,51").replace("700,0,false", "700,0,21,false")},
     "ERROR: patients.csv, row 3, column 'remission_day': remission_day is set but best_response is NR; leave it "
     "blank for patients not in remission."),
    ("remission documented after relapse", {"patients_csv": PATIENTS.replace(
        "pfs_event,mrd_negative", "pfs_event,remission_day,mrd_negative").replace("300,1,true", "300,1,320,true")
        .replace("30,1,,51", "30,1,,,51").replace("700,0,false", "700,0,21,false")},
     "ERROR: patients.csv, row 2, column 'remission_day': remission_day (320) is after pfs_days (300); remission "
     "must be documented before relapse, progression or death."),
    ("unknown patient in another table", {"labs_csv": LABS + "Z9,3,il6,10,pg/mL\n"},
     "ERROR: labs.csv, row 4, column 'patient_id': patient_id 'Z9' is not in patients."),
    ("duplicate patient-day in daily", {"daily_csv": DAILY + "A1,2,37.0,120,0,0,none,0,21,0,0,0\n"},
     "ERROR: daily.csv, row 4, column 'day': duplicate row for patient_id=A1, day=2.0; each patient_id + day "
     "may appear once."),
    ("unknown oxygen category", {"daily_csv": DAILY.replace("high_flow", "helmet")},
     "ERROR: daily.csv, row 3, column 'oxygen': found 'helmet', expected one of none, low_flow, high_flow, "
     "facemask, nonrebreather, venturi, cpap, bipap, mechanical_ventilation."),
    ("unknown analyte", {"labs_csv": LABS.replace("il6", "il17")},
     "ERROR: labs.csv, row 2, column 'analyte': found 'il17', expected one of " + ", ".join(contract.ANALYTES)
     + "."),
    ("unit with no unambiguous conversion", {"labs_csv": LABS.replace("pg/mL", "IU/mL")},
     "ERROR: labs.csv, row 2, column 'unit': unit 'IU/mL' does not match il6's canonical unit 'pg/mL' and has "
     "no unambiguous conversion; convert the value to pg/mL."),
    ("empty file", {"kinetics_csv": ""},
     "ERROR: kinetics.csv: the file is empty; it needs at least the header row."),
    ("semicolon-separated", {"patients_csv": PATIENTS.replace(",", ";")},
     "ERROR: patients.csv: the file is separated by semicolons; the contract needs commas. Re-save it as "
     "'CSV UTF-8 (comma delimited)' or replace ';' by ','."),
    ("Latin-1 encoded", {"patients_csv": PATIENTS.replace("A1", "\u00c91").encode("latin-1")},
     "ERROR: patients.csv, row 2: the file is not UTF-8 (this row has a character that cannot be read); it looks "
     "like Latin-1/Windows-1252. Re-save it as 'CSV UTF-8 (comma delimited)'."),
    ("direct identifier column", {"patients_csv": PATIENTS.replace("bm_blasts_pct\n", "bm_blasts_pct,MRN\n")
                                  .replace("12.5\n", "12.5,884\n").replace(",80\n", ",80,885\n")
                                  .replace(",40\n", ",40,886\n")},
     "ERROR: patients.csv, column 'MRN': looks like a direct identifier or calendar date; the book never needs it "
     "and must not publish it. Remove the column (times are days from infusion)."),
    ("unknown setting in cohort.yml", {"cohort_yml": "name: X\nsevere_grade: 3\n"},
     "ERROR: cohort.yml: unknown setting 'severe_grade'; known: " + ", ".join(sorted(
         {s.name for s in contract.SETTINGS + contract.COHORT_FIELDS + contract.UNIT_SETTINGS} | {"seed", "simulator"}))
     + "."),
    ("wrongly typed setting", {"cohort_yml": "name: X\nsevere_crs_grade: three\nlandmark_day: 0\n"},
     "ERROR: cohort.yml: severe_crs_grade is 'three'; expected a whole number from 1 to 5."),
    ("setting outside its range", {"cohort_yml": "name: X\nlandmark_day: 0\n"},
     "ERROR: cohort.yml: landmark_day is 0; expected a number of days from 1 to 365."),
    ("unknown grading system", {"cohort_yml": "name: X\ncrs_system: mayo\n"},
     "ERROR: cohort.yml: crs_system is 'mayo'; expected one of astct, lee2014, ctcae5, penn."),
    ("enrolled fewer than infused", {"cohort_yml": "name: X\nenrolled: 2\n"},
     "ERROR: cohort.yml: enrolled is 2; expected a whole number of at least 3 (the patients infused)."),
    # plausibility (helpers.plausibility): physiologically impossible values and contradictions
    ("temperature not survivable", {"daily_csv": DAILY.replace("A1,1,38.5", "A1,1,45.0")},
     "ERROR: daily.csv, row 2, column 'temp_max_c': above the physiologically possible 43 C (core temperatures "
     "above 43 C or below 30 C are not survivable outside a resuscitation setting)."),
    ("systolic pressure of cardiac arrest", {"daily_csv": DAILY.replace("38.5,110", "38.5,20")},
     "ERROR: daily.csv, row 2, column 'sbp_min_mmhg': below the physiologically possible 40 mmHg (a systolic "
     "pressure below 40 mmHg is cardiac arrest)."),
    ("room air with FiO2 above 21%", {"daily_csv": DAILY.replace("none,0,21", "none,0,60")},
     "ERROR: daily.csv, row 2, column 'fio2_pct': oxygen is 'none' (room air, FiO2 21%) but a higher FiO2 is "
     "recorded; correct the device or the FiO2."),
    ("room air with a flow", {"daily_csv": DAILY.replace("none,0,21", "none,10,21")},
     "ERROR: daily.csv, row 2, column 'o2_flow_l_min': oxygen is 'none' (room air) but an oxygen flow is "
     "recorded; correct the device or the flow."),
    ("low flow at 60 L/min", {"daily_csv": DAILY.replace("high_flow,20,50", "low_flow,60,50")},
     "ERROR: daily.csv, row 3, column 'o2_flow_l_min': low_flow above 15 L/min is not possible with a low-flow "
     "device; record high_flow or correct the flow."),
    ("haemoglobin in g/dL labelled g/L", {"labs_csv": LABS + "A1,2,hemoglobin,9.8,g/L\n"},
     "ERROR: labs.csv, row 4, column 'value': hemoglobin below the physiologically possible 20 g/L (below 20 g/L "
     "is not compatible with life; g/dL values (5-17) fall here); check the value and its unit."),
    ("CAR-T dose in 10^6 cells/kg", {"patients_csv": PATIENTS.replace("bm_blasts_pct\n", "bm_blasts_pct,"
                                     "car_dose_per_kg\n").replace("12.5\n", "12.5,1.5\n").replace(",80\n", ",80,"
                                     "1000000\n").replace(",40\n", ",40,2000000\n")},
     "ERROR: patients.csv, row 2, column 'car_dose_per_kg': below the physiologically possible 1,000 cells/kg "
     "(CD19 CAR-T doses span about 10^5-10^7 CAR+ cells/kg (tisagenlecleucel 0.2-5.0 x 10^6/kg; dose-finding "
     "trials 10^5-10^7/kg)). This looks like a dose in 10^6 cells/kg: write the number of cells per kg (1.5 x "
     "10^6/kg is 1500000)."),
    ("death that is not a PFS event", {"patients_csv": PATIENTS.replace("B2,NR,90,1,30,1", "B2,NR,90,1,30,0")},
     "ERROR: patients.csv, row 3, column 'pfs_event': os_event is 1 (died) but pfs_event is 0; a death is a PFS "
     "event: set pfs_event to 1, with pfs_days on or before os_days."),
    ("HSCT after death", {"patients_csv": PATIENTS.replace("bm_blasts_pct\n", "bm_blasts_pct,hsct_day\n")
                          .replace("12.5\n", "12.5,\n").replace(",80\n", ",80,120\n").replace(",40\n", ",40,\n")},
     "ERROR: patients.csv, row 3, column 'hsct_day': hsct_day is after os_days; a transplant must fall within "
     "follow-up (before death or last contact)."),
    ("CRS death without any CRS", {"patients_csv": PATIENTS.replace("bm_blasts_pct\n", "bm_blasts_pct,"
                                   "death_cause,crs_grade_reported\n").replace("12.5\n", "12.5,,1\n")
                                   .replace(",80\n", ",80,crs,0\n").replace(",40\n", ",40,,0\n")},
     "ERROR: patients.csv, row 3, column 'death_cause': death_cause is crs but no CRS is recorded before death (no "
     "day from day 0 with a temperature of at least 38 C in daily, and no crs_grade_reported of 1 or more); "
     "correct the cause or the record."),
    ("repeated header (pandas would read age_years.1)", {"patients_csv": PATIENTS.replace(
        "age_years,bm_blasts_pct", "age_years,age_years").replace(",34,12.5", ",34,35").replace(",51,80", ",51,52")
        .replace(",8,40", ",8,9")},
     "ERROR: patients.csv, column 'age_years': the header names this column 2 times (columns 8 and 9); each column "
     "may appear once. Remove or rename the repeated column."),
    ("D-dimer without FEU or DDU", {"labs_csv": LABS + "A1,2,d_dimer,1.2,mg/L\n"},
     "ERROR: labs.csv, row 4, column 'unit': d_dimer in 'mg/L' is ambiguous: D-dimer is reported in FEU "
     "(fibrinogen-equivalent units) or DDU (D-dimer units), about a factor 2 apart. Write 'mg/L FEU' or 'mg/L DDU', "
     "or declare it for the whole cohort in cohort.yml (d_dimer_units: FEU or DDU)."),
]


@pytest.mark.parametrize("name, changes, message", CASES, ids=[c[0] for c in CASES])
def test_catalogue_entry(tmp_path, name, changes, message):
    found = problems(cohort(tmp_path, **changes))
    assert message in found, "\n".join(found)


def test_every_problem_is_listed_not_only_the_first(tmp_path):
    bad = PATIENTS.replace("51,80", "51,180").replace("A1,CR,400,0", "A1,CR,400,yes")
    found = problems(cohort(tmp_path, patients_csv=bad, kinetics_csv=KINETICS.replace("15000", "lots")))
    assert len(found) == 3


def test_unknown_column_is_a_warning_and_never_loaded(tmp_path):
    extra = PATIENTS.replace("bm_blasts_pct\n", "bm_blasts_pct,ward\n").replace("12.5\n", "12.5,W1\n") \
        .replace(",80\n", ",80,W2\n").replace(",40\n", ",40,W3\n")
    folder = cohort(tmp_path, patients_csv=extra)
    assert "WARNING: patients.csv, column 'ward': unknown column: ignored, and never published." in \
        problems(folder, "warning")
    assert "ward" not in load_cohort(folder).patients


def test_missing_optional_table_warns_which_chapter_is_skipped(tmp_path):
    assert problems(cohort(tmp_path, labs_csv=None), "warning") == [
        "WARNING: labs.csv: optional table absent; skipped: chapter 4 (severity comparison, organ toxicity)."]


def test_byte_order_mark_is_accepted(tmp_path):
    c = load_cohort(cohort(tmp_path, patients_csv="\ufeff" + PATIENTS))
    assert list(c.patients.columns[:2]) == ["patient_id", "best_response"]


def test_whitespace_and_case_variants_are_normalised(tmp_path):
    """Documented choice: category values and headers are matched ignoring case and surrounding spaces."""
    text = PATIENTS.replace("best_response", " Best_Response ").replace("A1,CR,", "A1, cr ,") \
        .replace("B2,NR,", "B2,nr,")
    daily = DAILY.replace("high_flow", "High Flow")
    c = load_cohort(cohort(tmp_path, patients_csv=text, daily_csv=daily))
    assert c.patients["best_response"].tolist() == ["CR", "NR", "CRi"]
    assert c.daily["oxygen"].tolist() == ["none", "high_flow"]


def test_missing_sheet_in_workbook_is_named(tmp_path):
    book = tmp_path / "centre.xlsx"
    with pd.ExcelWriter(book) as xl:
        pd.read_csv(pd.io.common.StringIO(KINETICS)).to_excel(xl, sheet_name="kinetics", index=False)
    report, _ = validate(book)
    assert [str(p) for p in report.errors] == ["ERROR: sheet 'patients' in centre.xlsx: required table is missing."]


def test_workbook_errors_name_the_sheet(tmp_path):
    book = tmp_path / "centre.xlsx"
    with pd.ExcelWriter(book) as xl:
        pd.read_csv(pd.io.common.StringIO(PATIENTS.replace("51,80", "51,abc")), dtype=str).to_excel(
            xl, sheet_name="patients", index=False)
    report, _ = validate(book)
    assert ("ERROR: centre.xlsx (sheet 'patients'), row 3, column 'bm_blasts_pct': found 'abc', expected a number."
            in [str(p) for p in report.errors])


def test_low_flow_above_six_litres_is_a_warning(tmp_path):
    found = problems(cohort(tmp_path, daily_csv=DAILY.replace("high_flow,20,50", "low_flow,8,30")), "warning")
    assert ("WARNING: daily.csv, row 3, column 'o2_flow_l_min': low_flow above 6 L/min: ASTCT 2019 counts more than "
            "6 L/min as high flow; record high_flow or check the flow.") in found


def test_units_spelled_otherwise_are_read(tmp_path):
    labs = LABS.replace("pg/mL", "pg/ml") + "A1,2,ferritin,900,\u00b5g/L\nA1,2,platelets,40,x10^3/\u00b5L\n"
    report, c = validate(cohort(tmp_path, labs_csv=labs))
    assert report.ok, report.text()
    assert c.labs.set_index("analyte")["unit"].to_dict() == {"il6": "pg/mL", "crp": "mg/L", "ferritin": "ng/mL",
                                                             "platelets": "10^9/L"}


def test_d_dimer_convention_declared_once_for_the_cohort(tmp_path):
    labs = LABS + "A1,2,d_dimer,1.2,mg/L\nA1,3,d_dimer,0.8,mg/L\n"
    report, c = validate(cohort(tmp_path, labs_csv=labs, cohort_yml="name: X\nd_dimer_units: DDU\n"))
    assert report.ok, report.text()
    assert c.labs.loc[c.labs["analyte"] == "d_dimer", "value"].tolist() == [2.4, 1.6]  # DDU x 2 = FEU


def test_redcap_structural_columns_are_ignored_with_a_note(tmp_path):
    text = PATIENTS.replace("patient_id,", "redcap_event_name,redcap_repeat_instance,patient_id,")
    text = "\n".join(line if i == 0 or not line else "baseline_arm_1,," + line for i, line in enumerate(text.split("\n")))
    report, c = validate(cohort(tmp_path, patients_csv=text))
    assert report.ok, report.text()
    assert ("NOTE: patients.csv, column 'redcap_event_name': REDCap structural column: ignored (not data; never "
            "published).") in [str(p) for p in report.notes]
    assert "redcap_event_name" not in c.patients


def test_identical_problems_are_one_line_with_a_count(tmp_path):
    rows = "".join(f"A1,{d},d_dimer,1.{d},mg/L\n" for d in range(3, 243))
    report, _ = validate(cohort(tmp_path, labs_csv=LABS + rows))
    lines = [line for line in report.text().splitlines() if "d_dimer" in line]
    assert len(lines) == 1 and len(report.errors) == 240
    assert lines[0].startswith("ERROR: labs.csv, rows 4, 5, 6 and 237 more, column 'unit': d_dimer in 'mg/L' is "
                               "ambiguous")
    path = report.to_csv(tmp_path / "out" / "validation_report.csv")
    full = pd.read_csv(path)
    errors = full[full["level"] == "error"]
    assert len(errors) == 240 and errors["row"].tolist()[:2] == [4, 5] and set(errors["column"]) == {"unit"}


def test_value_specific_messages_group_by_their_summary(tmp_path):
    bad = KINETICS + "".join(f"B2,{d},10\n" for d in range(100, 110))
    report, _ = validate(cohort(tmp_path, kinetics_csv=bad))
    assert ("ERROR: kinetics.csv, rows 4, 5, 6 and 7 more, column 'day': day is after the patient's death (patients "
            "os_days, os_event = 1).") in report.text().splitlines()


def test_empty_trailing_rows_are_ignored_with_a_note(tmp_path):
    report, c = validate(cohort(tmp_path, patients_csv=PATIENTS + ",,,,,,,,\n,,,,,,,,\n"))
    assert report.ok, report.text()
    assert len(c.patients) == 3
    assert "NOTE: patients.csv, rows 5 and 6: empty row: ignored." in report.text().splitlines()


def test_a_builds_log_shows_repeated_warnings_as_one_line(tmp_path):
    from helpers import build
    from helpers.cohort import CohortError

    rows = "".join(f"A1,{d},hemoglobin,400,g/L\n" for d in range(3, 60))
    report, _ = validate(cohort(tmp_path, labs_csv=LABS + rows))
    lines = [line for line in report.lines("warning") if "hemoglobin" in line]
    assert len(lines) == 1 and lines[0].startswith("WARNING: labs.csv, rows 4, 5, 6 and 54 more, column 'value'")
    assert sum("hemoglobin" in str(p) for p in report.warnings) == 57
    # a build logs the same grouped lines (here it then stops at an error, before executing anything)
    (tmp_path / "bad").mkdir()
    bad = cohort(tmp_path / "bad", labs_csv=LABS + rows, kinetics_csv=KINETICS + "B2,100,10\n")
    log: list[str] = []
    with pytest.raises(CohortError):
        build.build(bad, tmp_path / "site", workers=1, log=log.append)
    assert [line.strip() for line in log if "hemoglobin" in line] == lines
