import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from utils.core import registry, tracking


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        tracking.configure()
        yield folder
    if mlflow.active_run():
        mlflow.end_run()


def logged_model(seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"])
    with mlflow.start_run():
        return tracking.log_model(LogisticRegression().fit(X, rng.integers(0, 2, 40)), X, "p", method="predict_proba")


def test_gate_decision():
    assert registry.gate_decision(0.8, None) == (True, "no champion yet")
    assert registry.gate_decision(0.8, 0.8)[0] is True
    promote, reason = registry.gate_decision(0.7, 0.8)
    assert promote is False and "worse than champion 0.8000" in reason
    assert registry.gate_decision(0.5, 0.6, higher_is_better=False)[0] is True


def test_register_records_the_decision_and_never_moves_the_alias_itself(store, tmp_path):
    decision_file = tmp_path / "models" / "m.json"
    first = registry.register_candidate(logged_model(0), "m", decision_file, 0.80, None, "auc")
    assert first["promote"] and first["reason"] == "no champion yet"
    assert registry.champion_version("m") is None, "only the runner moves champion, after the whole run"
    assert json.loads(decision_file.read_text()) == first
    assert registry.serving_model_uri("m", decision_file) == f"models:/m/{first['version']}"
    mlflow.MlflowClient().set_registered_model_alias("m", registry.CHAMPION_ALIAS, first["version"])
    worse = registry.register_candidate(logged_model(1), "m", decision_file, 0.70, 0.80, "auc")
    assert not worse["promote"] and worse["champion_version"] == first["version"]
    # the run serves the champion it kept, not the rejected version
    assert registry.serving_model_uri("m", decision_file) == f"models:/m/{first['version']}"
    assert registry.load_champion("m") is not None
    unscorable = registry.register_candidate(logged_model(2), "m", decision_file, 0.6, None, "auc",
                                             champion_note="other features")
    assert "could not be scored on this holdout (other features)" in unscorable["reason"]
    tags = mlflow.MlflowClient().get_model_version("m", worse["version"]).tags
    assert tags["gate"] == "reject" and tags["auc"] == "0.700000"


def test_serving_uri_without_decision_is_the_champion_alias(tmp_path):
    assert registry.serving_model_uri("clv", tmp_path / "absent.json") == "models:/clv@champion"
    assert registry.serving_model_uri("clv") == "models:/clv@champion"


def test_no_champion_loads_as_none(store):
    assert registry.champion_version("nobody") is None and registry.load_champion("nobody") is None


def test_champion_score_on_the_same_holdout_or_none():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    y = (X["a"] + rng.normal(size=60) > 0).astype(int).to_numpy()
    champion = LogisticRegression().fit(X, y)
    proba = lambda model, frame: model.predict_proba(frame)[:, 1]
    assert registry.champion_score(None, X, y, roc_auc_score, proba) is None
    assert registry.champion_score(champion, X[["a"]], y, roc_auc_score, proba) is None
    assert registry.champion_score(champion, X.assign(extra=1), y, roc_auc_score, proba) == pytest.approx(
        roc_auc_score(y, proba(champion, X)))
