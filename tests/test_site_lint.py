"""A lint over every rendered page: what a reader sees in a table must not look like code output.

Fails on code-style headers (snake_case, a bare lower-case code word such as `or`, `hr`, `term`, `p`),
`True`/`False`, `nan`/`inf` (and `<NA>`, `NaT`), e-notation and `0.000` in any table cell or
header of the article. The rules are those of issue 11 and the developers' guide, written here
independently of helpers/display.py (which enforces them for the tables it draws), so tables drawn
any other way are held to them too. Marked `site` (run with `-m site`); the rules themselves are
tested on hand-made HTML without marking.
"""
from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

from conftest import site_pages

# A header that is a single lower-case token (or contains an underscore) is a variable name, not a label.
CODE_HEADER = re.compile(r"^[a-z][a-z0-9]*$|_")
BAD_CELL = {
    "boolean": re.compile(r"\b(True|False)\b"),
    "nan or inf": re.compile(r"(?<![\w.])(inf|Inf|nan|NaN|<NA>|NaT)(?!\w)"),
    "e-notation": re.compile(r"(?<![\w.])[-+]?\d+(\.\d+)?[eE][+-]?\d+(?![\w.])"),  # not inside a hash
    "0.000": re.compile(r"(?<![\d.])-?0\.000(?!\d*[1-9])"),
}


def table_problems(html: str) -> list[str]:
    """Every offending header or cell of the article's tables in one page's HTML."""
    soup = BeautifulSoup(html, "html.parser")
    scope = soup.select_one("article") or soup
    problems = []
    for t, table in enumerate(scope.find_all("table"), start=1):
        name = table.get("id") or (table.find_parent(id=True) or {}).get("id") or f"table {t}"
        for th in table.select("thead th, th.gt_col_heading, th[scope=col]"):
            text = th.get_text(" ", strip=True)
            if text and CODE_HEADER.search(text):
                problems.append(f"{name}: header '{text}' looks like a code name")
        for cell in table.find_all(["td", "th"]):
            text = cell.get_text(" ", strip=True)
            for what, rule in BAD_CELL.items():
                if rule.search(text):
                    problems.append(f"{name}: '{text[:60]}' shows {what}")
    return sorted(set(problems))


@pytest.mark.parametrize("html, found", [
    ("<table><thead><tr><th>n_group0</th><th>Severe CRS</th></tr></thead></table>", ["n_group0"]),
    ("<table><thead><tr><th>or</th><th>hr</th><th>term</th></tr></thead></table>", ["hr", "or", "term"]),
    ("<table><tr><td>True</td></tr></table>", ["boolean"]),
    ("<table><tr><td>95% CI nan-nan</td></tr></table>", ["nan or inf"]),
    ("<table><tr><td>28 (inf-inf)</td></tr></table>", ["nan or inf"]),
    ("<table><tr><td>-inf</td><td>&lt;NA&gt;</td></tr></table>", ["nan or inf", "nan or inf"]),
    ("<table><tr><td>1.68e+03</td></tr></table>", ["e-notation"]),
    ("<table><tr><td>0.000</td></tr></table>", ["0.000"]),
    ("<table><thead><tr><th>Variable</th><th>HR (95% CI)</th><th>p-value</th><th>Mild CRS, N = 13</th></tr>"
     "</thead><tr><td>Infection</td><td>0.27 (0.09–0.80)</td><td>&lt;0.001</td><td>16/24 (66.7%)</td>"
     "<td>0.0001 is not 0.000?</td><td>Yes</td><td>not estimable</td><td>None</td></tr></table>", ["0.000"]),
    ("<table><tr><td>Information</td><td>0.0005</td><td>10.000</td><td>Nantes</td></tr></table>", []),
    ("<table><tr><td>2.5e-07</td><td>sha c2950ade1fef788b0e6bc9f0c9a5e33a02ad7e1e1</td></tr></table>", ["e-notation"]),
])
def test_the_rules_on_hand_made_tables(html, found):
    problems = table_problems(html)
    assert len(problems) == len(found)
    for f, p in zip(sorted(found), problems):
        assert f in p


@pytest.mark.site
@pytest.mark.parametrize("site", ["shipped_site", "second_site", "required_only_site"])
def test_no_table_on_any_page_shows_code_output(site, request):
    root = request.getfixturevalue(site)
    problems = {p.relative_to(root).as_posix(): table_problems(p.read_text(encoding="utf-8"))
                for p in site_pages(root)}
    assert {k: v for k, v in problems.items() if v} == {}
