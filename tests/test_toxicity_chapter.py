"""Chapter 04b executes (papermill) on cohorts stripped of every optional column, and without optional tables."""
from __future__ import annotations

import json

import papermill as pm
import pytest

from helpers import contract, simulate
from helpers.cohort import validate
from helpers.paths import NOTEBOOKS_DIR, PROJECT_ROOT


def _only_required(tables: dict) -> dict:
    keep = {name: [c.name for c in contract.TABLES[name].columns if c.required] for name in tables}
    return {name: df[keep[name]] for name, df in tables.items()}


@pytest.mark.parametrize("tables", [("patients", "kinetics", "daily", "labs"), ("patients",)])
def test_chapter_runs_without_any_optional_column(tmp_path, tables):
    spec = simulate.SimulationSpec(n=14, seed=9, tables=tables)
    cohort = tmp_path / "cohort"
    simulate.write_cohort(_only_required(simulate.simulate_cohort(spec)), cohort, simulate.cohort_meta(spec))
    report, _ = validate(cohort)
    assert report.ok, report.text()
    out = tmp_path / "04b.ipynb"
    pm.execute_notebook(str(NOTEBOOKS_DIR / "04b_toxicity.ipynb"), str(out), kernel_name="python3",
                        parameters={"cohort": str(cohort), "tables_dir": str(tmp_path / "tables")},
                        cwd=str(PROJECT_ROOT), progress_bar=False)
    text = json.dumps(json.loads(out.read_text(encoding="utf-8")))
    assert "Skipped: ICANS incidence" in text and "Traceback" not in text
