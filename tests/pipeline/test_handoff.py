"""Kernels handed from one scheduler task to the next: claimed once, ended when not claimed, clean behind."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from mlflow import MlflowClient

from utils.core import tracking
from utils.pipeline import catalog, handoff

EDA = catalog.step("01_eda")  # its import cell: pandas as pd, numpy as np, ...


@pytest.fixture()
def run(tmp_path, monkeypatch) -> Path:
    """A run folder of its own, and spares recorded under this test's outputs folder."""
    monkeypatch.setattr(handoff.paths, "OUTPUTS_DIR", tmp_path / "outputs")
    folder = tmp_path / "outputs" / "runs" / "20260101-000000-smoke-test"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"steps": {"00_data": {"status": "executed"}}}))
    return folder


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def existing_store(tmp_path, monkeypatch) -> tuple[MlflowClient, str]:
    """An MLflow store with the project's experiment, made before any kernel is left for the run, as in
    a scheduled run (``run_all.py --begin`` makes them): a kernel warmed for a run sets the store up
    (:func:`utils.core.tracking.configure`), and two processes creating a new store's tables, or the
    same experiment, at once collide (``duplicate column name``, "already exists"). The client, the
    experiment's id."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the kernel inherits it, as from a scheduler's task
    client = MlflowClient(uri)
    experiment = client.create_experiment(tracking.EXPERIMENT_NAME, artifact_location=(tmp_path / "artifacts").as_uri())
    return client, experiment


def test_a_kernel_left_by_one_process_is_claimed_warm_by_the_next_and_killed_after(run):
    record = handoff.leave(EDA, run)
    entry = json.loads(record.read_text())
    assert entry["warmed_for"] == "01_eda" and psutil.Process(entry["pid"]).parent().pid == os.getpid()
    km = handoff.claim(EDA, run)
    assert km is not None and not record.exists()
    # Warmed by the notebook's import cell before it answers, with nothing printed into any notebook.
    assert handoff.evaluate_in_kernel(km, "'pd' in globals() and 'np' in globals()") is True
    assert handoff.evaluate_in_kernel(km, "get_ipython().execution_count") == 1, "the warm-up counted no cell"
    assert (run / "logs" / "01_eda.kernel.log").is_file(), "its log moved into the run"
    handoff.HandedKernel(km).discard()
    assert gone(entry["pid"])
    assert not any(Path(f"{entry['connection']['ip']}-{port}").exists() for port in range(1, 6)), "sockets removed"


def test_a_kernel_is_claimed_once(run):
    handoff.leave(EDA, run)
    first = handoff.claim(EDA, run)
    try:
        assert first is not None
        assert handoff.claim(EDA, run) is None
    finally:
        handoff.HandedKernel(first).discard()


def test_a_kernel_nobody_claims_ends_itself(run):
    record = handoff.leave(EDA, run, idle_seconds=1)
    pid = json.loads(record.read_text())["pid"]
    assert gone(pid, within=60)
    assert record.with_name(record.name + ".expired").exists()
    assert handoff.claim(EDA, run) is None


def test_a_claimed_kernel_outlives_its_idle_time(run):
    record = handoff.leave(EDA, run, idle_seconds=1)
    km = handoff.claim(EDA, run)
    try:
        time.sleep(3)  # the kernel is warm (its idle watch is running) well before the evaluation answers
        assert handoff.evaluate_in_kernel(km, "1 + 1") == 2
        time.sleep(1.5)
        assert km.provisioner.process.poll() is None, "claimed: it keeps running past its idle time"
    finally:
        handoff.HandedKernel(km).discard()
    assert not record.exists()


def test_a_kernel_started_before_the_run_began_is_given_to_it(run):
    pending = handoff.leave(catalog.STEPS[0], None)
    assert pending.parent.name == handoff.PENDING
    assigned = handoff.assign(pending, run)
    assert assigned.parent == handoff.spares_dir(run.name)
    km = handoff.claim(catalog.STEPS[0], run)
    assert km is not None
    handoff.HandedKernel(km).discard()


def test_finishing_a_run_ends_the_kernels_nobody_claimed_and_removes_their_files(run):
    pids = [json.loads(handoff.leave(EDA, run).read_text())["pid"] for _ in range(2)]
    assert handoff.discard_all(run.name) == 2
    assert all(gone(pid) for pid in pids)
    assert not handoff.spares_dir(run.name).exists()


def test_a_kernel_of_another_mlflow_store_is_not_claimed(run, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/not-this-store.db")
    record = handoff.leave(EDA, run)
    pid = json.loads(record.read_text())["pid"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert handoff.claim(EDA, run) is None
    assert gone(pid)


def test_the_kernel_creates_the_notebooks_mlflow_run_under_its_parent(run, tmp_path, monkeypatch):
    client, _ = existing_store(tmp_path, monkeypatch)
    handoff.leave(EDA, run)
    km = handoff.claim(EDA, run)
    try:
        parent = client.create_run(client.create_experiment("parent-of-test")).info.run_id
        tracker = handoff.BackgroundTracker(km, make=lambda: pytest.fail("the kernel creates the run"))
        child = tracker.start("01_eda", {"lead2value.step": "01_eda"}, parent)
        created = client.get_run(child)
        assert created.data.tags["mlflow.parentRunId"] == parent
        assert created.data.tags["lead2value.step"] == "01_eda" and created.info.run_name == "01_eda"
    finally:
        handoff.HandedKernel(km).discard()


def test_the_kernel_completes_and_ends_the_notebooks_run_without_mlflow_here(run, tmp_path, monkeypatch):
    """A step process with a handed kernel never loads its own tracker: the kernel logs the executed copy
    and ends the run. Once the kernel is gone, the tracker of this process takes over."""
    client, _ = existing_store(tmp_path, monkeypatch)
    handoff.leave(EDA, run)
    km = handoff.claim(EDA, run)
    recorder = Recorder()
    try:
        tracker = handoff.BackgroundTracker(km, make=lambda: recorder, preload=False)
        child = tracker.start("01_eda", {"lead2value.step": "01_eda"}, None)
        executed = tmp_path / "01_eda.html"
        executed.write_text("<p>executed</p>")
        tracker.log_artifact(child, executed, artifact_path="notebook")
        tracker.end(child, "FINISHED")
        assert not tracker.loaded and recorder.calls == []
        assert client.get_run(child).info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(child, "notebook")] == ["notebook/01_eda.html"]
    finally:
        handoff.HandedKernel(km).discard()
    assert not handoff.kernel_running(km)
    tracker.end("another-run", "FAILED")
    assert tracker.loaded and recorder.calls == [("end", "another-run", "FAILED")]


def test_a_whole_runs_tracker_uses_the_kernel_it_is_given_and_ends_a_failure_itself(run, tmp_path, monkeypatch):
    """kernel=...: the kernel of the moment does the MLflow calls (stale runs, a run's start and end); a
    failure's end, and the run's metrics, go to this process's tracker."""
    client, experiment = existing_store(tmp_path, monkeypatch)
    handoff.leave(EDA, run)
    km = handoff.claim(EDA, run)
    recorder = Recorder()
    current = {"km": km}
    try:
        tracker = handoff.BackgroundTracker(make=lambda: recorder, preload=False, kernel=lambda: current["km"])
        dead = client.create_run(experiment, tags={"lead2value.run_id": "dead"}).info.run_id
        child = client.create_run(experiment, tags={"mlflow.parentRunId": dead}).info.run_id
        by_hand = client.create_run(experiment).info.run_id  # a notebook opened in JupyterLab: left alone
        assert sorted(tracker.end_stale()) == sorted([dead, child])
        assert [client.get_run(r).info.status for r in (dead, child, by_hand)] == ["KILLED", "KILLED", "RUNNING"]
        parent = tracker.start("run_all test", {"lead2value.run_id": "test"})
        tracker.end(parent, "FINISHED")
        assert client.get_run(parent).info.status == "FINISHED" and not tracker.loaded
        tracker.end("a-failed-run", "FAILED")
        assert recorder.calls == [("end", "a-failed-run", "FAILED")]
        current["km"] = None
        assert tracker.start("00_data", {}, parent) == "run-from-the-tracker"
    finally:
        handoff.HandedKernel(km).discard()


class Recorder:
    def __init__(self):
        self.calls = []

    def start(self, name, tags, parent_id=None):
        self.calls.append(("start", name))
        return "run-from-the-tracker"

    def end(self, run_id, status):
        self.calls.append(("end", run_id, status))


def test_without_a_handed_kernel_the_loaded_tracker_does_everything():
    recorder = Recorder()
    tracker = handoff.BackgroundTracker(None, make=lambda: recorder)
    assert tracker.start("00_data", {}, "parent") == "run-from-the-tracker"
    tracker.end("run-from-the-tracker", "FINISHED")
    assert recorder.calls == [("start", "00_data"), ("end", "run-from-the-tracker", "FINISHED")]


def test_a_tracker_that_failed_to_load_says_so_where_it_is_needed():
    def broken():
        raise RuntimeError("no store")

    with pytest.raises(RuntimeError, match="no store"):
        handoff.BackgroundTracker(None, make=broken).start("00_data", {}, None)


def test_a_kernel_manager_without_a_process_is_not_running():
    assert not handoff.kernel_running(None)
    assert not handoff.kernel_running(SimpleNamespace(provisioner=SimpleNamespace(process=None)))
    ended = SimpleNamespace(poll=lambda: 0)
    assert not handoff.kernel_running(SimpleNamespace(provisioner=SimpleNamespace(process=ended)))


def test_a_reused_pid_is_not_taken_for_the_kernel():
    me = psutil.Process()
    assert handoff.same_process_running(me.pid, me.create_time())
    assert not handoff.same_process_running(me.pid, me.create_time() - 100)
    process = handoff.ForeignProcess(me.pid, me.create_time() - 100)
    assert process.poll() is not None, "a pid that started at another time is another process: ours is gone"


def test_the_next_step_is_the_first_one_the_run_has_not_done(run):
    assert handoff.next_step(run, "02_cleaning").name == "01_eda"
    assert handoff.next_step(run, "01_eda").name == "02_cleaning"
