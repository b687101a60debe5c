"""Build-time benchmark of `python -m helpers build`, side by side with Jupyter Book's own executor.

Run: `python benchmarks/bench_build.py [--runs 3] [--jobs N] [--no-write] [--big-cohort DIR]`

Everything runs on a snapshot of the book's sources in a temporary folder (the repository's
notebooks, `_build/.cache` and `_build/html` are never touched). Scenarios:

1. cold build vs Jupyter Book: the pipeline on an empty cache, and Jupyter Book 1.x executing the
   same notebooks itself (`execute_notebooks: force`, `jupyter-book build --all -W -n --keep-going`
   on a staged copy), alternating the two, `--runs` times each; medians of wall and CPU time;
2. nothing changed: the same build again (nothing executed; rendering skipped);
3. one chapter edited: a markdown cell of one chapter changed (nothing re-executes: the cache is keyed on
   code cells), then a code cell of it (only it re-executes);
4. 5,000 patients: a cold build on `python -m helpers simulate --n 5000 --seed 1`, with the peak
   resident memory of the whole process tree (build, workers, kernels, Jupyter Book), `--runs` times,
   each right after the same run's 24-patient build: the machine's speed drifts from minute to minute,
   and the ratio of the two medians compares builds of the same minutes.

Each build runs in its own process; CPU time is that of the process and everything it started.
Prints a table, writes `benchmarks/results.md` (machine, cores, date) and exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from helpers import build as B  # noqa: E402
from helpers.paths import SHIPPED_COHORT  # noqa: E402

RESULTS = Path(__file__).resolve().with_name("results.md")
EDITED = "02_response.ipynb"
BYTECODE = ROOT / "helpers" / "__pycache__"  # the kernels import the repository's helpers (PYTHONPATH)
DRIVER = """
import sys
from pathlib import Path
from helpers import build
from helpers.__main__ import _log
build.build(sys.argv[1], Path(sys.argv[2]), workers=int(sys.argv[4]), root=Path(sys.argv[3]), log=_log)
"""


@dataclass
class Run:
    """One timed build: wall and CPU seconds, peak memory, and what its log said."""

    name: str
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    executed: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    render_skipped: bool = False


def snapshot(root: Path) -> Path:
    """Copy the book sources, the helpers package and requirements.txt into `root` (a throw-away project)."""
    root.mkdir(parents=True)
    for name in (*B.SOURCES, "helpers"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copy2(src, root / name)
    shutil.copy2(ROOT / "requirements.txt", root / "requirements.txt")
    return root


class PeakMemory(threading.Thread):
    """Samples the summed resident memory (PSS) of a process and all its descendants every 0.5 s.

    Reading /proc/PID/smaps costs CPU, so only the 5,000-patient build is sampled (timings of the
    others are not disturbed).
    """

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                top = psutil.Process(self.pid)
                procs = [top, *top.children(recursive=True)]
                total = 0
                for p in procs:
                    try:  # proportional set size: pages shared by forked workers counted once
                        info = p.memory_full_info()
                        total += getattr(info, "pss", info.rss)
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            time.sleep(0.5)


def timed(name: str, cmd: list[str], env: dict | None = None,
          memory: bool = False) -> tuple[Run, list[tuple[float, str]]]:
    """Run `cmd`, timestamp each line it prints; wall time, CPU time of it and its children, peak memory."""
    run, lines = Run(name), []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    sampler = PeakMemory(proc.pid)
    if memory:
        sampler.start()
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
    proc.wait()
    run.wall = time.perf_counter() - t0
    if memory:
        sampler.done.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run.peak_rss = sampler.peak
    if proc.returncode != 0:
        tail = "\n".join(text for _, text in lines[-30:])
        raise SystemExit(f"{name}: exit {proc.returncode}\n{tail}")
    return run, lines


def pipeline_build(name: str, project: Path, cohort: Path, out: Path, jobs: int, memory: bool = False) -> Run:
    """One `helpers.build.build` in its own process; its log lines give the phases and the notebooks."""
    run, lines = timed(name, [sys.executable, "-c", DRIVER, str(cohort), str(out), str(project), str(jobs)],
                       memory=memory)
    marks = {}
    for at, msg in lines:
        if step := re.match(r"\[(\d)/4\]", msg):
            marks[int(step.group(1))] = at
        if m := re.match(r"\s+executed\s+(\S+) in ([\d.]+) s", msg):
            run.executed[m.group(1)] = float(m.group(2))
        if m := re.match(r"\s+cached\s+(\S+)", msg):
            run.cached.append(m.group(1))
        run.render_skipped |= "unchanged" in msg and "skipped" in msg
    ends = {**marks, 5: run.wall}
    for step, label in {1: "validate", 2: "execute", 3: "render", 4: "publish"}.items():
        if step in ends and step + 1 in ends:
            run.phases[label] = ends[step + 1] - ends[step]
    return run


def jupyter_book_build(project: Path, work: Path) -> Run:
    """Jupyter Book 1.x executing the notebooks itself on a staged copy (`execute_notebooks: force`)."""
    copy = work / "jb"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    for name in B.SOURCES:
        src = project / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, copy / name)
    config = yaml.safe_load((copy / "_config.yml").read_text(encoding="utf-8"))
    config.setdefault("execute", {})["execute_notebooks"] = "force"
    (copy / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    jb = Path(sys.executable).with_name("jupyter-book")
    run, _ = timed("Jupyter Book executor", [str(jb), "build", str(copy), "--all", "-W", "-n", "--keep-going",
                                             "--path-output", str(work / "jb-out")],
                   env={"HELPERS_CACHE_DIR": str(work / "jb-cache")})
    return run


def edit_markdown(nb_path: Path) -> None:
    """Append a sentence to the first markdown cell of a notebook (a prose-only edit)."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    cell["source"] = text + "\n\nThis sentence was added by the benchmark."
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def edit_code(nb_path: Path) -> None:
    """Put a statement before the last code cell's own (a code edit: the notebook must re-execute; the cell
    still shows what it showed)."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    cell = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    cell["source"] = "_edited = 'by the benchmark'\n" + text
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


BIG_COHORT_NOTE = " (DIR: `python -m helpers simulate --n 5000 --seed 1 --out DIR`, what the run makes without it)"


def shown_command(argv: list[str]) -> str:
    """The benchmark's arguments as results.md shows them: a local folder path replaced by what it holds."""
    shown = list(argv)
    for i, arg in enumerate(shown):
        if arg == "--big-cohort" and i + 1 < len(shown):
            shown[i + 1] = "DIR"
        elif arg.startswith("--big-cohort="):
            shown[i] = "--big-cohort=DIR"
    return " ".join(shown)


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


def median_run(runs: list[Run]) -> Run:
    """The run with the median wall time (its phases are shown), carrying the median wall and CPU."""
    mid = sorted(runs, key=lambda r: r.wall)[len(runs) // 2]
    return replace(mid, wall=statistics.median(r.wall for r in runs), cpu=statistics.median(r.cpu for r in runs))


def table(cold: list[Run], jb: list[Run], rest: list[Run]) -> list[str]:
    """Markdown: the side-by-side comparison, the other scenarios, then the cold build per notebook."""
    c, j = median_run(list(cold)), median_run(list(jb))
    rows = [f"| build | runs | wall s (median) | CPU s (median) | all wall times s |", "|---|---:|---:|---:|---|",
            f"| pipeline, cold (`python -m helpers build`) | {len(cold)} | {c.wall:.1f} | {c.cpu:.1f} | "
            f"{', '.join(f'{r.wall:.1f}' for r in cold)} |",
            f"| Jupyter Book's executor (`execute_notebooks: force`) | {len(jb)} | {j.wall:.1f} | {j.cpu:.1f} | "
            f"{', '.join(f'{r.wall:.1f}' for r in jb)} |", "",
            f"ratio to Jupyter Book's executor: {c.wall / j.wall:.2f} x", "",
            "| build | total s | CPU s | validate s | execute s | render s | publish s | executed | cached | peak memory MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in [c, *rest]:
        render = "skipped" if r.render_skipped else fmt(r.phases.get("render"))
        memory = f"{r.peak_rss / 2**20:.0f}" if r.peak_rss else "-"
        rows.append(f"| {r.name} | {r.wall:.1f} | {r.cpu:.1f} | {fmt(r.phases.get('validate'))} | "
                    f"{fmt(r.phases.get('execute'))} | {render} | {fmt(r.phases.get('publish'))} | "
                    f"{len(r.executed)} | {len(r.cached)} | {memory} |")
    big = rest[-1]
    rows += ["", "| notebook | cold, 24 patients, s | cold, 5,000 patients, s |", "|---|---:|---:|"]
    rows += [f"| {n} | {s:.1f} | {fmt(big.executed.get(n))} |" for n, s in c.executed.items()]
    return rows


def targets(cold: Run, jb: Run, same: Run, prose: Run, edit: Run, big: Run) -> list[tuple[str, bool, str]]:
    """The targets of issue 15 (for 2 cores): (target, met, measured)."""
    return [
        ("cold build <= 20 s", cold.wall <= 20, f"{cold.wall:.1f} s"),
        ("cold build <= 0.6x Jupyter Book's executor", cold.wall <= 0.6 * jb.wall, f"{cold.wall / jb.wall:.2f}x"),
        ("one chapter's prose edited <= 8 s, nothing executed", prose.wall <= 8 and not prose.executed,
         f"{prose.wall:.1f} s, executed {', '.join(prose.executed) or 'none'}"),
        ("one chapter's code edited <= 8 s, only it executed", edit.wall <= 8 and list(edit.executed) == [EDITED],
         f"{edit.wall:.1f} s, executed {', '.join(edit.executed) or 'none'}"),
        ("nothing changed <= 1 s, nothing executed", same.wall <= 1 and not same.executed,
         f"{same.wall:.1f} s, {len(same.executed)} executed"),
        ("5,000 patients <= 1.5x the 24-patient cold build", big.wall <= 1.5 * cold.wall,
         f"{big.wall:.1f} s = {big.wall / cold.wall:.2f}x"),
        ("peak resident memory at 5,000 patients <= 1.5 GiB", big.peak_rss <= 1.5 * 2**30,
         f"{big.peak_rss / 2**30:.2f} GiB"),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every scenario in a temporary project; print and (unless --no-write) save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=3, help="cold builds, Jupyter Book builds and 5,000-patient builds, alternating")
    parser.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results.md alone")
    parser.add_argument("--big-cohort", type=Path, default=None,
                        help="an existing `simulate --n 5000 --seed 1` folder (else it is simulated, ~6 min)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        project = snapshot(work / "project")
        site = work / "site"
        print(f"machine: {machine()}; snapshot in {work}", flush=True)
        big_cohort = args.big_cohort.resolve() if args.big_cohort else work / "n5000"
        if not args.big_cohort:
            subprocess.run([sys.executable, "-m", "helpers", "simulate", "--n", "5000", "--seed", "1", "--out",
                            str(big_cohort)], check=True, capture_output=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        cold, jb, bigs = [], [], []
        for i in range(args.runs):
            shutil.rmtree(project / "_build", ignore_errors=True)
            shutil.rmtree(site, ignore_errors=True)
            shutil.rmtree(BYTECODE, ignore_errors=True)  # as in a fresh clone: the build compiles it
            cold.append(pipeline_build("cold, 24 patients", project, SHIPPED_COHORT, site, args.jobs))
            jb.append(jupyter_book_build(project, work))
            site_big = work / f"site5000-{i}"  # its own folder: its private cache beside it starts empty
            shutil.rmtree(BYTECODE, ignore_errors=True)
            bigs.append(pipeline_build("cold, 5,000 patients", project, big_cohort, site_big, args.jobs,
                                       memory=True))
            print(f"run {i + 1}: pipeline {cold[-1].wall:.1f} s, Jupyter Book {jb[-1].wall:.1f} s, "
                  f"5,000 patients {bigs[-1].wall:.1f} s", flush=True)
        same = pipeline_build("nothing changed", project, SHIPPED_COHORT, site, args.jobs)
        edit_markdown(project / "notebooks" / EDITED)
        prose = pipeline_build(f"{EDITED} prose edited", project, SHIPPED_COHORT, site, args.jobs)
        edit_code(project / "notebooks" / EDITED)
        edit = pipeline_build(f"{EDITED} code edited", project, SHIPPED_COHORT, site, args.jobs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    big = replace(median_run(bigs), peak_rss=max(r.peak_rss for r in bigs))
    rows = table(cold, jb, [same, prose, edit, big])
    rows += ["", "| run | cold, 24 patients, s | cold, 5,000 patients, s | ratio |", "|---:|---:|---:|---:|"]
    rows += [f"| {i + 1} | {c.wall:.1f} | {b.wall:.1f} | {b.wall / c.wall:.2f}x |" for i, (c, b) in
             enumerate(zip(cold, bigs))]
    met = targets(median_run(list(cold)), median_run(list(jb)), same, prose, edit, big)
    text = "\n".join([f"# Build benchmark: {datetime.date.today().isoformat()}", "",
                      f"Machine: {machine()}. Workers: {args.jobs}. Command: `python benchmarks/bench_build.py "
                      f"{shown_command(argv if argv is not None else sys.argv[1:])}`{BIG_COHORT_NOTE if args.big_cohort else ''}"
                      " (alternating cold pipeline, Jupyter Book and 5,000-patient builds; the "
                      "5,000-patient row is the median run, with the highest peak memory). Load average "
                      f"before the run: {load[0]:.1f} (1 min), {load[2]:.1f} (15 min): above 0.5 the timings are "
                      "not those of a quiet machine. Peak memory: the summed proportional set size (PSS, pages "
                      "shared between processes counted once) of the build's whole process tree. Where the "
                      "time goes: [profile.md](profile.md).", "", *rows, "",
                      "| target (2 cores) | met | measured |", "|---|---|---|",
                      *[f"| {t} | {'yes' if ok else 'NO'} | {m} |" for t, ok, m in met]]) + "\n"
    print("\n" + text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")
        print(f"wrote {RESULTS}")
    return 0 if all(ok for _, ok, _ in met) else 1


if __name__ == "__main__":
    sys.exit(main())
