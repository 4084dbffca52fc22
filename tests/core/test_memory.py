"""Freed memory goes back to the system: after a thread pool's work, and after each cell of a kernel."""
import sys
import threading

import psutil
import pytest

from utils.core import memory

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or memory._malloc_trim() is None,
                                reason="malloc_trim is glibc's")


@glibc_only
def test_memory_freed_by_threads_goes_back_to_the_system():
    def work(survivors):
        blocks = [bytes(1000 + i % 7) for i in range(100_000)]  # ~100 MB of malloc'd blocks per thread
        survivors.append(blocks[::1000])  # a few survivors keep the threads' heaps from shrinking by themselves
        del blocks

    survivors: list = []
    threads = [threading.Thread(target=work, args=(survivors,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    me = psutil.Process()
    before = me.memory_info().rss
    assert memory.release_free_memory() is True
    assert before - me.memory_info().rss > 100e6
    assert len(survivors) == 2 and all(len(s) == 100 for s in survivors)  # what is still used stays


class FakeEvents:
    def __init__(self):
        self.callbacks = []

    def register(self, event, callback):
        self.callbacks.append((event, callback))


class FakeShell:
    def __init__(self):
        self.events = FakeEvents()


@glibc_only
def test_a_shell_releases_memory_after_each_cell_registered_once():
    shell = FakeShell()
    assert memory.release_after_each_cell(shell) and memory.release_after_each_cell(shell)
    assert [event for event, _ in shell.events.callbacks] == ["post_run_cell"]
    assert shell.events.callbacks[0][1](None) is True  # what a cell's end calls


def test_outside_ipython_nothing_is_registered(monkeypatch):
    monkeypatch.setattr(memory, "get_ipython", lambda: None)
    assert memory.release_after_each_cell() is False


def test_without_glibc_nothing_is_trimmed_nor_registered(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    shell = FakeShell()
    assert memory.release_free_memory() is False and memory.release_after_each_cell(shell) is False
    assert shell.events.callbacks == []
