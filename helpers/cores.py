"""Which cores a build's processes may run on while the cohort is validated.

A build validates the cohort in its own process while the kernels import what the notebooks import and
Jupyter Book sets itself up. Left to the scheduler, three busy processes share two cores, and the
validation, which every later step waits for, gets two thirds of one. So during the validation the
kernels and Jupyter Book's process are confined to the spare cores (every core but one), and the
validation has a core to itself; when it ends they are released to every core.

Linux only (CPU affinity); elsewhere, and on one core, nothing is confined. Affinity belongs to a thread
and is inherited by the threads and processes it starts, so a process is confined by confining the thread
that starts it, and released by releasing each of its threads, its children's included.
"""
from __future__ import annotations

import os


def allowed() -> set[int] | None:
    """The cores this thread may run on (None where the platform has no CPU affinity)."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def spare() -> set[int] | None:
    """Every allowed core but the lowest (the one left to the validation); None with fewer than two."""
    cores = allowed()
    return set(sorted(cores)[1:]) if cores is not None and len(cores) > 1 else None


def confine(cores: set[int] | None) -> None:
    """Run this thread, and what it starts from now on, on `cores` (None: leave it as it is)."""
    if cores:
        os.sched_setaffinity(0, cores)


def release(pids: list[int], cores: set[int] | None = None) -> None:
    """Let every thread of these processes and of their descendants run on `cores` (default: every core
    this thread may use). Twice over: a thread started by a confined thread during the first pass is
    confined and is found by the second. Processes that have ended meanwhile are skipped."""
    import psutil

    cores = cores or allowed()
    if not cores:
        return
    for _ in range(2):
        for pid in pids:
            try:
                tree = [psutil.Process(pid)]
                tree += tree[0].children(recursive=True)
            except psutil.Error:
                continue
            for proc in tree:
                try:
                    threads = proc.threads()
                except psutil.Error:
                    continue
                for thread in threads:
                    try:
                        os.sched_setaffinity(thread.id, cores)
                    except OSError:  # ended meanwhile
                        pass
