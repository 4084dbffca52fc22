"""Executing one notebook step: papermill into ``<run>/notebooks/``, an HTML copy, peak memory.

The runner talks to an :class:`Executor`; :class:`PapermillExecutor` is the real one,
and the unit tests of the runner's decisions use a fake that writes the step's datasets
directly, so reuse, failure and promotion rules are tested in seconds.
"""
from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import json
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import psutil
from jupyter_client import AsyncKernelManager
from traitlets import default

from utils.core import paths
from utils.pipeline import catalog
from utils.pipeline.catalog import Step


class LocalKernelManager(AsyncKernelManager):
    """A notebook kernel that talks to us over local sockets (IPC), not TCP.

    Nothing listens on a network port, and the kernel has no reason to print its
    "running over TCP without encryption" warning on the terminal for every notebook.
    Each kernel's sockets get a path of their own in the temporary folder: jupyter_client's
    default (``kernel-ipc-<n>`` in the current folder, the first free numbers) lets two
    kernels started at the same moment (a step's and the next step's, see
    :class:`SpareKernel`) pick the same sockets, and litters the folder when a kernel dies.
    """

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc"

    @default("ip")
    def _ip_default(self) -> str:
        return str(Path(tempfile.gettempdir()) / f"lead2value-kernel-{uuid.uuid4().hex[:12]}")


class StepFailed(RuntimeError):
    """A notebook stopped; the message names the step, the failing cell and the executed copy."""

    def __init__(self, step: str, message: str, executed_copy: Path | None = None):
        self.step, self.executed_copy = step, executed_copy
        super().__init__(message)


class Executor(Protocol):
    def execute(self, step: Step, run: Path, parameters: dict[str, Any], progress: bool) -> float | None:
        """Run the step into ``run``; return its peak memory in MB (None if not measured). Raise StepFailed."""


def children_rss(adopted: tuple[int, ...] = ()) -> int:
    """Bytes held by this process's children (notebook kernels, spare or exiting ones) and by the
    ``adopted`` processes (a kernel another process started: :mod:`utils.pipeline.handoff`), summed."""
    processes = {p.pid: p for p in psutil.Process().children(recursive=True)}
    for pid in adopted:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            processes.update({p.pid: p for p in [root, *root.children(recursive=True)]})
    total = 0
    for process in processes.values():
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakMemory:
    """Samples the RSS of this process's children (the notebook kernel, a spare one) and of the
    ``adopted`` kernel (started by another process) while a step runs.

    ``on_sample`` (if given) is told every summed sample, in MB.
    """

    def __init__(self, interval: float = 0.25, on_sample: Callable[[float], None] | None = None,
                 adopted: tuple[int, ...] = ()):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self.on_sample, self.adopted = on_sample, adopted
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = children_rss(self.adopted)
            self.peak = max(self.peak, total)
            if self.on_sample is not None:
                self.on_sample(total / 1e6)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def kernel_environment() -> None:
    """Pin what makes numbers move between runs (thread counts, hashing) and put the project on the path."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "2")
    # OpenMP threads that wait spinning burn the cores other threads (and other users) need: on a busy
    # 2-core machine a LightGBM fit on two spinning threads took 7x the CPU of a passive one.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    # Notebooks import `utils` from the project root whatever directory the kernel starts in.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(paths.PROJECT_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )


class LoggedKernelManager(LocalKernelManager):
    """A kernel whose own stdout and stderr go to a log file instead of the terminal.

    Cell outputs travel over ZMQ into the notebook either way; what the kernel process
    itself prints (its start-up warnings, a traceback when it is shut down mid-cell on
    Ctrl-C, a native library aborting) would otherwise interleave with run_all's lines.
    """

    kernel_log: str = ""

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if not self.kernel_log:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        with open(self.kernel_log, "ab") as log:  # the kernel keeps its own copy of the descriptor
            await super()._async_launch_kernel(kernel_cmd, **{**kw, "stdout": log, "stderr": log})


def kernel_manager_logging_to(log: Path) -> type[LoggedKernelManager]:
    return type("StepKernelManager", (LoggedKernelManager,), {"kernel_log": str(log)})


def skip_iri_grammar() -> None:
    """Keep jsonschema (imported by nbformat) from compiling rfc3987-syntax's grammar: a second or
    two of CPU at every start, for the "iri" string formats that no notebook schema uses."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # None in sys.modules: `import` raises ImportError


def kernel_log(run: Path, step: Step) -> Path:
    """Where the kernel process of ``step`` writes its own output (not its cells')."""
    log = Path(run) / "logs" / f"{step.name}.kernel.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return log


# How long discarding a kernel started before its run waits for its start to wind down.
DISCARD_WAIT_SECONDS = 15.0

# How nbclient starts a kernel (its default history file): a spare kernel is started the same way.
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]


# Every run's kernel gives the memory its cells freed back to the system after each cell
# (utils.core.memory): otherwise the next step's spare kernel finds no room beside it.
RELEASE_AFTER_EACH_CELL = '__import__("utils.core.memory", fromlist=["x"]).release_after_each_cell()\n'
# What open_step does first: point MLflow at the run's store (a new store gets its tables).
STORE_SETUP = '__import__("utils.core.tracking", fromlist=["configure"]).configure()\n'


def warm_up_code(notebook: Path, store: bool = True) -> str:
    """What a spare kernel runs before its notebook: the notebook's first code cell if it only imports
    (the house style: imports first), and (``store``) the MLflow store's set-up that ``open_step``
    does first. A kernel started before the runner has opened the store leaves it alone: two
    processes creating a new store's tables at once would collide. Always: the hook that releases
    freed memory after each cell (:data:`RELEASE_AFTER_EACH_CELL`)."""
    cells = [c for c in json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    first = "".join(cells[0]["source"]) if cells else ""
    try:
        only_imports = bool(first.strip()) and all(isinstance(node, (ast.Import, ast.ImportFrom))
                                                    for node in ast.parse(first).body)
    except SyntaxError:
        only_imports = False
    setup = STORE_SETUP if store else ""
    setup += RELEASE_AFTER_EACH_CELL
    return f"{first}\n{setup}" if only_imports else setup


class SpareKernel:
    """The kernel of a step started, and its imports done, while the step before it still runs.

    Started in a thread of its own; :meth:`take` hands it over (waiting for it to be ready) or
    says None when it could not be made ready. It runs its notebook's import cell silently
    (no output, no execution count), so the executed notebook is the same as from a cold
    kernel; the cell runs again, in no time, when the notebook starts. :meth:`discard` may be
    called from any thread: the kernel process is killed at once, its memory freed.
    """

    def __init__(self, step: Step, run: Path | None, store: bool | None = None,
                 store_after: SpareKernel | None = None):
        """``run`` None: started before the run's folder exists (its log waits in the outputs folder,
        see :meth:`adopt`, and it leaves the MLflow store alone unless ``store``: the kernel that opens
        the store for a run whose process does not). ``store_after``: the kernel that opens the store;
        this one does its imports at once, and its own store set-up once that one is ready (or gone)."""
        self.step, self.run = step, None if run is None else Path(run)
        self.store = self.run is not None if store is None else store
        self.store_after = store_after
        self.log = kernel_log(run, step) if run is not None else \
            paths.OUTPUTS_DIR / ".kernel-logs" / f"{step.name}-{uuid.uuid4().hex[:12]}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.km: Any = None
        self.error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._start, name=f"spare-kernel-{step.name}", daemon=True)

    def start(self) -> SpareKernel:
        kernel_environment()
        self._thread.start()
        return self

    def _start(self) -> None:
        try:
            asyncio.run(self._async_start())
        except BaseException as err:  # noqa: BLE001 - a spare that fails is simply not used
            self.error = err
        if self._cancelled.is_set() and self.km is not None:
            shutdown(self.km)

    async def _async_start(self) -> None:
        km = kernel_manager_logging_to(self.log)(kernel_name="python3")
        self.km = km
        await km.start_kernel(cwd=str(paths.PROJECT_ROOT), extra_arguments=list(KERNEL_ARGUMENTS))
        if self._cancelled.is_set():  # discarded while its process started: _start shuts it down
            return
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            later = self.store and self.store_after is not None
            await self._run_silently(km, client, warm_up_code(self.step.notebook, store=self.store and not later))
            if later:
                while self.store_after._thread.is_alive() and not self._cancelled.is_set():
                    await asyncio.sleep(0.05)
                await self._run_silently(km, client, STORE_SETUP)
        finally:
            client.stop_channels()

    async def _run_silently(self, km: Any, client: Any, code: str) -> None:
        """Execute ``code`` in the kernel (no output, no history) and wait for its reply (or a discard)."""
        msg_id = client.execute(code, silent=True, store_history=False)
        while not self._cancelled.is_set():
            try:
                reply = await client.get_shell_msg(timeout=0.5)
            except Exception:  # noqa: BLE001 - queue.Empty: not yet; check the kernel is alive and wait on
                if not await km.is_alive():
                    raise RuntimeError(f"the spare kernel of {self.step.name} died while warming up") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return

    def take(self, timeout: float = 120) -> Any:
        """The ready kernel manager, or None (it failed, or is not ready within ``timeout``: it is shut down)."""
        self._thread.join(timeout)
        if self._thread.is_alive() or self.error is not None or self._cancelled.is_set() or self.km is None \
                or not self.km.has_kernel:
            self.discard()
            return None
        return self.km

    def adopt(self, run: Path) -> None:
        """Move the log of a kernel started before the run folder existed into it (the kernel keeps
        writing to the same file: a rename within one file system)."""
        if self.run is None:
            target = kernel_log(run, self.step)
            os.replace(self.log, target)
            with contextlib.suppress(OSError):  # the waiting room, if no other kernel waits in it
                self.log.parent.rmdir()
            self.run, self.log = Path(run), target

    def discard(self) -> None:
        """Kill the kernel now; a start in progress notices and cleans up after itself. A kernel started
        before its run (``run`` None) is waited for: the run may never begin (its inputs refused), and
        nothing of it may stay behind, neither a kernel nor its log (which its start may create late)."""
        self._cancelled.set()
        km = self.km
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()
        if self.run is None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(DISCARD_WAIT_SECONDS)
            km = self.km
        if not self._thread.is_alive() and km is not None:
            shutdown(km)
        if self.run is None:  # nothing of a run that never began stays behind
            self.log.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.log.parent.rmdir()


def shutdown(km: Any, now: bool = True) -> None:
    """Stop a kernel this process started (``now``: killed, else asked to exit as nbclient asks its own) and
    remove its connection file; one already gone is fine."""
    try:
        if km.has_kernel:
            asyncio.run(km.shutdown_kernel(now=now))
        else:
            cleaned = km.cleanup_resources()  # a coroutine for the asynchronous managers used here
            if asyncio.iscoroutine(cleaned):
                asyncio.run(cleaned)
    except Exception:  # noqa: BLE001 - best effort: the process may be gone already
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()


def run_notebook(step: Step, run: Path, parameters: dict[str, Any], progress: bool = False, html: bool = True,
                 km: Any = None) -> Path:
    """Execute the step's notebook with papermill into ``<run>/notebooks/<step>.ipynb`` (and ``.html``).

    The kernel process's own output goes to ``<run>/logs/<step>.kernel.log``. ``km``: a kernel
    already started for this step (:class:`SpareKernel`); the caller shuts it down afterwards.
    """
    skip_iri_grammar()
    # papermill and nbconvert are only needed to execute notebooks, not inside one: imported here.
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    kernel_environment()
    out = Path(run) / "notebooks" / f"{step.name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    log = kernel_log(run, step)
    try:
        pm.execute_notebook(
            str(step.notebook), str(out), parameters=parameters, kernel_name="python3",
            progress_bar=progress, cwd=str(paths.PROJECT_ROOT), log_output=False,
            kernel_manager_class=kernel_manager_logging_to(log), **({"km": km} if km is not None else {}),
        )
    except DeadKernelError:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:] \
            if log.exists() else []
        raise StepFailed(step.name, f"{step.name}: the notebook kernel died (its last words: "
                                    f"{' | '.join(tail) or 'none'})\n    kernel log: {log}\n    executed copy: {out}",
                         out) from None
    except PapermillExecutionError as err:
        first_line = next((line for line in err.source.splitlines() if line.strip()), "")
        raise StepFailed(
            step.name,
            f"{step.name} failed in cell {err.exec_count}: `{first_line.strip()}`\n"
            f"    {err.ename}: {err.evalue}\n    executed copy: {out}",
            out,
        ) from None
    finally:
        if html and out.exists():
            export_html(out)
    return out


def preload(html: bool = True) -> threading.Thread:
    """Import papermill (and warm nbconvert's HTML exporter) in a background thread, now.

    Both are imported on first use, inside the first step: papermill's import takes about
    1.3 s and the first HTML export 0.5 s more (its templates), on the critical path of every
    run_all.py process, once per step under Airflow (a process per task). Started while the
    runner waits for the first step's kernel (a process of its own) to be ready, the work costs
    no wall time there; started earlier, beside MLflow's import in the main thread, it would
    slow that down instead (one interpreter lock). Python's import lock makes a step that needs
    papermill sooner wait for this import instead of doing it twice. A failure here is not
    reported: the step's own import raises it.
    """
    def load() -> None:
        with contextlib.suppress(Exception):
            import papermill  # noqa: F401 - imported for its side effect: the module is ready

            if html:
                import nbformat
                from nbconvert import HTMLExporter

                HTMLExporter().from_notebook_node(nbformat.v4.new_notebook())

    thread = threading.Thread(target=load, name="preload-papermill", daemon=True)
    thread.start()
    return thread


def preload_module(name: str) -> threading.Thread:
    """Import module ``name`` in a background thread, now (as :func:`preload`: a failure is the later
    import's to raise, and Python's import lock makes an earlier use wait instead of importing twice)."""
    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(name)

    thread = threading.Thread(target=load, name=f"preload-{name}", daemon=True)
    thread.start()
    return thread


def export_html(notebook: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    out = notebook.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


# A spare kernel is given up when the run's kernels hold more memory than this, so that a step's
# own kernel and the next step's spare stay under the 1.5 GB a full run may take (issue 15).
SPARE_KERNEL_LIMIT_MB = 1300.0
# A spare given up for memory is started again when the run's kernels fall this far below the limit
# (the room a kernel takes once its imports are done, and some to spare), at most SPARE_RESTARTS
# times in one step: a step's memory rises and falls with its cells (03: the cross-validation, the fit).
SPARE_ROOM_MB = 400.0
SPARE_RESTARTS = 2
# A notebook waits for the kernels still exiting (a second or so) while the run's kernels hold more
# than this: a finished step's kernel keeps its memory until it is gone, and the next one is about to grow.
SETTLE_MB = 800.0


class PapermillExecutor:
    """The real executor: one notebook kernel per step, its peak memory sampled.

    ``html=False`` keeps the executed notebook without its HTML copy (the scoring job: the
    export costs seconds, and the job's dashboard is its report). ``prepare(step, run)``
    starts the kernel of a step that will execute later (:class:`SpareKernel`), while the
    current one runs; spares are given up when the memory of the run's kernels passes
    :data:`SPARE_KERNEL_LIMIT_MB` and started again once it is back well below (:meth:`_watch`).
    ``drop(step)`` gives up a step's spare (it was reused), ``close()`` every spare left. ``overlap=True`` (a whole run, which calls ``close()``): a
    finished step's kernel exits in the background while the next step starts. papermill and
    the HTML exporter load in the background (:func:`preload`) while the first step's kernel starts.
    ``kill_when_done=True`` (a process that executes one notebook and exits: a scheduler's step,
    the scoring job): the kernel is killed once its notebook is executed and saved. Nothing is
    left for it to do, and its polite exit (freeing half a gigabyte of modules) costs a second
    the process would otherwise wait for. ``keep_kernels=True``: each executed notebook's kernel
    runs on until ``close()`` (``kept``: step name -> kernel manager), for the caller's last words to its
    MLflow run from inside it (:class:`utils.pipeline.handoff.BackgroundTracker`). ``keep_last=True``
    (a whole run): the last notebook's kernel runs on until the next :meth:`execute` or ``close()``,
    for the run's MLflow calls (:meth:`tracking_kernel`), then is killed.
    """

    def __init__(self, html: bool = True, overlap: bool = False, kill_when_done: bool = False,
                 keep_kernels: bool = False, keep_last: bool = False):
        self.html, self.overlap, self.kill_when_done = html, overlap, kill_when_done
        self.keep_kernels, self.keep_last = keep_kernels, keep_last
        self.kept: dict[str, Any] = {}
        self.last: Any = None
        self.preloading: threading.Thread | None = None
        self.spares: dict[tuple[str, Path], SpareKernel] = {}
        self._lock = threading.Lock()
        self._stopping: list[threading.Thread] = []
        self._given_up: list[SpareKernel] = []  # spares dropped for memory while the current step runs
        self._restarts = 0

    def prepare(self, step: Step, run: Path | None, store: bool | None = None,
                store_after: SpareKernel | None = None) -> None:
        """Start ``step``'s kernel now, for its :meth:`execute` in ``run`` later (None: the run about to begin;
        ``store``, ``store_after``: see :class:`SpareKernel`). Nothing happens when one is started for it
        already (for this run, or before the run began)."""
        key = (step.name, None if run is None else Path(run))
        with self._lock:
            if key not in self.spares and (step.name, None) not in self.spares:
                self.spares[key] = SpareKernel(step, run, store, store_after).start()

    def add_spare(self, step: Step, run: Path, spare: Any) -> None:
        """Use ``spare`` (a kernel started elsewhere, with :class:`SpareKernel`'s ``take``, ``adopt`` and
        ``discard``: :class:`utils.pipeline.handoff.HandedKernel`) for ``step``'s :meth:`execute` in ``run``."""
        with self._lock:
            self.spares[(step.name, Path(run))] = spare

    def _pop(self, step: Step | None = None, run: Path | None = None) -> list[SpareKernel]:
        """The spares of ``step`` (all when None) for ``run`` or started before any run (all runs when None)."""
        with self._lock:
            keys = [k for k in self.spares if step is None or (k[0] == step.name and (
                run is None or k[1] is None or k[1] == Path(run)))]
            return [self.spares.pop(k) for k in keys]

    def drop(self, step: Step | None = None) -> list[SpareKernel]:
        """Shut down the spare kernel of ``step`` (of every step when None); the spares shut down."""
        spares = self._pop(step)
        for spare in spares:
            spare.discard()
        return spares

    def tracking_kernel(self) -> Any:
        """A running kernel for the run's MLflow calls, or None: the one kept, else the ready spare of
        the earliest step waiting for one (waited for: it is that step's kernel anyway).

        A whole run (``overlap``) waits here for its first kernel, with a core to spare: the kernel of
        the step after it starts now rather than when that step begins (its imports at once, its
        store set-up once the first kernel has opened the store: two kernels creating a new store's
        tables at once would collide). A short first step then finds the next kernel ready.
        """
        for km in (self.last, *self.kept.values()):
            if km is not None:
                return km
        with self._lock:
            waiting = sorted(self.spares.items(), key=lambda item: item[0][0])
        if not waiting:
            return None
        first = waiting[0][1]
        following = catalog.following(first.step.name) if isinstance(first, SpareKernel) else None
        if self.overlap and following is not None:
            self.prepare(following, first.run, store=True, store_after=first)
        return first.take()

    def _release_last(self, now: bool = False) -> None:
        """Kill the kernel kept from the last notebook (in the background unless ``now``)."""
        km, self.last = self.last, None
        if km is not None and now:
            shutdown(km, now=True)
        elif km is not None:
            self._stopping.append(threading.Thread(target=shutdown, args=(km, True), daemon=True))
            self._stopping[-1].start()

    def close(self) -> None:
        """Shut down the spares left and the kernels kept; wait for the kernels that are exiting."""
        self.drop()
        self._release_last(now=True)
        while self.kept:
            shutdown(self.kept.popitem()[1], now=self.kill_when_done)
        for thread in self._stopping:
            thread.join(30)
        self._stopping.clear()

    def _settle(self) -> None:
        exiting = [thread for thread in self._stopping if thread.is_alive()]
        if exiting and children_rss() / 1e6 > SETTLE_MB:
            for thread in exiting:
                thread.join(30)
        self._stopping = [thread for thread in self._stopping if thread.is_alive()]

    def _watch(self, total_mb: float) -> None:
        """Told each memory sample while a step runs: give the spares up above the limit; start the ones
        given up again (at most :data:`SPARE_RESTARTS` times in one step) when the step's kernel has
        fallen back well under it (its peak is often a passing one: a cross-validation, a fit)."""
        if total_mb > SPARE_KERNEL_LIMIT_MB and self.spares:
            self._given_up += [spare for spare in self.drop() if isinstance(spare, SpareKernel)]
        elif self._given_up and self._restarts < SPARE_RESTARTS and total_mb < SPARE_KERNEL_LIMIT_MB - SPARE_ROOM_MB:
            self._restarts += 1
            for spare in self._given_up:
                self.prepare(spare.step, spare.run, spare.store)
            self._given_up = []

    def execute(self, step: Step, run: Path, parameters: dict[str, Any], progress: bool) -> float | None:
        self._release_last()
        self._given_up, self._restarts = [], 0
        mine = self._pop(step, run)
        for extra in mine[1:]:
            extra.discard()
        # Without a spare the kernel is started here the same way (nbclient's own start is the fallback).
        spare = mine[0] if mine else SpareKernel(step, run).start()
        if self.preloading is None:  # while this thread waits for the kernel, not while it loads MLflow
            self.preloading = preload(self.html)
        km = spare.take()
        if km is not None:
            spare.adopt(run)  # once started: the kernel holds its log file open
        self._settle()
        process = getattr(getattr(km, "provisioner", None), "process", None)
        # A kernel handed over by another process is not a child of this one: its memory is counted by pid.
        adopted = (process.pid,) if getattr(process, "adopted", False) else ()
        try:
            with PeakMemory(on_sample=self._watch, adopted=adopted) as memory:
                run_notebook(step, run, parameters, progress, self.html, km=km)
        finally:
            if km is not None and self.keep_kernels:
                self.kept[step.name] = km
            elif km is not None and self.keep_last:
                self.last = km
            elif km is not None and self.overlap:
                # The notebook is executed and saved: the kernel is killed (asked to exit, it would take
                # a second or more to free its modules, with the next notebook waiting on its memory), in
                # the background; close() waits for it.
                self._stopping.append(threading.Thread(target=shutdown, args=(km, True), daemon=True))
                self._stopping[-1].start()
            elif km is not None:
                shutdown(km, now=self.kill_when_done)
        return round(memory.peak / 1e6, 1)
