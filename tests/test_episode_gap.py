"""`episode_gap_days`, the CRS episode rule, as a cohort setting (cohort.yml), on a hand-made one-patient record.

The rule (helpers.crs): a CRS episode, and the fever masking that goes with it, ends after `episode_gap_days`
consecutive days without fever, hypotension or hypoxia; a later CRS day then opens a new episode (recurrence),
and an afebrile sign after it is CRS only after a new qualifying fever (ASTCT 2019: fever is not required once
tocilizumab or steroids are given, for that episode).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import crs, crs_report
from helpers.cohort import validate
from helpers.page import open_page

PATIENTS = "patient_id,best_response,os_days,os_event\nX-1,CR,400,0\n"
NORMAL = {"temp_max_c": 36.8, "sbp_min_mmhg": 118, "tocilizumab": 0}


def daily_csv(days: dict[int, dict]) -> str:
    """Days 0-12, normal unless given in `days`."""
    rows = ["patient_id,day,temp_max_c,sbp_min_mmhg,tocilizumab"]
    for d in range(13):
        r = {**NORMAL, **days.get(d, {})}
        rows.append(f"X-1,{d},{r['temp_max_c']},{r['sbp_min_mmhg']},{r['tocilizumab']}")
    return "\n".join(rows) + "\n"


def cohort(folder: Path, days: dict[int, dict], **settings) -> Path:
    folder.mkdir(parents=True)
    (folder / "patients.csv").write_text(PATIENTS, encoding="utf-8")
    (folder / "daily.csv").write_text(daily_csv(days), encoding="utf-8")
    (folder / "cohort.yml").write_text(yaml.safe_dump({"name": "Episode test", **settings}), encoding="utf-8")
    return folder


FEVER = {"temp_max_c": 38.6}
# Fever on days 1-2, three sign-free days (3, 4, 5), fever again on day 6.
TWO_FEVERS = {1: FEVER, 2: FEVER, 6: FEVER}
# Fever and tocilizumab on day 1, three sign-free days (2, 3, 4), afebrile hypotension (SBP 80) on day 5.
MASKED = {1: {**FEVER, "tocilizumab": 1}, 5: {"sbp_min_mmhg": 80}}


@pytest.mark.parametrize("settings, episodes", [
    ({}, 2),                          # default 3: days 3-5 end the first episode, day 6 opens a second
    ({"episode_gap_days": 3}, 2),
    ({"episode_gap_days": 4}, 1),     # 3 sign-free days do not end it: one episode, days 1-6
    ({"episode_gap_days": 2}, 2),
])
def test_the_setting_splits_episodes(tmp_path, settings, episodes):
    page = open_page(cohort(tmp_path / "c", TWO_FEVERS, **settings), tmp_path / "tables")
    course = crs_report.course(page).data
    primary = course[course["system"] == "astct"].iloc[0]
    assert (primary["onset_day"], primary["episodes"], bool(primary["recurrence"])) == (1, episodes, episodes == 2)


@pytest.mark.parametrize("gap, grade", [
    (3, 1),   # masking ended with the episode on day 4: the afebrile hypotension of day 5 is not CRS
    (4, 2),   # the episode is still open on day 5: fever is not required, hypotension without pressors is 2
])
def test_the_setting_ends_fever_masking(tmp_path, gap, grade):
    page = open_page(cohort(tmp_path / "c", MASKED, episode_gap_days=gap), tmp_path / "tables")
    assert int(page.pt["crs_grade"].iat[0]) == grade


def test_the_chapter_states_the_value_used(tmp_path):
    page = open_page(cohort(tmp_path / "c", TWO_FEVERS, episode_gap_days=5), tmp_path / "tables")
    rule = "ends after 5 consecutive days without fever, hypotension or hypoxia (`episode_gap_days` in cohort.yml)"
    assert rule in crs_report.incidence(page).text()
    assert rule in crs_report.course(page).tables()[0].html
    default = open_page(cohort(tmp_path / "d", TWO_FEVERS), tmp_path / "tables")
    assert "ends after 3 consecutive days" in crs_report.incidence(default).text()
    assert "cohort.yml, the default)" in crs_report.incidence(default).text()


def test_default_is_the_graders_default():
    from helpers import contract

    spec = {s.name: s.default for s in contract.SETTINGS}["episode_gap_days"]
    assert spec == crs.GradingOptions().episode_gap_days == crs.COURSE_GAP_DAYS == 3


@pytest.mark.parametrize("value", [-1, 2.5, "3", True, 0, [3]])
def test_validation_rejects_a_non_integer_or_non_positive_value(tmp_path, value):
    report, loaded = validate(cohort(tmp_path / "c", TWO_FEVERS, episode_gap_days=value))
    errors = [str(p) for p in report.problems if p.level == "error"]
    assert loaded is None
    assert errors == [f"ERROR: cohort.yml: episode_gap_days is {value!r}; expected a whole number of days, 1 or more."]
