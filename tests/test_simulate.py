"""The simulated cohort: published counts exactly, byte-identical regeneration, parameters honoured."""
from __future__ import annotations

import pandas as pd
import yaml

from helpers import derive, simulate
from helpers.cohort import load_cohort
from helpers.paths import SHIPPED_COHORT


def test_shipped_cohort_matches_published_counts():
    """F1-F3 and F8: 24 patients, 16 remissions, 13 MRD-negative, 19 CRS of which 6 severe (ASTCT, graded)."""
    cohort = load_cohort(SHIPPED_COHORT)
    pt = derive.patient_table(cohort)
    assert len(pt) == 24
    assert int(pt["remission"].sum()) == 16
    assert int((pt["mrd_negative"].eq(True) & pt["remission"]).sum()) == 13
    assert pt["crs_grade_source"].iat[0] == "graded from daily record (ASTCT 2019 consensus)"
    assert int(pt["crs_any"].sum()) == 19
    assert int(pt["severe_crs"].sum()) == 6
    assert "crs_grade_reported" not in cohort.patients  # grades are computed, not stored


def test_regeneration_with_shipped_seed_is_byte_identical(tmp_path):
    meta = yaml.safe_load((SHIPPED_COHORT / "cohort.yml").read_text(encoding="utf-8"))
    assert meta["seed"] == simulate.SHIPPED_SEED
    spec = simulate.SimulationSpec(seed=meta["seed"])
    simulate.write_cohort(simulate.simulate_cohort(spec), tmp_path, simulate.cohort_meta(spec))
    shipped = sorted(p.name for p in SHIPPED_COHORT.iterdir() if p.suffix in (".csv", ".yml"))
    assert sorted(p.name for p in tmp_path.iterdir()) == shipped
    for name in shipped:
        assert (tmp_path / name).read_bytes() == (SHIPPED_COHORT / name).read_bytes(), name


def test_large_degraded_cohort_has_requested_shape(tmp_path):
    spec = simulate.SimulationSpec(n=300, seed=7, tables=("patients", "kinetics"), reported_grades=True)
    tables = simulate.simulate_cohort(spec)
    assert set(tables) == {"patients", "kinetics"}
    p = tables["patients"]
    assert len(p) == 300
    assert int(p["best_response"].isin(["CR", "CRi"]).sum()) == round(300 * 16 / 24)  # 200
    assert int((p["crs_grade_reported"] >= 1).sum()) == round(300 * 19 / 24)  # 238
    assert int((p["crs_grade_reported"] >= 3).sum()) == round(300 * 6 / 24)  # 75
    simulate.write_cohort(tables, tmp_path, simulate.cohort_meta(spec))
    cohort = load_cohort(tmp_path)
    assert cohort.daily is None and cohort.labs is None
    assert derive.patient_table(cohort)["crs_grade_source"].iat[0] == "as reported by the centre"


def test_grader_recovers_every_simulated_grade():
    """The daily record is written so that the ASTCT grader recovers the simulator's intended grade."""
    spec = simulate.SimulationSpec(n=120, seed=11)
    tables = simulate.simulate_cohort(spec)
    rng_tables = simulate.simulate_cohort(spec)
    assert tables["daily"].equals(rng_tables["daily"])  # same seed, same record
    from helpers import crs

    graded = crs.crs_table(tables["daily"], tables["patients"])
    severe = int((graded["max_grade"] >= 3).sum())
    assert severe == round(120 * 6 / 24)  # 30
    assert int((graded["max_grade"] >= 1).sum()) == round(120 * 19 / 24)  # 95


def test_shipped_cohort_rates_with_exact_intervals():
    """The published rates with Clopper-Pearson 95% CIs (values in shared/reference/definitions.md)."""
    from helpers import response

    pt = derive.patient_table(load_cohort(SHIPPED_COHORT))
    rates = response.response_rates(pt).set_index("term")["formatted"]
    assert rates["Remission"] == "16/24 (66.7%, 95% CI 44.7-84.4)"
    assert rates["MRD-negative remission, of all patients"] == "13/24 (54.2%, 95% CI 32.8-74.4)"
    assert rates["MRD-negative, of remissions"] == "13/16 (81.2%, 95% CI 54.4-96.0)"


def test_shipped_cohort_reproduces_every_published_fact():
    """F1-F10 hold when the book's own analyses run on the shipped cohort (the calibration target)."""
    from helpers import published

    facts = published.check_facts(load_cohort(SHIPPED_COHORT))
    assert facts["reproduced"].tolist() == [True] * 10, facts[["fact", "computed"]].to_string()


def test_shipped_cohort_crs_incidence_with_exact_intervals():
    from helpers import crs_severity

    pt = derive.patient_table(load_cohort(SHIPPED_COHORT))
    inc = crs_severity.incidence(pt, 3)["formatted"].tolist()
    assert inc == ["19/24 (79.2%, 95% CI 57.8-92.9)", "6/24 (25.0%, 95% CI 9.8-46.7)",
                   "6/19 (31.6%, 95% CI 12.6-56.6)"]


def test_toxicity_streams_leave_every_earlier_value_unchanged(monkeypatch):
    """ICANS, dense ANC, CAR-HEMATOTOX inputs and B cells come from their own RNG streams: without them
    every other simulated value is the same (the shipped cohort's earlier columns stay byte-identical)."""
    spec = simulate.SimulationSpec(n=30, seed=13)
    full = simulate.simulate_cohort(spec)
    monkeypatch.setattr(simulate, "add_icans", lambda daily, *a: daily)
    monkeypatch.setattr(simulate, "add_haematology", lambda labs, *a: labs.iloc[0:0])
    monkeypatch.setattr(simulate, "add_bcells", lambda *a: pd.DataFrame(columns=["patient_id", "day", "analyte",
                                                                                 "value", "unit"]))
    bare = simulate.simulate_cohort(spec)
    for name in ("patients", "kinetics"):
        assert full[name].equals(bare[name]), name
    assert full["daily"][list(bare["daily"].columns)].equals(bare["daily"])
    assert full["labs"].iloc[: len(bare["labs"])].reset_index(drop=True).equals(bare["labs"])


def test_shipped_seed_toxicity_in_published_ranges():
    """ICANS about 40 % (severe 13-20 %) and nearly all with CRS (Maude, NEJM 2018); ANC dense enough to grade
    early ICAHT for every patient; B-cell counts for the patients alive at day 14."""
    from helpers import crs, haematotox, icans

    t = simulate.simulate_cohort(simulate.SimulationSpec(seed=simulate.SHIPPED_SEED))
    graded = crs.summarise_patients(crs.grade_daily(t["daily"]), t["patients"])
    s = icans.summarise_patients(icans.grade_daily(t["daily"], t["patients"]), graded, t["patients"])
    assert 0.3 <= s["icans_any"].mean() <= 0.5 and 0.1 <= (s["max_grade"] >= 3).mean() <= 0.25
    assert set(s.loc[s["icans_any"], "timing"]) <= {"during CRS", "after CRS resolved"}
    res = haematotox.early_icaht(t["labs"], t["patients"])
    assert (res["status"] == "graded").all()
    assert (haematotox.hematotox(t["labs"], t["patients"])["risk"] != "inputs incomplete").all()
    b = t["labs"][t["labs"]["analyte"] == "cd19_b_cells"]
    assert b["patient_id"].nunique() == len(t["patients"])
