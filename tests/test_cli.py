"""The command line: exit codes and what a user sees."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from helpers.__main__ import main
from helpers.paths import PROJECT_ROOT, SHIPPED_COHORT


def test_simulate_without_out_is_refused_so_the_shipped_cohort_is_never_overwritten(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--n", "300"])
    assert exc.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


def test_simulate_with_the_default_seed_regenerates_the_shipped_bytes(tmp_path):
    assert main(["simulate", "--out", str(tmp_path)]) == 0
    for name in ("patients.csv", "kinetics.csv", "daily.csv", "labs.csv", "cohort.yml"):
        assert (tmp_path / name).read_bytes() == (SHIPPED_COHORT / name).read_bytes(), name


def test_validate_exit_codes_and_report(tmp_path, capsys):
    assert main(["validate", str(SHIPPED_COHORT)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 error(s), 0 warning(s): buildable."
    (tmp_path / "patients.csv").write_text("patient_id,best_response,os_days,os_event\nX,CR,ten,0\n")
    assert main(["validate", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "ERROR: patients.csv, row 2, column 'os_days': found 'ten', expected a number." in out
    assert out.splitlines()[-1].endswith("NOT buildable.")


def test_templates_command_writes_the_workbook(tmp_path, capsys):
    assert main(["templates", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "cohort_template.xlsx").exists()
    assert "wrote" in capsys.readouterr().out


def test_validate_writes_the_full_report_beside_the_cohort_or_where_asked(tmp_path, capsys):
    (tmp_path / "patients.csv").write_text("patient_id,best_response,os_days,os_event\n" +
                                           "".join(f"X{i},CR,ten,0\n" for i in range(50)))
    assert main(["validate", str(tmp_path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert "ERROR: patients.csv, rows 2, 3, 4 and 47 more, column 'os_days': expected a number. Found 'ten'." in out
    assert out[-2] == f"Every problem, one per row: {tmp_path / 'validation_report.csv'}"
    full = pd.read_csv(tmp_path / "validation_report.csv")
    assert (full["level"] == "error").sum() == 50 and full["row"].iloc[0] == 2
    assert main(["validate", str(tmp_path), "--report", str(tmp_path / "r" / "full.csv")]) == 2
    assert (tmp_path / "r" / "full.csv").exists()


def test_validate_lists_the_sections_a_cohort_will_skip(tmp_path, capsys, monkeypatch):
    from helpers import sections

    monkeypatch.setitem(sections.REGISTRY, "fake_report.needs_daily", sections.Requirement(
        "fake_report.needs_daily", "CRS timelines", ("daily",), ()))
    (tmp_path / "patients.csv").write_text("patient_id,best_response,os_days,os_event\nX,CR,10,0\n")
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert ("SKIPPED: CRS timelines (fake_report.needs_daily): this cohort has no daily clinical record (daily.csv)."
            in out)
    assert out[-1] == "0 error(s), 3 warning(s): buildable."


def test_no_traceback_when_the_reader_closes_the_pipe(tmp_path):
    rows = "".join(f"X{i},CR,ten,0\n" for i in range(3000))
    (tmp_path / "patients.csv").write_text("patient_id,best_response,os_days,os_event\n" + rows)
    (tmp_path / "daily.csv").write_text("patient_id,day,oxygen\n" + "".join(f"X{i},1,helmet{i}\n" for i in range(3000)))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    run = subprocess.run(f"{sys.executable} -m helpers validate {tmp_path} | head -1", shell=True, env=env,
                         capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert run.stdout.startswith("Cohort:") and "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr


def test_prepare_exit_codes(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "patients.csv").write_text("patient_id,infusion_date,best_response,death_or_last_contact_date,os_event\n"
                                      "A,03/04/2022,CR,2022-06-30,No\n")
    assert main(["prepare", str(raw), str(tmp_path / "out")]) == 2
    assert "Nothing was written" in capsys.readouterr().out and not (tmp_path / "out").exists()
    (raw / "mapping.yml").write_text("date_format: day-first\n")
    assert main(["prepare", str(raw), str(tmp_path / "out")]) == 0
    assert pd.read_csv(tmp_path / "out" / "patients.csv")["os_days"].tolist() == [88]  # 3 April -> 30 June
