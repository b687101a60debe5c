"""Shared fixtures: a second cohort unlike the shipped one, the shipped cohort's own facts, and built sites.

Builds cost about 30 s each on 2 cores, so each site is built once per session and only when a test
asks for it. The site tests that hold the chapters to the presentation rules are marked `site`
(`python -m pytest -m site`); see pyproject.toml.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import yaml

from helpers.paths import SHIPPED_COHORT

SECOND_N = 40
SECOND_SEED = 7
SECOND_NAME = "Outside centre cohort"


def make_second_cohort(folder: Path) -> Path:
    """A cohort unlike the shipped one: 40 patients, another seed, graded elsewhere (no daily record, no labs),
    not simulated by its cohort.yml: as a centre's own export would come."""
    from helpers.__main__ import main

    assert main(["simulate", "--n", str(SECOND_N), "--seed", str(SECOND_SEED), "--out", str(folder),
                 "--no-labs", "--reported-grades"]) == 0
    meta_file = folder / "cohort.yml"
    meta = yaml.safe_load(meta_file.read_text(encoding="utf-8"))
    for key in ("seed", "source"):
        meta.pop(key, None)
    meta.update(name=SECOND_NAME, simulated=False)
    meta_file.write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    return folder


def make_required_only_cohort(folder: Path) -> Path:
    """The shipped cohort with every table file kept but only the contract's REQUIRED columns in each
    (cohort.yml kept): the book must validate and build on it, saying what it skipped (issue 13)."""
    import pandas as pd

    from helpers import contract

    folder.mkdir(parents=True)
    for table in contract.TABLES.values():
        source = SHIPPED_COHORT / table.filename
        if source.is_file():
            keep = [c.name for c in table.columns if c.required]
            frame = pd.read_csv(source, dtype=str, keep_default_na=False)
            frame[keep].to_csv(folder / table.filename, index=False, lineterminator="\n")
    (folder / "cohort.yml").write_bytes((SHIPPED_COHORT / "cohort.yml").read_bytes())
    return folder


@pytest.fixture(scope="session")
def second_cohort(tmp_path_factory) -> Path:
    return make_second_cohort(tmp_path_factory.mktemp("second") / "cohort")


@functools.lru_cache(maxsize=1)
def shipped_fact_patterns() -> tuple[re.Pattern, ...]:
    """What a page built on another cohort must never say: the shipped cohort's size, counts and estimates.

    Computed from the shipped cohort (not typed): its size in words and digits next to 'patients', its
    counts as printed ('16/24'), its seed and name, and every hazard or odds ratio with its interval that
    the book's checks print for it. The published statements themselves (published.FACTS) are removed
    from a page's text before it is searched: a page may quote the abstract on any cohort.
    """
    from helpers import derive, holdup
    from helpers.cohort import load_cohort

    cohort = load_cohort(SHIPPED_COHORT)
    pt = derive.patient_table(cohort)
    n = len(pt)
    words = {24: "twenty-four", 6: "six", 16: "sixteen", 19: "nineteen", 13: "thirteen"}
    k_rem, k_crs, k_sev = int(pt["remission"].sum()), int(pt["crs_any"].sum()), int(pt["severe_crs"].sum())
    texts = [rf"\b{n}[- ](infused )?patients?\b", rf"\b{k_sev} severe\b",
             rf"\b{k_rem}/{n}\b", rf"\b{k_crs}/{n}\b", rf"\b{k_sev}/{n}\b", str(cohort.seed), re.escape(cohort.name)]
    texts += [rf"\b{words[v]}[- ](infused )?(patients|severe|responders|cases)\b" for v in (n, k_sev, k_rem)
              if v in words]
    assessed = holdup.assess(cohort, pt)
    estimates = set()
    for text in list(assessed["naive"]) + list(assessed["corrected"]):
        estimates.update(re.findall(r"(?:HR|OR) \d+\.\d+ \(\d+\.\d+–\d+\.\d+\)", text))
    texts += [re.escape(e) for e in sorted(estimates)]
    return tuple(re.compile(t, re.I) for t in texts)


def published_statements() -> list[str]:
    """The published findings as the book paraphrases them (allowed on every page)."""
    from helpers import published

    return [f.published for f in published.FACTS]


def _build(cohort: Path, out: Path) -> Path:
    from helpers import build

    build.build(cohort, out, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def shipped_site(tmp_path_factory) -> Path:
    """The site built on the shipped cohort (once per session)."""
    return _build(SHIPPED_COHORT, tmp_path_factory.mktemp("shipped-site") / "html")


@pytest.fixture(scope="session")
def required_only_cohort(tmp_path_factory) -> Path:
    return make_required_only_cohort(tmp_path_factory.mktemp("required") / "cohort")


@pytest.fixture(scope="session")
def required_only_site(tmp_path_factory, required_only_cohort) -> Path:
    """The site built on the shipped cohort stripped to its required columns (once per session)."""
    return _build(required_only_cohort, tmp_path_factory.mktemp("required-site") / "html")


@pytest.fixture(scope="session")
def second_site(tmp_path_factory, second_cohort) -> Path:
    """The site built on the second cohort (once per session)."""
    return _build(second_cohort, tmp_path_factory.mktemp("second-site") / "html")


def site_pages(site: Path) -> list[Path]:
    """The site's pages: every .html file but the theme's templates copied into _static/ and _sources/."""
    return sorted(p for p in site.rglob("*.html") if p.relative_to(site).parts[0] not in ("_static", "_sources"))
