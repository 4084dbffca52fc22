"""The scoring job's rules, with fakes for papermill, MLflow and the registry: what it writes, when
`latest` moves, what a held, failed or refused job leaves behind."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from utils.clv.features import build_clv_dataset, feature_columns
from utils.clv.synth import generate_clv
from utils.core.contracts import DataContractError
from utils.leads.schema import LEAD_ID
from utils.leads.synth import generate_new_leads
from utils.pipeline import catalog, scoring_job
from utils.pipeline.execute import StepFailed
from utils.pipeline.params import ParameterError
from utils.scoring.predict import NoModelError


class FakeExecutor:
    """Writes what 05 writes; ``drift`` is the verdict its provenance records."""

    def __init__(self, drift: str = "ok", fail: bool = False):
        self.drift, self.fail, self.calls = drift, fail, []

    def execute(self, step, run, parameters, progress):
        self.calls.append((step.name, dict(parameters)))
        if self.fail:
            raise StepFailed(step.name, "05_scoring failed in cell 9: `boom`")
        leads = pd.read_parquet(catalog.dataset("leads_new").location(run))
        for ds in scoring_job.expected_outputs(parameters["score_customers"]):
            path = ds.location(run)
            path.parent.mkdir(parents=True, exist_ok=True)
            if ds.name == "leads_scored":
                leads[[LEAD_ID]].assign(p_app_complete=0.5).to_parquet(path)
            elif ds.name == "scoring_provenance":
                path.write_text(json.dumps({"drift": {"status": self.drift,
                                                      "failures": ["leads.x (PSI 0.9 > 0.3)"] if self.drift == "fail"
                                                      else []}, "timings": {"predict_leads_seconds": 0.1}}))
            else:
                path.write_text("x")
        return 123.0


class FakeTracker:
    def __init__(self):
        self.ended = {}

    def start(self, name, tags, parent_id=None):
        return "run-1"

    def log_artifact(self, run_id, path, artifact_path=None): ...

    def end(self, run_id, status):
        self.ended[run_id] = status


def fake_pin(uri: str) -> scoring_job.PinnedModel:
    if "nobody" in uri:
        raise NoModelError(f"no registered model {uri}: train one first with `python run_all.py --profile smoke`")
    name = "clv" if "clv" in uri else "lead_scoring"
    recipe = {"feature_window_days": 7, "horizon_days": 60} if name == "clv" else {}
    columns = ["window_revenue", "window_orders", "web_download"] if name == "clv" else []
    return scoring_job.PinnedModel(uri, name, "3", f"models:/{name}/3", "run-x", recipe, columns)


@pytest.fixture
def leads_file(tmp_path) -> Path:
    path = tmp_path / "new_leads.csv"
    generate_new_leads(50, 3).to_csv(path)  # an export with its unnamed index column
    return path


def run(tmp_path, request, executor=None) -> tuple[scoring_job.JobResult, FakeExecutor, FakeTracker]:
    executor, tracker = executor or FakeExecutor(), FakeTracker()
    result = scoring_job.run_scoring_job(request, executor, tracker, tmp_path / "scoring", pin=fake_pin)
    return result, executor, tracker


def test_a_job_runs_05_only_on_its_inputs_and_moves_latest(tmp_path, leads_file):
    result, executor, tracker = run(tmp_path, scoring_job.JobRequest(leads=str(leads_file), job_id="job-a"))
    assert result.exit_code == scoring_job.EXIT_OK and result.status == "succeeded"
    [(step, parameters)] = executor.calls
    assert step == "05_scoring" and parameters["run_dir"] == str(result.folder)
    assert parameters["lead_model_uri"] == "models:/lead_scoring/3" and parameters["score_customers"] is False
    assert parameters["scoring_job"] == "job-a" and parameters["mlflow_run_id"] == "run-1"
    leads = pd.read_parquet(catalog.dataset("leads_new").location(result.folder))
    assert leads[LEAD_ID].tolist() == list(range(50))  # the export's own index
    assert (tmp_path / "scoring" / "latest").resolve() == result.folder.resolve()
    manifest = json.loads((result.folder / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["models"]["lead_scoring"]["version"] == "3"
    assert manifest["inputs"]["leads"]["rows"] == 50 and len(manifest["inputs"]["leads"]["sha256"]) == 64
    assert "data/leads_scored.parquet" in manifest["outputs"] and manifest["peak_kernel_rss_mb"] == 123.0
    snapshot = json.loads(catalog.dataset("raw_snapshot").location(result.folder).read_text())
    assert snapshot["leads_new"]["source"] == str(leads_file) and snapshot["leads_new"]["rows"] == 50
    assert json.loads((result.folder / "status.json").read_text())["status"] == "succeeded"
    assert tracker.ended == {"run-1": "FINISHED"}


def test_held_scores_are_written_but_latest_stays(tmp_path, leads_file):
    first, _, _ = run(tmp_path, scoring_job.JobRequest(leads=str(leads_file), job_id="good"))
    held, _, _ = run(tmp_path, scoring_job.JobRequest(leads=str(leads_file), job_id="drifted"), FakeExecutor("fail"))
    assert held.exit_code == scoring_job.EXIT_HELD == 4 and held.status == "held"
    assert catalog.dataset("leads_scored").location(held.folder).exists()
    assert (tmp_path / "scoring" / "latest").resolve() == first.folder.resolve()
    assert json.loads((held.folder / "status.json").read_text())["status"] == "held"
    assert json.loads((held.folder / "manifest.json").read_text())["held_because"] == ["leads.x (PSI 0.9 > 0.3)"]


def test_a_warning_does_not_hold(tmp_path, leads_file):
    result, _, _ = run(tmp_path, scoring_job.JobRequest(leads=str(leads_file)), FakeExecutor("warn"))
    assert result.status == "succeeded" and (tmp_path / "scoring" / "latest").exists()


def test_bad_input_no_model_or_a_foreign_parameter_write_nothing(tmp_path, leads_file):
    broken = tmp_path / "broken.csv"
    pd.read_csv(leads_file).drop(columns="referred_lead").to_csv(broken, index=False)
    executor = FakeExecutor()
    with pytest.raises(DataContractError, match=r"broken.csv: column 'referred_lead': missing"):
        scoring_job.run_scoring_job(scoring_job.JobRequest(leads=str(broken)), executor, FakeTracker(),
                                    tmp_path / "scoring", pin=fake_pin)
    with pytest.raises(NoModelError, match="run_all.py --profile smoke"):
        scoring_job.run_scoring_job(scoring_job.JobRequest(leads=str(leads_file), lead_model="models:/nobody@champion"),
                                    executor, FakeTracker(), tmp_path / "scoring", pin=fake_pin)
    for override, message in (("n_leads=5", "runs 05_scoring only"), ("lead_model_uri=x", "sets 'lead_model_uri'"),
                              ("psi_fail=abc", "psi_fail")):
        with pytest.raises(ParameterError, match=message):
            scoring_job.run_scoring_job(scoring_job.JobRequest(leads=str(leads_file), overrides=(override,)),
                                        executor, FakeTracker(), tmp_path / "scoring", pin=fake_pin)
    assert executor.calls == [] and not (tmp_path / "scoring").exists()


def test_a_failed_notebook_marks_the_job_failed_and_leaves_latest(tmp_path, leads_file):
    good, _, _ = run(tmp_path, scoring_job.JobRequest(leads=str(leads_file), job_id="good"))
    tracker = FakeTracker()
    with pytest.raises(StepFailed):
        scoring_job.run_scoring_job(scoring_job.JobRequest(leads=str(leads_file), job_id="bad"),
                                    FakeExecutor(fail=True), tracker, tmp_path / "scoring", pin=fake_pin)
    assert json.loads((tmp_path / "scoring" / "bad" / "status.json").read_text())["status"] == "failed"
    assert (tmp_path / "scoring" / "latest").resolve() == good.folder.resolve() and tracker.ended["run-1"] == "FAILED"
    with pytest.raises(DataContractError, match="exists already"):
        run(tmp_path, scoring_job.JobRequest(leads=str(leads_file), job_id="good"))


def test_customers_become_the_models_feature_table(tmp_path, leads_file):
    sources = generate_clv(200, 5)
    for name, frame in sources.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    request = scoring_job.JobRequest(leads=str(leads_file), customers=str(tmp_path / "customers.csv"),
                                     purchases=str(tmp_path / "purchases.csv"), web_actions=str(tmp_path / "web_actions.csv"),
                                     campaigns=str(tmp_path / "campaigns.csv"))
    result, executor, _ = run(tmp_path, request)
    parameters = executor.calls[0][1]
    assert parameters["score_customers"] is True and parameters["clv_model_uri"] == "models:/clv/3"
    features = pd.read_parquet(catalog.dataset("clv_score").location(result.folder))
    four = (sources[k] for k in ("customers", "web_actions", "campaigns", "purchases"))
    train, score, _ = build_clv_dataset(*four, feature_window_days=7, horizon_days=60)  # no purchase lines given
    assert len(features) == len(train) + len(score) and set(feature_columns(train)) <= set(features.columns)
    assert (features["web_download"] >= 0).all()
    customers = result.manifest["inputs"]["customers"]
    assert customers["feature_window_days"] == 7 and customers["scored"] == len(features)
    assert set(customers["files"]) == {"customers", "purchases", "web_actions", "campaigns"}


def test_pin_model_resolves_the_alias_and_refuses_a_model_without_a_drift_reference(tmp_path):
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from tests.helpers import scratch_mlflow_store
    from utils.core import tracking

    X = pd.DataFrame({"window_revenue": np.arange(20.0), "window_orders": np.arange(20.0) % 3})
    model = LinearRegression().fit(X, 2 * X["window_revenue"])
    with scratch_mlflow_store(tmp_path, "pin"):
        with mlflow.start_run():
            uri = tracking.log_model(model, X, "predicted_clv", recipe={"feature_window_days": 7, "horizon_days": 30})
            old = mlflow.sklearn.log_model(model, name="old", pip_requirements=[]).model_uri
        mlflow.register_model(uri, "clv")
        mlflow.register_model(old, "clv")
        mlflow.MlflowClient().set_registered_model_alias("clv", "champion", "1")
        pinned = scoring_job.pin_model("models:/clv@champion")
        assert (pinned.name, pinned.version, pinned.pinned_uri) == ("clv", "1", "models:/clv/1")
        assert pinned.recipe == {"feature_window_days": 7, "horizon_days": 30}
        assert pinned.input_columns == ["window_revenue", "window_orders"]
        with pytest.raises(NoModelError, match="before models carried their drift reference"):
            scoring_job.pin_model("models:/clv/2")
        with pytest.raises(NoModelError, match="no registered model"):
            scoring_job.pin_model("models:/clv@nobody")
