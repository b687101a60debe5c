"""How fragile is each published fact? The share of cohorts from the calibrated simulator that reproduce it.

The shipped cohort's seed was chosen because it reproduces every fact (calibration), so that cohort
cannot say how often a study like it would. Here the same simulator draws cohorts from other seeds, at
the published size and at any other, and each is judged by `helpers.holdup.assess` (the naive and the
corrected verdict of every fact, as on the page "Does it hold up?"). The share reproducing a fact, with
its Clopper-Pearson 95% CI, is how robust the fact is to sampling; at a centre's own cohort size it is the
power of that centre's cohort to show it, if the simulator's mechanisms were true.

`python -m helpers fragility --seeds 500 --workers 2` runs it with joblib (processes on this machine,
or a Dask cluster through joblib's dask backend with `--scheduler tcp://host:8786`) and writes a result
file the book reads; the book build never reruns it.
"""
from __future__ import annotations

import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import contract, simulate, stats
from helpers.cohort import Cohort, Settings, _pseudonymise, _typed
from helpers.paths import DATA_DIR

RESULT_DIR = DATA_DIR / "fragility"
RESULT_FILE = "fragility.csv"
RUN_FILE = "run.json"
ANALYSES = ("naive", "corrected")
COLUMNS = ["n", "seed", "fact", "analysis", "reproduced"]


def seeds_for(count: int, start: int = 1) -> list[int]:
    """`count` seeds from `start` upward, never the shipped cohort's seed (calibration chose it)."""
    out, seed = [], start
    while len(out) < count:
        if seed != simulate.SHIPPED_SEED:
            out.append(seed)
        seed += 1
    return out


def cohort_from_tables(tables: dict[str, pd.DataFrame], meta: dict) -> Cohort:
    """A Cohort straight from simulated tables, typed and pseudonymised as the loader does, without files.

    The simulator writes contract-conforming tables, so validation has nothing to find; skipping the
    file round trip and the checks makes one cohort several times cheaper. tests/test_fragility.py checks
    that the verdicts equal those on the same cohort written to disk and loaded.
    """
    typed = {}
    for name, df in tables.items():
        table = contract.TABLES[name]
        cols = {c.name: c for c in table.columns}
        typed[name] = pd.DataFrame({c: _typed(df[c], cols[c]) if c in cols else df[c] for c in df.columns})
    typed = _pseudonymise(typed)
    for name in ("kinetics", "daily", "labs"):
        if name in typed:
            typed[name] = typed[name].sort_values(list(contract.TABLES[name].key)).reset_index(drop=True)
    settings = Settings(severe_crs_grade=meta["severe_crs_grade"], crs_system=meta["crs_system"],
                        landmark_day=float(meta["landmark_day"]),
                        remission_responses=tuple(meta["remission_responses"]), censor_at_hsct=meta["censor_at_hsct"])
    return Cohort(name=meta["name"], simulated=True, source=meta["source"], settings=settings, seed=meta["seed"],
                  patients=typed["patients"].reset_index(drop=True), kinetics=typed.get("kinetics"),
                  daily=typed.get("daily"), labs=typed.get("labs"))


def simulated_cohort(n: int, seed: int) -> Cohort:
    """The calibrated simulator's cohort of `n` patients from `seed`, in memory."""
    spec = simulate.SimulationSpec(n=n, seed=seed)
    return cohort_from_tables(simulate.simulate_cohort(spec), simulate.cohort_meta(spec))


def one_cohort(n: int, seed: int) -> list[dict]:
    """Naive and corrected verdict of every fact on one simulated cohort (tidy rows; reproduced 1/0/None)."""
    from helpers import holdup

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fits on unlucky draws warn (separation, few events); verdicts record it
        verdicts = holdup.assess(simulated_cohort(n, seed), quick=True)
    rows = []
    for r in verdicts.itertuples():
        for analysis, ok in (("naive", r.naive_reproduced), ("corrected", r.corrected_reproduced)):
            rows.append({"n": n, "seed": seed, "fact": r.fact, "analysis": analysis,
                         "reproduced": None if ok is None or pd.isna(ok) else int(bool(ok))})
    return rows


def _backend(scheduler: str | None):
    """joblib's parallel_config: local processes, or the dask backend on the cluster at `scheduler`."""
    import joblib

    if not scheduler:
        return joblib.parallel_config(backend="loky")
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise SystemExit("--scheduler needs dask's distributed scheduler: pip install 'dask[distributed]' "
                         f"(not a requirement of the book; {exc})") from exc
    Client(scheduler)
    return joblib.parallel_config(backend="dask")


def run(sizes: Sequence[int], seeds: Sequence[int], workers: int = 1, scheduler: str | None = None,
        progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Every (size, seed) cohort judged, in parallel with joblib; rows sorted by n, seed, fact, analysis."""
    from joblib import Parallel, delayed

    tasks = [(n, s) for n in sizes for s in seeds]
    rows: list[dict] = []
    with _backend(scheduler):
        jobs = Parallel(n_jobs=workers if not scheduler else -1, return_as="generator_unordered")
        for done, result in enumerate(jobs(delayed(one_cohort)(n, s) for n, s in tasks), start=1):
            rows.extend(result)
            if progress:
                progress(done, len(tasks))
    return tidy(pd.DataFrame(rows, columns=COLUMNS))


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Deterministic order and types (so the committed file is byte-identical for the same seeds)."""
    order = {f: i for i, f in enumerate(_fact_ids())}
    f = frame.assign(_f=frame["fact"].map(order), _a=frame["analysis"].map({a: i for i, a in enumerate(ANALYSES)}))
    f = f.sort_values(["n", "seed", "_f", "_a"]).drop(columns=["_f", "_a"]).reset_index(drop=True)
    return f.astype({"n": int, "seed": int, "reproduced": "Int64"})


def _fact_ids() -> tuple[str, ...]:
    from helpers.published import FACT_IDS

    return FACT_IDS


def shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Per n, fact and analysis: cohorts judged, reproducing, share and its Clopper-Pearson 95% CI.

    Cohorts where a fact is not testable (a fit that did not converge, a group that is empty) are not in
    the denominator; `not_testable` counts them.
    """
    rows = []
    for (n, fact, analysis), g in frame.groupby(["n", "fact", "analysis"], sort=False):
        judged = g["reproduced"].dropna()
        k, m = int(judged.sum()), len(judged)
        lo, hi = stats.exact_ci(k, m) if m else (np.nan, np.nan)
        rows.append({"n": int(n), "fact": fact, "analysis": analysis, "cohorts": len(g), "judged": m,
                     "not_testable": len(g) - m, "reproduced": k, "share": k / m if m else np.nan,
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def write(frame: pd.DataFrame, meta: dict, out_dir: str | Path = RESULT_DIR) -> list[Path]:
    """Write the per-cohort verdicts (CSV) and the run's description (JSON); return the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, info = out / RESULT_FILE, out / RUN_FILE
    tmp = csv.with_suffix(".tmp")
    tmp.write_text(tidy(frame).to_csv(index=False, lineterminator="\n"), encoding="utf-8")
    os.replace(tmp, csv)
    info.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [csv, info]


def read(out_dir: str | Path = RESULT_DIR) -> tuple[pd.DataFrame, dict] | None:
    """The committed result (verdicts, run description), or None when no run has been stored."""
    out = Path(out_dir)
    if not (out / RESULT_FILE).exists() or not (out / RUN_FILE).exists():
        return None
    frame = pd.read_csv(out / RESULT_FILE, dtype={"reproduced": "Int64"})
    return frame, json.loads((out / RUN_FILE).read_text(encoding="utf-8"))


def run_meta(sizes: Iterable[int], seeds: Sequence[int], workers: int, seconds: float, scheduler: str | None) -> dict:
    """What a run was: sizes, seeds, workers, wall time and the cost of one cohort (core-seconds)."""
    cohorts = len(list(sizes)) * len(seeds)
    return {"sizes": sorted(set(sizes)), "seeds": len(seeds), "first_seed": int(min(seeds)),
            "last_seed": int(max(seeds)), "excluded_seed": simulate.SHIPPED_SEED, "workers": workers,
            "backend": "dask" if scheduler else "loky", "cohorts": cohorts, "wall_seconds": round(seconds, 1),
            "core_seconds_per_cohort": round(seconds * workers / cohorts, 3) if cohorts else None,
            "cores": os.cpu_count(), "python": platform.python_version()}


def timed_run(sizes: Sequence[int], seeds: Sequence[int], workers: int, scheduler: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """run() with its wall time and run description."""
    t0 = time.perf_counter()
    frame = run(sizes, seeds, workers, scheduler, progress)
    return frame, run_meta(sizes, seeds, workers, time.perf_counter() - t0, scheduler)
