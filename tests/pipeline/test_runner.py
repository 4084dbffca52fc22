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
from utils.pipeline import catalog, plan, runner
from utils.pipeline.execute import StepFailed
from utils.pipeline.plan import RunOptions

# What each dataset depends on: parameters (of the step) and datasets read.
DEPENDS = {
    "leads_raw": ["n_leads"], "leads_new": ["n_new_leads"],
    "clv_customers": ["n_customers"], "clv_web_actions": ["n_customers"], "clv_campaigns": ["n_customers"],
    "clv_purchases": ["n_customers"],
    "raw_snapshot": ["leads_raw", "leads_new", "clv_customers"],
    "leads_clean": ["leads_raw"], "lead_cleaning_report": ["leads_raw"],
    "clv_train": ["clv_purchases", "clv_customers"], "clv_score": ["clv_purchases"], "clv_feature_report": ["clv_purchases"],
    "leads_scored": ["leads_new", "lead_model"], "customers_scored": ["clv_score", "clv_model"],
    "scoring_provenance": ["lead_model", "clv_model"], "dashboard": ["leads_scored"],
}


class FakeExecutor:
    def __init__(self, registry: FakeRegistry, fail: str | None = None):
        self.registry, self.fail, self.executed = registry, fail, []

    def execute(self, step, run, parameters, progress):
        if step.name == self.fail:
            raise StepFailed(step.name, f"{step.name} failed in cell 7: `boom`")
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
                path.write_text(json.dumps({"name": ds.model, "version": version, "promote": True,
                                            "reason": "no champion yet"}))
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

    def run(self, *overrides, fail=None, force=False):
        options = RunOptions(profile="smoke", overrides=tuple(overrides), force=force, progress=False)
        planned = plan.make_plan(options)
        executor = FakeExecutor(self.registry, fail)
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
    run, executor, _ = h.run("n_leads=7000")
    assert "00_data" in executor.executed


def test_a_reused_steps_old_promotion_is_never_applied_again(outputs):
    h = Harness()
    h.run()                       # promotes version 1 of both models
    h.run("n_leads=7000", "n_customers=2500")  # promotes version 2 of both
    assert h.registry.aliases == {"lead_scoring": "2", "clv": "2"}
    run, executor, _ = h.run()    # the first run's parameters: every step is reused from it
    assert executor.executed == [] and steps_by_status(run)["reused"] == ALL
    assert h.registry.aliases == {"lead_scoring": "2", "clv": "2"}, "no rollback to version 1"
    assert json.loads((run / "manifest.json").read_text())["promotions"] == []


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
    with pytest.raises(StepFailed, match="03_lead_model needs 02_cleaning first"):
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


def test_drift_found_by_scoring_is_said_at_the_end_of_a_run():
    assert runner.drift_lines({"scoring.drift_status_leads": 0.0, "lead.auc_test": 0.8}) == []
    [line] = runner.drift_lines({"scoring.drift_status_leads": 2.0, "scoring.drift_status_customers": 1.0})
    assert "customers warn, leads FAIL" in line and "dashboard.html" in line
