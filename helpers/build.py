"""The pipeline: validate a cohort -> execute every notebook of `_toc.yml` with papermill -> render -> publish.

Jupyter Book renders the executed notebooks and never executes them itself. Executed notebooks are
cached on the content of the notebook, the cohort files, the helpers package and the parameters
(nothing changed, nothing re-executed); each cache entry carries a checksum of its files and an entry
that fails it is discarded and re-executed. Everything is written in a staging folder owned by this
build (its process id in the name); the site replaces the previous one only when the whole build
succeeded, so a failed, interrupted or killed build leaves the last good site untouched, and the next
build removes the staging folders of builds that are no longer running. One build at a time writes a
given output folder (a lock file naming the owner's process id).

The shipped (simulated) cohort is cached in `_build/.cache`; a centre's own cohort in the private
folder `<out>.cache` beside its site, never in the shared one (`python -m helpers clean` removes both).
"""
from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers.paths import BUILD_DIR, CACHE_ENV, CHECKING_ENV, NOTEBOOKS_DIR, PROJECT_ROOT, SHIPPED_COHORT, private_cache, resolve

SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks")
CACHE_DIR = BUILD_DIR / ".cache"
SITE_HASH_FILE = ".build-hash"  # in the published site: the hash of the inputs it was built from
MANIFEST = "manifest.json"  # in each cache entry: the SHA-256 of every file in it
DEFAULT_TIMEOUT = 300  # seconds per cell when _config.yml sets no execute.timeout
INTERRUPTED = "interrupted: nothing published; the previous site is untouched"


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; the build stopped (a BaseException so no `except Exception` swallows it)."""

    def __init__(self, signum: int, published: bool = False):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.published = signum, published

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def message(self) -> str:
        return "interrupted: the new site had already been published whole" if self.published else INTERRUPTED


@dataclass(frozen=True)
class Job:
    """One notebook to execute: source, cache-entry notebook, parameters and the cache key."""

    source: Path
    output: Path
    parameters: dict
    key: str


# ----------------------------------------------------------------------------------------- the book


def toc_files(root: Path = PROJECT_ROOT) -> list[str]:
    """Every `file:` of `_toc.yml` in reading order (root first), as written there (no suffix)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for key in ("root", "parts", "chapters", "sections"):
                if key in node:
                    walk({"file": node[key]} if key == "root" else node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def notebook_paths(root: Path | None = None) -> list[Path]:
    """Every notebook of the table of contents, in reading order: a new notebook in `_toc.yml` is executed."""
    root = root or NOTEBOOKS_DIR.parent
    paths = []
    for f in toc_files(root):
        p = root / f
        nb = p if p.suffix == ".ipynb" else p.with_name(p.name + ".ipynb")
        if nb.exists() and nb not in paths:
            paths.append(nb)
    return paths


def _rel(p: Path, root: Path) -> str:
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p.relative_to(p.anchor))


def _digest(paths: list[Path], root: Path = PROJECT_ROOT) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(_rel(p, root).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def code_digest(nb: Path, root: Path = PROJECT_ROOT) -> str:
    """Hash of what executing a notebook depends on: its path, kernel and code cells (source and tags).

    Markdown is not executed, so a prose edit keeps the cached outputs (as jupyter-cache keys notebooks);
    the site takes the current prose from the source notebook (`with_current_prose`)."""
    data = json.loads(nb.read_text(encoding="utf-8"))
    kernel = (data.get("metadata", {}).get("kernelspec") or {}).get("name", "")
    cells = [["".join(c["source"]) if isinstance(c["source"], list) else c["source"],
              sorted(c.get("metadata", {}).get("tags", []))] for c in data["cells"] if c["cell_type"] == "code"]
    return hashlib.sha256(json.dumps([_rel(nb, root), kernel, cells]).encode()).hexdigest()


def with_current_prose(executed: Path, source: Path, dest: Path) -> None:
    """Write to `dest` the source notebook's cells, each code cell as executed (outputs, shown parameters):
    code cells pair up in order, as they are the same cells whenever the cache key matched."""
    ran = json.loads(executed.read_text(encoding="utf-8"))
    src = json.loads(source.read_text(encoding="utf-8"))
    done = iter(c for c in ran["cells"] if c["cell_type"] == "code")
    ran["cells"] = [next(done) if c["cell_type"] == "code" else c for c in src["cells"]]
    dest.write_text(json.dumps(ran, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def cohort_files(cohort: Path) -> list[Path]:
    """The files that make up a cohort (a workbook, or the folder's CSV and YAML files)."""
    if cohort.is_file():
        return [cohort]
    return sorted(p for p in cohort.iterdir() if p.suffix in (".csv", ".yml", ".yaml"))


def cohort_hash(cohort: Path) -> str:
    """SHA-256 over the cohort's files (content and names): the cohort's identity on the reproducibility page."""
    return _digest(cohort_files(cohort))


def environment_hash(root: Path = PROJECT_ROOT) -> str:
    """Hash of the helpers package (code and data files), the stored fragility run and the pinned requirements."""
    files = [f for f in sorted((root / "helpers").rglob("*")) if f.is_file() and "__pycache__" not in f.parts]
    files += sorted(f for f in (root / "data" / "fragility").glob("*") if f.is_file())
    return _digest(files + [f for f in [root / "requirements.txt"] if f.exists()], root)


def is_shipped(cohort: Path) -> bool:
    """True for the book's own simulated cohort (the only one whose outputs may sit in the shared cache)."""
    return cohort.resolve() == SHIPPED_COHORT.resolve()


def cohort_parameters(cohort: Path) -> dict:
    """Papermill parameters: none for the shipped cohort (the notebooks' defaults), else the cohort path."""
    return {} if is_shipped(cohort) else {"cohort": str(cohort.resolve())}


def cell_timeout(root: Path = PROJECT_ROOT) -> int:
    """Seconds a cell may run: `execute.timeout` in `_config.yml` (Jupyter Book's key), else 300."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    value = (config.get("execute") or {}).get("timeout", DEFAULT_TIMEOUT)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_TIMEOUT


def plan_jobs(cohort: Path, notebooks: list[Path], cache: Path = CACHE_DIR, root: Path = PROJECT_ROOT) -> list[Job]:
    """One job per notebook, its cache key over the notebook's code, cohort, helpers, requirements and parameters."""
    base = cohort_hash(cohort) + environment_hash(root)
    jobs = []
    for nb in notebooks:
        params = cohort_parameters(cohort)
        key = hashlib.sha256((base + code_digest(nb, root) + json.dumps(params, sort_keys=True)).encode()).hexdigest()[:20]
        entry = cache / f"{nb.stem}-{key}"
        params["tables_dir"] = str(entry / "tables")
        jobs.append(Job(nb, entry / nb.name, params, key))
    return jobs


# ------------------------------------------------------------------------------- the cache entries


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def seal(folder: Path, key: str) -> None:
    """Write the entry's manifest (every file's SHA-256) last, atomically: an entry without it is unfinished."""
    files = {str(p.relative_to(folder)): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"key": key, "files": files}, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def entry_problem(job: Job) -> str | None:
    """None when the job's cache entry is whole (its files match the manifest), else what is wrong."""
    folder = job.output.parent
    if not folder.is_dir():
        return "missing"
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
        if manifest.get("key") != job.key or set(manifest["files"]) != files or job.output.name not in files:
            return "its files do not match its manifest"
        bad = [name for name, digest in manifest["files"].items() if _sha256(folder / name) != digest]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "no readable manifest"
    return f"checksum mismatch in {', '.join(bad)}" if bad else None


def install_entry(staged: Path, job: Job) -> None:
    """Move a sealed staged entry into the cache by renames (a concurrent build may have put one there)."""
    final = job.output.parent
    if final.exists():
        if entry_problem(job) is None:
            shutil.rmtree(staged, ignore_errors=True)
            return
        trash = final.with_name(f".trash-{os.getpid()}-{final.name}")
        final.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged.rename(final)


def clean_notebook(path: Path) -> None:
    """Drop volatile papermill metadata and the injected-parameters cell, after writing the values the page was
    executed with into its `parameters` cell (the cohort by its project path or folder name, never a local path)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["metadata"].pop("papermill", None)
    injected = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    cells = []
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue
        if "parameters" in tags and injected:
            cell["source"] = shown_parameters("".join(cell["source"]), "".join(injected[0]["source"]))
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    nb["cells"] = cells
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


HIDDEN_PARAMETERS = ("tables_dir",)  # where the build writes CSVs: a local path, not an analysis choice


def shown_parameters(defaults: str, injected: str) -> str:
    """The parameters cell's source with the injected values in place of the defaults (comments kept)."""
    import ast

    from helpers.page import shown_source

    values = {}
    for node in ast.parse(injected).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name not in HIDDEN_PARAMETERS:
                value = ast.literal_eval(node.value)
                values[name] = shown_source(value) if name == "cohort" else value
    lines = []
    for line in defaults.splitlines(keepends=True):
        head, sep, comment = line.partition("#")
        name = head.split("=")[0].strip()
        if "=" in head and name in values:
            shown = json.dumps(values[name]) if isinstance(values[name], str) else repr(values[name])
            line = f"{name} = {shown}" + (f"  #{comment}" if sep else "\n")
        lines.append(line)
    return "".join(lines)


# -------------------------------------------------------------------------------- execution


SECONDS_PER_BYTE = 1.2e-5  # committed notebooks carry their outputs: ~12 s per MB of them, on 2 cores


def _by_expected_time(jobs: list[Job], cache: Path) -> list[Job]:
    """Longest first, so the workers finish together: the last recorded times, else (a cold cache, a new
    notebook) a guess from the size of the committed notebook with its outputs (figures cost the most)."""
    try:
        seen = json.loads((cache / "timings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}

    def expected(job: Job) -> float:
        if job.source.stem in seen:
            return float(seen[job.source.stem])
        try:
            return job.source.stat().st_size * SECONDS_PER_BYTE
        except OSError:
            return 1e9
    return sorted(jobs, key=lambda j: -expected(j))


def _record_times(cache: Path, outcomes) -> None:
    path = cache / "timings.json"
    try:
        seen = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    seen.update({Path(o.name).stem: round(o.seconds, 2) for o in outcomes if not o.error})
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(seen, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def open_pool(jobs: list[Job], workers: int, stage: Path, cache: Path, root: Path, timeout: int,
              confined: set[int] | None = None):
    """Start the workers (their kernels import what the notebooks import while the build validates), on the
    `confined` cores until `release_cores` (helpers.cores)."""
    from helpers.executor import KernelPool, preload_imports

    size = max(1, min(workers, len(jobs)))
    return KernelPool(size, timeout, preload_imports([j.source for j in jobs]), cache / "logs",
                      stage / "kernels", root, confined)


def execute_all(jobs: list[Job], workers: int, log=print, pool=None, stage: Path | None = None,
                cache: Path | None = None, root: Path = PROJECT_ROOT, timeout: int | None = None,
                gate: Callable[[], None] | None = None) -> None:
    """Execute the jobs whose cache entry is not whole, in warm kernels; raise BuildError naming each failure.

    Notebooks that succeed are cached even when others fail. `gate` is called before each outcome is taken
    (the validation's held-back checks, decided at the first: a cohort they refuse stops the build before
    anything is cached).
    """
    from helpers.executor import Task

    cache = cache or (jobs[0].output.parent.parent if jobs else CACHE_DIR)
    todo = []
    for j in jobs:
        problem = entry_problem(j)
        if problem is None:
            log(f"  cached    {j.source.name}")
        else:
            if problem != "missing":
                log(f"  discarded the cache entry of {j.source.name} ({problem}); re-executing")
                shutil.rmtree(j.output.parent, ignore_errors=True)
            todo.append(j)
    if not todo:
        if pool is not None:
            pool.close()
        return
    own_stage = stage is None
    stage = stage or Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-", dir=cache))
    try:
        staged = {}
        for j in _by_expected_time(todo, cache):
            folder = stage / "exec" / j.output.parent.name
            (folder / "tables").mkdir(parents=True)
            staged[j.source.name] = (j, folder, Task(j.source.name, str(j.source), str(folder / j.source.name),
                                                     {**j.parameters, "tables_dir": str(folder / "tables")},
                                                     str(j.source.parent)))
        pool = pool or open_pool(todo, workers, stage, cache, root, timeout or cell_timeout(root))
        failures: list[str] = []

        def report(outcome) -> None:
            if gate is not None:
                gate()
            job, folder, _ = staged[outcome.name]
            if outcome.error:
                failures.append(f"{outcome.name} failed after {outcome.seconds:.1f} s at {outcome.error}")
                log(f"  FAILED    {outcome.name} after {outcome.seconds:.1f} s: {outcome.error}")
                return
            clean_notebook(folder / job.source.name)
            seal(folder, job.key)
            install_entry(folder, job)
            log(f"  executed  {outcome.name} in {outcome.seconds:.1f} s")

        with pool:
            outcomes = pool.run([t for _, _, t in staged.values()], report)
        _record_times(cache, outcomes)
    finally:
        if own_stage:
            shutil.rmtree(stage, ignore_errors=True)
    if failures:
        raise BuildError("notebook execution failed:\n  " + "\n  ".join(failures))


# ---------------------------------------------------------------------------------- rendering


def source_files(root: Path = PROJECT_ROOT) -> list[Path]:
    """Every file of the book's sources (configuration, table of contents, prose pages, notebooks)."""
    files = []
    for name in SOURCES:
        src = root / name
        found = sorted(src.rglob("*")) if src.is_dir() else [src]
        files += [f for f in found if f.is_file() and not {".ipynb_checkpoints", "__pycache__"} & set(f.parts)]
    return files


def site_hash(jobs: list[Job], root: Path = PROJECT_ROOT) -> str:
    """Hash of every input of the site: the book sources and each notebook's cache key.

    The keys already cover the cohort files (so its name and the banner), the helpers package
    (this pipeline included) and the pinned requirements (so Jupyter Book's version).
    """
    keys = "".join(j.key for j in jobs)
    return hashlib.sha256((_digest(source_files(root), root) + keys).encode()).hexdigest()


def site_is_current(out: Path, digest: str) -> bool:
    """True when the site at `out` was built from exactly these inputs (its recorded hash equals `digest`)."""
    recorded = out / SITE_HASH_FILE
    return (out / "index.html").is_file() and recorded.is_file() and \
        recorded.read_text(encoding="utf-8").strip() == digest


def stage_frame(staging: Path, jobs: list[Job], cohort_name: str, simulated: bool,
                root: Path = PROJECT_ROOT) -> None:
    """Copy the book's sources but the notebooks that execute into staging, with the cohort's banner on every
    page: what Jupyter Book reads when it starts (configuration, table of contents, references, prose)."""
    executed = {job.source.resolve() for job in jobs}
    staging.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        src = root / name
        if src.is_dir():
            ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
            shutil.copytree(src, staging / name, ignore=lambda d, names: {
                *ignore(d, names), *(n for n in names if (Path(d) / n).resolve() in executed)})
        else:
            shutil.copy2(src, staging / name)
    config = yaml.safe_load((staging / "_config.yml").read_text(encoding="utf-8"))
    theme = config.setdefault("sphinx", {}).setdefault("config", {}).setdefault("html_theme_options", {})
    theme["announcement"] = banner_text(cohort_name, simulated)  # the bar at the top of every page
    (staging / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def stage_notebooks(staging: Path, jobs: list[Job], root: Path = PROJECT_ROOT) -> None:
    """Put the executed notebooks (current prose, code folded) and their downloadable tables into staging."""
    tables = staging / "_tables"
    tables.mkdir()
    for job in jobs:
        dest = staging / job.source.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with_current_prose(job.output, job.source, dest)
        fold_code(dest)
        if (job.output.parent / "tables").exists():
            shutil.copytree(job.output.parent / "tables", tables, dirs_exist_ok=True)


def fold_code(nb_path: Path) -> None:
    """Fold every code cell's source on the site (a 'show code' toggle) so clinicians read prose and results
    first; the parameters cell stays open. The notebooks themselves are unchanged."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        shown = not {"parameters", "hide-input", "remove-input", "remove-cell"} & set(tags)
        if cell["cell_type"] == "code" and shown:
            tags.append("hide-input")
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def banner_text(cohort_name: str, simulated: bool) -> str:
    """The line shown at the top of every page of the site."""
    if simulated:
        return (f"SIMULATED DATA: every number on this site comes from {cohort_name}, not from patients. "
                "It shows the methods, not clinical evidence.")
    return f"Cohort: {cohort_name}. Pseudonymised: patients appear as P01, P02, ..."


def _spawn(cmd: list[str], cwd: Path, stdin: int | None = None) -> subprocess.Popen:
    """Start `cmd` in its own session, dying with this process (or the thread calling this, if it ends
    first: `executor.orphan_proof`), its output captured."""
    from helpers.executor import orphan_proof

    return subprocess.Popen(orphan_proof(cmd), cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _run_killable(cmd: list[str], cwd: Path, started: subprocess.Popen | None = None) -> subprocess.CompletedProcess:
    """Run `cmd` (or tell the `started` one to go) to its end; on an interruption kill its whole group."""
    from helpers.executor import kill_process_group

    proc = started or _spawn(cmd, cwd)
    try:
        out, _ = proc.communicate("go\n" if started else None)
    except BaseException:
        kill_process_group(proc.pid)
        proc.wait()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


RENDER = """\
import functools, os, sys
sys.modules.setdefault("rfc3987_syntax", None)  # as in helpers/__init__.py: 2 s of grammar compiling saved
from importlib import metadata
import jinja2, pybtex.plugin as P, sphinx.jinja2glue as J
_installed = functools.lru_cache(maxsize=None)(metadata.entry_points)  # sphinxcontrib-bibtex looks its styles
P.entry_points = lambda **which: _installed().select(**which)  # up per citation, each a scan of every package
def templates_with_bytecode(loader, builder, *args, _init=J.BuiltinTemplateLoader.init, **kwargs):
    _init(loader, builder, *args, **kwargs)  # the theme's templates compiled once, kept beside the output
    os.makedirs(cache := os.path.join(builder.outdir, os.pardir, ".jinja"), exist_ok=True)
    loader.environment.bytecode_cache = jinja2.FileSystemBytecodeCache(cache)  # (checked against the source)
J.BuiltinTemplateLoader.init = templates_with_bytecode
if sys.argv[1] == "--wait":  # started early (build.EarlyRender): set the Sphinx application up while the
    del sys.argv[1]            # notebooks run, then read and write the pages once they are staged
    import sphinx.application as A
    def build_when_told(app, *args, _build=A.Sphinx.build, **kwargs):
        if sys.stdin.readline().strip() != "go":  # the build stopped before rendering
            os._exit(0)
        return _build(app, *args, **kwargs)
    A.Sphinx.build = build_when_told
if sys.argv[1] == "--reuse":  # a kept folder: Sphinx re-reads the changed pages (book/_ext/write_changed.py
    del sys.argv[1]            # decides whether the others are written again)
from jupyter_book.cli.main import main
sys.argv = ["jupyter-book", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:  # how click ends; a message instead of a code is a failure, as Python reports it
    code = exc.code if exc.code is None or isinstance(exc.code, int) else (print(exc.code, file=sys.stderr) or 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)  # no tear-down of the thousands of loaded objects: 0.3-0.5 s the build would wait for
"""


def compile_helpers() -> None:
    """Write this package's bytecode (helpers/__pycache__, ignored by git) as pip does for the packages it installs.

    An editable install is not compiled, and with PYTHONDONTWRITEBYTECODE set (containers, this project's sandbox)
    Python never stores what it compiles: each kernel would compile the package's 16,000 lines again (0.4 s).
    Files already compiled are skipped; a read-only tree is left as it is.
    """
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent), maxlevels=0, quiet=2)


def render_dir(cache: Path, out: Path) -> Path:
    """The render folder kept for one output folder between builds (its Sphinx environment is reused)."""
    return cache / "render" / hashlib.sha256(str(out).encode()).hexdigest()[:16]


def copy_changed(src: Path, dest: Path) -> set[Path]:
    """Copy into `dest` the files of `src` whose bytes differ there (others keep their mtime); return all of
    `src`'s files, relative."""
    wanted = {f.relative_to(src) for f in src.rglob("*") if f.is_file()}
    for rel in sorted(wanted):
        target, source = dest / rel, src / rel
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return wanted


def sync_tree(src: Path, dest: Path) -> None:
    """Make `dest` hold exactly the files of `src`, rewriting only those whose bytes differ.

    Sphinx re-reads a page only when its file is newer than its environment, so unchanged pages
    keep their mtime and are not parsed again.
    """
    wanted = copy_changed(src, dest)
    if dest.exists():
        for f in sorted(dest.rglob("*"), reverse=True):
            if f.is_file() and f.relative_to(dest) not in wanted:
                f.unlink()
            elif f.is_dir() and not any(f.iterdir()):
                f.rmdir()


def render_command(staging: Path, work: Path | None) -> tuple[list[str], Path, Path]:
    """Jupyter Book's command for rendering `staging` (in the kept folder `work`, if any), its folder, its output."""
    if work is None:
        src, output = staging, staging / "_out"
        cmd = [sys.executable, "-c", RENDER, "build", str(src), "--all"]
    else:
        src, output = work / "src", work / "out"
        cmd = [sys.executable, "-c", RENDER, "--reuse", "build", str(src)]
    return cmd + ["-W", "-n", "--keep-going", "--path-output", str(output)], src, output


def give_back_memory() -> None:
    """Collect, then hand the C heap's free pages back to the system (glibc's malloc_trim): a large cohort's
    freed tables otherwise stay in the build's resident memory (about 230 MB at 5,000 patients) while the
    kernels grow."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to trim
        pass


class HeldChecks(threading.Thread):
    """The checks a validation held back (cohort.Checks: ranges, keys, rules across tables, plausibility),
    run in a thread while the kernels start on the cohort they only read. `passed` waits for them, logs the
    report's warnings, and stops the build with the whole report when they found an error (the stored
    cohort removed); once they pass, the report is stored and the stored cohort may be used by anyone."""

    def __init__(self, checks, report, cohort: Path, log):
        super().__init__(daemon=True, name="held checks")
        self.checks, self.report, self.cohort, self.log = checks, report, cohort, log
        self.failure: BaseException | None = None
        self.decided = False

    def run(self) -> None:
        try:
            if self.checks is not None:
                self.checks.run()
        except BaseException as exc:  # re-raised by `passed`, in the build's own thread
            self.failure = exc

    def passed(self) -> None:
        """Return when every check has passed (at once after the first call); else raise CohortError."""
        from helpers.cohort import CohortError, forget, remember_report

        if self.decided:
            return
        if self.is_alive() or self.ident is not None:
            self.join()
        else:
            self.run()
        self.decided, self.checks = True, None  # the parsed tables the checks held: freed
        give_back_memory()
        if self.failure is not None:
            raise self.failure
        for line in self.report.lines("warning"):  # grouped: a repeated problem is one line with its rows
            self.log(f"  {line}")
        if not self.report.ok:
            forget(self.cohort)
            raise CohortError(self.report)
        remember_report(self.cohort, self.report)


class EarlyRender:
    """Jupyter Book's process, started while the notebooks execute.

    As soon as the sources other than the executed notebooks are staged (`stage_frame`), it imports Sphinx
    and the book's extensions and sets the Sphinx application up (configuration, extensions, theme,
    references, the kept environment): 2-3 s that would otherwise follow the last notebook. It reads and
    writes the pages when `render` tells it to; a build that stops before rendering kills it.
    """

    def __init__(self, staging: Path, work: Path | None):
        self.staging, self.work = staging, work
        self.cmd, self.cwd, _ = render_command(staging, work)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the process once (later calls do nothing), after copying the staged frame into the kept folder."""
        if self.proc is None:
            if self.work is not None and self.staging.is_dir():
                copy_changed(self.staging, self.cwd)  # no deletions: the kept notebooks keep their mtime
            self.cwd.mkdir(parents=True, exist_ok=True)
            self.proc = _spawn([*self.cmd[:3], "--wait", *self.cmd[3:]], self.cwd, stdin=subprocess.PIPE)

    def take(self) -> subprocess.Popen | None:
        """The started process, handed over to `render` (None when never started)."""
        proc, self.proc = self.proc, None
        return proc

    def release_cores(self) -> None:
        """Let the process, started on the spare cores during the validation, run on every core."""
        from helpers import cores

        if self.proc is not None:
            cores.release([self.proc.pid])

    def kill(self) -> None:
        """End a process that will not be told to render."""
        from helpers.executor import kill_process_group

        if self.proc is not None:
            kill_process_group(self.proc.pid)
            self.proc.wait()
            self.proc = None


def declared_identity(cohort: Path) -> tuple[str, bool] | None:
    """The name and simulated flag that validation will read from a cohort folder's cohort.yml (None for a
    workbook or a cohort.yml that cannot be read): the frame, whose banner shows them, can be staged early."""
    from helpers.contract import cohort_identity

    yml = cohort / "cohort.yml"
    if not cohort.is_dir():
        return None
    try:
        meta = yaml.safe_load(yml.read_text(encoding="utf-8")) if yml.exists() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    meta = {} if meta is None else meta
    return cohort_identity(meta, cohort) if isinstance(meta, dict) else None


class HeadStart(threading.Thread):
    """Stages the frame and starts Jupyter Book's process (`EarlyRender`) while the cohort is still being
    validated, once every kernel is warm: a large cohort's validation outlasts the kernels' imports and
    leaves a core idle, on which Sphinx then sets itself up. A small cohort's validation ends first and
    the frame is staged after it, as before. The banner is the one cohort.yml declares
    (`declared_identity`); `finish` stages it again if the validated cohort's differs."""

    def __init__(self, early: EarlyRender, pool, staging: Path, jobs: list[Job], root: Path,
                 identity: tuple[str, bool] | None, before_start: threading.Thread, confined: set[int] | None = None):
        super().__init__(daemon=True)
        self.early, self.pool, self.staging, self.jobs, self.root = early, pool, staging, jobs, root
        self.confined = confined  # the cores a process started during the validation runs on (helpers.cores)
        self.identity, self.before_start = identity, before_start
        self.over = threading.Event()  # the validation has ended (or the build is stopping)
        self.settled = threading.Event()  # this thread has started Jupyter Book's process, or never will
        self.released = threading.Event()  # the build is over: the thread may end
        self.started_with: tuple[str, bool] | None = None

    def run(self) -> None:
        try:
            while self.identity is not None and self.pool is not None and not self.over.is_set():
                if self.pool.warm(0.05):
                    from helpers import cores

                    cores.confine(self.confined)  # this thread, and the process it starts, off the validation's core
                    self._start(self.identity)
                    break
        finally:
            self.settled.set()
        if self.started_with is not None:  # the process dies with the thread that started it (its parent for
            self.released.wait()  # PR_SET_PDEATHSIG, executor.orphan_proof): the thread lives as long as the build

    def _start(self, identity: tuple[str, bool]) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)  # a frame staged with another banner
        stage_frame(self.staging, self.jobs, *identity, self.root)
        self.before_start.join()  # the bytecode is written (long since) before a process starts
        self.early.start()
        self.started_with = identity

    def stop(self) -> None:
        """End the wait for warm kernels (at once, or after the start this thread is making)."""
        self.over.set()
        if self.is_alive():
            self.settled.wait()

    def finish(self, identity: tuple[str, bool]) -> None:
        """The validated cohort's banner: start Jupyter Book's process now if not yet started, and again
        if it was started with another banner."""
        self.stop()
        if self.started_with != identity:
            self.early.kill()
            self._start(identity)

    def release(self) -> None:
        """The build is over (Jupyter Book's process has ended or been killed): let the thread end."""
        self.over.set()
        self.released.set()
        if self.is_alive():
            self.join()


def render(staging: Path, log=print, work: Path | None = None, early: EarlyRender | None = None) -> Path:
    """Run Jupyter Book 1.x strictly (warnings are errors); return the HTML folder.

    With `work` (a folder kept between builds of one site), the sources are synced into it and
    Sphinx re-reads and writes only the pages that changed, or writes (and so checks the references of)
    every page when a changed page's title, sections or labels changed (book/_ext/write_changed.py);
    any failure discards `work` so the next build starts fresh. Without it, a fresh full build.
    """
    cmd, src, output = render_command(staging, work)
    if work is not None:
        sync_tree(staging, src)
    start = time.perf_counter()
    try:
        proc = _run_killable(cmd, src, early.take() if early else None)
        log(f"  rendered  HTML in {time.perf_counter() - start:.1f} s")
        html = output / "_build" / "html"
        if proc.returncode != 0:
            text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout).strip()  # Sphinx's colours
            if "No space left on device" in text:
                raise OSError(28, "No space left on device", str(output))
            lines = text.splitlines()
            problems = [ln for ln in lines if "WARNING" in ln or "ERROR" in ln or "Traceback" in ln][:25]
            raise BuildError(f"Jupyter Book failed (exit {proc.returncode}):\n" + "\n".join(problems or lines[-25:]))
        if not (html / "index.html").exists():
            raise BuildError(f"Jupyter Book exited 0 but wrote no site at {html}")
    except BaseException:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        raise
    site = staging.parent / "site"
    shutil.copytree(html, site)
    shutil.copytree(staging / "_tables", site / "tables", dirs_exist_ok=True)
    return site


_CRITICAL = threading.Event()  # set while publishing: a signal then waits until the renames are done
_PENDING: list[int] = []


def publish(html: Path, out: Path) -> None:
    """Replace the site at `out` by `html` with renames only, so readers never see half a site.

    The new site is first copied (or moved) beside `out`; a failure there (disk full, read-only
    folder) removes the copy and leaves the previous site as it was.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    new = out.with_name(f".{out.name}.new-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    for p in (new, old):
        shutil.rmtree(p, ignore_errors=True)
    try:
        shutil.move(str(html), str(new))
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    _CRITICAL.set()
    try:
        if out.exists():
            out.rename(old)
        new.rename(out)
    except BaseException:
        if old.exists() and not out.exists():
            old.rename(out)
        shutil.rmtree(new, ignore_errors=True)
        raise
    finally:
        _CRITICAL.clear()
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------ locks, signals, leftovers


REDELIVER_AFTER = 0.05  # seconds: an `Interrupted` a finalizer swallowed is raised again this much later


@contextmanager
def interruptible():
    """Turn SIGINT/SIGTERM into `Interrupted` (once; later signals during clean-up are ignored).

    A signal can land while the main thread runs a finalizer (a weakref callback, `__del__`), where Python
    prints "Exception ignored" and drops the exception; the build would then run on. Such an `Interrupted`
    is sent again, from a timer thread, so it surfaces where the main thread is once the finalizer is done.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []
    unraisable = sys.unraisablehook

    def handler(signum, _frame):
        if _CRITICAL.is_set():
            _PENDING.append(signum)
            return
        if not stopping:
            stopping.append(signum)
            raise Interrupted(signum)

    def swallowed(info) -> None:
        if not isinstance(info.exc_value, Interrupted):
            return unraisable(info)
        stopping.clear()
        threading.Timer(REDELIVER_AFTER, os.kill, (os.getpid(), info.exc_value.signum)).start()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = swallowed
    try:
        yield
        if _PENDING:
            raise Interrupted(_PENDING.pop(), published=True)
    finally:
        _PENDING.clear()
        sys.unraisablehook = unraisable
        for s, h in previous.items():
            signal.signal(s, h)


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def build_lock(out: Path, locks: Path, log=print):
    """Hold the lock of output folder `out`; if another build holds it, say which and wait for it."""
    import fcntl

    locks.mkdir(parents=True, exist_ok=True)
    path = locks / (hashlib.sha256(str(out).encode()).hexdigest()[:16] + ".lock")
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().split() or ["?"]
            log(f"  waiting   for the build with process id {owner[0]}, which is writing {out}")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {out}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def remove_leftovers(cache: Path, log=print) -> None:
    """Remove staging folders (`.build-<pid>-...`) and trash of builds whose process is gone."""
    if not cache.is_dir():
        return
    for p in cache.iterdir():
        parts = p.name.split("-")
        if p.name.startswith((".build-", ".trash-")) and len(parts) > 2 and parts[1].isdigit() \
                and not pid_alive(int(parts[1])):
            shutil.rmtree(p, ignore_errors=True)
            log(f"  removed   {p.name}, left by a build (process {parts[1]}) that did not finish")


@contextmanager
def cache_env(cache: Path):
    """Point helpers.paths.cache_dir() (this process, the workers and their kernels) at `cache`, and let the
    kernels use the cohort this build stores before its held-back checks end (cohort.CHECKING_ENV: the build
    publishes nothing unless they pass)."""
    values = {CACHE_ENV: str(cache), CHECKING_ENV: "1"}
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ------------------------------------------------------------------------------------- the build


def cache_for(cohort: Path, out: Path, root: Path = PROJECT_ROOT) -> Path:
    """The shared cache for the shipped cohort, the private `<out>.cache` for any other cohort."""
    if is_shipped(cohort):
        return CACHE_DIR if root == PROJECT_ROOT else root / "_build" / ".cache"
    return private_cache(out)


def build(cohort: str | Path = SHIPPED_COHORT, out: str | Path = BUILD_DIR / "html", workers: int | None = None,
          log=print, timeout: int | None = None, root: Path | None = None) -> Path:
    """Validate -> execute (cached, warm kernels) -> render -> publish atomically. Return the site folder."""
    t0 = time.perf_counter()
    root = root or NOTEBOOKS_DIR.parent
    cohort_path, out = resolve(cohort), resolve(out)
    cache = cache_for(cohort_path, out, root)
    cache.mkdir(parents=True, exist_ok=True, **({} if is_shipped(cohort_path) else {"mode": 0o700}))
    with interruptible(), cache_env(cache), build_lock(out, root / "_build" / ".locks", log):
        remove_leftovers(cache, log)
        jobs = plan_jobs(cohort_path, notebook_paths(root), cache, root)
        digest = site_hash(jobs, root)
        if site_is_current(out, digest):  # built from these very inputs (so already validated)
            log(f"[1/4] site unchanged: inputs hash {digest[:12]} = the site's {SITE_HASH_FILE}; "
                "validation, execution and rendering skipped")
            log(f"done in {time.perf_counter() - t0:.1f} s: open {out / 'index.html'}")
            return out
        if not is_shipped(cohort_path):
            log(f"  private cache for this cohort: {cache}")
        stage = Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-", dir=cache))
        try:
            _execute_and_publish(cohort_path, out, jobs, digest, stage, cache, root,
                                 workers or os.cpu_count() or 1, timeout or cell_timeout(root), log)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    log(f"done in {time.perf_counter() - t0:.1f} s: open {out / 'index.html'}")
    return out


def _execute_and_publish(cohort_path: Path, out: Path, jobs: list[Job], digest: str, stage: Path, cache: Path,
                         root: Path, workers: int, timeout: int, log) -> None:
    """The steps of a build that write: kernels warm up during validation, then execute (while Jupyter Book
    sets itself up), render, publish."""
    from helpers import cores

    todo = [j for j in jobs if entry_problem(j) is not None]
    spare = cores.spare()  # while the cohort is validated, what waits for it runs on the other cores
    pool = open_pool(todo, workers, stage, cache, root, timeout, spare) if todo else None  # kernels start: first
    compiling = threading.Thread(target=compile_helpers, daemon=True)  # while the kernels import their modules
    compiling.start()
    from helpers.cohort import CohortError, remember, validated_in_steps  # pandas, pandera: 0.5 s the kernels need not wait

    early = EarlyRender(stage / "render", render_dir(cache, out))  # started once the frame is staged
    head_start = HeadStart(early, pool, stage / "render", jobs, root, declared_identity(cohort_path), compiling, spare)
    try:
        try:
            log(f"[1/4] validating {cohort_path.name}")
            head_start.start()
            report, data, checks = validated_in_steps(cohort_path)
            if pool is not None:
                pool.release_cores()  # the validation is over: every core for the kernels
            held = HeldChecks(checks, report, cohort_path, log)
            if data is None or checks is None:
                held.passed()  # the report is whole (refused, or stored by an earlier build): its warnings now
            remember(cohort_path, data)  # its report once every check has passed (HeldChecks.passed)
            name, simulated = data.name, data.simulated
            del report, data, checks  # the kernels load the cohort themselves: free this copy (large cohorts)
            give_back_memory()
            held.start()  # the checks that only read the tables, while the kernels start on the cohort
            head_start.finish((name, simulated))  # the frame Jupyter Book starts from, its process started
            early.release_cores()
            log(f"[2/4] executing {len(jobs)} notebooks ({len(todo)} not cached)")
            execute_all(jobs, workers, log, pool=pool, stage=stage, cache=cache, root=root, timeout=timeout,
                        gate=held.passed)
            pool = None
            held.passed()  # nothing executed (every notebook cached): the checks still decide
        finally:
            head_start.stop()
            if pool is not None:
                pool.kill()
        try:
            log("[3/4] rendering the book")
            stage_notebooks(stage / "render", jobs, root)
            html = render(stage / "render", log, work=render_dir(cache, out), early=early)
            (html / SITE_HASH_FILE).write_text(digest + "\n", encoding="utf-8")
            log(f"[4/4] publishing to {out}")
            publish(html, out)
        except OSError as exc:
            raise BuildError(f"could not write the site ({write_failure(exc, out)}); the previous site is untouched") from None
    finally:
        early.kill()
        head_start.release()


def write_failure(exc: OSError, where: Path) -> str:
    """One line for a failed write: the reason and the file ('No space left on device: /x/y.html')."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        src, dst, why = exc.args[0][0]
        return f"{why.split('] ')[-1].split(': ')[0]}: {dst}"
    return f"{exc.strerror or exc}: {exc.filename or where}"


def update_committed_notebooks(paths: list[Path] | None = None, workers: int | None = None, log=print) -> None:
    """Re-execute notebooks on the shipped cohort (no parameters) and replace them only when all succeeded."""
    paths = [resolve(p) for p in paths] if paths else notebook_paths()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-", dir=CACHE_DIR))
    try:
        jobs = [Job(p, stage / "final" / f"{p.stem}-0" / p.name, {}, "update") for p in paths]
        with interruptible(), cache_env(CACHE_DIR):
            execute_all(jobs, workers or os.cpu_count() or 1, log, stage=stage, cache=CACHE_DIR)
        for job in jobs:
            os.replace(job.output, job.source)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def clean(out: str | Path | None = None, log=print, build_dir: Path = BUILD_DIR) -> list[Path]:
    """Remove the execution caches: the shared `_build/.cache` and, for a site folder, its private cache."""
    targets = [build_dir / ".cache", build_dir / "logs", build_dir / "tables"]
    targets += [private_cache(out)] if out is not None else []
    removed = []
    for t in targets:
        if t.exists():
            shutil.rmtree(t)
            removed.append(t)
            log(f"removed {t}")
    return removed
