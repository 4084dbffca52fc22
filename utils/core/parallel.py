"""Independent tasks on every core, their results in the order given: faster, never different.

Cross-validation folds, tuning trials and permutation repeats are independent computations.
:func:`ordered_map` runs them on a pool of threads and returns their results in the order of
the inputs, so a table built from them is the same, bit for bit, as the one a plain loop
builds, whatever the number of workers. Threads, not processes: the heavy work in these
tasks (LightGBM, scikit-learn's trees, numpy) runs in C without holding Python's GIL, the
data are shared instead of copied into every worker (memory stays flat), and nothing has
to be pickled. Each task must be deterministic on its own (fixed seeds, models with one
thread of their own); a task must not depend on another's side effects.

Coarse tasks on a thread pool also behave on a busy machine, where many fine-grained OpenMP
threads (LightGBM's ``n_jobs`` > 1) spin and wait on each other.

The number of workers is the number of cores this process may use, or
``LEAD2VALUE_WORKERS`` (``1``: every task in the calling thread, one after the other).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

WORKERS_VARIABLE = "LEAD2VALUE_WORKERS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS says, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """``LEAD2VALUE_WORKERS`` if set (a whole number >= 1), else every available core."""
    value = os.environ.get(WORKERS_VARIABLE, "").strip()
    if not value:
        return available_cores()
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise ValueError(f"{WORKERS_VARIABLE}={value!r}: must be a whole number of threads >= 1")
    return workers


def ordered_map(function: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> Iterator[R]:
    """``function`` applied to every item, results yielded in the items' order as they become ready.

    With one worker (or one item) the calls run in the calling thread, one after the other.
    The first exception a task raises is raised here, at its place in the order; tasks not
    yet started are then cancelled.
    """
    items = list(items)
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 or len(items) <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="lead2value") as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def map_resamples(function: Callable[[np.ndarray], R], n_rows: int, n_resamples: int, rng: np.random.Generator,
                  block: int = 100, workers: int | None = None) -> Iterator[R]:
    """``function(rows)`` for ``n_resamples`` bootstrap resamples of ``n_rows`` rows, yielded in order.

    The resamples are drawn here, one after the other, exactly as a loop of
    ``rows = rng.integers(0, n_rows, n_rows)`` draws them (so the same ones); only the work on
    them runs side by side, ``block`` resamples at a time (their row indices held in memory).
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    done = 0
    while done < n_resamples:
        drawn = [rng.integers(0, n_rows, n_rows) for _ in range(min(block, n_resamples - done))]
        yield from ordered_map(function, drawn, workers)
        done += len(drawn)


# Rows per block when one model scores many rows: fixed, so the blocks (and any arithmetic that
# could depend on them) are the same whatever the number of workers.
CHUNK_ROWS = 20_000


def thread_safe(model: object) -> bool:
    """False when the model, or one it wraps (``estimator``, ``estimator_``, pipeline steps), declares
    ``thread_safe = False``: it changes process-wide state (warning filters, ``sys.stdout``) while it
    fits or predicts, so it must not run beside other threads."""
    todo, seen = [model], set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(type(current), "thread_safe", True) is False:
            return False
        todo.extend(inner for inner in (getattr(current, "estimator", None), getattr(current, "estimator_", None))
                    if inner is not None)
        todo.extend(step for _, step in getattr(current, "steps", None) or [] if step not in (None, "passthrough"))
    return True


def thread_safe_runs(models: Mapping[str, object]) -> list[tuple[list[str], int | None]]:
    """The models' names in their order, cut into runs that may share the cores (workers None: every
    core) and runs whose models must go one at a time (workers 1: not :func:`thread_safe`)."""
    runs: list[tuple[list[str], int | None]] = []
    for name, model in models.items():
        workers = None if thread_safe(model) else 1
        if runs and runs[-1][1] == workers:
            runs[-1][0].append(name)
        else:
            runs.append(([name], workers))
    return runs


def predict_in_chunks(predict: Callable, X, chunk_rows: int = CHUNK_ROWS, workers: int | None = None,
                      model: object = None):
    """``predict(X)`` as a numpy array, computed on blocks of ``chunk_rows`` rows in parallel.

    Only for models that score each row on its own (every scikit-learn predictor here, LightGBM,
    the forests): the result is then the same as one call on every row. A ``model`` that is not
    :func:`thread_safe` is scored in one call.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    n_rows = len(X)
    if n_rows <= chunk_rows or (model is not None and not thread_safe(model)):
        return np.asarray(predict(X))
    rows = (lambda start: X.iloc[start:start + chunk_rows]) if hasattr(X, "iloc") else \
        (lambda start: X[start:start + chunk_rows])
    return np.concatenate(list(ordered_map(lambda start: np.asarray(predict(rows(start))),
                                           range(0, n_rows, chunk_rows), workers)))
