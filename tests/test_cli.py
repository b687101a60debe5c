"""The command line: exit codes and what a user sees."""
from __future__ import annotations

import pytest

from helpers.__main__ import main
from helpers.paths import SHIPPED_COHORT


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
