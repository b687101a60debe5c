"""The pipeline end to end: strict builds, atomic publishing, clear failures, nothing leaked."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from helpers import build, simulate
from helpers.cohort import CohortError
from helpers.paths import SHIPPED_COHORT


def test_shipped_build_has_every_chapter_and_the_simulated_banner(shipped_site):
    for page in ("notebooks/01_cohort.html", "notebooks/03_survival.html", "book/reproduction.html",
                 "book/data_contract.html", "index.html"):
        assert (shipped_site / page).exists(), page
    html = (shipped_site / "notebooks" / "01_cohort.html").read_text(encoding="utf-8")
    assert "SIMULATED DATA" in html
    assert (shipped_site / "tables" / "table1_by_remission.csv").exists()


def test_invalid_cohort_stops_before_writing_anything(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(SHIPPED_COHORT, bad)
    text = (bad / "patients.csv").read_text(encoding="utf-8").splitlines()
    cells = text[5].split(",")
    cells[2] = "12x"  # os_days of the fifth patient: spreadsheet row 6
    text[5] = ",".join(cells)
    (bad / "patients.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    out = tmp_path / "site"
    with pytest.raises(CohortError) as err:
        build.build(bad, out, log=lambda *_: None)
    assert "patients.csv, row 6, column 'os_days': found '12x', expected a number." in str(err.value)
    assert not out.exists()


def test_failing_notebook_is_named_and_previous_site_untouched(tmp_path, monkeypatch):
    nb = tmp_path / "broken.ipynb"
    nb.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "a", "metadata": {}, "outputs": [],
                   "source": "1 / 0"}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    monkeypatch.setattr(build, "CACHE_DIR", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    job = build.Job(nb, tmp_path / "cache" / "entry" / "broken.ipynb", {}, "k")
    with pytest.raises(build.BuildError) as err:
        build.execute_all([job], workers=1, log=lambda *_: None)
    assert "broken.ipynb failed" in str(err.value) and "ZeroDivisionError: division by zero" in str(err.value)
    assert not job.output.exists()


def test_publish_replaces_the_site_whole(tmp_path):
    out = tmp_path / "html"
    out.mkdir()
    (out / "old.html").write_text("old")
    new = tmp_path / "new"
    new.mkdir()
    (new / "index.html").write_text("new")
    build.publish(new, out)
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]
    assert not (tmp_path / "html.old").exists() and not (tmp_path / "html.new").exists()


def test_degraded_cohort_with_distinctive_ids_builds_and_never_leaks_ids(tmp_path):
    """n=300, no labs, CRS grades as reported instead of daily.csv; patient ids must not reach the site."""
    spec = simulate.SimulationSpec(n=300, seed=5, tables=("patients", "kinetics"), reported_grades=True)
    tables = simulate.simulate_cohort(spec)
    ids = {f"SIM-{i + 1:04d}": f"QZLEAK{i * 7919 % 100000:05d}" for i in range(300)}
    for df in tables.values():
        df["patient_id"] = df["patient_id"].map(ids)
    cohort = tmp_path / "centre"
    simulate.write_cohort(tables, cohort, {**simulate.cohort_meta(spec), "simulated": False, "name": "Test centre"})
    out = tmp_path / "site"
    build.build(cohort, out, log=lambda *_: None)
    leaks = [p for p in out.rglob("*") if p.is_file() and "QZLEAK" in p.read_bytes().decode("utf-8", "ignore")]
    assert leaks == []
    page = (out / "notebooks" / "01_cohort.html").read_text(encoding="utf-8")
    assert "Cohort: Test centre" in page and "SIMULATED DATA" not in page


def test_cohort_without_any_optional_column_validates_and_builds(required_only_cohort, required_only_site, capsys):
    """Optional means optional (issue 13): every table file of the shipped cohort, each cut to its required
    columns (patients.csv to the four required ones), validates as buildable with no errors, the book builds
    strictly on it, each chapter says what it skipped, and no page states nan, None or a CRS count from a
    daily record without temperatures."""
    from bs4 import BeautifulSoup

    from helpers.__main__ import main

    assert main(["validate", str(required_only_cohort)]) == 0
    assert "0 error(s), 0 warning(s): buildable." in capsys.readouterr().out
    pages = {p: (required_only_site / "notebooks" / f"{p}.html").read_text(encoding="utf-8")
             for p in ("01_cohort", "02_response", "03_survival", "04_crs", "04b_toxicity", "05_kinetics")}
    for page in ("01_cohort", "03_survival", "04_crs", "04b_toxicity", "05_kinetics"):
        assert "Skipped" in pages[page], page
    text = {}
    for p, html in pages.items():  # the prose and tables a reader sees: no code cells, no inline code literals
        soup = BeautifulSoup(html, "html.parser")
        for tag in soup(["script", "style", "pre", "code", "head"]):
            tag.decompose()
        text[p] = re.sub(r"\s+", " ", soup.get_text(" "))
    assert "Skipped: CRS incidence." in text["04_crs"] and "patients had CRS" not in text["04_crs"]
    assert "non-relapse mortality is not reported" in text["04b_toxicity"]
    bad = {p: re.findall(r".{0,50}(?<![\w.])(?:nan|NaN|None|<NA>|NaT|inf)(?![\w.]).{0,30}", t) for p, t in text.items()}
    assert {p: found for p, found in bad.items() if found} == {}


def test_code_is_folded_on_the_site_but_parameters_stay_open(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [
        {"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "outputs": [], "source": "a = 1",
         "execution_count": None},
        {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [], "source": "a + 1", "execution_count": None},
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "text"}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    build.fold_code(nb)
    tags = [c["metadata"].get("tags", []) for c in json.loads(nb.read_text(encoding="utf-8"))["cells"]]
    assert tags == [["parameters"], ["hide-input"], []]


def test_incremental_render_still_checks_every_page(tmp_path):
    """The render folder is kept between builds (changed pages re-read), yet every page is written and its
    references checked: removing a label from one notebook fails the build at the unchanged page using it."""
    from test_faults import tiny_book  # tests/ is on sys.path (pytest rootdir-relative imports)

    root = tiny_book(tmp_path / "book", {"a": ["1"], "b": ["2"]})
    (root / "book" / "intro.md").write_text("# Tiny book\n\nSee {ref}`lab-a`.\n")

    def markdown(name: str, text: str) -> None:
        path = root / "notebooks" / f"{name}.ipynb"
        nb = json.loads(path.read_text())
        nb["cells"][-1]["source"] = text
        path.write_text(json.dumps(nb))

    markdown("a", "(lab-a)=\n# A page\n\nText.")
    build.build(out=tmp_path / "site", root=root, log=lambda *_: None)
    markdown("a", "# A page without its label\n\nText.")
    with pytest.raises(build.BuildError) as err:
        build.build(out=tmp_path / "site", root=root, log=lambda *_: None)
    assert "intro.md:3: WARNING: undefined label: 'lab-a'" in str(err.value)
    assert "\x1b[" not in str(err.value) and not list((root / "_build" / ".cache" / "render").iterdir())


def test_parameters_cell_shows_the_values_the_page_was_executed_with():
    from helpers.build import shown_parameters

    defaults = ('cohort = "data/simulated"  # cohort folder\ntables_dir = "_build/tables"  # CSVs\n'
                'landmark_day = None  # day\n')
    injected = 'cohort = "/srv/centre/exports/my_cohort"\ntables_dir = "/var/cache/x/tables"\nlandmark_day = 35\n'
    assert shown_parameters(defaults, injected) == (
        'cohort = "my_cohort"  # cohort folder\ntables_dir = "_build/tables"  # CSVs\nlandmark_day = 35  # day\n')
