"""Command line: `python -m helpers COMMAND` (build, validate, simulate, templates, dictionary, update-notebooks,
fragility)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers.paths import BUILD_DIR, SHIPPED_COHORT


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="validate a cohort, execute every chapter, render the site")
    b.add_argument("--cohort", default=str(SHIPPED_COHORT), help="cohort folder or .xlsx (default: the shipped simulated cohort)")
    b.add_argument("--out", default=str(BUILD_DIR / "html"), help="where the site goes (default: _build/html)")
    b.add_argument("--jobs", type=int, default=None, help="notebooks executed in parallel (default: all cores)")
    v = sub.add_parser("validate", help="check a cohort against the data contract and print every problem")
    v.add_argument("cohort", help="cohort folder or .xlsx workbook")
    s = sub.add_parser("simulate", help="write a simulated cohort")
    s.add_argument("--out", required=True, help="folder to write (data/simulated regenerates the shipped cohort)")
    s.add_argument("--n", type=int, default=24)
    s.add_argument("--seed", type=int, default=None,
                   help="default: the shipped cohort's seed (with --calibrate: where the search starts)")
    s.add_argument("--no-labs", action="store_true", help="omit labs.csv")
    s.add_argument("--reported-grades", action="store_true",
                   help="write crs_grade_reported and omit daily.csv (a cohort graded elsewhere)")
    s.add_argument("--calibrate", action="store_true",
                   help="search seeds from --seed for the first cohort reproducing F1-F10, then write it")
    t = sub.add_parser("templates", help="write blank CSV templates and a workbook with a data dictionary")
    t.add_argument("out", help="folder to write into")
    sub.add_parser("dictionary", help="regenerate book/data_contract.md from helpers/contract.py")
    u = sub.add_parser("update-notebooks", help="re-execute the committed notebooks on the shipped cohort")
    u.add_argument("notebooks", nargs="*", help="only these notebooks (default: all)")
    f = sub.add_parser("fragility", help="share of simulated cohorts (other seeds) reproducing each published fact")
    f.add_argument("--seeds", type=int, default=500, help="cohorts per size (default 500)")
    f.add_argument("--start", type=int, default=1, help="first seed (the shipped cohort's seed is always skipped)")
    f.add_argument("--n", type=int, nargs="+", default=None,
                   help="cohort sizes (default: the published size and that of --cohort, once each)")
    f.add_argument("--cohort", default=str(SHIPPED_COHORT),
                   help="a centre's cohort whose size to add (the power of a cohort this size; default: the shipped one)")
    f.add_argument("--workers", type=int, default=1, help="parallel processes (joblib)")
    f.add_argument("--scheduler", default=None, help="a Dask scheduler address: run on that cluster instead")
    f.add_argument("--out", default=None, help="folder for the result (default: data/fragility, read by the book)")
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args)


def _build(args) -> int:
    from helpers.build import BuildError, build
    from helpers.cohort import CohortError

    try:
        build(args.cohort, args.out, args.jobs)
    except CohortError as exc:
        print(exc.report.text(), file=sys.stderr)
        print("Build stopped: the cohort is not valid; nothing was written.", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"Build failed: {exc}\nThe previous site (if any) is untouched.", file=sys.stderr)
        return 1
    return 0


def _validate(args) -> int:
    from helpers.cohort import validate

    report, _ = validate(Path(args.cohort))
    print(report.text())
    return 0 if report.ok else 2


def _simulate(args) -> int:
    from helpers import simulate

    tables = ("patients", "kinetics") + (() if args.reported_grades else ("daily",)) + (() if args.no_labs else ("labs",))
    default_seed = simulate.DEFAULT_SEED if args.calibrate else simulate.SHIPPED_SEED
    spec = simulate.SimulationSpec(n=args.n, seed=args.seed if args.seed is not None else default_seed,
                                   tables=tables, reported_grades=args.reported_grades)
    if args.calibrate:
        spec, tried = simulate.calibrate(spec, log=print)
        print(f"seed {spec.seed} reproduces every published fact (after {tried} candidate seeds)")
    files = simulate.write_cohort(simulate.simulate_cohort(spec), args.out, simulate.cohort_meta(spec))
    for f in files:
        print(f"wrote {f}")
    return 0


def _templates(args) -> int:
    from helpers.templates import write_templates

    for f in write_templates(Path(args.out)):
        print(f"wrote {f}")
    return 0


def _dictionary(args) -> int:
    from helpers.templates import write_dictionary_page

    print(f"wrote {write_dictionary_page()}")
    return 0


def _update(args) -> int:
    from helpers.build import BuildError, update_committed_notebooks

    try:
        update_committed_notebooks([Path(n) for n in args.notebooks] or None)
    except BuildError as exc:
        print(f"Failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _fragility(args) -> int:
    from tqdm import tqdm

    from helpers import fragility
    from helpers.cohort import load_cohort
    from helpers.published import PUBLISHED_N

    sizes = args.n or sorted({PUBLISHED_N, len(load_cohort(args.cohort).patients)})
    seeds = fragility.seeds_for(args.seeds, args.start)
    print(f"{len(seeds)} seeds x sizes {sizes} on {args.scheduler or f'{args.workers} local worker(s)'}", flush=True)
    with tqdm(total=len(seeds) * len(sizes), unit="cohort", mininterval=2) as bar:
        frame, meta = fragility.timed_run(sizes, seeds, args.workers, args.scheduler,
                                          progress=lambda done, total: bar.update(1))
    for path in fragility.write(frame, meta, args.out or fragility.RESULT_DIR):
        print(f"wrote {path}")
    print(f"{meta['cohorts']} cohorts in {meta['wall_seconds']} s: {meta['core_seconds_per_cohort']} core-seconds "
          "per cohort")
    return 0


COMMANDS = {"build": _build, "validate": _validate, "simulate": _simulate, "templates": _templates,
            "dictionary": _dictionary, "update-notebooks": _update, "fragility": _fragility}

if __name__ == "__main__":
    sys.exit(main())
