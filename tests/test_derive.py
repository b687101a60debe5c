"""Per-patient derived facts, on a hand-built cohort with answers worked out by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import derive
from helpers.cohort import load_cohort

PATIENTS = """patient_id,best_response,os_days,os_event,pfs_days,pfs_event,remission_day,death_cause,crs_grade_reported
A,CR,400,1,200,1,21,relapse,2
B,CRi,90,1,90,1,,infection,4
C,NR,300,0,40,1,,,0
D,PR,60,1,60,1,,other,1
"""
DAILY = ("patient_id,day,temp_max_c,sbp_min_mmhg,vasopressors,vasopressin,oxygen,o2_flow_l_min,fio2_pct,"
         "tocilizumab,steroids,fever_other_cause\n"
         "A,1,38.4,110,0,0,none,0,21,0,0,0\n"
         "A,2,39.1,85,0,0,low_flow,3,28,1,0,0\n"
         "B,1,38.9,80,1,0,high_flow,20,50,1,1,0\n"
         "B,2,37.5,82,0,1,none,0,21,0,0,0\n"
         "C,3,38.6,120,0,0,none,0,21,0,0,1\n")
LABS = "patient_id,day,analyte,value,unit\nA,1,il6,50,pg/mL\nA,3,il6,900,pg/mL\nA,40,il6,5000,pg/mL\nB,2,platelets,12,10^9/L\n"


def cohort(tmp_path, daily=True):
    (tmp_path / "patients.csv").write_text(PATIENTS, encoding="utf-8")
    if daily:
        (tmp_path / "daily.csv").write_text(DAILY, encoding="utf-8")
    (tmp_path / "labs.csv").write_text(LABS, encoding="utf-8")
    return load_cohort(tmp_path)


def test_patient_table_from_the_daily_record(tmp_path):
    pt = derive.patient_table(cohort(tmp_path)).set_index("patient_id")
    assert pt["remission"].tolist() == [True, True, False, False]
    # A recorded day 21; B in remission but unrecorded -> landmark day 28 (assumed); C, D none
    assert pt["remission_day"].tolist()[:2] == [21.0, 28.0] and pt["remission_day"].iloc[2:].isna().all()
    assert pt["remission_day_assumed"].tolist() == [False, True, False, False]
    # ASTCT: A fever + hypotension without pressors, then low-flow O2 -> 2; B one vasopressor with
    # fever -> 3, next day vasopressin alone after tocilizumab (fever not required) -> 3; C's fever
    # has another documented cause -> no CRS; D has no daily rows -> 0.
    assert pt["crs_grade"].tolist() == [2, 3, 0, 0]
    assert pt["severe_crs"].tolist() == [False, True, False, False]
    assert pt["crs_grade_source"].iat[0] == "graded from daily record (ASTCT 2019 consensus)"
    # competing risks: A relapse (1); B died on its PFS day of infection (NRM, 2); C progression (1);
    # D died on its PFS day of 'other' cause (NRM, 2)
    assert pt["event_type"].tolist() == [1, 2, 1, 2]


def test_reported_grades_are_the_fallback_without_daily(tmp_path):
    pt = derive.patient_table(cohort(tmp_path, daily=False))
    assert pt["crs_grade"].tolist() == [2, 4, 0, 1]
    assert pt["crs_grade_source"].iat[0] == "as reported by the centre"


def test_vital_and_lab_extremes_over_days_0_to_28(tmp_path):
    c = cohort(tmp_path)
    v = derive.vital_extremes(c.daily).set_index("patient_id")
    assert v.loc["P01", "temp_max_c"] == 39.1 and v.loc["P01", "sbp_min_mmhg"] == 85
    assert v["any_vasopressor"].tolist() == [False, True, False]  # B: a vasopressor, then vasopressin alone
    assert v["any_oxygen"].tolist() == [True, True, False]
    labs = derive.lab_extremes(c.labs).set_index("patient_id")
    assert labs.loc["P01", "il6_max"] == 900  # the day-40 value lies outside the window
    assert labs.loc["P02", "platelets_min"] == 12 and np.isnan(labs.loc["P01", "platelets_min"])
    assert list(labs.columns) == sorted(labs.columns)
    assert isinstance(labs, pd.DataFrame)


# ---------------------------------------------------------------- derivations shared between chapters

def test_shared_computes_once_per_cohort_key_and_settings(tmp_path, monkeypatch):
    from dataclasses import replace

    from helpers.cohort import _content_key
    from helpers.paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "c").mkdir()
    c = cohort(tmp_path / "c")
    assert c.key == _content_key(tmp_path / "c")  # load_cohort marks the cohort with its files' key
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"n": [len(calls)]})

    first = derive.shared(c, "thing", compute)
    again = derive.shared(load_cohort(tmp_path / "c"), "thing", compute)  # another chapter: read, not computed
    assert len(calls) == 1 and again.equals(first)
    derive.shared(c, "other", compute)  # another derivation
    derive.shared(replace(c, settings=replace(c.settings, severe_crs_grade=4)), "thing", compute)  # other settings
    assert len(calls) == 3
    in_memory = replace(c, key="")  # a cohort built in memory: nothing to key on, computed each time
    derive.shared(in_memory, "thing", compute)
    derive.shared(in_memory, "thing", compute)
    assert len(calls) == 5


def test_two_kernels_that_need_a_shared_value_at_once_compute_it_once(tmp_path, monkeypatch):
    """The second waits on the first's lock, then reads its result (processes forked as the kernels are
    separate processes); a process killed while it holds the lock leaves it to the next."""
    import multiprocessing
    import os
    import signal
    import time

    from helpers.paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "c").mkdir()
    c = cohort(tmp_path / "c")
    log = tmp_path / "computed"

    def compute(seconds: float):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(seconds)
        return os.getpid()

    def chapter(name: str, seconds: float, results) -> None:
        results.put(derive.shared(c, name, lambda: compute(seconds)))

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    both = [ctx.Process(target=chapter, args=("table", 0.5, results)) for _ in range(2)]
    for p in both:
        p.start()
    for p in both:
        p.join(20)
    values = [results.get(timeout=5) for _ in both]
    assert len(log.read_text().split()) == 1 and values[0] == values[1]
    killed = ctx.Process(target=chapter, args=("other", 60, results))
    killed.start()
    deadline = time.time() + 20
    while len(log.read_text().split()) < 2:  # it holds the lock and computes
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.join(5)
    assert derive.shared(c, "other", lambda: "computed again") == "computed again"


def test_shared_grading_and_counts_by_scale_equal_a_fresh_grading(tmp_path, monkeypatch):
    from helpers import crs, holdup
    from helpers.paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "c").mkdir()
    c = cohort(tmp_path / "c")
    fresh = crs.grade_systems(c.daily, crs.SYSTEMS, c.labs, crs.cohort_options(c.settings))
    for _ in range(2):  # computed, then read back
        graded = derive.graded_scales(c)
        assert graded.keys() == fresh.keys() and all(graded[s].equals(fresh[s]) for s in fresh)
    wide = crs.agreement_table(c.daily, c.patients, labs=c.labs, options=crs.cohort_options(c.settings))
    severe = c.settings.severe_crs_grade
    expected = [{"system": s, "any_crs": int((wide[s] >= 1).sum()), "severe_crs": int((wide[s] >= severe).sum()),
                 "n": int(wide[s].notna().sum())} for s in crs.SYSTEMS]
    assert holdup.crs_counts_by_scale(c).to_dict("records") == expected


def test_shared_recomputes_over_an_unreadable_entry(tmp_path, monkeypatch):
    from helpers.paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "c").mkdir()
    c = cohort(tmp_path / "c")
    assert derive.shared(c, "thing", lambda: 1) == 1
    (entry,) = (tmp_path / "cache" / "cohorts" / f"{c.key}.derived").glob("thing-*.pkl")
    entry.write_bytes(b"chelpers.derive\nNoSuchThing\n.")  # a class another version had: AttributeError on load
    assert derive.shared(c, "thing", lambda: 2) == 2
    assert derive.shared(c, "thing", lambda: 3) == 2  # the new value was stored


def test_an_unreadable_cohort_cache_entry_is_validated_again(tmp_path, monkeypatch):
    from helpers.cohort import _content_key
    from helpers.paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "c").mkdir()
    first = cohort(tmp_path / "c")
    entry = tmp_path / "cache" / "cohorts" / f"{_content_key(tmp_path / 'c')}.pkl"
    assert entry.is_file()  # the first load stored it
    entry.write_bytes(b"chelpers.cohort\nNoSuchThing\n.")
    again = load_cohort(tmp_path / "c")
    assert again.patients.equals(first.patients) and again.key == first.key
    assert load_cohort(tmp_path / "c").patients.equals(first.patients)  # stored afresh, readable


def test_a_cached_cohort_reads_its_large_tables_when_first_used(tmp_path, monkeypatch):
    from helpers.cohort import DEFERRED, Stored, _content_key, validate
    from helpers.paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "c").mkdir()
    cohort(tmp_path / "c")  # validated and stored
    (tmp_path / "no-daily").mkdir()
    cohort(tmp_path / "no-daily", daily=False)
    _, fresh = validate(tmp_path / "c")
    loaded = load_cohort(tmp_path / "c")
    assert all(type(object.__getattribute__(loaded, t)) is Stored for t in DEFERRED)  # nothing read yet
    assert loaded.has("daily") and loaded.has("labs") and loaded.grades_crs  # answered without reading
    assert type(object.__getattribute__(loaded, "daily")) is Stored
    assert loaded.daily.equals(fresh.daily) and loaded.labs.equals(fresh.labs)  # read on first use, then kept
    assert loaded.daily is loaded.daily and loaded.key == _content_key(tmp_path / "c")
    other = load_cohort(tmp_path / "no-daily")
    assert other.daily is None and not other.has("daily") and not other.grades_crs and other.has("labs")
    # a table file gone (a cache cleaned by hand) when first used: the cohort's files are validated again
    key = _content_key(tmp_path / "c")
    (tmp_path / "cache" / "cohorts" / f"{key}.labs.pkl").unlink()
    assert load_cohort(tmp_path / "c").labs.equals(fresh.labs)


def test_the_patient_table_grades_under_the_cohorts_own_scale(tmp_path):
    """The per-patient grades and severe onset come from the cohort's scale (read from the grading under every
    scale), the same as grading the record under that scale alone."""
    from dataclasses import replace

    from helpers import crs

    c = cohort(tmp_path)
    seen = set()
    for system in crs.SYSTEMS:
        cs = replace(c, settings=replace(c.settings, crs_system=system, severe_crs_grade=2), key="")
        alone = crs.crs_table(cs.daily, cs.patients, system, cs.labs, crs.cohort_options(cs.settings))
        pt = derive.patient_table(cs).set_index("patient_id")
        assert pt["crs_grade"].tolist() == alone.set_index("patient_id").loc[pt.index, "max_grade"].tolist()
        assert pt["severe_crs_onset_day"].equals(derive.severe_crs_onset(cs).set_index("patient_id")["severe_crs_onset_day"])
        seen.add(tuple(pt["crs_grade"].tolist()))
    assert len(seen) > 1  # the scales disagree on this record: reading the wrong one would show
