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


def _nb(cells: list[tuple[str, str, list[str]]]) -> dict:
    """A notebook of (cell type, source, tags) cells."""
    out = []
    for i, (kind, src, tags) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {"tags": tags}, "source": src}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        out.append(cell)
    return {"cells": out, "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


def test_cache_key_follows_code_not_prose(tmp_path):
    """Markdown is never executed: editing it keeps the cached outputs; a code edit or a tag change does not."""
    path = tmp_path / "notebooks" / "x.ipynb"
    path.parent.mkdir()

    def digest(cells) -> str:
        path.write_text(json.dumps(_nb(cells)), encoding="utf-8")
        return build.code_digest(path, tmp_path)

    base = [("markdown", "# Title", []), ("code", "a = 1", ["parameters"]), ("code", "a + 1", [])]
    key = digest(base)
    assert digest([("markdown", "# New title\n\nMore prose.", []), *base[1:], ("markdown", "End.", [])]) == key
    assert digest([base[0], base[1], ("code", "a + 2", [])]) != key
    assert digest([base[0], ("code", "a = 1", []), base[2]]) != key  # the parameters tag steers papermill


def test_site_takes_the_current_prose_and_the_cached_outputs(tmp_path):
    executed, source, dest = tmp_path / "run.ipynb", tmp_path / "src.ipynb", tmp_path / "page.ipynb"
    ran = _nb([("markdown", "Old prose.", []), ("code", 'a = "shown"', ["parameters"]), ("code", "a", [])])
    ran["cells"][2]["outputs"] = [{"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {},
                                   "execution_count": 1}]
    executed.write_text(json.dumps(ran), encoding="utf-8")
    source.write_text(json.dumps(_nb([("markdown", "New prose.", []), ("code", "a = 1", ["parameters"]),
                                      ("markdown", "An added paragraph.", []), ("code", "a", [])])), encoding="utf-8")
    build.with_current_prose(executed, source, dest)
    cells = json.loads(dest.read_text(encoding="utf-8"))["cells"]
    assert [c["source"] for c in cells] == ["New prose.", 'a = "shown"', "An added paragraph.", "a"]
    assert cells[3]["outputs"][0]["data"]["text/plain"] == "2"


def test_a_rebuild_reads_the_stored_validation_report(tmp_path, monkeypatch):
    """The same files validated by the same loader are not validated again: the stored report is read back."""
    from helpers import cohort as C

    monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path / "cache"))
    report, data = C.validated(SHIPPED_COHORT)
    C.remember(SHIPPED_COHORT, data, report)
    monkeypatch.setattr(C, "validate", lambda path: pytest.fail("validated again"))
    again, loaded = C.validated(SHIPPED_COHORT)
    assert [str(w) for w in again.warnings] == [str(w) for w in report.warnings] and again.ok
    assert loaded.patients.equals(data.patients)


def test_a_prose_edit_rewrites_only_its_page_and_a_new_title_every_page(tmp_path):
    """book/_ext/write_changed.py: a changed page alone is written while what other pages show of it (title,
    sections, labels) is unchanged; a new title is written into the navigation of every page."""
    from test_faults import tiny_book

    root = tiny_book(tmp_path / "book", {"a": ["1"], "b": ["2"]})
    (root / "book" / "_ext").mkdir()
    shutil.copy(build.PROJECT_ROOT / "book" / "_ext" / "write_changed.py", root / "book" / "_ext")
    with open(root / "_config.yml", "a", encoding="utf-8") as f:
        f.write("sphinx:\n  local_extensions:\n    write_changed: book/_ext\n")

    def markdown(text: str) -> None:
        path = root / "notebooks" / "a.ipynb"
        nb = json.loads(path.read_text())
        nb["cells"][-1]["source"] = text
        path.write_text(json.dumps(nb))

    def pages() -> dict[str, str]:
        html = next((root / "_build" / ".cache" / "render").iterdir()) / "out" / "_build" / "html"
        return {p: (html / p).read_text(encoding="utf-8") for p in ("notebooks/a.html", "notebooks/b.html")}

    markdown("# Page A\n\nFirst text.")
    build.build(out=tmp_path / "site", root=root, log=lambda *_: None)
    first = pages()
    markdown("# Page A\n\nSecond text.")
    build.build(out=tmp_path / "site", root=root, log=lambda *_: None)
    second = pages()
    assert "Second text." in second["notebooks/a.html"] and second["notebooks/b.html"] == first["notebooks/b.html"]
    assert "Second text." in (tmp_path / "site" / "notebooks" / "a.html").read_text(encoding="utf-8")
    markdown("# Page A renamed\n\nSecond text.")
    build.build(out=tmp_path / "site", root=root, log=lambda *_: None)
    assert "Page A renamed" in pages()["notebooks/b.html"]


def test_the_build_compiles_the_helpers_bytecode_where_python_looks_for_it():
    import importlib.util

    from helpers import stats

    build.compile_helpers()
    source = Path(stats.__file__)
    pyc = Path(importlib.util.cache_from_source(str(source)))
    header = pyc.read_bytes()[:16]  # magic, flags (0: checked by timestamp), source mtime, source size
    assert header[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(header[4:8], "little") == 0
    assert int.from_bytes(header[8:12], "little") == int(source.stat().st_mtime) & 0xFFFFFFFF
    assert int.from_bytes(header[12:16], "little") == source.stat().st_size & 0xFFFFFFFF
    written = pyc.stat().st_mtime_ns
    build.compile_helpers()  # up to date: not written again
    assert pyc.stat().st_mtime_ns == written
