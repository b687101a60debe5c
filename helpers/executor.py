"""Execute notebooks with papermill in a few long-lived kernels that die with the build.

Starting a kernel and importing pandas, scipy, lifelines and matplotlib costs about 3 s, which a
kernel per notebook pays once per notebook. Here each worker process owns one kernel, imports what
the notebooks import while the build is still validating, and runs its share of the notebooks one
after the other. Between two notebooks the kernel is reset to the state of a fresh one (namespace,
execution counter, working directory, matplotlib settings and warning filters), so a notebook's
outputs do not depend on which notebook ran before it. After a failure the kernel is replaced. While the
build validates the cohort, the workers and their kernels may be confined to the spare cores
(`helpers.cores`).

Workers run in their own process group (a Ctrl-C reaches only the build, which decides), die with
the build (PR_SET_PDEATHSIG on Linux, a watchdog thread elsewhere), and their kernels die with them
(ipykernel's parent poller). On an interruption the build kills workers and kernels outright.
"""
from __future__ import annotations

import ast
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing import connection, get_context
from pathlib import Path

PR_SET_PDEATHSIG = 1
RESET = """\
get_ipython().reset(new_session=True)  # namespace, history, output cache; execution count back to 1
import sys as _sys, warnings as _warnings
_state = _sys.modules["_pipeline_state"]
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
if hasattr(_state, "rc"):
    _sys.modules["matplotlib"].rcParams.update(_state.rc)
_warnings.filters[:] = _state.filters
_warnings._filters_mutated()
__import__("gc").collect()  # the previous notebook's cohort and models: give the memory back now
del _sys, _warnings, _state
"""
CHDIR = "import os as _os\n_os.chdir({cwd!r})\ndel _os\n"
SNAPSHOT = """\
import sys as _sys, types as _types, warnings as _warnings
_state = _sys.modules.setdefault("_pipeline_state", _types.ModuleType("_pipeline_state"))
_state.filters = list(_warnings.filters)
if "matplotlib.pyplot" in _sys.modules:  # load the inline backend now: it sets rcParams when it loads
    _sys.modules["matplotlib.pyplot"].close(_sys.modules["matplotlib.pyplot"].figure())
if "matplotlib" in _sys.modules:
    _state.rc = {k: v for k, v in _sys.modules["matplotlib"].rcParams.items() if k != "backend"}
del _sys, _types, _warnings, _state
__import__("gc").freeze()  # the preloaded modules live as long as the kernel: the resets' collections skip them
"""


@dataclass(frozen=True)
class Task:
    """One notebook to execute: where it is, where the executed copy goes, its parameters, its folder."""

    name: str
    source: str
    output: str
    parameters: dict
    cwd: str


@dataclass(frozen=True)
class Outcome:
    """What became of a task: seconds taken and None, or a one-line reason for the failure."""

    name: str
    seconds: float
    error: str | None


def preload_imports(notebooks: list[Path]) -> str:
    """The notebooks' import statements, run in each kernel before the first notebook (inside a function,
    so the modules are loaded but no name is bound in the notebook's namespace)."""
    lines: list[str] = []
    for nb in notebooks:
        for cell in json.loads(nb.read_text(encoding="utf-8")).get("cells", []):
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if cell["cell_type"] != "code":
                continue
            try:
                tree = ast.parse(src)
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not (isinstance(node, ast.ImportFrom) and node.level):
                    stmt = ast.unparse(node)
                    if stmt not in lines:
                        lines.append(stmt)
    body = "".join(f"    try:\n        {s}\n    except Exception:\n        pass\n" for s in lines)
    return f"def _preload():\n{body}    return None\n_preload()\ndel _preload\n" if lines else ""


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid` does (Linux: the kernel sends SIGKILL; else a watchdog)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def _quick_ready_client():
    """jupyter_client's asynchronous client whose `wait_for_ready` ends once the shell channel has answered
    kernel_info and IOPub has delivered a message, without the library's closing 0.2 s of IOPub silence
    (paid before every notebook a warm kernel runs); messages left on IOPub belong to that request and
    nbclient ignores them (it reads only the replies to its own requests)."""
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient

    class QuickReadyClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout is not None else 60.0)
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                    if reply["msg_type"] == "kernel_info_reply":
                        await self.iopub_channel.get_msg(timeout=0.2)  # IOPub is connected
                        self._handle_kernel_info_reply(reply)
                        return
                except Empty:
                    pass
                if not await self.is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")

    return QuickReadyClient


class Kernel:
    """One IPython kernel (asynchronous manager, as nbclient needs for its timeouts); silent set-up code
    goes through a short-lived client of its own.

    Clients of one kernel manager share a session identity, so the kernel routes replies to the
    newest one: only one client may be open at a time (papermill's, or the set-up one).
    """

    def __init__(self, connection_file: Path, cwd: str, preload: str):
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import ensure_event_loop

        class OrphanProofManager(AsyncKernelManager):
            def format_kernel_cmd(self, extra_arguments=None):
                return orphan_proof(super().format_kernel_cmd(extra_arguments))

        self.loop = ensure_event_loop()
        self.km = OrphanProofManager(kernel_name="python3", connection_file=str(connection_file))
        self.km.client_factory = _quick_ready_client()
        # as nbclient starts its kernels: IPython history in memory, not in the user's sqlite file
        history = ["--HistoryManager.hist_file=:memory:"]
        self.loop.run_until_complete(self.km.start_kernel(cwd=cwd, extra_arguments=history))
        self.fresh = True
        try:
            self.silent(preload, wait_ready=True)
            self.silent(SNAPSHOT)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid

    def silent(self, code: str, wait_ready: bool = False) -> None:
        """Run set-up code without recording it (no history, no execution count, no output)."""
        if code.strip():
            reply = self.loop.run_until_complete(self._silent(code, wait_ready))
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"kernel set-up failed: {reply['content'].get('ename')}: "
                                   f"{reply['content'].get('evalue')}")

    async def _silent(self, code: str, wait_ready: bool) -> dict:
        kc = self.km.client()
        kc.start_channels()
        try:
            if wait_ready:  # a new kernel; later, the shell channel queues the request (and wait_for_ready's
                await kc.wait_for_ready(timeout=120)  # IOPub flush would cost 0.2 s per notebook for nothing)
            msg_id = kc.execute(code, silent=True, store_history=False)
            reply = await kc.get_shell_msg(timeout=120)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = await kc.get_shell_msg(timeout=120)
            return reply
        finally:
            kc.stop_channels()

    def prepare(self, cwd: str) -> None:
        """Reset the kernel to a fresh kernel's state before a notebook (not needed before the first)."""
        self.silent(("" if self.fresh else RESET) + CHDIR.format(cwd=cwd))
        self.fresh = False

    def death(self) -> str:
        """Why the kernel process ended, for the failure message."""
        proc = getattr(self.km.provisioner, "process", None)
        code = proc.poll() if proc is not None else None
        if code is None:
            return "the kernel stopped responding"
        if code < 0:
            name = signal.Signals(-code).name
            return f"the kernel was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
        return f"the kernel exited with code {code}"

    def stop(self) -> None:
        """Kill the kernel at once (nothing in it is worth a graceful shutdown) and remove its files."""
        try:
            self.loop.run_until_complete(self.km.shutdown_kernel(now=True))
        except Exception:  # already dead: nothing to stop
            pass


CURRENT_CELL: list[int | None] = [None]  # index of the cell the worker's kernel is executing


def register_engine() -> str:
    """Register (once) a papermill engine that runs in a given kernel and records the current cell."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    name = "pipeline-warm-kernel"
    if name in papermill_engines._engines:
        return name

    class Client(PapermillNotebookClient):
        def execute_cell(self, cell, cell_index, *args, **kwargs):
            CURRENT_CELL[0] = cell_index
            return super().execute_cell(cell, cell_index, *args, **kwargs)

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            client = Client(nb_man, **merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                                   kernel_name=kernel_name, log=logger, log_output=log_output,
                                                   stdout_file=stdout_file, stderr_file=stderr_file))
            try:
                return client.execute()
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register(name, Engine)
    return name


def _executed_cells(task: Task) -> list[dict]:
    """The cells as papermill ran them: the executed copy when written (a cell error), else the source
    with the injected-parameters cell where papermill puts it (after the `parameters` cell, else first)."""
    try:
        return json.loads(Path(task.output).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        cells = json.loads(Path(task.source).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return []
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    at = tagged[0] + 1 if tagged else 0
    injected = {"cell_type": "code", "source": "", "metadata": {"tags": ["injected-parameters"]}}
    return cells[:at] + [injected] + cells[at:] if task.parameters else cells


def _cell_label(task: Task, index: int | None) -> str:
    """'cell 7 ("first line of the cell")', counting the cells of the source notebook from 1."""
    if index is None:
        return "before the first cell"
    cells = _executed_cells(task)
    if not cells:
        return f"cell {index + 1}"
    injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    src = "".join(cells[index]["source"]) if index < len(cells) else ""
    first = src.strip().splitlines()[0][:60] if src.strip() else ""
    number = index + 1 - sum(1 for i in injected if i < index)
    return f'cell {number} ("{first}")' if first else f"cell {number}"


def execute(kernel: Kernel, task: Task, timeout: int) -> Outcome:
    """Execute one notebook in `kernel` with papermill; a failure becomes a one-line Outcome.error."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    start = time.perf_counter()
    CURRENT_CELL[0] = None
    try:
        kernel.prepare(task.cwd)
        pm.execute_notebook(task.source, task.output, parameters=task.parameters, engine_name=register_engine(),
                            kernel_name="python3", cwd=task.cwd, progress_bar=False, log_output=False,
                            request_save_on_cell_execute=False,  # written once at the end, not 2x per cell
                            km=kernel.km, execution_timeout=timeout)
    except pm.PapermillExecutionError as exc:
        error = f"{_cell_label(task, exc.cell_index)}: {exc.ename}: {exc.evalue}"
    except CellTimeoutError:
        error = (f"{_cell_label(task, CURRENT_CELL[0])} did not finish within {timeout} s "
                 "(the per-cell limit, execute.timeout in _config.yml)")
    except DeadKernelError:
        error = f"{_cell_label(task, CURRENT_CELL[0])}: {kernel.death()}"
    except Exception as exc:  # a kernel that cannot start, a notebook that cannot be read: report it
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    else:
        error = None
    return Outcome(task.name, time.perf_counter() - start, error)


KERNEL_START_ATTEMPTS = 3  # jupyter_client picks free ports, then the kernel binds them: meanwhile the
# kernel another worker is starting may take one ("Address already in use"), so a failed start is retried


def start_kernel(kernel_dir: str, root: str, preload: str) -> Kernel:
    """A warm kernel, its start retried with new ports up to KERNEL_START_ATTEMPTS times."""
    for attempt in range(KERNEL_START_ATTEMPTS):
        try:
            return Kernel(Path(kernel_dir) / f"kernel-{os.getpid()}-{time.monotonic_ns()}.json", root, preload)
        except Exception:
            if attempt == KERNEL_START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def worker_main(conn, parent_pid: int, timeout: int, preload: str, log_path: str, kernel_dir: str,
                root: str, confined: set[int] | None = None) -> None:
    """A worker: start a kernel at once, then execute the tasks it is sent until it receives None.

    `confined`: the cores the worker and its kernel start on (`helpers.cores`), left before the first task."""
    from helpers import cores

    die_with_parent(parent_pid)
    every_core = cores.allowed()
    cores.confine(confined)
    os.setpgid(0, 0)  # terminal signals go to the build only
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)  # kernel start-up chatter and warnings go to the log, not the terminal
    os.close(fd)
    # papermill and nbclient take seconds to import: load them while the kernel starts, not after it
    threading.Thread(target=lambda: (__import__("papermill"), __import__("nbclient")), daemon=True).start()
    kernel, failure = None, None
    while True:
        if kernel is None and failure is None:
            try:
                kernel = start_kernel(kernel_dir, root, preload)
                conn.send(("kernel", kernel.pid))
            except Exception as exc:  # no kernel: each task is answered with the reason
                failure = f"the kernel did not start ({type(exc).__name__}: {str(exc).strip()[:200]})"
        task = conn.recv()
        if task is None:
            break
        if confined:  # the build has released this tree already; a thread started meanwhile is caught here
            cores.release([os.getpid()], every_core)
            confined = None
        outcome = Outcome(task.name, 0.0, failure) if kernel is None else execute(kernel, task, timeout)
        if outcome.error and kernel is not None:  # a failed notebook may leave the kernel in any state
            kernel.stop()
            kernel = None
        conn.send(("done", outcome))
    if kernel is not None:
        kernel.stop()


LAUNCH = """\
import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def orphan_proof(cmd: list[str]) -> list[str]:
    """`cmd` wrapped so that it dies with this process (PR_SET_PDEATHSIG survives the exec); Linux sends the
    signal when the *thread* that started it ends, so start it from a thread that lives as long as it must."""
    return [sys.executable, "-c", LAUNCH, str(os.getpid()), *cmd]


def kill_process_group(pid: int | None) -> None:
    """SIGKILL a process group (a kernel leads its own session); a group already gone is fine."""
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Worker:
    """The build's handle on one worker process: its pipe, its process and its kernel's pid."""

    def __init__(self, ctx, args: tuple):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.kernel_pid: int | None = None
        self.task: Task | None = None

    def kill(self) -> None:
        """SIGKILL the worker and its kernel (each leads its own process group)."""
        kill_process_group(self.proc.pid)
        try:
            os.kill(self.proc.pid, signal.SIGKILL)  # not yet its own group leader
        except (ProcessLookupError, PermissionError, TypeError):
            pass
        kill_process_group(self.kernel_pid)
        self.proc.join(5)


class KernelPool:
    """Worker processes with warm kernels; `run` executes tasks on them, `close` or `kill` ends them."""

    def __init__(self, size: int, timeout: int, preload: str, log_dir: Path, kernel_dir: Path, root: Path,
                 confined: set[int] | None = None):
        log_dir.mkdir(parents=True, exist_ok=True)
        kernel_dir.mkdir(parents=True, exist_ok=True)
        self.ctx = get_context("fork")
        self.confined = confined  # the cores the workers start on until `release_cores` (helpers.cores)
        self.args = lambda i: (os.getpid(), timeout, preload, str(log_dir / f"worker-{i}.log"), str(kernel_dir),
                               str(root), self.confined)
        self.workers = [Worker(self.ctx, self.args(i)) for i in range(size)]
        self.spawned = size
        self.kernel_dir = kernel_dir

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, kind, *_):
        self.kill() if kind is not None else self.close()

    def warm(self, wait: float = 0.0) -> bool:
        """Whether every worker's kernel has started and imported what the notebooks import (its first
        message is waiting, left for `run` to read), waiting up to `wait` seconds for each."""
        return all(w.conn.poll(wait) for w in self.workers)

    def release_cores(self) -> None:
        """Let the workers and their kernels, confined while they warmed up, run on every core (and start
        any replacement worker unconfined)."""
        from helpers import cores

        if self.confined:
            self.confined = None
            cores.release([w.proc.pid for w in self.workers])

    def run(self, tasks: list[Task], log) -> list[Outcome]:
        """Execute every task (each worker takes the next when free); report each outcome through `log`."""
        queue, outcomes = list(tasks), []
        while queue or any(w.task for w in self.workers):
            for worker in self.workers:
                if worker.task is None and queue:
                    worker.task = queue.pop(0)
                    worker.conn.send(worker.task)
            waitables = [w.conn for w in self.workers] + [w.proc.sentinel for w in self.workers]
            for ready in connection.wait(waitables):
                worker = next((w for w in self.workers if ready in (w.conn, w.proc.sentinel)), None)
                outcome = self._receive(worker) if worker is not None else None
                if outcome is not None:
                    outcomes.append(outcome)
                    log(outcome)
        return outcomes

    def _receive(self, worker: Worker) -> Outcome | None:
        """Read one message from a worker; a dead worker's task fails and a new worker takes its place."""
        try:
            if worker.conn.poll():
                kind, value = worker.conn.recv()
                if kind == "kernel":
                    worker.kernel_pid = value
                    return None
                worker.task = None
                return value
        except (EOFError, OSError):
            pass
        if worker.proc.is_alive():
            return None
        task = worker.task
        worker.kill()
        self.workers.remove(worker)
        self.workers.append(Worker(self.ctx, self.args(self.spawned)))
        self.spawned += 1
        if task is None:
            return None
        return Outcome(task.name, 0.0, f"the worker process died (exit code {worker.proc.exitcode})")

    def close(self) -> None:
        """Ask every worker to stop its kernel and exit; kill the ones that do not within 10 s."""
        for w in self.workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self.workers:
            w.proc.join(10)
            if w.proc.is_alive():
                w.kill()

    def kill(self) -> None:
        """End every worker and kernel at once (interruption or error: nothing of theirs is kept).

        A kernel still starting is not yet known by its pid: it is found by its connection file's folder
        on its command line, and waited for, so that it cannot write into a folder removed after this.
        """
        import psutil

        for w in self.workers:
            w.kill()
        mine = []
        for proc in psutil.process_iter(["cmdline"]):
            if any(str(self.kernel_dir) in part for part in proc.info["cmdline"] or []):
                mine.append(proc)
                kill_process_group(proc.pid)
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        psutil.wait_procs(mine, timeout=5)
