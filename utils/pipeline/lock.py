"""One run at a time: an exclusive lock on ``outputs/.run_all.lock``, released by the OS if the holder dies."""
from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.core import paths

LOCK_PATH = paths.OUTPUTS_DIR / ".run_all.lock"


class RunLockedError(RuntimeError):
    """Another run_all.py holds the lock."""


@contextmanager
def run_lock(lock_path: Path = LOCK_PATH) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock for the whole run; the message names the holder."""
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
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}")
    handle.flush()
    try:
        yield
    finally:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
