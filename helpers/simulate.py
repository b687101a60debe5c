"""Seeded generative simulator of a CD19 CAR-T B-ALL cohort that follows the data contract.

Mechanisms, not painted results: disease burden drives CAR-T expansion and CRS severity;
expansion drives remission and protects against relapse; a larger effector-memory share of the
product shortens remission; severe CRS brings its vital-sign, blood-count, coagulation, organ and
cytokine signature, and non-relapse deaths. The published margins (16/24 remissions, 13 MRD-negative,
19 CRS, 6 severe) are imposed by ranking latent propensities (the top-k patients respond), so the
counts are exact for n = 24 and proportional for other n. CRS grades are not stored: `daily.csv`
holds vitals and support from which the ASTCT grader recovers them.

Plausible ranges, with sources: ages and doses of adult/paediatric CD19 CAR-T ALL trials (Maude,
NEJM 2014 and 2018; Park, NEJM 2018); peak transgene 1e4-1e5 copies/ug at days 7-14 (Mueller,
Blood 2017; Kymriah label); CRS onset days 1-7 and cytokine/ferritin/CRP ranges (Teachey, Cancer
Discov 2016; Lee, BBMT 2019); follow-up of a few years as in phase I/II reports.

Toxicity beyond CRS, each from its own random stream (so every earlier value stays byte-identical):
ICANS domains in `daily.csv` (`add_icans`; incidence about 40 % with about 13-20 % severe, nearly all
during or after CRS, more likely with severe CRS and higher expansion, as reported for CD19 CAR-T in
B-ALL: Maude et al., NEJM 2018, neurological events 40 %, grade 3 13 %; Park et al., NEJM 2018,
severe neurotoxicity 42 %; Gust et al., Cancer Discov 2017, neurotoxicity with severe CRS and high
expansion); daily ANC on days 0-30 and CAR-HEMATOTOX baseline values on day -5 (`add_haematology`);
CD19+ B cells and IgG (`add_bcells`: aplasia while CAR-T cells persist; B-cell recovery precedes
CD19+ relapse, Maude et al., NEJM 2014; Finney et al., J Clin Invest 2019).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers import contract

# Published margins (F1-F3, F8), as proportions of n.
REMISSION_SHARE = 16 / 24
MRD_NEG_SHARE_OF_REMISSION = 13 / 16
CRS_SHARE = 19 / 24
SEVERE_SHARE = 6 / 24

DEFAULT_SEED = 20200101
SHIPPED_SEED = 20200109  # set by calibration (python -m helpers simulate --calibrate); see cohort.yml

KINETIC_DAYS = (0, 1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365, 540, 730, 1095)
LAB_DAYS = (-3, 0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 14, 21, 28)
LLOQ_COPIES = 50.0
ASSESSMENT_DAY = 28  # response assessment (cohort.yml landmark_day): who dies before it is not evaluable (NE)


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate: size, seed and which optional tables to write."""

    n: int = 24
    seed: int = DEFAULT_SEED
    tables: tuple[str, ...] = ("patients", "kinetics", "daily", "labs")
    reported_grades: bool = False  # write crs_grade_reported (for cohorts without daily.csv)


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std() if x.std() > 0 else x * 0.0


def _top(score: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k largest scores (stable on ties)."""
    mask = np.zeros(len(score), dtype=bool)
    if k > 0:
        mask[np.argsort(-score, kind="stable")[:k]] = True
    return mask


def simulate_baseline(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Baseline disease and infused-product characteristics, one row per patient."""
    age = np.clip(rng.normal(30, 15, n), 4, 68).round(0)
    blasts = (100 / (1 + np.exp(-rng.normal(-0.2, 1.7, n)))).clip(0.5, 97).round(1)
    subsets = rng.dirichlet(np.array([18.0, 30.0, 36.0, 16.0]) * 0.6, n) * 100
    cd4 = np.clip(rng.normal(42, 13, n), 8, 85)
    dose = rng.choice([0.5e6, 1e6, 2e6, 5e6], size=n, p=[0.2, 0.4, 0.25, 0.15])
    return pd.DataFrame({
        "age_years": age,
        "sex": rng.choice(["F", "M"], size=n, p=[0.45, 0.55]),
        "bm_blasts_pct": blasts,
        "ph_positive": rng.random(n) < 0.25,
        "prior_lines": np.clip(rng.poisson(1.5, n) + 1, 1, 8),
        "prior_allo_hsct": rng.random(n) < 0.3,
        "extramedullary": rng.random(n) < 0.1,
        "ldh_u_per_l": (180 + 9 * blasts * np.exp(rng.normal(0, 0.35, n))).round(0),
        "car_dose_per_kg": dose,
        "product_cd4_pct": cd4.round(1),
        "product_cd8_pct": np.clip(96 - cd4 + rng.normal(0, 3, n), 5, 92).round(1),
        "product_naive_pct": subsets[:, 0].round(1),
        "product_cm_pct": subsets[:, 1].round(1),
        "product_em_pct": subsets[:, 2].round(1),
        "product_eff_pct": (100 - subsets[:, :3].round(1).sum(axis=1)).round(1),
    })


def simulate_expansion_and_response(base: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Latent peak expansion; remission, MRD and CRS severity assigned by the published margins."""
    n = len(base)
    zb = _z(base["bm_blasts_pct"].to_numpy())
    zdose = _z(np.log10(base["car_dose_per_kg"].to_numpy()))
    log10_peak = 4.3 + 0.25 * zdose + 0.30 * zb + rng.normal(0, 0.5, n)
    zpeak = _z(log10_peak)
    remission = _top(1.5 * zpeak - 0.5 * zb + rng.normal(0, 0.8, n), round(n * REMISSION_SHARE))
    depth = np.where(remission, zpeak + rng.normal(0, 1.0, n), -np.inf)
    mrd_neg = _top(depth, round(round(n * REMISSION_SHARE) * MRD_NEG_SHARE_OF_REMISSION)) & remission
    cri = remission & ~mrd_neg & (rng.random(n) < 0.6)
    nr_kind = np.where(rng.random(n) < 0.25, "PR", "NR")
    crs_score = 1.0 * zb + 0.25 * zdose + rng.normal(0, 0.9, n)
    severe = _top(crs_score, round(n * SEVERE_SHARE))
    any_crs = _top(crs_score, round(n * CRS_SHARE))
    crs_grade = np.where(severe, np.where(crs_score > np.quantile(crs_score, 0.93), 4, 3),
                         np.where(any_crs, np.where(rng.random(n) < 0.5, 2, 1), 0))
    return pd.DataFrame({
        "log10_peak_true": log10_peak,
        "remission": remission,
        "best_response": np.where(remission, np.where(cri, "CRi", "CR"), nr_kind),
        "mrd_negative": pd.array(np.where(remission, mrd_neg, pd.NA), dtype="boolean"),
        "crs_target": crs_grade.astype(int),
    })


def simulate_outcomes(base: pd.DataFrame, lat: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """OS, PFS, allo-HSCT and cause of death from remission, expansion, EM share and severe CRS."""
    n = len(base)
    zpeak = _z(lat["log10_peak_true"].to_numpy())
    zem = _z(base["product_em_pct"].to_numpy())
    severe = lat["crs_target"].to_numpy() >= 3
    follow = rng.uniform(400, 1300, n)  # potential follow-up: staggered enrolment, one data cut
    pfs = np.empty(n)
    os_ = np.empty(n)
    cause = np.full(n, None, dtype=object)
    hsct = np.full(n, np.nan)
    crs_death = severe & ~lat["remission"].to_numpy() & (rng.random(n) < 0.4)
    for i in range(n):
        if crs_death[i]:
            pfs[i] = os_[i] = float(rng.integers(7, 13))
            cause[i] = "crs"
            continue
        if not lat["remission"].iat[i]:
            pfs[i] = rng.uniform(26, 60)
            os_[i] = pfs[i] + rng.exponential(110)
            cause[i] = "relapse"
        else:
            relapse = rng.exponential(420 * np.exp(-(1.3 * zem[i] - 1.0 * zpeak[i])))
            nrm = rng.exponential(200) if severe[i] else rng.exponential(9000)
            if nrm < relapse:
                pfs[i] = os_[i] = 30 + nrm
                cause[i] = "infection"
            else:
                pfs[i] = 30 + relapse
                os_[i] = pfs[i] + rng.exponential(260)
                cause[i] = "relapse"
            if rng.random() < 0.3 and pfs[i] > 120:
                hsct[i] = float(rng.integers(60, 120))
        if os_[i] > follow[i]:
            cause[i] = None
    os_event = os_ <= follow
    os_days = np.minimum(os_, follow)
    pfs_event = pfs <= follow
    pfs_days = np.minimum(pfs, follow)
    return pd.DataFrame({
        "os_days": np.floor(os_days), "os_event": os_event.astype(int),
        "pfs_days": np.floor(pfs_days), "pfs_event": pfs_event.astype(int),
        "hsct_day": hsct, "death_cause": cause,
    })


def _crs_course(grade: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """Onset day, duration in days and day of maximum grade for a target CRS grade."""
    onset = int(min(7, 1 + rng.poisson(0.8 if grade >= 3 else 2.0)))
    duration = int(rng.integers(5, 10) if grade >= 3 else rng.integers(2, 6))
    peak = onset + (int(rng.integers(1, 3)) if grade >= 2 and duration > 2 else 0)
    return onset, duration, peak


def _peak_day_support(grade: int, rng: np.random.Generator) -> dict:
    """Vital-sign support on the day of maximum grade that makes the ASTCT grade equal `grade`."""
    if grade == 2:
        if rng.random() < 0.5:
            return {"sbp_min_mmhg": float(rng.integers(78, 89))}
        return {"oxygen": "low_flow", "o2_flow_l_min": float(rng.integers(2, 5)), "fio2_pct": 30.0}
    if grade == 3:
        if rng.random() < 0.6:
            return {"sbp_min_mmhg": float(rng.integers(72, 86)), "vasopressors": 1}
        return {"oxygen": str(rng.choice(["high_flow", "facemask"])), "o2_flow_l_min": 10.0, "fio2_pct": 50.0}
    if grade == 4:
        return {"sbp_min_mmhg": float(rng.integers(60, 75)), "vasopressors": 2,
                "oxygen": "bipap", "o2_flow_l_min": 15.0, "fio2_pct": 70.0}
    return {}


def remission_days(remission: np.ndarray, pfs_days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Day remission was first documented: marrow assessments at days 14, 21, 28 or 35 (most at 28),
    never after relapse. Drawn from its own random stream so the other simulated values stay as they were."""
    day = rng.choice([14.0, 21.0, 28.0, 35.0], size=len(remission), p=[0.15, 0.25, 0.45, 0.15])
    return np.where(remission, np.minimum(day, pfs_days), np.nan)


def simulate_daily(patient_ids: list[str], crs_target: np.ndarray, last_day: np.ndarray,
                   rng: np.random.Generator, days: int = 21) -> pd.DataFrame:
    """Daily vitals and support, days -1..21 (or to death), from which the grader recovers CRS grades.

    Fever (>= 38 C) accompanies every CRS day until tocilizumab; after it fever is masked while
    hypotension/hypoxia may persist a day (the ASTCT 'fever not required' rule). Some patients
    without CRS have a fever with another documented cause, which must not count.
    """
    rows = []
    for pid, grade, end in zip(patient_ids, crs_target, last_day):
        grade = int(min(grade, 4))
        onset, duration, peak = _crs_course(grade, rng) if grade > 0 else (None, 0, None)
        toci = peak if grade >= 2 else None
        other_fever = int(rng.integers(8, 15)) if grade == 0 and rng.random() < 0.4 else None
        for day in range(-1, int(min(days, end)) + 1):
            r = {"patient_id": pid, "day": float(day), "temp_max_c": round(float(rng.normal(36.9, 0.3)), 1),
                 "sbp_min_mmhg": float(rng.integers(98, 128)), "vasopressors": 0, "vasopressin": 0,
                 "oxygen": "none", "o2_flow_l_min": 0.0, "fio2_pct": 21.0, "tocilizumab": 0,
                 "steroids": 0, "fever_other_cause": 0}
            r["temp_max_c"] = min(r["temp_max_c"], 37.8)
            if grade > 0 and onset <= day < onset + duration:
                masked = toci is not None and day > toci
                r["temp_max_c"] = round(float(rng.uniform(37.2, 37.8) if masked else
                                              rng.uniform(38.2, 39.4 + 0.4 * (grade >= 3))), 1)
                if day == peak or (grade >= 3 and day == peak + 1):
                    r.update(_peak_day_support(grade, rng))
                r["tocilizumab"] = int(toci is not None and day == toci)
                r["steroids"] = int(grade >= 3 and day in (peak, peak + 1))
            if other_fever is not None and day == other_fever:
                r["temp_max_c"], r["fever_other_cause"] = 38.6, 1
            rows.append(r)
    return pd.DataFrame(rows)


def add_support_detail(daily: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Optional daily columns for Lee 2014 and Penn: vasopressor dose and fluid boluses.

    Drawn from their own random stream so that adding them leaves every other simulated value as it was.
    Doses: norepinephrine-equivalent 5-25 ug/min with one pressor, 15-40 with two (high dose from 20,
    Lee 2014 footnote); 1-3 boluses on hypotensive days.
    """
    d = daily.copy()
    pressors = d["vasopressors"] + d["vasopressin"]
    one = rng.uniform(5, 25, len(d))
    two = rng.uniform(15, 40, len(d))
    d["norepi_equiv_ug_min"] = np.where(pressors == 0, np.nan, np.where(d["vasopressors"] >= 2, two, one)).round(1)
    hypotensive = (d["sbp_min_mmhg"] < 90) | (pressors > 0)
    d["fluid_boluses"] = np.where(hypotensive, rng.integers(1, 4, len(d)), 0)
    return d


def _pulse(days: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((days - centre) / width) ** 2))


# analyte: (baseline median, multiplier at peak by CRS group none/mild/severe, direction)
_LAB_MODEL = {
    "il6": (6.0, (2.0, 25.0, 400.0), "up"), "ifng": (8.0, (2.0, 15.0, 150.0), "up"),
    "il10": (5.0, (2.0, 10.0, 80.0), "up"), "tnfa": (6.0, (1.3, 2.5, 6.0), "up"),
    "crp": (6.0, (3.0, 12.0, 35.0), "up"), "ferritin": (700.0, (1.3, 2.5, 12.0), "up"),
    "procalcitonin": (0.08, (1.5, 4.0, 40.0), "up"), "d_dimer": (0.8, (1.5, 3.0, 20.0), "up"),
    "pt": (12.0, (1.02, 1.06, 1.4), "up"), "aptt": (32.0, (1.02, 1.08, 1.5), "up"),
    "alt": (25.0, (1.2, 1.8, 8.0), "up"), "ast": (24.0, (1.2, 1.9, 9.0), "up"),
    "bilirubin": (9.0, (1.1, 1.3, 4.0), "up"), "creatinine": (60.0, (1.0, 1.1, 2.4), "up"),
    "ldh": (300.0, (1.3, 2.0, 4.0), "up"),
    "fibrinogen": (3.2, (0.9, 0.8, 0.35), "down"), "wbc": (3.0, (0.25, 0.2, 0.06), "down"),
    "anc": (1.5, (0.2, 0.12, 0.03), "down"), "hemoglobin": (95.0, (0.9, 0.85, 0.7), "down"),
    "platelets": (90.0, (0.6, 0.45, 0.12), "down"),
}
_LAB_DECIMALS = {"pt": 1, "aptt": 1, "fibrinogen": 2, "procalcitonin": 3, "wbc": 2, "anc": 2, "d_dimer": 2,
                 "bilirubin": 1}


def simulate_labs(patient_ids: list[str], crs_target: np.ndarray, peak_day: np.ndarray,
                  base: pd.DataFrame, last_day: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Lab time courses: pulses centred on the CRS peak (cytokines, CRP, ferritin, organ and coagulation
    markers) and lymphodepletion nadirs for blood counts, deeper with severe CRS."""
    days = np.array(LAB_DAYS, dtype=float)
    rows = []
    for i, pid in enumerate(patient_ids):
        group = 0 if crs_target[i] == 0 else (1 if crs_target[i] < 3 else 2)
        keep = days <= last_day[i]
        burden = base["bm_blasts_pct"].iat[i] / 100
        for analyte, (median, mult, direction) in _LAB_MODEL.items():
            b = median * np.exp(rng.normal(0, 0.25))
            if analyte == "ldh":
                b = base["ldh_u_per_l"].iat[i]
            if analyte == "platelets":
                b *= 1.4 - burden
            m = mult[group] * np.exp(rng.normal(0, 0.25 if group else 0.1))
            centre = peak_day[i] + (4 if direction == "down" else 1) if group else 6.0
            width = 3.5 if direction == "down" else 2.5
            shape = _pulse(days, centre, width + 1.5 * (group == 2))
            values = b * (1 + (m - 1) * shape) * np.exp(rng.normal(0, 0.08, len(days)))
            dec = _LAB_DECIMALS.get(analyte, 0 if median >= 20 else 1)
            for d, v in zip(days[keep], values[keep]):
                rows.append({"patient_id": pid, "day": d, "analyte": analyte,
                             "value": round(float(max(v, 0.01)), dec), "unit": contract.ANALYTES[analyte][0]})
    return pd.DataFrame(rows)


def simulate_kinetics(patient_ids: list[str], log10_peak: np.ndarray, remission: np.ndarray,
                      pfs_days: np.ndarray, last_day: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """qPCR transgene profiles: log-linear expansion to a peak at days 7-14, biphasic contraction,
    loss of detection after relapse; values under the limit of quantification recorded as 0."""
    rows = []
    for i, pid in enumerate(patient_ids):
        tmax = float(np.clip(rng.normal(10.5, 2.0), 6, 16))
        cmax = 10 ** log10_peak[i]
        doubling = rng.uniform(0.8, 1.6)
        fast, slow = rng.uniform(0.12, 0.25), rng.uniform(0.004, 0.012) * (1 if remission[i] else 3)
        for day in KINETIC_DAYS:
            if day > last_day[i]:
                break
            if day <= tmax:
                c = cmax * 2 ** (-(tmax - day) / doubling)
            else:
                c = cmax * (0.9 * np.exp(-fast * (day - tmax)) + 0.1 * np.exp(-slow * (day - tmax)))
            if day > pfs_days[i] and day > 28:
                c *= 0.05
            c *= np.exp(rng.normal(0, 0.25))
            rows.append({"patient_id": pid, "day": float(day),
                         "car_copies_per_ug_dna": float(round(c)) if c >= LLOQ_COPIES else 0.0})
    return pd.DataFrame(rows)


def simulate_cohort(spec: SimulationSpec = SimulationSpec()) -> dict[str, pd.DataFrame]:
    """Simulate every table of a cohort (contract column names and order) from one seed."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n
    ids = [f"SIM-{i + 1:04d}" for i in range(n)]
    base = simulate_baseline(n, rng)
    lat = simulate_expansion_and_response(base, rng)
    out = simulate_outcomes(base, lat, rng)
    patients = pd.concat([pd.DataFrame({"patient_id": ids}), base,
                          lat[["best_response", "mrd_negative"]], out], axis=1)
    died_early = ~lat["remission"] & out["os_event"].eq(1) & (out["os_days"] < ASSESSMENT_DAY)
    patients.loc[died_early, "best_response"] = "NE"  # no response assessment: not evaluable (no RNG drawn)
    patients["remission_day"] = remission_days(lat["remission"].to_numpy(), out["pfs_days"].to_numpy(),
                                               np.random.default_rng([spec.seed, 2]))
    if spec.reported_grades:
        patients["crs_grade_reported"] = np.where(out["death_cause"].eq("crs"), 5, lat["crs_target"])
    crs_target = lat["crs_target"].to_numpy()
    last_day = out["os_days"].to_numpy()
    daily = simulate_daily(ids, crs_target, last_day, rng)
    daily = add_support_detail(daily, np.random.default_rng([spec.seed, 1]))
    peak_day = _peak_days(daily, ids)
    labs = simulate_labs(ids, crs_target, peak_day, base, last_day, rng)
    kinetics = simulate_kinetics(ids, lat["log10_peak_true"].to_numpy(), lat["remission"].to_numpy(),
                                 out["pfs_days"].to_numpy(), last_day, rng)
    daily = add_icans(daily, patients, crs_target, lat["log10_peak_true"].to_numpy(),
                      np.random.default_rng([spec.seed, 3]))
    extra = [add_haematology(labs, last_day, ids, np.random.default_rng([spec.seed, 4])),
             add_bcells(ids, lat["remission"].to_numpy(), out["pfs_days"].to_numpy(), out["pfs_event"].to_numpy(),
                        last_day, np.random.default_rng([spec.seed, 5]))]
    labs = pd.concat([labs, *(e for e in extra if len(e))], ignore_index=True)  # appended: earlier rows first
    tables = {"patients": _contract_order(patients, "patients"), "kinetics": kinetics,
              "daily": daily, "labs": labs}
    return {name: df for name, df in tables.items() if name in spec.tables}


ICANS_SHARE = 0.40  # Maude et al., NEJM 2018 (ELIANA): neurological events in 40 %
SEVERE_ICANS_SHARE = 0.15  # ELIANA grade 3 13 %; Park et al., NEJM 2018 severe neurotoxicity 42 % (adults)
_ICE_BY_GRADE = {1: (7, 9), 2: (3, 6), 3: (0, 2)}
_CAPD_BY_GRADE = {1: (1, 8), 2: (1, 8), 3: (9, 16)}


def _icans_targets(crs_target: np.ndarray, log10_peak: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Maximum ICANS grade per patient: ranked propensity from CRS grade and expansion (ICANS needs CRS)."""
    n = len(crs_target)
    score = 1.2 * _z(crs_target.astype(float)) + 0.6 * _z(log10_peak) + rng.normal(0, 0.7, n)
    score = np.where(crs_target > 0, score, -np.inf)
    any_ = _top(score, min(round(n * ICANS_SHARE), int((crs_target > 0).sum())))
    severe = _top(np.where(any_, score, -np.inf), round(n * SEVERE_ICANS_SHARE)) & any_
    grade = np.where(severe, np.where(rng.random(n) < 0.15, 4, 3), np.where(any_, rng.choice([1, 2], n), 0))
    return grade.astype(int)


def _icans_day(grade: int, child: bool, rng: np.random.Generator) -> dict:
    """The ICANS domains of one assessed day at `grade` (0 = normal examination)."""
    r = {"ice_score": np.nan if child else 10.0, "capd_score": 0.0 if child else np.nan, "consciousness": "alert",
         "seizure": "none", "motor_weakness": 0, "cerebral_edema": "none"}
    if grade == 0:
        return r
    if grade == 4:
        r.update({"ice_score": np.nan, "capd_score": np.nan, "consciousness": "unarousable"})
        if rng.random() < 0.3:
            r["cerebral_edema"] = "diffuse"
        return r
    lo, hi = (_CAPD_BY_GRADE if child else _ICE_BY_GRADE)[grade]
    r["capd_score" if child else "ice_score"] = float(rng.integers(lo, hi + 1))
    if grade == 2 and child:
        r["consciousness"] = "awakens_to_voice"
    if grade == 3 and rng.random() < 0.25:
        r["seizure"] = "rapidly_resolving"
    return r


def add_icans(daily: pd.DataFrame, patients: pd.DataFrame, crs_target: np.ndarray, log10_peak: np.ndarray,
              rng: np.random.Generator) -> pd.DataFrame:
    """Optional ICANS columns (ASTCT 2019 domains), assessed daily from day 0: onset 1-4 days after the first
    CRS fever, 2-7 days long, peak grade on the middle day; children under 12 scored by CAPD."""
    target = _icans_targets(crs_target, log10_peak, rng)
    ids = patients["patient_id"].tolist()
    fever = daily[(daily["temp_max_c"] >= 38) & (daily["fever_other_cause"] == 0)]
    crs_onset = fever.groupby("patient_id")["day"].min()
    cols = {c: [] for c in ("ice_score", "capd_score", "consciousness", "seizure", "motor_weakness", "cerebral_edema")}
    course = {}
    for pid, g in zip(ids, target):
        onset = crs_onset.get(pid, 3.0) + float(rng.integers(1, 5))
        course[pid] = (int(g), onset, float(rng.integers(2, 8)))
    ages = dict(zip(ids, patients["age_years"]))
    for pid, day in zip(daily["patient_id"], daily["day"]):
        g, onset, length = course[pid]
        if day < 0:
            for c in cols:
                cols[c].append(np.nan if c != "consciousness" and c not in ("seizure", "cerebral_edema") else None)
            continue
        rel = day - onset
        today = 0
        if g > 0 and 0 <= rel < length:
            mid = (length - 1) // 2
            today = g if rel == mid else max(1, g - 1 - int(abs(rel - mid) > 1))
        for c, v in _icans_day(today, ages[pid] < 12, rng).items():
            cols[c].append(v)
    out = daily.copy()
    for c, v in cols.items():
        out[c] = pd.array(v, dtype="Int64") if c == "motor_weakness" else v
    return out


def _anc_between(days: np.ndarray, values: np.ndarray, t: float, rng: np.random.Generator) -> float:
    """ANC on an unsampled day: log-linear between the neighbouring samples (after day 28: slow recovery)."""
    left, right = days[days < t], days[days > t]
    if len(right) == 0:
        v = values[days == left[-1]][0] * 1.08 ** (t - left[-1])
    else:
        a, b = left[-1], right[0]
        va, vb = values[days == a][0], values[days == b][0]
        v = float(np.exp(np.log(va) + (t - a) / (b - a) * (np.log(vb) - np.log(va))))
    return v * float(np.exp(rng.normal(0, 0.06)))


def add_haematology(labs: pd.DataFrame, last_day: np.ndarray, ids: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Extra lab rows: ANC on every day 0-30 not already sampled (dense enough for early ICAHT), and the
    CAR-HEMATOTOX inputs on day -5, before lymphodepletion (the day -3 value with pre-chemotherapy noise)."""
    rows = []
    for pid, end in zip(ids, last_day):
        mine = labs[labs["patient_id"] == pid]
        a = mine[mine["analyte"] == "anc"]
        days, values = a["day"].to_numpy(dtype=float), a["value"].to_numpy(dtype=float)
        for analyte in ("anc", "hemoglobin", "platelets", "crp", "ferritin"):
            v = mine.loc[(mine["analyte"] == analyte) & (mine["day"] == -3), "value"]
            if len(v):
                lift = 1.3 if analyte == "anc" else 1.0
                dec = _LAB_DECIMALS.get(analyte, 0 if _LAB_MODEL[analyte][0] >= 20 else 1)
                rows.append({"patient_id": pid, "day": -5.0, "analyte": analyte, "unit": contract.ANALYTES[analyte][0],
                             "value": round(float(v.iloc[0]) * lift * float(np.exp(rng.normal(0, 0.15))), dec)})
        for t in range(0, 31):
            if t > end or (days == t).any() or len(days) == 0 or days.min() > t:
                continue
            rows.append({"patient_id": pid, "day": float(t), "analyte": "anc", "unit": "10^9/L",
                         "value": round(max(_anc_between(days, values, float(t), rng), 0.01), 2)})
    return pd.DataFrame(rows, columns=["patient_id", "day", "analyte", "value", "unit"])


BCELL_DAYS = (-5, 14, 28, 60, 90, 180, 270, 365, 540, 730)


def add_bcells(ids: list[str], remission: np.ndarray, pfs_days: np.ndarray, pfs_event: np.ndarray,
               last_day: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """CD19+ B cells (cells/uL) and IgG (g/L): aplasia from day 14 while CAR-T cells persist; in remission,
    recovery precedes relapse (by 30-180 days, not before day 28) or comes late (mean 18 months) without it;
    without remission, B cells recover by day 28-60. IgG falls during aplasia and recovers after it."""
    rows = []
    for i, pid in enumerate(ids):
        if remission[i]:
            relapse = pfs_event[i] == 1
            recovery = max(28.0, pfs_days[i] - rng.uniform(30, 180)) if relapse else 30 + rng.exponential(540)
        else:
            recovery = float(rng.choice([28.0, 60.0]))
        igg0 = rng.uniform(5.5, 10.0)
        for day in BCELL_DAYS:
            if day > last_day[i]:
                break
            aplastic = 14 <= day < recovery
            b = rng.lognormal(np.log(1.5), 0.6) if aplastic else rng.lognormal(np.log(120 if day > 0 else 60), 0.7)
            igg = igg0 * (0.45 if aplastic and day >= 60 else (0.75 if aplastic else 1.0)) * np.exp(rng.normal(0, 0.1))
            rows.append({"patient_id": pid, "day": float(day), "analyte": "cd19_b_cells", "value": round(float(b), 1),
                         "unit": "cells/uL"})
            rows.append({"patient_id": pid, "day": float(day), "analyte": "igg", "value": round(float(igg), 1),
                         "unit": "g/L"})
    return pd.DataFrame(rows, columns=["patient_id", "day", "analyte", "value", "unit"])


def _peak_days(daily: pd.DataFrame, ids: list[str]) -> np.ndarray:
    """Day of the most intense support per patient (CRS peak), 6 when there was no CRS."""
    stress = (daily["temp_max_c"] >= 38).astype(int) + (daily["sbp_min_mmhg"] < 90) + daily["vasopressors"] \
        + (daily["oxygen"] != "none")
    d = daily.assign(stress=stress)
    peaks = {}
    for pid, g in d.groupby("patient_id", sort=False):
        peaks[pid] = float(g.loc[g["stress"].idxmax(), "day"]) if g["stress"].max() > 0 else 6.0
    return np.array([peaks.get(pid, 6.0) for pid in ids])


def _contract_order(df: pd.DataFrame, table: str) -> pd.DataFrame:
    names = [c for c in contract.TABLES[table].names if c in df]
    return df[names]


def _csv_text(df: pd.DataFrame) -> str:
    """Deterministic CSV text: integral float columns written as integers, booleans as true/false."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if str(s.dtype) in ("bool", "boolean"):
            out[col] = s.map(lambda v: "" if pd.isna(v) else ("true" if v else "false"))
        elif pd.api.types.is_float_dtype(s) and np.all(np.isnan(s) | (s == np.round(s))):
            out[col] = s.astype("Int64")
    return out.to_csv(index=False, lineterminator="\n")


def write_cohort(tables: dict[str, pd.DataFrame], out_dir: str | Path, meta: dict) -> list[Path]:
    """Write the tables and cohort.yml into `out_dir` (created); return the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in tables.items():
        path = out / f"{name}.csv"
        path.write_text(_csv_text(df), encoding="utf-8", newline="\n")
        written.append(path)
    path = out / "cohort.yml"
    path.write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8", newline="\n")
    written.append(path)
    return written


def cohort_meta(spec: SimulationSpec) -> dict:
    """cohort.yml content for a simulated cohort: name, simulated flag, provenance and settings."""
    return {
        "name": f"Simulated CD19 CAR-T B-ALL cohort (n={spec.n}, seed {spec.seed})",
        "simulated": True,
        "source": ("Simulated by helpers.simulate to match the published counts and directions of "
                   "NCT02349698 (ASH 2020 abstract, Blood 136 Suppl 1: 9). Not patient data. The shipped seed "
                   "was chosen by calibration: the first seed from the default whose cohort reproduces the "
                   "published facts in the book's own analyses (python -m helpers simulate --calibrate)."),
        "seed": spec.seed,
        "severe_crs_grade": 3,
        "crs_system": "astct",
        "landmark_day": ASSESSMENT_DAY,
        "remission_responses": ["CR", "CRi"],
        "censor_at_hsct": False,
    }


def calibrate(spec: SimulationSpec, max_tries: int = 3000, log=print) -> tuple[SimulationSpec, int]:
    """Try seeds from spec.seed upward; return the first whose cohort reproduces every published fact.

    Calibration, not evidence: the book says that the shipped seed was chosen this way.
    """
    import tempfile
    from dataclasses import replace

    from helpers.cohort import load_cohort
    from helpers.published import check_facts

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max_tries):
            candidate = replace(spec, seed=spec.seed + i)
            write_cohort(simulate_cohort(candidate), tmp, cohort_meta(candidate))
            facts = check_facts(load_cohort(tmp))
            if facts["reproduced"].eq(True).all():
                return candidate, i + 1
            if log and (i + 1) % 50 == 0:
                log(f"  tried {i + 1} seeds")
    raise RuntimeError(f"no seed in {spec.seed}..{spec.seed + max_tries - 1} reproduces every published fact")
