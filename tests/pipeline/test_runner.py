"""The runner's decisions (reuse, failure, promotion), with fakes for papermill, MLflow and the registry.

The fake executor writes each step's catalog datasets as small files whose content
depends only on what the real step's output depends on (leads data on the leads
parameters, CLV data on the CLV ones), so these tests run in seconds.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from utils.core import paths
from utils.core.hashing import sha256_bytes
from utils.pipeline import catalog, plan, promotions, runner
from utils.pipeline.execute import StepFailed
from utils.pipeline.plan import RunOptions

# What each dataset depends on: parameters (of the step) and datasets read.
DEPENDS = {
    "leads_raw": ["n_leads"], "leads_new": ["n_new_leads"],
    "clv_customers": ["n_customers"], "clv_web_actions": ["n_customers"], "clv_campaigns": ["n_customers"],
    "clv_purchases": ["n_customers"], "clv_purchase_lines": ["n_customers"],
    "raw_snapshot": ["leads_raw", "leads_new", "clv_customers"], "leads_source": ["leads_raw"],
    "clv_source": ["clv_customers"],
    "leads_clean": ["leads_raw"], "lead_cleaning_report": ["leads_raw"],
    "clv_train": ["clv_purchases", "clv_customers"], "clv_score": ["clv_purchases"], "clv_feature_report": ["clv_purchases"],
    "clv_history": ["clv_purchases", "clv_customers"],
    "leads_scored": ["leads_new", "lead_model"], "customers_scored": ["clv_score", "clv_model"],
    "scoring_provenance": ["lead_model", "clv_model"], "dashboard": ["leads_scored"],
}


class FakeExecutor:
    """Writes each step's datasets; a model step registers a version and records a gate decision as 03/04 do:
    against the champion as it is when the step runs, taken in this run (``promote``: what the gate says)."""

    def __init__(self, registry: FakeRegistry, fail: str | None = None, promote: bool = True, during=None):
        self.registry, self.fail, self.promote, self.during, self.executed = registry, fail, promote, during, []

    def execute(self, step, run, parameters, progress):
        if step.name == self.fail:
            raise StepFailed(step.name, f"{step.name} failed in cell 7: `boom`")
        if self.during:
            self.during(step.name, self.registry)
        self.executed.append(step.name)
        (run / "notebooks").mkdir(parents=True, exist_ok=True)
        (run / "notebooks" / f"{step.name}.ipynb").write_text("{}")
        if step.name == "01_eda":
            (run / "figures").mkdir(exist_ok=True)
            (run / "figures" / "eda.png").write_text(self._content(["leads_raw"], run, parameters))
        for ds in catalog.produces(step.name):
            path = ds.location(run)
            path.parent.mkdir(parents=True, exist_ok=True)
            if ds.model:
                version = self.registry.register(ds.model)
                champion = self.registry.aliases.get(ds.model)
                path.write_text(json.dumps({
                    "name": ds.model, "version": version, "promote": self.promote, "run_id": run.name,
                    "reason": "no champion yet" if champion is None else f"compared with version {champion}",
                    "champion_version": champion, "serves": version if self.promote or not champion else champion,
                    "serving": f"{ds.model} v{version} serves", "lineage": {"run_id": run.name}}))
            else:
                path.write_text(self._content(DEPENDS[ds.name], run, parameters))
        (run / "metrics").mkdir(exist_ok=True)
        (run / "metrics" / f"{step.name}.json").write_text(json.dumps({f"{step.name}.executed": 1.0}))
        return 100.0

    @staticmethod
    def _content(depends, run, parameters):
        parts = [str(parameters.get(d)) if d in parameters else catalog.dataset(d).location(run).read_text()
                 for d in depends]
        return sha256_bytes("|".join(parts).encode())


class FakeTracker:
    def __init__(self):
        self.runs, self.ended = [], {}

    def start(self, name, tags, parent_id=None):
        self.runs.append(name)
        return f"run{len(self.runs)}"

    def log_params(self, run_id, params): ...

    def log_metrics(self, run_id, metrics): ...

    def log_artifact(self, run_id, path, artifact_path=None): ...

    def end(self, run_id, status):
        self.ended[run_id] = status

    def end_stale(self):
        return []


class FakeRegistry:
    def __init__(self):
        self.versions, self.aliases = {}, {}

    def register(self, name):
        self.versions[name] = self.versions.get(name, 0) + 1
        return str(self.versions[name])

    def set_champion(self, name, version):
        self.aliases[name] = version

    def champions(self):
        return dict(self.aliases)


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(paths, "LATEST_LINK", tmp_path / "latest")
    return tmp_path


class Harness:
    def __init__(self):
        self.registry = FakeRegistry()

    def run(self, *overrides, fail=None, force=False, promote=True, during=None):
        options = RunOptions(profile="smoke", overrides=tuple(overrides), force=force, progress=False)
        planned = plan.make_plan(options)
        executor = FakeExecutor(self.registry, fail, promote, during)
        tracker = FakeTracker()
        if plan.up_to_date(planned, options) is not None:
            return None, executor, tracker
        run = runner.run_pipeline(options, planned, executor, tracker, self.registry, check_inputs=lambda p: None)
        return run, executor, tracker


def steps_by_status(run: Path) -> dict[str, list[str]]:
    manifest = json.loads((run / "manifest.json").read_text())
    found: dict[str, list[str]] = {}
    for name, record in manifest["steps"].items():
        found.setdefault(record["status"], []).append(name)
    return found


ALL = [s.name for s in catalog.STEPS]


def test_first_run_executes_everything_then_nothing_is_left_to_do(outputs):
    h = Harness()
    run, executor, tracker = h.run()
    assert executor.executed == ALL
    assert (outputs / "latest").resolve() == run.resolve()
    assert h.registry.aliases == {"lead_scoring": "1", "clv": "1"}
    assert json.loads((run / "status.json").read_text())["status"] == "succeeded"
    assert json.loads((run / "metrics.json").read_text())["03_lead_model.executed"] == 1.0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["steps"]["02_cleaning"]["datasets"]["leads_clean"]
    assert set(tracker.ended.values()) == {"FINISHED"} and len(tracker.runs) == 1 + len(ALL)
    again, executor, _ = h.run()
    assert again is None and executor.executed == [], "nothing to do"


def test_a_leads_only_change_reexecutes_only_the_lead_steps_and_scoring(outputs):
    h = Harness()
    h.run()
    run, executor, _ = h.run("n_leads=7000")
    assert executor.executed == ["00_data", "01_eda", "02_cleaning", "03_lead_model", "05_scoring"]
    assert steps_by_status(run)["reused"] == ["04_clv_model"]
    assert all((run / rel).exists() for rel in json.loads((run / "manifest.json").read_text())["steps"]
               ["04_clv_model"]["outputs"]), "reused files are linked into the new run"


def test_new_leads_to_score_reexecute_only_the_data_step_and_scoring(outputs):
    """New leads are no input of cleaning or training: the models are reused, not retrained."""
    h = Harness()
    h.run()
    run, executor, _ = h.run("n_new_leads=1500")
    assert executor.executed == ["00_data", "05_scoring"]
    assert steps_by_status(run)["reused"] == ["01_eda", "02_cleaning", "03_lead_model", "04_clv_model"]


def test_a_clv_only_change_reexecutes_only_the_clv_steps_and_scoring(outputs):
    h = Harness()
    h.run()
    run, executor, _ = h.run("n_customers=2500")
    assert executor.executed == ["00_data", "01_eda", "02_cleaning", "04_clv_model", "05_scoring"]
    assert steps_by_status(run)["reused"] == ["03_lead_model"]


def test_a_failed_step_moves_neither_latest_nor_the_champions(outputs):
    h = Harness()
    first, _, _ = h.run()
    with pytest.raises(StepFailed, match="03_lead_model failed"):
        h.run("n_leads=7000", fail="03_lead_model")
    assert (outputs / "latest").resolve() == first.resolve()
    assert h.registry.aliases == {"lead_scoring": "1", "clv": "1"}
    failed = [p for p in (outputs / "runs").iterdir() if p != first]
    assert len(failed) == 1
    manifest = json.loads((failed[0] / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["steps"]["03_lead_model"]["status"] == "failed"
    assert json.loads((failed[0] / "status.json").read_text())["status"] == "failed"
    # only successful runs are reused from: the failed run's executed steps run again
    _, executor, _ = h.run("n_leads=7000")
    assert "00_data" in executor.executed


def test_the_issue_sequence_three_runs_then_a_rerun_matching_the_first_rolls_nothing_back(outputs, capsys):
    """Issue 11, point 1: runs A, B, C with different parameters each promote; a rerun with A's parameters reuses
    every step from A, and A's old promotion files must not move the champion back to version 1."""
    h = Harness()
    h.run()                                       # A: version 1 of both
    h.run("n_leads=7000", "n_customers=2500")     # B: version 2
    h.run("n_leads=8000", "n_customers=3000")     # C: version 3
    assert h.registry.aliases == {"lead_scoring": "3", "clv": "3"}
    capsys.readouterr()
    run, executor, _ = h.run()                    # D: A's parameters, every step reused from A
    out = capsys.readouterr().out
    assert executor.executed == [] and steps_by_status(run)["reused"] == ALL
    assert "executed 0, reused 6" in out
    assert h.registry.aliases == {"lead_scoring": "3", "clv": "3"}, "no rollback to version 1"
    assert "-> version 1" not in out, "the reused promotion of run A is not applied again"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["promotions"] == [] and manifest["aliases"] == {"lead_scoring": "3", "clv": "3"}
    model = manifest["models"]["lead_scoring"]
    assert model["applied"] is False and model["version"] == "1" and model["champion_now"] == "3"
    assert model["lineage"]["run_id"] != run.name, "the lineage of the version run A registered"
    assert "champion stays version 3" in model["outcome"] and "is history" in model["outcome"]
    assert "champion stays version 3: 03_lead_model was reused from run" in out


def test_only_the_executed_steps_decisions_are_applied(outputs):
    h = Harness()
    h.run()
    h.run("n_leads=7000")                          # 03 executed (lead v2), 04 reused (clv stays 1)
    assert h.registry.aliases == {"lead_scoring": "2", "clv": "1"}
    assert h.registry.versions == {"lead_scoring": 2, "clv": 1}


def test_a_rejected_candidate_is_registered_but_never_promoted(outputs, capsys):
    h = Harness()
    h.run()
    run, _, _ = h.run("n_leads=7000", promote=False)
    assert h.registry.aliases["lead_scoring"] == "1" and h.registry.versions["lead_scoring"] == 2
    model = json.loads((run / "manifest.json").read_text())["models"]["lead_scoring"]
    assert model["applied"] is False and model["serves"] == "1" and model["outcome"].startswith("not promoted")


def test_a_champion_moved_since_the_gate_compared_is_not_replaced(outputs, capsys):
    """Compare and set: 03 compared with version 1, then (while 05 runs) someone points champion at version 7."""
    h = Harness()
    h.run()

    def move_by_hand(step, registry):
        if step == "05_scoring":
            registry.aliases["lead_scoring"] = "7"

    run, _, _ = h.run("n_leads=7000", during=move_by_hand)
    assert h.registry.aliases["lead_scoring"] == "7", "the candidate was judged against version 1, not 7"
    model = json.loads((run / "manifest.json").read_text())["models"]["lead_scoring"]
    assert model["applied"] is False
    assert "champion moved from version 1 to version 7 since this run's gate compared" in model["outcome"]
    assert "champion moved from version 1 to version 7" in capsys.readouterr().out


def test_apply_promotions_refuses_a_decision_of_another_run():
    registry = FakeRegistry()
    registry.aliases = {"clv": "2"}
    decision = {"name": "clv", "version": "3", "promote": True, "reason": "r", "champion_version": "2",
                "run_id": "run-A"}
    [outcome] = promotions.apply_promotions([decision], registry, run_id="run-B")
    assert outcome["applied"] is False and "taken in run run-A, not in this run run-B" in outcome["outcome"]
    assert registry.aliases == {"clv": "2"}
    [outcome] = promotions.apply_promotions([decision], registry, run_id="run-A")
    assert outcome["applied"] is True and registry.aliases == {"clv": "3"}


def test_force_reexecutes_every_step(outputs):
    h = Harness()
    h.run()
    run, executor, _ = h.run(force=True)
    assert executor.executed == ALL and steps_by_status(run)["executed"] == ALL


def test_a_step_that_does_not_write_its_dataset_fails(outputs, monkeypatch):
    h = Harness()
    original = FakeExecutor.execute

    def forgetful(self, step, run, parameters, progress):
        result = original(self, step, run, parameters, progress)
        if step.name == "02_cleaning":
            catalog.dataset("clv_train").location(run).unlink()
        return result

    monkeypatch.setattr(FakeExecutor, "execute", forgetful)
    with pytest.raises(StepFailed, match="without writing its dataset.*clv_train"):
        h.run()


def test_a_run_carried_by_several_processes_ends_like_one_run(outputs):
    """begin, one step per call (state read back from the manifest), finish: as a scheduler's tasks do."""
    h = Harness()
    options = RunOptions(profile="smoke", progress=False)
    executor, tracker = FakeExecutor(h.registry), FakeTracker()
    state = runner.begin_run(options, plan.make_plan(options), tracker, check_inputs=lambda p: None)
    assert json.loads((state.run / "status.json").read_text())["status"] == "running"
    with pytest.raises(StepFailed, match="03_lead_model needs 00_data, 02_cleaning first"):
        runner.run_step(runner.resume_run(state.run_id), "03", executor, tracker)
    for step in ALL:
        runner.run_step(runner.resume_run(state.run_id), step, executor, tracker)
    with pytest.raises(runner.RunNotFound, match="no run 'nope'"):
        runner.resume_run("nope")
    run = runner.finish_run(runner.resume_run(state.run_id), tracker, h.registry)
    assert executor.executed == ALL and (outputs / "latest").resolve() == run.resolve()
    assert h.registry.aliases == {"lead_scoring": "1", "clv": "1"}
    with pytest.raises(runner.RunNotFound, match="is succeeded"):
        runner.resume_run(state.run_id)
    again, executor, _ = h.run()
    assert again is None, "the stepwise run counts as the last successful run"


def test_finishing_early_or_abandoning_moves_nothing(outputs):
    h = Harness()
    first, _, _ = h.run()
    options = RunOptions(profile="smoke", overrides=("n_leads=7000",), progress=False)
    executor, tracker = FakeExecutor(h.registry), FakeTracker()
    state = runner.begin_run(options, plan.make_plan(options), tracker, check_inputs=lambda p: None)
    runner.run_step(state, "00_data", executor, tracker)
    with pytest.raises(StepFailed, match="cannot finish: 01_eda"):
        runner.finish_run(runner.resume_run(state.run_id), tracker, h.registry)
    runner.fail_run(runner.resume_run(state.run_id), "abandoned", tracker)
    assert json.loads((state.run / "status.json").read_text())["status"] == "failed"
    assert (outputs / "latest").resolve() == first.resolve() and h.registry.aliases == {"lead_scoring": "1", "clv": "1"}


@pytest.fixture
def mlflow_tracker(tmp_path, monkeypatch):
    """The runner's MLflow tracker on a private store; MLflow's URIs put back afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        yield runner.MlflowTracker()
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)


def test_mlflow_runs_left_running_by_a_dead_run_all_are_marked_killed(mlflow_tracker):
    tracker = mlflow_tracker
    parent = tracker.start("run_all dead", {"lead2value.run_id": "dead"})
    child = tracker.start("00_data", {"lead2value.step": "00_data"}, parent)
    finished = tracker.start("run_all done", {"lead2value.run_id": "done"})
    tracker.end(finished, "FINISHED")
    notebook = tracker.client.create_run(tracker.experiment_id, tags={"lead2value.interactive": "true"}).info.run_id
    assert sorted(tracker.end_stale()) == sorted([parent, child])
    status = {run_id: tracker.client.get_run(run_id).info.status for run_id in (parent, child, finished, notebook)}
    assert status == {parent: "KILLED", child: "KILLED", finished: "FINISHED", notebook: "RUNNING"}
    assert tracker.end_stale() == []


def test_a_tracker_that_can_load_in_the_background_starts_before_the_last_notebook(outputs):
    """The whole run's tracker (its calls done in the kernels) loads MLflow while the last notebook runs,
    for finish_run, and not before it."""
    class Loading(FakeTracker):
        loaded_before: str | None = None

        def load_in_background(self):
            self.loaded_before = self.loaded_before or self.runs[-1]

    harness = Harness()
    options = RunOptions(profile="smoke", progress=False)
    tracker = Loading()
    runner.run_pipeline(options, plan.make_plan(options), FakeExecutor(harness.registry), tracker, harness.registry,
                        check_inputs=lambda p: None)
    assert tracker.loaded_before == catalog.STEPS[-2].name, "while 04's run is the last started, before 05 starts"


def test_the_tracker_logs_every_parameter_and_metric_in_batches(mlflow_tracker):
    """More than one batch of each (MLflow takes 100 parameters, 1,000 metrics per call): none is lost."""
    tracker = mlflow_tracker
    run_id = tracker.start("run_all batches", {"lead2value.run_id": "batches"})
    params = {f"p{i:03d}": i for i in range(250)}
    metrics = {f"m{i:04d}": i / 7 for i in range(2100)}
    tracker.log_params(run_id, params)
    tracker.log_metrics(run_id, metrics)
    data = tracker.client.get_run(run_id).data
    assert data.params == {key: str(value) for key, value in params.items()}
    assert data.metrics == pytest.approx(metrics)


def test_an_interrupted_run_is_marked_killed_not_failed(outputs):
    class Interrupting(FakeExecutor):
        def execute(self, step, run, parameters, progress):
            if step.name == "01_eda":
                raise KeyboardInterrupt
            return super().execute(step, run, parameters, progress)

    harness = Harness()
    options = RunOptions(profile="smoke", progress=False)
    tracker = FakeTracker()
    with pytest.raises(KeyboardInterrupt):
        runner.run_pipeline(options, plan.make_plan(options), Interrupting(harness.registry), tracker,
                            harness.registry, check_inputs=lambda p: None)
    (run,) = (paths.RUNS_DIR).iterdir()
    assert json.loads((run / "status.json").read_text())["status"] == "killed"
    assert json.loads((run / "manifest.json").read_text())["error"] == "interrupted (Ctrl-C)"
    assert tracker.ended == {"run1": "KILLED", "run2": "FINISHED", "run3": "KILLED"}  # parent, 00, 01


def test_drift_found_by_scoring_is_said_at_the_end_of_a_run():
    assert runner.drift_lines({"scoring.drift_status_leads": 0.0, "lead.auc_test": 0.8}) == []
    [line] = runner.drift_lines({"scoring.drift_status_leads": 2.0, "scoring.drift_status_customers": 1.0})
    assert "customers warn, leads FAIL" in line and "dashboard.html" in line
