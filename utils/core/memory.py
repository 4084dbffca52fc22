"""Giving the memory a process has freed back to the system (glibc's ``malloc_trim``).

Python frees objects into its allocator's heaps, and glibc keeps freed heap pages for later
instead of returning them, above all in the per-thread arenas a thread pool leaves behind. A
notebook kernel that ran 03's cross-validation on two threads kept about 150 MB it no longer
used, until the kernel ended; the next notebook's kernel, started beside it, then had no room
(:data:`utils.pipeline.execute.SPARE_KERNEL_LIMIT_MB`). :func:`release_free_memory` asks glibc
to return every free page; :func:`release_after_each_cell` does so after every cell of an
IPython kernel (the run's kernels register it when they start). Nothing changes what a cell
computes: only pages nobody uses are returned.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

from IPython import get_ipython

_HOOKED = "_lead2value_releases_memory"


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (another C library: macOS, musl, Windows); looked up once."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the free pages of every heap to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def release_after_each_cell(shell: Any = None) -> bool:
    """Call :func:`release_free_memory` after every cell ``shell`` (default: the running IPython) runs.

    Registered once per shell, however often it is called; False outside IPython or without glibc.
    """
    if shell is None:
        shell = get_ipython()
    if shell is None or _malloc_trim() is None:
        return False
    if not getattr(shell, _HOOKED, False):
        shell.events.register("post_run_cell", lambda result: release_free_memory())
        setattr(shell, _HOOKED, True)
    return True
