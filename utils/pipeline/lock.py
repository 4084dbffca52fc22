"""One run at a time: an exclusive lock on ``outputs/.run_all.lock``, released by the OS if the holder dies.

A run spread over several processes (a scheduler's tasks: ``run_all.py --begin``, ``--step``,
``--finish``) also holds a lease, ``outputs/.run_all.lease``, from its beginning to its end:
while it is open, every other run is refused, and only that run's own steps may go on.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.core import paths

# Under outputs/, looked up at call time: LEAD2VALUE_OUTPUTS (or a test) may move it.
LOCK_NAME = ".run_all.lock"
LEASE_NAME = ".run_all.lease"


class RunLockedError(RuntimeError):
    """Another run_all.py holds the lock, or another run's lease is open."""


@contextmanager
def run_lock(lock_path: Path | None = None, lease_path: Path | None = None,
             for_run: str | None = None) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock for the whole invocation; the message names the holder.

    ``for_run``: this invocation works on that open multi-process run (its lease is expected);
    without it, any open lease refuses the invocation.
    """
    lock_path = lock_path or paths.OUTPUTS_DIR / LOCK_NAME
    lease_path = lease_path or paths.OUTPUTS_DIR / LEASE_NAME
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunLockedError(
            f"another run_all.py is running ({holder}); wait for it to finish. Lock file: {lock_path}"
        ) from None
    try:
        lease = read_lease(lease_path)
        if lease is not None and lease["run_id"] != for_run:
            raise RunLockedError(
                f"run {lease['run_id']} was begun with --begin (e.g. by a scheduler) on {lease['since']} and is not "
                f"finished; finish it, or give it up with `python run_all.py --run {lease['run_id']} --abandon`")
        if for_run is not None and lease is None:
            raise RunLockedError(f"run {for_run} holds no lease: it was not begun with --begin, or it has ended")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}")
        handle.flush()
        yield
    finally:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def read_lease(lease_path: Path | None = None) -> dict | None:
    lease_path = lease_path or paths.OUTPUTS_DIR / LEASE_NAME
    try:
        return json.loads(lease_path.read_text())
    except (OSError, ValueError):
        return None


def open_lease(run_id: str, lease_path: Path | None = None) -> None:
    """Reserve the outputs for a multi-process run (call while holding the lock)."""
    lease_path = lease_path or paths.OUTPUTS_DIR / LEASE_NAME
    lease_path.parent.mkdir(parents=True, exist_ok=True)
    lease_path.write_text(json.dumps({"run_id": run_id, "since": dt.datetime.now().isoformat(timespec="seconds")}))


def close_lease(run_id: str, lease_path: Path | None = None) -> None:
    """Give the outputs back (call while holding the lock); only the run that holds the lease may."""
    lease_path = lease_path or paths.OUTPUTS_DIR / LEASE_NAME
    lease = read_lease(lease_path)
    if lease is not None and lease["run_id"] == run_id:
        lease_path.unlink()
