"""Regenerate the shipped cohort's R reference in one command (needs Rscript with survival + jsonlite).

From the project root:

    .venv/bin/python tests/r_reference/make_cohort_fixture.py [COHORT]   # COHORT defaults to data/simulated

1. derives the per-patient table (helpers.derive.patient_table -> survival_report.r_reference_frame),
   writes it to tests/fixtures/survival_shipped_cohort.csv;
2. runs tests/r_reference/survival_reference.R on it with shipped_cohort_spec.json;
3. writes tests/fixtures/shipped_cohort_R.json with the CSV's sha256 and the landmark day recorded, so
   tests/test_survival.py::test_shipped_cohort_matches_R fails loudly when the data change.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import derive
from helpers import survival_report as sr
from helpers.cohort import load_cohort

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CSV = ROOT / "tests" / "fixtures" / "survival_shipped_cohort.csv"
OUT = ROOT / "tests" / "fixtures" / "shipped_cohort_R.json"
COMMAND = ".venv/bin/python tests/r_reference/make_cohort_fixture.py"


def main(cohort: str = "data/simulated") -> None:
    """Write the derived CSV, run R on it, record the CSV's sha256 in the JSON."""
    data = load_cohort(ROOT / cohort)
    landmark_day = float(data.settings.landmark_day)
    frame = sr.r_reference_frame(derive.patient_table(data), landmark_day)
    CSV.write_bytes(sr.csv_bytes(frame))
    subprocess.run(["Rscript", str(HERE / "survival_reference.R"), str(CSV), str(HERE / "shipped_cohort_spec.json"),
                    str(OUT)], check=True)
    ref = json.loads(OUT.read_text(encoding="utf-8"))
    ref["meta"].update({"cohort": cohort, "landmark_day": landmark_day, "derived_csv_sha256": sr.sha256(frame),
                        "regenerate": COMMAND})
    OUT.write_text(json.dumps(ref, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} (sha256 {ref['meta']['derived_csv_sha256'][:12]}...)")


if __name__ == "__main__":
    main(*sys.argv[1:2])
