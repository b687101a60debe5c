"""Chapter markdown holds for any cohort: no cohort fact typed in (a number next to patients, cases, events,
deaths, responders...) and no "simulated" (said only from cohort.yml, through helpers).

The pattern is the project's before-stop check (shared hooks), applied to the markdown cells of every
chapter and book notebook. Marked `site` until the chapters meet it (`-m site`); the pattern itself is
tested on sentences without marking.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.paths import BOOK_DIR, NOTEBOOKS_DIR

NUMBER = r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|" \
         r"sixteen|seventeen|eighteen|nineteen|twenty|twenty-\w+|thirty|forty|fifty)"
FACT = re.compile(rf"\b{NUMBER}[- ](infused |evaluable |severe |mild )?(patients?|cases?|events?|deaths?|"
                  r"responders?|severe|remissions?|relapses?)\b", re.I)
# Method wording that names a number without stating a cohort fact.
ALLOWED = re.compile(r"\{[a-z:]+\}`[^`]*`|\bten events per\b|\bone (patient|event) per\b|\b(is|per|each|every|first|most|than|fewer than|"
                     r"at least) (one|\d+) (patients?|events?)\b", re.I)
SIMULATED = re.compile(r"\bsimulated\b", re.I)


def typed_facts(markdown: str) -> list[str]:
    """Cohort facts typed into one markdown text, and any 'simulated'."""
    plain = ALLOWED.sub("", markdown)
    found = [f"cohort fact typed in: '{m.group(0)}'" for m in FACT.finditer(plain)]
    return found + [f"'{m.group(0)}' typed in (say it from cohort.yml)" for m in SIMULATED.finditer(plain)]


def chapter_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb")) + sorted(BOOK_DIR.glob("*.ipynb"))


def markdown_cells(path: Path) -> list[str]:
    return ["".join(c.get("source", [])) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("text, n", [
    ("The cohort has 24 patients.", 1), ("six severe cases", 1), ("a 24-patient cohort", 1),
    ("Sixteen responders", 1), ("two deaths from CRS", 1), ("with 13 events", 1), ("The simulated cohort", 1),
    ("at least ten events per variable", 0), ("for each patient", 0), ("one patient per row", 0),
    ("fewer than 5 patients per group", 0), ("{glue:text}`n_patients` patients", 0), ("F1 to F10", 0),
    ("the simulator draws cohorts", 0), ("Grade 3 or higher", 0),
])
def test_the_pattern_on_sentences(text, n):
    assert len(typed_facts(text)) == n, typed_facts(text)


@pytest.mark.site
@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.name)
def test_chapter_markdown_types_no_cohort_fact(notebook):
    problems = [p for cell in markdown_cells(notebook) for p in typed_facts(cell)]
    assert problems == []
