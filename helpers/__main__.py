"""Command line: `python -m helpers COMMAND` (build, validate, simulate, templates, dictionary, update-notebooks, clean)."""
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
    c = sub.add_parser("clean", help="remove cached executed notebooks and tables (shared, and a site's private cache)")
    c.add_argument("--out", default=None,
                   help="also remove the private cache of the site built here from a centre's cohort (<out>.cache)")
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args)


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


COMMANDS = {"build": _build, "validate": _validate, "simulate": _simulate, "templates": _templates,
            "dictionary": _dictionary, "update-notebooks": _update}
COMMANDS["clean"] = _clean  # the pipeline lane's commands

if __name__ == "__main__":
    sys.exit(main())
