import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from utils import tracking


@pytest.fixture(scope="module")
def module_store(tmp_path_factory):
    """One private MLflow store per module: creating its tables takes seconds."""
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        tracking.configure()
        yield folder


@pytest.fixture
def store(module_store, tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.DEFERRED_PROMOTION_ENV, raising=False)
    yield tmp_path
    tracking.end_step()


def logged_model(seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(40, 2)), rng.integers(0, 2, 40)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit(X, y), name="model", pip_requirements=tracking.model_requirements()
        )
    return info.model_uri


def test_gate_decision():
    assert tracking.gate_decision(0.8, None) == (True, "no champion yet")
    assert tracking.gate_decision(0.8, 0.8)[0] is True
    promote, reason = tracking.gate_decision(0.7, 0.8)
    assert promote is False and "worse than champion 0.8000" in reason
    assert tracking.gate_decision(0.5, 0.6, higher_is_better=False)[0] is True


def test_first_model_becomes_champion_and_a_worse_one_does_not(store):
    run = store / "run"
    first = tracking.register_candidate(logged_model(0), "m", run, 0.80, None, "auc")
    assert first["promote"] and tracking.champion_version("m") == first["version"]
    worse = tracking.register_candidate(logged_model(1), "m", run, 0.70, 0.80, "auc")
    assert not worse["promote"]
    assert tracking.champion_version("m") == first["version"]
    recorded = json.loads((run / "promotions" / "m.json").read_text())
    assert recorded["version"] == worse["version"] and recorded["champion_version"] == first["version"]
    # the run serves the champion it kept, not the rejected version
    assert tracking.serving_model_uri("m", run) == f"models:/m/{first['version']}"
    assert tracking.load_champion("m") is not None
    unscorable = tracking.register_candidate(logged_model(2), "m", run, 0.6, None, "auc", champion_note="other features")
    assert unscorable["promote"] and "could not be scored on this holdout (other features)" in unscorable["reason"]


def test_deferred_promotion_waits_for_apply(store, monkeypatch):
    monkeypatch.setenv(tracking.DEFERRED_PROMOTION_ENV, "1")
    run = store / "run"
    decision = tracking.register_candidate(logged_model(), "deferred", run, 0.9, None, "auc")
    assert decision["promote"] and tracking.champion_version("deferred") is None
    assert tracking.serving_model_uri("deferred", run) == f"models:/deferred/{decision['version']}"
    assert tracking.apply_promotions(run)[0]["version"] == decision["version"]
    assert tracking.champion_version("deferred") == decision["version"]


def test_model_requirements_are_pinned():
    reqs = tracking.model_requirements()
    assert any(r.startswith("scikit-learn==") for r in reqs) and all("==" in r for r in reqs)


def test_serving_uri_without_decision_is_the_champion_alias(tmp_path):
    assert tracking.serving_model_uri("clv", tmp_path) == "models:/clv@champion"


def test_record_metrics_merges_and_logs(store):
    run = store / "run"
    tracking.start_step("", "00_test")
    tracking.record_metrics(run, "00_test", {"a.b": 1})
    out = tracking.record_metrics(run, "00_test", {"c": np.float32(2.5)})
    assert json.loads(out.read_text()) == {"a.b": 1.0, "c": 2.5}
    run_id = mlflow.active_run().info.run_id
    tracking.end_step()
    assert mlflow.get_run(run_id).data.metrics == {"a.b": 1.0, "c": 2.5}
    assert tracking.aliases_snapshot(("nobody",)) == {"nobody": None}


def test_save_figure_png_and_table(store):
    import pandas as pd

    fig, ax = plt.subplots()
    ax.plot([1, 2])
    out = tracking.save_figure(fig, store / "run", "line")
    assert out.name == "line.png" and out.stat().st_size > 0
    table = tracking.save_table(pd.DataFrame({"a": [1.0]}), store / "run", "t")
    assert table.read_text().startswith("a\n")
    with pytest.raises(TypeError, match="neither matplotlib nor plotly"):
        tracking.save_figure(object(), store / "run", "bad")
