"""Executing one notebook step: papermill into ``<run>/notebooks/``, an HTML copy, peak memory.

The runner talks to an :class:`Executor`; :class:`PapermillExecutor` is the real one,
and the unit tests of the runner's decisions use a fake that writes the step's datasets
directly, so reuse, failure and promotion rules are tested in seconds.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

import psutil
from jupyter_client import AsyncKernelManager
from traitlets import default

from utils.core import paths
from utils.pipeline.catalog import Step


class LocalKernelManager(AsyncKernelManager):
    """A notebook kernel that talks to us over local sockets (IPC), not TCP.

    Nothing listens on a network port, and the kernel has no reason to print its
    "running over TCP without encryption" warning on the terminal for every notebook.
    """

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc"


class StepFailed(RuntimeError):
    """A notebook stopped; the message names the step, the failing cell and the executed copy."""

    def __init__(self, step: str, message: str, executed_copy: Path | None = None):
        self.step, self.executed_copy = step, executed_copy
        super().__init__(message)


class Executor(Protocol):
    def execute(self, step: Step, run: Path, parameters: dict[str, Any], progress: bool) -> float | None:
        """Run the step into ``run``; return its peak memory in MB (None if not measured). Raise StepFailed."""


class PeakMemory:
    """Samples the RSS of this process's children (the notebook kernel) while a step runs."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
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


def run_notebook(step: Step, run: Path, parameters: dict[str, Any], progress: bool = False, html: bool = True) -> Path:
    """Execute the step's notebook with papermill into ``<run>/notebooks/<step>.ipynb`` (and ``.html``).

    The kernel process's own output goes to ``<run>/logs/<step>.kernel.log``.
    """
    skip_iri_grammar()
    # papermill and nbconvert are only needed to execute notebooks, not inside one: imported here.
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    kernel_environment()
    out = Path(run) / "notebooks" / f"{step.name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    log = Path(run) / "logs" / f"{step.name}.kernel.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            str(step.notebook), str(out), parameters=parameters, kernel_name="python3",
            progress_bar=progress, cwd=str(paths.PROJECT_ROOT), log_output=False,
            kernel_manager_class=kernel_manager_logging_to(log),
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


def export_html(notebook: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    out = notebook.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


class PapermillExecutor:
    """The real executor: one notebook kernel per step, its peak memory sampled.

    ``html=False`` keeps the executed notebook without its HTML copy (the scoring job: the
    export costs seconds, and the job's dashboard is its report).
    """

    def __init__(self, html: bool = True):
        self.html = html

    def execute(self, step: Step, run: Path, parameters: dict[str, Any], progress: bool) -> float | None:
        with PeakMemory() as memory:
            run_notebook(step, run, parameters, progress, self.html)
        return round(memory.peak / 1e6, 1)
