"""Build-time benchmark of `python -m helpers build` on this machine.

Run: `.venv/bin/python benchmarks/bench_build.py [--jobs N] [--no-write]`

Scenarios, all on a snapshot of the book's sources copied to a temporary project (the repository's
files, its `_build/.cache` and its `_build/html` are never touched):

1. floor: one kernel start + the chapters' imports through papermill (the per-notebook minimum);
2. cold: empty cache, every notebook executed, the site rendered;
3. unchanged: the same build again (nothing executed; rendering skipped when the site's recorded
   input hash matches);
4. one notebook edited: a markdown cell of one chapter changed in the snapshot; only it re-executes;
5. 5,000 patients: a cold build on `python -m helpers simulate --n 5000 --seed 1`.

Prints a table and writes `benchmarks/results.md` (machine, core count and the date of the run).
Exit code 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import build as B
from helpers.paths import PROJECT_ROOT, SHIPPED_COHORT

RESULTS = Path(__file__).resolve().with_name("results.md")
EDITED = "02_response.ipynb"
IMPORTS = ("import matplotlib.pyplot as plt\nfrom IPython.display import Markdown\nfrom myst_nb import glue\n"
           "from helpers import crs, derive, kinetics, present, published, response, survival\n"
           "from helpers.cohort import load_cohort\ndata = load_cohort('data/simulated')")


@dataclass
class Run:
    """Timings of one build, read from the pipeline's own log lines."""

    name: str
    total: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    executed: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    render: float | None = None
    render_skipped: bool = False


def snapshot(root: Path) -> Path:
    """Copy the book sources, the helpers' .py files and requirements.txt into `root` (a throw-away project)."""
    root.mkdir(parents=True)
    for name in B.SOURCES:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copy2(src, root / name)
    (root / "helpers").mkdir()
    for f in (PROJECT_ROOT / "helpers").glob("*.py"):
        shutil.copy2(f, root / "helpers" / f.name)
    shutil.copy2(PROJECT_ROOT / "requirements.txt", root / "requirements.txt")
    return root


def point_pipeline_at(root: Path) -> None:
    """Make helpers.build read sources from `root` and keep its cache, logs and staging under `root/_build`.

    The workers are forked (Linux), so they inherit these module globals.
    """
    B.PROJECT_ROOT = root
    B.NOTEBOOKS_DIR = root / "notebooks"
    B.BUILD_DIR = root / "_build"
    B.CACHE_DIR = root / "_build" / ".cache"
    B.BUILD_DIR.mkdir(parents=True, exist_ok=True)


def timed_build(name: str, cohort: Path, out: Path, jobs: int) -> Run:
    """Run helpers.build.build once and turn its log lines (timestamped here) into a Run."""
    run, marks = Run(name), {}
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        now = time.perf_counter() - t0
        step = re.match(r"\[(\d)/4\]", msg)
        if step:
            marks[int(step.group(1))] = now
        if m := re.match(r"\s+executed\s+(\S+) in ([\d.]+) s", msg):
            run.executed[m.group(1)] = float(m.group(2))
        if m := re.match(r"\s+cached\s+(\S+)", msg):
            run.cached.append(m.group(1))
        if m := re.match(r"\s+rendered\s+HTML in ([\d.]+) s", msg):
            run.render = float(m.group(1))
        if "unchanged" in msg and "skipped" in msg:
            run.render_skipped = True

    B.build(cohort, out, workers=jobs, log=log)
    run.total = time.perf_counter() - t0
    ends = {**marks, 5: run.total}
    labels = {1: "validate", 2: "execute", 3: "render", 4: "publish"}
    for step, label in labels.items():
        if step in ends and step + 1 in ends:
            run.phases[label] = ends[step + 1] - ends[step]
    return run


def floor_seconds(root: Path) -> float:
    """Seconds to start one kernel and import what the chapters import (papermill, one cell)."""
    import nbformat
    import papermill as pm

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(IMPORTS)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = root / "floor.ipynb"
    nbformat.write(nb, src)
    start = time.perf_counter()
    pm.execute_notebook(str(src), str(root / "floor-out.ipynb"), kernel_name="python3", cwd=str(PROJECT_ROOT),
                        progress_bar=False, log_output=False, stderr_file=open(os.devnull, "w"))
    return time.perf_counter() - start


def edit_markdown(nb_path: Path) -> None:
    """Append a sentence to the first markdown cell of a notebook (a prose-only edit)."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    cell["source"] = text + "\n\nThis sentence was added by the benchmark."
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def simulate(out: Path, n: int) -> float:
    """Write a simulated cohort of n patients with the project's CLI; return seconds taken."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "helpers", "simulate", "--n", str(n), "--seed", "1", "--out", str(out)],
                   check=True, capture_output=True, cwd=PROJECT_ROOT)
    return time.perf_counter() - start


def machine() -> str:
    """CPU model, core count, Python and OS, for the results' header."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found.group(1).strip() if found else model
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def table(runs: list[Run], floor: float) -> list[str]:
    """Markdown rows: one per build, then one per executed notebook of the cold build."""
    rows = ["| build | total s | validate s | execute s | render s | publish s | executed | cached |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        render = "skipped" if r.render_skipped else fmt(r.phases.get("render"))
        rows.append(f"| {r.name} | {r.total:.1f} | {fmt(r.phases.get('validate'))} | {fmt(r.phases.get('execute'))} "
                    f"| {render} | {fmt(r.phases.get('publish'))} | {len(r.executed)} | {len(r.cached)} |")
    rows += ["", f"Floor: one kernel start + the chapters' imports + loading the cohort = {floor:.1f} s.", "",
             "| notebook | cold, 24 patients, s | cold, 5,000 patients, s |", "|---|---:|---:|"]
    cold, big = runs[0], runs[-1]
    for name in cold.executed:
        rows.append(f"| {name} | {cold.executed[name]:.1f} | {fmt(big.executed.get(name))} |")
    return rows


def targets(runs: dict[str, Run]) -> list[tuple[str, bool, str]]:
    """The issue's targets (for 2 cores): (target, met, measured)."""
    cold, same, edit, big = runs["cold"], runs["unchanged"], runs["edited"], runs["n5000"]
    return [
        ("cold build <= 30 s", cold.total <= 30, f"{cold.total:.1f} s"),
        ("nothing changed <= 5 s, nothing executed", same.total <= 5 and not same.executed,
         f"{same.total:.1f} s, {len(same.executed)} executed"),
        (f"one notebook edited: only {EDITED} re-executes", list(edit.executed) == [EDITED],
         f"executed {', '.join(edit.executed) or 'none'}"),
        ("5,000 patients <= 2x the 24-patient cold build", big.total <= 2 * cold.total,
         f"{big.total:.1f} s = {big.total / cold.total:.2f}x"),
    ]


def report(runs: dict[str, Run], floor: float, jobs: int, sim_secs: float) -> str:
    """The results as Markdown (also printed)."""
    lines = [f"# Build benchmark: {datetime.date.today().isoformat()}", "",
             f"Machine: {machine()}. Workers: {jobs}. Command: `python benchmarks/bench_build.py`.", "",
             *table(list(runs.values()), floor), "",
             f"Simulating the 5,000-patient cohort took {sim_secs:.1f} s (not counted in the build).", "",
             "| target | met | measured |", "|---|---|---|"]
    lines += [f"| {t} | {'yes' if ok else 'NO'} | {m} |" for t, ok, m in targets(runs)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every scenario in a temporary project; print and (unless --no-write) save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results.md alone")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-build-"))
    runs: dict[str, Run] = {}
    try:
        point_pipeline_at(snapshot(root / "project"))
        print(f"machine: {machine()}; snapshot in {root}", flush=True)
        floor = floor_seconds(root)
        print(f"floor (kernel + imports): {floor:.1f} s", flush=True)
        site = root / "site"
        runs["cold"] = timed_build("cold, 24 patients", SHIPPED_COHORT, site, args.jobs)
        runs["unchanged"] = timed_build("nothing changed", SHIPPED_COHORT, site, args.jobs)
        edit_markdown(B.NOTEBOOKS_DIR / EDITED)
        runs["edited"] = timed_build(f"{EDITED} prose edited", SHIPPED_COHORT, site, args.jobs)
        sim_secs = simulate(root / "n5000", 5000)
        runs["n5000"] = timed_build("cold, 5,000 patients", root / "n5000", root / "site5000", args.jobs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = report(runs, floor, args.jobs, sim_secs)
    print("\n" + text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")
        print(f"wrote {RESULTS}")
    return 0 if all(ok for _, ok, _ in targets(runs)) else 1


if __name__ == "__main__":
    sys.exit(main())
