"""The pipeline under faults: Ctrl-C, SIGTERM, a killed build, a hung cell, a dead kernel, a corrupt cache
entry, a failed write while publishing, a closed output pipe. Tiny synthetic notebooks keep it fast."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from helpers import build
from helpers.executor import kill_process_group
from helpers.paths import PROJECT_ROOT, SHIPPED_COHORT

QUIET = {"log": lambda *_: None}


def notebook(*cells: str) -> dict:
    """A notebook with a parameters cell, then one code cell per string and a heading."""
    code = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {"tags": ["parameters"]} if i == 0
             else {}, "outputs": [], "source": src} for i, src in enumerate(["tables_dir = 'x'", *cells])]
    return {"cells": code + [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# A page\n\nText."}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def tiny_book(root: Path, notebooks: dict[str, list[str]]) -> Path:
    """A throw-away Jupyter Book project: an intro page and the given notebooks as chapters."""
    (root / "book").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "_config.yml").write_text('title: Tiny\nonly_build_toc_files: true\nexclude_patterns: ["_build/*"]\n'
                                      'execute:\n  execute_notebooks: "off"\n  timeout: 60\n')
    (root / "book" / "intro.md").write_text("# Tiny book\n\nIntro.\n")
    chapters = "".join(f"  - file: notebooks/{n}\n" for n in notebooks)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nchapters:\n{chapters}")
    for name, cells in notebooks.items():
        (root / "notebooks" / f"{name}.ipynb").write_text(json.dumps(notebook(*cells)))
    return root


def jobs_for(root: Path) -> list[build.Job]:
    cache = root / "_build" / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    return build.plan_jobs(SHIPPED_COHORT, build.notebook_paths(root), cache, root)


def fake_site(path: Path) -> dict[str, bytes]:
    """A previous site (a page and its recorded hash); returns its bytes for comparison."""
    path.mkdir(parents=True)
    (path / "index.html").write_text("<p>the previous site</p>")
    (path / build.SITE_HASH_FILE).write_text("old\n")
    return snapshot(path)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fake_render(staging: Path, log=print, **_) -> Path:
    """Stands in for Jupyter Book (the tests of faults do not need real HTML)."""
    html = staging / "_out" / "html"
    html.mkdir(parents=True)
    (html / "index.html").write_text("<p>new</p>")
    (html / "page.html").write_text("<p>page</p>" * 1000)
    return html


DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from helpers import build
    from helpers.__main__ import _log
    from helpers.build import BuildError, Interrupted
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        build.build(out=out, root=root, workers=2, log=_log)
    except Interrupted as exc:
        print(exc.message, file=sys.stderr)
        sys.exit(exc.exit_code)
""")


def start_build(root: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(root), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def wait_for_kernels(proc: subprocess.Popen, n: int, timeout: float = 60) -> list[psutil.Process]:
    """Wait until the build runs `n` kernels (ipykernel processes); return the build's whole process tree."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = psutil.Process(proc.pid).children(recursive=True)
        kernels = [p for p in tree if "ipykernel" in " ".join(p.cmdline())]
        if len(kernels) >= n:
            time.sleep(1.0)  # let the kernels reach the sleeping cell
            return psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the build did not start its kernels")


def all_gone(procs: list[psutil.Process], timeout: float = 5) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


SLOW = {"slow_a": ["import time\ntime.sleep(120)"], "slow_b": ["import time\ntime.sleep(120)"]}


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_workers_and_kernels_and_publishes_nothing(tmp_path, signum, code):
    root = tiny_book(tmp_path / "book", SLOW)
    before = fake_site(tmp_path / "site")
    proc = start_build(root, tmp_path / "site")
    tree = wait_for_kernels(proc, 2)
    (os.killpg if signum == signal.SIGINT else os.kill)(proc.pid, signum)  # Ctrl-C goes to the whole group
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, out + err
    assert err.strip() == build.INTERRUPTED and "Traceback" not in out + err
    assert all_gone(tree)
    assert not [p for p in (root / "_build" / ".cache").iterdir() if p.name.startswith(".build-")]
    assert snapshot(tmp_path / "site") == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]


SWALLOWED = textwrap.dedent("""
    import os, signal, time, weakref
    from helpers.build import Interrupted, interruptible

    class Frame:
        pass

    def finalizer(_ref):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):  # the handler runs here, inside the weakref callback, which drops what it raises
            pass

    frame, start = Frame(), time.monotonic()
    ref = weakref.ref(frame, finalizer)
    try:
        with interruptible():
            del frame
            time.sleep(20)
        print("ran on")
    except Interrupted as exc:
        print(exc.signum, time.monotonic() - start < 5)
""")


def test_a_signal_landing_in_a_finalizer_still_stops_the_build():
    """CI once saw SIGTERM arrive inside pandera's weakref callback: Python dropped the `Interrupted`
    ("Exception ignored in ... cleanup") and the build ran on; it must be raised again afterwards."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    run = subprocess.run([sys.executable, "-c", SWALLOWED], capture_output=True, text=True, env=env, timeout=60)
    assert run.stdout.split() == [str(int(signal.SIGTERM)), "True"]
    assert "Exception ignored" not in run.stderr and "Traceback" not in run.stderr


def test_killed_build_takes_its_workers_and_kernels_along_and_the_next_build_cleans_up(tmp_path):
    root = tiny_book(tmp_path / "book", SLOW)
    proc = start_build(root, tmp_path / "site")
    tree = wait_for_kernels(proc, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert all_gone(tree, timeout=10)
    cache = root / "_build" / ".cache"
    left = [p for p in cache.iterdir() if p.name.startswith(".build-")]
    assert len(left) == 1  # the staging folder of the killed build ...
    messages = []
    build.remove_leftovers(cache, log=messages.append)
    assert not left[0].exists() and "did not finish" in messages[0]  # ... is removed by the next build


def test_endless_cell_is_stopped_by_the_timeout_and_other_notebooks_are_cached(tmp_path):
    root = tiny_book(tmp_path / "book", {"good": ["x = 1\nx"], "hung": ["y = 2", "while True:\n    pass"]})
    jobs = jobs_for(root)
    with pytest.raises(build.BuildError) as err:
        build.execute_all(jobs, 2, root=root, timeout=2, **QUIET)
    text = str(err.value)
    assert 'hung.ipynb failed' in text and 'cell 3 ("while True:") did not finish within 2 s' in text
    assert "good.ipynb" not in text
    assert build.entry_problem(jobs[0]) is None and build.entry_problem(jobs[1]) == "missing"


def test_kernel_killed_mid_run_is_reported_with_notebook_and_reason(tmp_path):
    kill = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    root = tiny_book(tmp_path / "book", {"dies": [kill], "good": ["1 + 1"]})
    jobs = jobs_for(root)
    with pytest.raises(build.BuildError) as err:
        build.execute_all(jobs, 1, root=root, timeout=30, **QUIET)
    assert 'dies.ipynb failed' in str(err.value)
    assert 'cell 2 ("import os, signal"): the kernel was killed by SIGKILL (out of memory?)' in str(err.value)
    assert build.entry_problem(jobs[1]) is None  # the next notebook ran in a new kernel


def test_truncated_cache_entry_is_discarded_and_re_executed(tmp_path):
    root = tiny_book(tmp_path / "book", {"a": ["print('hello')"]})
    [job] = jobs_for(root)
    build.execute_all([job], 1, root=root, **QUIET)
    whole = job.output.read_bytes()
    job.output.write_bytes(whole[: len(whole) // 2])  # a crash in the middle of a write
    assert build.entry_problem(job) == f"checksum mismatch in {job.output.name}"
    messages = []
    build.execute_all([job], 1, root=root, log=messages.append)
    assert any("discarded the cache entry of a.ipynb" in m for m in messages)
    assert build.entry_problem(job) is None and json.loads(job.output.read_text())["cells"]
    (job.output.parent / build.MANIFEST).unlink()  # an entry never sealed counts as absent
    assert build.entry_problem(job) == "no readable manifest"


def test_failed_write_while_publishing_leaves_the_previous_site(tmp_path, monkeypatch):
    root = tiny_book(tmp_path / "book", {"a": ["1"]})
    before = fake_site(tmp_path / "site")
    monkeypatch.setattr(build, "render", fake_render)
    real_copy = shutil.copy2
    calls = []

    def full_disk(src, dst, *a, **k):
        if calls:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        calls.append(src)
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(shutil, "move", lambda s, d: shutil.copytree(s, d, copy_function=full_disk))
    with pytest.raises(build.BuildError) as err:
        build.build(out=tmp_path / "site", root=root, **QUIET)
    assert str(err.value).startswith("could not write the site (No space left on device")
    assert str(err.value).endswith("the previous site is untouched") and "\n" not in str(err.value)
    assert snapshot(tmp_path / "site") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book", "site"]


def test_read_only_rename_while_publishing_leaves_the_previous_site(tmp_path, monkeypatch):
    """The output folder refuses the swap (read-only file system, even for root): nothing changes."""
    root = tiny_book(tmp_path / "book", {"a": ["1"]})
    before = fake_site(tmp_path / "site")
    monkeypatch.setattr(build, "render", fake_render)
    real_rename = Path.rename

    def read_only(self, target):
        if self.name == "site":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", read_only)
    with pytest.raises(build.BuildError) as err:
        build.build(out=tmp_path / "site", root=root, **QUIET)
    assert str(err.value) == (f"could not write the site (Read-only file system: {tmp_path / 'site'}); "
                              "the previous site is untouched")
    assert snapshot(tmp_path / "site") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book", "site"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_leaves_the_previous_site(tmp_path, monkeypatch):
    root = tiny_book(tmp_path / "book", {"a": ["1"]})
    parent = tmp_path / "public"
    before = fake_site(parent / "site")
    monkeypatch.setattr(build, "render", fake_render)
    parent.chmod(0o555)
    try:
        with pytest.raises(build.BuildError) as err:
            build.build(out=parent / "site", root=root, **QUIET)
    finally:
        parent.chmod(0o755)
    assert "Permission denied" in str(err.value) and snapshot(parent / "site") == before


def test_centre_cohort_is_cached_privately_beside_its_site_and_clean_removes_it(tmp_path, monkeypatch):
    root = tiny_book(tmp_path / "book", {"a": ["import os\nprint(os.environ.get('HELPERS_CACHE_DIR'))"]})
    centre = tmp_path / "centre"
    shutil.copytree(SHIPPED_COHORT, centre)
    monkeypatch.setattr(build, "render", fake_render)
    out = tmp_path / "site"
    build.build(centre, out, root=root, **QUIET)
    private = tmp_path / "site.cache"
    assert (out / "index.html").exists() and private.is_dir() and oct(private.stat().st_mode)[-3:] == "700"
    [entry] = [p for p in private.iterdir() if p.name.startswith("a-")]
    assert str(private) in (entry / "a.ipynb").read_text()  # the kernels' cohort cache is the private one
    assert list((private / "cohorts").glob("*.pkl"))
    shared = root / "_build" / ".cache"
    assert not shared.exists() or not [p for p in shared.rglob("*") if p.is_file()]
    assert os.environ.get("HELPERS_CACHE_DIR") is None
    assert build.clean(out, build_dir=tmp_path / "no-build-dir", **QUIET) == [private] and not private.exists()


def test_a_new_notebook_in_the_table_of_contents_is_executed(tmp_path):
    root = tiny_book(tmp_path / "book", {"01_a": ["1"], "04b_toxicity": ["2"]})
    assert [p.name for p in build.notebook_paths(root)] == ["01_a.ipynb", "04b_toxicity.ipynb"]


def test_a_second_build_into_the_same_folder_waits_and_names_the_first(tmp_path):
    import threading

    out, locks, said = tmp_path / "site", tmp_path / "locks", []
    with build.build_lock(out, locks, log=said.append):
        second = threading.Thread(target=lambda: build.build_lock(out, locks, log=said.append).__enter__())
        second.start()
        time.sleep(0.5)
        assert second.is_alive() and f"process id {os.getpid()}" in said[0]
    second.join(5)
    assert not second.is_alive()


def test_closed_output_pipe_gives_no_traceback_and_exit_code_141():
    """A command printing far more than a pipe holds, read by `head -1` (as `validate ... | head`)."""
    script = ("import sys, helpers.__main__ as m\n"
              "m.COMMANDS['validate'] = lambda args: [print('ERROR: a problem line') for _ in range(200000)] and 0\n"
              "sys.exit(m.main(['validate', 'cohort']))")
    cmd = f"{sys.executable} -c \"{script}\" | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.stderr == "" and proc.returncode == 141


def test_a_reused_kernel_gives_the_outputs_of_a_fresh_one(tmp_path):
    """Notebooks share a worker's kernel; the reset between them leaves no trace of the previous one."""
    messy = ["import os, warnings\nimport matplotlib\nos.chdir('/')\nmatplotlib.rcParams['lines.linewidth'] = 9\n"
             "warnings.simplefilter('ignore')\nleak = 1"]
    probe = ["import os, warnings, matplotlib\n"
             "print('leak' in globals(), os.path.basename(os.getcwd()), matplotlib.rcParams['lines.linewidth'])",
             "warnings.warn('shown once per fresh kernel')", "get_ipython().execution_count"]
    root = tiny_book(tmp_path / "book", {"messy": messy, "probe": probe})
    shared = jobs_for(root)
    build.execute_all(shared, 1, root=root, **QUIET)  # one worker: probe runs after messy in the same kernel
    alone = build.plan_jobs(SHIPPED_COHORT, [root / "notebooks" / "probe.ipynb"], tmp_path / "alone", root)
    (tmp_path / "alone").mkdir()
    build.execute_all(alone, 1, root=root, **QUIET)
    def text(job):  # the kernel's process id appears in warning paths, whatever the kernel
        return re.sub(r"ipykernel_\d+", "ipykernel_N", job.output.read_text())

    assert text(shared[1]) == text(alone[0])
    cells = json.loads(alone[0].output.read_text())["cells"]
    assert cells[1]["outputs"][0]["text"] == ["False notebooks 1.5\n"]
    assert "UserWarning" in "".join(cells[2]["outputs"][0]["text"]) and cells[1]["execution_count"] == 3


def test_a_kernel_that_loses_a_port_is_started_again(monkeypatch):
    """jupyter_client picks free ports before the kernel binds them: another worker's kernel may take one
    meanwhile ('Address already in use'); the worker starts its kernel again with new ports."""
    from helpers import executor

    tries, failing = [], [executor.KERNEL_START_ATTEMPTS - 1]

    class Flaky:
        def __init__(self, connection_file, cwd, preload):
            tries.append(connection_file)
            if len(tries) <= failing[0]:
                raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(executor, "Kernel", Flaky)
    assert isinstance(executor.start_kernel("/tmp", "/tmp", ""), Flaky)
    assert len(tries) == executor.KERNEL_START_ATTEMPTS and len(set(tries)) == len(tries)
    tries.clear()
    failing[0] = executor.KERNEL_START_ATTEMPTS  # every attempt fails: the last error is reported
    with pytest.raises(RuntimeError, match="kernel_info"):
        executor.start_kernel("/tmp", "/tmp", "")


def test_an_early_render_waits_and_is_killed_when_the_build_stops_before_rendering(tmp_path):
    staging = tmp_path / "stage" / "render"
    build.stage_frame(staging, build.plan_jobs(build.SHIPPED_COHORT, build.notebook_paths(), tmp_path / "cache"),
                      "simulated", True)  # a frame to set up from: without one Jupyter Book stops at once
    early = build.EarlyRender(staging, tmp_path / "work")
    early.start()
    proc = early.proc
    early.start()  # started once
    assert early.proc is proc and proc.poll() is None  # importing Sphinx, then waiting for "go"
    time.sleep(3)
    assert proc.poll() is None, proc.stdout.read()
    early.kill()
    assert proc.poll() is not None and early.take() is None
    early.kill()  # nothing left to kill


def test_an_early_render_sets_up_from_the_frame_and_ends_when_its_build_closes_the_pipe(tmp_path):
    staging, work = tmp_path / "stage" / "render", tmp_path / "work"
    build.stage_frame(staging, build.plan_jobs(build.SHIPPED_COHORT, build.notebook_paths(), tmp_path / "cache"),
                      "simulated", True)
    assert (staging / "_config.yml").is_file() and not list(staging.glob("notebooks/*.ipynb"))
    early = build.EarlyRender(staging, work)
    early.start()
    assert (work / "src" / "_toc.yml").read_bytes() == (staging / "_toc.yml").read_bytes()  # the frame, copied
    proc = early.take()
    proc.stdin.close()  # the build is gone: no "go" will come
    assert proc.wait(timeout=120) == 0
    assert not (work / "out" / "_build" / "html" / "index.html").exists()  # nothing was rendered


def test_the_declared_banner_is_read_from_a_cohort_folders_cohort_yml(tmp_path):
    folder = tmp_path / "centre_a"
    folder.mkdir()
    assert build.declared_identity(folder) == ("centre_a", False)  # no cohort.yml: the folder's name, real data
    (folder / "cohort.yml").write_text("name: Centre A 2026\nsimulated: true\n", encoding="utf-8")
    assert build.declared_identity(folder) == ("Centre A 2026", True)
    (folder / "cohort.yml").write_text("name: [unclosed\n", encoding="utf-8")
    assert build.declared_identity(folder) is None  # validation will refuse it: nothing is staged early
    (folder / "cohort.yml").write_text("- a list\n", encoding="utf-8")
    assert build.declared_identity(folder) is None
    assert build.declared_identity(tmp_path / "cohort.xlsx") is None  # a workbook: read only by validation


class _Pool:
    """A kernel pool whose kernels are warm when `ready` is set."""

    def __init__(self, ready: bool):
        self.ready = threading.Event()
        if ready:
            self.ready.set()

    def warm(self, wait: float = 0.0) -> bool:
        return self.ready.wait(wait)


class _Early:
    """An EarlyRender that records the banner of the frame it was started from."""

    def __init__(self, staging):
        self.staging, self.started, self.killed = staging, [], 0

    def start(self):
        config = yaml.safe_load((self.staging / "_config.yml").read_text(encoding="utf-8"))
        self.started.append(config["sphinx"]["config"]["html_theme_options"]["announcement"])

    def kill(self):
        self.killed += 1


def _head_start(tmp_path, pool, identity):
    staging = tmp_path / "stage" / "render"
    early = _Early(staging)
    done = threading.Thread(target=lambda: None)
    done.start()
    jobs = build.plan_jobs(build.SHIPPED_COHORT, build.notebook_paths(), tmp_path / "cache")
    return build.HeadStart(early, pool, staging, jobs, build.PROJECT_ROOT, identity, done), early


def test_jupyter_books_process_starts_while_validating_once_the_kernels_are_warm(tmp_path):
    head, early = _head_start(tmp_path, _Pool(ready=True), ("big cohort", True))
    head.start()
    head.settled.wait(30)
    assert early.started == [build.banner_text("big cohort", True)]  # started before the validation ended
    head.finish(("big cohort", True))  # the validated cohort has the declared banner: nothing restarts
    assert early.started == [build.banner_text("big cohort", True)] and early.killed == 0
    head.release()
    assert not head.is_alive()


def test_a_banner_that_validation_changes_is_staged_again(tmp_path):
    head, early = _head_start(tmp_path, _Pool(ready=True), ("declared", False))
    head.start()
    head.settled.wait(30)
    head.finish(("validated", True))
    assert early.killed == 1
    assert early.started == [build.banner_text("declared", False), build.banner_text("validated", True)]
    head.release()


def test_a_validation_that_ends_before_the_kernels_are_warm_starts_jupyter_book_after_it(tmp_path):
    pool = _Pool(ready=False)
    head, early = _head_start(tmp_path, pool, ("small cohort", True))
    head.start()
    time.sleep(0.3)
    assert early.started == []  # the kernels still import: the validation has both cores' share
    head.finish(("small cohort", True))
    assert early.started == [build.banner_text("small cohort", True)]
    head.join(5)
    assert not head.is_alive()
    pool.ready.set()
    time.sleep(0.2)
    assert len(early.started) == 1


class _Spawning(_Early):
    """An EarlyRender whose start launches a real process the way EarlyRender does (build._spawn)."""

    def start(self):
        super().start()
        self.proc = build._spawn([sys.executable, "-c", "import time; time.sleep(30)"], self.staging)


def test_jupyter_books_process_started_while_validating_lives_until_the_build_ends(tmp_path):
    # a process launched through executor.orphan_proof dies with the thread that started it (PR_SET_PDEATHSIG
    # names the thread, not the process): the head start's thread must outlive the validation
    head, _ = _head_start(tmp_path, _Pool(ready=True), ("big cohort", True))
    head.early = early = _Spawning(head.staging)
    head.start()
    head.settled.wait(30)
    head.finish(("big cohort", True))
    time.sleep(1.0)  # the process has set its parent-death signal long since
    assert early.proc.poll() is None
    kill_process_group(early.proc.pid)
    early.proc.wait()
    head.release()
    assert not head.is_alive()


def test_a_build_that_stops_while_validating_starts_no_jupyter_book(tmp_path):
    head, early = _head_start(tmp_path, _Pool(ready=False), ("x", False))
    head.start()
    head.stop()  # the validation failed or was interrupted
    head.join(5)
    assert not head.is_alive() and early.started == []
