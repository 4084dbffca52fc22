import threading
import time

import numpy as np
import pytest

from utils.core import parallel
from utils.core.parallel import WORKERS_VARIABLE, default_workers, ordered_map


def test_results_come_in_the_order_of_the_items_even_when_later_ones_finish_first():
    def slow_then_fast(item):
        time.sleep(0.2 if item == 0 else 0.0)
        return item * 10

    assert list(ordered_map(slow_then_fast, range(5), workers=2)) == [0, 10, 20, 30, 40]


def test_tasks_run_at_the_same_time_on_several_threads():
    both_started = threading.Barrier(2, timeout=5)

    def meet(item):
        both_started.wait()  # with one thread at a time this would time out and raise
        return threading.current_thread().name

    names = list(ordered_map(meet, range(2), workers=2))
    assert len(set(names)) == 2 and all(name.startswith("lead2value") for name in names)


def test_one_worker_runs_every_task_in_the_calling_thread():
    caller = threading.current_thread().name
    assert set(ordered_map(lambda _: threading.current_thread().name, range(3), workers=1)) == {caller}


def test_a_parallel_map_gives_the_same_bits_as_a_loop():
    def fold(seed):
        rng = np.random.default_rng(seed)
        return float(np.sum(rng.normal(size=10_000) ** 2))

    assert list(ordered_map(fold, range(8), workers=3)) == [fold(seed) for seed in range(8)]


def test_the_first_failure_is_raised_at_its_place_and_later_tasks_are_not_started():
    started = []

    def task(item):
        started.append(item)
        if item == 1:
            raise ValueError("fold 1 failed")
        time.sleep(0.05)
        return item

    results = ordered_map(task, range(20), workers=2)
    assert next(results) == 0
    with pytest.raises(ValueError, match="fold 1 failed"):
        next(results)
    assert len(started) < 20


def test_workers_default_to_the_cores_and_follow_the_environment(monkeypatch):
    monkeypatch.delenv(WORKERS_VARIABLE, raising=False)
    assert default_workers() == parallel.available_cores() >= 1
    monkeypatch.setenv(WORKERS_VARIABLE, "3")
    assert default_workers() == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_worker_count_in_the_environment_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(WORKERS_VARIABLE, value)
    with pytest.raises(ValueError, match=WORKERS_VARIABLE):
        default_workers()


def test_zero_workers_is_refused():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        list(ordered_map(str, range(3), workers=0))


class _Unsafe:
    thread_safe = False

    def predict(self, X):
        return np.zeros(len(X))


class _Wrapper:
    def __init__(self, estimator):
        self.estimator = estimator


def test_thread_safety_is_read_through_wrappers_and_pipelines():
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    assert parallel.thread_safe(LinearRegression())
    assert not parallel.thread_safe(_Unsafe())
    assert not parallel.thread_safe(_Wrapper(_Unsafe()))
    assert not parallel.thread_safe(Pipeline([("scale", "passthrough"), ("model", _Wrapper(_Unsafe()))]))
    assert parallel.thread_safe(Pipeline([("scale", "passthrough"), ("model", LinearRegression())]))


def test_predictions_in_chunks_equal_one_call_bit_for_bit():
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(1_003, 4)), columns=list("abcd"), index=np.arange(1_003) * 7)
    y = X["a"] * 2 + rng.normal(size=len(X))
    forest = RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=1).fit(X, y)
    whole = forest.predict(X)
    chunked = parallel.predict_in_chunks(forest.predict, X, chunk_rows=100, workers=2)
    assert chunked.dtype == whole.dtype and np.array_equal(chunked, whole)
    on_arrays = RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=1).fit(X.to_numpy(), y)
    assert np.array_equal(parallel.predict_in_chunks(on_arrays.predict, X.to_numpy(), chunk_rows=333, workers=2),
                          on_arrays.predict(X.to_numpy()))


def test_a_model_that_is_not_thread_safe_is_scored_in_one_call():
    calls = []

    def predict(X):
        calls.append(len(X))
        return np.zeros(len(X))

    parallel.predict_in_chunks(predict, np.zeros((250, 2)), chunk_rows=100, workers=2, model=_Unsafe())
    assert calls == [250]
    calls.clear()
    parallel.predict_in_chunks(predict, np.zeros((250, 2)), chunk_rows=100, workers=2)
    assert sorted(calls) == [50, 100, 100]


def test_chunks_of_no_rows_are_refused():
    with pytest.raises(ValueError, match="chunk_rows"):
        parallel.predict_in_chunks(np.asarray, np.zeros(3), chunk_rows=0)


def test_models_are_cut_into_runs_that_share_the_cores_and_runs_that_go_alone():
    models = {"a": object(), "b": object(), "c": _Unsafe(), "d": _Wrapper(_Unsafe()), "e": object()}
    assert parallel.thread_safe_runs(models) == [(["a", "b"], None), (["c", "d"], 1), (["e"], None)]
    assert parallel.thread_safe_runs({}) == []


def test_resamples_are_the_ones_a_loop_draws_and_come_back_in_order():
    loop_rng = np.random.default_rng(11)
    loop = [float(np.sum(np.sqrt(loop_rng.integers(0, 500, 500)))) for _ in range(23)]
    side_by_side = list(parallel.map_resamples(lambda rows: float(np.sum(np.sqrt(rows))), 500, 23,
                                               np.random.default_rng(11), block=5, workers=3))
    assert side_by_side == loop
    with pytest.raises(ValueError, match="block"):
        list(parallel.map_resamples(len, 10, 3, np.random.default_rng(0), block=0))
