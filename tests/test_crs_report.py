"""The CRS chapter's sections (helpers.crs_report) on the shipped cohort and on cohorts unlike it.

Every sentence is checked against numbers recomputed here from the cohort, so a sentence that is true
only of the shipped cohort fails on the others.
"""
from __future__ import annotations

import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import crs, crs_report as report, display  # noqa: E402
from helpers.page import open_page  # noqa: E402
from helpers.paths import PROJECT_ROOT  # noqa: E402
from helpers.sections import Shown, Skipped, readiness  # noqa: E402

SECTIONS = ("incidence", "scale_incidence", "scale_crosstabs", "severe_switches", "disagreement_drivers",
            "timeline", "course", "treatment", "severe_vs_mild", "severe_vs_rest", "time_courses", "peak_heatmap",
            "predictors_univariable", "predictors_multivariable", "roc", "conclusions")
FORBIDDEN = ("The issue that framed", "six severe", "imulated", "near-perfect", "24-patient", "from 24 patients")


def _simulate(out, *flags: str, n: int = 40, seed: int = 7) -> None:
    subprocess.run([sys.executable, "-m", "helpers", "simulate", "--out", str(out), "--n", str(n), "--seed",
                    str(seed), *flags], check=True, cwd=PROJECT_ROOT, capture_output=True)
    yml = out / "cohort.yml"
    yml.write_text(yml.read_text().replace("simulated: true", "simulated: false"))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return open_page(PROJECT_ROOT / "data" / "simulated", tmp_path_factory.mktemp("tables"), n_boot=200,
                     boot_seed=20200101)


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """40 patients, another seed, not simulated, a daily record without the optional dose and bolus columns."""
    out = tmp_path_factory.mktemp("c40") / "cohort"
    _simulate(out)
    daily = pd.read_csv(out / "daily.csv")
    daily.drop(columns=["norepi_equiv_ug_min", "fluid_boluses"]).to_csv(out / "daily.csv", index=False)
    patients = pd.read_csv(out / "patients.csv")
    patients["crs_grade_reported"] = [i % 4 for i in range(len(patients))]  # the centre's own grades, 0-3
    patients.to_csv(out / "patients.csv", index=False)
    return open_page(out, tmp_path_factory.mktemp("tables"), n_boot=200, boot_seed=5)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A cohort graded elsewhere: centre-reported grades, no daily record."""
    out = tmp_path_factory.mktemp("rep") / "cohort"
    _simulate(out, "--reported-grades", n=30, seed=11)
    return open_page(out, tmp_path_factory.mktemp("tables"), n_boot=200)


def _run(page) -> dict:
    out = {name: getattr(report, name)(page) for name in SECTIONS}
    plt.close("all")
    return out


@pytest.fixture(scope="module")
def shipped_out(shipped):
    return _run(shipped)


@pytest.fixture(scope="module")
def other_out(other):
    return _run(other)


def _all_text(out: dict) -> str:
    parts = []
    for s in out.values():
        if isinstance(s, Shown):
            parts.append(s.text())
            parts += [t.html for t in s.tables()]
        else:
            parts.append(s.markdown())
    return "\n".join(parts)


def _cells(shown: Shown) -> list[str]:
    return [str(v) for t in shown.tables() for v in [*t.frame.columns, *t.frame.to_numpy().ravel()]]


def _counts(page) -> tuple[int, int, int, int]:
    """(patients, any CRS, severe, mild) recomputed from the patient table."""
    g = page.pt["crs_grade"].astype(float)
    severe = int((g >= page.settings.severe_crs_grade).sum())
    return len(g), int((g >= 1).sum()), severe, int((g >= 1).sum()) - severe


# ---------------------------------------------------------------------------------- shipped cohort


def test_shipped_incidence_exact_intervals(shipped_out):
    s = shipped_out["incidence"]
    # definitions.md: 19/24 57.8-92.9, 6/24 9.8-46.7, 6/19 12.6-56.6 (Clopper-Pearson)
    assert s.tables()[0].frame.iloc[:, 1].tolist() == [
        "19/24 (79.2%; 95% CI 57.8\u201392.9)", "6/24 (25.0%; 95% CI 9.8\u201346.7)",
        "6/19 (31.6%; 95% CI 12.6\u201356.6)"]
    assert "19 of 24" in s.text() and "ASTCT 2019" in s.text()


def test_shipped_severe_counts_by_scale(shipped_out):
    # issue 12: 6 severe under ASTCT, 5 under Lee 2014, 14 under Penn
    s = shipped_out["scale_incidence"]
    frame = s.tables()[0].frame.set_index("Scale")
    assert frame.loc["Lee 2014"].iat[1].startswith("5/24") and frame.loc["Penn"].iat[1].startswith("14/24")
    assert "between 5 (Lee 2014) and 14 (Penn)" in s.text()


def test_crosstabs_have_row_and_column_labels(shipped_out):
    tables = shipped_out["scale_crosstabs"].tables()
    assert len(tables) == 3
    for t, other in zip(tables, ("Lee 2014", "CTCAE v5.0", "Penn")):
        assert t.frame.columns.tolist() == ["ASTCT 2019 grade", "0", "1", "2", "3", "4", "5"]
        assert t.frame["ASTCT 2019 grade"].tolist() == [str(g) for g in range(6)]
        assert f"{other} grade" in t.html and f"against {other} (columns)" in t.html
    data = shipped_out["scale_crosstabs"].data
    assert data.groupby("column_scale")["patients"].sum().tolist() == [24, 24, 24]
    penn = data[data["column_scale"] == "penn"].set_index(["row_grade", "column_grade"])["patients"]
    assert penn[(2, 3)] == 8 and penn[(5, 5)] == 2  # 8 ASTCT grade-2 patients are Penn grade 3


def test_drivers_in_words_and_record_read_from_columns(shipped_out):
    s = shipped_out["disagreement_drivers"]
    assert not any(re.search(r"[a-z]+:[a-z_]+", c) for c in _cells(s))  # no rule codes
    assert "hypotension on one vasopressor" in " ".join(_cells(s))
    # the shipped daily record has norepi_equiv_ug_min and fluid_boluses
    assert "is recorded on all" in s.text() and "Fluid boluses are recorded" in s.text()
    assert "has no vasopressor dose" not in s.text()


def test_timeline_shows_grade_5_for_each_crs_death(shipped, shipped_out):
    cells = shipped_out["timeline"].data
    dead = shipped.data.patients[shipped.data.patients["death_cause"] == "crs"]
    five = cells[cells["grade"] == 5].set_index("patient_id")["day"]
    assert len(dead) == 2 and five.to_dict() == dict(zip(dead["patient_id"], dead["os_days"].astype(float)))


def test_course_and_treatment_shipped(shipped_out):
    course = shipped_out["course"].tables()[0].frame
    assert list(course.columns) == ["Characteristic", "ASTCT 2019, N = 19", "Lee 2014, N = 19",
                                    "CTCAE v5.0, N = 19", "Penn, N = 19"]
    t = shipped_out["treatment"].tables()[0].frame.set_index("Characteristic")
    # issue 13: tocilizumab in 14 and corticosteroids in 6 patients of the shipped cohort
    assert t.loc["Tocilizumab", "Overall, N = 24"] == "14 (58.3%)"
    assert t.loc["Corticosteroids", "Overall, N = 24"] == "6 (25.0%)"
    assert "14 of 24 patients received tocilizumab" in shipped_out["treatment"].text()


def test_severe_vs_mild_shipped(shipped_out):
    s = shipped_out["severe_vs_mild"]
    defining, tested = s.tables()
    assert "Mild CRS, N = 13" in defining.frame.columns and "Severe CRS, N = 6" in tested.frame.columns
    assert set(defining.frame["Feature"]) == {"Lowest systolic blood pressure, mmHg", "Any vasopressor",
                                              "Any supplemental oxygen"}
    assert not set(defining.frame["Feature"]) & set(tested.frame["Marker"])
    assert {"Effect (95% CI)", "p-value", "q-value"} <= set(tested.frame.columns)
    tested_rows = s.data[s.data["role"] == "tested"]
    assert tested_rows["p_adj_bh"].notna().all() and s.data.loc[s.data["role"] != "tested", "p_value"].isna().all()
    # two patients died of CRS by day 12, both severe: flagged under the table
    assert "2 patients (2 with severe CRS) died by day 28" in tested.html
    assert "ALT, CTCAE v5.0 grade \u22653" in set(tested.frame["Marker"])


def test_predictor_notes_once(shipped_out):
    u = shipped_out["predictors_univariable"].tables()[0]
    assert "Events per variable" not in u.frame.columns and "epv" not in u.frame.columns
    assert u.html.count("events per estimated coefficient") == 1
    assert "Peduzzi et al. (1996)" in u.html and "Vittinghoff and McCulloch (2007)" in u.html
    row = u.frame.set_index("Baseline factor").loc["Prior allogeneic HSCT (yes vs no)"]
    assert row["Ordinary ML: OR (95% CI); p-value"] == "not estimable"  # separation in the shipped cohort


def test_roc_bootstrap_once_and_sentence_from_the_auc(shipped, shipped_out):
    s = shipped_out["roc"]
    t = s.tables()[0]
    assert t.html.count("200 resamples, seed 20200101") == 1
    auc = s.data.set_index("measure").loc["AUC", "estimate"]
    assert ("strong" in s.text()) == (0.8 <= auc < 0.95)


# ------------------------------------------------------------------------------ a cohort unlike it


def test_other_cohort_sentences_follow_its_data(other, other_out):
    n, k_any, k_severe, k_mild = _counts(other)
    assert (n, k_severe) != (24, 6)
    assert f"{k_any} of {n}" in other_out["incidence"].text()
    s = other_out["severe_vs_mild"]
    assert f"Mild CRS, N = {k_mild}" in s.tables()[-1].frame.columns
    assert f"Severe CRS, N = {k_severe}" in s.tables()[-1].frame.columns
    text = _all_text(other_out)
    for phrase in (*FORBIDDEN, "of 24 ", "19 of 24", "6 of 24", "Mild CRS, N = 13"):
        assert phrase not in text, phrase


def test_other_cohort_without_dose_and_bolus_columns(other_out):
    text = other_out["disagreement_drivers"].text()
    assert "has no vasopressor dose" in text and "has no fluid-bolus count" in text


def test_other_cohort_treatment_counts(other, other_out):
    daily = other.data.daily
    given = daily.loc[(daily["day"] >= 0) & (daily["tocilizumab"] == 1), "patient_id"].nunique()
    assert f"{given} of {len(other.data.patients)} patients received tocilizumab" in other_out["treatment"].text()


def test_other_cohort_scale_counts(other, other_out):
    a = crs.agreement_table(other.data.daily, other.data.patients, labs=other.data.labs)
    severe = (a[list(crs.SYSTEMS)] >= 3).sum()
    text = other_out["scale_incidence"].text()
    assert f"between {severe.min()} (" in text and f"and {severe.max()} (" in text


def test_no_table_shows_code_or_non_numbers(shipped_out, other_out):
    for out in (shipped_out, other_out):
        for s in out.values():
            if isinstance(s, Shown):
                for t in s.tables():
                    display.check_display(t.frame, t.id)  # raises on code headers, booleans, nan, inf
                    assert not any(re.search(r"\b(nan|inf|True|False)\b", c) for c in map(str, t.frame.columns))


def test_shipped_pages_say_nothing_forbidden(shipped_out):
    text = _all_text(shipped_out)
    for phrase in FORBIDDEN:
        assert phrase not in text, phrase


# ------------------------------------------------------------------------- optional inputs absent


def test_reported_grades_only(reported):
    inc = report.incidence(reported)
    assert isinstance(inc, Shown) and inc.text().startswith("By the grades the centre reported")
    for name in ("scale_incidence", "scale_crosstabs", "severe_switches", "disagreement_drivers", "timeline",
                 "course", "treatment"):
        out = getattr(report, name)(reported)
        assert isinstance(out, Skipped) and "daily clinical record" in out.reason, name
    assert isinstance(report.conclusions(reported), Shown)


def test_no_labs(tmp_path):
    out = tmp_path / "cohort"
    _simulate(out, "--no-labs", n=20, seed=3)
    page = open_page(out, tmp_path / "tables", n_boot=100)
    assert isinstance(report.time_courses(page), Skipped) and isinstance(report.peak_heatmap(page), Skipped)
    s = report.severe_vs_mild(page)
    if isinstance(s, Shown):  # vital signs only: the three defining features, temperature tested alone
        assert set(s.data.loc[s.data["role"] == "tested", "variable"]) <= {"temp_max_c"}


def test_auc_sentence_reads_the_value():
    weak = report.auc_sentence(pd.Series({"estimate": 0.62, "ci_low": 0.41, "ci_high": 0.83}), "Blasts")
    assert "weak" in weak and "includes chance" in weak and "perfect" not in weak
    top = report.auc_sentence(pd.Series({"estimate": 0.97, "ci_low": 0.9, "ci_high": 1.0}), "Blasts")
    assert "near-perfect" in top and "excludes chance" in top


def test_record_note_decides_from_the_columns():
    base = pd.DataFrame({"patient_id": ["A", "A"], "day": [1.0, 2.0], "vasopressors": [1, 0]})
    assert "has no vasopressor dose" in report.record_note(base)
    assert "recorded on all 1 vasopressor days" in report.record_note(base.assign(norepi_equiv_ug_min=[12.0, None]))
    assert "on 0 of 1" in report.record_note(base.assign(norepi_equiv_ug_min=[None, 3.0]))
    assert "Fluid boluses are recorded" in report.record_note(base.assign(fluid_boluses=[0, 2]))
    assert "do not arise" in report.record_note(base.assign(vasopressors=[0, 0]))


def test_sections_registered_for_validate(shipped):
    r = readiness(shipped.data).set_index("section")
    assert {"crs_report.timeline", "crs_report.course", "crs_report.time_courses"} <= set(r.index)
    assert r.loc["crs_report.timeline", "ready"]


def test_other_cohort_compares_with_the_centres_grades(other, other_out):
    tables = other_out["scale_crosstabs"].tables()
    assert len(tables) == 4 and "Reported by the centre grade" in tables[-1].html
    rows = other_out["scale_incidence"].tables()[0].frame.set_index("Scale")
    k = sum(1 for i in range(len(other.data.patients)) if i % 4 == 3)
    assert rows.loc["Reported by the centre"].iat[1].startswith(f"{k}/{len(other.data.patients)} ")
    pairs = other_out["severe_switches"].tables()[0].frame["Scales compared"].tolist()
    assert "ASTCT 2019 and Reported by the centre" in pairs
