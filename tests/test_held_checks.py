"""The validation in two steps (the cohort first, the checks that only read it while the chapters start) and
the large-file reader: the same report, in the same order, and the same tables as the validation in one go."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from helpers import build, cohort as C
from helpers.paths import CHECKING_ENV, SHIPPED_COHORT

from test_cohort import MINI, write
from test_faults import QUIET, fake_render, tiny_book

KINETICS = "patient_id,day,car_copies_per_ug_dna\nA-17,7,1000\nA-17,7,1000\nZZZ,7,10\n"
LABS = "patient_id,day,analyte,value,unit\nA-17,1,crp,5,mg/dL\nA-17,2,crp,700,mg/L\nB-02,1,crp,20,mg/L\n"


def lines(report: C.Report) -> list[str]:
    return [str(p) for p in report.problems]


def test_held_back_checks_put_their_problems_where_the_one_step_validation_puts_them(tmp_path):
    """The documented order: each table in the contract's order with its cells, ranges and keys, then the
    units, the rules across columns and tables, and plausibility; errors of held-back checks only are found
    by them, and refuse the cohort then (`validate`)."""
    write(tmp_path, "patients.csv", MINI.replace("80", "180"))
    write(tmp_path, "kinetics.csv", KINETICS)
    write(tmp_path, "labs.csv", LABS)
    report, cohort, checks = C.validate_in_steps(tmp_path)
    assert cohort is not None and report.ok
    assert not checks.run().ok and C.validate(tmp_path)[1] is None
    found = lines(report)
    order = [found.index(next(f for f in found if part in f)) for part in (
        "patients.csv, row 3, column 'bm_blasts_pct': found 180, expected at most 100%",
        "kinetics.csv, row 3, column 'day': duplicate row for patient_id=A-17, day=7",
        "labs.csv, row 2, column 'unit': crp in 'mg/dL' converted to 'mg/L' (x 10)",
        "kinetics.csv, row 4, column 'patient_id': patient_id 'ZZZ' is not in patients.",
        "labs.csv, row 3, column 'value': crp above the plausible 600 mg/L")]
    assert order == sorted(order)
    assert found == lines(C.validate(tmp_path)[0])
    write(tmp_path, "patients.csv", MINI.replace("80", "180").replace("B-02,NR,90", "B-02,NR,ninety"))
    report, cohort, checks = C.validate_in_steps(tmp_path)  # a cell that does not parse: every check has run
    assert cohort is None and checks is None
    assert lines(report)[:2] == ["ERROR: patients.csv, row 3, column 'os_days': found 'ninety', expected a number.",
                                 "ERROR: patients.csv, row 3, column 'bm_blasts_pct': found 180, expected at most 100%."]


def test_a_buildable_cohort_comes_before_its_held_back_checks_and_they_complete_its_report(tmp_path):
    write(tmp_path, "patients.csv", MINI)
    write(tmp_path, "labs.csv", LABS)
    report, cohort, checks = C.validate_in_steps(tmp_path)
    assert cohort is not None and checks is not None
    assert not any("plausible" in f for f in lines(report))  # plausibility is held back
    whole, same = C.validate(tmp_path)
    assert checks.run() is report and lines(report) == lines(whole)
    assert "WARNING: labs.csv, row 3, column 'value': crp above the plausible 600 mg/L" in lines(report)[-1]
    pd.testing.assert_frame_equal(cohort.labs, same.labs)
    assert checks.run() is report and lines(report) == lines(whole)  # held checks run once


def test_a_stored_cohort_is_used_only_once_its_report_is_stored(tmp_path, monkeypatch):
    """A build stores the cohort before its held-back checks end; stopped then, the cohort is validated again
    (unless the build's own kernels ask, CHECKING_ENV)."""
    write(tmp_path / "c", "patients.csv", MINI)
    monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(CHECKING_ENV, raising=False)
    report, cohort, _ = C.validate_in_steps(tmp_path / "c")
    C.remember(tmp_path / "c", cohort)
    calls = []
    real = C.validate
    monkeypatch.setattr(C, "validate", lambda path: calls.append(path) or real(path))
    C.load_cohort(tmp_path / "c")
    assert len(calls) == 1  # no report stored: validated again (and now stored with its report)
    C.load_cohort(tmp_path / "c")
    assert len(calls) == 1
    C.forget(tmp_path / "c")
    assert not list((tmp_path / "cache" / "cohorts").glob("*.pkl"))
    C.remember(tmp_path / "c", cohort)
    monkeypatch.setenv(CHECKING_ENV, "1")
    C.load_cohort(tmp_path / "c")
    assert len(calls) == 1


def test_a_build_whose_held_back_checks_refuse_the_cohort_publishes_nothing_and_keeps_no_cohort(tmp_path,
                                                                                                 monkeypatch):
    derive = ("from helpers import derive\nfrom helpers.cohort import load_cohort\n"
              "derive.shared(load_cohort(cohort), 'thing', lambda: 1)")  # a chapter's shared derivation
    root = tiny_book(tmp_path / "book", {"a": [f"cohort = {str(tmp_path / 'bad')!r}\n{derive}"]})
    bad = tmp_path / "bad"
    shutil.copytree(SHIPPED_COHORT, bad)
    labs = (bad / "labs.csv").read_text(encoding="utf-8").splitlines()
    (bad / "labs.csv").write_text("\n".join([*labs, labs[1]]) + "\n", encoding="utf-8")  # its first row again
    monkeypatch.setattr(build, "render", fake_render)
    out = tmp_path / "site"
    with pytest.raises(C.CohortError) as err:
        build.build(bad, out, root=root, **QUIET)
    assert f"labs.csv, row {len(labs) + 1}, column 'analyte': duplicate row" in str(err.value)
    assert not out.exists()
    cache = tmp_path / "site.cache"
    assert not [p for p in (cache / "cohorts").rglob("*") if p.is_file()]  # cohort, report, derived values
    assert not [p for p in cache.iterdir() if p.name.startswith("a-")]  # no executed notebook cached


CELLS = ('patient_id,day,analyte,value,unit\r\n'
         '"SIM, 1",1,crp,5,mg/L\r\n'
         '"two\nlines",2, crp ,"6",\u00b5g/L\r\n'
         ',,,,\r\n'
         'caf\u00e9,3,crp,,mg/L\r\n'
         '\r\n'
         '"q""uote",4,crp,7 ,mg/L\r\n')


@pytest.mark.parametrize("text, by_pyarrow", [(CELLS, True), ("\ufeff" + CELLS.replace("\r\n", "\n"), True),
                                              (CELLS + "x,1,crp\r\n", False),
                                              (CELLS + "x,1,crp,1,mg/L,extra\r\n", False), ('a,b\n"open,1\n', False)])
def test_a_large_file_read_by_pyarrow_holds_the_cells_pandas_reads(tmp_path, monkeypatch, text, by_pyarrow):
    """Quoted commas, newlines and quotes, CRLF, a byte-order mark, spaces, blank rows; a row of another
    width or a stray quote is read by pandas (its words for the problem)."""
    path = write(tmp_path, "labs.csv", text)
    monkeypatch.setattr(C, "ARROW_MIN_BYTES", 1 << 60)
    pandas_report = C.Report("x")
    by_pandas = C._read_csv(path, pandas_report)
    monkeypatch.setattr(C, "ARROW_MIN_BYTES", 0)
    arrow_report = C.Report("x")
    by_arrow = C._read_csv(path, arrow_report)
    assert lines(arrow_report) == lines(pandas_report)
    if by_pandas is None:
        assert by_arrow is None
    else:
        assert isinstance(by_arrow["patient_id"].dtype, pd.CategoricalDtype) == by_pyarrow
        pd.testing.assert_frame_equal(by_arrow.astype(object), by_pandas.astype(object))


def test_the_shipped_cohort_read_by_pyarrow_validates_to_the_same_report_and_tables(monkeypatch):
    monkeypatch.setattr(C, "ARROW_MIN_BYTES", 0)
    arrow_report, by_arrow = C.validate(SHIPPED_COHORT)
    assert isinstance(C._read_csv(SHIPPED_COHORT / "labs.csv", C.Report("x"))["analyte"].dtype, pd.CategoricalDtype)
    monkeypatch.setattr(C, "ARROW_MIN_BYTES", 1 << 60)
    pandas_report, by_pandas = C.validate(SHIPPED_COHORT)
    assert lines(arrow_report) == lines(pandas_report)
    for table in ("patients", "kinetics", "daily", "labs"):
        pd.testing.assert_frame_equal(getattr(by_arrow, table), getattr(by_pandas, table))
