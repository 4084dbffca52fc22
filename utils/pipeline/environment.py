"""The machine a run needs, checked before anything is made: a writable ``outputs/``, a tracking
server that answers, and no run folder left "running" by a process that is gone.

Each check fails with one :class:`EnvironmentProblem` line that says what is wrong and what
to do; ``run_all.py`` prints it and exits 2, before a run folder or an MLflow run exists.
Cheap to import (no MLflow): it runs before the plan, also on the no-op path.
"""
from __future__ import annotations

import atexit
import datetime as dt
import gc
import json
import os
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from utils.core import paths
from utils.core.files import write_json

# The probe gives up after this many seconds, whatever hangs (DNS, a silent firewall, a stuck server).
PROBE_SECONDS = 10.0
KILLED = "killed"


def skip_exit_collection() -> None:
    """Let this process exit without the interpreter's last full garbage collection.

    A run_all.py process holds MLflow, pandas, SQLAlchemy and papermill: the collection Python
    runs while shutting down walks every one of their objects to free memory the operating system
    frees anyway, about 0.7 s of one core at the end of every process (a second on a busy machine;
    measured with py-spy, in ``gc_collect_main`` after the last ``atexit`` handler). Under a
    scheduler that is paid once per task. Every ``atexit`` handler (logging's flush, MLflow's)
    still runs and so do the destructors of objects freed by reference counting: frozen objects
    are only out of the collector's sight. Files are closed where they are written, never left to
    a collector.
    """
    atexit.register(gc.freeze)


class EnvironmentProblem(RuntimeError):
    """The machine cannot run the pipeline as configured; the message says what to do."""


def check_outputs_writable(outputs: Path | None = None) -> None:
    """``outputs/`` and its run and MLflow folders exist or can be made, and take a new file."""
    outputs = outputs or paths.OUTPUTS_DIR
    for folder in (outputs, outputs / "runs", outputs / "mlflow"):
        if folder != outputs and not folder.exists():
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
                pass
        except OSError as error:
            raise EnvironmentProblem(
                f"cannot write to {folder} ({error.strerror or error}): make it writable, or point "
                f"LEAD2VALUE_OUTPUTS at a folder you can write") from None


def tracking_uri() -> str:
    """The URI the run will track to: ``MLFLOW_TRACKING_URI``, else the local store under outputs/mlflow."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.MLFLOW_DIR / 'mlflow.db'}"


def probe_tracking_server(uri: str | None = None, seconds: float = PROBE_SECONDS) -> None:
    """An HTTP tracking server answers within ``seconds``, or one line saying what to do.

    Local stores (sqlite, file) need no probe: ``check_outputs_writable`` covers them. Any
    HTTP answer but 401/403 counts as "there" (``/health`` is absent behind some proxies).
    """
    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    outcome: dict[str, BaseException | int] = {}

    def probe() -> None:
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=seconds) as response:
                outcome["status"] = response.status
        except urllib.error.HTTPError as error:
            outcome["status"] = error.code
        except Exception as error:  # noqa: BLE001 (any failure to connect is the answer)
            outcome["error"] = error

    # A thread, because urlopen's timeout does not cover name resolution.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(seconds + 1)
    what_to_do = (f"start it (e.g. `mlflow server --host 0.0.0.0 --port 5000`), correct MLFLOW_TRACKING_URI, or unset "
                  f"it to track to the local store under {paths.MLFLOW_DIR}")
    if thread.is_alive():
        raise EnvironmentProblem(f"the MLflow tracking server {uri} (MLFLOW_TRACKING_URI) did not answer within "
                                 f"{seconds:.0f} s: {what_to_do}")
    if "error" in outcome:
        error = outcome["error"]
        reason = getattr(error, "reason", error)
        raise EnvironmentProblem(f"the MLflow tracking server {uri} (MLFLOW_TRACKING_URI) is not reachable "
                                 f"({reason}): {what_to_do}")
    if outcome.get("status") in (401, 403):
        raise EnvironmentProblem(f"the MLflow tracking server {uri} refuses us (HTTP {outcome['status']}): set "
                                 f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN")


def mark_stale_runs(runs_dir: Path | None = None, keep: str | None = None) -> list[str]:
    """Mark "killed" every run folder still "running": call it holding the run lock, so their process is gone.

    ``keep``: the run whose lease is open (a scheduler carries it through several processes,
    so it is "running" between them). Returns the run ids marked (the runner marks their MLflow runs).
    """
    stale = []
    for status_file in sorted((runs_dir or paths.RUNS_DIR).glob("*/status.json")):
        try:
            status = json.loads(status_file.read_text())
        except (OSError, ValueError):
            continue
        run = status_file.parent
        if status.get("status") != "running" or run.name == keep:
            continue
        pid = status.get("pid")
        if pid and pid != os.getpid() and _alive(pid) and _is_run_all(pid):
            continue  # cannot happen under the lock, unless the lock file was removed by hand
        now = dt.datetime.now().isoformat(timespec="seconds")
        why = f"its process{f' (pid {pid})' if pid else ''} ended without finishing it (killed?); marked at {now}"
        write_json(status_file, {**status, "status": KILLED, "at": now, "why": why})
        manifest_file = run / "manifest.json"
        if manifest_file.exists():
            try:
                manifest = json.loads(manifest_file.read_text())
                manifest.update(status=KILLED, error=why)
                write_json(manifest_file, manifest)
            except (OSError, ValueError):
                pass
        stale.append(run.name)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _is_run_all(pid: int) -> bool:
    """The process is a run_all.py (a recycled pid belongs to something else)."""
    try:
        return "run_all" in Path(f"/proc/{int(pid)}/cmdline").read_bytes().decode(errors="ignore")
    except OSError:
        return False
