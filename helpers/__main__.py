"""Command line: `python -m helpers COMMAND` (build, prepare, validate, simulate, templates, dictionary,
update-notebooks, clean, fragility), with the exit codes listed below.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from helpers.paths import BUILD_DIR, SHIPPED_COHORT


EXIT_CODES = """exit codes:
  0    success
  1    the build failed (a notebook failed, timed out or lost its kernel; Jupyter Book failed; the site
       could not be written): the previous site is untouched
  2    invalid input (a cohort that does not validate, wrong arguments): nothing written
  130  interrupted by SIGINT (Ctrl-C), 143 terminated by SIGTERM: nothing published
  141  the output pipe was closed before everything was printed (e.g. `... | head`)"""


def main(argv: list[str] | None = None) -> int:
    """Run one command; a closed output pipe or an interruption ends it with one line and its exit code."""
    from helpers.build import Interrupted

    try:
        return _dispatch(argv)
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except (Interrupted, KeyboardInterrupt) as exc:
        code = getattr(exc, "exit_code", 130)
        message = getattr(exc, "message", "interrupted")
        try:
            print(message, file=sys.stderr)
        except OSError:
            pass
        return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise on the closed pipe."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _dispatch(argv: list[str] | None) -> int:
    """Parse the command line and run one command; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="validate a cohort, execute every chapter, render the site")
    b.add_argument("--cohort", default=str(SHIPPED_COHORT), help="cohort folder or .xlsx (default: the shipped simulated cohort)")
    b.add_argument("--out", default=str(BUILD_DIR / "html"), help="where the site goes (default: _build/html)")
    b.add_argument("--jobs", type=int, default=None, help="notebooks executed in parallel (default: all cores)")
    b.add_argument("--timeout", type=int, default=None,
                   help="seconds a notebook cell may run before the build stops it (default: execute.timeout "
                        "in _config.yml, else 300)")
    v = sub.add_parser("validate", help="check a cohort against the data contract and print every problem")
    v.add_argument("cohort", help="cohort folder or .xlsx workbook")
    v.add_argument("--report", default=None,
                   help="where the full list of problems goes (default: validation_report.csv beside the cohort)")
    pr = sub.add_parser("prepare", help="convert a dated export (calendar dates, own names and units) to the contract")
    pr.add_argument("raw", help="folder of the centre's CSV files (or one .xlsx workbook)")
    pr.add_argument("out", help="folder to write the cohort into (replaced); the conversion log goes beside it")
    pr.add_argument("--mapping", default=None, help="mapping file (default: RAW/mapping.yml when present)")
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
    t = sub.add_parser("templates", help="write blank CSV templates, a workbook, the data dictionary and a REDCap "
                       "data dictionary")
    t.add_argument("out", help="folder to write into")
    sub.add_parser("dictionary", help="regenerate book/data_contract.md and the downloads of the 'Use your own "
                   "cohort' page from helpers/contract.py")
    u = sub.add_parser("update-notebooks", help="re-execute the committed notebooks on the shipped cohort")
    u.add_argument("notebooks", nargs="*", help="only these notebooks (default: all)")
    c = sub.add_parser("clean", help="remove cached executed notebooks and tables (shared, and a site's private cache)")
    c.add_argument("--out", default=None,
                   help="also remove the private cache of the site built here from a centre's cohort (<out>.cache)")
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
    return COMMANDS[args.command](args)  # a closed pipe is handled once, in main (exit 141)


def _build(args) -> int:
    from helpers.build import BuildError, build
    from helpers.cohort import CohortError

    try:
        build(args.cohort, args.out, args.jobs, log=_log, timeout=args.timeout)
    except CohortError as exc:
        print(exc.report.text(), file=sys.stderr)
        print("Build stopped: the cohort is not valid; nothing was written.", file=sys.stderr)
        return 2
    except BuildError as exc:
        text = str(exc)
        tail = "" if "previous site is untouched" in text else "\nThe previous site (if any) is untouched."
        print(f"Build failed: {text}{tail}", file=sys.stderr)
        return 1
    return 0


def _log(message: str) -> None:
    """Print a progress line; a closed stdout (`build | head`) silences the log but never stops the build."""
    try:
        print(message, flush=True)
    except BrokenPipeError:
        _silence_stdout()


def _validate(args) -> int:
    """Print the grouped report, the sections that will be skipped and the verdict; write the full list."""
    from helpers.cohort import validate

    from concurrent.futures import ProcessPoolExecutor

    cohort = Path(args.cohort)
    try:
        with ProcessPoolExecutor(max_workers=1) as pool:  # the chapters' imports load beside the validation
            pending = pool.submit(_requirements)
            report, loaded = validate(cohort)
            requirements = pending.result()
    except (OSError, RuntimeError):  # no worker process available: do it in turn
        report, loaded = validate(cohort)
        requirements = _requirements()
    lines = report.text().splitlines()
    verdict = lines.pop()
    lines += _readiness_lines(loaded, requirements)
    code = 0 if report.ok else 2
    if report.problems or args.report:
        default = (cohort if cohort.is_dir() else cohort.parent) / "validation_report.csv"
        try:
            lines.append(f"Every problem, one per row: {report.to_csv(Path(args.report) if args.report else default)}")
        except OSError as exc:
            lines.append(f"(the full report could not be written: {exc})")
    print("\n".join(lines + [verdict]))  # a closed pipe (`validate ... | head`) ends in main: exit 141
    return code


def _requirements() -> list:
    """Every chapter section's declared inputs (importing the report modules registers them; run in a worker)."""
    import importlib

    from helpers import sections

    for module in sections.REPORT_MODULES:
        importlib.import_module(module)
    return list(sections.REGISTRY.values())


def _readiness_lines(cohort, requirements: list) -> list[str]:
    """What each chapter section needs and whether this cohort has it (helpers.sections), when buildable."""
    if cohort is None or not requirements:
        return []
    import pandas as pd

    from helpers.sections import missing

    rows = [(r.section, r.what, missing(cohort, r.tables, dict(r.columns))) for r in requirements]
    table = pd.DataFrame(rows, columns=["section", "what", "reason"])
    table["ready"] = table["reason"].isna()
    table["reason"] = table["reason"].fillna("")
    skipped = table[~table["ready"]]
    if skipped.empty:
        return [f"Chapter sections: all {len(table)} ready."]
    lines = [f"SKIPPED: {r.what} ({r.section}): {r.reason}." for r in skipped.itertuples()]
    return lines + [f"Chapter sections: {len(table) - len(skipped)} of {len(table)} ready; {len(skipped)} will "
                    "be skipped (each page says why)."]


def _prepare(args) -> int:
    """Convert a dated export; print what changed (by column and rule) or what needs the centre."""
    from helpers.prepare import log_path, prepare

    report, log = prepare(Path(args.raw), Path(args.out), Path(args.mapping) if args.mapping else None)
    if not report.ok:
        print(report.text())
        print("Nothing was written: fix the problems above (in the export or the mapping file) and run again.")
        return 2
    for line in log.summary():
        print(line)
    if report.problems:
        print(report.text())
    print(f"wrote {args.out} (no calendar date left) and {log_path(Path(args.out))} (every change; it keeps the "
          "original dates and identifiers: keep it private)")
    print(f"next: python -m helpers validate {args.out}")
    return 0


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
        update_committed_notebooks([Path(n) for n in args.notebooks] or None, log=_log)
    except BuildError as exc:
        print(f"Failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _clean(args) -> int:
    from helpers.build import clean

    if not clean(args.out, log=print):
        print("nothing to remove")
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


COMMANDS = {"build": _build, "validate": _validate, "prepare": _prepare, "simulate": _simulate, "templates": _templates,
            "dictionary": _dictionary, "update-notebooks": _update, "clean": _clean, "fragility": _fragility}

if __name__ == "__main__":
    sys.exit(main())
