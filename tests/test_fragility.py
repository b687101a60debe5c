"""The fragility runs: seeds, the in-memory cohort, joblib in parallel, shares with exact CIs, the stored file, the CLI."""
from __future__ import annotations

import importlib.util
import tempfile

import pandas as pd
import pytest
from scipy.stats import beta

from helpers import fragility, holdup, simulate
from helpers.__main__ import main
from helpers.cohort import load_cohort
from helpers.published import FACT_IDS


def test_seeds_never_include_the_shipped_one():
    s = simulate.SHIPPED_SEED
    assert fragility.seeds_for(3, s - 1) == [s - 1, s + 1, s + 2]
    assert fragility.seeds_for(4) == [1, 2, 3, 4]


@pytest.mark.parametrize("n, seed", [(24, 3), (30, 11)])
def test_in_memory_cohort_gives_the_verdicts_of_the_cohort_loaded_from_files(n, seed):
    memory = fragility.simulated_cohort(n, seed)
    spec = simulate.SimulationSpec(n=n, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        simulate.write_cohort(simulate.simulate_cohort(spec), tmp, simulate.cohort_meta(spec))
        loaded = load_cohort(tmp, cache=False)
    pd.testing.assert_frame_equal(memory.patients, loaded.patients)
    for table in ("kinetics", "daily", "labs"):
        pd.testing.assert_frame_equal(getattr(memory, table), getattr(loaded, table))
    assert memory.settings == loaded.settings
    a, b = holdup.assess(memory, quick=True), holdup.assess(loaded, quick=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.fixture(scope="module")
def three_seeds():
    return fragility.run([24], [1, 2, 3], workers=1)


def test_run_judges_every_fact_twice_per_cohort(three_seeds):
    f = three_seeds
    assert list(f.columns) == fragility.COLUMNS
    assert len(f) == 3 * len(FACT_IDS) * 2
    assert set(f["analysis"]) == {"naive", "corrected"} and set(f["seed"]) == {1, 2, 3}
    naive_f1 = f[(f["fact"] == "F1") & (f["analysis"] == "naive")]["reproduced"]
    assert naive_f1.tolist() == [1, 1, 1]  # n = 24 is the published size, by construction
    assert f[(f["fact"] == "F1") & (f["analysis"] == "corrected")]["reproduced"].isna().all()


def test_one_cohort_matches_assess_on_the_same_seed(three_seeds):
    a = holdup.assess(fragility.simulated_cohort(24, 2), quick=True).set_index("fact")
    got = three_seeds[three_seeds["seed"] == 2].set_index(["fact", "analysis"])["reproduced"]
    for fact in FACT_IDS:
        for col, analysis in (("naive_reproduced", "naive"), ("corrected_reproduced", "corrected")):
            want = a.loc[fact, col]
            assert (pd.isna(got[(fact, analysis)]) if want is None else got[(fact, analysis)] == int(want))


def test_two_workers_give_the_same_rows_as_one(three_seeds):
    pd.testing.assert_frame_equal(fragility.run([24], [1, 2, 3], workers=2), three_seeds)


def test_shares_use_clopper_pearson_over_testable_cohorts():
    frame = pd.DataFrame({"n": 24, "seed": range(5), "fact": "F5", "analysis": "naive",
                          "reproduced": pd.array([1, 1, 1, 0, None], dtype="Int64")})
    row = fragility.shares(frame).iloc[0]
    assert (row["cohorts"], row["judged"], row["not_testable"], row["reproduced"]) == (5, 4, 1, 3)
    assert row["share"] == 0.75
    assert row["ci_low"] == pytest.approx(beta.ppf(0.025, 3, 2), rel=1e-9)
    assert row["ci_high"] == pytest.approx(beta.ppf(0.975, 4, 1), rel=1e-9)


def test_stored_result_round_trips_and_is_byte_identical(three_seeds, tmp_path):
    meta = fragility.run_meta([24], [1, 2, 3], 1, 3.0, None)
    a, b = tmp_path / "a", tmp_path / "b"
    fragility.write(three_seeds, meta, a)
    fragility.write(three_seeds.sample(frac=1, random_state=0), meta, b)
    assert (a / fragility.RESULT_FILE).read_bytes() == (b / fragility.RESULT_FILE).read_bytes()
    frame, info = fragility.read(a)
    pd.testing.assert_frame_equal(frame, three_seeds)
    assert info["excluded_seed"] == simulate.SHIPPED_SEED and info["cohorts"] == 3
    assert info["core_seconds_per_cohort"] == 1.0
    assert fragility.read(tmp_path / "none") is None


def test_command_line_writes_the_result(tmp_path, capsys):
    assert main(["fragility", "--seeds", "2", "--n", "20", "--workers", "1", "--out", str(tmp_path)]) == 0
    frame, info = fragility.read(tmp_path)
    assert set(frame["n"]) == {20} and set(frame["seed"]) == {1, 2} and info["sizes"] == [20]
    assert "core-seconds per cohort" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("dask") is not None, reason="dask is installed here")
def test_a_scheduler_without_dask_says_what_to_install():
    with pytest.raises(SystemExit, match=r"pip install 'dask\[distributed\]'"):
        fragility.run([24], [1], scheduler="tcp://127.0.0.1:8786")
