"""The book built on a cohort unlike the shipped one says nothing of the shipped cohort and never 'simulated'.

The second cohort (tests/conftest.py) has 40 patients from another seed, another severe-CRS count, no
daily record and no labs (CRS graded by the centre), and `simulated: false`. Every page of its site is
read as a reader sees it (inline code literals such as `simulated` the setting are left out; code
blocks are kept, so a parameters cell naming the shipped cohort is caught) and searched for the shipped
cohort's facts, computed from it, after removing the published findings the book may quote anywhere.
Marked `site` (run with `-m site`).
"""
from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

from conftest import SECOND_NAME, published_statements, shipped_fact_patterns, site_pages

SIMULATED = re.compile(r"\bsimulated\b(?!\s*:)", re.I)  # `simulated:` is the cohort.yml key, not a claim
# The data contract documents the `simulated` setting itself (its meaning), so only its facts are checked.
DOCUMENTS_THE_SETTING = ("book/data_contract.html",)


def reader_text(html: str) -> str:
    """The text of a page as read: no scripts, styles or inline code literals; published findings removed."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "code", "head"]):
        if tag.name != "code" or tag.find_parent("pre") is None:
            tag.decompose()
    text = re.sub(r"\s+", " ", soup.get_text(" "))
    for statement in published_statements():
        text = text.replace(statement, " ")
    return text


def shipped_statements(text: str, patterns) -> list[str]:
    """Every shipped-cohort fact stated in `text`, with a little context."""
    found = []
    for p in patterns:
        for m in p.finditer(text):
            found.append(f"'{m.group(0)}' in \"…{text[max(0, m.start() - 60):m.end() + 30]}…\"")
    return found


def test_reader_text_keeps_code_blocks_and_drops_inline_literals():
    html = ("<html><head><title>simulated</title></head><body><p>Set <code>simulated</code> in cohort.yml."
            "</p><pre><code>cohort = \"data/simulated\"</code></pre><p>The cohort had 24 patients.</p></body></html>")
    text = reader_text(html)
    assert "Set in cohort.yml" in text.replace("  ", " ") and "data/simulated" in text
    assert len(SIMULATED.findall(text)) == 1 and not SIMULATED.search("simulated: false")
    assert shipped_statements(text, shipped_fact_patterns())  # '24 patients' is the shipped cohort's size


@pytest.mark.site
def test_second_cohort_site_states_no_shipped_fact_and_never_simulated(second_site):
    patterns = shipped_fact_patterns()
    problems = {}
    for page in site_pages(second_site):
        text = reader_text(page.read_text(encoding="utf-8"))
        rel = page.relative_to(second_site).as_posix()
        found = shipped_statements(text, patterns)
        if rel not in DOCUMENTS_THE_SETTING:
            found += [f"'simulated' in \"…{text[max(0, m.start() - 60):m.end() + 30]}…\""
                      for m in SIMULATED.finditer(text)]
        if found:
            problems[rel] = found
    assert problems == {}


@pytest.mark.site
def test_second_cohort_site_names_its_own_cohort(second_site):
    text = reader_text((second_site / "notebooks" / "01_cohort.html").read_text(encoding="utf-8"))
    assert SECOND_NAME in text
    assert (second_site / "notebooks" / "04_crs.html").is_file()  # built although daily.csv and labs.csv are absent
