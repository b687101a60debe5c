"""Per-patient facts derived once and used by every chapter (remission, CRS grade, peak expansion, ...).

No chapter recomputes these: the survival chapter's severe-CRS flag and peak expansion are the
same numbers the CRS and kinetics chapters show.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from helpers import crs, kinetics
from helpers.cohort import Cohort

T = TypeVar("T")
OXYGEN_RANK = {"none": 0, "low_flow": 1, "high_flow": 2, "facemask": 2, "nonrebreather": 2, "venturi": 2,
               "cpap": 3, "bipap": 3, "mechanical_ventilation": 4}


def crs_grades(cohort: Cohort, graded: pd.DataFrame | None = None) -> pd.DataFrame:
    """Maximum CRS grade per patient: graded from daily.csv with the cohort's system, else as reported.

    `graded`: the daily record already graded under the cohort's system (`primary_graded`), else graded here.
    Columns: patient_id, crs_grade (Int64), crs_onset_day, crs_duration_days, crs_grade_source.
    """
    p = cohort.patients[["patient_id"]].copy()
    system = cohort.settings.crs_system
    if cohort.grades_crs:
        graded = primary_graded(cohort) if graded is None else graded
        table = crs.summarise_patients(graded, cohort.patients)
        out = p.merge(table[["patient_id", "max_grade", "onset_day", "duration_days"]], on="patient_id", how="left")
        out = out.rename(columns={"max_grade": "crs_grade", "onset_day": "crs_onset_day",
                                  "duration_days": "crs_duration_days"})
        out["crs_grade_source"] = f"graded from daily record ({crs_system_label(system)})"
    elif cohort.has_columns("crs_grade_reported"):
        out = p.assign(crs_grade=cohort.patients["crs_grade_reported"], crs_onset_day=np.nan,
                       crs_duration_days=np.nan, crs_grade_source="as reported by the centre")
    else:
        out = p.assign(crs_grade=pd.NA, crs_onset_day=np.nan, crs_duration_days=np.nan, crs_grade_source="not available")
    out["crs_grade"] = out["crs_grade"].astype("Int64")
    return out


def shared(cohort: Cohort, name: str, compute: Callable[[], T]) -> T:
    """`compute()`, a function of the cohort alone, computed once per build instead of once per chapter that
    needs it: pickled beside the loaded cohort (in its folder `<key>.derived`, removed with it by
    `cohort.forget`), keyed on the cohort's files (`Cohort.key`), its settings,
    `name` and the source of every helpers module (any change recomputes). A cohort built in memory
    (no key) computes it each time."""
    from helpers.paths import cache_dir

    if not cohort.key:
        return compute()
    h = hashlib.sha256(f"{cohort.key}|{cohort.settings!r}|{name}".encode())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        h.update(module.read_bytes())
    entry = cache_dir() / "cohorts" / f"{cohort.key}.derived" / f"{name}-{h.hexdigest()[:32]}.pkl"
    found = _stored(entry)
    if found is not _ABSENT:
        return found
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _computing(entry):  # a chapter in another kernel computing the same value: wait for it, then read it
        found = _stored(entry)
        if found is not _ABSENT:
            return found
        value = compute()
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)  # atomic: a chapter in another kernel never reads half a file
    return value


_ABSENT = object()


def _stored(entry: Path) -> object:
    """The value pickled in `entry`, or _ABSENT when there is none that loads."""
    try:
        with open(entry, "rb") as f:
            return pickle.load(f)
    except Exception:  # absent, half-written by a killed build, or from other library versions: compute again
        return _ABSENT


@contextmanager
def _computing(entry: Path) -> Iterator[None]:
    """An exclusive lock on `entry`'s lock file while its value is computed: the two long chapters, which start
    together and both need the per-patient table first, compute it once (the second waits, and its core goes
    to the validation's held-back checks). The operating system releases the lock of a killed kernel."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: each kernel computes it
        yield
        return
    with open(entry.with_suffix(".lock"), "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def shared_patient_table(cohort: Cohort) -> pd.DataFrame:
    """patient_table(cohort), computed once per build (`shared`), not once per chapter."""
    return shared(cohort, "patients", lambda: patient_table(cohort))


def graded_scales(cohort: Cohort) -> dict[str, pd.DataFrame]:
    """The daily record graded under every CRS scale with the cohort's options (crs.grade_systems), once per
    build: the CRS chapter's agreement and course tables and the reproduction page's counts by scale."""
    return shared(cohort, "graded", lambda: crs.grade_systems(cohort.daily, crs.SYSTEMS, cohort.labs,
                                                                crs.cohort_options(cohort.settings)))


def crs_system_label(system: str) -> str:
    """Readable name of a CRS grading system code."""
    return {"astct": "ASTCT 2019 consensus", "lee2014": "Lee 2014", "ctcae5": "CTCAE v5.0",
            "penn": "Penn scale"}.get(system, system)


def patient_table(cohort: Cohort) -> pd.DataFrame:
    """The patients table plus every derived per-patient fact the chapters use.

    Added columns: remission (bool), remission_day (recorded, else the landmark day) and
    remission_day_assumed (bool), crs_grade, crs_any, severe_crs (nullable boolean),
    crs_onset_day, crs_duration_days, crs_grade_source, severe_crs_onset_day (first day at the severe
    grade), peak_copies and log10_peak (from helpers.kinetics.peak_expansion), peak_day and
    peak_not_observed (peak at the last sample before a death inside the expansion window), cd4_cd8_ratio, log10_dose, event_type for competing risks
    (0 censored, 1 relapse/progression, 2 death without prior relapse/progression).
    """
    s = cohort.settings
    df = cohort.patients.copy()
    df["remission"] = df["best_response"].isin(s.remission_responses)
    df["remission_day"], df["remission_day_assumed"] = _remission_day(df, s.landmark_day)
    graded = graded_scales(cohort)[s.crs_system] if cohort.grades_crs else None  # graded once, shared
    df = df.merge(crs_grades(cohort, graded), on="patient_id", how="left")
    grade = df["crs_grade"]
    df["crs_any"] = (grade >= 1).astype("boolean")
    df["severe_crs"] = (grade >= s.severe_crs_grade).astype("boolean")
    df = df.merge(severe_crs_onset(cohort, graded), on="patient_id", how="left")
    if cohort.has("kinetics"):
        df = df.merge(kinetics.peak_expansion(cohort.kinetics), on="patient_id", how="left")
        df = df.merge(peak_timing(cohort.kinetics, df), on="patient_id", how="left")
    else:
        df["peak_copies"] = np.nan
        df["log10_peak"] = np.nan
        df["peak_day"] = np.nan
        df["peak_not_observed"] = pd.array([pd.NA] * len(df), dtype="boolean")
    if cohort.has_columns("product_cd4_pct", "product_cd8_pct"):
        df["cd4_cd8_ratio"] = df["product_cd4_pct"] / df["product_cd8_pct"]
    if cohort.has_columns("car_dose_per_kg"):
        df["log10_dose"] = np.log10(df["car_dose_per_kg"].where(df["car_dose_per_kg"] > 0))
    if cohort.has_columns("pfs_days", "pfs_event"):
        df["event_type"] = _event_type(df)
    return df


EXPANSION_WINDOW_DAYS = 28.0  # CAR-T expansion peaks within the first four weeks (Kymriah label: Tmax ~10 days)


def primary_graded(cohort: Cohort) -> pd.DataFrame:
    """The daily record graded under the cohort's own CRS scale with its options (crs.grade_daily)."""
    s = cohort.settings
    return crs.grade_daily(cohort.daily, system=s.crs_system, labs=cohort.labs, options=crs.cohort_options(s))


def severe_crs_onset(cohort: Cohort, graded: pd.DataFrame | None = None) -> pd.DataFrame:
    """First day graded at or above the severe grade (helpers.crs, the cohort's scale); NaN if never severe.

    A patient severe only through a CRS death (grade 5, no severe day recorded) has onset on the day of
    death (crs.summarise_patients' day of maximum). Without a daily record the onset is unknown (NaN).
    Columns: patient_id, severe_crs_onset_day.
    """
    p = cohort.patients[["patient_id"]].copy()
    if not cohort.grades_crs:
        return p.assign(severe_crs_onset_day=np.nan)
    s = cohort.settings
    graded = primary_graded(cohort) if graded is None else graded
    severe = graded[graded["grade"] >= s.severe_crs_grade]
    first = severe.groupby("patient_id")["day"].min().rename("severe_crs_onset_day")
    summary = crs.summarise_patients(graded, cohort.patients).set_index("patient_id")
    fatal = summary.loc[summary["max_grade"] >= s.severe_crs_grade, "day_of_max"]
    onset = first.combine_first(fatal.rename("severe_crs_onset_day"))
    return p.merge(onset.reset_index(), on="patient_id", how="left")


def peak_timing(kin: pd.DataFrame, pt: pd.DataFrame, window: float = EXPANSION_WINDOW_DAYS) -> pd.DataFrame:
    """Day of the (first) peak and whether the peak was not observed: it is the patient's last sample and the
    patient died within the expansion window, so expansion was cut short by death, not seen to its maximum.

    Columns: patient_id, peak_day, peak_not_observed (nullable boolean; missing without samples).
    """
    k = kin.dropna(subset=["car_copies_per_ug_dna", "day"]).sort_values(["patient_id", "day"], kind="stable")
    if k.empty:
        return pd.DataFrame({"patient_id": pt["patient_id"], "peak_day": np.nan,
                             "peak_not_observed": pd.array([pd.NA] * len(pt), dtype="boolean")})
    g = k.groupby("patient_id")
    peak_day = k.loc[g["car_copies_per_ug_dna"].idxmax(), ["patient_id", "day"]].set_index("patient_id")["day"]
    last_day = g["day"].max()
    out = pd.DataFrame({"peak_day": peak_day, "last_day": last_day}).reset_index()
    out = out.merge(pt[["patient_id", "os_days", "os_event"]], on="patient_id", how="left")
    died_early = out["os_event"].eq(1) & (out["os_days"] <= window)
    flag = (out["peak_day"] >= out["last_day"]) & died_early.fillna(False)
    return out.assign(peak_not_observed=flag.astype("boolean"))[["patient_id", "peak_day", "peak_not_observed"]]


def _remission_day(df: pd.DataFrame, landmark_day: float) -> tuple[pd.Series, pd.Series]:
    """Day remission was known: the recorded `remission_day`, else (assumed) the landmark day; NaN without remission."""
    recorded = df["remission_day"] if "remission_day" in df else pd.Series(np.nan, index=df.index)
    assumed = df["remission"] & recorded.isna()
    day = recorded.where(~assumed, float(landmark_day)).where(df["remission"])
    return day.astype(float), assumed


def _event_type(df: pd.DataFrame) -> pd.Series:
    """Competing-risk coding: a PFS event that is a death on the PFS day, not from relapse, is NRM (2)."""
    death_at_pfs = df["os_event"].eq(1) & df["os_days"].eq(df["pfs_days"])
    not_relapse = ~df.get("death_cause", pd.Series(pd.NA, index=df.index)).eq("relapse").fillna(False)
    nrm = df["pfs_event"].eq(1) & death_at_pfs & not_relapse
    out = np.where(df["pfs_event"].eq(1).fillna(False), np.where(nrm.fillna(False), 2, 1), 0)
    return pd.Series(out, index=df.index).where(df["pfs_event"].notna()).astype("Int64")


VITAL_COLUMNS = ("temp_max_c", "sbp_min_mmhg", "vasopressors", "vasopressin", "oxygen")


def vital_extremes(daily: pd.DataFrame, window: tuple[float, float] = (0, 28)) -> pd.DataFrame:
    """Per patient over the window: highest temperature, lowest SBP, most vasopressors, most oxygen support."""
    d = daily[(daily["day"] >= window[0]) & (daily["day"] <= window[1])]
    d = d.reindex(columns=[*d.columns, *(c for c in VITAL_COLUMNS if c not in d.columns)])  # absent = not recorded
    on_pressor = (d["vasopressors"].fillna(0) > 0) | (d["vasopressin"].fillna(0) > 0)
    d = d.assign(oxygen_rank=d["oxygen"].map(OXYGEN_RANK), on_pressor=on_pressor.astype(bool))
    g = d.groupby("patient_id")
    out = pd.DataFrame({
        "temp_max_c": g["temp_max_c"].max(),
        "sbp_min_mmhg": g["sbp_min_mmhg"].min(),
        "vasopressors_max": g["vasopressors"].max().astype("float"),
        "any_vasopressor": g["on_pressor"].any(),
        "any_oxygen": g["oxygen_rank"].max() > 0,
    })
    return out.reset_index()


def lab_extremes(labs: pd.DataFrame, window: tuple[float, float] = (0, 28)) -> pd.DataFrame:
    """Per patient over the window: the highest (`{analyte}_max`) and lowest (`{analyte}_min`) value of each analyte."""
    d = labs[(labs["day"] >= window[0]) & (labs["day"] <= window[1])]
    wide = d.groupby(["patient_id", "analyte"])["value"].agg(["max", "min"]).unstack("analyte")
    wide.columns = [f"{analyte}_{stat}" for stat, analyte in wide.columns]
    return wide[sorted(wide.columns)].reset_index()
