"""The cores the kernels and Jupyter Book's process run on while a build validates (helpers.cores)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import psutil
import pytest

from helpers import cores
from helpers.executor import KernelPool
from helpers.paths import PROJECT_ROOT

EVERY = cores.allowed()
needs_two = pytest.mark.skipif(EVERY is None or len(EVERY) < 2, reason="needs CPU affinity and two cores")


def _affinities(pid: int) -> set[tuple[int, ...]]:
    """The distinct core sets of every thread of a process and of its descendants."""
    root = psutil.Process(pid)
    return {tuple(sorted(os.sched_getaffinity(t.id))) for p in [root, *root.children(recursive=True)]
            for t in p.threads()}


def test_the_spare_cores_are_all_but_the_lowest(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 5, 7}, raising=False)
    assert cores.spare() == {5, 7}  # core 2 stays the validation's
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert cores.spare() is None  # one core: nothing to confine to
    monkeypatch.delattr(os, "sched_getaffinity")
    assert cores.allowed() is None and cores.spare() is None  # no CPU affinity on this platform
    cores.confine(None)  # does nothing


@needs_two
def test_a_process_started_from_a_confined_thread_is_confined_until_released():
    spare = cores.spare()
    started = {}

    def launch():  # as the head start does: confine this thread, then start the process from it
        cores.confine(spare)
        started["proc"] = subprocess.Popen(
            [sys.executable, "-c", "import threading, time\n"
             "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
             "print('ready', flush=True)\ntime.sleep(30)"], stdout=subprocess.PIPE, text=True)

    thread = threading.Thread(target=launch)
    thread.start()
    thread.join()
    proc = started["proc"]
    try:
        assert proc.stdout.readline() == "ready\n"
        assert _affinities(proc.pid) == {tuple(sorted(spare))}  # both of its threads
        assert os.sched_getaffinity(0) == EVERY  # the thread that confined itself was another
        cores.release([proc.pid])
        assert _affinities(proc.pid) == {tuple(sorted(EVERY))}
        cores.release([proc.pid + 10 ** 7])  # a process that has ended: nothing to do, no error
    finally:
        proc.kill()
        proc.wait()


@needs_two
def test_a_confined_pools_kernels_warm_up_on_the_spare_cores_and_run_on_every_core_once_released(tmp_path):
    spare = cores.spare()
    pool = KernelPool(1, 60, "import pandas", tmp_path / "logs", tmp_path / "kernels", PROJECT_ROOT, spare)
    try:
        assert pool.warm(120)
        worker = pool.workers[0].proc.pid
        kernels = [p for p in psutil.Process(worker).children(recursive=True)
                   if "ipykernel_launcher" in " ".join(p.cmdline())]
        assert len(kernels) == 1
        assert _affinities(worker) == {tuple(sorted(spare))}  # the worker, its kernel and their threads
        pool.release_cores()
        assert _affinities(worker) == {tuple(sorted(EVERY))}
        assert pool.confined is None  # a worker started later, to replace a dead one, is not confined
    finally:
        pool.kill()

