"""'Does it hold up?': the corrected verdicts on the shipped cohort (known answers from the referee's reading),
the page's sections on the shipped cohort and on a cohort unlike it, and the stored fragility result."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from helpers import fragility, holdup, holdup_report, published
from helpers.cohort import load_cohort
from helpers.page import open_page
from helpers.paths import SHIPPED_COHORT
from helpers.sections import Shown, Skipped

from conftest import SECOND_N, published_statements, shipped_fact_patterns


@pytest.fixture(scope="module")
def shipped_page(tmp_path_factory):
    return open_page(SHIPPED_COHORT, tmp_path_factory.mktemp("tables"))


@pytest.fixture(scope="module")
def second_page(second_cohort, tmp_path_factory):
    return open_page(second_cohort, tmp_path_factory.mktemp("tables2"))


@pytest.fixture(scope="module")
def assessed(shipped_page):
    return holdup.assess(shipped_page.data, shipped_page.pt).set_index("fact")


def test_naive_verdicts_are_the_calibrated_ones(assessed):
    assert assessed["naive_reproduced"].tolist() == [True] * 10


def test_severe_crs_does_not_survive_leaving_out_the_crs_deaths(assessed):
    # the referee's reading: without the deaths from CRS, severe CRS no longer predicts PFS significantly
    assert assessed.loc["F6", "corrected_reproduced"] is False
    assert re.search(r"PFS HR [\d.]+ \([\d.]+–[\d.]+\), p = 0\.\d+$", assessed.loc["F6", "corrected"])


def test_crs_counts_depend_on_the_scale(shipped_page, assessed):
    counts = holdup.crs_counts_by_scale(shipped_page.data).set_index("system")
    # issue 12: F8 would fail under Lee 2014 (5 severe) and Penn (14)
    assert counts.loc["lee2014", "severe_crs"] == 5 and counts.loc["penn", "severe_crs"] == 14
    assert counts.loc["astct", "severe_crs"] == published.PUBLISHED_COUNTS["severe_crs"]
    assert assessed.loc["F8", "corrected_reproduced"] is False
    assert "reproduced under 2 of 4 scales" in assessed.loc["F8", "corrected"]


def test_time_varying_remission_still_favours_responders(assessed):
    assert assessed.loc["F4", "corrected_reproduced"] is True
    assert assessed.loc["F4", "corrected"].startswith("OS HR 0.17 (0.05–0.59)")  # issue 12's corrected estimate


def test_defining_features_are_not_markers():
    assert "sbp_min_mmhg" in published.F9_MARKERS and "sbp_min_mmhg" not in holdup.NON_DEFINING_MARKERS
    assert set(holdup.NON_DEFINING_MARKERS) == set(published.F9_MARKERS) - {"sbp_min_mmhg"}


def test_deaths_from_crs_are_left_out():
    pt = pd.DataFrame({"death_cause": ["crs", None, "relapse", "crs", "infection"]})
    assert holdup.without_crs_deaths(pt).index.tolist() == [1, 2, 4]
    assert len(holdup.without_crs_deaths(pd.DataFrame({"x": [1, 2]}))) == 2


def test_quick_verdicts_equal_the_full_ones(shipped_page, assessed):
    quick = holdup.assess(shipped_page.data, shipped_page.pt, quick=True).set_index("fact")
    for col in ("naive_reproduced", "corrected_reproduced"):
        assert quick[col].tolist() == assessed[col].tolist()


def test_verdicts_section_on_the_shipped_cohort(shipped_page):
    shown = holdup_report.verdicts(shipped_page)
    assert isinstance(shown, Shown)
    frame = shown.tables()[0].frame
    assert frame["Verdict as published"].tolist() == ["Reproduced"] * 10
    assert frame.set_index("Fact").loc["F6", "Verdict corrected"] == "Not reproduced"
    assert frame.set_index("Fact").loc["F2", "Verdict corrected"] == "Not applicable"
    text = shown.text()
    assert "10 of the 10 facts testable with the published analyses hold" in text
    assert "(F6 and F8 do not)" in text
    assert "../notebooks/03_survival.html#the-published-multivariable-models" in text


def test_crs_scales_section_on_the_shipped_cohort(shipped_page):
    shown = holdup_report.crs_scales(shipped_page)
    frame = shown.tables()[0].frame.set_index("Scale")
    assert frame.loc["Penn", "Severe CRS"].startswith("14/24 (58.3%; 95% CI")
    assert frame.loc["ASTCT 2019", "Verdict"] == "Reproduced"
    assert "under 2 of the 4 scales (ASTCT 2019 and CTCAE v5.0)" in shown.text()


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fragility")
    frame = fragility.run([published.PUBLISHED_N], [1, 2, 3], workers=1)
    fragility.write(frame, fragility.run_meta([24], [1, 2, 3], 1, 6.0, None), folder)
    return folder


def test_fragility_section_reads_the_stored_run(shipped_page, stored_run):
    shown = holdup_report.fragility_section(shipped_page, stored_run)
    frame = shown.tables()[0].frame.set_index("Fact")
    assert list(frame.columns) == ["As published, N = 24", "Corrected, N = 24"]
    assert frame.loc["F1", "As published, N = 24"] == "100.0% (29.2–100.0)"  # 3/3, Clopper-Pearson
    assert frame.loc["F1", "Corrected, N = 24"] == "not applicable"
    assert "published size (N = 24)" in shown.text()


def test_fragility_without_a_stored_run_is_skipped_with_the_command(shipped_page, tmp_path):
    out = holdup_report.fragility_section(shipped_page, tmp_path)
    assert isinstance(out, Skipped) and "python -m helpers fragility" in out.reason


def test_the_page_on_a_cohort_unlike_the_shipped_one(second_page, stored_run):
    assert len(second_page.data.patients) == SECOND_N and not second_page.data.simulated
    parts = [holdup_report.verdicts(second_page), holdup_report.crs_scales(second_page),
             holdup_report.fragility_section(second_page, stored_run),
             holdup_report.conclusions(second_page, stored_run)]
    assert isinstance(parts[1], Skipped) and "daily clinical record" in parts[1].reason
    verdicts = parts[0].tables()[0].frame.set_index("Fact")
    assert verdicts.loc["F1", "Verdict as published"] == "Not testable"  # the size of a cohort is chosen
    assert verdicts.loc["F8", "Verdict corrected"] == "Not testable"  # no daily record to regrade
    assert f"no cohorts of this cohort's size (N = {SECOND_N})" in parts[2].text()
    assert f"--n 24 {SECOND_N}" in parts[2].text()
    text = "\n".join(p.text() if isinstance(p, Shown) else p.markdown() for p in parts)
    text += "\n".join("\n".join(t.frame.astype(str).agg(" ".join, axis=1)) for p in parts if isinstance(p, Shown)
                      for t in p.tables())
    for statement in published_statements():
        text = text.replace(statement, "")
    assert not re.search(r"\bsimulated\b", text, re.I)
    found = [p.pattern for p in shipped_fact_patterns() if p.search(text)]
    assert found == []


def test_markers_and_scales_are_computed_once_per_page(monkeypatch, tmp_path):
    # F9's naive and corrected checks share one severity-marker frame; F8's corrected check and the
    # CRS-scales section share one grading under every scale; the verdicts are those of a fresh assessment
    calls = {"markers": 0, "scales": 0}
    markers, scales = published.severity_markers, holdup.crs_counts_by_scale

    def count(key, f):
        def wrapped(*a, **k):
            calls[key] += 1
            return f(*a, **k)
        return wrapped

    monkeypatch.setattr(published, "severity_markers", count("markers", markers))
    monkeypatch.setattr(holdup, "crs_counts_by_scale", count("scales", scales))
    page = open_page(SHIPPED_COHORT, tmp_path)
    verdicts = holdup_report.verdicts(page).data
    section = holdup_report.crs_scales(page).data
    assert calls == {"markers": 1, "scales": 1}
    pd.testing.assert_frame_equal(verdicts, holdup.assess(page.data, page.pt))
    pd.testing.assert_frame_equal(section, holdup.scale_verdicts(scales(page.data)))
