"""The pipeline: validate a cohort -> execute every chapter with papermill -> render with Jupyter Book.

Jupyter Book renders the executed notebooks and never executes them itself. Everything happens in a
staging folder; the site replaces the previous one only when the whole build succeeded, so a
failed build leaves the last good site untouched. Executed notebooks are cached on the content of
the notebook, the cohort files, the helpers package and the parameters: nothing changed, nothing
re-executed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers.paths import BUILD_DIR, NOTEBOOKS_DIR, PROJECT_ROOT, SHIPPED_COHORT, resolve

CHAPTERS = ("01_cohort.ipynb", "02_response.ipynb", "03_survival.ipynb", "04_crs.ipynb", "04b_toxicity.ipynb",
            "05_kinetics.ipynb")
EXTRA_NOTEBOOKS = ("book/findings.ipynb", "book/reproduction.ipynb", "book/reproducibility.ipynb")
SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks")
CACHE_DIR = BUILD_DIR / ".cache"
SITE_HASH_FILE = ".build-hash"  # in the published site: the hash of the inputs it was built from


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


@dataclass(frozen=True)
class Job:
    """One notebook to execute: source, destination, parameters and the cache key."""

    source: Path
    output: Path
    parameters: dict
    key: str


def notebook_paths() -> list[Path]:
    """Every notebook the book executes, in reading order (chapters, then the reproduction page)."""
    paths = [NOTEBOOKS_DIR / name for name in CHAPTERS]
    paths += [PROJECT_ROOT / rel for rel in EXTRA_NOTEBOOKS if (PROJECT_ROOT / rel).exists()]
    return paths


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(p.anchor)).encode() if not p.is_relative_to(PROJECT_ROOT)
                 else str(p.relative_to(PROJECT_ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cohort_files(cohort: Path) -> list[Path]:
    """The files that make up a cohort (a workbook, or the folder's CSV and YAML files)."""
    if cohort.is_file():
        return [cohort]
    return sorted(p for p in cohort.iterdir() if p.suffix in (".csv", ".yml", ".yaml"))


def cohort_hash(cohort: Path) -> str:
    """SHA-256 over the cohort's files (content and names): the cohort's identity on the reproducibility page."""
    return _digest(cohort_files(cohort))


def environment_hash() -> str:
    """Hash of the helpers package and the pinned requirements: a change re-executes every notebook."""
    files = sorted((PROJECT_ROOT / "helpers").glob("*.py")) + [PROJECT_ROOT / "requirements.txt"]
    return _digest([f for f in files if f.exists()])


def cohort_parameters(cohort: Path) -> dict:
    """Papermill parameters: none for the shipped cohort (the notebooks' defaults), else the cohort path."""
    if cohort.resolve() == SHIPPED_COHORT.resolve():
        return {}
    return {"cohort": str(cohort.resolve())}


def _execute(job: Job) -> tuple[str, float, str | None]:
    """Run one notebook with papermill in its own folder; return (name, seconds, error or None)."""
    import papermill as pm

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _quiet_kernel_log(BUILD_DIR / "logs" / f"{job.source.stem}.log")
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(job.source), str(job.output), parameters=job.parameters,
                            kernel_name="python3", cwd=str(job.source.parent), progress_bar=False,
                            log_output=False)
    except pm.PapermillExecutionError as exc:
        return job.source.name, time.perf_counter() - start, \
            f"cell {exc.cell_index}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel death, missing kernel: report, do not traceback
        return job.source.name, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"
    clean_notebook(job.output)
    return job.source.name, time.perf_counter() - start, None


def _quiet_kernel_log(log: Path) -> None:
    """Send this worker's stderr (kernel start-up chatter) to a log file beside the executed notebook."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def clean_notebook(path: Path) -> None:
    """Drop volatile papermill metadata and the injected-parameters cell (it may hold local paths)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["metadata"].pop("papermill", None)
    cells = []
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    nb["cells"] = cells
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def plan_jobs(cohort: Path, notebooks: list[Path]) -> list[Job]:
    """One job per notebook, its cache key over notebook, cohort, helpers, requirements and parameters."""
    base = cohort_hash(cohort) + environment_hash()
    jobs = []
    for nb in notebooks:
        params = cohort_parameters(cohort)
        key = hashlib.sha256((base + _digest([nb]) + json.dumps(params, sort_keys=True)).encode()).hexdigest()[:20]
        entry = CACHE_DIR / f"{nb.stem}-{key}"
        params["tables_dir"] = str(entry / "tables")
        jobs.append(Job(nb, entry / nb.name, params, key))
    return jobs


def execute_all(jobs: list[Job], workers: int, log=print) -> None:
    """Execute the jobs not in the cache, in parallel; raise BuildError naming every failed notebook."""
    todo = [j for j in jobs if not j.output.exists()]
    for j in jobs:
        if j.output.exists():
            log(f"  cached    {j.source.name}")
    staged = []
    for j in todo:
        tmp = Path(tempfile.mkdtemp(prefix=f".{j.source.stem}-", dir=CACHE_DIR))
        staged.append((j, tmp, Job(j.source, tmp / j.source.name, {**j.parameters, "tables_dir": str(tmp / "tables")}, j.key)))
    failures = []
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(staged) or 1))) as pool:
        for (job, tmp, tmp_job), (name, secs, error) in zip(staged, pool.map(_execute, [s[2] for s in staged])):
            if error:
                failures.append(f"{name} failed ({secs:.1f} s) at {error}")
                log(f"  FAILED    {name} after {secs:.1f} s: {error}")
                shutil.rmtree(tmp, ignore_errors=True)
                continue
            log(f"  executed  {name} in {secs:.1f} s")
            shutil.rmtree(job.output.parent, ignore_errors=True)
            tmp.rename(job.output.parent)
    if failures:
        raise BuildError("notebook execution failed:\n  " + "\n  ".join(failures))


def source_files() -> list[Path]:
    """Every file of the book's sources (configuration, table of contents, prose pages, notebooks)."""
    files = []
    for name in SOURCES:
        src = PROJECT_ROOT / name
        found = sorted(src.rglob("*")) if src.is_dir() else [src]
        files += [f for f in found if f.is_file() and not {".ipynb_checkpoints", "__pycache__"} & set(f.parts)]
    return files


def site_hash(jobs: list[Job]) -> str:
    """Hash of every input of the site: the book sources and each notebook's cache key.

    The keys already cover the cohort files (so its name and the banner), the helpers package
    (this pipeline included) and the pinned requirements (so Jupyter Book's version).
    """
    keys = "".join(j.key for j in jobs)
    return hashlib.sha256((_digest(source_files()) + keys).encode()).hexdigest()


def site_is_current(out: Path, digest: str) -> bool:
    """True when the site at `out` was built from exactly these inputs (its recorded hash equals `digest`)."""
    recorded = out / SITE_HASH_FILE
    return (out / "index.html").is_file() and recorded.is_file() and \
        recorded.read_text(encoding="utf-8").strip() == digest


def stage_sources(staging: Path, jobs: list[Job], cohort_name: str, simulated: bool) -> None:
    """Copy the book sources into staging, put executed notebooks in place and label every page."""
    for name in SOURCES:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, staging / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copy2(src, staging / name)
    tables = staging / "_tables"
    tables.mkdir()
    for job in jobs:
        dest = staging / job.source.relative_to(PROJECT_ROOT)
        shutil.copy2(job.output, dest)
        fold_code(dest)
        if (job.output.parent / "tables").exists():
            shutil.copytree(job.output.parent / "tables", tables, dirs_exist_ok=True)
    config = yaml.safe_load((staging / "_config.yml").read_text(encoding="utf-8"))
    theme = config.setdefault("sphinx", {}).setdefault("config", {}).setdefault("html_theme_options", {})
    theme["announcement"] = banner_text(cohort_name, simulated)  # the bar at the top of every page
    (staging / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def fold_code(nb_path: Path) -> None:
    """Fold every code cell's source on the site (a 'show code' toggle) so clinicians read prose and results
    first; the parameters cell stays open. The notebooks themselves are unchanged."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if cell["cell_type"] == "code" and "parameters" not in tags and "hide-input" not in tags:
            tags.append("hide-input")
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def banner_text(cohort_name: str, simulated: bool) -> str:
    """The line shown at the top of every page of the site."""
    if simulated:
        return (f"SIMULATED DATA: every number on this site comes from {cohort_name}, not from patients. "
                "It shows the methods, not clinical evidence.")
    return f"Cohort: {cohort_name}. Pseudonymised: patients appear as P01, P02, ..."


def render(staging: Path, log=print) -> Path:
    """Run Jupyter Book 1.x (strict: warnings are errors, every page rebuilt); return the HTML folder."""
    jb = Path(sys.executable).with_name("jupyter-book")  # the console script of this environment
    cmd = [str(jb), "build", str(staging), "--all", "-W", "-n", "--keep-going", "--path-output", str(staging / "_out")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=staging)
    log(f"  rendered  HTML in {time.perf_counter() - start:.1f} s")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildError(f"Jupyter Book failed (exit {proc.returncode}):\n{tail}")
    html = staging / "_out" / "_build" / "html"
    if not (html / "index.html").exists():
        raise BuildError(f"Jupyter Book exited 0 but wrote no site at {html}")
    shutil.copytree(staging / "_tables", html / "tables", dirs_exist_ok=True)
    return html


def publish(html: Path, out: Path) -> None:
    """Replace the site at `out` by `html` with renames only, so readers never see half a site."""
    out.parent.mkdir(parents=True, exist_ok=True)
    new = out.with_name(out.name + ".new")
    old = out.with_name(out.name + ".old")
    for p in (new, old):
        shutil.rmtree(p, ignore_errors=True)
    shutil.move(str(html), str(new))
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def build(cohort: str | Path = SHIPPED_COHORT, out: str | Path = BUILD_DIR / "html", workers: int | None = None,
          log=print) -> Path:
    """Validate -> execute (cached, parallel) -> render -> publish atomically. Return the site folder."""
    from helpers.cohort import CohortError, remember, validate

    t0 = time.perf_counter()
    cohort_path, out = resolve(cohort), resolve(out)
    log(f"[1/4] validating {cohort_path.name}")
    report, data = validate(cohort_path)
    for w in report.warnings:
        log(f"  {w}")
    if data is None:
        raise CohortError(report)
    remember(cohort_path, data)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(cohort_path, notebook_paths())
    digest = site_hash(jobs)
    if site_is_current(out, digest):  # rendering alone takes longer than everything else of a no-op build
        log(f"[2/4] site unchanged: inputs hash {digest[:12]} = the site's {SITE_HASH_FILE}; "
            "execution and rendering skipped")
        log(f"done in {time.perf_counter() - t0:.1f} s: open {out / 'index.html'}")
        return out
    log(f"[2/4] executing {len(jobs)} notebooks")
    execute_all(jobs, workers or os.cpu_count() or 1, log)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=BUILD_DIR))
    try:
        log("[3/4] rendering the book")
        stage_sources(staging, jobs, data.name, data.simulated)
        html = render(staging, log)
        (html / SITE_HASH_FILE).write_text(digest + "\n", encoding="utf-8")
        log(f"[4/4] publishing to {out}")
        publish(html, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"done in {time.perf_counter() - t0:.1f} s: open {out / 'index.html'}")
    return out


def update_committed_notebooks(paths: list[Path] | None = None, workers: int | None = None, log=print) -> None:
    """Re-execute notebooks in place on the shipped cohort (no parameters) so their outputs can be committed."""
    paths = [resolve(p) for p in paths] if paths else notebook_paths()
    jobs = [Job(p, p, {}, "") for p in paths]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for name, secs, error in pool.map(_execute, jobs):
            log(f"  {'FAILED' if error else 'executed'}  {name} in {secs:.1f} s" + (f": {error}" if error else ""))
            if error:
                raise BuildError(f"{name} failed at {error}")
