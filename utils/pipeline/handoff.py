"""A warm notebook kernel handed from one scheduler task to the next (``run_all.py --warm-next``).

Under Airflow every step of a run is a process of its own (``run_all.py --run ID --step NN``),
and a kernel started by a task would die with it: each step would wait for a cold kernel and
its imports (about three seconds), where a single ``run_all.py`` starts the next step's kernel
while the current one runs. With ``--warm-next`` a task leaves one kernel running for the next
task of the same run, the way ``run_all.py`` keeps a spare:

* :func:`leave` starts a kernel detached from this process (its own session, no parent to
  watch), whose start-up runs the next step's import cell and the MLflow store's set-up, and
  writes its connection record under ``outputs/.spares/<run_id>/`` once it is launched;
* :func:`claim` takes one for a step: the record is renamed (one claimant wins), the kernel
  is checked to be the same process, its log moves into the run's ``logs/``, and a kernel
  manager that owns it is returned for papermill, which waits for it to be ready;
* a kernel nobody claims ends itself after :data:`IDLE_SECONDS` (a thread started by its
  warm-up renames its record to ``.expired`` first, so a claim and the timeout never both win);
  ``--finish`` and ``--abandon`` end the ones of their run at once (:func:`discard_all`).

The notebook executed in a handed kernel is the same as from a cold one: the warm-up runs
before the kernel answers, without output or execution count (IPython's ``exec_files``).
"""
from __future__ import annotations

import ast
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import LocalProvisioner

from utils.core import paths
from utils.pipeline import catalog
from utils.pipeline.catalog import Step
from utils.pipeline.environment import tracking_uri
from utils.pipeline.execute import (
    KERNEL_ARGUMENTS,
    LocalKernelManager,
    kernel_environment,
    kernel_log,
    shutdown,
    warm_up_code,
)
from utils.pipeline.runner import MlflowTracker

# An unclaimed kernel ends itself after this long (a scheduler's next task normally starts within seconds;
# a retry waits LEAD2VALUE_RETRY_DELAY_SECONDS, 300 by default).
IDLE_SECONDS = float(os.environ.get("LEAD2VALUE_SPARE_IDLE_SECONDS", "600"))

IDLE_WATCH = '''
def _lead2value_idle(spares={spares!r}, key={key!r}, seconds={seconds!r}, sockets={sockets!r}):
    import glob, os, time
    time.sleep(seconds)
    # Its record is <spares>/<run id or _pending>/<key>.json until claimed (renamed .claimed).
    for record in glob.glob(os.path.join(glob.escape(spares), "*", key + ".json")):
        try:
            os.rename(record, record + ".expired")  # nobody claimed it: this kernel ends
            break
        except OSError:
            pass  # claimed at this very moment
    if glob.glob(os.path.join(glob.escape(spares), "*", key + ".claimed")):
        return  # claimed: a notebook runs in it now
    for socket in sockets:
        try:
            os.remove(socket)
        except OSError:
            pass
    os._exit(0)


__import__("threading").Thread(target=_lead2value_idle, name="lead2value-idle", daemon=True).start()
del _lead2value_idle
'''

PENDING = "_pending"  # the records of kernels started before their run has an id (run_all.py --begin)
# How long a tracker's call in a kernel may take (it is about 0.05 s; the kernel is ready and idle).
KERNEL_CALL_SECONDS = 30.0


def stores() -> dict[str, str]:
    """The MLflow stores this process uses, as the project resolves them (MLflow sets the variables once
    it is configured): a kernel serves only a process that uses the same."""
    tracking = tracking_uri()
    return {"tracking": tracking, "registry": os.environ.get("MLFLOW_REGISTRY_URI") or tracking}


def spares_dir(run_id: str) -> Path:
    """Where the kernels left for the tasks of run ``run_id`` are recorded (outside the run folder:
    not outputs of any step)."""
    return paths.OUTPUTS_DIR / ".spares" / run_id


def leave(step: Step, run: Path | None, idle_seconds: float | None = None) -> Path:
    """Start a kernel warmed for ``step`` of ``run`` that outlives this process; returns its record.

    ``run`` None: the run is about to begin (its store may not exist yet, so the kernel leaves it
    alone); :func:`assign` gives the record to the run once it has its folder.
    """
    folder = spares_dir(PENDING if run is None else Path(run).name)
    folder.mkdir(parents=True, exist_ok=True)
    key = uuid.uuid4().hex[:12]
    record, log, warm = folder / f"{key}.json", folder / f"{key}.log", folder / f"{key}.py"
    seconds = IDLE_SECONDS if idle_seconds is None else idle_seconds
    # The connection file is written here and the kernel launched here, not by a kernel manager: a
    # manager removes the file it wrote when it is collected, which can be before the kernel has read it.
    connection = folder / f"{key}.connection"
    ip = str(Path(tempfile.gettempdir()) / f"lead2value-kernel-{key}")
    warm.write_text(warm_up_code(step.notebook, store=run is not None) + IDLE_WATCH.format(
        spares=str(folder.parent), key=key, seconds=seconds,
        sockets=[f"{ip}-{port}" for port in range(1, 6)]), encoding="utf-8")
    write_connection_file(str(connection), transport="ipc", ip=ip, shell_port=1, iopub_port=2, stdin_port=3,
                          hb_port=4, control_port=5)
    kernel_environment()
    env = {name: value for name, value in os.environ.items() if name != "JPY_PARENT_PID"}
    argv = [str(connection) if arg == "{connection_file}" else arg
            for arg in KernelSpecManager().get_kernel_spec("python3").argv]
    if argv[0] in ("python", "python3"):  # as jupyter_client does: this interpreter, not the PATH's
        argv[0] = sys.executable
    with open(log, "ab") as out:
        # A session of its own and no parent pid to watch: ipykernel exits when its parent does.
        process = subprocess.Popen([*argv, *KERNEL_ARGUMENTS, f"--IPKernelApp.exec_files={warm}"],
                                   cwd=paths.PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=out, start_new_session=True)
    info = json.loads(connection.read_text(encoding="utf-8"))
    entry = {"connection": info, "pid": process.pid, "started": psutil.Process(process.pid).create_time(),
             "files": [str(log), str(warm), str(connection)], "log": str(log), "warmed_for": step.name,
             "stores": stores()}
    partial = record.with_suffix(".partial")
    partial.write_text(json.dumps(entry, indent=1), encoding="utf-8")
    os.replace(partial, record)  # a claimant never reads half a record
    return record


def assign(record: Path, run: Path) -> Path:
    """Give a kernel left before its run began (:func:`leave` with ``run`` None) to ``run``; its new record."""
    folder = spares_dir(Path(run).name)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(record).name
    os.rename(record, target)
    return target


class ForeignProcess:
    """The kernel process another task started, as much of :class:`subprocess.Popen` as jupyter_client uses."""

    stdin = stdout = stderr = None
    adopted = True  # not this process's child: the executor counts its memory by pid

    def __init__(self, pid: int, started: float):
        self.pid, self.started, self.returncode = pid, started, None

    def poll(self) -> int | None:
        if self.returncode is None and not same_process_running(self.pid, self.started):
            self.returncode = -signal.SIGKILL  # not our child: its exit status is its new parent's
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"kernel {self.pid} still running")
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def same_process_running(pid: int, started: float) -> bool:
    """``pid`` is alive (not a zombie) and is the process that started at ``started`` (not a reused pid)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and abs(process.create_time() - started) < 0.01
    except psutil.Error:
        return False


def adopt(entry: dict) -> Any:
    """A kernel manager that owns the running kernel of ``entry`` (kills it on ``shutdown_kernel``)."""
    km = LocalKernelManager(kernel_name="python3")
    km.load_connection_info(entry["connection"])
    provisioner = LocalProvisioner(kernel_id=uuid.uuid4().hex, kernel_spec=km.kernel_spec, parent=km)
    provisioner.connection_info = km.get_connection_info()
    provisioner.process = ForeignProcess(entry["pid"], entry["started"])
    provisioner.pid = provisioner.pgid = entry["pid"]  # a session of its own: its group is its pid
    km.provisioner = provisioner
    return km


def _take(record: Path) -> dict | None:
    """Rename ``record`` to ``.claimed`` (the one claimant that wins) and read it; None if another won."""
    claimed = record.with_suffix(".claimed")
    try:
        os.rename(record, claimed)
    except OSError:
        return None
    return json.loads(claimed.read_text(encoding="utf-8"))


def claim(step: Step, run: Path) -> Any | None:
    """A running kernel left for ``run`` by an earlier task, now this process's to run ``step`` in; or None."""
    run = Path(run)
    folder = spares_dir(run.name)
    for record in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        entry = _take(record)
        if entry is None:
            continue
        if not same_process_running(entry["pid"], entry["started"]):
            _forget(record.with_suffix(".claimed"), entry)
            continue
        if entry.get("stores") != stores():  # it would log to another MLflow store than this process
            shutdown(adopt(entry), now=True)
            _forget(record.with_suffix(".claimed"), entry)
            continue
        log, target = Path(entry["log"]), kernel_log(run, step)
        if target.exists():  # an earlier try's kernel log stays, under its time
            os.replace(target, target.with_name(f"{step.name}.kernel.{int(target.stat().st_mtime)}.log"))
        with contextlib.suppress(OSError):
            os.replace(log, target)  # the kernel keeps writing to the same file
        # The record stays ".claimed" while the kernel lives: its idle watch sees it and lets it be.
        return adopt(entry)
    return None


def kernel_running(km: Any) -> bool:
    """Whether ``km``'s kernel process runs (False once it is shut down: its provisioner forgets it)."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    return process is not None and process.poll() is None


class HandedKernel:
    """A claimed kernel as the executor holds a spare (:class:`utils.pipeline.execute.SpareKernel`'s methods)."""

    def __init__(self, km: Any):
        self.km = km

    def take(self, timeout: float = 120) -> Any:
        """The kernel manager if the kernel still runs (papermill waits for it to be ready), else None."""
        return self.km if kernel_running(self.km) else None

    def adopt(self, run: Path) -> None:
        """Nothing to move: :func:`claim` moved its log into the run."""

    def discard(self) -> None:
        shutdown(self.km, now=True)


def next_step(run: Path, current: str | None = None) -> Step | None:
    """The first step in the catalog's order, other than ``current``, that ``run`` has not done yet."""
    steps = json.loads((Path(run) / "manifest.json").read_text(encoding="utf-8")).get("steps", {})
    done = {name for name, record in steps.items() if record.get("status") in ("executed", "reused")}
    return next((s for s in catalog.STEPS if s.name != current and s.name not in done), None)


def _forget(claimed: Path, entry: dict) -> None:
    for leftover in (claimed, *map(Path, entry.get("files", []))):
        leftover.unlink(missing_ok=True)


def discard(record: Path) -> bool:
    """End the kernel of ``record`` if nobody claimed it; True if one was ended."""
    entry = _take(Path(record))
    if entry is None:
        return False
    if same_process_running(entry["pid"], entry["started"]):
        shutdown(adopt(entry), now=True)
    _forget(Path(record).with_suffix(".claimed"), entry)
    return True


def discard_all(run_id: str) -> int:
    """End every unclaimed kernel left for run ``run_id`` and remove its records and files (the run's steps
    are over: a claimed kernel is gone with its task); how many were ended."""
    folder = spares_dir(run_id)
    if not folder.is_dir():
        return 0
    ended = sum(discard(record) for record in sorted(folder.glob("*.json")))
    for claimed in folder.glob("*.claimed"):
        with contextlib.suppress(OSError, ValueError):
            _forget(claimed, json.loads(claimed.read_text(encoding="utf-8")))
    for leftover in folder.glob("*"):
        leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()
        folder.parent.rmdir()
    return ended


def evaluate_in_kernel(km: Any, expression: str, timeout: float = 120) -> Any:
    """The value of the Python literal ``expression`` evaluates to in ``km``'s kernel (the request waits
    until the kernel serves it), evaluated silently: no output, no execution count, nothing added to its
    namespace. Raises if the kernel ends first or does not answer within ``timeout`` seconds."""
    client = km.blocking_client()
    # The shell channel alone: the request waits in it until the kernel serves (no readiness handshake,
    # whose quiet-IOPub wait alone costs 0.2 s a call).
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        msg_id = client.execute("", silent=True, store_history=False, user_expressions={"value": expression})
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = client.get_shell_msg(timeout=0.5)
            except queue.Empty:
                if not kernel_running(km):
                    raise RuntimeError("the kernel ended before it answered") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the kernel did not answer within {timeout:.0f} s") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        result = reply["content"]["user_expressions"]["value"]
        if result["status"] != "ok":
            raise RuntimeError(f"{result['ename']}: {result['evalue']}")
        return ast.literal_eval(result["data"]["text/plain"])
    finally:
        client.stop_channels()


class BackgroundTracker:
    """The runner's MLflow tracker, its MLflow work done in a notebook kernel that has MLflow loaded.

    MLflow takes about two seconds of a core and 120 MB to import and open its store. A notebook
    kernel has it loaded: while one runs, the notebook's MLflow run is created, given its executed
    copy and ended there (:func:`utils.core.tracking.create_run`, ``log_artifact``, ``end_run``,
    ``end_stale_runs``). ``km``: the kernel handed over to a scheduler's step (whose executor keeps
    it until its process closes); ``kernel``: a function giving a kernel to use, or None (a whole
    run: :meth:`utils.pipeline.execute.PapermillExecutor.tracking_kernel`). Anything else (the
    run's metrics), a failure's end, and any call once no kernel runs or one fails it, goes to the
    tracker loaded in this process: in a thread from the start with ``preload`` (a step that also
    finishes the run: the registry needs MLflow anyway), from :meth:`load_in_background`, else
    where it is first needed.
    """

    def __init__(self, km: Any = None, make: Callable[[], Any] | None = None, preload: bool = True,
                 kernel: Callable[[], Any] | None = None):
        """``make``: the tracker to load (default: the runner's :class:`~utils.pipeline.runner.MlflowTracker`)."""
        self.km, self._make, self._tracker, self._error = km, make or MlflowTracker, None, None
        self._kernel = kernel if kernel is not None else (lambda: km)
        self._thread: threading.Thread | None = None
        if preload or (km is None and kernel is None):
            self.load_in_background()

    def load_in_background(self) -> None:
        """Start loading this process's own tracker in a thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="load-mlflow", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        try:
            self._tracker = self._make()
        except BaseException as err:  # noqa: BLE001 - raised where the tracker is first needed
            self._error = err

    @property
    def loaded(self) -> bool:
        """Whether this process has loaded (or is loading) its own tracker."""
        return self._thread is not None

    def tracker(self) -> Any:
        self.load_in_background()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._tracker

    def _in_kernel(self, call: str) -> tuple[bool, Any]:
        """(True, the value of ``utils.core.tracking.<call>`` evaluated in a running kernel), or (False,
        None) without one or if the call fails there."""
        try:
            km = self._kernel()
            if km is None or not kernel_running(km):
                return False, None
            return True, evaluate_in_kernel(km, f"__import__('utils.core.tracking', fromlist=['_']).{call}",
                                            timeout=KERNEL_CALL_SECONDS)
        except Exception:  # noqa: BLE001 - the tracker of this process does the same
            return False, None

    def end_stale(self) -> list[str]:
        done, stale = self._in_kernel("end_stale_runs()")
        return list(stale) if done else self.tracker().end_stale()

    def start(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> str:
        done, run_id = self._in_kernel(f"create_run({name!r}, {tags!r}, {parent_id!r})")
        return str(run_id) if done else self.tracker().start(name, tags, parent_id)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        done, _ = self._in_kernel(f"log_artifact({run_id!r}, {str(path)!r}, {artifact_path!r})")
        if not done:
            self.tracker().log_artifact(run_id, path, artifact_path)

    def end(self, run_id: str, status: str) -> None:
        # A failure's end is not left to a kernel that may be what failed (busy, or dying).
        done = status == "FINISHED" and self._in_kernel(f"end_run({run_id!r}, {status!r})")[0]
        if not done:
            self.tracker().end(run_id, status)

    def __getattr__(self, name: str) -> Any:  # log_params, log_metrics
        return getattr(self.tracker(), name)
